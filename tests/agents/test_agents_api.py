"""Providers manage their agents over the API: enrol (the secret is shown once), list, rotate the secret."""

from __future__ import annotations

from marketplace.agents.models import ProviderAgent


def test_member_enrols_lists_and_rotates(client_for, member_a) -> None:
    client = client_for(member_a)
    created = client.post("/api/v1/agents/", {"name": "rack-1"}, format="json")
    assert created.status_code == 201, created.json()
    body = created.json()
    agent = ProviderAgent.objects.get(pk=body["id"])
    assert (body["provider"], body["name"], body["key_id"], body["secret"]) == (
        "provider-a", "rack-1", "provider-a/rack-1", agent.secret)
    assert len(body["secret"]) >= 40

    listed = client.get("/api/v1/agents/")
    assert listed.status_code == 200
    assert [a["key_id"] for a in listed.json()] == ["provider-a/rack-1"]
    assert "secret" not in listed.json()[0]

    rotated = client.post(f"/api/v1/agents/{agent.pk}/rotate-secret/", {"grace_seconds": 60}, format="json")
    assert rotated.status_code == 200
    old = agent.secret
    agent.refresh_from_db()
    assert rotated.json()["secret"] == agent.secret != old
    assert agent.previous_secret == old and rotated.json()["previous_secret_valid"] is True
    delta = (agent.previous_secret_expires_at - agent.secret_rotated_at).total_seconds()
    assert delta == 60

    again = client.post("/api/v1/agents/", {"name": "rack-1"}, format="json")
    assert (again.status_code, again.json()["error"]["code"]) == (409, "conflict")


def test_others_are_refused_and_nothing_changes(client_for, member_a, member_b, customer, operator) -> None:
    created = client_for(member_a).post("/api/v1/agents/", {}, format="json").json()
    agent = ProviderAgent.objects.get(pk=created["id"])
    assert client_for(customer).get("/api/v1/agents/").status_code == 403
    assert client_for(customer).post("/api/v1/agents/", {}, format="json").status_code == 403
    assert client_for(member_b).get("/api/v1/agents/").json() == []
    foreign = client_for(member_b).post(f"/api/v1/agents/{agent.pk}/rotate-secret/", {}, format="json")
    assert foreign.status_code == 404
    cross = client_for(member_b).post("/api/v1/agents/", {"provider": "provider-a"}, format="json")
    assert (cross.status_code, list(cross.json()["error"]["fields"])) == (400, ["provider"])
    bad = client_for(member_a).post(f"/api/v1/agents/{agent.pk}/rotate-secret/", {"grace_seconds": -5},
                                    format="json")
    assert (bad.status_code, list(bad.json()["error"]["fields"])) == (400, ["grace_seconds"])
    assert client_for(operator).post("/api/v1/agents/", {}, format="json").status_code == 400  # which provider?
    by_operator = client_for(operator).post("/api/v1/agents/", {"provider": "provider-b"}, format="json")
    assert by_operator.status_code == 201
    agent.refresh_from_db()
    assert (agent.secret, agent.previous_secret) == (created["secret"], "")
    assert ProviderAgent.objects.count() == 2
