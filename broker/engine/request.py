"""The recommendation request: frozen dataclasses and a strict parser with field-level errors."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from broker.engine import sizing

WORKLOAD_KINDS = ("llm_inference", "llm_training", "fine_tuning", "hpc", "batch")
ALL_KINDS = (*WORKLOAD_KINDS, "resources")
DURATION_KINDS = frozenset({"resources", "batch", "llm_inference"})  # the customer says how long
JOB_KINDS = frozenset({"llm_training", "fine_tuning", "hpc"})  # the engine estimates how long
INTERCONNECTS = ("nvlink", "xgmi", "hccs", "pcie", "none")
INTER_NODE = ("infiniband", "roce", "ethernet", "none")
STACK_ALIASES = {
    "cuda": "cuda",
    "rocm": "rocm",
    "hip": "rocm",
    "dtk": "dtk",
    "cann": "cann",
    "ascend": "cann",
    "neuware": "neuware",
    "gaudi": "gaudi",
    "synapseai": "gaudi",
    "habana": "gaudi",
    "xpu": "xpu",
    "kunlunxin": "xpu",
}
SCORERS = ("cost", "time", "carbon", "reliability")
PROFILES: dict[str, dict[str, float]] = {
    "cost": {"cost": 1.0},
    "time": {"time": 1.0},
    "carbon": {"carbon": 1.0},
    "balanced": {"cost": 0.4, "time": 0.3, "carbon": 0.2, "reliability": 0.1},
}
MAX_ACCELERATORS_PER_NODE = 64
MAX_NODES = 1024
MAX_REPLICA_NODES = 16  # pipeline stages one inference replica may span
MAX_TOP_K = 50
DEFAULT_TOP_K = 5
DEFAULT_CONTEXT = 4096
DEFAULT_CONCURRENCY = 16


class RequestError(ValueError):
    """An impossible or contradictory request: `fields` maps a dotted field path to messages."""

    def __init__(self, fields: Mapping[str, list[str]]):
        self.fields = {k: list(v) for k, v in fields.items()}
        first = next(iter(self.fields.items()))
        super().__init__(f"{first[0]}: {first[1][0]}")


@dataclass(frozen=True, slots=True)
class Resources:
    accelerators: tuple[str, ...] = ()  # canonical names; empty = any
    count: int | None = None  # accelerators per node (exact)
    nodes: int | None = None
    min_memory_gb: float | None = None
    interconnect: tuple[str, ...] = ()  # empty = any
    inter_node: tuple[str, ...] = ()  # empty = any
    vcpus: float | None = None
    ram_gb: float | None = None
    disk_gb: float | None = None


@dataclass(frozen=True, slots=True)
class LlmWorkload:
    kind: str  # llm_inference | llm_training | fine_tuning
    model: str | None  # bundled model key, or None for params-only
    params_b: float
    active_params_b: float
    layers: int
    kv_elements_per_layer: int
    architecture_from: str  # the model whose architecture (layers, KV heads) is used
    benchmark: str  # effective_perf.csv benchmark family measured on this model, '' if none
    precision: str
    kv_precision: str = "fp16"
    context_length: int = DEFAULT_CONTEXT
    concurrent_sequences: int = DEFAULT_CONCURRENCY
    tokens_per_second: float | None = None
    training_tokens: float | None = None
    method: str = "full"  # full | lora
    trainable_fraction: float = sizing.LORA_TRAINABLE_FRACTION

    @property
    def weights_bytes(self) -> float:
        return sizing.weights_bytes(self.params_b, self.precision)

    @property
    def kv_bytes_per_token(self) -> float:
        return sizing.kv_cache_bytes_per_token(self.layers, self.kv_elements_per_layer, self.kv_precision)

    @property
    def memory_bytes(self) -> float:
        """Total memory one replica (inference) or the whole sharded job (training) needs."""
        if self.kind == "llm_inference":
            return sizing.inference_memory_bytes(
                self.weights_bytes, self.kv_bytes_per_token, self.context_length, self.concurrent_sequences
            )
        return sizing.training_memory_bytes(self.params_b, self.precision, self.method, self.trainable_fraction)

    @property
    def flops(self) -> float:
        return sizing.training_flops(self.params_b, self.training_tokens or 0.0, self.method)


@dataclass(frozen=True, slots=True)
class HpcWorkload:
    fp64_pflop: float
    reference: str = ""  # "100 node-hours on 8× NVIDIA A100-SXM4-80GB" when converted


@dataclass(frozen=True, slots=True)
class Objective:
    name: str  # cost | time | carbon | balanced | explicit
    weights: tuple[tuple[str, float], ...]  # normalised to sum 1

    def weight(self, scorer: str) -> float:
        return dict(self.weights).get(scorer, 0.0)


@dataclass(frozen=True, slots=True)
class Request:
    kind: str
    resources: Resources
    workload: LlmWorkload | HpcWorkload | None
    objective: Objective
    duration_hours: float | None = None  # duration kinds: hours rented
    time_limit_hours: float | None = None  # job kinds: must finish within (from deadline and/or duration_hours)
    deadline: datetime | None = None
    max_price_per_hour: Decimal | None = None  # for the whole configuration (all nodes)
    max_total_usd: Decimal | None = None
    regions_allowed: frozenset[str] = frozenset()
    regions_excluded: frozenset[str] = frozenset()
    countries_allowed: frozenset[str] = frozenset()
    countries_excluded: frozenset[str] = frozenset()
    interruptible_allowed: bool = False
    min_provider_reliability: float | None = None
    software_stack: tuple[str, ...] = ()
    top_k: int = DEFAULT_TOP_K
    max_nodes: int | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def is_job(self) -> bool:
        return self.kind in JOB_KINDS
