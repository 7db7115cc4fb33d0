"""A real worker: its heartbeat makes /readyz ready (and its warm shutdown unready), its tasks are counted and timed
by name and outcome in the multiprocess metrics directory, and its task logs carry the order id (text and JSON)."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from django.db import connection
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector

from tests.worker_process import CeleryWorker, database_url_of, redis_url_for_tests

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def worker_samples(directory: Path) -> dict[tuple[str, tuple], float]:
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(directory))
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in registry.collect() for s in family.samples}


def wait_until(predicate, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def test_worker_heartbeat_task_metrics_and_order_id_in_logs(client, base_queue, tmp_path: Path) -> None:
    from marketplace.orders.services.outbox import send_task
    from workers.tasks.offers import unlist_expired_offers

    metrics_dir = tmp_path / "prom"
    metrics_dir.mkdir()
    worker = CeleryWorker(database_url=database_url_of(connection.settings_dict), redis_url=redis_url_for_tests(),
                          log_path=tmp_path / "worker.log", queue=base_queue)
    worker.env.update({"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir), "WORKER_HEARTBEAT_INTERVAL_S": "1",
                       "LOG_FORMAT": "json"})
    with worker:
        assert wait_until(lambda: client.get("/readyz").status_code == 200), client.get("/readyz").json()

        assert unlist_expired_offers.apply_async().get(timeout=30) == 0  # routed to the base (default) queue
        send_task("workers.tasks.orders.provision", [987654321, 1])  # no such order: the task fails
        failed = re.compile(r'"message": "Task workers\.tasks\.orders\.provision\[[0-9a-f-]+\] raised')
        assert wait_until(lambda: failed.search(worker.log()) is not None), worker.log()[-3000:]

        got = worker_samples(metrics_dir)
        ok = ("broker_celery_tasks_total", (("outcome", "succeeded"), ("task", unlist_expired_offers.name)))
        ko = ("broker_celery_tasks_total", (("outcome", "failed"), ("task", "workers.tasks.orders.provision")))
        assert got[ok] == 1 and got[ko] == 1, got
        timed = ("broker_celery_task_duration_seconds_count", (("task", "workers.tasks.orders.provision"),))
        assert got[timed] == 1

        lines = [json.loads(line) for line in worker.log().splitlines() if line.startswith("{")]
        failure = next(line for line in lines if failed.search(json.dumps(line)))
        assert failure["order_id"] == 987654321 and failure["level"] == "ERROR"
        received = next(line for line in lines if "received" in line["message"])
        assert received["order_id"] is None  # outside any task: no order
    assert client.get("/readyz").status_code == 503  # warm shutdown removed its heartbeat
