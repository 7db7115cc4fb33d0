"""Property tests: the engine against a brute force over every offer, node count and price variant.

The brute force shares only the workload model with the engine (nodes needed, one-node runtime and whether a
multi-node setup needs a fabric, per node type, from `plan_node_types`); every constraint, the node-count search,
the interruptible rework and the cost formula are re-derived here, one configuration at a time, in plain Python.
"""

from __future__ import annotations

import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broker.engine.filters import BIT, codes_of
from broker.engine.matching import Context, match
from broker.engine.parse import parse_request
from broker.engine.plan import plan_node_types
from broker.engine.recommend import recommend
from broker.engine.snapshot import OfferSnapshot
from broker.engine.specs import default_specs
from tests.engine.helpers import A100, GAUDI2, H100, L4, L40S, MI300X, MLU590, NOW, offer

ACCELERATORS = (H100, A100, L40S, L4, MI300X, GAUDI2, MLU590)
REGIONS = (
    ("us-east", "US", 320.0, 1.15),
    ("se-north", "SE", 40.0, None),
    ("cn-east", "CN", 550.0, 1.3),
    ("nowhere", "", None, None),
)
PROVIDERS = st.tuples(
    st.sampled_from([None, 0.8, 0.95, 0.99]),
    st.sampled_from(["0", "1", "8"]),
    st.sampled_from([(), (), (), ("llm_inference",), ("llm_training", "fine_tuning", "hpc"), ("resources", "batch")]),
    st.booleans(),
)
LOSS = {"infiniband": 0.05, "roce": 0.05, "ethernet": 0.15}


@st.composite
def offers(draw):
    providers = draw(st.lists(PROVIDERS, min_size=1, max_size=3))
    n = draw(st.integers(1, 10))
    rows = []
    for i in range(n):
        p = draw(st.integers(0, len(providers) - 1))
        rel, pmr, kinds, pint = providers[p]
        acc = draw(st.sampled_from(ACCELERATORS))
        region, country, ci, pue = draw(st.sampled_from(REGIONS))
        cents = draw(st.integers(10, 6000))
        spot = draw(st.one_of(st.none(), st.integers(5, 8000)))
        rows.append(
            offer(
                100 + i,
                acc,
                draw(st.sampled_from([1, 2, 4, 8])),
                f"{cents / 100:.2f}",
                provider_id=p + 1,
                reliability=rel,
                provider_min_rental=pmr,
                kinds=kinds,
                provider_interruptible=pint,
                inter_node=draw(st.sampled_from(["none", "ethernet", "infiniband"])),
                region=region,
                country=country,
                ci=ci,
                pue=pue,
                interruptible=None if spot is None else f"{spot / 100:.2f}",
                nodes=draw(st.integers(1, 6)),
                min_rental=draw(st.sampled_from(["0", "0", "2", "30"])),
                vcpus=draw(st.sampled_from([8, 64])),
                memory_gb=draw(st.sampled_from([None, None, 40.0])),
            )
        )
    return rows


@st.composite
def requests(draw):
    kind = draw(st.sampled_from(["resources", "llm_inference", "llm_training", "fine_tuning", "hpc"]))
    doc: dict = {"objective": "cost"}
    if kind == "resources":
        doc["resources"] = {
            k: v
            for k, v in {
                "accelerator": draw(st.sampled_from([None, "H100", ["A100-80GB", "L40S"], "L4"])),
                "count": draw(st.sampled_from([None, 1, 8])),
                "nodes": draw(st.sampled_from([None, None, 2])),
                "min_memory_gb": draw(st.sampled_from([None, 48, 80])),
                "vcpus": draw(st.sampled_from([None, 32])),
            }.items()
            if v is not None
        }
    elif kind == "llm_inference":
        doc["workload"] = {
            "kind": kind,
            "model": draw(st.sampled_from(["llama-3-8b", "llama-3-70b", "mixtral-8x7b"])),
            "precision": draw(st.sampled_from(["fp16", "fp8", "int4"])),
        }
        if draw(st.booleans()):
            doc["workload"]["tokens_per_second"] = draw(st.integers(100, 30000))
    elif kind in ("llm_training", "fine_tuning"):
        doc["workload"] = {
            "kind": kind,
            "model": draw(st.sampled_from(["llama-3-8b", "mistral-7b", "llama-3-70b"])),
            "training_tokens": draw(st.sampled_from([1e8, 1e9, 2e10])),
        }
        if kind == "fine_tuning":
            doc["workload"]["method"] = draw(st.sampled_from(["full", "lora"]))
    else:
        doc["workload"] = {"kind": "hpc", "fp64_pflop": draw(st.sampled_from([100, 5000, 50000]))}
    if kind in ("resources", "llm_inference"):
        doc["duration_hours"] = draw(st.sampled_from([1, 10, 48]))
    elif draw(st.booleans()):
        doc["duration_hours"] = draw(st.sampled_from([24, 200, 2000]))  # a time limit for jobs
    for key, values in (
        ("max_price_per_hour", [None, None, 5, 30, 200]),
        ("max_total_usd", [None, None, 50, 2000, 100000]),
        ("min_provider_reliability", [None, None, None, 0.9]),
        ("software_stack", [None, None, None, "cuda"]),
        ("regions_excluded", [None, None, ["cn-east"]]),
        ("countries_allowed", [None, None, None, ["US", "SE"]]),
    ):
        value = draw(st.sampled_from(values))
        if value is not None:
            doc[key] = value
    doc["interruptible_allowed"] = draw(st.booleans())
    doc["top_k"] = 10
    return doc


