"""The workload evaluated once per node type: nodes needed, runtime, power, node-type-level filter failures.

A node type is a distinct (accelerator, count, memory, interconnect, inter-node, stack) shape in the snapshot;
there are a few hundred of them however many offers there are, so this is the place for the per-accelerator
workload model. Everything here is vectorised over node types.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from broker.engine import sizing
from broker.engine.filters import bits_where
from broker.engine.perf import (
    LOW,
    AccPerf,
    hpc_flops_per_accelerator,
    inference_tokens_per_accelerator,
    training_flops_per_accelerator,
)
from broker.engine.request import (
    INTER_NODE,
    INTERCONNECTS,
    JOB_KINDS,
    MAX_NODES,
    MAX_REPLICA_NODES,
    HpcWorkload,
    LlmWorkload,
    Request,
)
from broker.engine.snapshot import NodeTypes
from broker.engine.specs import EngineSpecs

# Multi-node scaling efficiency s(n) = 1 / (1 + a·log2 n) (assumption; a by fabric). n·s(n) grows with n.
SCALING_LOSS = {"rdma": 0.05, "ethernet": 0.15}
PCIE_TRAINING_FACTOR = 0.85  # assumption: all-reduce over PCIe inside a node costs ~15 %
# Average power draw as a fraction of TDP while the workload runs (assumption), with a low–high range.
UTILISATION = {
    "llm_training": (0.85, 0.7, 1.0),
    "fine_tuning": (0.85, 0.7, 1.0),
    "hpc": (0.85, 0.7, 1.0),
    "llm_inference": (0.6, 0.4, 0.8),
    "batch": (0.7, 0.5, 1.0),
    "resources": (0.7, 0.5, 1.0),
}
_FAST = np.array([INTER_NODE.index("infiniband"), INTER_NODE.index("roce")])
_NONE = INTER_NODE.index("none")


def _scaling_tables() -> np.ndarray:
    """G[c, n] = n·s(n) for scale class c (0 none, 1 ethernet, 2 rdma); G[c, 0] = 0."""
    n = np.arange(MAX_NODES + 1, dtype=np.float64)
    log = np.log2(np.maximum(n, 1))
    eth = n / (1 + SCALING_LOSS["ethernet"] * log)
    rdma = n / (1 + SCALING_LOSS["rdma"] * log)
    none = np.where(n <= 1, n, np.inf)
    return np.vstack([none, eth, rdma])


SCALING = _scaling_tables()


class _BasisView(Sequence[str]):
    """Per node type, the accelerator's basis sentence (looked up when read: only the top-k are)."""

    def __init__(self, per_accelerator: tuple[str, ...], spec_idx: np.ndarray):
        self._basis, self._idx = per_accelerator, spec_idx

    def __len__(self) -> int:
        return int(self._idx.shape[0])

    def __getitem__(self, nt):  # type: ignore[override]
        if isinstance(nt, slice):
            return tuple(self[i] for i in range(*nt.indices(len(self))))
        i = int(self._idx[nt])
        return self._basis[i] if i >= 0 else "accelerator not in the spec table"


@dataclass(frozen=True)
class NodePlan:
    spec_idx: np.ndarray  # accelerator index in the specs table (-1 unknown)
    bits: np.ndarray  # uint32 node-type-level filter failures
    n_need: np.ndarray  # nodes the workload needs (memory, throughput, requested nodes)
    n_deadline: np.ndarray  # fewest nodes meeting the time limit (1 without one; MAX_NODES+1 = never)
    fabric: np.ndarray  # bool: nodes of this type can be combined
    scale_class: np.ndarray  # int: row into SCALING
    base_hours: np.ndarray  # job kinds: hours on one node; duration kinds: the duration
    node_kw: np.ndarray  # kW per node at the expected utilisation (NaN unknown)
    confidence: np.ndarray  # int8 perf confidence (0 high .. 2 low)
    basis: Sequence[str]  # how the runtime/throughput was estimated, per node type
    per_replica: np.ndarray  # accelerators per replica (inference) or in total for memory (training)
    node_rate: np.ndarray  # tokens/s (inference) or FLOP/s (jobs) per node; NaN otherwise
    need_gb: float  # memory the workload needs (per replica for inference, in total for training)

    def hours_at(self, nt: np.ndarray, n: np.ndarray) -> np.ndarray:
        """Runtime on n nodes: base / (n·s(n)) for jobs; the fixed duration otherwise."""
        return self.base_hours[nt] / SCALING[self.scale_class[nt], n]


def _perf(specs: EngineSpecs, request: Request) -> AccPerf | None:
    w = request.workload
    if isinstance(w, HpcWorkload):
        return hpc_flops_per_accelerator(specs)
    if isinstance(w, LlmWorkload) and w.kind == "llm_inference":
        return inference_tokens_per_accelerator(
            specs,
            model_benchmark=w.benchmark,
            active_params_b=w.active_params_b,
            weights_bytes=w.weights_bytes,
            kv_bytes_per_token=w.kv_bytes_per_token,
            context=w.context_length,
            concurrency=w.concurrent_sequences,
            precision=w.precision,
        )
    if isinstance(w, LlmWorkload):
        return training_flops_per_accelerator(
            specs, "bf16" if w.precision in ("int8", "int4") else w.precision, w.method
        )
    return None


