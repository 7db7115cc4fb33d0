"""Sizing formulas against published figures."""

from __future__ import annotations

import pytest

from broker.engine import sizing
from broker.engine.models_table import default_models
from broker.engine.parse import parse_request
from tests.engine.helpers import NOW


def model(key: str):
    m = default_models().get(key)
    assert m is not None, key
    return m


def test_llama2_70b_fp16_weights_are_about_140_gb():
    weights = sizing.weights_bytes(model("llama-2-70b").params_b, "fp16")
    assert weights == pytest.approx(137.96e9)
    assert 135e9 < weights < 141e9  # "Llama-2-70B in fp16 needs ~140 GB"


def test_inference_memory_adds_20_percent_and_the_kv_cache():
    m = model("llama-2-7b")
    kv = sizing.kv_cache_bytes_per_token(m.layers, m.kv_elements_per_token_per_layer, "fp16")
    need = sizing.inference_memory_bytes(sizing.weights_bytes(m.params_b, "fp16"), kv, 4096, 1)
    assert need == pytest.approx(6.74e9 * 2 * 1.2 + 524_288 * 4096)


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("llama-2-7b", 524_288),  # 2 · 32 layers · 32 KV heads · 128 · 2 bytes (MHA)
        ("llama-2-70b", 327_680),  # GQA: 8 KV heads
        ("llama-3-70b", 327_680),  # 2 · 80 · 8 · 128 · 2
        ("llama-3.1-8b", 131_072),  # the kvplan readout quoted in the data README
        ("mistral-7b", 131_072),
        ("qwen2.5-7b", 57_344),  # 2 · 28 · 4 · 128 · 2
        ("deepseek-v3", 70_272),  # MLA: 61 layers · (512 + 64) latent · 2 bytes
    ],
)
def test_kv_cache_bytes_per_token(key, expected):
    m = model(key)
    assert sizing.kv_cache_bytes_per_token(m.layers, m.kv_elements_per_token_per_layer, "fp16") == expected


def test_fp8_kv_cache_halves_it():
    m = model("llama-3-70b")
    assert sizing.kv_cache_bytes_per_token(m.layers, m.kv_elements_per_token_per_layer, "fp8") == 163_840


def test_full_fine_tune_of_7b_with_mixed_precision_adam_is_16_to_18_bytes_per_param():
    assert sizing.training_bytes_per_param("bf16", high=False) == 16.0
    assert sizing.training_bytes_per_param("bf16", high=True) == 18.0
    states = sizing.training_memory_bytes(7.0, "bf16", "full") / (1 + sizing.TRAINING_ACTIVATION_OVERHEAD)
    assert states / 7e9 == pytest.approx(18.0)
    # the Ultra-Scale Playbook lower bound for a 405B model: 16 B/param = 6.48 TB
    assert 405e9 * sizing.training_bytes_per_param("bf16", high=False) == pytest.approx(6.48e12)


def test_lora_needs_far_less_than_full_fine_tuning():
    full = sizing.training_memory_bytes(6.74, "bf16", "full")
    lora = sizing.training_memory_bytes(6.74, "bf16", "lora")
    qlora = sizing.training_memory_bytes(6.74, "int4", "lora")
    assert lora == pytest.approx((6.74e9 * 2 + 6.74e9 * 0.01 * 18) * 1.2)
    assert qlora == pytest.approx((6.74e9 * 0.5 + 6.74e9 * 0.01 * 18) * 1.2)
    assert full / lora > 7


def test_training_compute_is_6nd_and_lora_4nd():
    assert sizing.training_flops(8.0, 1e12) == pytest.approx(6 * 8e9 * 1e12)
    assert sizing.training_flops(8.0, 1e12, "lora") == pytest.approx(4 * 8e9 * 1e12)


def test_accelerators_needed_and_tensor_parallel_degree():
    # Llama-3-70B fp16 at 16 sequences × 4096 tokens: 141.1·1.2 + 327,680·4096·16 bytes = 190.8 GB
    w = parse_request(
        {"workload": {"kind": "llm_inference", "model": "llama-3-70b", "precision": "fp16"}, "duration_hours": 1},
        now=NOW,
    ).workload
    assert w.memory_bytes == pytest.approx(70.55e9 * 2 * 1.2 + 327_680 * 4096 * 16)
    assert sizing.accelerators_needed(w.memory_bytes, 80) == 3  # 80 GB × 0.92 usable
    assert sizing.tensor_parallel_degree(3) == 4
    assert sizing.accelerators_needed(w.memory_bytes, 192) == 2
    assert sizing.tensor_parallel_degree(1) == 1 and sizing.tensor_parallel_degree(8) == 8


def test_moe_uses_total_params_for_memory_and_active_for_compute():
    w = parse_request(
        {"workload": {"kind": "llm_inference", "model": "deepseek-v3", "precision": "fp8"}, "duration_hours": 1},
        now=NOW,
    ).workload
    assert (w.params_b, w.active_params_b) == (671.0, 37.0)
    assert w.weights_bytes == pytest.approx(671e9)
