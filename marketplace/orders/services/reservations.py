"""Capacity: reserve units of an offer for an order, release them, keep unit rows in step with the offer.

Locking order (everywhere): the order row, then offer rows by ascending id, then unit rows by (offer, index),
then the catalog version row. Reserving through the ORM locks the offer row, so those reservations of one offer
queue up on PostgreSQL; SQLite's BEGIN IMMEDIATE serialises every writer anyway. On PostgreSQL the units picked
are locked too, skipping units another transaction holds (FOR UPDATE SKIP LOCKED), which lets the one-statement
placement (placement_statement.py) reserve without the offer lock. Offer rows are locked FOR NO KEY UPDATE: the
foreign key checks of a transaction inserting an order or a reservation take FOR KEY SHARE on the offer, and
must not wait for a lock holder that is itself waiting for the catalog version row that transaction holds (a
deadlock). The free-unit count is the fast path; the partial unique index `reservation_one_active_per_unit` is
what makes a double booking impossible: if two transactions ever chose the same unit, the second INSERT fails and
its whole transaction rolls back (a 409).
"""

from __future__ import annotations

from datetime import datetime
from functools import cache

from django.db import connection, transaction
from django.db.models import Exists, OuterRef, QuerySet

from marketplace.db_prepared import prepared_cursor
from marketplace.db_rows import ModelColumns, build_row, model_columns, row_lock_clause
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


def _free_units_in_step(offer: Offer, nodes: int) -> list[int] | None:
    """Up to `nodes` free unit ids, or None when the offer's units are not in step with `nodes_available` (the
    caller syncs them first). In step: the highest live unit is nodes_available-1 and no retired unit lies below
    it (two index probes, whatever the number of units; a unit row missing below nodes_available, which only
    capacity_sync creates, would pass: it means less capacity, never more, and reserve() syncs when it finds too
    few free units).

    One statement, written as SQL (the same text for every placement of `nodes` units; the ORM spent ~1 ms
    compiling it, five times the database's time): the check, left-joined with the first `nodes` units of the
    partial index capacity_unit_free less any with an active reservation (the guard; a candidate it drops, `held`
    out of step, leaves fewer than `nodes`, and the caller falls back to a sync and the full `free_units` query).
    It returns one row with no unit when none is free. Prepared on PostgreSQL, its generic plan probes the
    reservations of each candidate unit (an index nested loop); `nodes` is written into the text as the LIMIT
    because with the LIMIT a parameter, the generic plan hashed every active reservation instead (0.55 ms against
    0.03 ms at 860 reservations, and growing with them)."""
    wanted = offer.nodes_available
    with prepared_cursor() as cursor:
        cursor.execute(_free_units_sql(int(nodes), connection.vendor), [offer.pk, offer.pk, wanted, offer.pk])
        rows = cursor.fetchall()
    top, gap = rows[0][1], rows[0][2]
    if gap or top != wanted - 1:
        return None
    return [pk for pk, _, _ in rows if pk is not None]


@cache
def _free_units_sql(nodes: int, vendor: str) -> str:
    check, free, guard = free_units_parts(nodes, vendor)
    return f'SELECT c."id", k.top, k.gap FROM ({check}) k LEFT JOIN ({free}) c ON {guard} ORDER BY c."index"'


@cache
def free_units_parts(nodes: int, vendor: str) -> tuple[str, str, str]:
    """The SQL of _free_units_in_step's parts: the in-step check (parameters: the offer id twice, nodes_available;
    columns top, gap), the first `nodes` units not held (parameter: the offer id; columns id, index) and the
    guard on a candidate `c` (no active reservation of it). placement_statement.py uses them too.

    On PostgreSQL the units picked are locked, skipping any another transaction holds (FOR UPDATE SKIP LOCKED):
    two placements on one offer pick different units without waiting for each other, which is what lets the
    one-statement placement (placement_statement.py) run without the offer's row lock. A unit a transaction
    committed as held after this statement's snapshot is re-read when it is locked and dropped (READ COMMITTED
    re-checks the locked row's newest version against `NOT held`), so a pick never depends on a stale snapshot."""
    unit, reservation = CapacityUnit._meta, Reservation._meta
    units, held_by = f'"{unit.db_table}"', f'"{reservation.db_table}"'
    check = (f'SELECT (SELECT u."index" FROM {units} u WHERE u."offer_id" = %s AND NOT u."retired" '
             f'ORDER BY u."index" DESC LIMIT 1) AS top, EXISTS(SELECT 1 FROM {units} u WHERE u."offer_id" = %s '
             f'AND u."retired" AND u."index" < %s) AS gap')
    free = (f'SELECT f."id", f."index" FROM {units} f WHERE f."offer_id" = %s AND NOT f."retired" AND '
            f'NOT f."held" ORDER BY f."index" LIMIT {int(nodes)}{_skip_locked(vendor)}')
    guard = f'NOT EXISTS (SELECT 1 FROM {held_by} r WHERE r."unit_id" = c."id" AND r."active")'
    return check, free, guard


