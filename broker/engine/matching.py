"""Filter the snapshot (reason bits per offer) and expand feasible offers into candidate configurations."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from broker.engine.estimate import Candidates, energy_and_carbon, rework_factor, runtime_hours
from broker.engine.filters import BIT, bits_where
from broker.engine.plan import NodePlan
from broker.engine.request import ALL_KINDS, MAX_NODES, Request
from broker.engine.snapshot import OfferSnapshot

EPS = 1e-9


@dataclass(frozen=True)
class Match:
    bits: np.ndarray  # uint32 reasons per offer row (0 = feasible)
    active: int  # bits of filters evaluated for this request
    n_lo: np.ndarray  # per node type: fewest nodes meeting need and time limit
    feasible: np.ndarray  # row indices with bits == 0


class Context:
    """Per-request arrays shared by matching, candidate expansion and explanation."""

    def __init__(self, snap: OfferSnapshot, plan: NodePlan, request: Request):
        self.snap, self.plan, self.request = snap, plan, request
        self.n_lo_nt = np.minimum(np.maximum(plan.n_need, plan.n_deadline), MAX_NODES)
        self.max_pph = float(request.max_price_per_hour) if request.max_price_per_hour is not None else None
        self.max_total = float(request.max_total_usd) if request.max_total_usd is not None else None
        pv = snap.providers
        self.provider_int_ok = pv.interruptible_allowed if request.interruptible_allowed else None
        self.any_min_rental = bool(snap.min_rental_hours.any() or pv.min_rental_hours.any())

    def min_rental(self, rows: np.ndarray) -> np.ndarray:
        if not self.any_min_rental:
            return np.zeros(rows.shape)
        snap = self.snap
        return np.maximum(snap.min_rental_hours[rows], snap.providers.min_rental_hours[snap.provider[rows]])

    def interruptible_eligible(self, rows: np.ndarray) -> np.ndarray:
        if self.provider_int_ok is None:
            return np.zeros(rows.shape, dtype=bool)
        snap = self.snap
        return (snap.interruptible_units[rows] >= 0) & self.provider_int_ok[snap.provider[rows]]

    def cost_at(
        self, rows: np.ndarray, nodes: np.ndarray, interruptible: np.ndarray, min_rental: np.ndarray | None = None
    ) -> tuple[np.ndarray, ...]:
        """(price per node-hour, expected hours, billed hours, total USD) of each row at `nodes` nodes."""
        snap, nt = self.snap, self.snap.node_type[rows]
        price = np.where(interruptible, snap.interruptible_price[rows], snap.price[rows])
        run = runtime_hours(self.plan, self.request, nt, nodes)
        rw = rework_factor(nodes, interruptible)
        if self.request.is_job:
            hours = run * rw
            billed = np.maximum(hours, self.min_rental(rows) if min_rental is None else min_rental)
        else:
            hours, billed = run, run * rw
        return price, hours, billed, price * nodes * billed

    def limit_bits(self, pph: np.ndarray, cost: np.ndarray) -> np.ndarray:
        bits = np.zeros(pph.shape, dtype=np.uint32)
        if self.max_pph is not None:
            bits |= bits_where(pph > self.max_pph * (1 + EPS), "max_price_per_hour")
        if self.max_total is not None:
            bits |= bits_where(cost > self.max_total * (1 + EPS), "max_total_usd")
        return bits

    def at_lo(self, rows: np.ndarray) -> tuple[np.ndarray, ...]:
        """Each row at n_lo nodes, on its better variant: (nodes, interruptible, config price/h, total, limit bits).

        The variant failing fewer of max_price_per_hour / max_total_usd is chosen (on demand on a tie, then the
        cheaper one), so the reported reasons are the ones that variant really violates.
        """
        n = self.n_lo_nt[self.snap.node_type[rows]]
        no = np.zeros(rows.shape, dtype=bool)
        *_, cost = self.cost_at(rows, n, no)
        pph = self.snap.price[rows] * n
        bits = self.limit_bits(pph, cost)
        elig = self.interruptible_eligible(rows)
        if not elig.any():
            return n, no, pph, cost, bits
        *_, icost = self.cost_at(rows, n, elig)
        ipph = self.snap.interruptible_price[rows] * n
        ibits = self.limit_bits(ipph, icost)
        fails, ifails = _popcount2(bits), _popcount2(ibits)
        use = elig & ((ifails < fails) | ((ifails == fails) & (icost < cost)))
        return (n, use, np.where(use, ipph, pph), np.where(use, icost, cost), np.where(use, ibits, bits))


def _popcount2(bits: np.ndarray) -> np.ndarray:
    return ((bits & BIT["max_price_per_hour"]) != 0).astype(np.int8) + ((bits & BIT["max_total_usd"]) != 0)


def match(ctx: Context) -> Match:
    snap, plan, req = ctx.snap, ctx.plan, ctx.request
    nt = snap.node_type
    bits = plan.bits[nt]
    active = int(np.bitwise_or.reduce(plan.bits)) if plan.bits.size else 0

    rg = snap.regions
    rbits = np.zeros(len(rg.keys), dtype=np.uint32)
    keys, countries = np.array(rg.keys, dtype=object), np.array(rg.country, dtype=object)
    if req.regions_allowed:
        rbits |= bits_where(~np.isin(keys, list(req.regions_allowed)), "region")
    if req.regions_excluded:
        rbits |= bits_where(np.isin(keys, list(req.regions_excluded)), "region")
    if req.countries_allowed:
        rbits |= bits_where(~np.isin(countries, list(req.countries_allowed)), "country")
    if req.countries_excluded:
        rbits |= bits_where(np.isin(countries, list(req.countries_excluded)), "country")
    if rbits.any():
        bits = bits | rbits[snap.region]
        active |= int(np.bitwise_or.reduce(rbits))

    pv = snap.providers
    pbits = np.zeros(len(pv.ids), dtype=np.uint32)
    if req.min_provider_reliability is not None:
        pbits |= bits_where(~(pv.reliability >= req.min_provider_reliability - EPS), "min_provider_reliability")
    kind_bit = 1 << ALL_KINDS.index(req.kind)
    pbits |= bits_where((pv.kinds_mask != 0) & ((pv.kinds_mask & kind_bit) == 0), "provider_workload_kind")
    if pbits.any():
        bits = bits | pbits[snap.provider]
        active |= int(np.bitwise_or.reduce(pbits))

    res = req.resources
    for code, column, wanted in (
        ("vcpus", snap.vcpus, res.vcpus),
        ("ram", snap.ram_gb, res.ram_gb),
        ("disk", snap.disk_gb, res.disk_gb),
    ):
        if wanted:
            bits |= bits_where(column < wanted - EPS, code)
            active |= int(BIT[code])
    avail = snap.nodes_available
    bits |= bits_where(plan.n_need[nt] > avail, "capacity")
    active |= int(BIT["capacity"])
    if req.is_job and req.time_limit_hours:
        n_max = np.where(plan.fabric[nt], avail, 1)
        bits |= bits_where(plan.n_deadline[nt] > n_max, "deadline")
        active |= int(BIT["deadline"])
    rows = np.arange(len(snap))
    if not req.is_job and ctx.any_min_rental:
        bits |= bits_where(req.duration_hours < ctx.min_rental(rows) - EPS, "provider_min_rental")
        active |= int(BIT["provider_min_rental"])
    if ctx.max_pph is not None or ctx.max_total is not None:
        *_, limit_bits = ctx.at_lo(rows)
        bits |= limit_bits
        active |= int(BIT["max_price_per_hour"]) if ctx.max_pph is not None else 0
        active |= int(BIT["max_total_usd"]) if ctx.max_total is not None else 0
    return Match(bits=bits, active=active, n_lo=ctx.n_lo_nt, feasible=np.flatnonzero(bits == 0))


def _n_hi(ctx: Context, rows: np.ndarray, interruptible: np.ndarray, lo: np.ndarray, mr: np.ndarray) -> np.ndarray:
    """Most nodes still within capacity, max price per hour and budget (binary search; all are monotone in n)."""
    snap, nt = ctx.snap, ctx.snap.node_type[rows]
    hi = np.where(ctx.plan.fabric[nt], np.minimum(snap.nodes_available[rows], MAX_NODES), 1)
    hi = np.maximum(hi, lo)
    lo = lo.copy()
    price = np.where(interruptible, snap.interruptible_price[rows], snap.price[rows])
    while True:
        open_ = lo < hi
        if not open_.any():
            return lo
        mid = (lo + hi + 1) // 2
        ok = np.ones(mid.shape, dtype=bool)
        if ctx.max_pph is not None:
            ok &= price * mid <= ctx.max_pph * (1 + EPS)
        if ctx.max_total is not None:
            *_, cost = ctx.cost_at(rows, mid, interruptible, mr)
            ok &= cost <= ctx.max_total * (1 + EPS)
        lo = np.where(open_ & ok, mid, lo)
        hi = np.where(open_ & ~ok, mid - 1, hi)


def expand(ctx: Context, feasible: np.ndarray) -> Candidates:
    """Every configuration worth scoring: on-demand and (when allowed) interruptible; node counts that can win.

    Cost and carbon never fall with more nodes (n·s(n) grows slower than n), so without a time weight the fewest
    nodes win; with only a time weight the most nodes win; mixed objectives also try the geometric middle.
    """
    snap, plan, req = ctx.snap, ctx.plan, ctx.request
    rows = [feasible]
    inter = [np.zeros(feasible.shape, dtype=bool)]
    elig = ctx.interruptible_eligible(feasible)
    if elig.any():
        rows.append(feasible[elig])
        inter.append(np.ones(int(elig.sum()), dtype=bool))
    r, i = np.concatenate(rows), np.concatenate(inter)
    lo = ctx.n_lo_nt[snap.node_type[r]]
    mr = ctx.min_rental(r)
    w = dict(req.objective.weights)
    options = [lo]
    if req.is_job and w.get("time", 0) > 0:
        hi = _n_hi(ctx, r, i, lo, mr)
        if w.get("cost", 0) == 0 and w.get("carbon", 0) == 0:
            options = [hi]
        else:
            mid = np.round(np.sqrt(lo * hi)).astype(np.int64)
            options = [lo, mid, hi]
    n = np.concatenate(options)
    r = np.tile(r, len(options))
    i = np.tile(i, len(options))
    mr = np.tile(mr, len(options))
    price, hours, billed, cost = ctx.cost_at(r, n, i, mr)
    if ctx.max_pph is not None or ctx.max_total is not None:  # a variant may break a limit its twin meets
        ok = ctx.limit_bits(price * n, cost) == 0
        if not ok.all():
            r, n, i, price, hours, billed, cost = (a[ok] for a in (r, n, i, price, hours, billed, cost))
    nt = snap.node_type[r]
    reg = snap.region[r]
    energy, carbon = energy_and_carbon(plan, nt, n, hours, snap.regions.pue[reg], snap.regions.grid_ci[reg])
    reliability = snap.providers.reliability[snap.provider[r]]
    return Candidates(
        row=r,
        nodes=n,
        interruptible=i,
        price=price,
        hours=hours,
        billed_hours=billed,
        cost=cost,
        carbon_kg=carbon,
        energy_kwh=energy,
        reliability=reliability,
    )
