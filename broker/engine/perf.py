"""Effective throughput per accelerator for a workload: measured where possible, else peak × an achieved fraction.

Every function returns one value per accelerator of the specs table (NumPy arrays, NaN = cannot estimate) with
a confidence code per accelerator: 0 high (measured on this workload), 1 medium (a measurement scaled to this
model or precision), 2 low (peak × prior).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from broker.engine import sizing
from broker.engine.specs import REFERENCE_ACCELERATOR, EngineSpecs

HIGH, MEDIUM, LOW = 0, 1, 2
CONFIDENCE_NAMES = ("high", "medium", "low")
REFERENCE_BENCHMARK = "MLPerf Llama2-70B"
REFERENCE_BENCHMARK_PARAMS_B = 68.98  # Llama-2-70B
# Model FLOPs utilisation priors (fraction of dense peak): Llama 3 pretraining reached 38–43 % on H100
# [AIPORTALX_LLAMA, GLENN_LLAMA3]; GPT-NeoX 150–180 TFLOPS on A100 (48–58 %) [YAAANG_NOTION].
MFU_TRAINING = 0.40
MFU_LORA = 0.30  # assumption: adapters make smaller GEMMs than full training
MFU_INFERENCE_COMPUTE = 0.50  # assumption for the compute roof of batched decoding
FP8_TRAINING_DERATE = 0.70  # assumption: FP8 training gains ~1.4x over BF16, not the 2x of the peak
HPC_FP64_EFFICIENCY = 0.65  # Frontier HPL Rmax/Rpeak ≈ 1.353/2.06 EF [TOP500_NOV2024]
MEMORY_BW_EFFICIENCY = 0.80  # assumption: achievable fraction of peak HBM bandwidth


@dataclass(frozen=True, slots=True)
class AccPerf:
    value: np.ndarray  # per accelerator: tokens/s (inference) or FLOP/s (training, hpc)
    confidence: np.ndarray  # int8 codes HIGH/MEDIUM/LOW
    basis: tuple[str, ...]  # one short sentence per accelerator


def _peak_for(specs: EngineSpecs, precision: str) -> np.ndarray:
    """Dense peak TFLOPS a workload in `precision` runs at, with the usual fallbacks."""
    p = specs.peak
    order = {
        "bf16": ("bf16", "fp16"),
        "fp16": ("fp16", "bf16"),
        "fp8": ("fp8", "bf16", "fp16"),
        "int8": ("int8", "fp8", "fp16", "bf16"),
        "int4": ("int8", "fp8", "fp16", "bf16"),
        "fp32": ("tf32", "fp32"),
        "fp64": ("fp64_tensor", "fp64"),
    }[precision]
    out = np.full(specs.size, np.nan)
    for col in reversed(order):
        out = np.where(np.isnan(p[col]), out, p[col])
    if precision == "fp64":
        out = np.fmax(p["fp64_tensor"], p["fp64"])
    return out


def training_flops_per_accelerator(specs: EngineSpecs, precision: str, method: str = "full") -> AccPerf:
    mfu = MFU_LORA if method == "lora" else MFU_TRAINING
    peak = _peak_for(specs, precision)
    value = peak * 1e12 * mfu * specs.matmul_efficiency_vs_h100
    if precision == "fp8":
        value = value * FP8_TRAINING_DERATE
    conf = np.full(specs.size, LOW, dtype=np.int8)
    basis = [f"peak {precision} × {mfu:.0%} MFU prior" for _ in specs.names]
    if precision in ("bf16", "fp16"):
        for i, m in specs.training_measured_tflops.items():
            value[i] = m.value * 1e12 * (mfu / MFU_TRAINING)
            conf[i] = HIGH if method != "lora" else MEDIUM
            basis[i] = f"measured {m.value:g} TFLOPS/GPU: {m.label}"
    return AccPerf(value, conf, tuple(basis))


def hpc_flops_per_accelerator(specs: EngineSpecs) -> AccPerf:
    value = _peak_for(specs, "fp64") * 1e12 * HPC_FP64_EFFICIENCY
    conf = np.full(specs.size, LOW, dtype=np.int8)
    basis = [f"peak fp64 × {HPC_FP64_EFFICIENCY:.0%} (HPL-like efficiency prior)" for _ in specs.names]
    for i, m in specs.hpc_measured_tflops.items():
        value[i] = m.value * 1e12
        conf[i] = HIGH
        basis[i] = f"measured {m.value:g} TFLOPS FP64: {m.label}"
    return AccPerf(value, conf, tuple(basis))


def roofline_tokens_per_second(
    specs: EngineSpecs,
    active_params_b: float,
    weights_bytes: float,
    kv_bytes_per_token: float,
    context: int,
    concurrency: int,
    precision: str,
) -> np.ndarray:
    """Per-accelerator decode throughput: min(compute roof, memory-bandwidth roof) [EAI_TM101, LLMVIEWER].

    Compute: peak × MFU / (2·N_active) tokens/s. Memory: each step reads the replica's weights and KV cache once
    and yields `concurrency` tokens; per accelerator that is concurrency × BW / (weights + KV), independent of TP.
    """
    compute = _peak_for(specs, precision) * 1e12 * MFU_INFERENCE_COMPUTE / (2 * active_params_b * 1e9)
    kv = kv_bytes_per_token * (context / 2) * concurrency  # sequences are half full on average
    memory = concurrency * specs.bandwidth_gbps * 1e9 * MEMORY_BW_EFFICIENCY / (weights_bytes + kv)
    return np.fmin(compute, memory)  # fmin: a missing roof does not hide the other


def _precision_factor(measured_bytes: float, requested_bytes: float) -> float:
    """Decoding is bandwidth bound: wider weights than measured slow it down; narrower ones are not credited."""
    return min(1.0, measured_bytes / requested_bytes)


def inference_tokens_per_accelerator(
    specs: EngineSpecs,
    *,
    model_benchmark: str,
    active_params_b: float,
    weights_bytes: float,
    kv_bytes_per_token: float,
    context: int,
    concurrency: int,
    precision: str,
) -> AccPerf:
    req_bytes = sizing.BYTES_PER_PARAM[precision]
    roof = roofline_tokens_per_second(
        specs, active_params_b, weights_bytes, kv_bytes_per_token, context, concurrency, precision
    )
    reference = specs.inference_measured.get(REFERENCE_BENCHMARK, {})
    ref_idx = specs.index.get(REFERENCE_ACCELERATOR)
    calibration = 1.0
    if ref_idx is not None and ref_idx in reference and roof[ref_idx] > 0:
        m = reference[ref_idx]
        # what the roofline says for the measured setup on the reference accelerator, vs what MLPerf measured
        ref_prec = "fp8" if m.precision_bytes == 1.0 else "fp16"
        ref_roof = roofline_tokens_per_second(
            specs,
            REFERENCE_BENCHMARK_PARAMS_B,
            REFERENCE_BENCHMARK_PARAMS_B * 1e9 * m.precision_bytes,
            2 * 80 * 8 * 128 * m.precision_bytes,
            context,
            concurrency,
            ref_prec,
        )[ref_idx]
        if ref_roof > 0:
            calibration = m.value / ref_roof
    value = roof * calibration
    conf = np.full(specs.size, LOW, dtype=np.int8)
    basis = ["roofline min(compute, bandwidth), calibrated to MLPerf H100" for _ in specs.names]
    for i, m in reference.items():
        value[i] = (
            m.value * REFERENCE_BENCHMARK_PARAMS_B / active_params_b * _precision_factor(m.precision_bytes, req_bytes)
        )
        conf[i] = MEDIUM
        basis[i] = f"{m.label}, scaled to {active_params_b:g}B active params and {precision}"
    for i, m in specs.inference_measured.get(model_benchmark, {}).items() if model_benchmark else ():
        factor = _precision_factor(m.precision_bytes, req_bytes)
        value[i] = m.value * factor
        conf[i] = HIGH if factor == 1.0 else MEDIUM
        basis[i] = f"measured {m.label}" + ("" if factor == 1.0 else f", scaled to {precision}")
    return AccPerf(value, conf, tuple(basis))
