"""End to end with real processes: the fake Stripe delivers signed webhooks over HTTP to the broker (pytest-django's
live server), the view enqueues Celery tasks on real Redis, and a real `celery worker` process re-reads Stripe,
credits, settles, captures (through injected 500s) and pays the provider."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
import requests
from django.db import connection

from tests.billing.conftest import CAPTURE_PATH, CONNECT_SECRET, WEBHOOK_SECRET, finish_order, wait_until
from tests.worker_process import CeleryWorker, database_url_of, redis_url_for_tests

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

D = Decimal


@pytest.fixture
def worker(fake, live_server, settings, tmp_path: Path):
    """A worker process on a private queue, pointed at the fake; the fake's webhooks go to the live server."""
    redis_url = redis_url_for_tests()
    if redis_url is None:
        pytest.skip(f"no Redis answers at REDIS_URL={settings.REDIS_URL} (CI runs one on 127.0.0.1:6379)")
    process = CeleryWorker(database_url=database_url_of(connection.settings_dict), redis_url=redis_url,
                           log_path=tmp_path / "worker.log", concurrency=2)
    process.env["STRIPE_TIMEOUT_SECONDS"] = "5"
    settings.CELERY_TASK_DEFAULT_QUEUE = process.queue  # where billing's dispatch sends (this process)
    fake.server.webhooks.configure("platform", f"{live_server.url}/api/v1/stripe/webhook/", WEBHOOK_SECRET)
    fake.server.webhooks.configure("connect", f"{live_server.url}/api/v1/stripe/connect-webhook/", CONNECT_SECRET)
    try:
        with process:
            yield process
    finally:
        fake.server.webhooks.configure("platform", None, None)
        fake.server.webhooks.configure("connect", None, None)
    assert "Traceback" not in process.log(), process.log()


def _credit(user) -> Decimal:
    from marketplace.billing.services import ledger

    return ledger.balance(ledger.customer_credit_account(user))


def _onboard_via_api(client_for, member) -> str:
    response = client_for(member).post("/api/v1/billing/provider/onboarding-link/",
                                       {"return_url": "https://broker.example/done"}, format="json")
    link = response.json()["url"]
    assert requests.get(link, allow_redirects=False, timeout=5).status_code == 302  # the member onboards
    return response.json()["account"]["stripe_account_id"]


def test_credit_topup_usage_settlement_and_payout_through_the_worker(fake, worker, client_for, customer, member_a,
                                                                      provider_a, make_order):
    from marketplace.billing.dispatch import send
    from marketplace.billing.models import OrderCharge, ProviderPayoutAccount, ProviderTransfer, StripeEvent
    from marketplace.billing.services.order_hooks import billing_authorize_order_for, billing_meter_order

    account_id = _onboard_via_api(client_for, member_a)
    created = client_for(customer).post("/api/v1/billing/topups/",
                                        {"amount": "25.00", "payment_method": "pm_card_visa"}, format="json")
    assert created.status_code == 201
    # The fake delivers payment_intent.succeeded to the live server; the worker re-reads it and credits.
    wait_until(lambda: _credit(customer) == D("25.00"), message="credit from the webhook")
    wait_until(lambda: ProviderPayoutAccount.objects.get(provider=provider_a).payouts_enabled,
               message="account.updated processed")
    assert StripeEvent.objects.get(type="account.updated").account == account_id

    order = make_order(customer, provider_a, state="running", node_price="8.0000", duration_hours="2")
    billing_authorize_order_for(order, method="credit")
    order.metered_usd = D("7.40")
    order.save()
    assert billing_meter_order(order).action == "continue"
    finish_order(order, "completed", metered="7.40", seconds=3330.0)
    send("order_finished", order.pk)

    transfer = wait_until(lambda: ProviderTransfer.objects.filter(charge__order=order, status="paid").first(),
                          message="provider transfer paid")
    assert transfer.amount == D("6.66")  # 7.40 minus 10 % (0.74)
    charge = OrderCharge.objects.get(order=order)
    assert (charge.status, charge.usage_amount, charge.fee_amount) == ("settled", D("7.40"), D("0.74"))
    assert _credit(customer) == D("17.60")
    stripe_transfer = fake.state.transfers_retrieve(transfer.stripe_transfer_id, None)
    assert (stripe_transfer["amount"], stripe_transfer["destination"]) == (666, account_id)
    assert set(StripeEvent.objects.values_list("status", flat=True)) <= {"processed", "ignored"}


def test_card_capture_through_500s_is_charged_once(fake, worker, client_for, customer, member_a, provider_a,
                                                   make_order):
    from marketplace.billing.dispatch import send
    from marketplace.billing.models import OrderCharge, ProviderTransfer
    from marketplace.billing.services.order_hooks import billing_authorize_order_for, billing_meter_order

    _onboard_via_api(client_for, member_a)
    order = make_order(customer, provider_a, state="running", node_price="8.0000", duration_hours="2")
    charge = billing_authorize_order_for(order, method="card", payment_method="pm_card_visa")
    assert charge.authorized_amount == D("16.00")
    order.metered_usd = D("5.55")
    order.save()
    billing_meter_order(order)
    finish_order(order, "completed", metered="5.55")
    # Three 500s: more than the SDK's own two retries, so the Celery task retries (backoff) with the same key.
    fake.inject_fault(CAPTURE_PATH, count=3, status=500)
    send("order_finished", order.pk)

    wait_until(lambda: ProviderTransfer.objects.filter(charge__order=order, status="paid").exists(),
               message="captured and paid")
    charge = OrderCharge.objects.get(order=order)
    assert (charge.status, charge.captured_amount) == ("settled", D("5.55"))
    key = f"order:{order.pk}:capture"
    assert [r.status for r in fake.requests if r.idempotency_key == key] == [500, 500, 500, 200]
    assert len(fake.executions(CAPTURE_PATH, key=key)) == 1
    intent = fake.state.payment_intents_retrieve(charge.payment_intent_id, None)
    assert (intent["amount_received"], intent["amount_capturable"]) == (555, 0)
    assert worker.wait_for_log("workers.tasks.billing.capture_order_payment")
    assert "Retry in" in worker.log()
