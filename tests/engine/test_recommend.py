"""Engine behaviour on hand-built snapshots, with exact expected values."""

from __future__ import annotations

import math
from decimal import Decimal

from broker.engine import OfferSnapshot, parse_request, recommend
from tests.engine.helpers import A100, H100, L40S, NOW, offer


def run(rows, doc):
    return recommend(OfferSnapshot.from_rows(rows), parse_request(doc, now=NOW), now=NOW)


def test_explicit_h100x8_cheapest_total_with_exclusions_explained():
    rows = [
        offer(1, H100, 8, "24.00"),
        offer(2, H100, 8, "21.40"),
        offer(3, A100, 8, "14.32"),
        offer(4, H100, 4, "9.00"),
        offer(5, H100, 8, "27.00", region="cn-east", country="CN"),
    ]
    answer = run(
        rows,
        {
            "resources": {"accelerator": "H100", "count": 8},
            "duration_hours": 10,
            "objective": "cost",
            "max_price_per_hour": 20,
            "countries_excluded": ["CN"],
        },
    )
    assert answer.recommendations == ()
    ex = answer.excluded
    assert (ex.considered, ex.feasible, ex.excluded) == (5, 0, 5)
    assert {(r.code, r.side, r.count) for r in ex.by_reason} == {
        ("accelerator", "workload", 1),
        ("accelerator_count", "workload", 1),
        ("country", "workload", 1),
        ("max_price_per_hour", "workload", 3),
    }
    assert [(n.offer_id, n.reason, n.gap) for n in ex.near_misses] == [
        (4, "accelerator_count", "4 per node, 8 requested"),
        (3, "accelerator", "A100-SXM4-80GB not in H100-SXM5-80GB"),
        (2, "max_price_per_hour", "+$1.40/h over max_price_per_hour"),
        (1, "max_price_per_hour", "+$4.00/h over max_price_per_hour"),
    ]
    assert [
        (r.constraint, r.adds, r.change, r.cheapest_offer_id, r.cheapest_total_usd) for r in answer.relaxations
    ] == [
        ("max_price_per_hour", 2, "raise max_price_per_hour to $21.40", 2, Decimal("214.00")),
        ("accelerator_count", 1, "accept 4 accelerators per node", 4, Decimal("90.00")),
        ("accelerator", 1, "also allow NVIDIA A100-SXM4-80GB", 3, Decimal("143.20")),
    ]
    relaxed = run(
        rows,
        {
            "resources": {"accelerator": "H100", "count": 8},
            "duration_hours": 10,
            "objective": "cost",
            "max_price_per_hour": "21.40",
            "countries_excluded": ["CN"],
        },
    )
    top = relaxed.recommendations[0]
    assert (top.offer_id, top.price_per_hour, top.est_total_usd, top.nodes) == (
        2,
        Decimal("21.4"),
        Decimal("214.00"),
        1,
    )
    assert top.to_json()["est_total_usd"] == "214.00" and top.to_json()["price_per_hour"] == "21.40"


def test_memory_gap_text():
    answer = run(
        [offer(1, "NVIDIA A100-SXM4-40GB", 8, "10")], {"resources": {"min_memory_gb": 80}, "duration_hours": 1}
    )
    assert answer.excluded.near_misses[0].gap == "40 GB < 80 GB needed"
    assert answer.relaxations[0].change == "accept 40 GB accelerators"


def test_per_hour_cheapest_is_not_the_cheapest_job():
    # Llama-3-8B on 10B tokens: 6·N·D = 4.818e20 FLOP. Measured training throughput: A100 150, H100 400 TFLOPS/GPU.
    rows = [offer(1, A100, 8, "10.00"), offer(2, H100, 8, "16.00")]
    answer = run(
        rows,
        {"workload": {"kind": "llm_training", "model": "llama-3-8b", "training_tokens": 1e10}, "objective": "cost"},
    )
    h100_hours = 4.818e20 / (8 * 400e12) / 3600
    a100_hours = 4.818e20 / (8 * 150e12) / 3600
    first, second = answer.recommendations
    assert first.offer_id == 2 and second.offer_id == 1
    assert math.isclose(first.est_hours, h100_hours) and math.isclose(second.est_hours, a100_hours)
    assert first.est_total_usd == Decimal("669.17")  # 16 × 41.822917 h
    assert second.est_total_usd == Decimal("1115.28")  # 10 × 111.527778 h
    assert first.confidence == "high"
    assert first.why == "lowest estimated total: $669.17 for 41.8 h on 1× node of NVIDIA H100-SXM5-80GB"


