"""Why offers were excluded: counts per reason and side, near misses with their gap, and useful relaxations."""

from __future__ import annotations

from decimal import Decimal

import numpy as np

from broker.engine.filters import BY_CODE, FILTERS
from broker.engine.matching import Context, Match
from broker.engine.plan import SCALING
from broker.engine.request import INTER_NODE, INTERCONNECTS, MAX_REPLICA_NODES
from broker.engine.result import CENT, Excluded, NearMiss, ReasonCount, Relaxation
from broker.engine.scorers import top_k_lex
from broker.engine.snapshot import units_to_decimal

NEAR_MISS_LIMIT = 10


def _usd(x: float) -> str:
    return f"${x:,.2f}"


def _short(name: str) -> str:
    return name.removeprefix("NVIDIA ").removeprefix("AMD Instinct ").removeprefix("AMD ")


class _Row:
    """Scalar view of one offer row for gap and relaxation texts."""

    def __init__(self, ctx: Context, row: int, nodes: int, pph: float, cost: float):
        snap = ctx.snap
        self.ctx, self.row, self.nodes, self.pph, self.cost = ctx, row, nodes, pph, cost
        self.nt = int(snap.node_type[row])
        nt = snap.node_types
        self.accelerator, self.count = nt.accelerator[self.nt], int(nt.count[self.nt])
        self.memory_gb = float(nt.memory_gb[self.nt])
        self.interconnect = INTERCONNECTS[nt.interconnect[self.nt]]
        self.inter_node = INTER_NODE[nt.inter_node[self.nt]]
        self.stack = nt.stack_family[self.nt]
        self.region = snap.regions.keys[snap.region[row]]
        self.country = snap.regions.country[snap.region[row]]
        p = int(snap.provider[row])
        self.provider = snap.providers.names[p]
        self.reliability = float(snap.providers.reliability[p])
        self.available = int(snap.nodes_available[row])
        self.min_rental = float(snap.min_rental_eff[row])

    def usable_nodes(self) -> int:
        return self.available if self.ctx.plan.fabric[self.nt] else 1

    def hours_on_usable(self) -> float:
        plan = self.ctx.plan
        n = min(self.usable_nodes(), SCALING.shape[1] - 1)
        return float(plan.base_hours[self.nt] / SCALING[plan.scale_class[self.nt], n])

    def gap(self, code: str) -> str:
        req, res, plan = self.ctx.request, self.ctx.request.resources, self.ctx.plan
        snap = self.ctx.snap
        if code == "accelerator":
            return f"{_short(self.accelerator)} not in {', '.join(_short(a) for a in res.accelerators)}"
        if code == "accelerator_count":
            return f"{self.count} per node, {res.count} requested"
        if code == "accelerator_memory":
            if res.min_memory_gb is not None and self.memory_gb < res.min_memory_gb:
                return f"{self.memory_gb:g} GB < {res.min_memory_gb:g} GB needed"
            return (
                f"{self.memory_gb:g} GB accelerators: {plan.need_gb:,.0f} GB needed, more than "
                f"{MAX_REPLICA_NODES} nodes of {self.count} hold"
            )
        if code == "interconnect":
            return f"{self.interconnect}, requested {'/'.join(res.interconnect)}"
        if code == "inter_node":
            if res.inter_node and self.inter_node not in res.inter_node:
                return f"{self.inter_node} between nodes, requested {'/'.join(res.inter_node)}"
            return f"needs {int(plan.n_need[self.nt])} nodes; offer has no inter-node fabric"
        if code == "software_stack":
            return f"{self.stack}, requested {'/'.join(req.software_stack)}"
        if code == "unsupported_workload":
            return f"no performance figure for {req.kind} on {_short(self.accelerator)}"
        if code in ("vcpus", "ram", "disk"):
            have = {"vcpus": snap.vcpus, "ram": snap.ram_gb, "disk": snap.disk_gb}[code][self.row]
            want = {"vcpus": res.vcpus, "ram": res.ram_gb, "disk": res.disk_gb}[code]
            unit = {"vcpus": " vCPUs", "ram": " GB RAM", "disk": " GB disk"}[code]
            return f"{float(have):g}{unit} < {want:g}{unit} requested"
        if code == "region":
            return f"region {self.region} not allowed"
        if code == "country":
            return f"country {self.country or '?'} not allowed"
        if code == "min_provider_reliability":
            have = "unknown" if self.reliability != self.reliability else f"{self.reliability:.2f}"
            return f"reliability {have} < {req.min_provider_reliability:.2f}"
        if code == "deadline":
            return (
                f"needs {int(plan.n_deadline[self.nt])} nodes to finish within {req.time_limit_hours:.1f} h; "
                f"{self.usable_nodes()} usable"
            )
        if code == "max_price_per_hour":
            return f"+{_usd(self.pph - float(req.max_price_per_hour))}/h over max_price_per_hour"
        if code == "max_total_usd":
            return f"+{_usd(self.cost - float(req.max_total_usd))} over max_total_usd"
        if code == "capacity":
            return f"needs {int(plan.n_need[self.nt])} nodes; {self.available} available"
        if code == "provider_workload_kind":
            return f"provider does not accept {req.kind}"
        if code == "provider_min_rental":
            return f"{self.min_rental:g} h minimum rental > {req.duration_hours:g} h requested"
        raise KeyError(code)

    def change(self, code: str) -> str:
        req = self.ctx.request
        texts = {
            "accelerator": f"also allow {self.accelerator}",
            "accelerator_count": f"accept {self.count} accelerators per node",
            "accelerator_memory": f"accept {self.memory_gb:g} GB accelerators",
            "interconnect": f"allow {self.interconnect} interconnect",
            "inter_node": f"allow {self.inter_node} between nodes",
            "software_stack": f"allow the {self.stack} stack",
            "vcpus": f"lower vcpus to {float(self.ctx.snap.vcpus[self.row]):g}",
            "ram": f"lower ram_gb to {float(self.ctx.snap.ram_gb[self.row]):g}",
            "disk": f"lower disk_gb to {float(self.ctx.snap.disk_gb[self.row]):g}",
            "region": f"allow region {self.region}",
            "country": f"allow country {self.country}",
            "max_price_per_hour": f"raise max_price_per_hour to {_usd(self.pph)}",
            "max_total_usd": f"raise max_total_usd to {_usd(self.cost)}",
            "provider_min_rental": f"rent for {self.min_rental:g} h",
        }
        if code == "min_provider_reliability":
            if self.reliability != self.reliability:
                return "accept providers without a reliability record"
            return f"lower min_provider_reliability to {self.reliability:.2f}"
        if code == "deadline":
            return f"allow {self.hours_on_usable():.1f} h (now {req.time_limit_hours:.1f} h)"
        return texts[code]


