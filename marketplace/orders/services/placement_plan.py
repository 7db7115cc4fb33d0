"""The plan an order fails over along: the quote's alternatives in rank order, as stored on the order."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from marketplace.models import Offer
from marketplace.orders.models import Order

PLAN_FIELDS = ("rank", "offer_id", "provider", "accelerator", "count", "nodes", "region", "node_price_per_hour",
               "price_per_hour", "est_hours", "est_total_usd")


@dataclass(frozen=True, slots=True)
class Alternative:
    rank: int
    offer_id: int
    nodes: int
    count: int
    node_price_per_hour: Decimal  # USD per node-hour, locked by the quote


def parse_alternative(raw: dict[str, Any]) -> Alternative | None:
    """One quote alternative; None when it lacks what an order needs (it is then never tried)."""
    try:
        nodes = int(raw["nodes"])
        if "node_price_per_hour" in raw:
            node_price = Decimal(str(raw["node_price_per_hour"]))
        else:  # per the whole configuration
            node_price = Decimal(str(raw["price_per_hour"])) / nodes
        alternative = Alternative(rank=int(raw.get("rank", 0)), offer_id=int(raw["offer_id"]), nodes=nodes,
                                  count=int(raw.get("count", 0)), node_price_per_hour=node_price)
    except (KeyError, TypeError, ValueError, ZeroDivisionError, InvalidOperation):
        return None
    if alternative.nodes < 1 or alternative.node_price_per_hour < 0:
        return None
    return alternative


def plan_from_quote(alternatives: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The subset of each alternative the order keeps."""
    return [{k: alt[k] for k in PLAN_FIELDS if k in alt} for alt in alternatives]


def alternatives_of(plan: list[dict[str, Any]]) -> Iterator[tuple[int, Alternative]]:
    for index, raw in enumerate(plan):
        alternative = parse_alternative(raw)
        if alternative is not None:
            yield index, alternative


def apply_alternative(order: Order, index: int, alternative: Alternative, offer: Offer) -> None:
    """Point the order at an alternative and its offer row (the caller saves and records the event)."""
    order.offer = offer
    order.plan_index = index
    order.nodes = alternative.nodes
    order.accelerator_count = offer.accelerator_count
    order.node_price_per_hour = alternative.node_price_per_hour.quantize(Decimal("0.0001"))
    order.driver = offer.driver