def test_multi_node_training_time_uses_every_node_and_cost_uses_one():
    rows = [offer(1, H100, 8, "20", inter_node="infiniband", nodes=4)]
    doc = {"workload": {"kind": "llm_training", "model": "llama-3-8b", "training_tokens": 1e10}}
    base = 4.818e20 / (8 * 400e12) / 3600
    cheap = run(rows, {**doc, "objective": "cost"}).recommendations[0]
    fast = run(rows, {**doc, "objective": "time"}).recommendations[0]
    assert cheap.nodes == 1 and math.isclose(cheap.est_hours, base)
    assert fast.nodes == 4 and math.isclose(fast.est_hours, base * (1 + 0.05 * 2) / 4)
    assert fast.price_per_hour == Decimal("80")
    assert fast.est_total_usd > cheap.est_total_usd  # scaling losses make more nodes a little dearer
    # a deadline forces more nodes even under cost: 2 nodes need base·1.05/2 h
    limited = run(rows, {**doc, "objective": "cost", "duration_hours": base * 0.6}).recommendations[0]
    assert limited.nodes == 2 and math.isclose(limited.est_hours, base * 1.05 / 2)
    # without a fabric the same offer cannot meet that deadline
    none = run([offer(1, H100, 8, "20", nodes=4)], {**doc, "objective": "cost", "duration_hours": base * 0.6})
    assert none.recommendations == ()
    assert none.excluded.near_misses[0].gap == f"needs 2 nodes to finish within {base * 0.6:.1f} h; 1 usable"


def test_interruptible_adds_expected_rework_and_follows_both_sides_policies():
    rows = [offer(1, H100, 8, "20", interruptible="8")]
    doc = {"workload": {"kind": "llm_training", "model": "llama-3-8b", "training_tokens": 1e10}, "objective": "cost"}
    base = 4.818e20 / (8 * 400e12) / 3600
    on_demand = run(rows, doc).recommendations[0]
    assert not on_demand.interruptible
    spot = run(rows, {**doc, "interruptible_allowed": True}).recommendations[0]
    assert spot.interruptible and spot.node_price_per_hour == Decimal("8")
    assert math.isclose(spot.est_hours, base * 1.015)  # 2 %/node-hour × (0.5 h lost + 0.25 h restart)
    assert spot.est_total_usd == (Decimal("8") * Decimal(f"{base * 1.015:.6f}")).quantize(Decimal("0.01"))
    refused = run(
        [offer(1, H100, 8, "20", interruptible="8", provider_interruptible=False)],
        {**doc, "interruptible_allowed": True},
    ).recommendations[0]
    assert not refused.interruptible


def test_inference_example_sizes_tensor_parallel_and_replicas():
    rows = [
        offer(1, H100, 8, "24"),
        offer(2, L40S, 1, "1.10", nodes=10),
        offer(3, L40S, 8, "9.00"),
        offer(4, H100, 8, "45"),
    ]
    answer = run(
        rows,
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
    )
    # 190.8 GB per replica: 3 × 80 GB → TP 4 on H100 (2 replicas per node); 5 × 48 GB → TP 8 on L40S
    assert answer.workload["memory_needed_gb"] == 190.795
    by_id = {r.offer_id: r for r in answer.recommendations}
    assert set(by_id) == {1, 3}
    h100_tps = 3065.61 * 68.98 / 70.55 * 0.5  # MLPerf Llama2-70B FP8 per GPU, scaled to 70.55B and fp16
    assert math.isclose(by_id[1].est_tokens_per_second, h100_tps * 8)
    assert by_id[1].confidence == "medium"
    assert by_id[3].confidence == "low"
    gaps = {n.offer_id: (n.reason, n.gap) for n in answer.excluded.near_misses}
    assert gaps[2] == ("inter_node", "needs 8 nodes; offer has no inter-node fabric")
    assert gaps[4] == ("max_price_per_hour", "+$5.00/h over max_price_per_hour")


def test_throughput_target_adds_replicas_on_more_nodes():
    rows = [offer(1, H100, 8, "24", nodes=4)]
    doc = {
        "workload": {"kind": "llm_inference", "model": "llama-3-8b", "precision": "fp16", "tokens_per_second": 150_000},
        "duration_hours": 1,
    }
    top = run(rows, doc).recommendations[0]
    per_gpu = 3065.61 * 68.98 / 8.03 * 0.5
    assert top.nodes == math.ceil(150_000 / (per_gpu * 8))
    assert top.nodes == 2 and top.price_per_hour == Decimal("48")


