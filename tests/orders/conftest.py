"""Fixtures of the order tests: offers with capacity, quotes over them, the simulated driver in a private Redis
namespace, and a real Celery worker (tests/worker_process.py) wired to this test's queue and namespace.

Placing an order pays for it (docs/payments.md): every customer these tests make can pay from prepaid credit,
through an operator's overdraft allowance (billing_set_overdraft: no Stripe call, no ledger entry until usage is
charged). Tests of card payment and top-ups use the fake Stripe (`fake`, from tests/fakes.py)."""

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

from broker.celery_routing import queues_for
from tests import fakes
from tests.worker_process import CeleryWorker, database_url_of, redis_url_for_tests

fake_server = fakes.fake_server  # the shared fake Stripe fixtures, registered for this package
fake = fakes.fake
CREDIT_LINE = Decimal("100000.00")

FAST_PIPELINE_ENV = {
    "ORDERS_POLL_INTERVAL_S": "0.2",
    "ORDERS_METER_INTERVAL_S": "0.3",
    "ORDERS_RETRY_BASE_S": "0.05",
    "ORDERS_RETRY_CAP_S": "0.2",
    "ORDERS_RETRY_MAX": "2",
}


@pytest.fixture
def make_user(make_user):
    """tests/conftest.py's make_user; customers get an operator's credit line to pay for their orders."""
    from marketplace.billing.services.customers import billing_set_overdraft
    from marketplace.models import User
    from marketplace.models.accounts import Role

    def make(username: str, role: str = Role.CUSTOMER, provider=None, *, credit: bool = True, **kw):
        user = make_user(username, role, provider, **kw)
        if role == Role.CUSTOMER and credit:
            operator = User.objects.filter(username="orders-credit-operator").first() or make_user(
                "orders-credit-operator", Role.OPERATOR, is_staff=True)
            billing_set_overdraft(operator=operator, customer=user, limit=CREDIT_LINE)
        return user

    return make


@pytest.fixture(autouse=True)
def private_queue(settings) -> str:
    """Whatever the services enqueue in this test goes to a queue of its own (never the default `broker`)."""
    queue = f"test-orders-{uuid.uuid4().hex[:10]}"
    settings.CELERY_TASK_DEFAULT_QUEUE = queue
    yield queue
    url = redis_url_for_tests()
    if url is not None:
        import redis

        redis.Redis.from_url(url).delete(*queue_keys(queue))


def queue_keys(queue: str) -> list[str]:
    """The Redis keys kombu keeps for a base queue and its kind queues (the messages and exchange bindings)."""
    return [key for q in queues_for(base=queue) for key in (q, f"_kombu.binding.{q}", f"_kombu.binding_permanent.{q}")]


def queued_tasks(redis_url: str, queue: str) -> list[tuple[str, str]]:
    """(task name, args repr) of the messages waiting in a Celery queue on Redis, oldest first."""
    import redis

    raw = redis.Redis.from_url(redis_url).lrange(queue, 0, -1)
    messages = [json.loads(item) for item in reversed(raw)]  # kombu LPUSHes; consumers BRPOP
    return [(m["headers"]["task"], m["headers"]["argsrepr"]) for m in messages]


def _redis_url_or_skip() -> str:
    url = redis_url_for_tests()
    if url is None:
        from django.conf import settings

        pytest.skip(f"no Redis answers at REDIS_URL={settings.REDIS_URL} (CI runs one on 127.0.0.1:6379)")
    return url


@pytest.fixture
def redis_url() -> str:
    return _redis_url_or_skip()


@pytest.fixture(scope="module")
def sim_namespace():
    """One simulated-driver namespace per test module (shared by its tests and its workers), deleted at the end.
    Zero boot latency unless a test configures its own offer (offers have unique external ids)."""
    from workers.drivers.simulated import SimulatedDriver

    url = _redis_url_or_skip()
    namespace = f"orders-test-{uuid.uuid4().hex[:10]}"
    driver = SimulatedDriver(redis_url=url, namespace=namespace)
    driver.configure(boot_latency_s=0.0)
    yield namespace
    driver.reset()


