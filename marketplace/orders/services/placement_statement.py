"""Placement paid by credit, written in one statement on PostgreSQL.

What `_place` (placement.py) writes for an order paid from available credit (billing_credit_ready) whose first
alternative has free units: the order row (`queued`), a reservation per unit (confirmed: no expiry), the units
marked held, the catalog version bumped, the authorized credit charge and the order's two events (reserved,
queued); its provision message is published after commit (outbox.send_after_commit: no outbox row unless that
fails). Through the ORM that is six INSERT/UPDATE statements, each a round
trip and each compiled anew (about 40 % of an order's API request in CPU); here it is one data-modifying WITH
statement, prepared, whose rows refer to the order by the id its INSERT returns. Every row is built from an
unsaved model instance exactly as save() would write it (marketplace/db_insert.py), so both paths write the
same rows (tests/orders/test_placement_statement.py compares them).

placement.py runs it as a transaction of its own, without the offer's row lock (`_place_by_statement`), and,
when that cannot place the order, inside `_place`'s transaction after the lock. What makes it safe without the
lock: the units it picks (reservations.free_units_parts) are locked FOR UPDATE SKIP LOCKED, so two placements
never pick the same unit and never wait for each other's; a unit another transaction committed as held after
this statement's snapshot is re-read when locked and dropped (READ COMMITTED re-checks the newest version against
`NOT held`); the offer must still be listed with the nodes_available the caller read, as of this statement. The
partial unique index on active reservations still refuses a double booking: the statement then fails and
nothing of it is written. Row locks are taken units first, then the catalog version (as the ORM path does), and
this statement waits only for the version row, which every writer takes last. When the offer is not listed or
changed, the units are out of step or too few are free, it writes nothing and returns no row; that, SQLite and
the first alternative's offer not read take the ORM path.
"""

from __future__ import annotations

from datetime import datetime
from functools import cache

from django.db import connection

from marketplace.billing.models import OrderCharge
from marketplace.billing.services.order_hooks import billing_order_placing_charge
from marketplace.db_insert import insert_select
from marketplace.db_prepared import prepared_cursor
from marketplace.models import CatalogVersion, Offer, User
from marketplace.orders.models import CapacityUnit, Order, OrderEvent, Reservation
from marketplace.orders.services import outbox, reservations
from marketplace.orders.services.lifecycle import TASK_PROVISION, queued_event, reserved_event
from marketplace.orders.states import State
from marketplace.services.catalog_version import catalog_bump


def usable() -> bool:
    return connection.vendor == "postgresql"


def place_queued(order: Order, offer: Offer, *, actor: User, now: datetime, quote_id: str) -> bool:
    """Write the order (unsaved, `queued`, pointed at `offer` as the caller read it, with or without its row lock)
    with everything placement by credit writes, in one statement. False, with nothing written, when the offer
    cannot take it here (not listed or changed since read, too few free units, units out of step): the caller
    takes the ORM path."""
    if order.state != State.QUEUED or order.attempt != 1 or offer.status != Offer.Status.LISTED \
            or offer.nodes_available < order.nodes:
        return False
    reserved = reserved_event(order, quote_id=quote_id, now=now, actor=actor, units=None,  # units: in SQL
                              skipped_offers=[])
    events = [reserved, queued_event(order, now=now, actor=actor)]
    reservation = Reservation(offer_id=offer.pk, attempt=order.attempt, expires_at=None)
    charge = billing_order_placing_charge(order)
    shapes = _shapes()
    wanted = offer.nodes_available
    params = [offer.pk, offer.pk, wanted, offer.pk, wanted - 1, order.nodes, offer.pk, wanted,
              *shapes["order"].params(order), *shapes["reservation"].params(reservation),
              *shapes["charge"].params(charge),
              *shapes["event"].params_many(events)]
    with prepared_cursor() as cursor:
        cursor.execute(_statement(order.nodes), params)
        row = cursor.fetchone()
    if row is None:  # units out of step or too few free: nothing was written
        return False
    order_id, charge_id, event_ids, units, bumped = row
    if not bumped:  # no catalog version row yet (a fresh database): the ORM's way creates it
        catalog_bump()
    _saved(order, order_id)
    _saved(charge, charge_id)
    charge.order = order
    reserved.data["units"] = units
    for event, event_id in zip(events, event_ids, strict=True):  # one INSERT: ids ascend in the rows' order
        _saved(event, event_id)
    outbox.send_after_commit(TASK_PROVISION, [order_id, order.attempt])
    return True


def _saved(instance, pk: int) -> None:
    instance.pk = pk
    instance._state.adding = False
    instance._state.db = connection.alias


@cache
def _shapes() -> dict:
    order_ref = {"order_id": 'o."id"'}
    units = """(SELECT jsonb_agg(p."id" ORDER BY p."id") FROM picked p)"""
    return {
        "order": insert_select(Order),
        "reservation": insert_select(Reservation, {**order_ref, "unit_id": 'p."id"'}),
        "charge": insert_select(OrderCharge, order_ref),
        # The reserved event's data gets the units the statement picked.
        "event": insert_select(OrderEvent, {
            **order_ref, "data": f"""CASE WHEN r."to_state" = '{State.RESERVED.value}' """
                                 f"""THEN jsonb_set(r."data", '{{units}}', {units}) ELSE r."data" END"""},
                                in_row=("data",)),
    }


@cache
def _statement(nodes: int) -> str:
    """Parameters: the in-step check's (the offer id twice, nodes_available), the free units' (the offer id), the
    check's expected top index (nodes_available - 1) and `nodes`, the offer's id and nodes_available as the caller
    read them, then one JSON row per insert. Everything after `ok` writes only when the offer is listed with those
    nodes, its units are in step and `nodes` of them are free and now locked by this statement."""
    shapes = _shapes()
    check, free, guard = reservations.free_units_parts(nodes, "postgresql")
    units, version, offers = CapacityUnit._meta.db_table, CatalogVersion._meta.db_table, Offer._meta.db_table
    return (
        f"WITH chk AS ({check}), "
        f"picked AS (SELECT c.\"id\" FROM ({free}) c WHERE {guard}), "
        f"ok AS (SELECT 1 FROM chk WHERE NOT chk.gap AND chk.top = %s AND (SELECT count(*) FROM picked) = %s "
        f'AND EXISTS (SELECT 1 FROM "{offers}" x WHERE x."id" = %s AND x."status" = \'{Offer.Status.LISTED.value}\' '
        'AND x."nodes_available" = %s)), '
        f'ord AS ({shapes["order"].sql(where="EXISTS (SELECT 1 FROM ok)")}), '
        f'res AS ({shapes["reservation"].sql("ord o CROSS JOIN picked p")}), '
        f'held AS (UPDATE "{units}" SET "held" = true WHERE "id" IN (SELECT "id" FROM picked) '
        f"AND EXISTS (SELECT 1 FROM ord) RETURNING 1), "
        # After the units (EXISTS reads `held`): the same lock order as the ORM path, units then version.
        f'bump AS (UPDATE "{version}" SET "version" = "version" + 1 WHERE "id" = 1 '
        f"AND EXISTS (SELECT 1 FROM held) RETURNING 1), "
        f'charge AS ({shapes["charge"].sql("ord o")}), '
        f'ev AS ({shapes["event"].sql("ord o", many=True)}) '
        f'SELECT o."id", (SELECT "id" FROM charge), '
        f'(SELECT array_agg("id" ORDER BY "id") FROM ev), (SELECT array_agg("id" ORDER BY "id") FROM picked), '
        f"(SELECT count(*) FROM bump) FROM ord o")
