"""The engine's input: listed offers as columns (NumPy arrays), built once and patched when offers change.

Per-offer columns hold only what varies per offer (price, capacity, host size); everything shared is factored
into small tables the engine evaluates once per request: node types (accelerator, count, memory, fabric, stack),
regions (country, grid intensity, PUE) and providers (reliability and policies).
Prices are kept exactly as integers of 1e-6 USD so the top-k can be re-priced in Decimal without float error.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal

import numpy as np

from broker.engine.request import ALL_KINDS, INTER_NODE, INTERCONNECTS
from broker.engine.rowindex import RowIndex, build_index

PRICE_SCALE = 1_000_000  # prices are stored as integer micro-dollars
NO_PRICE = -1


@dataclass(frozen=True, slots=True)
class OfferRow:
    offer_id: int
    provider_id: int
    provider_name: str
    provider_reliability: float | None
    provider_min_rental_hours: Decimal
    provider_allowed_kinds: tuple[str, ...]  # empty = all
    provider_interruptible_allowed: bool
    accelerator: str  # canonical name (broker/data/accelerators.csv)
    count: int  # accelerators per node
    memory_gb: float  # per accelerator
    vcpus: float
    ram_gb: float
    disk_gb: float
    interconnect: str  # nvlink | xgmi | hccs | pcie | none
    inter_node: str  # infiniband | roce | ethernet | none
    region_key: str
    country: str
    grid_ci_gco2_per_kwh: float | None
    pue: float | None
    price_per_hour: Decimal  # per node, on demand
    interruptible_price_per_hour: Decimal | None
    nodes_available: int
    min_rental_hours: Decimal
    stack_family: str  # cuda | rocm | cann | ...


def price_units(price: Decimal | None) -> int:
    if price is None:
        return NO_PRICE
    units = Decimal(price) * PRICE_SCALE
    if units != units.to_integral_value() or units < 0:
        raise ValueError(f"price {price} is negative or finer than 1e-6 USD")
    return int(units)


def units_to_decimal(units: int) -> Decimal:
    return (Decimal(int(units)) / PRICE_SCALE).normalize()


@dataclass(frozen=True)
class NodeTypes:
    """Distinct (accelerator, count, memory, interconnect, inter-node, stack) node shapes."""

    keys: tuple[tuple, ...]
    accelerator: tuple[str, ...]
    count: np.ndarray  # int64
    memory_gb: np.ndarray  # float64
    interconnect: np.ndarray  # int8 code into INTERCONNECTS
    inter_node: np.ndarray  # int8 code into INTER_NODE
    stack_family: tuple[str, ...]


@dataclass(frozen=True)
class Regions:
    keys: tuple[str, ...]
    country: tuple[str, ...]
    grid_ci: np.ndarray  # gCO2e/kWh, NaN unknown
    pue: np.ndarray  # NaN unknown


@dataclass(frozen=True)
class Providers:
    ids: np.ndarray  # int64
    names: tuple[str, ...]
    reliability: np.ndarray  # NaN unknown
    min_rental_hours: np.ndarray
    kinds_mask: np.ndarray  # int64 bit per ALL_KINDS; 0 = all kinds
    interruptible_allowed: np.ndarray  # bool


def kinds_mask(kinds: Iterable[str]) -> int:
    mask = 0
    for k in kinds:
        if k not in ALL_KINDS:
            raise ValueError(f"unknown workload kind {k!r}")
        mask |= 1 << ALL_KINDS.index(k)
    return mask


@dataclass(frozen=True)
class OfferSnapshot:
    offer_id: np.ndarray  # int64
    node_type: np.ndarray  # int32 into node_types
    region: np.ndarray  # int32 into regions
    provider: np.ndarray  # int32 into providers
    price_units: np.ndarray  # int64 micro-USD per node-hour, on demand
    interruptible_units: np.ndarray  # int64, NO_PRICE when not offered
    price: np.ndarray  # float64 USD (ranking only)
    interruptible_price: np.ndarray  # float64, NaN when not offered
    nodes_available: np.ndarray  # int64
    min_rental_hours: np.ndarray  # float64, the offer's own minimum
    vcpus: np.ndarray  # float32
    ram_gb: np.ndarray  # float32
    disk_gb: np.ndarray  # float32
    node_types: NodeTypes
    regions: Regions
    providers: Providers
    # derived once per snapshot (static data the hot path would otherwise gather per request)
    min_rental_eff: np.ndarray  # float64: max(offer minimum, provider minimum)
    interruptible_ok: np.ndarray  # bool: an interruptible price exists and the provider allows it
    has_min_rental: bool
    index: RowIndex  # rows grouped by node type, cheapest first (see rowindex.py)
    # the same offers with the rows in (node type, price, offer id) order; None when these rows already are
    ordered: OfferSnapshot | None = None

    def __len__(self) -> int:
        return int(self.offer_id.shape[0])

    @property
    def in_node_type_order(self) -> OfferSnapshot:
        """This snapshot with its rows grouped by node type, cheapest first: what recommend() runs on (a node
        type's rows are one contiguous range, so a request reads only the ranges of node types that can qualify)."""
        return self if self.ordered is None else self.ordered

    @classmethod
    def empty(cls) -> OfferSnapshot:
        return cls.from_rows(())

    @classmethod
    def from_rows(cls, rows: Sequence[OfferRow]) -> OfferSnapshot:
        builder = _Builder().add(rows)
        columns = dict(zip(_COLUMNS, _row_columns(rows), strict=True))
        columns.update(builder.codes(rows))
        return builder.tables(**columns)

    def patch(self, upserts: Sequence[OfferRow] = (), removals: Iterable[int] = ()) -> OfferSnapshot:
        """A new snapshot without `removals` (offer ids) and with `upserts` added or replaced.

        Costs one pass over the columns (no per-offer Python work for unchanged offers).
        """
        drop = np.array(sorted({int(r) for r in removals} | {r.offer_id for r in upserts}), dtype=np.int64)
        keep = ~np.isin(self.offer_id, drop) if drop.size else np.ones(len(self), dtype=bool)
        builder = _Builder.from_snapshot(self).add(upserts)
        new = dict(zip(_COLUMNS, _row_columns(upserts), strict=True))
        new.update(builder.codes(upserts))
        merged = {name: np.concatenate([getattr(self, name)[keep], new[name]]) for name in _COLUMNS}
        return builder.tables(**merged)

    def row_count_by_node_type(self) -> np.ndarray:
        return np.bincount(self.node_type, minlength=len(self.node_types.keys))


_COLUMNS = (
    "offer_id",
    "node_type",
    "region",
    "provider",
    "price_units",
    "interruptible_units",
    "nodes_available",
    "min_rental_hours",
    "vcpus",
    "ram_gb",
    "disk_gb",
)


def _node_key(r: OfferRow) -> tuple:
    if r.interconnect not in INTERCONNECTS or r.inter_node not in INTER_NODE:
        raise ValueError(f"offer {r.offer_id}: bad interconnect {r.interconnect!r} or inter_node {r.inter_node!r}")
    if r.count < 1:
        raise ValueError(f"offer {r.offer_id}: count must be >= 1")
    return (r.accelerator, int(r.count), float(r.memory_gb), r.interconnect, r.inter_node, r.stack_family)


def _row_columns(rows: Sequence[OfferRow]) -> tuple[np.ndarray, ...]:
    n = len(rows)
    return (
        np.fromiter((r.offer_id for r in rows), np.int64, n),
        np.zeros(n, np.int32),
        np.zeros(n, np.int32),
        np.zeros(n, np.int32),
        np.fromiter((price_units(r.price_per_hour) for r in rows), np.int64, n),
        np.fromiter((price_units(r.interruptible_price_per_hour) for r in rows), np.int64, n),
        np.fromiter((r.nodes_available for r in rows), np.int64, n),
        np.fromiter((float(r.min_rental_hours) for r in rows), np.float64, n),
        np.fromiter((r.vcpus for r in rows), np.float32, n),
        np.fromiter((r.ram_gb for r in rows), np.float32, n),
        np.fromiter((r.disk_gb for r in rows), np.float32, n),
    )


class _Builder:
    """Accumulates the shared tables; codes stay stable when a snapshot is patched."""

    def __init__(self) -> None:
        self.node: dict[tuple, int] = {}
        self.region: dict[str, int] = {}
        self.region_rows: list[tuple[str, float, float]] = []
        self.provider: dict[int, int] = {}
        self.provider_rows: list[tuple] = []

    @classmethod
    def from_snapshot(cls, snap: OfferSnapshot) -> _Builder:
        b = cls()
        b.node = {k: i for i, k in enumerate(snap.node_types.keys)}
        rg = snap.regions
        b.region = {k: i for i, k in enumerate(rg.keys)}
        b.region_rows = [(rg.country[i], float(rg.grid_ci[i]), float(rg.pue[i])) for i in range(len(rg.keys))]
        pv = snap.providers
        b.provider = {int(p): i for i, p in enumerate(pv.ids)}
        b.provider_rows = [
            (
                pv.names[i],
                float(pv.reliability[i]),
                float(pv.min_rental_hours[i]),
                int(pv.kinds_mask[i]),
                bool(pv.interruptible_allowed[i]),
            )
            for i in range(len(pv.ids))
        ]
        return b

    def add(self, rows: Sequence[OfferRow]) -> _Builder:
        nan = float("nan")
        for r in rows:
            self.node.setdefault(_node_key(r), len(self.node))
            region = (
                r.country,
                nan if r.grid_ci_gco2_per_kwh is None else float(r.grid_ci_gco2_per_kwh),
                nan if r.pue is None else float(r.pue),
            )
            if r.region_key not in self.region:
                self.region[r.region_key] = len(self.region_rows)
                self.region_rows.append(region)
            else:
                self.region_rows[self.region[r.region_key]] = region
            provider = (
                r.provider_name,
                nan if r.provider_reliability is None else float(r.provider_reliability),
                float(r.provider_min_rental_hours),
                kinds_mask(r.provider_allowed_kinds),
                bool(r.provider_interruptible_allowed),
            )
            if r.provider_id not in self.provider:
                self.provider[r.provider_id] = len(self.provider_rows)
                self.provider_rows.append(provider)
            else:  # the newest row wins: policies are the provider's current ones
                self.provider_rows[self.provider[r.provider_id]] = provider
        return self

    def codes(self, rows: Sequence[OfferRow]) -> dict[str, np.ndarray]:
        n = len(rows)
        return {
            "node_type": np.fromiter((self.node[_node_key(r)] for r in rows), np.int32, n),
            "region": np.fromiter((self.region[r.region_key] for r in rows), np.int32, n),
            "provider": np.fromiter((self.provider[r.provider_id] for r in rows), np.int32, n),
        }

    def tables(self, **columns: np.ndarray) -> OfferSnapshot:
        keys = tuple(sorted(self.node, key=self.node.__getitem__))
        node_types = NodeTypes(
            keys=keys,
            accelerator=tuple(k[0] for k in keys),
            count=np.array([k[1] for k in keys], dtype=np.int64),
            memory_gb=np.array([k[2] for k in keys], dtype=np.float64),
            interconnect=np.array([INTERCONNECTS.index(k[3]) for k in keys], dtype=np.int8),
            inter_node=np.array([INTER_NODE.index(k[4]) for k in keys], dtype=np.int8),
            stack_family=tuple(k[5] for k in keys),
        )
        region_keys = tuple(sorted(self.region, key=self.region.__getitem__))
        regions = Regions(
            keys=region_keys,
            country=tuple(r[0] for r in self.region_rows),
            grid_ci=np.array([r[1] for r in self.region_rows], dtype=np.float64),
            pue=np.array([r[2] for r in self.region_rows], dtype=np.float64),
        )
        ids = sorted(self.provider, key=self.provider.__getitem__)
        pr = self.provider_rows
        providers = Providers(
            ids=np.array(ids, dtype=np.int64),
            names=tuple(p[0] for p in pr),
            reliability=np.array([p[1] for p in pr], dtype=np.float64),
            min_rental_hours=np.array([p[2] for p in pr], dtype=np.float64),
            kinds_mask=np.array([p[3] for p in pr], dtype=np.int64),
            interruptible_allowed=np.array([p[4] for p in pr], dtype=bool),
        )
        return make_snapshot(node_types=node_types, regions=regions, providers=providers, **columns)


def make_snapshot(
    *,
    node_types: NodeTypes,
    regions: Regions,
    providers: Providers,
    offer_id: np.ndarray,
    node_type: np.ndarray,
    region: np.ndarray,
    provider: np.ndarray,
    price_units: np.ndarray,
    interruptible_units: np.ndarray,
    nodes_available: np.ndarray,
    min_rental_hours: np.ndarray,
    vcpus: np.ndarray,
    ram_gb: np.ndarray,
    disk_gb: np.ndarray,
) -> OfferSnapshot:
    """Assemble a snapshot from columns (the bench and bulk loaders call this directly)."""
    offer_id = np.ascontiguousarray(offer_id, dtype=np.int64)
    if offer_id.size > 1:  # a sort is far faster than np.unique's hash path on large arrays
        ordered = np.sort(offer_id)
        if (ordered[1:] == ordered[:-1]).any():
            raise ValueError("offer ids must be unique within a snapshot")
    price_units = np.ascontiguousarray(price_units, dtype=np.int64)
    interruptible_units = np.ascontiguousarray(interruptible_units, dtype=np.int64)
    provider = np.ascontiguousarray(provider, dtype=np.int32)
    min_rental_hours = np.ascontiguousarray(min_rental_hours, dtype=np.float64)
    min_rental_eff = (
        np.maximum(min_rental_hours, providers.min_rental_hours[provider]) if provider.size else min_rental_hours
    )
    interruptible_ok = (
        (interruptible_units >= 0) & providers.interruptible_allowed[provider]
        if provider.size
        else np.zeros(0, dtype=bool)
    )
    node_type = np.ascontiguousarray(node_type, dtype=np.int32)
    region = np.ascontiguousarray(region, dtype=np.int32)
    nodes_available = np.ascontiguousarray(nodes_available, dtype=np.int64)
    index = build_index(
        node_type,
        price_units,
        offer_id,
        nodes_available,
        region,
        provider,
        min_rental_eff,
        len(node_types.keys),
        len(regions.keys),
        len(providers.ids),
    )
    snap = OfferSnapshot(
        offer_id=offer_id,
        node_type=node_type,
        region=region,
        provider=provider,
        price_units=price_units,
        interruptible_units=interruptible_units,
        price=price_units / PRICE_SCALE,
        interruptible_price=np.where(interruptible_units >= 0, interruptible_units / PRICE_SCALE, np.nan),
        nodes_available=nodes_available,
        min_rental_hours=min_rental_hours,
        vcpus=np.ascontiguousarray(vcpus, dtype=np.float32),
        ram_gb=np.ascontiguousarray(ram_gb, dtype=np.float32),
        disk_gb=np.ascontiguousarray(disk_gb, dtype=np.float32),
        node_types=node_types,
        regions=regions,
        providers=providers,
        min_rental_eff=min_rental_eff,
        interruptible_ok=interruptible_ok,
        has_min_rental=bool(min_rental_eff.any()),
        index=index,
    )
    if index.identity:
        return snap
    order = index.by_nt
    columns = {name: np.take(getattr(snap, name), order) for name in _ROW_FIELDS}
    ordered_index = replace(
        index,
        by_nt=np.arange(order.size, dtype=np.int64),
        min_rental_rows=np.flatnonzero(columns["min_rental_eff"] > 0),
        identity=True,
    )
    return replace(snap, ordered=replace(snap, **columns, index=ordered_index))


_ROW_FIELDS = (
    "offer_id",
    "node_type",
    "region",
    "provider",
    "price_units",
    "interruptible_units",
    "price",
    "interruptible_price",
    "nodes_available",
    "min_rental_hours",
    "vcpus",
    "ram_gb",
    "disk_gb",
    "min_rental_eff",
    "interruptible_ok",
)
