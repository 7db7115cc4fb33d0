"""One service per state change of the pipeline (placement, failover and cancel have their own modules).

Each: one transaction, the order row locked, the transition table checked (lifecycle.move), the event written,
follow-up Celery work enqueued through the outbox (published after commit). Services called by tasks take the
attempt number they were enqueued for and return None when the order has moved on, so a redelivered or stale
task does nothing.
"""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from marketplace.errors import ConflictError, NotFoundError
from marketplace.models import User
from marketplace.orders.models import Order
from marketplace.orders.services import outbox, provision_statements, reservations
from marketplace.orders.services.claim_read import claim_read
from marketplace.orders.services.lifecycle import (
    QUEUED_REASON,
    TASK_PROVISION,
    TASK_STOP,
    TASK_TERMINATE,
    locked,
    move,
    move_if,
    note,
)
from marketplace.orders.services.provision_statements import JOB_RUNNING, PROVISIONING_STARTED, running_data
from marketplace.orders.services.reliability import provisioning_value, reliability_observe
from marketplace.orders.states import State

# Final outcomes of a run that count against the provider (see reliability.py).
PROVIDER_FAULT_CODES = frozenset({"job_lost", "terminated_by_provider", "provider_unreachable"})


def lazy_commit() -> None:
    """On PostgreSQL, this transaction's COMMIT does not wait for the WAL flush (SET LOCAL synchronous_commit).
    For pipeline steps only: if a database crash loses the last such commit, the order is back in the state before
    the step (atomically, with its event), and the reconciler re-drives it; the step is idempotent (the provider
    call carries the attempt's key), so the loss costs a repeat, never a second job. Placement and billing keep
    durable commits (the customer was answered; money moved)."""
    connection = transaction.get_connection()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit TO OFF")


def queue_locked(order: Order, *, now: datetime, actor: User | None = None, task: str = "",
                 confirm: bool = True) -> None:
    """reserved -> queued on an order the caller has locked (placement does it in its own transaction)."""
    move(order, State.QUEUED, now=now, reason=QUEUED_REASON, actor=actor, task=task,
         data={"attempt": order.attempt})
    if confirm:
        reservations.confirm(order)
    outbox.enqueue(TASK_PROVISION, [order.pk, order.attempt])


def order_queue_reserved(order: Order, *, now: datetime, actor: User | None = None) -> bool:
    """reserved -> queued without reading the row first (placement, which holds the order it just reserved): a
    conditional UPDATE claims it; False (nothing written) when the order is no longer reserved. In the caller's
    transaction."""
    if move_if(order, State.RESERVED, State.QUEUED, now=now, reason=QUEUED_REASON, actor=actor,
               data={"attempt": order.attempt}) is None:
        return False
    reservations.confirm(order)
    outbox.enqueue(TASK_PROVISION, [order.pk, order.attempt])
    return True


@transaction.atomic
def order_queue(order_id: int, *, actor: User | None = None, task: str = "", now: datetime | None = None) -> Order:
    order = locked(order_id)
    queue_locked(order, now=now or timezone.now(), actor=actor, task=task)
    return order


def order_claim_provisioning(order_id: int, attempt: int, *, task: str, now: datetime | None = None) -> Order | None:
    """queued -> provisioning for this attempt. A redelivered task finds it provisioning already and continues.
    On PostgreSQL, outside a transaction, one statement claims a queued order (provision_statements.py)."""
    now = now or timezone.now()
    if provision_statements.usable():
        order = provision_statements.claim(order_id, attempt, task=task, now=now)
        if order is not None:
            return order
    return _claim_provisioning(order_id, attempt, task=task, now=now)


@transaction.atomic
def _claim_provisioning(order_id: int, attempt: int, *, task: str, now: datetime) -> Order | None:
    lazy_commit()
    order = claim_read(order_id)
    if order is None:
        raise NotFoundError(f"No order {order_id}.", code="order_not_found")
    if order.attempt != attempt:
        return None
    if order.state == State.QUEUED:
        move(order, State.PROVISIONING, now=now, reason=PROVISIONING_STARTED, task=task,
             data={"attempt": attempt, "offer_id": order.offer_id})
        return order
    if order.state == State.PROVISIONING:
        note(order, now=now, reason="provisioning resumed (task redelivered or re-driven)", task=task,
             data={"attempt": attempt, "job_ref": order.job_ref})
        return order
    return None


