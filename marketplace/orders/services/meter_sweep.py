"""When a running order is metered next, and the beat sweep that sends the meter runs that are due.

A running order's next meter run is due after the meter interval (ORDERS_METER_INTERVAL_S, default 30 s), or at the
end of its duration when that comes sooner; the row keeps that moment in `meter_due_at` (set when it starts
running and by every meter run). Who sends the run:
- due sooner than the sweep's interval (ORDERS_METER_SWEEP_S, default 5 s; a job that already finished, a
  short interval): the step that set it sends a countdown message, as every poll does (pipeline.py);
- later: `meter_due`, sent by beat every ORDERS_METER_SWEEP_S, sends a plain message for every running order whose
  moment has passed. A countdown message of 30 s or an hour would be taken by a worker at once and held unacked
  until then (kombu's Redis transport: ETA messages bypass the prefetch limit, are redelivered if they outlast the
  visibility timeout, and every running order would keep one in a worker's memory); the sweep keeps them in the
  database instead. On the orders benchmark that message had cost a worker about as much CPU as a whole no-op
  task, per order, inside the create -> running window.
A run sent as a countdown message gets a meter_due_at a lease after it is due (the sweep is only its backstop).
The sweep claims the rows it sends by moving `meter_due_at` a lease ahead (FOR UPDATE SKIP LOCKED: two sweeps never
send one order twice); the meter run sets the next moment, and a message lost on the way is sent again once the
lease has passed (the reconciler still re-drives a running order nothing touched for ORDERS_STUCK_AFTER_S).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from marketplace.orders import config
from marketplace.orders.models import Order
from marketplace.orders.states import State

log = logging.getLogger(__name__)
MIN_DELAY_S = 0.05
MIN_LEASE_S = 60.0


def run_seconds(order: Order, elapsed_s: float, now: datetime) -> float:
    """How long the order's job has run: the driver's elapsed seconds, or the time since running when longer."""
    return max(elapsed_s, (now - order.running_at).total_seconds() if order.running_at else 0.0)


def meter_delay_s(order: Order, ran_s: float) -> float:
    """Seconds until the next meter run of an order that has run `ran_s` seconds: the meter interval, or what is
    left of its duration when that is shorter (at least 50 ms)."""
    return max(MIN_DELAY_S, min(config.meter_interval_s(), float(order.duration_hours) * 3600 - ran_s))


def sent_by_sweep(delay_s: float) -> bool:
    """A meter run due `delay_s` from now is left to the sweep (no countdown message)."""
    return delay_s >= config.meter_sweep_s()


def meter_due_at(now: datetime, delay_s: float) -> datetime:
    """The row's meter_due_at for a run due `delay_s` after `now`: then, when the sweep sends it; when the step
    sends it as a countdown message, a lease later, so that the sweep only sends again a message that was lost
    (not a second run beside every countdown message)."""
    return now + timedelta(seconds=delay_s if sent_by_sweep(delay_s) else delay_s + lease_s())


def lease_s() -> float:
    return max(config.meter_interval_s(), config.meter_sweep_s(), MIN_LEASE_S)


def meter_due(now: datetime | None = None, limit: int = 500) -> int:
    """Send the meter run of each running order whose meter_due_at has passed (the earliest first, at most
    `limit`). Returns how many were sent. Claimed and committed first, sent after the commit."""
    from marketplace.orders.services.lifecycle import TASK_METER
    from marketplace.orders.services.outbox import send_task

    now = now or timezone.now()
    with transaction.atomic():
        due = list(Order.objects.select_for_update(skip_locked=True)
                   .filter(state=State.RUNNING.value, meter_due_at__lte=now)
                   .order_by("meter_due_at").values_list("pk", "attempt")[:limit])
        if due:
            Order.objects.filter(pk__in=[pk for pk, _ in due]).update(
                meter_due_at=now + timedelta(seconds=lease_s()))
    for sent, (pk, attempt) in enumerate(due):
        try:
            send_task(TASK_METER, (pk, attempt))
        except Exception as exc:  # Redis down: the rest are sent again once their lease has passed
            log.warning("meter_due: could not send the meter run of order %s: %s", pk, exc)
            return sent
    return len(due)
