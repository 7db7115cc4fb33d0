"""The two moves every order makes in the provision step, queued -> provisioning (the claim) and provisioning ->
running, each written as one SQL statement on PostgreSQL.

Through transitions.py each was a transaction of six round trips (BEGIN; SET LOCAL synchronous_commit; the claim
read or the conditional UPDATE; the event INSERT; the order UPDATE or the provider's reliability UPDATE; COMMIT),
the ORM compiling the INSERT and the UPDATE anew every time: in the worker that cost more CPU than the database
spent on the work. Measured in process on the orders benchmark's database (the provision step of 150 queued orders,
the simulated driver): 4.1-4.4 ms of CPU per order through the transactional path, 2.0-2.4 ms with these statements
(under cProfile: the claim 5.2 -> 1.5 ms, provisioning -> running 5.5 -> 1.1 ms).
Here each is one data-modifying WITH statement, prepared (marketplace/db_prepared.py) and sent in autocommit, so
it is its own transaction:
- `lazy` turns synchronous_commit off for that transaction (set_config(..., is_local)), as transitions.lazy_commit
  does for the transactional path (why a pipeline step may lose its last commit in a crash: see there);
- `moved`, the conditional UPDATE, takes the order row lock and is the transition check: WHERE state = the source
  state, this attempt (and, to running, the job_ref the caller saw), as lifecycle.move_if;
- `ev` writes the event from an unsaved OrderEvent (marketplace/db_insert.py): the row OrderEvent.objects.create
  would write.
When the row does not match (no such order, another attempt, a redelivered task finding the order provisioning
already, a cancel that came first, another job recorded), nothing is written and the caller takes the
transactional path, which tells those cases apart. Only outside a transaction (a worker's task), so the lazy commit
never reaches a caller's transaction; SQLite keeps the transactional path.
"""

from __future__ import annotations

from datetime import datetime
from functools import cache
from typing import Any

from django.db import connection
from django.utils import timezone

from marketplace.db_insert import InsertSelect, insert_select
from marketplace.db_prepared import prepared_cursor
from marketplace.errors import ConflictError
from marketplace.orders.models import Order, OrderEvent
from marketplace.orders.services.claim_read import ORDER_FIELDS, claim_select, claimed_order
from marketplace.orders.services.lifecycle import first_meter_due
from marketplace.orders.services.reliability import (
    observe_params,
    observe_target,
    observe_update,
    provisioning_value,
)
from marketplace.orders.states import State, can_move

ENABLED = True  # tests turn it off to compare with the transactional path
PROVISIONING_STARTED = "provisioning started"
JOB_RUNNING = "job running"
# The claim's event data names the offer, which only the row knows: built from it, as move() writes it.
CLAIM_DATA = """jsonb_build_object('attempt', m."attempt", 'offer_id', m."offer_id")"""
LAZY = "lazy AS (SELECT set_config('synchronous_commit', 'off', true) AS setting)"


def usable() -> bool:
    return ENABLED and connection.vendor == "postgresql" and not connection.in_atomic_block


def claim(order_id: int, attempt: int, *, task: str, now: datetime) -> Order | None:
    """queued -> provisioning for this attempt: the order as transitions.order_claim_provisioning returns it after
    move() (claim_read's fields, offer and accelerator cached). None, with nothing written, when the order is not
    queued for this attempt."""
    _legal(order_id, State.QUEUED, State.PROVISIONING)
    updated = timezone.now()  # move() saves updated_at through auto_now: the clock's time, not `now`
    event = OrderEvent(from_state=State.QUEUED.value, to_state=State.PROVISIONING.value, at=now, actor=None,
                       actor_task=task, reason=PROVISIONING_STARTED[:300])  # data: CLAIM_DATA
    with prepared_cursor() as cursor:
        cursor.execute(_claim_sql(), [now, now, updated, now, order_id, attempt,
                                      *_event_shape(CLAIM_DATA).params(event)])
        row = cursor.fetchone()
    if row is None:
        return None
    order = claimed_order(row)
    order.state_changed_at = order.checked_at = now
    order.redrives, order.updated_at = 0, updated
    return order


def running_data(order: Order, job_ref: str, *, message: str, waited: float) -> dict[str, Any]:
    """The provisioning -> running event's data, for an order moved as the caller read it."""
    return {"attempt": order.attempt, "job_ref": job_ref, "key": order.idempotency_key_for_attempt,
            "seconds_to_running": round(waited, 3), "message": message, "job_created": not order.job_ref}


