"""Orders run by the real reference provider agent (a subprocess on 127.0.0.1 that registered itself with the
broker through live_server) and a real Celery worker against real Redis: the job's command really runs."""

from __future__ import annotations

import socket
import sqlite3
import uuid
from decimal import Decimal
from pathlib import Path

import pytest

from marketplace.agents.models import ProviderAgent
from marketplace.agents.services import agent_enroll
from marketplace.models import Offer
from marketplace.orders.models import Order, OrderEvent, Reservation
from marketplace.orders.services.reservations import free_units
from tests.drivers.agent_process import AgentProcess, kill_leftovers, pid_gone
from tests.orders.conftest import job, wait_for, wait_for_state

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True, serialized_rollback=True)]
URL = "/api/v1/orders/"
SECRET = "orders-agent-secret-0123456789"


@pytest.fixture
def start_agent(live_server, region, h100, tmp_path: Path):
    """start_agent(provider) -> (AgentProcess, its offer): enrolled, registered through the live broker."""
    agents: list[AgentProcess] = []

    def start(provider, *, price: str = "36.00", slots: int = 1) -> tuple[AgentProcess, Offer]:
        agent_enroll(provider=provider, secret=SECRET)
        # An explicit free port: the agent's CLI turns --port 0 into its default 8701 (`int(0 or 8701)`).
        process = AgentProcess(work_dir=tmp_path / f"agent-{provider.slug}", secret=SECRET, provider=provider.slug,
                               slots=slots, extra=["--port", str(free_port()), "--broker", live_server.url,
                                                   "--heartbeat", "60",
                                                   "--accelerator", h100.canonical_name, "--region", region.key,
                                                   "--price-per-hour", price])
        agents.append(process.start())
        wait_for(lambda: ProviderAgent.objects.filter(provider=provider, last_seen__isnull=False).exists(),
                 message="the agent's registration")
        return process, Offer.objects.get(provider=provider, external_id="agent-default", driver="agent")

    yield start
    for process in agents:
        process.stop()
        kill_leftovers(process.work_dir)
        assert "Traceback" not in process.log(), process.log()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def agent_jobs(process: AgentProcess) -> list[tuple]:
    with sqlite3.connect(process.work_dir / "agent.sqlite3") as conn:
        return conn.execute("SELECT idempotency_key, pid FROM jobs ORDER BY created_at").fetchall()


def post(client, body: dict, key: str | None = None):
    return client.post(URL, body, format="json", HTTP_IDEMPOTENCY_KEY=key or uuid.uuid4().hex)


def transitions(order_id: int) -> list[tuple[str, str]]:
    return [(e.from_state, e.to_state) for e in OrderEvent.objects.filter(order_id=order_id).order_by("id")
            if e.from_state != e.to_state]


def test_agent_runs_the_command_logs_are_visible_then_completed_and_released(
        worker, start_agent, client_for, customer, provider_a, make_quote):
    agent, offer = start_agent(provider_a)
    client = client_for(customer)
    command = 'echo "hello from order $BROKER_ORDER_ID"; echo "epochs=$EPOCHS"; sleep 2; echo done'

    res = post(client, {"quote_id": str(make_quote(customer, [offer]).id), "job": job(command=command)})

    assert res.status_code == 201, res.content
    order_id = res.json()["id"]
    assert res.json()["simulated"] is False
    wait_for_state(order_id, "running")
    live = wait_for(lambda: (Order.objects.get(pk=order_id).state == "running"
                             and "epochs=3" in (text := client.get(f"{URL}{order_id}/logs/").json()["text"])
                             and text), message="the job's first lines while it runs")
    assert live == f"hello from order {order_id}\nepochs=3\n"
    assert free_units(offer.id).count() == 0
    order = wait_for_state(order_id, "completed")

    assert client.get(f"{URL}{order_id}/logs/").json() == {
        "offset": 0, "next_offset": len(live) + 5, "text": live + "done\n", "complete": True}
    assert client.get(f"{URL}{order_id}/logs/?offset={len(live)}").json()["text"] == "done\n"
    assert transitions(order_id) == [("", "reserved"), ("reserved", "queued"), ("queued", "provisioning"),
                                     ("provisioning", "running"), ("running", "stopping"), ("stopping", "completed")]
    assert OrderEvent.objects.get(order_id=order_id, to_state="stopping").reason == "job exited with code 0"
    assert free_units(offer.id).count() == 1
    assert Reservation.objects.get(order_id=order_id).active is False
    assert [key for key, _ in agent_jobs(agent)] == [Order.objects.get(pk=order_id).provider_key(1)]
    # 36 USD/h for the seconds the agent says the job ran (about 2 s), rounded once to the cent
    expected = (Decimal("36") * Decimal(f"{order.metered_seconds:.3f}") / 3600).quantize(Decimal("0.01"))
    assert 2.0 <= order.metered_seconds < 6 and order.metered_usd == expected


