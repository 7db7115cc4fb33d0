"""The order pipeline end to end: the API, a real Celery worker (2 processes) against real Redis, the simulated
driver (state in Redis, shared with the worker), the test database committed (transaction=True)."""

from __future__ import annotations

import uuid

import pytest

from marketplace.orders.models import Order, OrderEvent, Reservation
from marketplace.orders.services.reservations import free_units
from tests.orders.conftest import job, wait_for, wait_for_state

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True, serialized_rollback=True)]
URL = "/api/v1/orders/"


def ext() -> str:
    return f"w-{uuid.uuid4().hex[:8]}"


def post(client, body: dict, key: str | None = None):
    return client.post(URL, body, format="json", HTTP_IDEMPOTENCY_KEY=key or uuid.uuid4().hex)


def transitions(order_id: int) -> list[tuple[str, str]]:
    return [(e.from_state, e.to_state) for e in OrderEvent.objects.filter(order_id=order_id).order_by("id")
            if e.from_state != e.to_state]


def test_order_runs_shows_logs_completes_and_releases_capacity(worker, sim, client_for, customer, provider_a,
                                                               make_node_offer, make_quote):
    offer = make_node_offer(provider_a, nodes=1, external_id=(x := ext()))
    sim.configure_offer(x, boot_latency_s=0.5, run_duration_s=2.5)
    client = client_for(customer)

    res = post(client, {"quote_id": str(make_quote(customer, [offer]).id), "job": job()})

    assert res.status_code == 201, res.content
    order_id = res.json()["id"]
    assert res.json()["simulated"] is True
    wait_for_state(order_id, "running")
    assert free_units(offer.id).count() == 0
    logs = wait_for(lambda: (body := client.get(f"{URL}{order_id}/logs/").json())["text"]
                    and "running: python train.py" in body["text"] and body, message="the job's log")
    assert logs["offset"] == 0 and logs["complete"] is False
    order = wait_for_state(order_id, "completed")

    assert order.failure_code == ""
    assert free_units(offer.id).count() == 1
    assert Reservation.objects.get(order_id=order_id).active is False
    assert transitions(order_id) == [("", "reserved"), ("reserved", "queued"), ("queued", "provisioning"),
                                     ("provisioning", "running"), ("running", "stopping"), ("stopping", "completed")]
    final = client.get(f"{URL}{order_id}/logs/").json()
    assert final["complete"] is True
    assert "finished: succeeded (exit code 0)" in final["text"]
    assert final["text"].startswith(logs["text"])
    events = client.get(f"{URL}{order_id}/events/").json()["results"]
    assert [e["task"] for e in events if e["to_state"] == "running"] == ["workers.tasks.orders.poll_status"]
    assert sim.jobs_created(Order.objects.get(pk=order_id).provider_key(1)) == 1
    # 20 USD/h x the 2.5 s the simulated job ran, to the cent
    assert client.get(f"{URL}{order_id}/").json()["metered_usd"] == "0.01"


def test_cancel_while_provisioning(worker, sim, client_for, customer, provider_a, make_node_offer, make_quote):
    offer = make_node_offer(provider_a, nodes=1, external_id=(x := ext()))
    sim.configure_offer(x, boot_latency_s=60)
    client = client_for(customer)
    order_id = post(client, {"quote_id": str(make_quote(customer, [offer]).id), "job": job()}).json()["id"]
    order = wait_for(lambda: (o := Order.objects.get(pk=order_id)).job_ref and o, message="the job to be created")
    assert order.state == "provisioning"

    res = client.post(f"{URL}{order_id}/cancel/")

    assert res.status_code == 200
    assert res.json()["state"] in ("stopping", "cancelled")
    wait_for_state(order_id, "cancelled")
    assert sim.status(order.job_ref).state == "cancelled"
    assert free_units(offer.id).count() == 1
    assert transitions(order_id)[-3:] == [("queued", "provisioning"), ("provisioning", "stopping"),
                                          ("stopping", "cancelled")]
    again = client.post(f"{URL}{order_id}/cancel/")
    assert (again.status_code, again.json()["error"]["code"]) == (409, "not_cancellable")


def test_failover_when_the_first_provider_fails(worker, sim, client_for, customer, provider_a, provider_b,
                                                make_node_offer, make_quote):
    first = make_node_offer(provider_a, nodes=1, external_id=(xa := ext()))
    second = make_node_offer(provider_b, nodes=1, external_id=(xb := ext()), price="31.0000")
    sim.configure_offer(xa, boot_latency_s=0.3, failure_rate=1.0)
    sim.configure_offer(xb, run_duration_s=0.5)
    client = client_for(customer)
    order_id = post(client, {"quote_id": str(make_quote(customer, [first, second]).id), "job": job()}).json()["id"]

    order = wait_for_state(order_id, "completed")

    assert (order.attempt, order.offer_id, order.node_price_per_hour) == (2, second.id, 31)
    assert transitions(order_id) == [
        ("", "reserved"), ("reserved", "queued"), ("queued", "provisioning"), ("provisioning", "queued"),
        ("queued", "provisioning"), ("provisioning", "running"), ("running", "stopping"), ("stopping", "completed")]
    failover = OrderEvent.objects.get(order_id=order_id, from_state="provisioning", to_state="queued")
    assert failover.data == {"from_offer": first.id, "to_offer": second.id, "attempt": 2, "code": "provision_failed"}
    assert (free_units(first.id).count(), free_units(second.id).count()) == (1, 1)
    assert sim.jobs_created(Order.objects.get(pk=order_id).provider_key(1)) == 1
    assert sim.jobs_created(Order.objects.get(pk=order_id).provider_key(2)) == 1
    provider_a.refresh_from_db()
    provider_b.refresh_from_db()
    assert provider_a.reliability_score < provider_b.reliability_score


def test_idempotent_creation(worker, sim, client_for, customer, provider_a, make_node_offer, make_quote):
    offer = make_node_offer(provider_a, nodes=2, external_id=ext())
    client = client_for(customer)
    body = {"quote_id": str(make_quote(customer, [offer]).id), "job": job(duration_hours="0.0005")}

    first = post(client, body, key="same-key")
    again = post(client, body, key="same-key")
    other = post(client, {**body, "job": job(command="echo other")}, key="same-key")

    assert (first.status_code, again.status_code, other.status_code) == (201, 200, 409)
    assert again.json()["id"] == first.json()["id"]
    assert other.json()["error"]["code"] == "idempotency_key_reused"
    wait_for_state(first.json()["id"], "completed")
    assert Order.objects.count() == 1
    assert sim.jobs_created(Order.objects.get(pk=first.json()["id"]).provider_key(1)) == 1
    assert Reservation.objects.filter(offer=offer).count() == 1
    replay = post(client, body, key="same-key")  # after completion: still the same order, nothing new
    assert (replay.status_code, replay.json()["id"], replay.json()["state"]) == (200, first.json()["id"],
                                                                                 "completed")