class World:
    """Brute-force evaluation of one (offers, request) pair."""

    def __init__(self, rows, doc):
        self.rows, self.doc = rows, doc
        self.request = parse_request(doc, now=NOW)
        self.snap = OfferSnapshot.from_rows(rows)
        self.plan = plan_node_types(default_specs(), self.request, self.snap.node_types)
        self.ctx = Context(self.snap, self.plan, self.request)

    def nt(self, i: int) -> int:
        return int(self.snap.node_type[i])

    def needs_fabric(self, i: int) -> bool:
        r, nt = self.request, self.nt(i)
        spans = r.kind == "llm_inference" and self.plan.per_replica[nt] > self.rows[i].count
        return r.is_job or bool(r.resources.nodes) or bool(spans)

    def static_failures(self, i: int) -> set[str]:
        """Constraints that do not depend on the node count, checked on the OfferRow itself."""
        o, r, res = self.rows[i], self.request, self.request.resources
        out = set()
        if res.accelerators and o.accelerator not in res.accelerators:
            out.add("accelerator")
        if res.count is not None and o.count != res.count:
            out.add("accelerator_count")
        if res.min_memory_gb is not None and o.memory_gb < res.min_memory_gb:
            out.add("accelerator_memory")
        if r.software_stack and o.stack_family not in r.software_stack:
            out.add("software_stack")
        if res.vcpus and o.vcpus < res.vcpus:
            out.add("vcpus")
        if r.regions_excluded and o.region_key in r.regions_excluded:
            out.add("region")
        if r.countries_allowed and o.country not in r.countries_allowed:
            out.add("country")
        if r.min_provider_reliability is not None and not (
            o.provider_reliability is not None and o.provider_reliability >= r.min_provider_reliability
        ):
            out.add("min_provider_reliability")
        if o.provider_allowed_kinds and r.kind not in o.provider_allowed_kinds:
            out.add("provider_workload_kind")
        mr = max(float(o.min_rental_hours), float(o.provider_min_rental_hours))
        if not r.is_job and r.duration_hours < mr:
            out.add("provider_min_rental")
        model_bits = int(self.plan.bits[self.nt(i)]) & int(BIT["unsupported_workload"] | BIT["accelerator_memory"])
        out |= set(codes_of(model_bits)) - ({"accelerator_memory"} if r.workload is None else set())
        return out

    def hours(self, i: int, n: int) -> float:
        if not self.request.is_job:
            return float(self.request.duration_hours)
        # without a fabric only n = 1 is usable; larger n are priced as if on InfiniBand (the engine's convention
        # for saying how many nodes a deadline would take)
        loss = LOSS.get(self.rows[i].inter_node, LOSS["infiniband"]) if n > 1 else 0.0
        return float(self.plan.base_hours[self.nt(i)]) / (n / (1 + loss * math.log2(n)))

    def configs(self, i: int):
        """Every (nodes, interruptible, price/h, cost) that meets every constraint."""
        o, r = self.rows[i], self.request
        if self.static_failures(i):
            return
        if r.resources.inter_node and o.inter_node not in r.resources.inter_node:
            return
        mr = max(float(o.min_rental_hours), float(o.provider_min_rental_hours))
        variants = [(False, float(o.price_per_hour))]
        if r.interruptible_allowed and o.provider_interruptible_allowed and o.interruptible_price_per_hour is not None:
            variants.append((True, float(o.interruptible_price_per_hour)))
        for n in range(1, o.nodes_available + 1):
            if n < self.plan.n_need[self.nt(i)]:
                continue
            if n > 1 and self.needs_fabric(i) and o.inter_node == "none":
                continue
            hours = self.hours(i, n)
            if r.is_job and r.time_limit_hours and hours > r.time_limit_hours * (1 + 1e-12):
                continue
            for spot, price in variants:
                rework = 1 + 0.02 * n * 0.75 if spot else 1.0
                cost = price * n * (max(hours * rework, mr) if r.is_job else hours * rework)
                if r.max_price_per_hour is not None and price * n > float(r.max_price_per_hour) * (1 + 1e-9):
                    continue
                if r.max_total_usd is not None and cost > float(r.max_total_usd) * (1 + 1e-9):
                    continue
                yield n, spot, price * n, cost


SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(offers(), requests())
def test_best_under_cost_equals_brute_force(rows, doc):
    world = World(rows, doc)
    best = {}
    for i, o in enumerate(rows):
        for _, _, _, cost in world.configs(i):
            best[o.offer_id] = min(best.get(o.offer_id, math.inf), cost)
    answer = recommend(world.snap, world.request, now=NOW)
    if not best:
        assert answer.recommendations == ()
        assert answer.excluded.feasible == 0 and answer.excluded.considered == len(rows)
        return
    cheapest = min(best.values())
    top = answer.recommendations[0]
    assert math.isclose(top.est_total_usd, round(cheapest, 2), abs_tol=0.011), (top, cheapest)
    assert math.isclose(best[top.offer_id], cheapest, rel_tol=1e-9)
    # the ranked list is the brute-force order of each offer's cheapest configuration
    expected = sorted(best, key=lambda oid: (best[oid], oid))[: len(answer.recommendations)]
    got = [r.offer_id for r in answer.recommendations]
    assert [round(best[o], 6) for o in got] == [round(best[o], 6) for o in expected]
    assert answer.excluded.feasible == len(best)


@SETTINGS
@given(offers(), requests())
def test_every_rejected_offer_violates_the_named_constraint(rows, doc):
    world = World(rows, doc)
    m = match(world.ctx)
    r = world.request
    for i, o in enumerate(rows):
        has_config = any(True for _ in world.configs(i))
        reasons = set(codes_of(int(m.bits[i])))
        assert has_config == (not reasons), (o, reasons)
        static = world.static_failures(i)
        nt = world.nt(i)
        need = int(world.plan.n_need[nt])
        usable = o.nodes_available if o.inter_node != "none" else 1
        for code in reasons:
            if code in static:
                continue
            if code == "capacity":
                assert need > o.nodes_available
            elif code == "inter_node":
                assert (r.resources.inter_node and o.inter_node not in r.resources.inter_node) or (
                    need > 1 and world.needs_fabric(i) and o.inter_node == "none"
                )
            elif code == "deadline":
                assert r.time_limit_hours and all(world.hours(i, n) > r.time_limit_hours for n in range(1, usable + 1))
            elif code in ("max_price_per_hour", "max_total_usd"):
                # the cheapest node count that meets the need and the time limit, on some price variant
                # (configurations are capped at 1,024 nodes)
                n_lo = next(
                    (
                        n
                        for n in range(max(1, need), 1025)
                        if not (r.is_job and r.time_limit_hours) or world.hours(i, n) <= r.time_limit_hours
                    ),
                    1024,
                )
                mr = max(float(o.min_rental_hours), float(o.provider_min_rental_hours))
                prices = [float(o.price_per_hour)]
                if r.interruptible_allowed and o.provider_interruptible_allowed and o.interruptible_price_per_hour:
                    prices.append(float(o.interruptible_price_per_hour))
                if code == "max_price_per_hour":
                    assert max(p * n_lo for p in prices[:1]) > float(r.max_price_per_hour) or any(
                        p * n_lo > float(r.max_price_per_hour) for p in prices
                    )
                else:
                    costs = []
                    for k, p in enumerate(prices):
                        rw = 1 + 0.02 * n_lo * 0.75 if k else 1.0
                        h = world.hours(i, n_lo)
                        costs.append(p * n_lo * (max(h * rw, mr) if r.is_job else h * rw))
                    assert any(c > float(r.max_total_usd) for c in costs)
            else:
                raise AssertionError(f"{code} named for offer {o.offer_id} but not violated: {static}")
