"""The portal's own logic without a browser: token amounts, engine-error mapping, relaxation patches, chart points,
CSV reading and checking, empty-search analysis, sign-up and policy services, dashboard buckets."""

from __future__ import annotations

from decimal import Decimal

import pytest

from marketplace.portal.recommend_form import RecommendForm, parse_tokens
from marketplace.portal.recommendations import chart_data, histogram, relaxation_patch


# ------------------------------------------------------------------------------------------ the form
@pytest.mark.parametrize(("text", "value"), [("100M", 1e8), ("20B", 2e10), ("1.5T", 1.5e12), ("5000", 5000.0),
                                             ("2 k", 2000.0), ("3g", 3e9)])
def test_parse_tokens(text, value):
    assert parse_tokens(text) == value


@pytest.mark.parametrize("text", ["", "M", "1.2.3B", "-5M", "10X", "1e9"])
def test_parse_tokens_refuses(text):
    with pytest.raises(ValueError):
        parse_tokens(text)


def test_serving_form_document_and_engine_errors_beside_fields():
    form = RecommendForm({**RecommendForm.initial_data("serve"), "max_price_per_hour": "12.5",
                          "countries_allowed": "US, FI", "interruptible_allowed": "on"}, template="serve")
    assert form.is_valid(), form.errors
    assert form.document() == {
        "workload": {"kind": "llm_inference", "model": "llama-3.1-70b", "precision": "fp16", "context_length": 4096,
                     "concurrent_sequences": 16},
        "duration_hours": 24.0, "objective": "cost", "max_price_per_hour": "12.5", "countries_allowed": ["US", "FI"],
        "interruptible_allowed": True, "top_k": 20}
    form.add_engine_errors({"workload.context_length": ["too long"], "regions_excluded": ["bad"]})
    assert form.errors["context_length"] == ["too long"]
    assert form.non_field_errors() == ["regions_excluded: bad"]


def test_job_templates_send_the_deadline_as_duration_and_map_its_errors_back():
    data = {**RecommendForm.initial_data("finetune"), "finish_within_hours": "6"}
    form = RecommendForm(data, template="finetune")
    assert form.is_valid(), form.errors
    doc = form.document()
    assert doc["workload"] == {"kind": "fine_tuning", "model": "llama-3.1-8b", "precision": "bf16",
                               "training_tokens": 1e8, "method": "lora"}
    assert doc["duration_hours"] == 6.0
    form.add_engine_errors({"duration_hours": ["too short"]})
    assert form.errors["finish_within_hours"] == ["too short"]


def test_train_template_needs_a_model_or_a_size():
    form = RecommendForm({**RecommendForm.initial_data("train"), "model": ""}, template="train")
    assert not form.is_valid()
    assert form.errors["params_b"] == ["Choose a model or give a size."]
    form = RecommendForm({**RecommendForm.initial_data("train"), "model": "", "params_b": "13"}, template="train")
    assert form.is_valid(), form.errors
    assert form.document()["workload"]["params_b"] == 13.0 and "model" not in form.document()["workload"]


def test_bad_token_amount_is_a_field_error():
    form = RecommendForm({**RecommendForm.initial_data("train"), "training_tokens": "lots"}, template="train")
    assert not form.is_valid()
    assert form.errors["training_tokens"] == ["Enter a number with an optional K, M, B or T suffix, e.g. 20B."]


def test_gpus_template_lists_accelerators():
    form = RecommendForm({**RecommendForm.initial_data("gpus"), "accelerator": "H100, MI300X",
                          "interconnect": "nvlink"}, template="gpus")
    assert form.is_valid(), form.errors
    assert form.document()["resources"] == {"accelerator": ["H100", "MI300X"], "count": 8, "nodes": 1,
                                            "interconnect": "nvlink"}


# ------------------------------------------------------------------------------------- relaxations
def _valid(template: str, **extra) -> RecommendForm:
    form = RecommendForm({**RecommendForm.initial_data(template), **extra}, template=template)
    assert form.is_valid(), form.errors
    return form


def _relax(code: str, change: str, offer_id: int | None = 7) -> dict:
    return {"constraint": code, "change": change, "cheapest_offer_id": offer_id}


def test_price_relaxation_uses_the_near_miss_exact_price():
    miss = {"offer_id": 7, "reason": "max_price_per_hour", "price_per_hour": "8.2755"}
    answer = {"excluded": {"near_misses": [miss]}}
    patch = relaxation_patch(_relax("max_price_per_hour", "raise max_price_per_hour to $8.28"),
                             _valid("serve", max_price_per_hour="3"), answer)
    assert (patch.field, patch.value, patch.text) == ("max_price_per_hour", "8.2755", "max. price per hour $8.28")


