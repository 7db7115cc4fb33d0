"""Fixtures of the order tests: offers with capacity, quotes over them, the simulated driver in a private Redis
namespace, and a real Celery worker (tests/worker_process.py) wired to this test's queue and namespace."""

from __future__ import annotations

import json
import time
import uuid
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone

from tests.worker_process import CeleryWorker, database_url_of, redis_url_for_tests

FAST_PIPELINE_ENV = {
    "ORDERS_POLL_INTERVAL_S": "0.2",
    "ORDERS_METER_INTERVAL_S": "0.3",
    "ORDERS_RETRY_BASE_S": "0.05",
    "ORDERS_RETRY_CAP_S": "0.2",
}


@pytest.fixture
def redis_url() -> str:
    url = redis_url_for_tests()
    if url is None:
        from django.conf import settings

        pytest.skip(f"no Redis answers at REDIS_URL={settings.REDIS_URL} (CI runs one on 127.0.0.1:6379)")
    return url


@pytest.fixture
def sim(redis_url, monkeypatch):
    """The simulated driver in a namespace of its own (zero boot latency unless a test configures it); the
    pipeline in this process and in the worker use the same namespace through BROKER_DRIVER_CONFIG."""
    from workers.drivers.simulated import SimulatedDriver

    namespace = f"orders-test-{uuid.uuid4().hex[:10]}"
    driver = SimulatedDriver(redis_url=redis_url, namespace=namespace)
    driver.configure(boot_latency_s=0.0)
    monkeypatch.setenv("BROKER_DRIVER_CONFIG", json.dumps({"simulated": {"namespace": namespace}}))
    yield driver
    driver.reset()


@pytest.fixture
def make_node_offer(make_offer):
    def make(provider, *, nodes: int = 2, price: str = "20.0000", external_id: str = "", **kw):
        return make_offer(provider, nodes_available=nodes, price_per_hour=Decimal(price),
                          external_id=external_id or f"{provider.slug}-{uuid.uuid4().hex[:8]}", **kw)

    return make


def alternative(offer, rank: int, nodes: int = 1) -> dict:
    price = offer.price_per_hour
    return {"rank": rank, "offer_id": offer.pk, "provider": offer.provider.slug,
            "accelerator": offer.accelerator.canonical_name, "count": offer.accelerator_count, "nodes": nodes,
            "region": offer.region.key, "node_price_per_hour": str(price), "price_per_hour": str(price * nodes),
            "est_hours": 1.0, "est_total_usd": str((price * nodes).quantize(Decimal("0.01")))}


@pytest.fixture
def make_quote():
    """A stored quote over the given offers (rank order), as the recommendations API would have made it."""
    from marketplace.models import Quote

    def make(user, offers, *, nodes: int = 1, expires_in: timedelta = timedelta(minutes=15)):
        now = timezone.now()
        return Quote.objects.create(user=user, request={"resources": {"nodes": nodes}}, objective="cost",
                                    alternatives=[alternative(o, i + 1, nodes) for i, o in enumerate(offers)],
                                    created_at=now, expires_at=now + expires_in)

    return make


def job(**kw) -> dict:
    body = {"command": "python train.py", "image": "", "env": {"EPOCHS": "3"}, "duration_hours": "1"}
    body.update(kw)
    return body


def placement(job_body: dict | None = None, **kw):
    """A PlacementInput the way the API's serializer builds it."""
    from marketplace.orders.serializers import OrderCreateSerializer

    data = {"job": job_body or job(), **kw}
    serializer = OrderCreateSerializer(data=data)
    assert serializer.is_valid(), serializer.errors
    return serializer.placement()


def wait_for(predicate, timeout: float = 30.0, interval: float = 0.05, message: str = ""):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {message or predicate}")
        time.sleep(interval)


def wait_for_state(order_id: int, states: set[str] | str, timeout: float = 30.0) -> object:
    from marketplace.orders.models import Order

    wanted = {states} if isinstance(states, str) else set(states)

    def reached():
        order = Order.objects.get(pk=order_id)
        return order if order.state in wanted else None

    try:
        return wait_for(reached, timeout, message=f"order {order_id} in {sorted(wanted)}")
    except AssertionError:
        from marketplace.orders.models import OrderEvent

        trail = list(OrderEvent.objects.filter(order_id=order_id).values_list("from_state", "to_state", "reason"))
        raise AssertionError(f"order {order_id} never reached {sorted(wanted)}; events: {trail}") from None


class OrdersWorker(CeleryWorker):
    """A real worker on a private queue, with the pipeline's intervals shortened and this test's driver namespace."""

    def __init__(self, *, extra_env: dict[str, str], **kw) -> None:
        super().__init__(**kw)
        self.env.update(extra_env)

    def kill(self) -> None:
        """SIGKILL the whole worker (main process and pool children): no warm shutdown, nothing acknowledged."""
        import os
        import signal

        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()


@pytest.fixture
def start_worker(transactional_db, redis_url, sim, settings, tmp_path: Path):
    """start_worker(**env) -> a started OrdersWorker; the test process's on_commit sends go to its queue."""
    import os

    queue = f"test-orders-{uuid.uuid4().hex[:10]}"
    settings.CELERY_TASK_DEFAULT_QUEUE = queue
    workers: list[OrdersWorker] = []

    def start(concurrency: int = 2, **env: str) -> OrdersWorker:
        extra = {**FAST_PIPELINE_ENV, "BROKER_DRIVER_CONFIG": os.environ["BROKER_DRIVER_CONFIG"], **env}
        worker = OrdersWorker(database_url=database_url_of(connection.settings_dict), redis_url=redis_url,
                              log_path=tmp_path / f"worker-{len(workers)}.log", concurrency=concurrency,
                              extra_env=extra)
        worker.queue = queue
        worker.env["CELERY_QUEUE"] = queue
        worker.args[worker.args.index("--queues") + 1] = queue
        worker.args[worker.args.index("--hostname") + 1] = f"{queue}-{len(workers)}@%h"
        workers.append(worker)
        return worker.start()

    yield start
    for worker in workers:
        worker.stop()
    import redis

    client = redis.Redis.from_url(redis_url)
    client.delete(queue)