def running(order: Order, job_ref: str, *, task: str, message: str, now: datetime, provider_id: int | None) -> bool:
    """provisioning -> running of `order` as the caller read it while provisioning this attempt, if the row is still
    that (provisioning, this attempt, the job_ref read), with the provider's reliability observation (of the offer's
    provider when `provider_id` is None); the in-memory order brought in step as lifecycle.move_if does. False, with
    nothing written, when the row has moved on."""
    _legal(order.pk, State.PROVISIONING, State.RUNNING)
    waited = (now - (order.provisioning_at or now)).total_seconds()
    event = OrderEvent(from_state=State.PROVISIONING.value, to_state=State.RUNNING.value, at=now, actor=None,
                       actor_task=task, reason=JOB_RUNNING[:300],
                       data=running_data(order, job_ref, message=message, waited=waited))
    by_offer = provider_id is None
    meter_due = first_meter_due(order, now)
    params = [now, now, now, now, meter_due, job_ref, order.pk, order.attempt, order.job_ref,
              *_event_shape().params(event),
              *observe_params(provisioning_value(waited)), order.offer_id if by_offer else provider_id]
    with prepared_cursor() as cursor:
        cursor.execute(_running_sql(by_offer=by_offer), params)
        (moved,) = cursor.fetchone()
    if not moved:
        return False
    order.state, order.job_ref, order.redrives = State.RUNNING.value, job_ref, 0
    order.state_changed_at = order.checked_at = order.updated_at = order.running_at = now
    order.meter_due_at = meter_due
    return True


def _legal(order_id: int, source: State, to: State) -> None:
    if not can_move(source, to):  # as move_if: the table is checked before anything is written
        raise ConflictError(f"Order {order_id} cannot go from {source.value} to {to.value}.",
                            code="illegal_transition", extra={"state": source.value})


@cache
def _event_shape(data: str = "") -> InsertSelect:
    """The event INSERT ... SELECT from the `moved` row (m); `data`: the data column's SQL, when not a parameter."""
    return insert_select(OrderEvent, {"order_id": 'm."id"', **({"data": data} if data else {})})


def _moved(sets: str, where: str, returning: str) -> str:
    """The conditional order UPDATE of both moves: move()'s bookkeeping (state_changed_at, checked_at, updated_at,
    redrives), `sets`, WHERE id = %s AND `where`. Parameters: state_changed_at, checked_at, updated_at, those of
    `sets`, the id, those of `where`."""
    return (f'moved AS (UPDATE "{Order._meta.db_table}" SET "state_changed_at" = %s, "checked_at" = %s, '
            f'"updated_at" = %s, "redrives" = 0, {sets} WHERE "id" = %s AND {where} '
            f"AND EXISTS (SELECT 1 FROM lazy) RETURNING {returning})")


@cache
def _claim_sql() -> str:
    returning = ", ".join(f'"{Order._meta.get_field(name).column}"' for name in ORDER_FIELDS)
    moved = _moved(f"\"state\" = '{State.PROVISIONING.value}', \"provisioning_at\" = %s",
                   f"\"attempt\" = %s AND \"state\" = '{State.QUEUED.value}'", returning)
    return f"WITH {LAZY}, {moved}, ev AS ({_event_shape(CLAIM_DATA).sql('moved m')}) {claim_select('moved')}"


@cache
def _running_sql(*, by_offer: bool) -> str:
    moved = _moved(f"\"state\" = '{State.RUNNING.value}', \"running_at\" = %s, \"meter_due_at\" = %s, "
                   f"\"job_ref\" = %s",
                   f"\"state\" = '{State.PROVISIONING.value}' AND \"attempt\" = %s AND \"job_ref\" = %s", '"id"')
    # The provider row after the order row, as on the transactional path: its UPDATE waits for `moved` (EXISTS),
    # whose UPDATE has taken the order row lock by then; a row lock is taken only once its conditions hold.
    score = observe_update(f"{observe_target(by_offer=by_offer)} AND EXISTS (SELECT 1 FROM moved)")
    return (f"WITH {LAZY}, {moved}, ev AS ({_event_shape().sql('moved m')}), score AS ({score}) "
            f"SELECT count(*) FROM moved")