def order_record_job(order_id: int, attempt: int, job_ref: str, *, task: str, running: bool = False,
                     message: str = "", now: datetime | None = None, known: Order | None = None) -> str:
    """Store the provider's job reference and, when the job runs, provisioning -> running (one transaction).

    Returns "running" (moved to running, and the provider's reliability got a provisioning observation: the
    caller starts metering), "recorded" (the job is pending, or the order is stopping and its stop task will
    terminate the job) or "orphan" (the order moved on: the caller terminates the job).

    `known`: the order as the caller read it while provisioning this attempt. When the job runs, one conditional
    UPDATE moves the row if it is still what the caller saw (provisioning, this attempt, the same job_ref), without
    reading it first (on PostgreSQL outside a transaction: one statement with the event and the reliability
    observation, provision_statements.py); otherwise the row is locked and read as below.
    """
    now = now or timezone.now()
    if running and _still_as_known(known, attempt, job_ref) and provision_statements.usable() \
            and provision_statements.running(known, job_ref, task=task, message=message, now=now,
                                             provider_id=_provider_id(known)):
        return "running"
    return _record_job(order_id, attempt, job_ref, task=task, running=running, message=message, now=now, known=known)


def _still_as_known(known: Order | None, attempt: int, job_ref: str) -> bool:
    """The caller read the order provisioning this attempt, with no job or this one."""
    return known is not None and known.state == State.PROVISIONING and known.attempt == attempt \
        and known.job_ref in ("", job_ref)


@transaction.atomic
def _record_job(order_id: int, attempt: int, job_ref: str, *, task: str, running: bool, message: str,
                now: datetime, known: Order | None) -> str:
    lazy_commit()
    if running and known is not None and known.state == State.PROVISIONING and known.attempt == attempt \
            and _running_as_known(known, job_ref, task=task, message=message, now=now):
        return "running"
    order = locked(order_id)
    if order.attempt != attempt or order.state not in (State.PROVISIONING, State.STOPPING):
        return "orphan"
    if order.job_ref and order.job_ref != job_ref:  # another job for the same key: the provider broke its contract
        raise ConflictError(f"Order {order_id} attempt {attempt} already has job {order.job_ref}, not {job_ref}.")
    created = not order.job_ref
    order.job_ref = job_ref
    job = {"attempt": attempt, "job_ref": job_ref, "key": order.idempotency_key_for_attempt}
    if running and order.state == State.PROVISIONING:
        waited = (now - (order.provisioning_at or now)).total_seconds()
        move(order, State.RUNNING, now=now, reason=JOB_RUNNING, task=task, extra_fields=("job_ref",),
             data={**job, "seconds_to_running": round(waited, 3), "message": message, "job_created": created})
        reliability_observe(order.offer_id, provisioning_value(waited))
        return "running"
    if created:
        note(order, now=now, reason="job created at the provider", task=task, data=job, extra_fields=("job_ref",))
    return "recorded"


def _running_as_known(order: Order, job_ref: str, *, task: str, message: str, now: datetime) -> bool:
    if order.job_ref and order.job_ref != job_ref:
        return False  # the slow path raises the conflict
    waited = (now - (order.provisioning_at or now)).total_seconds()
    if move_if(order, State.PROVISIONING, State.RUNNING, now=now, reason=JOB_RUNNING, task=task,
               where={"attempt": order.attempt, "job_ref": order.job_ref}, values={"job_ref": job_ref},
               data=running_data(order, job_ref, message=message, waited=waited)) is None:
        return False
    reliability_observe(order.offer_id, provisioning_value(waited), provider_id=_provider_id(order))
    return True


def _provider_id(order: Order) -> int | None:
    return order.offer.provider_id if Order.offer.is_cached(order) else None


@transaction.atomic
def order_begin_stop(order_id: int, *, outcome: State, reason: str, code: str = "", attempt: int | None = None,
                     actor: User | None = None, task: str = "", data: dict | None = None,
                     now: datetime | None = None) -> Order | None:
    """running/provisioning -> stopping, remembering which final state follows (`outcome`)."""
    now = now or timezone.now()
    order = locked(order_id)
    if attempt is not None and order.attempt != attempt:
        return None
    if order.state not in (State.RUNNING, State.PROVISIONING):
        return None
    stop_locked(order, outcome=outcome, reason=reason, code=code, actor=actor, task=task, data=data, now=now)
    return order