def test_carbon_objective_prefers_clean_grids_and_reports_kg():
    rows = [
        offer(1, H100, 8, "20", region="virginia", ci=323.05, pue=1.15),
        offer(2, H100, 8, "26", region="sweden", country="SE", ci=40.0, pue=1.1),
    ]
    doc = {"resources": {"accelerator": "H100", "count": 8}, "duration_hours": 10}
    assert run(rows, {**doc, "objective": "cost"}).recommendations[0].offer_id == 1
    green = run(rows, {**doc, "objective": "carbon"}).recommendations
    assert green[0].offer_id == 2
    # 700 W × 8 × 10 h × 0.7 utilisation × PUE 1.1 = 43.12 kWh; × 40 g/kWh = 1.7248 kg
    assert math.isclose(green[0].est_kwh, 43.12) and math.isclose(green[0].est_kg_co2e, 1.7248)
    assert green[0].pareto and green[1].pareto  # cheaper vs cleaner: neither dominates


def test_dominated_offers_are_not_pareto_and_ties_break_by_offer_id():
    rows = [offer(7, H100, 8, "20"), offer(3, H100, 8, "20"), offer(5, H100, 8, "30")]
    answer = run(rows, {"resources": {"accelerator": "H100"}, "duration_hours": 2, "objective": "balanced"})
    assert [r.offer_id for r in answer.recommendations] == [3, 7, 5]
    assert [r.pareto for r in answer.recommendations] == [True, True, False]


def test_provider_policies_reject_with_provider_side():
    rows = [
        offer(1, H100, 8, "20", kinds=("llm_inference",)),
        offer(2, H100, 8, "20", provider_id=2, provider_min_rental="24"),
    ]
    answer = run(rows, {"resources": {"accelerator": "H100"}, "duration_hours": 10})
    assert answer.recommendations == ()
    assert {(r.code, r.side, r.relaxable) for r in answer.excluded.by_reason} == {
        ("provider_workload_kind", "provider", False),
        ("provider_min_rental", "provider", True),
    }
    gaps = {n.offer_id: n.gap for n in answer.excluded.near_misses}
    assert gaps == {1: "provider does not accept resources", 2: "24 h minimum rental > 10 h requested"}
    assert [r.change for r in answer.relaxations] == ["rent for 24 h"]


def test_minimum_rental_is_a_billing_floor_for_jobs():
    answer = run(
        [offer(1, H100, 8, "20", min_rental="100")],
        {"workload": {"kind": "llm_training", "model": "llama-3-8b", "training_tokens": 1e10}},
    )
    top = answer.recommendations[0]
    assert top.billed_hours == 100.0 and top.est_total_usd == Decimal("2000.00")


def test_patch_equals_rebuild():
    rows = [offer(i, H100 if i % 2 else A100, 8, f"{10 + i}.5") for i in range(1, 9)]
    snap = OfferSnapshot.from_rows(rows)
    upserts = [offer(3, H100, 8, "5.25"), offer(20, L40S, 1, "0.9", provider_id=9, region="eu", country="DE")]
    patched = snap.patch(upserts=upserts, removals=[1, 2])
    rebuilt = OfferSnapshot.from_rows([r for r in rows if r.offer_id not in (1, 2, 3)] + upserts)
    assert sorted(patched.offer_id.tolist()) == sorted(rebuilt.offer_id.tolist()) == [3, 4, 5, 6, 7, 8, 20]
    request = parse_request({"resources": {}, "duration_hours": 3, "objective": "cost", "top_k": 10}, now=NOW)
    a = recommend(patched, request, now=NOW).to_json()
    b = recommend(rebuilt, request, now=NOW).to_json()
    assert a == b
    assert a["recommendations"][0]["offer_id"] == 20 and a["recommendations"][1]["offer_id"] == 3
    assert len(snap) == 8  # the original is unchanged


def test_answer_json_shape():
    answer = run([offer(1, H100, 8, "20.1234")], {"resources": {"accelerator": "H100"}, "duration_hours": 1.5})
    doc = answer.to_json()
    rec = doc["recommendations"][0]
    assert rec["price_per_hour"] == "20.1234" and rec["est_total_usd"] == "30.19"
    assert set(doc) >= {"recommendations", "excluded", "relaxations"}
    assert set(doc["excluded"]) >= {"considered", "by_reason", "near_misses"}
    assert set(rec) >= {
        "offer_id",
        "provider",
        "accelerator",
        "count",
        "nodes",
        "region",
        "price_per_hour",
        "est_hours",
        "est_total_usd",
        "est_kg_co2e",
        "score",
        "score_breakdown",
        "why",
    }
