"""Offers of agents that stopped registering are unlisted, and listed again when the agent comes back."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone

from marketplace.agents.models import ProviderAgent
from marketplace.agents.services import agent_enroll, agent_register, agents_unlist_stale
from marketplace.models import Offer
from marketplace.services.catalog_version import catalog_version

OFFER = {"external_id": "agent-default", "name": "host", "accelerator": "NVIDIA T4", "count": 1, "vcpus": 4,
         "ram_gb": 16.0, "disk_gb": 50.0, "region": "eu-sweden", "price_per_hour": "0.1000", "nodes_available": 1}


def register(agent: ProviderAgent, when) -> None:
    agent_register(agent=agent, data={"base_url": "http://127.0.0.1:8701", "slots": 1, "offer": OFFER}, now=when)


@pytest.fixture
def two_agents(provider_a, provider_b):
    quiet, _ = agent_enroll(provider=provider_a, secret="quiet-secret-0123456789")
    alive, _ = agent_enroll(provider=provider_b, secret="alive-secret-0123456789")
    return quiet, alive


def test_quiet_agent_offer_is_unlisted_then_relisted(two_agents) -> None:
    quiet, alive = two_agents
    now = timezone.now()
    register(quiet, now - timedelta(seconds=181))
    register(alive, now - timedelta(seconds=30))
    version = catalog_version()

    assert agents_unlist_stale(stale_after_s=180, now=now) == 1
    statuses = dict(Offer.objects.values_list("provider__slug", "status"))
    assert statuses == {"provider-a": "unlisted", "provider-b": "listed"}
    assert catalog_version() == version + 1
    quiet.refresh_from_db()
    assert quiet.offer_unlisted_stale is True

    assert agents_unlist_stale(stale_after_s=180, now=now) == 0  # idempotent, no second bump
    assert catalog_version() == version + 1

    register(quiet, now)  # the agent is back
    quiet.refresh_from_db()
    assert Offer.objects.get(pk=quiet.offer_id).status == "listed"
    assert quiet.offer_unlisted_stale is False
    assert catalog_version() == version + 2


def test_offer_the_provider_unlisted_stays_unlisted(two_agents) -> None:
    quiet, _ = two_agents
    register(quiet, timezone.now())
    quiet.refresh_from_db()
    Offer.objects.filter(pk=quiet.offer_id).update(status="unlisted")
    version = catalog_version()
    register(quiet, timezone.now())
    assert Offer.objects.get(pk=quiet.offer_id).status == "unlisted"
    assert catalog_version() == version


@pytest.mark.slow
@pytest.mark.django_db(transaction=True, serialized_rollback=True)  # the worker sees rows; reference data kept
def test_beat_task_runs_in_a_real_worker(provider_a, tmp_path: Path) -> None:
    from marketplace.agents.beat import SCHEDULE
    from tests.worker_process import CeleryWorker, database_url_of, redis_url_for_tests
    from workers.tasks.agents import unlist_stale_agent_offers

    assert SCHEDULE["unlist-stale-agent-offers"]["task"] == unlist_stale_agent_offers.name
    redis_url = redis_url_for_tests()
    if redis_url is None:
        pytest.skip("no Redis")
    agent, _ = agent_enroll(provider=provider_a, secret="quiet-secret-0123456789")
    register(agent, timezone.now() - timedelta(hours=1))
    with CeleryWorker(database_url=database_url_of(connection.settings_dict), redis_url=redis_url,
                      log_path=tmp_path / "worker.log") as worker:
        assert unlist_stale_agent_offers.apply_async(queue=worker.queue).get(timeout=30) == 1
        assert unlist_stale_agent_offers.apply_async(queue=worker.queue).get(timeout=30) == 0
    assert Offer.objects.get(provider=provider_a).status == "unlisted"