@pytest.fixture
def sim(redis_url, sim_namespace, monkeypatch):
    """The simulated driver of this module's namespace; the pipeline in this process uses it too."""
    from workers.drivers.simulated import SimulatedDriver

    monkeypatch.setenv("BROKER_DRIVER_CONFIG", json.dumps({"simulated": {"namespace": sim_namespace}}))
    return SimulatedDriver(redis_url=redis_url, namespace=sim_namespace)


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


def _new_worker(*, queue: str, namespace: str, redis_url: str, log_path: Path, concurrency: int,
                env: dict[str, str]) -> OrdersWorker:
    extra = {**FAST_PIPELINE_ENV, "BROKER_DRIVER_CONFIG": json.dumps({"simulated": {"namespace": namespace}}),
             "CELERY_QUEUE": queue, **env}
    worker = OrdersWorker(database_url=database_url_of(connection.settings_dict), redis_url=redis_url,
                          log_path=log_path, concurrency=concurrency, extra_env=extra)
    worker.queue = queue
    worker.args[worker.args.index("--queues") + 1] = ",".join(queues_for(worker.kinds, queue))
    worker.args[worker.args.index("--hostname") + 1] = f"{queue}-{log_path.stem}@%h"
    return worker


@pytest.fixture(scope="module")
def module_worker(django_db_setup, django_db_blocker, sim_namespace, tmp_path_factory):
    """One worker (2 processes) for a whole test module, on its own queue, against the test database."""
    url = _redis_url_or_skip()
    queue = f"test-orders-{uuid.uuid4().hex[:10]}"
    worker = _new_worker(queue=queue, namespace=sim_namespace, redis_url=url, concurrency=2, env={},
                         log_path=tmp_path_factory.mktemp("worker") / "module-worker.log")
    with django_db_blocker.unblock():
        worker.start()
    yield worker
    worker.stop()
    import redis

    redis.Redis.from_url(url).delete(*queue_keys(queue))
    assert "Traceback" not in worker.log(), worker.log()[-5000:]


@pytest.fixture
def worker(transactional_db, module_worker, sim, private_queue, settings) -> OrdersWorker:
    """The module's worker; what this test's services enqueue after commit goes to its queue."""
    settings.CELERY_TASK_DEFAULT_QUEUE = module_worker.queue
    yield module_worker
    settle_before_flush(module_worker.queue)


def settle_before_flush(queue: str, timeout: float = 10.0) -> None:
    """Wait (at most `timeout`) until nothing waits in the module worker's queues and no other session is inside a
    transaction on the test database. The flush that ends a transactional test (TRUNCATE) deadlocked once in CI
    with a billing task the shared worker was still running for the test that had just finished."""
    import redis

    client = redis.Redis.from_url(_redis_url_or_skip())
    deadline = time.monotonic() + timeout
    quiet = 0
    while quiet < 3 and time.monotonic() < deadline:
        busy = any(client.llen(q) for q in queues_for(base=queue)) or _other_sessions_in_transaction()
        quiet = 0 if busy else quiet + 1
        time.sleep(0.05)


def _other_sessions_in_transaction() -> bool:
    if connection.vendor != "postgresql":
        return False
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                       "AND pid <> pg_backend_pid() AND state IN ('active', 'idle in transaction')")
        return cursor.fetchone()[0] > 0


@pytest.fixture
def start_worker(transactional_db, redis_url, sim, sim_namespace, private_queue, tmp_path: Path):
    """start_worker(concurrency=2, **env) -> a started OrdersWorker of this test alone, on the test's queue."""
    workers: list[OrdersWorker] = []

    def start(concurrency: int = 2, **env: str) -> OrdersWorker:
        worker = _new_worker(queue=private_queue, namespace=sim_namespace, redis_url=redis_url,
                             log_path=tmp_path / f"worker-{len(workers)}.log", concurrency=concurrency, env=env)
        workers.append(worker)
        return worker.start()

    yield start
    for worker in workers:
        worker.stop()
