"""Filter the snapshot (reason bits per offer) and expand feasible offers into candidate configurations.

Hot path: every step is a NumPy operation over the offer columns; work that depends only on the node type
(nodes needed, runtime, price multipliers) is done on the small node-type table and gathered once.
"""

from __future__ import annotations

import numpy as np

from broker.engine.estimate import Candidates, rework_factor, runtime_hours
from broker.engine.filters import BIT, FILTER_INDEX, FILTERS, bits_where, single_failure
from broker.engine.plan import SCALING, NodePlan
from broker.engine.request import ALL_KINDS, MAX_NODES, Request
from broker.engine.rowindex import price_prefix
from broker.engine.snapshot import OfferSnapshot

EPS = 1e-9
POOL_MIN = 4096  # below this many feasible rows, expand them all
_LIMITS = BIT["max_price_per_hour"] | BIT["max_total_usd"]


class Match:
    """Which offers pass, which fail exactly one filter (near misses), and how many fail each filter.

    Only the rows of node types that pass or fail one node-type filter are examined row by row; the counts of
    the others come from per-node-type, per-region and per-provider totals. `bits` (reasons for every row) is
    computed on demand, for tests and tools.
    """

    def __init__(
        self,
        ctx: Context,
        active: int,
        feasible: np.ndarray,
        near: np.ndarray,
        near_bits: np.ndarray,
        counts: np.ndarray,
    ):
        self._ctx = ctx
        self.active = active  # bits of filters evaluated for this request
        self.feasible = feasible  # row indices (ascending) that pass every filter
        self.near = near  # rows (ascending) failing exactly one filter
        self.near_bits = near_bits  # that filter's bit, per near row
        self.counts = counts  # int64 per filter: offers failing it (an offer failing two counts under both)
        self._bits: np.ndarray | None = None

    @property
    def bits(self) -> np.ndarray:
        """uint32 reasons per offer row (0 = feasible)."""
        if self._bits is None:
            self._bits = full_bits(self._ctx)
        return self._bits


def _take(column: np.ndarray, rows: np.ndarray | None) -> np.ndarray:
    return column if rows is None else np.take(column, rows)


