"""The reconciler (Celery beat, every 30 s): repairs what a lost message, a crashed worker or a Redis outage left.

1. Expires reservations of orders that never left `reserved` (-> expired, capacity freed).
2. Re-drives in-flight orders (queued, provisioning, running, stopping) that no step touched for
   ORDERS_STUCK_AFTER_S: it enqueues the state's step again (tasks are idempotent); after ORDERS_MAX_REDRIVES
   re-drives in the same state it fails the order with code `stuck` (a job that exists is terminated). An order
   with an outbox row waiting to be relayed is left to step 4 (after a Redis outage, re-driving those too would
   send the step of every order placed during the outage twice).
3. Releases any active reservation whose order is finished (a safety net; transitions release in-transaction).
4. Relays outbox rows that were not published after commit (Redis was down). A relayed step counts as progress
   for its order (`checked_at`), so the order gets a full ORDERS_STUCK_AFTER_S to run it before a re-drive.

Only one reconciler runs at a time: a lease row taken with a conditional UPDATE (works on PostgreSQL and SQLite
without holding a transaction open); a crashed holder's lease runs out after ORDERS_RECONCILER_LEASE_S (120).
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from marketplace.orders import config
from marketplace.orders.models import CapacityUnit, Lease, Order, Reservation
from marketplace.orders.services import outbox, reservations
from marketplace.orders.services.lifecycle import TASK_METER, TASK_POLL, TASK_PROVISION, TASK_STOP, locked, note
from marketplace.orders.services.transitions import order_begin_stop, order_expire, order_fail
from marketplace.orders.states import FINAL, IN_FLIGHT, State
from marketplace.services.catalog_version import catalog_bump

log = logging.getLogger(__name__)
LEASE_NAME = "orders-reconciler"
BATCH = 200
TASK = "reconciler"


@dataclass
class ReconcileReport:
    expired: int = 0
    redriven: int = 0
    failed_stuck: int = 0
    orphan_reservations: int = 0
    units_repaired: int = 0
    outbox_sent: int = 0
    outbox_failed: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def lease_acquire(name: str, holder: str, now: datetime, seconds: float | None = None) -> bool:
    seconds = config.reconciler_lease_s() if seconds is None else seconds
    Lease.objects.get_or_create(name=name)
    taken = Lease.objects.filter(Q(held_until__isnull=True) | Q(held_until__lt=now), name=name).update(
        holder=holder, held_until=now + timedelta(seconds=seconds))
    return taken == 1


def lease_release(name: str, holder: str) -> None:
    Lease.objects.filter(name=name, holder=holder).update(holder="", held_until=None)


def reconcile(now: datetime | None = None) -> ReconcileReport | None:
    """One pass. None when another reconciler holds the lease."""
    now = now or timezone.now()
    holder = f"{socket.gethostname()}:{os.getpid()}:{now.timestamp()}"
    if not lease_acquire(LEASE_NAME, holder, now):
        return None
    report = ReconcileReport()
    try:
        report.expired = _expire_reservations(now)
        report.redriven, report.failed_stuck = _redrive_stuck(now, skip=outbox.pending_order_ids(now))
        report.orphan_reservations = _release_orphans(now)
        report.units_repaired = reservations.repair_held()
        relayed: list[list] = []
        report.outbox_sent, report.outbox_failed = outbox.relay_pending(now, sent_args=relayed)
        _relayed_is_progress({args[0] for args in relayed if args}, now)
    finally:
        lease_release(LEASE_NAME, holder)
    if any(report.as_dict().values()):
        log.info("orders reconciler: %s", report.as_dict())
    return report


def _expire_reservations(now: datetime) -> int:
    stale = (Reservation.objects.filter(active=True, expires_at__lt=now, order__state=State.RESERVED)
             .values_list("order_id", flat=True).distinct()[:BATCH])
    return sum(1 for order_id in list(stale) if order_expire(order_id, task=TASK, now=now))


def _redrive_stuck(now: datetime, skip: set[int]) -> tuple[int, int]:
    cutoff = now - timedelta(seconds=config.stuck_after_s())
    stuck = (Order.objects.filter(state__in=[s.value for s in IN_FLIGHT], checked_at__lt=cutoff)
             .exclude(pk__in=skip)
             .order_by("checked_at").values_list("pk", flat=True)[:BATCH])
    redriven = failed = 0
    for order_id in list(stuck):
        outcome = order_redrive(order_id, cutoff=cutoff, now=now)
        redriven += outcome == "redriven"
        failed += outcome == "failed"
    return redriven, failed


def _step_for(order: Order) -> tuple[str, list]:
    state = State(order.state)
    if state == State.QUEUED or (state == State.PROVISIONING and not order.job_ref):
        return TASK_PROVISION, [order.pk, order.attempt]
    if state == State.PROVISIONING:
        return TASK_POLL, [order.pk, order.attempt]
    if state == State.RUNNING:
        return TASK_METER, [order.pk, order.attempt]
    return TASK_STOP, [order.pk]


def order_redrive(order_id: int, *, cutoff: datetime, now: datetime) -> str:
    """'redriven', 'failed' or 'skipped' (the order moved on since the scan)."""
    with transaction.atomic():
        order = locked(order_id)
        if order.state not in IN_FLIGHT or order.checked_at >= cutoff:
            return "skipped"
        if order.redrives < config.max_redrives():
            task, args = _step_for(order)
            order.redrives += 1
            note(order, now=now, reason=f"re-driven by the reconciler ({order.redrives}/{config.max_redrives()}): "
                                        f"no progress since {order.checked_at.isoformat()}",
                 task=TASK, data={"task": task, "args": args}, extra_fields=("redrives",))
            outbox.enqueue(task, args)
            return "redriven"
        state, has_job = State(order.state), bool(order.job_ref)
    reason = f"stuck in {state.value}: no progress after {config.max_redrives()} re-drives"
    if state in (State.PROVISIONING, State.RUNNING) and has_job:
        done = order_begin_stop(order_id, outcome=State.FAILED, code="stuck", reason=reason, task=TASK, now=now)
    else:
        done = order_fail(order_id, code="stuck", reason=reason, task=TASK, now=now)
    return "failed" if done else "skipped"


def _relayed_is_progress(order_ids: set[int], now: datetime) -> None:
    if order_ids:
        Order.objects.filter(pk__in=order_ids, state__in=[s.value for s in IN_FLIGHT], checked_at__lt=now).update(
            checked_at=now)


def _release_orphans(now: datetime) -> int:
    with transaction.atomic():
        orphans = Reservation.objects.filter(active=True, order__state__in=[s.value for s in FINAL])
        CapacityUnit.objects.filter(pk__in=orphans.values("unit_id")).update(held=False)
        released = orphans.update(active=False, released_at=now, release_reason="order finished (reconciler)")
        if released:
            catalog_bump()  # the freed nodes show in search again
    return released
