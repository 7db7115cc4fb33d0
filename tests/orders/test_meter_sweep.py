"""When a running order is metered next (meter_due_at), who sends the run (a countdown message when it is due within
the sweep's interval, else the beat sweep), and the sweep itself: in this process, then with a real worker and a
real `celery beat`."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone

from broker.celery_routing import POLLING, kind_queue
from marketplace.orders.models import Order
from marketplace.orders.services import meter_sweep, outbox, pipeline
from marketplace.orders.services.placement import order_place
from tests.orders.conftest import FAST_PIPELINE_ENV, job, placement, queued_tasks, wait_for, wait_for_state
from tests.worker_process import CeleryBeat, database_url_of

T = "test"
METER = "workers.tasks.orders.meter"


@pytest.fixture
def offer(provider_a, make_node_offer):
    return make_node_offer(provider_a, nodes=4, price="20.0000")


def running(customer, make_quote, offer, key: str, duration_hours: str = "1") -> Order:
    quote = make_quote(customer, [offer])
    order, _ = order_place(user=customer, idempotency_key=key,
                           data=placement(job(duration_hours=duration_hours), quote_id=str(quote.id)))
    pipeline.step_provision(order.pk, 1, task=T)
    order.refresh_from_db()
    assert order.state == "running"
    return order


def meter_messages(redis_url: str, private_queue: str) -> list[str]:
    """The args of the meter messages waiting in the test's polling queue."""
    return [args for task, args in queued_tasks(redis_url, kind_queue(POLLING, private_queue)) if task == METER]


@pytest.mark.django_db
def test_a_first_run_due_within_the_sweep_interval_is_a_countdown_message(customer, offer, make_quote, sim,
                                                                          monkeypatch):
    monkeypatch.setenv("ORDERS_METER_INTERVAL_S", "2")  # below the sweep's 5 s
    quote = make_quote(customer, [offer])
    order, _ = order_place(user=customer, idempotency_key="k", data=placement(job(), quote_id=str(quote.id)))

    nxt = pipeline.step_provision(order.pk, 1, task=T)

    assert (nxt.task, nxt.args, nxt.countdown) == (METER, (order.pk, 1), 2.0)
    order.refresh_from_db()
    # The sweep is only the backstop of that message: due a lease (60 s) after the run itself.
    assert order.meter_due_at == order.running_at + timedelta(seconds=2 + 60)
    assert meter_sweep.meter_due(order.running_at + timedelta(seconds=3)) == 0
    assert meter_sweep.meter_due(order.running_at + timedelta(seconds=63)) == 1


@pytest.mark.django_db
def test_a_first_run_due_after_the_sweep_interval_is_left_to_the_sweep(customer, offer, make_quote, sim,
                                                                      monkeypatch):
    monkeypatch.setenv("ORDERS_METER_SWEEP_S", "10")
    monkeypatch.setenv("ORDERS_METER_INTERVAL_S", "12")
    quote = make_quote(customer, [offer])
    order, _ = order_place(user=customer, idempotency_key="k", data=placement(job(), quote_id=str(quote.id)))

    assert pipeline.step_provision(order.pk, 1, task=T) is None

    order.refresh_from_db()
    assert order.meter_due_at == order.running_at + timedelta(seconds=12)


@pytest.mark.django_db
def test_a_short_order_is_metered_first_at_its_end(customer, offer, make_quote, sim):
    order = running(customer, make_quote, offer, "k", duration_hours="0.001")  # 3.6 s, under the 30 s interval
    # Sent as a countdown message of 3.6 s (under the sweep's 5 s): the sweep's moment is a lease later.
    assert order.meter_due_at == order.running_at + timedelta(seconds=3.6 + 60)


@pytest.mark.django_db
def test_each_meter_run_sets_the_next_moment(customer, offer, make_quote, sim):
    order = running(customer, make_quote, offer, "k")
    before = timezone.now()

    assert pipeline.step_meter(order.pk, 1, task=T) is None  # due in 30 s: the sweep sends it

    order.refresh_from_db()
    assert before + timedelta(seconds=30) <= order.meter_due_at <= timezone.now() + timedelta(seconds=30)
    assert order.checked_at >= before


@pytest.mark.django_db
def test_the_sweep_sends_each_due_run_once_and_again_after_its_lease(customer, offer, make_quote, sim, redis_url,
                                                                     private_queue):
    due = running(customer, make_quote, offer, "due")
    later = running(customer, make_quote, offer, "later")
    stopping = running(customer, make_quote, offer, "stopping")
    now = timezone.now()
    Order.objects.filter(pk__in=[due.pk, stopping.pk]).update(meter_due_at=now - timedelta(seconds=1))
    Order.objects.filter(pk=stopping.pk).update(state="stopping")

    assert meter_sweep.meter_due(now) == 1

    assert meter_messages(redis_url, private_queue) == [f"[{due.pk}, 1]"]
    due.refresh_from_db()
    assert due.meter_due_at == now + timedelta(seconds=60)  # the lease: max(interval 30 s, sweep 5 s, 60 s)
    assert Order.objects.get(pk=later.pk).meter_due_at == later.running_at + timedelta(seconds=30)
    # Sent once: the next sweep finds nothing due.
    assert meter_sweep.meter_due(now + timedelta(seconds=5)) == 0
    assert meter_messages(redis_url, private_queue) == [f"[{due.pk}, 1]"]
    # The meter run never came (the message was lost): sent again once the lease has passed, with `later`.
    assert meter_sweep.meter_due(now + timedelta(seconds=61)) == 2
    assert sorted(meter_messages(redis_url, private_queue)) == sorted(
        [f"[{due.pk}, 1]", f"[{due.pk}, 1]", f"[{later.pk}, 1]"])


