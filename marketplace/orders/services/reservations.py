"""Capacity: reserve units of an offer for an order, release them, keep unit rows in step with the offer.

Locking order (everywhere): the order row, then offer rows by ascending id, then unit rows by (offer, index).
Reserving locks the offer row (select_for_update), so concurrent reservations of one offer queue up on
PostgreSQL; SQLite's BEGIN IMMEDIATE serialises every writer anyway. The free-unit count is the fast path; the
partial unique index `reservation_one_active_per_unit` is what makes a double booking impossible: if two
transactions ever chose the same unit, the second INSERT fails and its whole transaction rolls back (a 409).
"""

from __future__ import annotations

from datetime import datetime

from django.db.models import Count, Exists, Max, OuterRef, QuerySet, Subquery

from marketplace.models import Offer
from marketplace.orders.models import CapacityUnit, Order, Reservation
from marketplace.services.catalog_version import catalog_bump


def capacity_sync(offer: Offer) -> None:
    """Make the offer's unit rows match `nodes_available`: units 0..n-1 active, the rest retired.

    Offer services call this (inside their transaction) when `nodes_available` changes; reservations also call it
    lazily, so an offer changed by any other path is corrected before its next reservation. A unit that is retired
    while held stays held until its order releases it; it is never reserved again.
    """
    wanted = offer.nodes_available
    units = CapacityUnit.objects.filter(offer_id=offer.pk)
    existing = set(units.values_list("index", flat=True))
    missing = [CapacityUnit(offer_id=offer.pk, index=i) for i in range(wanted) if i not in existing]
    if missing:
        CapacityUnit.objects.bulk_create(missing, ignore_conflicts=True)
    units.filter(index__lt=wanted, retired=True).update(retired=False)
    units.filter(index__gte=wanted, retired=False).update(retired=True)


def _in_step(offer: Offer) -> bool:
    """One query: the live units are exactly 0..nodes_available-1."""
    live = CapacityUnit.objects.filter(offer_id=offer.pk, retired=False).aggregate(n=Count("pk"), top=Max("index"))
    wanted = offer.nodes_available
    return live["n"] == wanted and (wanted == 0 or live["top"] == wanted - 1)


def _free_units_in_step(offer: Offer, nodes: int) -> list[int] | None:
    """Up to `nodes` free unit ids, read together with the in-step check of _in_step (one query: the live units'
    count and top index as scalar subqueries). None when the units are not in step (or none is free: then the
    check runs on its own) and the caller syncs them first."""
    live = CapacityUnit.objects.filter(offer_id=offer.pk, retired=False).order_by().values("offer_id")
    rows = list(free_units(offer.pk).annotate(
        live_n=Subquery(live.annotate(n=Count("pk")).values("n")),
        live_top=Subquery(live.annotate(top=Max("index")).values("top")),
    ).values_list("pk", "live_n", "live_top")[:nodes])
    if not rows:
        return [] if _in_step(offer) else None
    wanted = offer.nodes_available
    _, n, top = rows[0]
    if n != wanted or (wanted and top != wanted - 1):
        return None
    return [pk for pk, _, _ in rows]


def free_units(offer_id: int) -> QuerySet[CapacityUnit]:
    held = Reservation.objects.filter(unit_id=OuterRef("pk"), active=True)
    return CapacityUnit.objects.filter(offer_id=offer_id, retired=False).filter(~Exists(held)).order_by("index")


LOCKED_FIELDS = ("id", "provider_id", "status", "nodes_available", "driver", "accelerator_count")
# What paying for a placed order reads of its offer (billing's description and payee): joined in the same query,
# so placement hands billing an order whose offer is loaded instead of reading it again.
PLACEMENT_FIELDS = (*LOCKED_FIELDS, "provider__name", "accelerator__canonical_name", "region__key")


def lock_offers(offer_ids: list[int], *, for_placement: bool = False) -> dict[int, Offer]:
    """Lock the offers a transaction may reserve on, in ascending id order (no deadlock between two orders whose
    alternatives name the same offers in different orders). Returns them by id (the fields reserving needs; with
    `for_placement` also their provider, accelerator and region, unlocked)."""
    rows = Offer.objects.select_for_update(of=("self",)).filter(pk__in=sorted(set(offer_ids))).order_by("pk")
    if for_placement:
        rows = rows.select_related("provider", "accelerator", "region").only(*PLACEMENT_FIELDS)
    else:
        rows = rows.only(*LOCKED_FIELDS)
    return {offer.pk: offer for offer in rows}


def reserve(order: Order, offer: Offer | None, nodes: int, *, attempt: int,
            expires_at: datetime | None) -> list[Reservation] | None:
    """Hold `nodes` units of the offer (locked by lock_offers) for the order's attempt; None when it cannot.

    Nothing is written when it returns None. If the database refuses an INSERT (a unit held by another
    transaction: impossible while the offer row is locked, but the partial unique index is the guarantee), the
    IntegrityError propagates and the caller's whole transaction is rolled back.
    """
    if offer is None or offer.status != Offer.Status.LISTED or offer.nodes_available < nodes:
        return None
    units = _free_units_in_step(offer, nodes)
    if units is None:
        capacity_sync(offer)
        units = list(free_units(offer.pk).values_list("pk", flat=True)[:nodes])
    if len(units) < nodes:
        return None
    held = Reservation.objects.bulk_create([
        Reservation(order=order, unit_id=unit, offer_id=offer.pk, attempt=attempt, expires_at=expires_at)
        for unit in units])
    catalog_bump()
    return held


def release(order: Order, *, reason: str, now: datetime) -> int:
    """Free every unit the order holds. Returns how many were released."""
    released = Reservation.objects.filter(order_id=order.pk, active=True).update(
        active=False, released_at=now, release_reason=reason[:100])
    if released:
        catalog_bump()
    return released


def confirm(order: Order) -> int:
    """The order proceeded past `reserved`: its reservations no longer expire."""
    return Reservation.objects.filter(order_id=order.pk, active=True).exclude(expires_at=None).update(expires_at=None)


def held_units(offer_id: int) -> int:
    return Reservation.objects.filter(offer_id=offer_id, active=True).count()
