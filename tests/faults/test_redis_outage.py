"""Redis stopped for 30 seconds under a steady stream of orders, then restarted empty: every order accepted during
the outage is accepted with a 201 and completes, each with exactly one provider job.

Everything runs as real processes on a private redis-server (tests/faults/processes.py: no persistence, so the
restarted Redis has lost every queued and unacknowledged message): gunicorn (2 workers) taking the orders, a Celery
worker (2 processes) and Celery beat, restarted when they exit as systemd would (tests/faults/processes.py
Supervisor), beat sending the reconciler, which relays the outbox rows the web wrote while Redis
was down and re-drives the orders whose messages died with Redis. The simulated provider keeps its state in the
test Redis (REDIS_URL), not in the broker's: a provider does not go down with the broker's Redis.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone

from marketplace.orders.models import Order, OrderEvent, OutboxMessage, Reservation
from tests.faults.conftest import report_figures
from tests.faults.processes import ApiClient, Supervisor, WebServer
from tests.faults.support import jobs_per_order
from tests.orders.conftest import FAST_PIPELINE_ENV, _new_worker, job, wait_for
from tests.worker_process import CeleryBeat, database_url_of

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

OUTAGE_S = 30.0  # the definition
BEFORE_S = AFTER_S = 3.0
EVERY_S = 0.75  # four orders every three seconds
RECOVERY_TIMEOUT_S = 90.0


@dataclass(frozen=True)
class Placed:
    at: float  # time.monotonic()
    phase: str  # before / outage / after
    status: int
    order_id: int | None
    seconds: float
    body: dict


class OrderStream(threading.Thread):
    """POSTs one order every EVERY_S, each from its own quote, until stopped; `phase` is set by the test."""

    def __init__(self, client: ApiClient, quote_ids: list[str]) -> None:
        super().__init__(daemon=True)
        self.client = client
        self.quote_ids = quote_ids
        self.phase = "before"
        self.placed: list[Placed] = []
        self.stopped = threading.Event()

    def run(self) -> None:
        for quote_id in self.quote_ids:
            if self.stopped.is_set():
                return
            started = time.monotonic()
            phase = self.phase
            res = self.client.post("/api/v1/orders/", {"quote_id": quote_id, "job": job(command="true")},
                                   key=uuid.uuid4().hex)
            self.placed.append(Placed(started, phase, res.status, res.body.get("id"), res.seconds, res.body))
            self.stopped.wait(max(0.0, EVERY_S - (time.monotonic() - started)))


def test_redis_down_30s_under_a_stream_of_orders_every_accepted_order_completes(
        private_redis, sim, sim_namespace, redis_url, private_queue, customer, api_token, provider_a,
        make_node_offer, make_quote, tmp_path: Path):
    offer = make_node_offer(provider_a, nodes=200)
    sim.configure_offer(offer.external_id, boot_latency_s=0.2, run_duration_s=0.5)
    quotes = [str(make_quote(customer, [offer]).id)
              for _ in range(int((BEFORE_S + OUTAGE_S + AFTER_S) / EVERY_S) + 20)]
    env = {**FAST_PIPELINE_ENV, "DATABASE_URL": database_url_of(connection.settings_dict),
           "REDIS_URL": private_redis.url, "CELERY_QUEUE": private_queue,
           # the provider's state lives in the test Redis, not in the broker's
           "BROKER_DRIVER_CONFIG": json.dumps({"simulated": {"namespace": sim_namespace, "redis_url": redis_url}}),
           "ORDERS_RECONCILE_INTERVAL_S": "2", "ORDERS_OUTBOX_RELAY_AFTER_S": "2", "ORDERS_STUCK_AFTER_S": "10"}
    worker = _new_worker(queue=private_queue, namespace=sim_namespace, redis_url=private_redis.url,
                         log_path=tmp_path / "worker.log", concurrency=2, env=env)
    beat = CeleryBeat(database_url=env["DATABASE_URL"], redis_url=private_redis.url, log_path=tmp_path / "beat.log",
                      queue=private_queue, schedule=tmp_path / "beat-schedule")
    beat.env.update(env)
    web = WebServer(env=env, log_path=tmp_path / "web.log")
    with web, worker, beat, Supervisor(worker, beat) as supervisor:
        stream = OrderStream(ApiClient(web.url, api_token), quotes)
        stream.start()
        time.sleep(BEFORE_S)
        stream.phase = "outage"
        private_redis.stop()
        down_at = time.monotonic()
        time.sleep(OUTAGE_S)
        private_redis.start()  # same port, empty
        up_at, up_wall = time.monotonic(), timezone.now()
        stream.phase = "after"
        time.sleep(AFTER_S)
        stream.stopped.set()
        stream.join(timeout=60)

        accepted = [p for p in stream.placed if p.status == 201]
        refused = [(p.phase, p.status, p.body) for p in stream.placed if p.status != 201]
        assert not refused, refused[:5]
        during = [p for p in accepted if p.phase == "outage"]
        assert len(during) >= OUTAGE_S / EVERY_S * 0.5, (len(during), [p.seconds for p in during])
        ids = [p.order_id for p in accepted]
        try:
            wait_for(lambda: not Order.objects.filter(pk__in=ids).exclude(state__in=["completed", "failed"]).exists(),
                     timeout=RECOVERY_TIMEOUT_S, interval=0.5, message="every accepted order to finish")
        finally:
            stuck = list(Order.objects.filter(pk__in=ids).exclude(state="completed")
                         .values_list("pk", "state", "failure_code"))
            if stuck:
                print(f"\nnot completed: {stuck[:10]}\nworker log tail:\n{worker.log()[-4000:]}"
                      f"\nbeat log tail:\n{beat.log()[-2000:]}")

    orders = list(Order.objects.filter(pk__in=ids))
    completed = [o for o in orders if o.state == "completed"]
    finished_at = max(o.state_changed_at for o in orders)
    outage_ids = {p.order_id for p in during}
    first_outage_done = min(o.state_changed_at for o in orders if o.pk in outage_ids)
    jobs = jobs_per_order(sim, orders)
    redriven = OrderEvent.objects.filter(order_id__in=ids, reason__startswith="re-driven by the reconciler")
    report_figures(
        "redis_outage_30s",
        orders_accepted=len(accepted), accepted_during_outage=len(during), refused=len(refused),
        completed=len(completed), lost=len(accepted) - len(completed),
        duplicates=sum(n - 1 for n in jobs.values() if n > 1),
        provider_create_calls=sim.create_calls(), orders_redriven=redriven.values("order_id").distinct().count(),
        p99_post_s_during_outage=f"{sorted(p.seconds for p in during)[int(len(during) * 0.99) - 1]:.2f}",
        outage_s=f"{up_at - down_at:.1f}", process_restarts=supervisor.restarts or 0,
        first_outage_order_completed_after_restart_s=f"{(first_outage_done - up_wall).total_seconds():.1f}",
        all_completed_after_restart_s=f"{(finished_at - up_wall).total_seconds():.1f}")

    assert len(completed) == len(accepted), [(o.pk, o.state, o.failure_code, o.failure_reason)
                                             for o in orders if o.state != "completed"][:5]
    assert all(o.attempt == 1 for o in orders)
    assert set(jobs.values()) == {1}  # one provider job per order: nothing provisioned twice
    assert sim.jobs_created() == len(orders)
    assert not Reservation.objects.filter(order_id__in=ids, active=True).exists()
    assert not OutboxMessage.objects.exists()
