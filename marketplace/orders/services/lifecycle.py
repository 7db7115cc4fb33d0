"""The one place an order's `state` is assigned: lock, check the transition table, write the event.

Every transition service (transitions.py, failover.py, cancel.py, placement.py) runs inside `transaction.atomic`,
takes the order row with `locked()`, calls `move()` and enqueues follow-up work with outbox.enqueue (published
after commit). Illegal moves raise ConflictError (HTTP 409).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from marketplace.errors import ConflictError, NotFoundError
from marketplace.models import User
from marketplace.orders.models import Order, OrderEvent
from marketplace.orders.services import outbox, reservations
from marketplace.orders.services.meter_sweep import meter_delay_s, meter_due_at
from marketplace.orders.states import FINAL, State, can_move

# Celery task names (workers/tasks/orders.py registers them under these names).
TASK_PROVISION = "workers.tasks.orders.provision"
TASK_POLL = "workers.tasks.orders.poll_status"
TASK_METER = "workers.tasks.orders.meter"
TASK_STOP = "workers.tasks.orders.stop"
TASK_TERMINATE = "workers.tasks.orders.terminate_job"
TASK_BILLING_FINISHED = "workers.tasks.billing.order_finished"  # settles or refunds (docs/payments.md)


QUEUED_REASON = "queued for provisioning"


def queued_event(order: Order, *, now: datetime, actor: User | None = None, task: str = "") -> OrderEvent:
    """The reserved -> queued event (unsaved) of an order created `queued` by placement in the transaction that
    reserved it (the order never stood `reserved` in a commit; its history shows both states, as if moved)."""
    return OrderEvent(order=order, from_state=State.RESERVED, to_state=State.QUEUED, at=now, actor=actor,
                      actor_task=task, reason=QUEUED_REASON, data={"attempt": order.attempt})


def reserved_event(order: Order, *, quote_id: str, now: datetime, actor: User | None, units: list[int] | None,
                   skipped_offers: list[int]) -> OrderEvent:
    """The placement's first event (unsaved): capacity reserved on the order's offer. `units` None: left for the
    writing statement to add (placement_statement.py picks them)."""
    data = {"quote_id": quote_id, "offer_id": order.offer_id, "nodes": order.nodes, "skipped_offers": skipped_offers}
    if units is not None:
        data["units"] = sorted(units)
    return OrderEvent(order=order, from_state="", to_state=State.RESERVED, at=now, actor=actor,
                      reason="order placed; capacity reserved", data=data)


def locked(order_id: int) -> Order:
    """The order row, locked (FOR UPDATE OF the order only)."""
    order = Order.objects.select_for_update(of=("self",)).filter(pk=order_id).first()
    if order is None:
        raise NotFoundError(f"No order {order_id}.", code="order_not_found")
    return order


def first_meter_due(order: Order, now: datetime) -> datetime:
    """When an order that starts running `now` is metered first (meter_sweep.py)."""
    return meter_due_at(now, meter_delay_s(order, 0.0))


def move(order: Order, to: State, *, now: datetime, reason: str, actor: User | None = None, task: str = "",
         data: dict[str, Any] | None = None, extra_fields: tuple[str, ...] = ()) -> OrderEvent:
    """Change the (locked) order's state, with its event. `extra_fields` were changed by the caller too."""
    if not can_move(order.state, to):
        raise ConflictError(f"Order {order.pk} is {order.state}; it cannot become {to.value}.",
                            code="illegal_transition", extra={"state": order.state})
    event = OrderEvent.objects.create(order=order, from_state=order.state, to_state=to.value, at=now, actor=actor,
                                      actor_task=task, reason=reason[:300], data=data or {})
    fields = {"state", "state_changed_at", "checked_at", "redrives", "updated_at", *extra_fields}
    order.state = to.value
    order.state_changed_at = order.checked_at = now
    order.redrives = 0
    if to == State.PROVISIONING:
        order.provisioning_at = now
        fields.add("provisioning_at")
    elif to == State.RUNNING:
        order.running_at, order.meter_due_at = now, first_meter_due(order, now)
        fields.update(("running_at", "meter_due_at"))
    elif to in FINAL:
        order.finished_at = now
        fields.add("finished_at")
        reservations.release(order, reason=f"order {to.value}", now=now)
        outbox.enqueue(TASK_BILLING_FINISHED, [order.pk])
    order.save(update_fields=sorted(fields))
    return event


def move_if(order: Order, source: State, to: State, *, now: datetime, reason: str, actor: User | None = None,
            task: str = "", data: dict[str, Any] | None = None, where: dict[str, Any] | None = None,
            values: dict[str, Any] | None = None) -> OrderEvent | None:
    """`move` for a row the caller has not read under lock: one conditional UPDATE (WHERE state = source, and
    `where`) takes the row lock and changes it, with the same bookkeeping as `move` plus `values`; then the event
    is written and the in-memory order brought in step. None, with nothing written, when the row did not match.
    Not for final states (they release capacity: use `locked` + `move`)."""
    if not can_move(source, to):
        raise ConflictError(f"Order {order.pk} cannot go from {source.value} to {to.value}.",
                            code="illegal_transition", extra={"state": source.value})
    if to in FINAL:
        raise ValueError("move_if does not finish orders; lock the row and use move()")
    changes: dict[str, Any] = {"state": to.value, "state_changed_at": now, "checked_at": now, "redrives": 0,
                               "updated_at": now, **(values or {})}
    if to == State.PROVISIONING:
        changes["provisioning_at"] = now
    elif to == State.RUNNING:
        changes["running_at"], changes["meter_due_at"] = now, first_meter_due(order, now)
    if not Order.objects.filter(pk=order.pk, state=source.value, **(where or {})).update(**changes):
        return None
    for name, value in changes.items():
        setattr(order, name, value)
    return OrderEvent.objects.create(order=order, from_state=source.value, to_state=to.value, at=now, actor=actor,
                                     actor_task=task, reason=reason[:300], data=data or {})


def note(order: Order, *, now: datetime, reason: str, actor: User | None = None, task: str = "",
         data: dict[str, Any] | None = None, extra_fields: tuple[str, ...] = ()) -> OrderEvent:
    """An event without a state change (job created, alternative skipped, re-driven, retried, ...)."""
    event = OrderEvent.objects.create(order=order, from_state=order.state, to_state=order.state, at=now, actor=actor,
                                      actor_task=task, reason=reason[:300], data=data or {})
    order.checked_at = now
    order.save(update_fields=sorted({"checked_at", "updated_at", *extra_fields}))
    return event


def touch(order_id: int, now: datetime) -> None:
    """A pipeline step made progress (stuck detection): a plain UPDATE, no event."""
    Order.objects.filter(pk=order_id).update(checked_at=now, redrives=0)
