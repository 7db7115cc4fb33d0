"""Provider agents that hang, answer garbage or die, with a real Celery worker: orders fail over to the quote's next
alternative or fail with a coded reason, and the capacity of every failed attempt is released.

The driver-level mapping of each fault (hang -> transient after the timeout, garbage -> terminal
agent_bad_response / agent_bad_signature, refused -> transient) is pinned in tests/drivers/test_agent_faults.py;
the agent that is down before the order is in tests/orders/test_worker_agent.py. Here the faults meet the whole
pipeline: retries with backoff, failover, final failure codes, capacity, the provider's reliability score.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.utils import timezone

from marketplace.agents.models import ProviderAgent
from marketplace.agents.services import agent_enroll
from marketplace.orders.models import Order, OrderEvent
from marketplace.orders.services.reservations import free_units
from tests.drivers.agent_process import AgentProcess, kill_leftovers
from tests.drivers.fake_servers import FakeAgent, hanging_server
from tests.faults.conftest import report_figures
from tests.faults.support import place, place_quote
from tests.orders.conftest import wait_for, wait_for_state

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True, serialized_rollback=True)]
SECRET = "faults-agent-secret-0123456789"
WORKER_ENV = {"ORDERS_DRIVER_TIMEOUT_S": "1"}  # a hanging agent costs 1 s per call, not the default 30 s


@pytest.fixture
def hanging_url() -> Iterator[str]:
    with hanging_server() as url:
        yield url


def agent_offer(make_node_offer, provider, url: str, nodes: int = 1):
    """An offer run by the `agent` driver, its provider's agent enrolled and reachable (it says) at `url`."""
    offer = make_node_offer(provider, nodes=nodes, driver="agent")
    agent, _ = agent_enroll(provider=provider, secret=SECRET)
    ProviderAgent.objects.filter(pk=agent.pk).update(base_url=url, offer=offer, last_seen=timezone.now(), slots=1)
    return offer


def failover_codes(order_id: int) -> list[str]:
    return [e.data.get("code") for e in OrderEvent.objects.filter(order_id=order_id, from_state="provisioning",
                                                                  to_state="queued")]


def test_hanging_and_garbage_agents_fail_over_or_fail_with_a_code_and_release_capacity(
        start_worker, sim, customer, provider_a, provider_b, make_node_offer, make_quote, make_provider,
        hanging_url):
    garbage = FakeAgent(lambda handler: (200, b"<html>not what an agent says</html>", False))
    with garbage:
        hung = agent_offer(make_node_offer, provider_a, hanging_url, nodes=2)
        bad = agent_offer(make_node_offer, provider_b, garbage.url, nodes=2)
        provider_c = make_provider("Provider C")
        spare = make_node_offer(provider_c, nodes=2, external_id="faults-spare")  # simulated
        sim.configure_offer(spare.external_id, run_duration_s=0.3)
        start_worker(concurrency=2, **WORKER_ENV)

        # hang -> transient timeouts, retried, given up -> next alternative (which answers garbage) -> the spare
        first = place(customer, make_quote, hung)  # only the hanging agent: no alternative left
        order = place_quote(customer, make_quote(customer, [hung, bad, spare]))
        alone = place_quote(customer, make_quote(customer, [bad]))  # garbage, no alternative left

        done = wait_for_state(order.pk, {"completed", "failed"}, timeout=60)
        failed_alone = wait_for_state(alone.pk, {"completed", "failed"}, timeout=60)
        failed_first = wait_for_state(first.pk, {"completed", "failed"}, timeout=60)

    report_figures("agent_hang_and_garbage",
                   failover_order=(done.state, done.attempt, failover_codes(done.pk)),
                   garbage_only=(failed_alone.state, failed_alone.failure_code),
                   hang_only=(failed_first.state, failed_first.failure_code))
    assert (done.state, done.attempt, done.offer_id) == ("completed", 3, spare.id), (done.failure_code,
                                                                                      done.failure_reason)
    assert failover_codes(done.pk) == ["provider_unreachable", "agent_bad_signature"]
    assert (failed_alone.state, failed_alone.failure_code) == ("failed", "agent_bad_signature")
    # a provider that never answered is "no provider able to run it" (docs/orders.md), the last error in the reason
    assert (failed_first.state, failed_first.failure_code) == ("failed", "no_capacity")
    assert "provider_unreachable" in failed_first.failure_reason, failed_first.failure_reason
    assert sim.jobs_created(done.provider_key(3)) == 1
    # every failed attempt's capacity is back, and the spare's too once its order completed
    assert (free_units(hung.id).count(), free_units(bad.id).count(), free_units(spare.id).count()) == (2, 2, 2)


def test_agent_killed_while_the_job_runs_fails_the_order_with_a_code_and_releases_capacity(
        start_worker, customer, provider_a, make_node_offer, make_quote, tmp_path: Path):
    agent = AgentProcess(work_dir=tmp_path / "agent", secret=SECRET, provider=provider_a.slug, slots=1).start()
    try:
        offer = agent_offer(make_node_offer, provider_a, agent.url)
        start_worker(concurrency=2, **WORKER_ENV)
        order = place_quote(customer, make_quote(customer, [offer]), command="echo started; sleep 60")
        wait_for(lambda: Order.objects.get(pk=order.pk).state == "running", timeout=60, message="running")
        wait_for(lambda: Order.objects.get(pk=order.pk).log_chars > 0, timeout=30, message="the job's first log")

        os.kill(agent.process.pid, signal.SIGKILL)  # the agent dies; its job's process is orphaned
        agent.process.wait()
        killed_at = timezone.now()
        done = wait_for_state(order.pk, {"completed", "failed"}, timeout=60)
    finally:
        agent.stop()
        kill_leftovers(agent.work_dir)

    retries = OrderEvent.objects.filter(order_id=order.pk, reason__startswith="transient driver error, retry")
    report_figures("agent_killed_mid_run", state=done.state, code=done.failure_code, retries=retries.count(),
                   failed_after_kill_s=f"{(done.state_changed_at - killed_at).total_seconds():.1f}")
    assert (done.state, done.failure_code) == ("failed", "provider_unreachable"), done.failure_reason
    assert retries.count() >= 2  # ORDERS_RETRY_MAX=2 in the test worker: retried, then given up
    assert free_units(offer.id).count() == 1