def stop_locked(order: Order, *, outcome: State, reason: str, code: str, actor: User | None, task: str,
                 data: dict | None, now: datetime) -> None:
    order.stop_outcome = outcome.value
    fields = ["stop_outcome"]
    if outcome == State.FAILED:
        order.failure_code, order.failure_reason = code or "failed", reason
        fields += ["failure_code", "failure_reason"]
    move(order, State.STOPPING, now=now, reason=reason, actor=actor, task=task,
         data={"outcome": outcome.value, "code": code, **(data or {})}, extra_fields=tuple(fields))
    outbox.enqueue(TASK_STOP, [order.pk])


@transaction.atomic
def order_finish(order_id: int, *, terminated_ref: str, task: str, data: dict | None = None,
                 now: datetime | None = None) -> Order | None:
    """stopping -> its outcome (completed, cancelled, failed); capacity is released in this transaction.

    Returns None when not stopping. If a job was recorded after the stop task read the order (a create that
    finished after a cancel), the order stays stopping and the stop task is enqueued again to terminate that job.
    """
    now = now or timezone.now()
    order = locked(order_id)
    if order.state != State.STOPPING:
        return None
    if order.job_ref != terminated_ref:
        note(order, now=now, reason="a job appeared while stopping; terminating it too", task=task,
             data={"job_ref": order.job_ref})
        outbox.enqueue(TASK_STOP, [order.pk])
        return None
    outcome = State(order.stop_outcome or State.COMPLETED)
    order.stop_outcome = ""
    move(order, outcome, now=now, reason=f"job stopped; order {outcome.value}", task=task,
         data={"job_ref": order.job_ref, "metered_usd": str(order.metered_usd), **(data or {})},
         extra_fields=("stop_outcome",))
    if order.running_at is not None and outcome != State.CANCELLED:
        if outcome == State.COMPLETED:
            reliability_observe(order.offer_id, 1)
        elif order.failure_code in PROVIDER_FAULT_CODES:
            reliability_observe(order.offer_id, 0)
    return order


@transaction.atomic
def order_fail(order_id: int, *, code: str, reason: str, task: str = "", actor: User | None = None,
               attempt: int | None = None, data: dict | None = None, now: datetime | None = None) -> Order | None:
    """Any active state -> failed at once, releasing capacity. A job that exists gets a best-effort terminate."""
    now = now or timezone.now()
    order = locked(order_id)
    if order.finished or (attempt is not None and order.attempt != attempt):
        return None
    order.failure_code, order.failure_reason, order.stop_outcome = code, reason, ""
    move(order, State.FAILED, now=now, reason=reason, actor=actor, task=task, data={"code": code, **(data or {})},
         extra_fields=("failure_code", "failure_reason", "stop_outcome"))
    if order.job_ref:
        outbox.enqueue(TASK_TERMINATE, [order.pk, order.offer_id, order.job_ref])
    return order


@transaction.atomic
def order_note_once(order_id: int, attempt: int, *, reason: str, task: str = "", data: dict | None = None,
                    now: datetime | None = None) -> bool:
    """Record an event (no state change) unless the order already has one with this reason (e.g. billing's
    low-credit warning, repeated by every meter reading). True when it was written."""
    order = locked(order_id)
    if order.attempt != attempt or order.finished or order.events.filter(reason=reason[:300]).exists():
        return False
    note(order, now=now or timezone.now(), reason=reason, task=task, data={"attempt": attempt, **(data or {})})
    return True


@transaction.atomic
def order_expire(order_id: int, *, task: str, now: datetime | None = None) -> Order | None:
    """reserved -> expired: the reservation was never confirmed in time."""
    now = now or timezone.now()
    order = locked(order_id)
    if order.state != State.RESERVED:
        return None
    order.failure_code, order.failure_reason = "reservation_expired", "the reservation expired before it proceeded"
    move(order, State.EXPIRED, now=now, reason="reservation expired", task=task,
         extra_fields=("failure_code", "failure_reason"))
    return order
