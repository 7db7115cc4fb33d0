"""Memory and compute sizing for LLM and HPC work (formulas and sources: docs/ranking.md).

All sizes are decimal: 1 GB = 1e9 bytes, as in the Hugging Face estimator and vendor datasheets.
"""

from __future__ import annotations

import math

GB = 1e9
BYTES_PER_PARAM = {"fp32": 4.0, "fp16": 2.0, "bf16": 2.0, "fp8": 1.0, "int8": 1.0, "int4": 0.5}
INFERENCE_OVERHEAD = 0.20  # "expect to add up to an additional 20 %" to the weights (EleutherAI via HF)
USABLE_MEMORY_FRACTION = 0.92  # vLLM gpu_memory_utilization default
# Mixed-precision AdamW: 16 B/param (Ultra-Scale Playbook) to 18 B/param (HF model memory anatomy).
ADAM_MIXED_BYTES_LOW = 16.0
ADAM_MIXED_BYTES_HIGH = 18.0
ADAM_FP32_BYTES = 16.0  # 4 weights + 4 grads + 8 Adam states, everything fp32
TRAINING_ACTIVATION_OVERHEAD = 0.20  # assumption: activations and buffers on top of the model states
LORA_TRAINABLE_FRACTION = 0.01  # assumption: adapters ~1 % of the base parameters (rank 16 on all linears ~0.6 %)


def weights_bytes(params_b: float, precision: str) -> float:
    """N × b."""
    return params_b * 1e9 * BYTES_PER_PARAM[precision]


def kv_cache_bytes_per_token(layers: int, kv_elements_per_layer: int, kv_precision: str) -> float:
    """2 · L · H_kv · d_h · bytes (kv_elements_per_layer = 2·H_kv·d_h, or the MLA latent width)."""
    return float(layers * kv_elements_per_layer * BYTES_PER_PARAM[kv_precision])


def inference_memory_bytes(weights: float, kv_per_token: float, context: int, concurrency: int) -> float:
    """Weights × 1.2 + KV cache for `concurrency` sequences of `context` tokens."""
    return weights * (1 + INFERENCE_OVERHEAD) + kv_per_token * context * concurrency


def training_bytes_per_param(precision: str, high: bool = True) -> float:
    """Model states per parameter for full training with Adam (weights, gradients, optimizer)."""
    if precision == "fp32":
        return ADAM_FP32_BYTES
    return ADAM_MIXED_BYTES_HIGH if high else ADAM_MIXED_BYTES_LOW


def training_memory_bytes(
    params_b: float, precision: str, method: str = "full", trainable_fraction: float = LORA_TRAINABLE_FRACTION
) -> float:
    """Model states (sharded across all accelerators with ZeRO-3/FSDP) plus activation overhead.

    LoRA: frozen base weights in the request precision (int4 = QLoRA) + mixed-precision Adam on the adapters.
    """
    n = params_b * 1e9
    if method == "lora":
        states = n * BYTES_PER_PARAM[precision] + n * trainable_fraction * ADAM_MIXED_BYTES_HIGH
    else:
        states = n * training_bytes_per_param(precision)
    return states * (1 + TRAINING_ACTIVATION_OVERHEAD)


def training_flops(params_b: float, tokens: float, method: str = "full") -> float:
    """C ≈ 6·N·D for full training; LoRA skips weight gradients of the frozen base: ≈ 4·N·D."""
    return (4.0 if method == "lora" else 6.0) * params_b * 1e9 * tokens


def accelerators_needed(need_bytes: float, memory_gb: float) -> int:
    """Accelerators whose usable memory holds `need_bytes` (at least 1)."""
    return max(1, math.ceil(need_bytes / (memory_gb * GB * USABLE_MEMORY_FRACTION)))


def tensor_parallel_degree(accelerators: int) -> int:
    """Tensor-parallel groups are powers of two (they must divide the attention heads)."""
    return 1 << max(0, math.ceil(math.log2(max(1, accelerators))))
