"""The signed registration endpoint, secret rotation, and the driver configuration the order pipeline reads."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from marketplace.agents.models import AgentNonce, ProviderAgent
from marketplace.agents.services import agent_driver_config, agent_enroll, agent_rotate_secret
from marketplace.models import Offer
from marketplace.services.catalog_version import catalog_version
from workers.drivers.base import TerminalDriverError
from workers.drivers.http import sign_request

PATH = "/api/v1/agents/register/"
SECRET = "agent-secret-0123456789abcdef"


def payload(**offer) -> dict:
    values = {"external_id": "agent-default", "name": "host1 via reference agent (CPU only)",
              "accelerator": "NVIDIA T4", "count": 1, "vcpus": 8, "ram_gb": 31.2, "disk_gb": 100.0,
              "region": "eu-sweden", "price_per_hour": "0.1000", "nodes_available": 2}
    values.update(offer)
    return {"base_url": "http://127.0.0.1:8701", "slots": 2, "active_jobs": 0,
            "machine": {"hostname": "host1", "vcpus": 8, "ram_gb": 31.2}, "offer": values}


def post(body: dict | bytes, *, secret: str = SECRET, key_id: str = "provider-a/default", now: float | None = None,
         headers: dict | None = None):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    signed = sign_request(secret=secret, key_id=key_id, method="POST", path=PATH, body=raw, now=now)
    if headers is not None:
        signed = headers
    extra = {"HTTP_" + k.upper().replace("-", "_"): v for k, v in signed.items()}
    return APIClient().post(PATH, data=raw, content_type="application/json", **extra), signed


@pytest.fixture
def agent(provider_a) -> ProviderAgent:
    agent, _ = agent_enroll(provider=provider_a, secret=SECRET)
    return agent


def snapshot() -> tuple:
    return (catalog_version(), list(Offer.objects.values_list("id", "updated_at")),
            list(ProviderAgent.objects.values_list("id", "last_seen", "registrations", "base_url")))


def test_registration_lists_the_offer_and_bumps_the_catalog(agent, provider_a) -> None:
    before = catalog_version()
    response, _ = post(payload())
    assert response.status_code == 200, response.json()
    offer = Offer.objects.get(provider=provider_a, external_id="agent-default")
    body = response.json()
    assert body["offer"] == {"id": offer.pk, "external_id": "agent-default", "status": "listed", "driver": "agent",
                             "nodes_available": 2, "created": True, "changed": False}
    assert body["catalog_version"] == before + 1 == catalog_version()
    assert body["secret_in_use"] == "current" and body["previous_secret_expires_at"] is None
    assert (offer.name, offer.accelerator.canonical_name, offer.accelerator_count, offer.accelerator_memory_gb,
            offer.vcpus, offer.ram_gb, offer.disk_gb, offer.region.key, offer.price_per_hour, offer.status,
            offer.driver, offer.source) == (
        "host1 via reference agent (CPU only)", "NVIDIA T4", 1, 16.0, 8, 31.2, 100.0, "eu-sweden",
        Decimal("0.1000"), "listed", "agent", "provider")
    agent.refresh_from_db()
    assert (agent.base_url, agent.slots, agent.offer_id, agent.registrations, agent.machine["hostname"]) == (
        "http://127.0.0.1:8701", 2, offer.pk, 1, "host1")
    assert agent.last_seen is not None and body["agent"]["key_id"] == "provider-a/default"
    assert "secret" not in body["agent"]

    # A heartbeat with the same facts changes neither the offer nor the catalog version.
    again, _ = post(payload())
    assert again.status_code == 200
    assert (again.json()["offer"]["created"], again.json()["offer"]["changed"]) == (False, False)
    assert catalog_version() == before + 1
    agent.refresh_from_db()
    assert agent.registrations == 2

    # A new price is an update, and bumps the version once more.
    cheaper, _ = post(payload(price_per_hour="0.0500", nodes_available=3))
    assert cheaper.json()["offer"]["changed"] is True
    offer.refresh_from_db()
    assert (offer.price_per_hour, offer.nodes_available) == (Decimal("0.0500"), 3)
    assert catalog_version() == before + 2
    assert Offer.objects.filter(provider=provider_a).count() == 1


def test_registration_without_an_offer_records_the_machine_only(agent) -> None:
    body = payload()
    del body["offer"]
    before = snapshot()
    response, _ = post(body)
    assert response.status_code == 200
    assert response.json()["offer"] is None
    assert catalog_version() == before[0] and Offer.objects.count() == 0
    agent.refresh_from_db()
    assert (agent.base_url, agent.registrations) == ("http://127.0.0.1:8701", 1)


@pytest.mark.parametrize(("kind", "code"), [
    # An unknown key fails like a wrong secret: the answer does not tell which agent keys exist.
    ("wrong_secret", "bad_signature"), ("unknown_key", "bad_signature"), ("stale_past", "stale_timestamp"),
    ("stale_future", "stale_timestamp"), ("unsigned", "missing_signature"), ("tampered", "bad_signature"),
])
def test_refused_signatures_change_nothing(agent, kind: str, code: str) -> None:
    before = snapshot()
    options = {
        "wrong_secret": {"secret": "not-the-secret-0123456789"},
        "unknown_key": {"key_id": "provider-a/other"},
        "stale_past": {"now": time.time() - 301},
        "stale_future": {"now": time.time() + 301},
        "unsigned": {"headers": {}},
    }.get(kind, {})
    if kind == "tampered":
        raw = json.dumps(payload()).encode()
        signed = sign_request(secret=SECRET, key_id="provider-a/default", method="POST", path=PATH, body=raw)
        response, _ = post(raw.replace(b"0.1000", b"0.0001"), headers=signed)
    else:
        response, _ = post(payload(), **options)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == code
    assert snapshot() == before
    assert AgentNonce.objects.count() == 0


def test_replayed_registration_is_refused(agent) -> None:
    raw = json.dumps(payload()).encode()
    signed = sign_request(secret=SECRET, key_id="provider-a/default", method="POST", path=PATH, body=raw)
    first, _ = post(raw, headers=signed)
    assert first.status_code == 200
    before = snapshot()
    replay, _ = post(raw, headers=signed)
    assert replay.status_code == 401
    assert replay.json()["error"] == {"code": "replayed_nonce",
                                      "message": "This request was already received (nonce seen before).",
                                      "fields": {}}
    assert snapshot() == before


def test_old_nonces_are_purged(agent) -> None:
    AgentNonce.objects.create(agent=agent, nonce="x" * 20, seen_at=timezone.now() - timedelta(seconds=601))
    AgentNonce.objects.create(agent=agent, nonce="y" * 20, seen_at=timezone.now() - timedelta(seconds=100))
    response, signed = post(payload())
    assert response.status_code == 200
    assert sorted(AgentNonce.objects.values_list("nonce", flat=True)) == sorted(
        ["y" * 20, signed["X-Signature-Nonce"]])


def test_invalid_offer_is_a_400_with_fields_and_writes_nothing(agent) -> None:
    before = snapshot()
    response, _ = post(payload(accelerator="NVIDIA Z9000", region="mars-1", count=0, price_per_hour="-1"))
    assert response.status_code == 400
    fields = response.json()["error"]["fields"]
    assert set(fields["offer"]) == {"count", "price_per_hour"}  # the serializer's type checks come first
    response, _ = post(payload(accelerator="NVIDIA Z9000", region="mars-1"))
    assert response.status_code == 400
    fields = response.json()["error"]["fields"]["offer"]
    assert fields["region"] == ["unknown region 'mars-1'"]
    assert fields["accelerator"][0].startswith("unknown accelerator")
    assert snapshot()[:2] == before[:2]
    bad_json, _ = post(b"{not json")
    assert (bad_json.status_code, bad_json.json()["error"]["message"]) == (400, "The body is not valid JSON.")


def test_secret_rotation_grace_period(agent) -> None:
    old = SECRET
    now = timezone.now()
    new = agent_rotate_secret(agent_id=agent.pk, grace_s=3600, now=now)
    assert new != old and len(new) >= 40

    with_old, _ = post(payload())
    assert with_old.status_code == 200
    assert with_old.json()["secret_in_use"] == "previous"
    assert with_old.json()["previous_secret_expires_at"] is not None
    config = agent_driver_config(agent.provider_id)
    assert (config["secret"], config["fallback_secrets"]) == (old, (new,))  # speak the agent's language first

    with_new, _ = post(payload(), secret=new)
    assert (with_new.status_code, with_new.json()["secret_in_use"]) == (200, "current")
    config = agent_driver_config(agent.provider_id)
    assert (config["secret"], config["fallback_secrets"]) == (new, (old,))

    # The grace period ends: the old secret is refused, and no longer offered to the driver.
    ProviderAgent.objects.filter(pk=agent.pk).update(previous_secret_expires_at=timezone.now() - timedelta(seconds=1))
    before = snapshot()
    late, _ = post(payload())
    assert (late.status_code, late.json()["error"]["code"]) == (401, "bad_signature")
    assert snapshot() == before
    assert agent_driver_config(agent.provider_id)["fallback_secrets"] == ()
    assert post(payload(), secret=new)[0].status_code == 200


def test_driver_config(agent, provider_a, provider_b) -> None:
    with pytest.raises(TerminalDriverError) as err:  # enrolled but never registered: no URL yet
        agent_driver_config(provider_a.pk)
    assert err.value.code == "agent_not_registered"
    assert post(payload())[0].status_code == 200
    assert agent_driver_config(provider_a.pk) == {
        "base_url": "http://127.0.0.1:8701", "key_id": "provider-a/default", "secret": SECRET,
        "fallback_secrets": (), "connect_timeout_s": 5.0}
    with pytest.raises(TerminalDriverError):
        agent_driver_config(provider_b.pk)
    ProviderAgent.objects.filter(pk=agent.pk).update(enabled=False)
    with pytest.raises(TerminalDriverError):
        agent_driver_config(provider_a.pk)


def test_driver_config_prefers_the_agent_that_listed_the_offer(agent, provider_a) -> None:
    second, second_secret = agent_enroll(provider=provider_a, name="second")
    assert post(payload())[0].status_code == 200
    body = payload(external_id="agent-second")
    body["base_url"] = "http://127.0.0.1:8702"
    assert post(body, secret=second_secret, key_id="provider-a/second")[0].status_code == 200
    first_offer = Offer.objects.get(external_id="agent-default")
    assert agent_driver_config(provider_a.pk, offer_id=first_offer.pk)["base_url"] == "http://127.0.0.1:8701"
    assert agent_driver_config(provider_a.pk)["base_url"] == "http://127.0.0.1:8702"  # most recently seen
    assert agent_driver_config(provider_a.pk, agent_name="default")["key_id"] == "provider-a/default"


def test_enrol_twice_and_bad_rotation_input(agent, provider_a) -> None:
    from marketplace.errors import ConflictError, NotFoundError, ValidationFailed

    with pytest.raises(ConflictError):
        agent_enroll(provider=provider_a)
    same, secret = agent_enroll(provider=provider_a, secret=SECRET)
    assert (same.pk, secret) == (agent.pk, SECRET)
    with pytest.raises(ValidationFailed):
        agent_enroll(provider=provider_a, name="short", secret="short")
    with pytest.raises(ValidationFailed):
        agent_rotate_secret(agent_id=agent.pk, grace_s=-1)
    with pytest.raises(NotFoundError):
        agent_rotate_secret(agent_id=agent.pk + 1000)
    agent.refresh_from_db()
    assert (agent.secret, agent.previous_secret) == (SECRET, "")
