"""Providers choose how their offers run (the writable `driver`): any registered driver, but `agent` only with an
enrolled agent and `slurm` only for an HPC center whose cluster the operator configured (BROKER_DRIVER_CONFIG
slurm.providers), whose entry is merged into the Slurm driver's configuration."""

from __future__ import annotations

import json

import pytest

from marketplace.models import Offer

pytestmark = pytest.mark.django_db
URL = "/api/v1/offers/"
GOOD = {"name": "8x H100", "accelerator": "H100 SXM", "count": 8, "region": "us-east-virginia",
        "price_per_hour": "24.5000", "status": "listed", "external_id": "node-1"}
SLURM_CONFIG = {"slurm": {"pending_limit_s": 5, "offers": {"node-1": {"gres_type": "fake"}},
                          "providers": {"hpc": {"host": "login.hpc.example", "user": "broker",
                                                "pending_limit_s": 30}}}}


@pytest.fixture
def hpc(make_provider):
    return make_provider("HPC Center", slug="hpc", kind="hpc_center")


@pytest.fixture
def hpc_client(client_for, make_user, hpc):
    return client_for(make_user("hpc-member", role="provider", provider=hpc))


@pytest.fixture
def slurm_configured(monkeypatch):
    monkeypatch.setenv("BROKER_DRIVER_CONFIG", json.dumps(SLURM_CONFIG))


def snapshot() -> list[dict]:
    return list(Offer.objects.order_by("id").values())


def test_default_and_registered_drivers(client_for, member_a):
    client = client_for(member_a)
    plain = client.post(URL, GOOD, format="json")
    simulated = client.post(URL, {**GOOD, "external_id": "node-2", "driver": "simulated"}, format="json")

    assert (plain.status_code, simulated.status_code) == (201, 201)
    assert list(Offer.objects.order_by("id").values_list("driver", flat=True)) == ["simulated", "simulated"]


def test_unknown_driver_is_400_and_nothing_is_written(client_for, member_a):
    res = client_for(member_a).post(URL, {**GOOD, "driver": "kubernetes"}, format="json")

    assert res.status_code == 400
    assert res.json()["error"]["fields"] == {"driver": ["unknown driver 'kubernetes'; choose one of agent, simulated, "
                                                        "slurm"]}
    assert Offer.objects.count() == 0


def test_agent_needs_an_enrolled_agent(client_for, member_a, provider_a):
    from marketplace.agents.services import agent_enroll

    client = client_for(member_a)
    refused = client.post(URL, {**GOOD, "driver": "agent"}, format="json")
    assert refused.status_code == 400
    assert refused.json()["error"]["fields"] == {"driver": [
        "the agent driver needs an enrolled agent: enroll one (POST /api/v1/agents/) and run it first"]}
    assert Offer.objects.count() == 0

    agent_enroll(provider=provider_a)
    created = client.post(URL, {**GOOD, "driver": "agent"}, format="json")
    assert created.status_code == 201, created.content
    assert Offer.objects.get(pk=created.json()["id"]).driver == "agent"


def test_slurm_is_refused_for_a_provider_that_is_not_an_hpc_center(client_for, member_a, slurm_configured):
    res = client_for(member_a).post(URL, {**GOOD, "driver": "slurm"}, format="json")

    assert res.status_code == 400
    assert res.json()["error"]["fields"] == {"driver": [
        "the slurm driver is for HPC centers; this provider is a gpu_host"]}
    assert Offer.objects.count() == 0


def test_slurm_is_refused_until_the_operator_configures_the_cluster(hpc_client, monkeypatch):
    monkeypatch.setenv("BROKER_DRIVER_CONFIG", json.dumps({"slurm": {"providers": {"other-center": {}}}}))
    res = hpc_client.post(URL, {**GOOD, "driver": "slurm"}, format="json")

    assert res.status_code == 400
    assert res.json()["error"]["fields"] == {"driver": [
        "no Slurm cluster is configured for provider 'hpc'; ask the operator to add it to BROKER_DRIVER_CONFIG "
        "(slurm.providers)"]}
    assert Offer.objects.count() == 0


def test_configured_hpc_center_lists_slurm_and_gets_its_cluster(hpc_client, hpc, slurm_configured):
    from marketplace.orders.services.drivers import driver_config

    res = hpc_client.post(URL, {**GOOD, "driver": "slurm"}, format="json")

    assert res.status_code == 201, res.content
    offer = Offer.objects.get(pk=res.json()["id"])
    assert offer.driver == "slurm"
    assert driver_config("slurm", hpc.pk, offer.pk) == {"pending_limit_s": 30, "offers": {"node-1": {"gres_type":
                                                                                                     "fake"}},
                                                        "host": "login.hpc.example", "user": "broker"}


def test_patch_to_a_refused_driver_is_400_and_changes_nothing(client_for, member_a, provider_a, make_offer):
    offer = make_offer(provider_a, external_id="node-1")
    before = snapshot()

    res = client_for(member_a).patch(f"{URL}{offer.id}/", {"driver": "agent"}, format="json")

    assert res.status_code == 400
    assert list(res.json()["error"]["fields"]) == ["driver"]
    assert snapshot() == before


def test_bulk_rows_are_checked_per_provider(hpc_client, slurm_configured):
    res = hpc_client.post(f"{URL}bulk/", {"offers": [{**GOOD, "driver": "slurm"},
                                                     {**GOOD, "external_id": "node-2", "driver": "agent"}]},
                          format="json")

    assert res.status_code == 400
    assert res.json()["error"]["fields"] == {"offers": {"1": {"driver": [
        "the agent driver needs an enrolled agent: enroll one (POST /api/v1/agents/) and run it first"]}}}
    assert Offer.objects.count() == 0
