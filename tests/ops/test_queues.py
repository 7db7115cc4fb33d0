"""Celery queues split by kind (broker/celery_routing.py): every task has a kind, routing follows the base queue at
routing time, and a real billing worker is served while the provisioning queue is backed up behind a hung worker."""

from __future__ import annotations

import os
import re
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import redis
from django.db import connection

from broker.celery_routing import KINDS, TASK_KINDS, kind_queue, queue_for, queues_for
from tests.worker_process import CeleryWorker, database_url_of, private_queue, redis_url_for_tests


def registered_tasks() -> set[str]:
    from broker.celery import app

    app.loader.import_default_modules()  # autodiscover workers.tasks.*, as a worker does at start
    return {name for name in app.tasks if not name.startswith("celery.")}


def test_every_registered_task_has_a_kind_and_every_kind_names_a_real_task() -> None:
    tasks = registered_tasks()
    assert len(tasks) >= 17
    assert tasks - set(TASK_KINDS) == set(), "a task without a queue kind: add it to broker/celery_routing.py"
    assert set(TASK_KINDS) - tasks == set(), "a queue kind for a task that no longer exists"
    assert set(TASK_KINDS.values()) == set(KINDS)


def test_scheduled_tasks_are_routed(settings) -> None:
    for entry in settings.CELERY_BEAT_SCHEDULE.values():
        assert entry["task"] in TASK_KINDS
        assert "queue" not in entry.get("options", {}), "a beat entry must not bypass the routing"


def test_celery_routes_by_kind_under_the_base_queue_read_at_routing_time(settings) -> None:
    """The router wired in CELERY_TASK_ROUTES is what apply_async/delay/beat use; the base queue is read when the
    task is routed, so a test (or process) that changes it routes into its own family of queues."""
    from broker.celery import app
    from marketplace.orders.services.outbox import queue_name

    settings.CELERY_TASK_DEFAULT_QUEUE = "q1"
    route = app.amqp.router.route({}, "workers.tasks.billing.capture_order_payment", (), {})
    assert route["queue"].name == "q1.billing"
    settings.CELERY_TASK_DEFAULT_QUEUE = "q2"
    expected = {"workers.tasks.orders.provision": "q2.provisioning", "workers.tasks.orders.stop": "q2.provisioning",
                "workers.tasks.orders.poll_status": "q2.polling", "workers.tasks.orders.meter": "q2.polling",
                "workers.tasks.billing.process_stripe_event": "q2.billing",
                "workers.tasks.orders.reconcile": "q2", "celery.backend_cleanup": "q2"}
    for task, queue in expected.items():
        assert app.amqp.router.route({}, task, (), {})["queue"].name == queue, task
        assert queue_name(task) == queue == queue_for(task)
    assert queues_for() == ["q2", "q2.provisioning", "q2.polling", "q2.billing"]
    assert kind_queue("billing", "broker") == "broker.billing"
    with pytest.raises(ValueError):
        kind_queue("payments")


def test_a_worker_started_without_queues_serves_every_kind(settings) -> None:
    names = [queue.name for queue in settings.CELERY_TASK_QUEUES]
    assert names == queues_for(KINDS, names[0]) and len(names) == len(KINDS)


def test_each_declared_kind_queue_has_its_own_exchange_and_routing_key() -> None:
    """Sending to a kind queue of the configured base (production's path: the queue is in CELERY_TASK_QUEUES)
    publishes with that queue's own key: shared keys on one direct exchange would copy a message to every kind."""
    from broker.celery import app

    base = app.conf.task_default_queue
    for task, kind in (("workers.tasks.billing.reconcile", "billing"), ("workers.tasks.orders.provision",
                                                                         "provisioning"),
                       ("workers.tasks.orders.meter", "polling"), ("workers.tasks.orders.reconcile", "default")):
        queue = app.amqp.router.route({}, task, (), {})["queue"]
        assert queue.name == kind_queue(kind, base)
        assert (queue.exchange.name, queue.routing_key) == (queue.name, queue.name), task
    keys = [(q.exchange.name, q.routing_key) for q in app.amqp.queues.values()]
    assert len(keys) == len(set(keys))  # (plus the queues Celery made on demand for other bases)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_billing_is_served_while_provisioning_is_backed_up_behind_a_hung_worker(tmp_path: Path, settings) -> None:
    """Deployment shape: one worker serves provisioning, another billing. The provisioning worker hangs (SIGSTOP,
    as on a provider that never answers) with a backlog queued behind it; a payment task sent through billing's
    real dispatch still runs at once on the billing worker, and the billing worker takes no provisioning work."""
    from marketplace.billing import dispatch
    from marketplace.orders.services.outbox import send_task

    url = redis_url_for_tests()
    if url is None:
        pytest.skip(f"no Redis answers at REDIS_URL={settings.REDIS_URL}")
    base = private_queue()
    settings.CELERY_TASK_DEFAULT_QUEUE = base
    db_url = database_url_of(connection.settings_dict)
    provisioning = CeleryWorker(database_url=db_url, redis_url=url, log_path=tmp_path / "provisioning.log",
                                queue=base, kinds=["provisioning"])
    billing = CeleryWorker(database_url=db_url, redis_url=url, log_path=tmp_path / "billing.log", queue=base,
                           kinds=["billing", "default"])
    billing.args[billing.args.index("--hostname") + 1] = f"{base}-billing@%h"
    r = redis.Redis.from_url(url)
    workers = (provisioning, billing)
    try:
        with ThreadPoolExecutor(2) as pool:  # start both at once (each start waits for its "ready.")
            list(pool.map(CeleryWorker.start, workers))
        os.killpg(provisioning.process.pid, signal.SIGSTOP)  # hung: takes nothing more from its queue
        backlog = 12
        for order_id in range(10_000_000, 10_000_000 + backlog):  # no such orders: each fails at once
            send_task("workers.tasks.orders.provision", [order_id, 1])
        queued = r.llen(f"{base}.provisioning")
        assert queued >= backlog - 1  # the hung worker may hold the one message its BRPOP was waiting for

        dispatch.send("retry_provider_transfers")
        served = billing.wait_for_pattern(
            r"Task workers\.tasks\.billing\.retry_provider_transfers\[[0-9a-f-]+\] succeeded", timeout=30)
        assert served is not None, billing.log()[-3000:]
        assert r.llen(f"{base}.provisioning") == queued  # still backed up; the billing worker took none
        assert "workers.tasks.orders.provision" not in billing.log().split("[tasks]", 1)[1].split("\n\n", 1)[1]
        os.killpg(provisioning.process.pid, signal.SIGCONT)
        # Resumed, the provisioning worker drains its own queue (the orders do not exist: each fails fast).
        done = re.compile(r"Task workers\.tasks\.orders\.provision\[[0-9a-f-]+\] (succeeded|raised)")
        deadline = time.monotonic() + 60
        while len(done.findall(provisioning.log())) < backlog and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(done.findall(provisioning.log())) == backlog, provisioning.log()[-3000:]
        assert r.llen(f"{base}.provisioning") == 0
    finally:
        for worker in workers:
            if worker.process is not None and worker.process.poll() is None:
                os.killpg(worker.process.pid, signal.SIGCONT)
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(CeleryWorker.stop, workers))
        r.delete(*queues_for(KINDS, base), *(f"_kombu.binding.{q}" for q in queues_for(KINDS, base)))
    assert "Traceback" not in billing.log(), billing.log()[-3000:]
