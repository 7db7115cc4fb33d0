"""The pipeline steps in this process (no worker): each step against the simulated driver in Redis, the outbox
rows it leaves, the events it writes. The worker tests run the same steps through Celery."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from broker.celery_routing import PROVISIONING, kind_queue
from marketplace.errors import ConflictError
from marketplace.models import Provider
from marketplace.orders.models import Order, OrderEvent, OrderLogChunk, OutboxMessage, Reservation
from marketplace.orders.selectors import order_log
from marketplace.orders.services import pipeline
from marketplace.orders.services.cancel import order_cancel
from marketplace.orders.services.placement import order_place
from marketplace.orders.services.reconciler import reconcile
from tests.orders.conftest import job, placement, queued_tasks

pytestmark = pytest.mark.django_db
T = "test"


@pytest.fixture
def offer_a(provider_a, make_node_offer):
    return make_node_offer(provider_a, nodes=1, price="20.0000")


@pytest.fixture
def offer_b(provider_b, make_node_offer):
    return make_node_offer(provider_b, nodes=1, price="30.0000")


def place(customer, make_quote, offers, key="k1", **job_kw) -> Order:
    quote = make_quote(customer, offers)
    order, _ = order_place(user=customer, idempotency_key=key, data=placement(job(**job_kw), quote_id=str(quote.id)))
    return order


def outbox() -> list[tuple[str, list]]:
    return list(OutboxMessage.objects.order_by("id").values_list("task", "args"))


def states(order: Order) -> list[tuple[str, str]]:
    return list(OrderEvent.objects.filter(order=order).exclude(from_state=models_F("to_state"))
                .values_list("from_state", "to_state"))


def models_F(name):
    from django.db.models import F

    return F(name)


def test_zero_boot_latency_goes_straight_to_running(customer, offer_a, make_quote, sim):
    order = place(customer, make_quote, [offer_a])
    OutboxMessage.objects.all().delete()

    nxt = pipeline.step_provision(order.pk, 1, task=T)

    assert nxt is None  # the first meter run is due in 30 s (the interval): the beat sweep sends it
    order.refresh_from_db()
    assert order.state == "running"
    assert order.meter_due_at == order.running_at + timedelta(seconds=30)
    assert order.job_ref == sim.job_ref_for(order.provider_key(1))
    assert sim.jobs_created(order.provider_key(1)) == 1
    assert outbox() == []
    assert states(order) == [("", "reserved"), ("reserved", "queued"), ("queued", "provisioning"),
                             ("provisioning", "running")]
    provider = Provider.objects.get(pk=offer_a.provider_id)
    assert provider.reliability_score == Decimal("0.600")  # prior 0.5 + 0.2 x (1 - 0.5)


def test_a_redelivered_provision_never_creates_a_second_job(customer, offer_a, make_quote, sim):
    sim.configure_offer(offer_a.external_id, boot_latency_s=30)
    order = place(customer, make_quote, [offer_a])
    nxt = pipeline.step_provision(order.pk, 1, task=T)
    assert (nxt.task, nxt.args, nxt.countdown) == ("workers.tasks.orders.poll_status", (order.pk, 1), 2.0)

    again = pipeline.step_provision(order.pk, 1, task=T)  # the same message delivered again

    assert (again.task, again.args) == ("workers.tasks.orders.poll_status", (order.pk, 1))
    assert sim.create_calls(order.provider_key(1)) == 1
    resumed = OrderEvent.objects.filter(order=order, reason__startswith="provisioning resumed").count()
    assert resumed == 1


def test_poll_waits_while_pending(customer, offer_a, make_quote, sim):
    sim.configure_offer(offer_a.external_id, boot_latency_s=30)
    order = place(customer, make_quote, [offer_a])
    pipeline.step_provision(order.pk, 1, task=T)
    nxt = pipeline.step_poll(order.pk, 1, task=T)
    assert (nxt.task, nxt.args, nxt.countdown) == ("workers.tasks.orders.poll_status", (order.pk, 1), 2.0)
    assert Order.objects.get(pk=order.pk).state == "provisioning"
    assert pipeline.step_poll(order.pk, 2, task=T) is None  # a stale attempt's poll does nothing


def test_capacity_gone_fails_over_to_the_next_alternative(customer, offer_a, offer_b, make_quote, sim):
    sim.revoke_capacity(offer_a.external_id)
    order = place(customer, make_quote, [offer_a, offer_b])
    OutboxMessage.objects.all().delete()

    pipeline.step_provision(order.pk, 1, task=T)

    order.refresh_from_db()
    assert (order.state, order.attempt, order.offer_id, order.plan_index) == ("queued", 2, offer_b.id, 1)
    assert order.node_price_per_hour == Decimal("30.0000")
    assert outbox() == [("workers.tasks.orders.provision", [order.pk, 2])]
    assert list(Reservation.objects.filter(order=order).values_list("offer_id", "attempt", "active")) == [
        (offer_a.id, 1, False), (offer_b.id, 2, True)]
    failover = OrderEvent.objects.get(order=order, from_state="provisioning", to_state="queued")
    assert failover.data == {"from_offer": offer_a.id, "to_offer": offer_b.id, "attempt": 2, "code": "capacity_gone"}
    assert Provider.objects.get(pk=offer_a.provider_id).reliability_score == Decimal("0.400")

    pipeline.step_provision(order.pk, 2, task=T)
    order.refresh_from_db()
    assert (order.state, order.job_ref) == ("running", sim.job_ref_for(order.provider_key(2)))


def test_boot_failure_with_no_alternative_left_fails_no_capacity(customer, offer_a, offer_b, make_quote, sim):
    sim.configure_offer(offer_a.external_id, failure_rate=1.0)
    sim.revoke_capacity(offer_b.external_id)
    order = place(customer, make_quote, [offer_a, offer_b])
    OutboxMessage.objects.all().delete()
    pipeline.step_provision(order.pk, 1, task=T)  # boots, then fails at once (zero latency)
    order.refresh_from_db()
    assert (order.state, order.attempt) == ("queued", 2)
    pipeline.step_provision(order.pk, 2, task=T)

    order.refresh_from_db()
    assert (order.state, order.failure_code) == ("failed", "no_capacity")
    assert "capacity_gone" in order.failure_reason
    assert Reservation.objects.filter(order=order, active=True).count() == 0
    job_1 = sim.job_ref_for(order.provider_key(1))
    assert outbox() == [("workers.tasks.orders.terminate_job", [order.pk, offer_a.id, job_1]),  # the failed boot
                        ("workers.tasks.orders.provision", [order.pk, 2]),
                        ("workers.tasks.billing.order_finished", [order.pk])]  # billing settles the failed order


def test_failover_skips_full_alternatives_and_is_bounded(customer, provider_b, make_node_offer, make_quote, sim,
                                                         offer_a, monkeypatch):
    full = make_node_offer(provider_b, nodes=1)
    spare = make_node_offer(provider_b, nodes=1)
    place(customer, make_quote, [full], key="filler")
    sim.revoke_capacity(offer_a.external_id)
    monkeypatch.setenv("ORDERS_MAX_ATTEMPTS", "2")
    order = place(customer, make_quote, [offer_a, full, spare])

    pipeline.step_provision(order.pk, 1, task=T)

    order.refresh_from_db()  # only 2 alternatives may be tried: a-1 failed, `full` has no capacity -> failed
    assert (order.state, order.failure_code) == ("failed", "no_capacity")
    skipped = OrderEvent.objects.get(order=order, reason__contains="skipped")
    assert skipped.data == {"offer_id": full.id}
    assert Reservation.objects.filter(offer=spare).count() == 0


def test_a_terminal_error_fails_the_attempt_at_once_then_the_order_with_its_code(customer, offer_a, offer_b,
                                                                                make_quote, sim, monkeypatch):
    config = {"simulated": {"namespace": sim.namespace, "no_such_knob": 1}}
    monkeypatch.setenv("BROKER_DRIVER_CONFIG", json.dumps(config))
    order = place(customer, make_quote, [offer_a, offer_b])
    pipeline.step_provision(order.pk, 1, task=T)  # refused at once (no retry): the next alternative is tried
    order.refresh_from_db()
    assert (order.state, order.attempt) == ("queued", 2)
    pipeline.step_provision(order.pk, 2, task=T)
    order.refresh_from_db()
    assert (order.state, order.failure_code, order.attempt) == ("failed", "bad_driver_config", 2)
    assert order.failure_reason.startswith("attempt 2 on offer")
    assert Reservation.objects.filter(order=order, active=True).count() == 0


def test_meter_records_logs_and_money_then_stops_at_the_duration(customer, offer_a, make_quote, sim):
    order = place(customer, make_quote, [offer_a], duration_hours="0.001")  # 3.6 s
    pipeline.step_provision(order.pk, 1, task=T)
    nxt = pipeline.step_meter(order.pk, 1, task=T)
    assert nxt.task == "workers.tasks.orders.meter" and 0 < nxt.countdown <= 3.6
    order.refresh_from_db()
    assert "running: python train.py" in order_log(order).text

    Order.objects.filter(pk=order.pk).update(running_at=timezone.now() - timedelta(seconds=4))
    assert pipeline.step_meter(order.pk, 1, task=T) is None

    order.refresh_from_db()
    assert (order.state, order.stop_outcome) == ("stopping", "completed")
    assert outbox()[-1] == ("workers.tasks.orders.stop", [order.pk])
    pipeline.step_stop(order.pk, task=T)
    order.refresh_from_db()
    assert (order.state, order.failure_code) == ("completed", "")
    assert sim.status(order.job_ref).state == "cancelled"
    assert Reservation.objects.filter(order=order, active=True).count() == 0
    text = order_log(order).text
    assert text.startswith("[simulated] job ") and "finished: cancelled" in text
    assert order_log(order).complete is True
    # metered: 20 USD/h x 1 node x the simulated elapsed seconds, to the cent
    expected = (Decimal("20") * Decimal(f"{order.metered_seconds:.3f}") / 3600).quantize(Decimal("0.01"))
    assert order.metered_usd == expected


def test_a_job_that_exits_completes_the_order(customer, offer_a, make_quote, sim):
    sim.configure_offer(offer_a.external_id, run_duration_s=0)
    order = place(customer, make_quote, [offer_a])
    nxt = pipeline.step_provision(order.pk, 1, task=T)
    order.refresh_from_db()
    assert order.state == "running"
    assert (nxt.task, nxt.countdown) == ("workers.tasks.orders.meter", 0.0)  # it already exited: meter at once
    pipeline.step_meter(order.pk, 1, task=T)
    pipeline.step_stop(order.pk, task=T)
    order.refresh_from_db()
    assert (order.state, order.metered_usd) == ("completed", Decimal("0.00"))
    stop = OrderEvent.objects.get(order=order, to_state="stopping")
    assert (stop.reason, stop.data["exit_code"]) == ("job exited with code 0", 0)


def test_a_job_that_fails_fails_the_order_without_blaming_the_provider(customer, offer_a, make_quote, sim):
    sim.configure_offer(offer_a.external_id, run_failure_rate=1.0, run_duration_s=0.2)
    order = place(customer, make_quote, [offer_a])
    pipeline.step_provision(order.pk, 1, task=T)
    score_after_provisioning = Provider.objects.get(pk=offer_a.provider_id).reliability_score
    import time

    time.sleep(0.2)
    pipeline.step_meter(order.pk, 1, task=T)
    pipeline.step_stop(order.pk, task=T)
    order.refresh_from_db()
    assert (order.state, order.failure_code, order.failure_reason) == ("failed", "job_failed",
                                                                       "job exited with code 1")
    assert Provider.objects.get(pk=offer_a.provider_id).reliability_score == score_after_provisioning


def test_budget_cap_stops_the_job(customer, offer_a, make_quote, sim):
    order = place(customer, make_quote, [offer_a], budget_cap_usd="0.01")  # 20 USD/h: 1.8 s
    pipeline.step_provision(order.pk, 1, task=T)
    Order.objects.filter(pk=order.pk).update(running_at=timezone.now() - timedelta(seconds=5))
    import time

    time.sleep(2.0)
    pipeline.step_meter(order.pk, 1, task=T)
    order.refresh_from_db()
    assert (order.state, order.stop_outcome, order.metered_usd) == ("stopping", "completed", Decimal("0.01"))
    assert OrderEvent.objects.filter(order=order, to_state="stopping").get().reason == "budget cap reached"


def test_cancel_while_provisioning_terminates_the_job(customer, offer_a, make_quote, sim):
    sim.configure_offer(offer_a.external_id, boot_latency_s=30)
    order = place(customer, make_quote, [offer_a])
    pipeline.step_provision(order.pk, 1, task=T)

    order_cancel(user=customer, order_id=order.pk)
    order.refresh_from_db()
    assert (order.state, order.stop_outcome) == ("stopping", "cancelled")
    assert pipeline.step_poll(order.pk, 1, task=T) is None  # a poll still in flight does nothing
    pipeline.step_stop(order.pk, task=T)

    order.refresh_from_db()
    assert order.state == "cancelled"
    assert sim.status(order.job_ref).state == "cancelled"
    assert Reservation.objects.filter(order=order, active=True).count() == 0
    with pytest.raises(ConflictError) as err:
        order_cancel(user=customer, order_id=order.pk)
    assert err.value.code == "not_cancellable"


def test_a_create_that_returns_after_cancel_is_terminated(customer, offer_a, make_quote, sim):
    sim.configure_offer(offer_a.external_id, boot_latency_s=30)
    order = place(customer, make_quote, [offer_a])
    from marketplace.orders.services.transitions import order_claim_provisioning

    order_claim_provisioning(order.pk, 1, task=T)
    order_cancel(user=customer, order_id=order.pk)  # no job yet: stopping, the stop task finds nothing
    pipeline.step_stop(order.pk, task=T)
    assert Order.objects.get(pk=order.pk).state == "cancelled"
    # the create that was in flight now returns: the job is created, then terminated at once
    assert pipeline.step_provision(order.pk, 1, task=T) is None
    spec_ref = sim.job_ref_for(order.provider_key(1))
    assert spec_ref is None  # the claim refused: the order moved on, so create was never even called


def test_a_job_recorded_while_stopping_is_terminated_before_finishing(customer, offer_a, make_quote, sim):
    sim.configure_offer(offer_a.external_id, boot_latency_s=30)
    order = place(customer, make_quote, [offer_a])
    from marketplace.orders.services.drivers import driver_for_offer, job_spec
    from marketplace.orders.services.transitions import order_claim_provisioning, order_record_job

    order = order_claim_provisioning(order.pk, 1, task=T)
    ref = driver_for_offer(offer_a).create(job_spec(order, offer_a))  # create is in flight ...
    order_cancel(user=customer, order_id=order.pk)                   # ... the customer cancels ...
    assert order_record_job(order.pk, 1, ref, task=T) == "recorded"  # ... the job is recorded while stopping
    pipeline.step_stop(order.pk, task=T)
    order.refresh_from_db()
    assert order.state == "cancelled"
    assert sim.status(ref).state == "cancelled"


def test_reconciler_redrives_then_fails_a_stuck_order(customer, offer_a, make_quote, sim, monkeypatch,
                                                      redis_url, private_queue):
    monkeypatch.setenv("ORDERS_MAX_REDRIVES", "2")
    order = place(customer, make_quote, [offer_a])
    OutboxMessage.objects.all().delete()
    later = timezone.now()
    for n in (1, 2):
        later += timedelta(seconds=301)
        report = reconcile(now=later)
        # on_commit never runs inside this test's transaction: the reconciler relays the outbox row itself
        assert (report.redriven, report.failed_stuck, report.outbox_sent) == (1, 0, 1)
        assert Order.objects.get(pk=order.pk).redrives == n
    assert outbox() == []
    provisioning = kind_queue(PROVISIONING, base=private_queue)
    assert queued_tasks(redis_url, provisioning) == [("workers.tasks.orders.provision", f"[{order.pk}, 1]")] * 2
    assert reconcile(now=later + timedelta(seconds=100)).redriven == 0  # not stale again yet

    report = reconcile(now=later + timedelta(seconds=301))
    assert (report.redriven, report.failed_stuck) == (0, 1)
    order.refresh_from_db()
    assert (order.state, order.failure_code) == ("failed", "stuck")
    assert Reservation.objects.filter(order=order, active=True).count() == 0


def test_reconciler_lease_lets_one_run_at_a_time(db):
    from marketplace.orders.services.reconciler import LEASE_NAME, lease_acquire, lease_release

    now = timezone.now()
    assert lease_acquire(LEASE_NAME, "one", now) is True
    assert lease_acquire(LEASE_NAME, "two", now) is False
    assert reconcile(now=now) is None
    assert lease_acquire(LEASE_NAME, "two", now + timedelta(seconds=121)) is True  # the holder crashed: it ran out
    lease_release(LEASE_NAME, "two")
    assert reconcile(now=now).as_dict() == {"expired": 0, "redriven": 0, "failed_stuck": 0, "orphan_reservations": 0,
                                            "units_repaired": 0, "outbox_sent": 0, "outbox_failed": 0}


def test_logs_are_stored_once_in_order(customer, offer_a, make_quote, sim):
    order = place(customer, make_quote, [offer_a])
    pipeline.step_provision(order.pk, 1, task=T)
    import time

    time.sleep(1.1)
    pipeline.step_meter(order.pk, 1, task=T)
    pipeline.step_meter(order.pk, 1, task=T)
    order.refresh_from_db()
    chunks = list(OrderLogChunk.objects.filter(order=order).values_list("offset", "text"))
    whole = "".join(t for _, t in chunks)
    assert [o for o, _ in chunks] == [sum(len(t) for _, t in chunks[:i]) for i in range(len(chunks))]
    assert whole == sim.logs(order.job_ref, 0).text[: len(whole)]
    assert order_log(order, 10, limit=5).text == whole[10:15]
    assert order_log(order, 10, limit=5).next_offset == 15
