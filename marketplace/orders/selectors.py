"""Reads of orders: a user's own orders (operators see all), one order, its events and its log."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import QuerySet

from marketplace.errors import NotFoundError
from marketplace.models import User
from marketplace.orders.models import Order, OrderEvent, OrderLogChunk

MAX_LOG_CHARS = 64 * 1024


# What the API and portal render of an order (the rest of the joined rows stays in the database).
RENDERED = ("id", "state", "stop_outcome", "quote_id", "nodes", "accelerator_count", "command", "image", "env",
            "duration_hours", "budget_cap_usd", "attempt", "job_ref", "driver", "failure_code", "failure_reason",
            "node_price_per_hour", "metered_usd", "metered_seconds", "log_chars", "created_at", "updated_at",
            "provisioning_at", "running_at", "finished_at", "customer__username", "offer__name",
            "offer__provider__slug", "offer__provider__name", "offer__accelerator__canonical_name",
            "offer__region__key")


def orders_visible(user: User) -> QuerySet[Order]:
    qs = Order.objects.select_related("customer", "offer__provider", "offer__accelerator", "offer__region")
    return qs if user.is_operator else qs.filter(customer=user)


def orders_rendered(user: User) -> QuerySet[Order]:
    """orders_visible with only the columns the API renders (a quarter of the joined columns)."""
    return orders_visible(user).only(*RENDERED)


def order_rendered(user: User, order_id: int) -> Order:
    order = orders_rendered(user).filter(pk=order_id).first()
    if order is None:
        raise NotFoundError(f"No order {order_id}.", code="order_not_found")
    return order


def order_for_user(user: User, order_id: int) -> Order:
    """The order if the user may see it; another customer's order is the same 404 as a missing one."""
    order = orders_visible(user).filter(pk=order_id).first()
    if order is None:
        raise NotFoundError(f"No order {order_id}.", code="order_not_found")
    return order


def order_events(order: Order) -> QuerySet[OrderEvent]:
    return OrderEvent.objects.filter(order=order).select_related("actor").order_by("id")


@dataclass(frozen=True)
class LogSlice:
    offset: int
    next_offset: int
    text: str
    complete: bool  # the order is finished and every stored character has been returned


def order_log(order: Order, offset: int = 0, limit: int = MAX_LOG_CHARS) -> LogSlice:
    """Characters [offset, offset + limit) of the order's log as stored so far."""
    offset = max(0, offset)
    chunks = OrderLogChunk.objects.filter(order=order).order_by("offset")
    first = chunks.filter(offset__lte=offset).order_by("-offset").values_list("offset", flat=True).first()
    parts: list[str] = []
    start = first if first is not None else offset
    for chunk_offset, text in chunks.filter(offset__gte=start).values_list("offset", "text").iterator():
        parts.append(text)
        if chunk_offset + len(text) - offset >= limit:
            break
    whole = "".join(parts)
    text = whole[max(0, offset - start): max(0, offset - start) + limit]
    next_offset = offset + len(text)
    complete = order.finished and next_offset >= order.log_chars
    return LogSlice(offset=offset, next_offset=next_offset, text=text, complete=complete)


def held_nodes(offer_ids: list[int]) -> dict[int, int]:
    """{offer id: nodes held by active reservations} (offers with none are absent): free = nodes_available - held.
    One query, for the search and the engine if they want to show what is free right now."""
    from django.db.models import Count

    from marketplace.orders.models import Reservation

    rows = (Reservation.objects.filter(offer_id__in=offer_ids, active=True).values("offer_id")
            .annotate(n=Count("id")).values_list("offer_id", "n"))
    return dict(rows)
