"""The fuzz run's world: the demo catalog, a customer with a card, a quote, orders in several states, a settled
order with its charge and invoices, a top-up, a provider member with a payout account, an agent and a transfer,
and API tokens for both. Every id a path can take (`id`, `order_id`, `user_id`, `month`) is collected per path so
the generated requests reach real objects, not only 404s.

Stripe is the fake (tests/fakes.py) on 127.0.0.1; whatever the services enqueue goes to a private Celery queue
that nobody consumes and that is deleted at the end."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from tests import fakes
from tests.billing.conftest import Driver, finish_order

fake_server = fakes.fake_server
fake = fakes.fake


@dataclass
class World:
    tokens: dict[str, str | None]  # role -> API key (None: anonymous)
    path_ids: dict[tuple[str, str], list] = field(default_factory=dict)  # (path template, parameter) -> values
    users: dict[str, object] = field(default_factory=dict)
    bodies: dict[str, list] = field(default_factory=dict)  # "METHOD /path" -> request bodies that mean something


@pytest.fixture
def private_queue(settings):
    """Whatever is enqueued during the run lands in a queue of its own, deleted afterwards."""
    queue = f"test-fuzz-{uuid.uuid4().hex[:10]}"
    settings.CELERY_TASK_DEFAULT_QUEUE = queue  # kind queues are <queue>.<kind> (broker/celery_routing.py)
    yield queue
    from broker.celery_routing import queues_for
    from tests.worker_process import redis_url_for_tests

    url = redis_url_for_tests()
    if url is not None:
        import redis

        names = queues_for(base=queue)
        redis.Redis.from_url(url).delete(*names, *(f"_kombu.binding.{n}" for n in names),
                                         *(f"_kombu.binding_permanent.{n}" for n in names))


def _api(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def _ok(response, *codes: int):
    assert response.status_code in codes, (response.status_code, response.content[:500])
    return response.json() if response.content else None


@pytest.fixture
def world(db, fake, private_queue, client, settings) -> World:
    from marketplace.agents.models import ProviderAgent
    from marketplace.billing.models import ProviderTransfer, TopUp
    from marketplace.billing.services.customers import billing_set_overdraft
    from marketplace.billing.services.order_hooks import billing_authorize_order_for, billing_order_finished
    from marketplace.models import ApiToken, Offer, Quote, User
    from marketplace.orders.models import Order
    from marketplace.selectors.snapshot import clear_snapshot_cache
    from marketplace.services.demo import demo_load
    from marketplace.services.tokens import token_create
    from tests.conftest import ensure_reference_data

    # Rate limits stay on but high: thousands of requests in a minute must not turn into 429s.
    settings.THROTTLE_RATES = {scope: "1000000/min" for scope in getattr(settings, "THROTTLE_RATES", {})}
    ensure_reference_data()
    clear_snapshot_cache()
    demo_load()
    customer = User.objects.get(username="alice")
    member = User.objects.get(username="bob")
    operator = User.objects.get(username="admin")
    provider = member.provider
    billing_set_overdraft(operator=operator, customer=customer, limit=Decimal("5000.00"))
    _, customer_key = token_create(user=customer, name="fuzz")
    _, member_key = token_create(user=member, name="fuzz")
    token_create(user=customer, name="fuzz-spare")
    token_create(user=member, name="fuzz-spare")
    alice, bob = _api(customer_key), _api(member_key)
    driver = Driver(fake, client)

    # A top-up paid by card, confirmed by the webhook.
    _ok(alice.post("/api/v1/billing/topups/", {"amount": "40.00", "payment_method": "pm_card_visa"},
                   format="json"), 201)
    driver.settle_all()
    # The provider onboards for payouts and enrols an agent.
    _ok(bob.post("/api/v1/billing/provider/onboarding-link/", {}, format="json"), 200)
    _ok(bob.post("/api/v1/agents/", {"name": "rack-1"}, format="json"), 201)
    # A quote and an order placed from it (its Celery work is never committed: the test's transaction).
    quote = _ok(alice.post("/api/v1/recommendations/", {
        "resources": {"accelerator": "H100", "count": 8, "nodes": 1}, "duration_hours": 1, "objective": "cost"},
        format="json"), 200)
    _ok(alice.post("/api/v1/orders/", {"quote_id": quote["quote"]["id"], "job": {
        "command": "python train.py", "duration_hours": "1"}, "payment": {"method": "credit"}},
        format="json", HTTP_IDEMPOTENCY_KEY="fuzz-1"), 201, 200)
    # An order of the provider's, run and settled: a charge, its invoice, a transfer to the provider.
    offer = Offer.objects.filter(provider=provider, status="listed").first()
    now = datetime.now(UTC)
    settled = Order.objects.create(
        customer=customer, offer=offer, nodes=1, accelerator_count=offer.accelerator_count,
        command="python train.py", duration_hours=2, state="running", idempotency_key=uuid.uuid4().hex,
        request_hash="0" * 64, driver="simulated", node_price_per_hour=offer.price_per_hour,
        state_changed_at=now, checked_at=now)
    billing_authorize_order_for(settled, method="credit")
    finish_order(settled, "completed", metered="12.00", seconds=5400.0)
    billing_order_finished(settled.pk)
    driver.settle_all()
    clear_snapshot_cache()

    month = f"{now:%Y-%m}"
    order_ids = list(Order.objects.order_by("pk").values_list("pk", flat=True))
    offer_ids = list(Offer.objects.filter(provider=provider).order_by("pk").values_list("pk", flat=True)[:5])
    offer_ids += list(Offer.objects.exclude(provider=provider).order_by("pk").values_list("pk", flat=True)[:3])
    ids = {
        "/api/v1/offers/{id}/": offer_ids,
        "/api/v1/offers/{id}/unlist/": offer_ids,
        "/api/v1/orders/{id}/": order_ids,
        "/api/v1/orders/{id}/cancel/": order_ids,
        "/api/v1/orders/{id}/events/": order_ids,
        "/api/v1/orders/{id}/logs/": order_ids,
        "/api/v1/tokens/{id}/": list(ApiToken.objects.filter(name="fuzz-spare").values_list("pk", flat=True)),
        "/api/v1/billing/topups/{id}/": list(TopUp.objects.values_list("pk", flat=True)),
        "/api/v1/billing/transfers/{id}/retry/": list(ProviderTransfer.objects.values_list("pk", flat=True)),
        "/api/v1/agents/{id}/rotate-secret/": list(ProviderAgent.objects.values_list("pk", flat=True)),
    }
    path_ids: dict[tuple[str, str], list] = {(path, "id"): values for path, values in ids.items() if values}
    for path in ("charges/{order_id}/", "charges/{order_id}/refund/", "invoices/orders/{order_id}/",
                 "invoices/orders/{order_id}/csv/"):
        path_ids[(f"/api/v1/billing/{path}", "order_id")] = order_ids
    for path in ("invoices/months/{month}/", "invoices/months/{month}/csv/"):
        path_ids[(f"/api/v1/billing/{path}", "month")] = [month, "2020-01"]
    path_ids[("/api/v1/billing/customers/{user_id}/overdraft/", "user_id")] = [customer.pk, member.pk]
    assert Quote.objects.exists() and ProviderTransfer.objects.exists() and TopUp.objects.exists()
    assert len(order_ids) >= 2
    return World(tokens={"anonymous": None, "customer": customer_key, "provider": member_key},
                 path_ids=path_ids, users={"customer": customer, "provider": member},
                 bodies=_bodies(alice, offer))


def _bodies(alice: APIClient, offer) -> dict[str, list]:
    """Requests that pass validation, for the fuzz to send with generated parameters and headers."""
    recommend = {"resources": {"accelerator": "H100", "count": 8, "nodes": 1}, "duration_hours": 2,
                 "objective": "cost"}
    fresh_quote = _ok(alice.post("/api/v1/recommendations/", recommend, format="json"), 200)["quote"]["id"]
    job = {"command": "python train.py", "duration_hours": "1"}
    new_offer = {"external_id": "fuzz-new", "name": "fuzz", "accelerator": "H100", "count": 8,
                 "region": "us-east-virginia", "price_per_hour": "20.00", "nodes_available": 1}
    return {
        "POST /api/v1/recommendations/": [recommend, {**recommend, "objective": "balanced", "top_k": 3},
                                          {"workload": {"kind": "llm_inference", "model": "llama-3-70b"},
                                           "duration_hours": 4}],
        "POST /api/v1/orders/": [{"quote_id": fresh_quote, "job": job, "payment": {"method": "credit"}},
                                 {"offer_id": offer.pk, "nodes": 1, "job": job, "payment": {"method": "credit"}}],
        "POST /api/v1/offers/": [new_offer],
        "POST /api/v1/offers/bulk/": [{"offers": [new_offer, {**new_offer, "external_id": "fuzz-new-2"}]}],
        "PATCH /api/v1/offers/{id}/": [{"price_per_hour": "21.50"}, {"nodes_available": 3}],
        "POST /api/v1/billing/topups/": [{"amount": "10.00", "payment_method": "pm_card_visa"}],
        "PUT /api/v1/billing/profile/": [{"default_payment_method": "pm_card_visa"}],
        "POST /api/v1/tokens/": [{"name": "fuzz-token"}],
    }


def pytest_terminal_summary(terminalreporter):
    from tests.fuzz import report

    for run in report.RUNS:
        terminalreporter.section("fuzz figures")
        for line in run.summary(operations=True):
            terminalreporter.write_line(line)
