"""/metrics: who may read it, HTTP request metrics, queue depth, orders by state, the provisioning histogram."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.django_db


def samples(text: str) -> dict[tuple[str, tuple], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def scrape(client, settings) -> dict[tuple[str, tuple], float]:
    settings.METRICS_TOKEN = "scrape-token"
    response = client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-token")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    return samples(response.content.decode())


def test_metrics_need_the_token_or_an_operator(client, settings, make_user, redis_client) -> None:
    from marketplace.models.accounts import Role

    settings.METRICS_TOKEN = "s3cret"
    assert client.get("/metrics").status_code == 403
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 403
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret").status_code == 200
    client.force_login(make_user("metrics-customer", Role.CUSTOMER))
    assert client.get("/metrics").status_code == 403
    client.force_login(make_user("metrics-operator", Role.OPERATOR))
    assert client.get("/metrics").status_code == 200
    settings.METRICS_TOKEN = ""
    client.logout()
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 403  # no token: no way in


def test_http_requests_are_counted_by_view_and_status(client, settings, redis_client) -> None:
    key = ("broker_http_requests_total", (("method", "GET"), ("status", "200"), ("view", "healthz")))
    missing = ("broker_http_requests_total", (("method", "GET"), ("status", "404"), ("view", "<unmatched>")))
    before = scrape(client, settings)
    client.get("/healthz")
    client.get("/healthz")
    client.get("/no-such-page-at-all/")
    after = scrape(client, settings)
    assert after[key] - before.get(key, 0) == 2
    assert after[missing] - before.get(missing, 0) == 1
    latency = ("broker_http_request_duration_seconds_count", (("method", "GET"), ("view", "healthz")))
    assert after[latency] - before.get(latency, 0) == 2


def test_queue_depth_per_kind_queue(client, settings, base_queue) -> None:
    from marketplace.billing import dispatch
    from marketplace.orders.services.outbox import send_task

    for order_id in (1, 2, 3):
        send_task("workers.tasks.orders.provision", [order_id, 1])
    dispatch.send("retry_provider_transfers")
    got = scrape(client, settings)

    def depth(queue: str, kind: str) -> float:
        return got[("broker_celery_queue_depth", (("kind", kind), ("queue", queue)))]

    assert depth(f"{base_queue}.provisioning", "provisioning") == 3
    assert depth(f"{base_queue}.billing", "billing") == 1
    assert depth(f"{base_queue}.polling", "polling") == 0
    assert depth(base_queue, "default") == 0


def test_orders_by_state_and_time_to_running(client, settings, customer, provider_a, make_offer,
                                             redis_client) -> None:
    import uuid
    from decimal import Decimal

    from marketplace.orders.models import Order

    offer = make_offer(provider_a, name="metrics-offer")
    now = timezone.now()

    def order(state: str, ran_after_s: float | None) -> Order:
        row = Order.objects.create(customer=customer, offer=offer, nodes=1, accelerator_count=8, command="x",
                                   duration_hours=Decimal("1"), state=state, idempotency_key=uuid.uuid4().hex,
                                   request_hash="0" * 64, driver="simulated", node_price_per_hour=Decimal("1"),
                                   state_changed_at=now, checked_at=now)
        placed = now - timedelta(hours=1)
        running_at = placed + timedelta(seconds=ran_after_s) if ran_after_s is not None else None
        Order.objects.filter(pk=row.pk).update(created_at=placed, running_at=running_at)
        return row

    order("running", 10)
    order("completed", 100)
    order("failed", None)
    got = scrape(client, settings)
    assert got[("broker_orders", (("state", "running"),))] == 1
    assert got[("broker_orders", (("state", "completed"),))] == 1
    assert got[("broker_orders", (("state", "failed"),))] == 1
    assert got[("broker_orders", (("state", "queued"),))] == 0

    def bucket(le: str) -> float:
        return got[("broker_order_provisioning_seconds_bucket", (("le", le),))]

    assert (bucket("5.0"), bucket("15.0"), bucket("60.0"), bucket("120.0"), bucket("+Inf")) == (0, 1, 1, 2, 2)
    assert got[("broker_order_provisioning_seconds_count", ())] == 2
    assert got[("broker_order_provisioning_seconds_sum", ())] == pytest.approx(110)
