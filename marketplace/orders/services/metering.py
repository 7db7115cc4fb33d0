"""What the meter task records while a job runs: log output and usage -> metered_usd.

Money: metered_usd = node price per hour x nodes x hours run, where hours run = the driver's elapsed seconds
capped at the order's duration; rounded once, to the cent (half up), and never above the budget cap. It is
recomputed from the elapsed time each time (not accumulated), so repeated or redelivered meter runs agree.
"""

from __future__ import annotations

from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal

from django.db import transaction
from django.utils import timezone

from marketplace.orders.models import Order, OrderLogChunk
from marketplace.orders.services.lifecycle import locked
from marketplace.orders.services.meter_sweep import meter_delay_s, meter_due_at, run_seconds
from workers.drivers.base import LogChunk, Usage

CENT = Decimal("0.01")


def metered_amount(order: Order, elapsed_s: float) -> tuple[Decimal, float]:
    """(USD, billed seconds) for a run of `elapsed_s` seconds."""
    seconds = max(0.0, min(float(elapsed_s), float(order.duration_hours) * 3600))
    hours = Decimal(f"{seconds:.3f}") / Decimal(3600)
    usd = (order.node_price_per_hour * order.nodes * hours).quantize(CENT, rounding=ROUND_HALF_UP)
    if order.budget_cap_usd is not None:
        usd = min(usd, order.budget_cap_usd)
    return usd, seconds


def budget_reached(order: Order) -> bool:
    return order.budget_cap_usd is not None and order.metered_usd >= order.budget_cap_usd


@transaction.atomic
def order_append_log(order_id: int, attempt: int, read_from: int, chunk: LogChunk,
                     now: datetime | None = None) -> bool:
    """Store a chunk read at driver offset `read_from`. A stale or repeated read (offset moved on) is dropped."""
    order = locked(order_id)
    if order.attempt != attempt or order.log_offset != read_from or chunk.next_offset < read_from:
        return False
    if chunk.text:
        OrderLogChunk.objects.create(order=order, attempt=attempt, offset=order.log_chars, text=chunk.text)
    order.log_offset = chunk.next_offset
    order.log_chars += len(chunk.text)
    order.checked_at = now or timezone.now()
    order.save(update_fields=["log_offset", "log_chars", "checked_at"])
    return True


@transaction.atomic
def order_record_usage(order_id: int, attempt: int, usage: Usage, now: datetime | None = None) -> Order | None:
    """Update metered_usd from the driver's usage (monotonic: a smaller reading never lowers it), and when the
    next meter run is due (meter_due_at)."""
    order = locked(order_id)
    if order.attempt != attempt or order.finished:
        return None
    usd, seconds = metered_amount(order, usage.elapsed_s)
    if usd > order.metered_usd or seconds > order.metered_seconds:
        order.metered_usd = max(usd, order.metered_usd)
        order.metered_seconds = max(seconds, order.metered_seconds)
    now = now or timezone.now()
    order.checked_at, order.redrives = now, 0
    order.meter_due_at = meter_due_at(now, meter_delay_s(order, run_seconds(order, usage.elapsed_s, now)))
    order.save(update_fields=["metered_usd", "metered_seconds", "checked_at", "redrives", "meter_due_at"])
    return order
