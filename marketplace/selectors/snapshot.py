"""The engine's input from the database: listed offers as OfferRow values, cached per process.

Two queries: the offers, and the nodes held by active order reservations (marketplace.orders.selectors.held_nodes),
which are subtracted from `nodes_available`: the engine sees what is free now. The cache is keyed on the catalog
version (marketplace.models.CatalogVersion), which every write that changes listed offers or their free capacity
(offer services, reservations made or released) bumps in its own transaction; a request costs one primary-key read
when nothing changed.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from decimal import Decimal

from django.db.models import Q
from django.utils import timezone

from broker.engine import OfferRow, OfferSnapshot
from marketplace.models import Offer
from marketplace.services.catalog_version import catalog_stamp

_FIELDS = (
    "id", "provider_id", "provider__name", "provider__reliability_score", "provider__min_rental_hours",
    "provider__allowed_workload_kinds", "provider__interruptible_allowed", "accelerator__canonical_name",
    "accelerator_count", "accelerator_memory_gb", "vcpus", "ram_gb", "disk_gb", "interconnect", "inter_node",
    "region__key", "region__country", "region__grid_ci_gco2_per_kwh", "region__pue", "price_per_hour",
    "interruptible_price_per_hour", "nodes_available", "min_rental_hours", "accelerator__stack_family",
)


def listed_offers_q(now=None) -> Q:
    now = now or timezone.now()
    return Q(status=Offer.Status.LISTED, nodes_available__gt=0) & (
        Q(available_until__isnull=True) | Q(available_until__gt=now))


def _row(v: tuple) -> OfferRow:
    (oid, pid, pname, rel, pmin, kinds, pint, acc, count, mem, vcpus, ram, disk, ic, inter, rkey, country, ci, pue,
     price, iprice, nodes, omin, stack) = v
    return OfferRow(
        offer_id=oid, provider_id=pid, provider_name=pname,
        provider_reliability=float(rel) if rel is not None else None,
        provider_min_rental_hours=Decimal(pmin), provider_allowed_kinds=tuple(kinds or ()),
        provider_interruptible_allowed=bool(pint), accelerator=acc, count=count, memory_gb=float(mem),
        vcpus=float(vcpus), ram_gb=float(ram), disk_gb=float(disk), interconnect=ic, inter_node=inter,
        region_key=rkey, country=country or "", grid_ci_gco2_per_kwh=ci, pue=pue, price_per_hour=Decimal(price),
        interruptible_price_per_hour=Decimal(iprice) if iprice is not None else None, nodes_available=nodes,
        min_rental_hours=Decimal(omin), stack_family=stack or "other",
    )


def offer_rows(queryset=None) -> list[OfferRow]:
    """Offers as engine rows, `nodes_available` being the nodes not held by reservations. The listed set (no
    `queryset`) leaves out offers with no free node, as it leaves out offers with none at all; a given queryset
    keeps them (at 0), so an offer chosen directly is still priced and placing on it answers no_capacity."""
    from marketplace.orders.selectors import held_nodes

    listed = queryset is None
    qs = Offer.objects.filter(listed_offers_q()) if listed else queryset
    rows = [_row(v) for v in qs.order_by("id").values_list(*_FIELDS).iterator(chunk_size=5000)]
    held = held_nodes([r.offer_id for r in rows]) if rows else {}
    if not held:
        return rows
    rows = [replace(r, nodes_available=max(0, r.nodes_available - held[r.offer_id])) if r.offer_id in held else r
            for r in rows]
    return [r for r in rows if r.nodes_available > 0] if listed else rows


class _SnapshotCache:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._version: tuple | None = None
        self._snapshot: OfferSnapshot | None = None

    def get(self) -> OfferSnapshot:
        version = catalog_stamp()
        with self._lock:
            if self._snapshot is None or version != self._version:
                self._snapshot = OfferSnapshot.from_rows(offer_rows())
                self._version = version
            return self._snapshot

    def clear(self) -> None:
        with self._lock:
            self._snapshot, self._version = None, None


_cache = _SnapshotCache()


def current_snapshot() -> OfferSnapshot:
    """Listed offers as the engine sees them. Offers whose `available_until` passed are unlisted by beat."""
    return _cache.get()


def clear_snapshot_cache() -> None:
    _cache.clear()


def offer_snapshot(offer_id: int) -> OfferSnapshot:
    """A one-offer snapshot (listed or not), to re-price an offer + configuration chosen directly."""
    return OfferSnapshot.from_rows(offer_rows(Offer.objects.filter(pk=offer_id)))
