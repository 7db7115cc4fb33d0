"""/healthz (liveness, no database) and /readyz (database, Redis, a fresh worker heartbeat for every kind queue)."""

from __future__ import annotations

import time

import pytest
from django.db import DatabaseError

from broker.celery_routing import KINDS, queues_for
from marketplace.ops import heartbeat


def test_healthz_is_up_without_touching_the_database(client) -> None:
    response = client.get("/healthz")  # no django_db mark: any query would raise
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_readyz_wants_a_fresh_worker_on_every_kind_queue(client, base_queue, settings) -> None:
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["failing"] == ["workers"]
    assert body["checks"]["database"]["ok"] and body["checks"]["redis"]["ok"]
    assert f"{base_queue}.billing" in body["checks"]["workers"]["detail"]

    now = time.time()
    heartbeat.beat("w1@host", queues_for(["default", "provisioning", "polling"]), now=now)
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["workers"]["detail"].endswith(f"consumes: {base_queue}.billing")

    heartbeat.beat("w2@host", queues_for(["billing"]), now=now - settings.WORKER_HEARTBEAT_STALE_S - 1)
    assert client.get("/readyz").status_code == 503  # the billing worker's heartbeat is stale

    heartbeat.beat("w2@host", queues_for(["billing"]), now=now)
    response = client.get("/readyz")
    assert response.status_code == 200, response.json()
    assert response.json()["failing"] == []


@pytest.mark.django_db
def test_readyz_names_redis_when_redis_is_down(client, base_queue, settings) -> None:
    heartbeat.beat("w@host", queues_for(KINDS))
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["failing"] == ["redis", "workers"]
    assert response.json()["checks"]["database"]["ok"] is True


@pytest.mark.django_db
def test_readyz_names_the_database_when_it_fails(client, base_queue, monkeypatch) -> None:
    from marketplace.ops import health

    class Broken:
        vendor = "broken"

        def cursor(self):
            raise DatabaseError("connection refused")

    heartbeat.beat("w@host", queues_for(KINDS))
    monkeypatch.setattr(health, "connection", Broken())
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["failing"] == ["database"]
    assert "connection refused" in response.json()["checks"]["database"]["detail"]


def test_ops_endpoints_stay_out_of_the_api_schema() -> None:
    """They are for probes and Prometheus, not API clients: explicitly not in the OpenAPI schema."""
    from drf_spectacular.generators import SchemaGenerator

    paths = SchemaGenerator().get_schema(request=None, public=True)["paths"]
    assert not {"/healthz", "/readyz", "/metrics"} & set(paths)