def _skip_locked(vendor: str) -> str:
    return " FOR UPDATE SKIP LOCKED" if vendor == "postgresql" else ""  # SQLite serialises its writers


def free_units(offer_id: int) -> QuerySet[CapacityUnit]:
    """The offer's free units, lowest index first (the partial index capacity_unit_free). `held` is the fast
    path; the anti-join on active reservations, run over these candidates only, is the guard."""
    active = Reservation.objects.filter(unit_id=OuterRef("pk"), active=True)
    return (CapacityUnit.objects.filter(offer_id=offer_id, retired=False, held=False).filter(~Exists(active))
            .order_by("index"))


LOCKED_FIELDS = ("id", "provider_id", "status", "nodes_available", "driver", "accelerator_count")
# What paying for a placed order reads of its offer (billing's description and payee) and what the API renders of
# it: joined in the same query, so placement hands billing an order whose offer is loaded instead of reading it
# again, and the API renders the order it placed without reading it back.
PLACEMENT_FIELDS = (*LOCKED_FIELDS, "name", "provider__name", "provider__slug", "accelerator__canonical_name",
                    "region__key")


def lock_offers(offer_ids: list[int], *, for_placement: bool = False) -> dict[int, Offer]:
    """Lock the offers a transaction may reserve on (FOR NO KEY UPDATE: see the module's docstring), in ascending
    id order (no deadlock between two orders whose alternatives name the same offers in different orders).
    Returns them by id (the fields reserving needs; with `for_placement` also their provider, accelerator and
    region, unlocked)."""
    ids = sorted(set(offer_ids))
    if for_placement:
        return {offer.pk: offer for offer in _lock_for_placement(ids)}
    rows = (Offer.objects.select_for_update(of=("self",), no_key=True).filter(pk__in=ids).order_by("pk")
            .only(*LOCKED_FIELDS))
    return {offer.pk: offer for offer in rows}


def _lock_for_placement(ids: list[int]) -> list[Offer]:
    """lock_offers(for_placement=True) as one statement written as SQL (every placement runs it; compiling the
    ORM's select_for_update + select_related + only cost more CPU than the database spends on it): the offers
    locked (FOR UPDATE OF the offer rows), with their provider, accelerator and region cached on them, built as
    the ORM builds them (marketplace/db_rows.py). On PostgreSQL the ids go as one array parameter, prepared."""
    sql, parts = _placement_lock_statement(connection.vendor, 0 if connection.vendor == "postgresql" else len(ids))
    with prepared_cursor() as cursor:
        cursor.execute(sql, [ids] if connection.vendor == "postgresql" else ids)
        rows = cursor.fetchall()
    return [offer_from_row(parts, row) for row in rows]


@cache
def _placement_lock_statement(vendor: str, count: int) -> tuple[str, list[ModelColumns]]:
    """`count` ids as placeholders, or (0) one array parameter (PostgreSQL)."""
    parts, joins = placement_offer_columns()
    select = ", ".join(column for part in parts for column in part.select)
    match = 'f."id" = ANY(%s)' if count == 0 else f'f."id" IN ({", ".join(["%s"] * count)})'
    sql = f'SELECT {select} FROM "{Offer._meta.db_table}" f {" ".join(joins)} WHERE {match} ORDER BY f."id"'
    sql += row_lock_clause("f", connection, no_key=True)
    return sql, parts


