"""Helpers shared by the crash tests (tests/orders/test_worker_faults.py and tests/faults/): placing orders through
the service, waiting for a batch to finish, counting provider jobs per order, cleaning what killed workers left."""

from __future__ import annotations

import json
import uuid

import redis

from marketplace.orders.models import Order
from marketplace.orders.services.placement import order_place
from tests.orders.conftest import job, placement, wait_for


def forget_unacked(redis_url: str, queue: str) -> None:
    """Drop what killed workers left unacknowledged on `queue` and its kind queues (`<queue>.<kind>`): Redis would
    restore it after the visibility timeout, an hour; the test is over by then."""
    client = redis.Redis.from_url(redis_url)
    for tag, raw in client.hgetall("unacked").items():
        routing_key = json.loads(raw)[2]
        if routing_key == queue or str(routing_key).startswith(f"{queue}."):
            client.hdel("unacked", tag)
            client.zrem("unacked_index", tag)


def place(customer, make_quote, offer, **kw) -> Order:
    """One order on `offer` from a fresh quote, placed (reserved, paid from credit, queued) by the service."""
    order, _ = order_place(user=customer, idempotency_key=uuid.uuid4().hex,
                           data=placement(quote_id=str(make_quote(customer, [offer]).id)), **kw)
    return order


def place_quote(customer, quote, **job_fields) -> Order:
    """One order from `quote` (its alternatives in rank order), with the default job changed by `job_fields`."""
    order, _ = order_place(user=customer, idempotency_key=uuid.uuid4().hex,
                           data=placement(job(**job_fields), quote_id=str(quote.id)))
    return order


def wait_all_finished(order_ids: list[int], timeout: float) -> None:
    wait_for(lambda: not Order.objects.filter(pk__in=order_ids)
             .exclude(state__in=["completed", "failed", "cancelled", "expired"]).exists(),
             timeout=timeout, interval=0.25, message=f"{len(order_ids)} orders to finish")


def jobs_per_order(sim, orders: list[Order]) -> dict[int, int]:
    """Provider jobs the simulated driver started for each order, over all its attempts' idempotency keys."""
    return {o.pk: sum(sim.jobs_created(o.provider_key(n)) for n in range(1, o.attempt + 1)) for o in orders}
