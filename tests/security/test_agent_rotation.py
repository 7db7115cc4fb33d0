"""A leaked agent secret is rotated (admin action, or the API) and stops working at once in both directions, while
the broker keeps working with the agent once the agent runs with its new secret.

What signing already guarantees is tested next to the code (tests/agents/test_registration.py: unsigned, wrong,
stale, tampered and replayed registrations; tests/drivers/test_agent_driver.py and test_agent_faults.py: the same
for broker -> agent calls and the agent's signed answers). Here: rotation end to end, and that a disabled agent
or a signature for another path is refused."""

from __future__ import annotations

import json
import re
import time

import pytest
from django.test import Client
from rest_framework.test import APIClient

from marketplace.agents.models import ProviderAgent
from marketplace.agents.services import agent_driver_config, agent_enroll
from tests.drivers.agent_process import AgentProcess, kill_leftovers
from workers.drivers.base import JobSpec, JobState, TerminalDriverError
from workers.drivers.http import sign_request
from workers.drivers.registry import get_driver

PATH = "/api/v1/agents/register/"
OLD = "leaked-secret-0123456789abcdef"


def register(agent: ProviderAgent, secret: str, path: str = PATH):
    body = json.dumps({"base_url": "http://127.0.0.1:9", "slots": 1}).encode()
    signed = sign_request(secret=secret, key_id=agent.key_id, method="POST", path=path, body=body)
    headers = {"HTTP_" + k.upper().replace("-", "_"): v for k, v in signed.items()}
    return APIClient().post(PATH, data=body, content_type="application/json", **headers)


@pytest.fixture
def agent(provider_a) -> ProviderAgent:
    return agent_enroll(provider=provider_a, secret=OLD)[0]


@pytest.mark.django_db
def test_admin_rotates_a_leaked_secret_at_once(agent, operator) -> None:
    operator.is_superuser = True
    operator.save()
    assert register(agent, OLD).status_code == 200
    admin = Client()
    admin.force_login(operator)
    response = admin.post("/admin/agents/provideragent/", {"action": "rotate_secret_now",
                                                          "_selected_action": [agent.pk]})
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    shown = re.findall(r'<code class="agent-secret">([^<]+)</code>', response.content.decode())
    agent.refresh_from_db()
    assert shown == [agent.secret] and agent.secret != OLD
    assert OLD.encode() not in response.content

    refused = register(agent, OLD)
    assert (refused.status_code, refused.json()["error"]["code"]) == (401, "bad_signature")
    assert register(agent, agent.secret).status_code == 200
    assert agent_driver_config(agent.provider_id)["fallback_secrets"] == ()  # the broker no longer signs with it
    # The change page never shows a secret.
    page = admin.get(f"/admin/agents/provideragent/{agent.pk}/change/").content
    assert agent.secret.encode() not in page and OLD.encode() not in page


@pytest.mark.django_db
def test_admin_rotation_with_grace_keeps_the_old_secret_for_a_while(agent, operator) -> None:
    operator.is_superuser = True
    operator.save()
    admin = Client()
    admin.force_login(operator)
    response = admin.post("/admin/agents/provideragent/", {"action": "rotate_secret_with_grace",
                                                          "_selected_action": [agent.pk]})
    assert response.status_code == 200
    agent.refresh_from_db()
    assert register(agent, OLD).json()["secret_in_use"] == "previous"
    assert register(agent, agent.secret).json()["secret_in_use"] == "current"


@pytest.mark.django_db
def test_a_disabled_agent_and_a_signature_for_another_path_are_refused(agent) -> None:
    other_path = register(agent, OLD, path="/api/v1/agents/register/?again=1")
    assert (other_path.status_code, other_path.json()["error"]["code"]) == (401, "bad_signature")
    ProviderAgent.objects.filter(pk=agent.pk).update(enabled=False)
    disabled = register(agent, OLD)
    assert (disabled.status_code, disabled.json()["error"]["code"]) == (401, "bad_signature")


@pytest.mark.slow
@pytest.mark.django_db
def test_api_rotation_end_to_end_with_a_real_agent(agent, member_a, client_for, tmp_path) -> None:
    """The provider rotates by API with no grace: the agent still on the leaked secret can neither register nor be
    driven; restarted with the new secret it registers and runs the broker's job."""
    ProviderAgent.objects.filter(pk=agent.pk).update(base_url="http://127.0.0.1:9")
    rotated = client_for(member_a).post(f"/api/v1/agents/{agent.pk}/rotate-secret/", {"grace_seconds": 0},
                                        format="json")
    assert rotated.status_code == 200
    new = rotated.json()["secret"]
    assert new != OLD
    assert register(agent, OLD).status_code == 401

    spec = JobSpec(order_id=1, idempotency_key=f"rot-{time.time_ns()}", offer_external_id="agent-default", nodes=1,
                   accelerators_per_node=1, accelerator="NVIDIA T4", command="echo rotated", time_limit_s=60)
    with AgentProcess(work_dir=tmp_path / "old", secret=OLD, provider=agent.provider.slug) as stale:
        try:
            ProviderAgent.objects.filter(pk=agent.pk).update(base_url=stale.url)
            driver = get_driver("agent", **agent_driver_config(agent.provider_id))
            with pytest.raises(TerminalDriverError) as err:  # the broker signs with the new secret only
                driver.create(spec)
            assert err.value.code == "agent_auth_refused"
        finally:
            kill_leftovers(stale.work_dir)
    with AgentProcess(work_dir=tmp_path / "new", secret=new, provider=agent.provider.slug) as fresh:
        try:
            assert register(agent, new).status_code == 200
            ProviderAgent.objects.filter(pk=agent.pk).update(base_url=fresh.url)
            driver = get_driver("agent", **agent_driver_config(agent.provider_id))
            ref = driver.create(spec)
            deadline = time.monotonic() + 20
            while driver.status(ref).state != JobState.SUCCEEDED and time.monotonic() < deadline:
                time.sleep(0.1)
            assert driver.status(ref).state == JobState.SUCCEEDED
            with pytest.raises(TerminalDriverError):  # and the leaked secret no longer reaches the agent either
                get_driver("agent", **fresh.driver_config(secret=OLD)).status(ref)
        finally:
            kill_leftovers(fresh.work_dir)
