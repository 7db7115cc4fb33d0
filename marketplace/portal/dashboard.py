"""The provider dashboard's figures and chart series (plain dicts, rendered as JSON for Chart.js).

- Utilisation: accelerator-seconds run by orders on the provider's offers in each bucket, divided by the
  accelerators the provider lists now (capacity history is not kept, so the denominator is today's capacity).
- Earnings: what the ledger owes the provider per day (usage net of the platform fee, refunds and write-offs:
  every line on its payable account except transfers out), so the chart agrees with the books.
- Orders: orders placed on the provider's capacity per day, by how they ended.
- Reliability: the score the order pipeline maintains, and the outcomes it was computed from.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import F, Sum
from django.utils import timezone

from marketplace.billing.models import AccountKind, EntryKind, JournalLine
from marketplace.models import Offer, Provider
from marketplace.orders.models import Order

RANGES = {"1h": (timedelta(minutes=1), 60, "%H:%M"), "24h": (timedelta(hours=1), 24, "%H:%M"),
          "14d": (timedelta(days=1), 14, "%b %d")}
DEFAULT_RANGE = "24h"
OUTCOMES = ("completed", "failed", "cancelled", "active")
NOT_EARNINGS = (EntryKind.TRANSFER, EntryKind.TRANSFER_REVERSAL)


def _buckets(now: datetime, step: timedelta, count: int) -> list[datetime]:
    if step >= timedelta(days=1):
        end = now.replace(hour=0, minute=0, second=0, microsecond=0) + step
    elif step >= timedelta(hours=1):
        end = now.replace(minute=0, second=0, microsecond=0) + step
    else:
        end = now.replace(second=0, microsecond=0) + step
    return [end - step * (count - i) for i in range(count)]


def listed_accelerators(provider: Provider) -> int:
    total = (Offer.objects.filter(provider=provider, status=Offer.Status.LISTED)
             .aggregate(n=Sum(F("nodes_available") * F("accelerator_count")))["n"])
    return int(total or 0)


def utilisation(provider: Provider, starts: list[datetime], step: timedelta, now: datetime) -> list[float]:
    """Percent of today's listed accelerators busy with running orders, per bucket."""
    capacity = listed_accelerators(provider)
    window_start, window_end = starts[0], starts[-1] + step
    busy = [0.0] * len(starts)
    runs = (Order.objects.filter(offer__provider=provider, running_at__isnull=False, running_at__lt=window_end)
            .exclude(finished_at__lt=window_start)
            .values_list("running_at", "finished_at", "nodes", "accelerator_count"))
    for running_at, finished_at, nodes, per_node in runs:
        end = finished_at or now
        for i, start in enumerate(starts):
            overlap = (min(end, start + step) - max(running_at, start)).total_seconds()
            if overlap > 0:
                busy[i] += overlap * nodes * per_node
    spans = [max(1.0, min(step, now - start).total_seconds()) for start in starts]  # the current bucket is partial
    return [round(100 * b / (capacity * span), 2) if capacity and start <= now else 0.0
            for b, span, start in zip(busy, spans, starts, strict=True)]


def earnings(provider: Provider, starts: list[datetime], step: timedelta) -> list[str]:
    """USD earned per bucket (decimal strings), from the provider's payable account in the ledger."""
    lines = (JournalLine.objects.filter(account__kind=AccountKind.PROVIDER_PAYABLE, account__provider=provider,
                                        entry__created_at__gte=starts[0], entry__created_at__lt=starts[-1] + step)
             .exclude(entry__kind__in=NOT_EARNINGS).values_list("entry__created_at", "amount"))
    totals = [Decimal("0.00")] * len(starts)
    for at, amount in lines:
        index = int((at - starts[0]) / step)
        totals[index] -= amount  # credit-normal: money owed to the provider is a negative line
    return [str(t) for t in totals]


def _outcome(state: str) -> str:
    return state if state in ("completed", "failed", "cancelled") else "active"


def orders_by_outcome(provider: Provider, starts: list[datetime], step: timedelta) -> dict[str, list[int]]:
    counts: dict[str, list[int]] = {o: [0] * len(starts) for o in OUTCOMES}
    rows = Order.objects.filter(offer__provider=provider, created_at__gte=starts[0],
                                created_at__lt=starts[-1] + step).values_list("created_at", "state")
    for created_at, state in rows:
        counts[_outcome(state)][int((created_at - starts[0]) / step)] += 1
    return counts


COLOURS = {"completed": "#1d6b35", "failed": "#b0261c", "cancelled": "#8a5300", "active": "#1f4fa8"}


def _axis(text: str, **extra: Any) -> dict[str, Any]:
    return {"title": {"display": True, "text": text}, **extra}


def _reliability_chart(score: Decimal | None) -> dict[str, Any]:
    value = float(score or 0)
    return {"type": "doughnut", "labels": ["score", "rest"],
            "datasets": [{"label": "Reliability", "data": [value, 1 - value],
                          "backgroundColor": ["#1d6b35", "#e3e6ec"], "borderColor": ["#1d6b35", "#e3e6ec"]}]}


def provider_dashboard(provider: Provider, range_key: str = DEFAULT_RANGE, now: datetime | None = None
                       ) -> dict[str, Any]:
    now = now or timezone.now()
    range_key = range_key if range_key in RANGES else DEFAULT_RANGE
    step, count, label_format = RANGES[range_key]
    starts = _buckets(now, step, count)
    labels = [s.strftime(label_format) for s in starts]
    earned = earnings(provider, starts, step)
    by_outcome = orders_by_outcome(provider, starts, step)
    outcomes = Counter(_outcome(s) for s in Order.objects.filter(offer__provider=provider)
                       .values_list("state", flat=True))
    busy = utilisation(provider, starts, step, now)
    return {
        "range": range_key,
        "capacity": listed_accelerators(provider),
        "utilisation": {"type": "line", "labels": labels, "y": _axis("% busy", suggestedMax=10),
                        "datasets": [{"label": "Accelerators busy (%)", "data": busy, "fill": True,
                                      "backgroundColor": "rgba(31,79,168,0.15)"}]},
        "earnings": {"type": "bar", "labels": labels, "y": _axis("USD"),
                     "datasets": [{"label": "Earned (USD)", "data": [float(e) for e in earned]}]},
        "earned_total": sum((Decimal(e) for e in earned), Decimal("0.00")),
        "orders": {"type": "bar", "labels": labels, "stacked": True, "y": _axis("orders"),
                   "datasets": [{"label": o, "data": by_outcome[o], "backgroundColor": COLOURS[o],
                                 "borderColor": COLOURS[o]} for o in OUTCOMES]},
        "orders_total": sum(sum(v) for v in by_outcome.values()),
        "outcomes": {o: outcomes.get(o, 0) for o in OUTCOMES},
        "reliability": None if provider.reliability_score is None else float(provider.reliability_score),
        "reliability_chart": _reliability_chart(provider.reliability_score),
    }