def test_money_relaxations_round_up_a_cent_without_an_exact_figure():
    form = _valid("serve", max_price_per_hour="3", max_total_usd="50")
    patch = relaxation_patch(_relax("max_price_per_hour", "raise max_price_per_hour to $1,208.28"), form, {})
    assert (patch.field, patch.value) == ("max_price_per_hour", "1208.29")
    patch = relaxation_patch(_relax("max_total_usd", "raise max_total_usd to $198.72"), form, {})
    assert (patch.field, patch.value, patch.text) == ("max_total_usd", "198.73", "budget $198.73")


def test_list_relaxations_append_and_others_set_the_field():
    form = _valid("gpus", accelerator="H100", regions_allowed="us-east", countries_allowed="US",
                  interconnect="nvlink", min_memory_gb="80")
    assert relaxation_patch(_relax("region", "allow region eu-finland"), form, {}).value == "us-east, eu-finland"
    assert relaxation_patch(_relax("country", "allow country FI"), form, {}).value == "US, FI"
    assert relaxation_patch(_relax("accelerator", "also allow NVIDIA H200-SXM-141GB"), form, {}).value == \
        "H100, NVIDIA H200-SXM-141GB"
    assert relaxation_patch(_relax("accelerator_count", "accept 4 accelerators per node"), form, {}).value == "4"
    assert relaxation_patch(_relax("accelerator_memory", "accept 48 GB accelerators"), form, {}).value == "48"
    assert relaxation_patch(_relax("interconnect", "allow pcie interconnect"), form, {}).value == ""
    assert relaxation_patch(_relax("provider_min_rental", "rent for 2 h"), form, {}).value == "2"
    assert relaxation_patch(_relax("inter_node", "allow none between nodes"), form, {}) is None
    assert relaxation_patch(_relax("software_stack", "allow the rocm stack"), form, {}) is None


def test_deadline_relaxation_adds_a_tenth_of_an_hour():
    form = _valid("train", finish_within_hours="10")
    patch = relaxation_patch(_relax("deadline", "allow 31.4 h (now 10.0 h)"), form, {})
    assert (patch.field, patch.value) == ("finish_within_hours", "31.5")


def test_region_relaxation_without_an_allow_list_is_not_a_form_change():
    assert relaxation_patch(_relax("region", "allow region eu-finland"), _valid("serve"), {}) is None


@pytest.mark.django_db
def test_reliability_relaxation_reads_the_providers_exact_score(make_provider, make_offer):
    provider = make_provider("Shaky", reliability_score=Decimal("0.845"))
    offer = make_offer(provider)
    form = _valid("serve", min_provider_reliability="0.9")
    patch = relaxation_patch(_relax("min_provider_reliability", "lower min_provider_reliability to 0.84", offer.pk),
                             form, {})
    assert (patch.field, patch.value) == ("min_provider_reliability", "0.845")
    patch = relaxation_patch(_relax("min_provider_reliability", "accept providers without a reliability record"),
                             form, {})
    assert (patch.field, patch.value) == ("min_provider_reliability", "")


# ------------------------------------------------------------------------------------------ charts
def _rec(rank: int, **kw) -> dict:
    base = {"rank": rank, "est_hours": 24.0, "est_total_usd": "90.48", "est_kg_co2e": 1.5, "pareto": False,
            "nodes": 1, "count": 8, "accelerator": "NVIDIA RTX A6000", "provider": "P", "est_tokens_per_second": 2753.1}
    return {**base, **kw}


def test_serving_chart_plots_cost_against_throughput():
    data = chart_data({"kind": "llm_inference", "recommendations": [_rec(1, pareto=True), _rec(2, est_kg_co2e=None)]})
    assert data["x_label"] == "Throughput of the configuration (tokens/s)"
    assert data["points"][0] == {"rank": 1, "x": 2753.1, "y": 90.48, "x_text": "2,753 tokens/s", "carbon": 1.5,
                                 "pareto": True, "label": "1× 8× RTX A6000 · P"}
    assert data["points"][1]["carbon"] is None


def test_job_chart_plots_cost_against_runtime():
    rec = _rec(1, est_hours=31.25, est_tokens_per_second=None)
    data = chart_data({"kind": "llm_training", "recommendations": [rec]})
    assert data["x_label"] == "Estimated runtime (hours)"
    assert (data["points"][0]["x"], data["points"][0]["x_text"]) == (31.25, "31.2 h")


def test_histogram_most_common_first_with_relative_widths():
    rows = histogram({"excluded": {"by_reason": [{"code": "a", "count": 10}, {"code": "b", "count": 40},
                                                  {"code": "c", "count": 1}]}})
    assert [(r["code"], r["width"]) for r in rows] == [("b", 100), ("a", 25), ("c", 2)]