@pytest.mark.django_db
def test_the_sweep_sends_the_earliest_first_up_to_its_limit(customer, offer, make_quote, sim, redis_url,
                                                           private_queue):
    first = running(customer, make_quote, offer, "first")
    second = running(customer, make_quote, offer, "second")
    now = timezone.now()
    Order.objects.filter(pk=first.pk).update(meter_due_at=now - timedelta(seconds=9))
    Order.objects.filter(pk=second.pk).update(meter_due_at=now - timedelta(seconds=1))

    assert meter_sweep.meter_due(now, limit=1) == 1
    assert meter_messages(redis_url, private_queue) == [f"[{first.pk}, 1]"]
    assert meter_sweep.meter_due(now, limit=1) == 1
    assert meter_messages(redis_url, private_queue) == [f"[{first.pk}, 1]", f"[{second.pk}, 1]"]


@pytest.mark.django_db
def test_a_run_the_sweep_could_not_send_is_sent_after_its_lease(customer, offer, make_quote, sim, redis_url,
                                                                private_queue, monkeypatch):
    order = running(customer, make_quote, offer, "k")
    now = timezone.now()
    Order.objects.filter(pk=order.pk).update(meter_due_at=now - timedelta(seconds=1))

    def redis_down(*args, **kwargs):
        raise ConnectionError("Redis is down")

    monkeypatch.setattr(outbox, "send_task", redis_down)
    assert meter_sweep.meter_due(now) == 0  # logged, not raised: the beat task ends normally
    monkeypatch.undo()
    assert meter_sweep.meter_due(now + timedelta(seconds=1)) == 0
    assert meter_sweep.meter_due(now + timedelta(seconds=61)) == 1
    assert meter_messages(redis_url, private_queue) == [f"[{order.pk}, 1]"]


@pytest.mark.slow
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_beat_sends_the_meter_runs_a_worker_leaves_to_the_sweep(start_worker, sim, redis_url, private_queue,
                                                                client_for, customer, provider_a, make_node_offer,
                                                                make_quote, tmp_path: Path):
    """Metered every 1 s, swept every 0.3 s: the worker sends no meter message itself, so without beat's sweep the
    order would stay running (the job ends after 3 s) with no log. Beat runs before the order is placed: started
    after the order ran (a loaded machine starts it slowly), its first sweep could find the job already over and
    meter it once."""
    env = {"ORDERS_METER_INTERVAL_S": "1", "ORDERS_METER_SWEEP_S": "0.3"}
    offer = make_node_offer(provider_a, nodes=1)
    sim.configure_offer(offer.external_id, run_duration_s=3.0)
    beat = CeleryBeat(database_url=database_url_of(connection.settings_dict), redis_url=redis_url,
                      log_path=tmp_path / "beat.log", queue=private_queue, schedule=tmp_path / "beat-schedule")
    beat.env.update({**FAST_PIPELINE_ENV, **env})
    worker = start_worker(concurrency=2, **env)
    client = client_for(customer)

    with beat:
        res = client.post("/api/v1/orders/", {"quote_id": str(make_quote(customer, [offer]).id), "job": job()},
                          format="json", HTTP_IDEMPOTENCY_KEY="beat-meter")
        assert res.status_code == 201, res.content
        order_id = res.json()["id"]
        wait_for_state(order_id, "running")
        wait_for(lambda: "running: python train.py" in client.get(f"/api/v1/orders/{order_id}/logs/").json()["text"],
                 message="the job's log, read by a meter run the sweep sent")
        order = wait_for_state(order_id, "completed", timeout=30)
        assert beat.log().count("Sending due task orders-meter-due") >= 2, beat.log()

    assert order.failure_code == ""
    assert "finished: succeeded (exit code 0)" in client.get(f"/api/v1/orders/{order_id}/logs/").json()["text"]
    assert worker.log().count("Task workers.tasks.orders.meter_due[") >= 2, worker.log()[-3000:]


@pytest.mark.django_db
def test_orders_already_running_when_the_field_arrives_are_due_at_once(customer, offer, make_quote, sim):
    """Migration 0005 marks orders running without a meter_due_at (placed before it) due: the sweep's next run
    meters them."""
    import importlib

    from django.apps import apps

    migration = importlib.import_module("marketplace.orders.migrations.0005_order_meter_due")
    order = running(customer, make_quote, offer, "k")
    Order.objects.filter(pk=order.pk).update(meter_due_at=None)

    migration.running_orders_due_now(apps, None)

    order.refresh_from_db()
    assert order.meter_due_at == order.checked_at