def plan_node_types(specs: EngineSpecs, request: Request, nodes: NodeTypes) -> NodePlan:
    m = len(nodes.keys)
    spec_idx = specs.lookup(nodes.accelerator)
    known = spec_idx >= 0
    safe_idx = np.where(known, spec_idx, 0)
    count, mem = nodes.count, nodes.memory_gb
    res = request.resources
    bits = np.zeros(m, dtype=np.uint32)

    if res.accelerators:
        bits |= bits_where(~np.isin(np.array(nodes.accelerator, dtype=object), list(res.accelerators)), "accelerator")
    if res.count is not None:
        bits |= bits_where(count != res.count, "accelerator_count")
    if res.min_memory_gb is not None:
        bits |= bits_where(mem < res.min_memory_gb, "accelerator_memory")
    if res.interconnect:
        wanted = [INTERCONNECTS.index(c) for c in res.interconnect]
        bits |= bits_where(~np.isin(nodes.interconnect, wanted), "interconnect")
    fabric = nodes.inter_node != _NONE
    if res.inter_node:
        wanted = [INTER_NODE.index(c) for c in res.inter_node]
        bits |= bits_where(~np.isin(nodes.inter_node, wanted), "inter_node")
    if request.software_stack:
        bits |= bits_where(
            ~np.isin(np.array(nodes.stack_family, dtype=object), list(request.software_stack)), "software_stack"
        )
    scale_class = np.where(np.isin(nodes.inter_node, _FAST), 2, np.where(fabric, 1, 0))

    perf = _perf(specs, request)
    requested_nodes = res.nodes or 1
    n_need = np.full(m, requested_nodes, dtype=np.int64)
    per_replica = np.ones(m, dtype=np.int64)
    node_rate = np.full(m, np.nan)
    confidence = np.zeros(m, dtype=np.int8)
    basis: Sequence[str] = ("duration given by the request",) * m
    base_hours = np.full(m, request.duration_hours or 0.0)
    w = request.workload
    need_gb = 0.0
    if perf is not None:
        rate = np.where(known, perf.value[safe_idx], np.nan)
        confidence = np.where(known, perf.confidence[safe_idx], LOW).astype(np.int8)
        basis = _BasisView(perf.basis, spec_idx)
        bits |= bits_where(~(rate > 0), "unsupported_workload")
        rate = np.where(rate > 0, rate, np.nan)
        if isinstance(w, LlmWorkload):
            need = w.memory_bytes
            need_gb = need / sizing.GB
            usable = mem * sizing.GB * sizing.USABLE_MEMORY_FRACTION
            accelerators = np.maximum(1, np.ceil(need / usable)).astype(np.int64)
            if w.kind == "llm_inference":
                tp = (1 << np.ceil(np.log2(accelerators)).astype(np.int64)).astype(np.int64)
                span = np.maximum(1, -(-tp // count))  # nodes one replica spans
                per_replica = np.where(span > 1, span * count, tp)
                per_node_used = np.where(span > 1, count, (count // np.minimum(tp, count)) * tp)
                node_rate = rate * per_node_used
                replicas = np.ones(m, dtype=np.int64)
                if w.tokens_per_second:
                    replica_rate = rate * per_replica
                    replicas = np.where(
                        replica_rate > 0, np.ceil(w.tokens_per_second / np.where(replica_rate > 0, replica_rate, 1)), 1
                    ).astype(np.int64)
                replicas_per_node = np.where(span > 1, 1, count // np.minimum(tp, count))
                nodes_for = np.where(span > 1, span * replicas, -(-replicas // np.maximum(replicas_per_node, 1)))
                n_need = np.maximum(nodes_for, requested_nodes)
                bits |= bits_where(span > MAX_REPLICA_NODES, "accelerator_memory")
                bits |= bits_where((span > 1) & ~fabric, "inter_node")
            else:
                per_replica = accelerators
                n_mem = -(-accelerators // count)
                n_need = np.maximum(n_mem, requested_nodes)
                bits |= bits_where(n_mem > MAX_NODES, "accelerator_memory")
        if request.kind in JOB_KINDS:
            intra = np.where(
                (count > 1) & np.isin(nodes.interconnect, [INTERCONNECTS.index("pcie"), INTERCONNECTS.index("none")]),
                PCIE_TRAINING_FACTOR,
                1.0,
            )
            node_rate = rate * count * intra
            flops = w.flops if isinstance(w, LlmWorkload) else w.fp64_pflop * 1e15
            base_hours = flops / node_rate / 3600
    if request.kind in JOB_KINDS or res.nodes:
        bits |= bits_where((n_need > 1) & ~fabric, "inter_node")
    n_need = np.minimum(n_need, MAX_NODES + 1)

    n_deadline = np.ones(m, dtype=np.int64)
    if request.kind in JOB_KINDS and request.time_limit_hours:
        # smallest n with base/G[n] <= limit, on the fabric this node type has (rdma table when it has none,
        # so the gap text can say how many nodes it would take)
        target = base_hours / request.time_limit_hours
        table_class = np.where(scale_class == 0, 2, scale_class)
        for c in (1, 2):
            sel = table_class == c
            if sel.any():
                n_deadline[sel] = np.searchsorted(SCALING[c], np.nan_to_num(target[sel], nan=np.inf), side="left")
        n_deadline = np.where(np.isnan(base_hours), 1, np.maximum(n_deadline, 1))  # unknown runtime: no verdict

    util = UTILISATION[request.kind][0]
    tdp = np.where(known, specs.tdp_w[safe_idx], np.nan)
    node_kw = tdp * count / 1000 * util
    return NodePlan(
        spec_idx=spec_idx,
        bits=bits,
        n_need=n_need,
        n_deadline=n_deadline,
        fabric=fabric,
        scale_class=scale_class.astype(np.int64),
        base_hours=base_hours,
        node_kw=node_kw,
        confidence=confidence,
        basis=basis,
        per_replica=per_replica,
        node_rate=node_rate,
        need_gb=need_gb,
    )