def test_cancel_kills_the_running_command(worker, start_agent, client_for, customer, provider_a, make_quote):
    agent, offer = start_agent(provider_a)
    client = client_for(customer)
    order_id = post(client, {"quote_id": str(make_quote(customer, [offer]).id),
                             "job": job(command="echo started; sleep 60")}).json()["id"]
    wait_for(lambda: "started" in client.get(f"{URL}{order_id}/logs/").json()["text"], message="the job to start")
    [(_, pid)] = agent_jobs(agent)
    assert not pid_gone(pid)

    assert client.post(f"{URL}{order_id}/cancel/").status_code == 200
    wait_for_state(order_id, "cancelled")

    assert wait_for(lambda: pid_gone(pid), timeout=10, message="the job's process to be gone")
    assert transitions(order_id)[-2:] == [("running", "stopping"), ("stopping", "cancelled")]
    assert free_units(offer.id).count() == 1


def test_failover_when_the_first_providers_agent_is_down(worker, start_agent, client_for, customer, provider_a,
                                                         provider_b, make_quote):
    up, second = start_agent(provider_b, price="40.00")
    down, first = start_agent(provider_a, price="30.00")
    down.stop()  # registered, listed, then gone: connection refused -> transient errors -> give up -> failover
    client = client_for(customer)
    order_id = post(client, {"quote_id": str(make_quote(customer, [first, second]).id),
                             "job": job(command="echo ran on the second provider")}).json()["id"]

    order = wait_for_state(order_id, {"completed", "failed"}, timeout=60)

    assert (order.state, order.attempt, order.offer_id) == ("completed", 2, second.id), (
        order.failure_code, order.failure_reason)
    assert order.node_price_per_hour == Decimal("40.0000")
    failover = OrderEvent.objects.get(order_id=order_id, from_state="provisioning", to_state="queued")
    assert failover.data == {"from_offer": first.id, "to_offer": second.id, "attempt": 2,
                             "code": "provider_unreachable"}
    retries = OrderEvent.objects.filter(order_id=order_id, reason__startswith="transient driver error, retry")
    assert retries.count() == 2  # ORDERS_RETRY_MAX=2 in the test worker
    assert client.get(f"{URL}{order_id}/logs/").json()["text"] == "ran on the second provider\n"
    assert [key for key, _ in agent_jobs(up)] == [Order.objects.get(pk=order_id).provider_key(2)]
    assert (free_units(first.id).count(), free_units(second.id).count()) == (1, 1)
    provider_a.refresh_from_db()
    assert provider_a.reliability_score == Decimal("0.400")


def test_idempotent_creation_starts_one_job(worker, start_agent, client_for, customer, provider_a, make_quote):
    agent, offer = start_agent(provider_a, slots=2)
    client = client_for(customer)
    body = {"quote_id": str(make_quote(customer, [offer]).id), "job": job(command="echo once")}

    first = post(client, body, key="agent-key")
    again = post(client, body, key="agent-key")

    assert (first.status_code, again.status_code, again.json()["id"]) == (201, 200, first.json()["id"])
    wait_for_state(first.json()["id"], "completed")
    replay = post(client, body, key="agent-key")
    assert (replay.status_code, replay.json()["state"]) == (200, "completed")
    assert agent_jobs(agent) == [(Order.objects.get(pk=first.json()["id"]).provider_key(1), agent_jobs(agent)[0][1])]
    assert Order.objects.count() == 1
