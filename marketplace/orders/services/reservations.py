"""Capacity: reserve units of an offer for an order, release them, keep unit rows in step with the offer.

Locking order (everywhere): the order row, then offer rows by ascending id, then unit rows by (offer, index).
Reserving locks the offer row (select_for_update), so concurrent reservations of one offer queue up on
PostgreSQL; SQLite's BEGIN IMMEDIATE serialises every writer anyway. The free-unit count is the fast path; the
partial unique index `reservation_one_active_per_unit` is what makes a double booking impossible: if two
transactions ever chose the same unit, the second INSERT fails and that alternative counts as full.
"""

from __future__ import annotations

from datetime import datetime

from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, QuerySet

from marketplace.models import Offer
from marketplace.orders.models import CapacityUnit, Order, Reservation


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
    live = CapacityUnit.objects.filter(offer_id=offer.pk, retired=False)
    return live.count() == offer.nodes_available and not live.filter(index__gte=offer.nodes_available).exists()


def free_units(offer_id: int) -> QuerySet[CapacityUnit]:
    held = Reservation.objects.filter(unit_id=OuterRef("pk"), active=True)
    return CapacityUnit.objects.filter(offer_id=offer_id, retired=False).filter(~Exists(held)).order_by("index")


def lock_offers(offer_ids: list[int]) -> None:
    """Lock the offers a transaction may reserve on, in ascending id order (no deadlock between two orders whose
    alternatives name the same offers in different orders)."""
    list(Offer.objects.select_for_update().filter(pk__in=sorted(set(offer_ids))).order_by("pk").values_list("pk"))


def reserve(order: Order, offer_id: int, nodes: int, *, attempt: int,
            expires_at: datetime | None) -> list[Reservation] | None:
    """Hold `nodes` units of the offer for the order's attempt; None when the offer cannot take it.

    Call inside a transaction that already holds the order row. Nothing is written when it returns None.
    """
    offer = Offer.objects.select_for_update().filter(pk=offer_id, status=Offer.Status.LISTED).first()
    if offer is None or offer.nodes_available < nodes:
        return None
    if not _in_step(offer):
        capacity_sync(offer)
    units = list(free_units(offer.pk).values_list("pk", flat=True)[:nodes])
    if len(units) < nodes:
        return None
    rows = [Reservation(order=order, unit_id=unit, offer_id=offer.pk, attempt=attempt,
                        expires_at=expires_at)
            for unit in units]
    try:
        with transaction.atomic():
            return Reservation.objects.bulk_create(rows)
    except IntegrityError:  # the database refused: another transaction holds one of these units
        return None


def release(order: Order, *, reason: str, now: datetime) -> int:
    """Free every unit the order holds. Returns how many were released."""
    return Reservation.objects.filter(order_id=order.pk, active=True).update(
        active=False, released_at=now, release_reason=reason[:100])


def confirm(order: Order) -> int:
    """The order proceeded past `reserved`: its reservations no longer expire."""
    return Reservation.objects.filter(order_id=order.pk, active=True).exclude(expires_at=None).update(expires_at=None)


def held_units(offer_id: int) -> int:
    return Reservation.objects.filter(offer_id=offer_id, active=True).count()
