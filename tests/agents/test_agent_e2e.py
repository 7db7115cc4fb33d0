"""The real agent, launched with `manage.py provider_agent`, registers with a live broker and runs a job that the
broker starts through the agent driver configured by agent_driver_config()."""

from __future__ import annotations

import time

import pytest

from marketplace.agents.models import ProviderAgent
from marketplace.agents.services import agent_driver_config, agent_enroll
from marketplace.models import Offer
from marketplace.services.catalog_version import catalog_version
from tests.drivers.agent_process import AgentProcess, kill_leftovers
from workers.drivers.base import JobSpec, JobState
from workers.drivers.registry import get_driver

# transaction=True: the live server thread and the agent see committed rows; serialized_rollback restores the
# reference data (regions, accelerators) that the flush after a transactional test removes.
pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True, serialized_rollback=True)]
SECRET = "e2e-secret-0123456789abcdef"


def wait(predicate, timeout: float = 20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out")


def test_agent_registers_and_runs_a_broker_job(live_server, make_provider, tmp_path) -> None:
    provider = make_provider("Demo GPU Host", slug="demo-gpu-host")
    agent_enroll(provider=provider, secret=SECRET)
    before = catalog_version()
    process = AgentProcess(work_dir=tmp_path / "agent", secret=SECRET, provider="demo-gpu-host", via_manage=True,
                           extra=["--broker", live_server.url, "--heartbeat", "0.3", "--accelerator", "NVIDIA T4",
                                  "--region", "eu-sweden", "--price-per-hour", "0.05",
                                  "--offer-name", "demo CPU host (no GPU attached; listed as T4 for the demo)"])
    with process:
        try:
            agent = wait(lambda: ProviderAgent.objects.filter(provider=provider, last_seen__isnull=False).first())
            offer = Offer.objects.get(provider=provider, external_id="agent-default")
            assert (offer.status, offer.driver, offer.accelerator.canonical_name, offer.nodes_available,
                    str(offer.price_per_hour), offer.region.key) == (
                "listed", "agent", "NVIDIA T4", 2, "0.0500", "eu-sweden")
            assert offer.vcpus >= 1 and offer.ram_gb > 0
            assert agent.base_url == process.url and agent.offer_id == offer.pk
            assert catalog_version() == before + 1
            wait(lambda: ProviderAgent.objects.get(pk=agent.pk).registrations >= 3)  # heartbeats
            assert catalog_version() == before + 1  # unchanged capacity: no bump

            driver = get_driver("agent", **agent_driver_config(provider.pk, offer_id=offer.pk))
            spec = JobSpec(order_id=1, idempotency_key="order:1:attempt:1", offer_external_id=offer.external_id,
                           nodes=1, accelerators_per_node=1, accelerator="NVIDIA T4", time_limit_s=30,
                           command="echo hello from $BROKER_ORDER_ID; sleep 0.3; echo bye", env={"X": "1"})
            ref = driver.create(spec)
            wait(lambda: driver.status(ref).state == JobState.SUCCEEDED, timeout=10)
            assert driver.logs(ref).text == "hello from 1\nbye\n"
            assert driver.usage(ref).exit_code == 0
        finally:
            kill_leftovers(process.work_dir)
    assert "Traceback" not in process.log(), process.log()