def _dec(x: float) -> Decimal | None:
    return None if x != x or x in (float("inf"), float("-inf")) else Decimal(f"{x:.6f}").quantize(CENT)


def explain(ctx: Context, m: Match) -> tuple[Excluded, tuple[Relaxation, ...]]:
    snap = ctx.snap
    by_reason = tuple(
        ReasonCount(f.code, f.side, f.relaxable, int(m.counts[i]), f.description)
        for i, f in enumerate(FILTERS)
        if m.active >> i & 1 and m.counts[i]
    )
    near_misses: list[NearMiss] = []
    relaxations: list[Relaxation] = []
    if m.near.size:
        # which filter each near miss fails (its one bit), and how many fail each
        code_of = np.bitwise_count(m.near_bits - np.uint32(1)).astype(np.intp)
        adds_by_code = np.bincount(code_of, minlength=len(FILTERS))
        near = m.near
        # totals alone rank (match() priced every row when a limit applied); the few shown get full figures below
        if ctx.lo_rows is not None:
            cost = np.take(ctx.lo_rows[3], ctx.near_pos)
        else:
            cost = np.take(ctx.lo_all[3], near) if ctx.lo_all is not None else ctx.lo_cost(near)
        cost = np.asarray(cost, dtype=np.float64)
        unknown = np.isnan(cost)
        if unknown.any():
            cost = np.where(unknown, np.inf, cost)
        ids = np.take(snap.offer_id, near)
        top = top_k_lex([cost, ids], NEAR_MISS_LIMIT).tolist()
        cheapest: dict[int, int] = {}
        for k, f in enumerate(FILTERS):
            if f.relaxable and m.active >> k & 1 and adds_by_code[k]:
                sel = np.flatnonzero(code_of == k)
                c = cost[sel]
                tied = sel[c == c.min()]
                cheapest[k] = int(tied[np.argmin(ids[tied])])
        shown = sorted(set(top) | set(cheapest.values()))
        if ctx.lo_rows is not None:
            nodes, spot, pph = (np.take(a, ctx.near_pos[shown]) for a in ctx.lo_rows[:3])
        elif ctx.lo_all is not None:
            nodes, spot, pph = (np.take(a, near[shown]) for a in ctx.lo_all[:3])
        else:
            nodes, spot, pph, _, _ = ctx.at_lo(near[shown])
        at = {j: i for i, j in enumerate(shown)}

        def view(j: int) -> _Row:
            i = at[j]
            return _Row(ctx, int(near[j]), int(nodes[i]), float(pph[i]), float(cost[j]))

        for j in top:
            code = FILTERS[int(code_of[j])].code
            v = view(j)
            units = (snap.interruptible_units if spot[at[j]] else snap.price_units)[near[j]]
            near_misses.append(
                NearMiss(
                    offer_id=int(ids[j]),
                    provider=v.provider,
                    accelerator=v.accelerator,
                    count=v.count,
                    nodes=v.nodes,
                    region=v.region,
                    reason=code,
                    side=BY_CODE[code].side,
                    gap=v.gap(code),
                    price_per_hour=units_to_decimal(int(units)) * v.nodes,
                    est_total_usd=_dec(v.cost),
                )
            )
        for k, best in cheapest.items():
            f = FILTERS[k]
            adds = int(adds_by_code[k])
            v = view(best)
            total = _dec(v.cost)
            effect = f"adds {adds} offer{'s' if adds != 1 else ''}"
            if total is not None:
                effect += (
                    f"; cheapest {_usd(float(total))} total on {v.nodes} node{'s' if v.nodes > 1 else ''} of "
                    f"{v.count}× {_short(v.accelerator)} ({v.provider}, {v.region})"
                )
            relaxations.append(
                Relaxation(
                    constraint=f.code,
                    side=f.side,
                    change=v.change(f.code),
                    adds=adds,
                    cheapest_offer_id=int(ids[best]),
                    cheapest_total_usd=total,
                    effect=effect,
                )
            )
    relaxations.sort(
        key=lambda r: (
            -r.adds,
            r.cheapest_total_usd if r.cheapest_total_usd is not None else Decimal("Infinity"),
            r.constraint,
        )
    )
    feasible = int(m.feasible.size)
    excluded = Excluded(
        considered=len(snap),
        feasible=feasible,
        excluded=len(snap) - feasible,
        by_reason=by_reason,
        near_misses=tuple(near_misses),
    )
    return excluded, tuple(relaxations)
