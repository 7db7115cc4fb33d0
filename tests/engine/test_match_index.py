"""The indexed match() (rows grouped by node type, counts from per-table totals) against the row-by-row reference."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings

from broker.engine import matching
from broker.engine.filters import FILTERS, count_by_reason, single_failure
from broker.engine.matching import Context, cost_pool, full_bits, match
from broker.engine.parse import parse_request
from broker.engine.plan import plan_node_types
from broker.engine.recommend import recommend
from broker.engine.snapshot import OfferSnapshot
from broker.engine.specs import default_specs
from tests.engine.helpers import H100, NOW, offer
from tests.engine.test_properties import offers, requests


def check_match(snap: OfferSnapshot, request) -> None:
    plan = plan_node_types(default_specs(), request, snap.node_types)
    m = match(Context(snap, plan, request))
    ref = full_bits(Context(snap, plan, request))
    assert np.array_equal(np.sort(m.feasible), np.flatnonzero(ref == 0))
    near = np.flatnonzero(single_failure(ref))
    order = np.argsort(m.near)
    assert np.array_equal(m.near[order], near)
    assert np.array_equal(m.near_bits[order], ref[near])
    counted = {f.code: int(m.counts[i]) for i, f in enumerate(FILTERS) if m.counts[i]}
    assert counted == count_by_reason(ref, m.active)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(offers(), requests())
def test_indexed_match_equals_row_by_row_reference(rows, doc):
    request = parse_request(doc, now=NOW)
    snap = OfferSnapshot.from_rows(rows)
    check_match(snap, request)
    check_match(snap.in_node_type_order, request)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(offers(), requests())
def test_cost_pool_keeps_the_answer(rows, doc):
    """Expanding every feasible row, or only the pool cost_pool() keeps, ranks the same offers."""
    request = parse_request(doc, now=NOW)
    snap = OfferSnapshot.from_rows(rows)
    pool_min, matching.POOL_MIN = matching.POOL_MIN, 0
    try:
        pooled = recommend(snap, request, now=NOW).to_json()
        ordered = snap.in_node_type_order
        plan = plan_node_types(default_specs(), request, ordered.node_types)
        ctx = Context(ordered, plan, request)
        feasible = match(ctx).feasible
        kept = cost_pool(ctx, feasible, request.top_k)
        assert set(kept.tolist()) <= set(feasible.tolist())
    finally:
        matching.POOL_MIN = pool_min
    assert recommend(snap, request, now=NOW).to_json() == pooled


def test_cost_pool_keeps_each_node_types_k_cheapest_and_price_ties():
    # one node type, prices out of row order, top 2 with a tie on the 2nd price: the 2 cheapest and the tied one
    prices = ["9", "1", "5", "3", "3", "7"]
    rows = [offer(200 - i, H100, 8, p) for i, p in enumerate(prices)]
    doc = {"resources": {"accelerator": "H100", "count": 8}, "duration_hours": 2, "top_k": 2}
    request = parse_request(doc, now=NOW)
    ordered = OfferSnapshot.from_rows(rows).in_node_type_order
    ctx = Context(ordered, plan_node_types(default_specs(), request, ordered.node_types), request)
    pool_min, matching.POOL_MIN = matching.POOL_MIN, 0
    try:
        kept = cost_pool(ctx, match(ctx).feasible, request.top_k)
        answer = recommend(ordered, request, now=NOW)
    finally:
        matching.POOL_MIN = pool_min
    assert sorted(int(ordered.offer_id[r]) for r in kept) == [196, 197, 199]
    assert [r.offer_id for r in answer.recommendations] == [199, 196]