def placement_offer_columns(prefix: str = "", join: str = "INNER JOIN") -> tuple[list[ModelColumns], list[str]]:
    """What placement reads of an offer: its PLACEMENT_FIELDS, then its provider, accelerator and region (the
    parts, for offer_from_row) and the joins that bring those three in. The offer is aliased `{prefix}f`, the
    others `{prefix}p`, `{prefix}a` and `{prefix}r`."""
    offer = Offer._meta
    alias = f"{prefix}f"
    parts = [model_columns(Offer, alias, [name for name in PLACEMENT_FIELDS if "__" not in name], connection)]
    joins = []
    for letter, relation in (("p", "provider"), ("a", "accelerator"), ("r", "region")):
        field = offer.get_field(relation)
        names = ["id", *(name.split("__")[1] for name in PLACEMENT_FIELDS if name.startswith(f"{relation}__"))]
        parts.append(model_columns(field.related_model, f"{prefix}{letter}", names, connection))
        joins.append(f'{join} "{field.related_model._meta.db_table}" {prefix}{letter} '
                     f'ON {prefix}{letter}."id" = {alias}."{field.column}"')
    return parts, joins


def offer_from_row(parts: list[ModelColumns], row) -> Offer:
    """The offer of a placement_offer_columns row, with its provider, accelerator and region cached on it."""
    offer, provider, accelerator, region = build_row(parts, row, connection)
    offer.provider, offer.accelerator, offer.region = provider, accelerator, region
    return offer


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
    if units is None or len(units) < nodes:
        capacity_sync(offer)
        # Locked like _free_units_in_step's (skipping units another transaction holds; SQLite ignores it).
        units = list(free_units(offer.pk).select_for_update(skip_locked=True, of=("self",))
                     .values_list("pk", flat=True)[:nodes])
    if len(units) < nodes:
        return None
    held = Reservation.objects.bulk_create([
        Reservation(order=order, unit_id=unit, offer_id=offer.pk, attempt=attempt, expires_at=expires_at)
        for unit in units])
    CapacityUnit.objects.filter(pk__in=units).update(held=True)
    catalog_bump()
    return held


def release(order: Order, *, reason: str, now: datetime) -> int:
    """Free every unit the order holds. Returns how many were released."""
    active = Reservation.objects.filter(order_id=order.pk, active=True)
    CapacityUnit.objects.filter(pk__in=active.values("unit_id")).update(held=False)
    released = active.update(active=False, released_at=now, release_reason=reason[:100])
    if released:
        catalog_bump()
    return released


@transaction.atomic
def repair_held(limit: int = 1000) -> int:
    """Make units' `held` agree with their reservations again; returns how many were fixed. The reconciler runs
    it: the services keep the two together, so only a reservation changed outside them (by hand in the database)
    leaves them apart. The suspects are locked before they are re-read, each re-read a statement of its own (a new
    snapshot): a reservation or release committing meanwhile is seen, or waits for this transaction."""
    active = Reservation.objects.filter(unit_id=OuterRef("pk"), active=True)
    suspects = [
        *CapacityUnit.objects.filter(held=True).exclude(Exists(active)).values_list("pk", flat=True)[:limit],
        *CapacityUnit.objects.filter(held=False, pk__in=Reservation.objects.filter(active=True).values("unit_id"))
        .values_list("pk", flat=True)[:limit],
    ]
    if not suspects:
        return 0
    list(CapacityUnit.objects.select_for_update().filter(pk__in=suspects).order_by("offer_id", "index")
         .values_list("pk", flat=True))
    suspect = CapacityUnit.objects.filter(pk__in=suspects)
    freed = suspect.filter(held=True).exclude(Exists(active)).update(held=False)
    taken = suspect.filter(held=False).filter(Exists(active)).update(held=True)
    return freed + taken


def confirm(order: Order) -> int:
    """The order proceeded past `reserved`: its reservations no longer expire."""
    return Reservation.objects.filter(order_id=order.pk, active=True).exclude(expires_at=None).update(expires_at=None)


def held_units(offer_id: int) -> int:
    return Reservation.objects.filter(offer_id=offer_id, active=True).count()