class Context:
    """Per-request arrays shared by matching, candidate expansion and explanation."""

    def __init__(self, snap: OfferSnapshot, plan: NodePlan, request: Request):
        self.snap, self.plan, self.request = snap, plan, request
        self.n_lo_nt = np.minimum(np.maximum(plan.n_need, plan.n_deadline), MAX_NODES)
        self.multi = bool(self.n_lo_nt.size and self.n_lo_nt.max() > 1)
        self.hours_lo_nt = runtime_hours(plan, request, np.arange(len(self.n_lo_nt)), self.n_lo_nt)
        self.max_pph = float(request.max_price_per_hour) if request.max_price_per_hour is not None else None
        self.max_total = float(request.max_total_usd) if request.max_total_usd is not None else None
        self.interruptible = request.interruptible_allowed
        self.lo_all: tuple | None = None  # at_lo() over every row, when match() needed it
        self.lo_rows: tuple | None = None  # at_lo() over the rows match() examined, when it needed it
        self.near_pos: np.ndarray | None = None  # each near miss's position among those rows

    def min_rental(self, rows: np.ndarray | None) -> np.ndarray | float:
        return _take(self.snap.min_rental_eff, rows) if self.snap.has_min_rental else 0.0

    def interruptible_eligible(self, rows: np.ndarray | None) -> np.ndarray:
        if not self.interruptible:
            return np.zeros(len(self.snap) if rows is None else rows.shape[0], dtype=bool)
        return _take(self.snap.interruptible_ok, rows)

    def cost_at(
        self,
        rows: np.ndarray,
        nodes: np.ndarray | int,
        interruptible: np.ndarray | None,
        min_rental: np.ndarray | float | None = None,
    ) -> tuple:
        """(price per node-hour, expected hours, billed hours, total USD) of each row at `nodes` nodes.

        `interruptible` None means every row on demand (the common case, without per-row selects).
        """
        snap, nt = self.snap, np.take(self.snap.node_type, rows)
        if interruptible is None:
            price = np.take(snap.price, rows)
        else:
            price = np.where(interruptible, np.take(snap.interruptible_price, rows), np.take(snap.price, rows))
        run = runtime_hours(self.plan, self.request, nt, nodes)
        rw = rework_factor(nodes, interruptible)
        if self.request.is_job:
            hours = run * rw if interruptible is not None else run
            mr = self.min_rental(rows) if min_rental is None else min_rental
            billed = np.maximum(hours, mr) if self.snap.has_min_rental else hours
        else:
            hours, billed = run, run * rw
        return price, hours, billed, price * (nodes * billed)

    def lo_cost(self, rows: np.ndarray) -> np.ndarray:
        """at_lo()'s total for `rows` when no price limit applies (on demand, same floating-point steps)."""
        snap = self.snap
        nt = np.take(snap.node_type, rows)
        price = np.take(snap.price, rows)
        pph = price * np.take(self.n_lo_nt, nt) if self.multi else price
        if self.request.is_job:
            hours = np.take(self.hours_lo_nt, nt)
            billed = np.maximum(hours, np.take(snap.min_rental_eff, rows)) if snap.has_min_rental else hours
            return pph * billed
        return pph * float(self.request.duration_hours)

    def limit_fails(self, rows: np.ndarray, nt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(over max price per hour, over max total) on demand at n_lo nodes: at_lo()'s tests, same steps."""
        price = np.take(self.snap.price, rows)
        pph = price * np.take(self.n_lo_nt, nt) if self.multi else price
        hours = np.take(self.hours_lo_nt, nt) if self.request.is_job else float(self.request.duration_hours)
        cost = pph * hours
        none = np.zeros(pph.shape, dtype=bool)
        over_pph = pph > self.max_pph * (1 + EPS) if self.max_pph is not None else none
        over_total = cost > self.max_total * (1 + EPS) if self.max_total is not None else none
        return over_pph, over_total

    def limit_bits(self, pph: np.ndarray, cost: np.ndarray) -> np.ndarray:
        bits = np.zeros(pph.shape, dtype=np.uint32)
        if self.max_pph is not None:
            bits |= bits_where(pph > self.max_pph * (1 + EPS), "max_price_per_hour")
        if self.max_total is not None:
            bits |= bits_where(cost > self.max_total * (1 + EPS), "max_total_usd")
        return bits

    def at_lo(self, rows: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
        """Each row at n_lo nodes: (nodes, interruptible, config price/h, total, limit bits).

        On demand unless it breaks max_price_per_hour or max_total_usd and the interruptible variant breaks
        fewer of them (then that variant's figures and reasons are reported).
        """
        snap = self.snap
        nt = _take(snap.node_type, rows)
        price = _take(snap.price, rows)
        n = np.take(self.n_lo_nt, nt) if self.multi else np.ones(price.shape, dtype=np.int64)
        pph = price * n if self.multi else price
        if self.request.is_job:
            hours = np.take(self.hours_lo_nt, nt)
            billed = np.maximum(hours, self.min_rental(rows)) if snap.has_min_rental else hours
            cost = pph * billed
        else:
            cost = pph * float(self.request.duration_hours)
        bits = self.limit_bits(pph, cost)
        use = np.zeros(price.shape, dtype=bool)
        if self.interruptible and (self.max_pph is not None or self.max_total is not None):
            sel = np.flatnonzero((bits != 0) & self.interruptible_eligible(rows))
            if sel.size:
                sub = sel if rows is None else rows[sel]
                ipph = snap.interruptible_price[sub] * n[sel]
                *_, icost = self.cost_at(sub, n[sel], np.ones(sel.size, dtype=bool))
                ibits = self.limit_bits(ipph, icost)
                better = _popcount_limits(ibits) < _popcount_limits(bits[sel])
                sel = sel[better]
                use[sel] = True
                pph = pph.copy() if pph is price else pph
                pph[sel], cost[sel], bits[sel] = ipph[better], icost[better], ibits[better]
        return n, use, pph, cost, bits


def _popcount_limits(bits: np.ndarray) -> np.ndarray:
    return ((bits & BIT["max_price_per_hour"]) != 0).astype(np.int8) + ((bits & BIT["max_total_usd"]) != 0)


def _region_bits(req: Request, rg) -> np.ndarray:
    rbits = np.zeros(len(rg.keys), dtype=np.uint32)
    if not (req.regions_allowed or req.regions_excluded or req.countries_allowed or req.countries_excluded):
        return rbits
    keys, countries = np.array(rg.keys, dtype=object), np.array(rg.country, dtype=object)
    if req.regions_allowed:
        rbits |= bits_where(~np.isin(keys, list(req.regions_allowed)), "region")
    if req.regions_excluded:
        rbits |= bits_where(np.isin(keys, list(req.regions_excluded)), "region")
    if req.countries_allowed:
        rbits |= bits_where(~np.isin(countries, list(req.countries_allowed)), "country")
    if req.countries_excluded:
        rbits |= bits_where(np.isin(countries, list(req.countries_excluded)), "country")
    return rbits


def _provider_bits(req: Request, pv) -> np.ndarray:
    pbits = np.zeros(len(pv.ids), dtype=np.uint32)
    if req.min_provider_reliability is not None:
        ok = pv.reliability >= req.min_provider_reliability - EPS
        pbits |= bits_where(~ok, "min_provider_reliability")
    kind_bit = 1 << ALL_KINDS.index(req.kind)
    pbits |= bits_where((pv.kinds_mask != 0) & ((pv.kinds_mask & kind_bit) == 0), "provider_workload_kind")
    return pbits


def _or(table: np.ndarray) -> int:
    return int(np.bitwise_or.reduce(table)) if table.size else 0


def _count_table(counts: np.ndarray, table_bits: np.ndarray, table_rows: np.ndarray) -> None:
    """Add to `counts` the rows behind every table entry (node type, region, provider) failing each filter."""
    present = _or(table_bits)
    for i in range(len(FILTERS)):
        if present >> i & 1:
            counts[i] += int(table_rows[(table_bits & np.uint32(1 << i)) != 0].sum())


def _deadline_applies(req: Request, plan: NodePlan) -> bool:
    return bool(req.is_job and req.time_limit_hours and plan.n_deadline.size and plan.n_deadline.max() > 1)


def match(ctx: Context) -> Match:
    snap, plan, req, idx = ctx.snap, ctx.plan, ctx.request, ctx.snap.index
    counts = np.zeros(len(FILTERS), dtype=np.int64)
    nt_bits = plan.bits
    active = _or(nt_bits)
    _count_table(counts, nt_bits, idx.nt_rows)
    rbits = _region_bits(req, snap.regions)
    pbits = _provider_bits(req, snap.providers)
    for table, rows_per in ((rbits, idx.region_rows), (pbits, idx.provider_rows)):
        if table.any():
            active |= _or(table)
            _count_table(counts, table, rows_per)

    # rows of node types failing two or more node-type filters can be neither feasible nor near misses
    relevant = np.bitwise_count(nt_bits) <= 1
    if relevant.all():
        rows, nt = None, snap.node_type
    elif idx.identity:  # rows grouped by node type: read only the relevant ranges
        rows, nt = idx.rows_of(np.flatnonzero(relevant))
    else:
        rows = np.flatnonzero(np.take(relevant, snap.node_type))
        nt = np.take(snap.node_type, rows)

    def sub(column: np.ndarray) -> np.ndarray:
        return column if rows is None else np.take(column, rows)

    bits = np.take(nt_bits, nt)
    if rbits.any():
        bits |= np.take(rbits, sub(snap.region))
    if pbits.any():
        bits |= np.take(pbits, sub(snap.provider))

    def add(code: str, fails_all: int, fails_rows: np.ndarray) -> None:
        nonlocal bits, active
        counts[FILTER_INDEX[code]] += fails_all
        bits |= bits_where(fails_rows, code)
        active |= int(BIT[code])

    res = req.resources
    for code, column, wanted in (
        ("vcpus", snap.vcpus, res.vcpus),
        ("ram", snap.ram_gb, res.ram_gb),
        ("disk", snap.disk_gb, res.disk_gb),
    ):
        if wanted:
            fails = column < wanted - EPS
            add(code, int(np.count_nonzero(fails)), sub(fails))
    if plan.n_need.size and plan.n_need.max() > 1:
        add("capacity", int(idx.below(plan.n_need).sum()), np.take(plan.n_need, nt) > sub(snap.nodes_available))
    if _deadline_applies(req, plan):
        per_nt = np.where(plan.fabric, idx.below(plan.n_deadline), np.where(plan.n_deadline > 1, idx.nt_rows, 0))
        n_max = np.where(np.take(plan.fabric, nt), sub(snap.nodes_available), 1)
        add("deadline", int(per_nt.sum()), np.take(plan.n_deadline, nt) > n_max)
    if not req.is_job and snap.has_min_rental:
        # only rows with a minimum rental can fail: test those, and set their bits in place
        mr_rows = idx.min_rental_rows
        fails = mr_rows[req.duration_hours < snap.min_rental_eff[mr_rows] - EPS]
        counts[FILTER_INDEX["provider_min_rental"]] += fails.size
        active |= int(BIT["provider_min_rental"])
        if rows is not None:
            fails = fails[np.take(relevant, np.take(snap.node_type, fails))]
            fails = np.searchsorted(rows, fails)
        bits[fails] |= BIT["provider_min_rental"]
    lo_rows = None
    if ctx.max_pph is not None or ctx.max_total is not None:
        if idx.identity and not ctx.interruptible and not (req.is_job and snap.has_min_rental):
            # on demand only, no minimum-rental floor: price per hour and total rise with the price within a
            # node type, so each node type's failures are a suffix of its rows (found by bisection); only the
            # examined rows are priced
            for code, which, limit in (("max_price_per_hour", 0, ctx.max_pph), ("max_total_usd", 1, ctx.max_total)):
                if limit is not None:
                    n_fail = int(_failing_suffix(ctx, lambda pos, t, w=which: ctx.limit_fails(pos, t)[w]).sum())
                    counts[FILTER_INDEX[code]] += n_fail
                    active |= int(BIT[code]) if n_fail else 0
            lo_rows = ctx.at_lo(rows)
            bits |= lo_rows[-1]
        else:
            ctx.lo_all = ctx.at_lo()
            limit_bits = ctx.lo_all[-1]
            for code in ("max_price_per_hour", "max_total_usd"):
                counts[FILTER_INDEX[code]] += int(np.count_nonzero(limit_bits & BIT[code]))
            bits |= sub(limit_bits)
            active |= int(_LIMITS) & _or(limit_bits)
    ok = np.flatnonzero(bits == 0)
    one = np.flatnonzero(single_failure(bits))
    if lo_rows is not None:
        ctx.lo_rows, ctx.near_pos = lo_rows, one
    near_bits = np.take(bits, one)
    if rows is None:
        return Match(ctx, active, ok, one, near_bits, counts)
    return Match(ctx, active, np.take(rows, ok), np.take(rows, one), near_bits, counts)


def _failing_suffix(ctx: Context, fails_at) -> np.ndarray:
    """Per node type: how many of its rows fail a test that is false then true along the rows (price order)."""
    start = ctx.snap.index.start
    m = ctx.n_lo_nt.shape[0]
    types = np.arange(m)
    lo, end = start[:m].copy(), start[1 : m + 1].copy()
    hi = end.copy()
    while True:
        open_ = np.flatnonzero(lo < hi)
        if not open_.size:
            return end - lo
        mid = (lo[open_] + hi[open_]) // 2
        f = fails_at(mid, types[open_])
        hi[open_] = np.where(f, mid, hi[open_])
        lo[open_] = np.where(f, lo[open_], mid + 1)


def full_bits(ctx: Context) -> np.ndarray:
    """Every row's reason bits, row by row (the reference the indexed match() must agree with)."""
    snap, plan, req = ctx.snap, ctx.plan, ctx.request
    nt = snap.node_type
    bits = plan.bits[nt]
    rbits = _region_bits(req, snap.regions)
    if rbits.any():
        bits |= rbits[snap.region]
    pbits = _provider_bits(req, snap.providers)
    if pbits.any():
        bits |= pbits[snap.provider]
    res = req.resources
    for code, column, wanted in (
        ("vcpus", snap.vcpus, res.vcpus),
        ("ram", snap.ram_gb, res.ram_gb),
        ("disk", snap.disk_gb, res.disk_gb),
    ):
        if wanted:
            bits |= bits_where(column < wanted - EPS, code)
    avail = snap.nodes_available
    if plan.n_need.size and plan.n_need.max() > 1:
        bits |= bits_where(plan.n_need[nt] > avail, "capacity")
    if _deadline_applies(req, plan):
        n_max = np.where(plan.fabric[nt], avail, 1)
        bits |= bits_where(plan.n_deadline[nt] > n_max, "deadline")
    if not req.is_job and snap.has_min_rental:
        bits |= bits_where(req.duration_hours < snap.min_rental_eff - EPS, "provider_min_rental")
    if ctx.max_pph is not None or ctx.max_total is not None:
        lo_all = ctx.lo_all if ctx.lo_all is not None else ctx.at_lo()
        bits |= lo_all[-1]
    return bits


class _Priced:
    """Per-row constants of a candidate set, so trying another node count is a few array operations."""

    def __init__(self, ctx: Context, rows: np.ndarray, nt: np.ndarray, spot: np.ndarray | None, mr):
        snap, plan = ctx.snap, ctx.plan
        self.ctx, self.spot, self.mr = ctx, spot, mr
        self.price = (
            np.take(snap.price, rows)
            if spot is None
            else np.where(spot, np.take(snap.interruptible_price, rows), np.take(snap.price, rows))
        )
        self.job = ctx.request.is_job
        if self.job:
            self.base = np.take(plan.base_hours, nt)
            self.cls = np.take(plan.scale_class, nt)
        self.floor = ctx.snap.has_min_rental

    def at(self, n: np.ndarray, idx: np.ndarray | None = None) -> tuple:
        """(hours, billed hours, cost) at n nodes, for all rows or the subset idx."""
        pick = (lambda a: a) if idx is None else (lambda a: np.take(a, idx))
        spot = None if self.spot is None else pick(self.spot)
        rw = rework_factor(n, spot)
        price = pick(self.price)
        if self.job:
            run = pick(self.base) / SCALING[pick(self.cls), n]
            hours = run * rw if spot is not None else run
            mr = self.mr if np.isscalar(self.mr) else pick(self.mr)
            billed = np.maximum(hours, mr) if self.floor else hours
        else:
            hours = float(self.ctx.request.duration_hours)
            billed = hours * rw
        return hours, billed, price * (n * billed)


def _n_hi(
    ctx: Context, priced: _Priced, idx: np.ndarray, rows: np.ndarray, nt: np.ndarray, lo: np.ndarray
) -> np.ndarray:
    """Most nodes within capacity, max price per hour and budget (binary search; each is monotone in n)."""
    hi = np.maximum(np.minimum(np.take(ctx.snap.nodes_available, rows), MAX_NODES), lo)
    lo = lo.copy()
    price = np.take(priced.price, idx)
    while True:
        open_ = lo < hi
        if not open_.any():
            return lo
        mid = (lo + hi + 1) // 2
        ok = np.ones(mid.shape, dtype=bool)
        if ctx.max_pph is not None:
            ok &= price * mid <= ctx.max_pph * (1 + EPS)
        if ctx.max_total is not None:
            ok &= priced.at(mid, idx)[2] <= ctx.max_total * (1 + EPS)
        lo = np.where(open_ & ok, mid, lo)
        hi = np.where(open_ & ~ok, mid - 1, hi)


def cost_pool(ctx: Context, feasible: np.ndarray, k: int) -> np.ndarray:
    """The feasible rows that can matter when only the total cost counts: a superset of the top k and of every
    configuration at least as cheap as the k-th (so the Pareto flags and the best cost are unchanged).

    On demand at the fewest nodes, a row's total is non-decreasing in its price within its node type, so only
    each node type's k cheapest rows (and rows tied with the k-th on price) can rank; rows with an
    interruptible variant, and jobs whose minimum rental exceeds their runtime, are kept as they are. (Distinct
    prices give distinct totals while the runtime is an ordinary positive number; otherwise every row is kept.)
    """
    if feasible.size <= POOL_MIN:
        return feasible
    snap = ctx.snap
    hours = ctx.hours_lo_nt if ctx.request.is_job else np.array([ctx.request.duration_hours])
    if not ((hours > 1e-100) & (hours < 1e100)).all():  # not strictly rising with the price: keep every row
        return feasible
    # an ordered snapshot's feasible rows are already in (node type, price, offer id) order
    ordered = feasible if snap.index.identity else snap.index.in_price_order(feasible, snap.node_type)
    nt = np.take(snap.node_type, ordered)
    keep = [ordered[price_prefix(nt, np.take(snap.price_units, ordered), k)]]
    if ctx.interruptible:
        keep.append(feasible[ctx.interruptible_eligible(feasible)])
    if ctx.request.is_job and snap.has_min_rental:
        nt = np.take(snap.node_type, feasible)
        keep.append(feasible[np.take(snap.min_rental_eff, feasible) > np.take(ctx.hours_lo_nt, nt)])
    return np.unique(np.concatenate(keep)) if len(keep) > 1 else np.sort(keep[0])


def expand(ctx: Context, feasible: np.ndarray) -> Candidates:
    """Every configuration worth scoring: on demand and (when allowed) interruptible; node counts that can win.

    Cost and carbon never fall with more nodes (n·s(n) grows slower than n), so without a time weight the
    fewest nodes win; with only a time weight the most nodes win; mixed objectives also try the geometric middle.
    """
    snap, plan, req = ctx.snap, ctx.plan, ctx.request
    r, i = feasible, None
    elig = ctx.interruptible_eligible(feasible)
    one_per_offer = True
    if elig.any():
        r = np.concatenate([feasible, feasible[elig]])
        i = np.concatenate([np.zeros(feasible.shape, dtype=bool), np.ones(int(elig.sum()), dtype=bool)])
        one_per_offer = False
    nt = np.take(snap.node_type, r)
    lo = np.take(ctx.n_lo_nt, nt) if ctx.multi else np.ones(r.shape, dtype=np.int64)
    priced = _Priced(ctx, r, nt, i, ctx.min_rental(r))
    w = dict(req.objective.weights)
    n = lo
    if req.is_job and w.get("time", 0) > 0:
        can_grow = np.flatnonzero(np.take(plan.fabric, nt) & (np.take(snap.nodes_available, r) > lo))
        if can_grow.size:
            hi = _n_hi(ctx, priced, can_grow, r[can_grow], nt[can_grow], lo[can_grow])
            if w.get("cost", 0) == 0 and w.get("carbon", 0) == 0:
                n = lo.copy()
                n[can_grow] = hi
            else:
                mid = np.round(np.sqrt(lo[can_grow] * hi)).astype(np.int64)
                extra = np.concatenate([can_grow, can_grow])
                r = np.concatenate([r, r[extra]])
                nt = np.concatenate([nt, nt[extra]])
                i = np.zeros(r.shape, dtype=bool) if i is None else np.concatenate([i, i[extra]])
                n = np.concatenate([lo, mid, hi])
                priced = _Priced(ctx, r, nt, i, ctx.min_rental(r))
                one_per_offer = False
    hours, billed, cost = priced.at(n)
    price = priced.price
    if i is not None and (ctx.max_pph is not None or ctx.max_total is not None):
        ok = ctx.limit_bits(price * n, cost) == 0  # a variant may break a limit its twin meets
        if not ok.all():
            hours = hours[ok] if np.ndim(hours) else hours
            billed = billed[ok] if np.ndim(billed) else billed
            r, n, i, price, cost = r[ok], n[ok], i[ok], price[ok], cost[ok]
    return Candidates(snap, plan, r, n, i, price, hours, billed, cost, one_per_offer)
