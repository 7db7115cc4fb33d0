"""Request parsing: the contract examples, and field-level errors for impossible or contradictory input."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from broker.engine.parse import parse_request
from broker.engine.request import RequestError
from tests.engine.helpers import A100, H100, NOW


def errors(doc) -> dict[str, list[str]]:
    with pytest.raises(RequestError) as exc:
        parse_request(doc, now=NOW)
    return exc.value.fields


def test_explicit_resources_example():
    r = parse_request(
        {"resources": {"accelerator": "H100", "count": 8}, "duration_hours": 10, "objective": "cost"}, now=NOW
    )
    assert r.kind == "resources"
    assert r.resources.accelerators == (H100,)
    assert r.resources.count == 8
    assert r.duration_hours == 10.0
    assert r.objective.weights == (("cost", 1.0),)


def test_inference_example():
    r = parse_request(
        {
            "workload": {
                "kind": "llm_inference",
                "model": "llama-3-70b",
                "precision": "fp16",
                "tokens_per_second": 2000,
            },
            "duration_hours": 24,
            "max_price_per_hour": 40,
            "objective": "cost",
        },
        now=NOW,
    )
    assert r.kind == "llm_inference"
    assert r.workload.model == "llama-3-70b"
    assert r.workload.tokens_per_second == 2000.0
    assert r.max_price_per_hour == Decimal("40")
    assert r.workload.kv_bytes_per_token == 327_680


def test_family_names_mean_any_of_and_lists_union():
    r = parse_request({"resources": {"accelerator": ["A100", "H100"]}, "duration_hours": 1}, now=NOW)
    assert r.resources.accelerators == (
        "NVIDIA A100-PCIE-40GB",
        "NVIDIA A100-PCIE-80GB",
        "NVIDIA A100-SXM4-40GB",
        A100,
        H100,
    )


def test_deadline_sets_duration_for_duration_kinds_and_a_time_limit_for_jobs():
    deadline = (NOW + timedelta(hours=6)).isoformat()
    r = parse_request({"resources": {"accelerator": "L4"}, "deadline": deadline}, now=NOW)
    assert r.duration_hours == pytest.approx(6.0)
    t = parse_request(
        {
            "workload": {"kind": "llm_training", "model": "llama-3-8b", "training_tokens": 1e9},
            "deadline": deadline,
            "duration_hours": 4,
        },
        now=NOW,
    )
    assert t.duration_hours is None and t.time_limit_hours == pytest.approx(4.0)


def test_hpc_node_hours_convert_at_the_reference_machine():
    r = parse_request(
        {"workload": {"kind": "hpc", "node_hours": 10, "reference_accelerator": "A100-80GB", "reference_count": 8}},
        now=NOW,
    )
    # A100 FP64 tensor peak 19.5 TFLOPS × 65 % × 8 GPUs × 36,000 s = 3,650.4 PFLOP
    assert r.workload.fp64_pflop == pytest.approx(19.5e12 * 0.65 * 8 * 36_000 / 1e15)


def test_explicit_weights_are_normalised():
    r = parse_request({"resources": {"count": 1}, "duration_hours": 1, "objective": {"cost": 3, "carbon": 1}}, now=NOW)
    assert r.objective.name == "explicit"
    assert r.objective.weights == (("cost", 0.75), ("carbon", 0.25))


@pytest.mark.parametrize(
    ("doc", "path", "fragment"),
    [
        (
            {"workload": {"kind": "llm_inference", "params_b": 0}, "duration_hours": 1},
            "workload.params_b",
            "greater than 0",
        ),
        (
            {
                "workload": {"kind": "llm_inference", "model": "llama-3-8b", "tokens_per_second": -5},
                "duration_hours": 1,
            },
            "workload.tokens_per_second",
            "must be positive",
        ),
        ({"resources": {"accelerator": "H100"}, "deadline": "2029-12-31T00:00:00Z"}, "deadline", "in the past"),
        (
            {"workload": {"kind": "llm_inference", "params_b": 1_000_000}, "duration_hours": 1},
            "workload.params_b",
            "more than the largest possible configuration",
        ),
        (
            {
                "workload": {"kind": "llm_inference", "model": "llama-3.1-405b"},
                "resources": {"accelerator": "L4", "count": 1},
                "duration_hours": 1,
            },
            "workload.model",
            "more than the largest possible configuration",
        ),
        ({"resources": {"accelerator": "H1OO"}, "duration_hours": 1}, "resources.accelerator", "unknown accelerator"),
        ({"resources": {"accelerator": "H100"}}, "duration_hours", "required"),
        (
            {
                "resources": {"accelerator": "H100"},
                "duration_hours": 1,
                "regions_allowed": ["a"],
                "regions_excluded": ["a"],
            },
            "regions_excluded",
            "also in regions_allowed",
        ),
        (
            {"resources": {"count": 1}, "duration_hours": 10, "deadline": "2030-01-01T13:00:00Z"},
            "duration_hours",
            "ends after the deadline",
        ),
        ({"resources": {"count": 1}, "duration_hours": 1, "colour": "red"}, "colour", "unknown field"),
        ({"workload": {"kind": "llm_training", "model": "llama-3-8b"}}, "workload.training_tokens", "required"),
        ({"workload": {"kind": "quantum"}}, "workload.kind", "must be one of"),
        (
            {"workload": {"kind": "llm_inference", "model": "gpt-99"}, "duration_hours": 1},
            "workload.model",
            "unknown model",
        ),
        ({"resources": {"count": 1}, "duration_hours": 1, "objective": "cheapest"}, "objective", "must be one of"),
        (
            {"resources": {"count": 1}, "duration_hours": 1, "max_price_per_hour": "-3"},
            "max_price_per_hour",
            "greater than 0",
        ),
        (
            {"resources": {"count": 1}, "duration_hours": 1, "min_provider_reliability": 1.5},
            "min_provider_reliability",
            "at most 1",
        ),
        ({"workload": {"kind": "hpc"}}, "workload.fp64_pflop", "exactly one"),
    ],
)
def test_bad_requests_name_the_field(doc, path, fragment):
    fields = errors(doc)
    assert path in fields, fields
    assert any(fragment in m for m in fields[path]), fields[path]


def test_unknown_accelerator_suggests_names():
    fields = errors({"resources": {"accelerator": "L40X"}, "duration_hours": 1})
    assert fields == {"resources.accelerator": ["unknown accelerator 'L40X'; did you mean NVIDIA L40S, NVIDIA L4?"]}


def test_every_bad_field_is_reported_at_once():
    fields = errors(
        {
            "workload": {"kind": "llm_inference", "model": "llama-3-8b", "tokens_per_second": -1},
            "duration_hours": 0,
            "top_k": 500,
        }
    )
    assert set(fields) == {"workload.tokens_per_second", "duration_hours", "top_k"}
