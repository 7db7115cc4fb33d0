"""Orders and billing end to end through the real pipeline: the orders API places and pays (docs/payments.md "For
the order pipeline"), a real Celery worker runs provisioning, metering and stopping on the simulated driver, and
billing's tasks (settle, capture, void, transfer, webhooks) run in the same worker against the fake Stripe, whose
webhooks reach the broker over HTTP (pytest-django's live server)."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest

from tests.fakes import CONNECT_SECRET, WEBHOOK_SECRET
from tests.orders.conftest import wait_for, wait_for_state

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True, serialized_rollback=True)]
URL = "/api/v1/orders/"
D = Decimal


@pytest.fixture
def paid_worker(fake, live_server, start_worker):
    """A worker of this test (pointed at the fake by `fake`'s environment), the fake's webhooks going to the
    live server. Billing's tasks are sent to the same private queue as the pipeline's."""
    fake.server.webhooks.configure("platform", f"{live_server.url}/api/v1/stripe/webhook/", WEBHOOK_SECRET)
    fake.server.webhooks.configure("connect", f"{live_server.url}/api/v1/stripe/connect-webhook/", CONNECT_SECRET)
    worker = start_worker(STRIPE_TIMEOUT_SECONDS="5")
    yield worker
    fake.server.webhooks.configure("platform", None, None)
    fake.server.webhooks.configure("connect", None, None)
    assert "Traceback" not in worker.log(), worker.log()[-5000:]


def _onboarded(fake, provider) -> str:
    """The provider's Express account, onboarded at the fake (payouts enabled)."""
    from marketplace.billing.models import ProviderPayoutAccount

    account = fake.state.accounts_create({"type": "express"}, None)
    fake.state.accounts_onboard(account["id"])
    ProviderPayoutAccount.objects.create(provider=provider, stripe_account_id=account["id"], charges_enabled=True,
                                         payouts_enabled=True)
    return account["id"]


def _place(client, quote, payment: dict, hours: str = "1"):
    body = {"quote_id": str(quote.id), "payment": payment,
            "job": {"command": "python train.py", "duration_hours": hours}}
    return client.post(URL, body, format="json", HTTP_IDEMPOTENCY_KEY=uuid.uuid4().hex)


def _credit(user) -> Decimal:
    from marketplace.billing.services import ledger

    return ledger.balance(ledger.customer_credit_account(user))


def test_card_hold_run_capture_of_metered_usage_transfer_and_invoice(fake, paid_worker, sim, client_for, customer,
                                                                      provider_a, make_node_offer, make_quote):
    from marketplace.billing.models import OrderCharge, ProviderTransfer

    account_id = _onboarded(fake, provider_a)
    offer = make_node_offer(provider_a, nodes=1, price="1800.0000")  # $0.50 a second: a 2 s run is worth $1
    sim.configure_offer(offer.external_id, boot_latency_s=0.2, run_duration_s=2.0)
    client = client_for(customer)

    res = _place(client, make_quote(customer, [offer]), {"method": "card", "payment_method": "pm_card_visa"})

    assert res.status_code == 201, res.content
    order_id = res.json()["id"]
    charge = OrderCharge.objects.get(order_id=order_id)
    assert (charge.method, charge.status, charge.authorized_amount) == ("card", "authorized", D("1800.00"))
    hold = fake.state.payment_intents_retrieve(charge.payment_intent_id, None)
    assert (hold["status"], hold["amount_capturable"], hold["capture_method"]) == ("requires_capture", 180000,
                                                                                    "manual")
    order = wait_for_state(order_id, "completed")
    transfer = wait_for(lambda: ProviderTransfer.objects.filter(charge__order_id=order_id, status="paid").first(),
                        message="the provider's transfer")

    charge.refresh_from_db()
    metered = order.metered_usd
    assert metered >= D("0.50")  # above Stripe's minimum: captured, not written off
    assert (charge.status, charge.usage_amount, charge.captured_amount) == ("settled", metered, metered)
    intent = fake.state.payment_intents_retrieve(charge.payment_intent_id, None)
    assert (intent["status"], intent["amount_received"]) == ("succeeded", int(metered * 100))  # the rest released
    fee = (metered * D("0.10")).quantize(D("0.01"))
    assert (charge.fee_amount, transfer.amount) == (fee, metered - fee)
    stripe_transfer = fake.state.transfers_retrieve(transfer.stripe_transfer_id, None)
    assert (stripe_transfer["amount"], stripe_transfer["destination"]) == (int((metered - fee) * 100), account_id)

    invoice = client.get(f"/api/v1/billing/invoices/orders/{order_id}/").json()
    assert (invoice["number"], invoice["status"], invoice["payment_method"]) == (f"INV-O{order_id}", "final", "card")
    assert invoice["totals"]["usage"] == invoice["totals"]["total"] == str(metered)
    assert invoice["payments"] == [{"method": "card", "amount": str(metered), "reference": charge.payment_intent_id}]


def test_credit_top_up_by_webhook_usage_debits_and_auto_stop_at_zero(fake, paid_worker, sim, client_for, make_user,
                                                                      provider_a, make_node_offer, make_quote):
    from marketplace.billing.models import OrderCharge, ProviderTransfer
    from marketplace.orders.models import OrderEvent
    from marketplace.orders.services.pipeline import CREDIT_LOW

    payer = make_user("payer", credit=False)  # no credit line: only what the top-up buys
    _onboarded(fake, provider_a)
    offer = make_node_offer(provider_a, nodes=1, price="3600.0000")  # $1 a second
    sim.configure_offer(offer.external_id, boot_latency_s=0.2, run_duration_s=120.0)
    client = client_for(payer)
    quote = make_quote(payer, [offer])
    refused = _place(client, quote, {"method": "credit"})
    assert (refused.status_code, refused.json()["error"]["code"]) == (402, "insufficient_credit")

    topup = client.post("/api/v1/billing/topups/", {"amount": "3.00", "payment_method": "pm_card_visa"},
                        format="json")
    assert topup.status_code == 201, topup.content
    # Credit is granted only once payment_intent.succeeded reaches the webhook and the worker re-reads the intent.
    wait_for(lambda: _credit(payer) == D("3.00"), message="credit from the webhook")
    res = _place(client, make_quote(payer, [offer]), {"method": "credit"})
    assert res.status_code == 201, res.content
    order_id = res.json()["id"]

    order = wait_for_state(order_id, {"completed", "failed"})
    assert (order.state, order.failure_code) == ("failed", "credit_exhausted")
    assert order.running_at is not None and order.metered_usd >= D("3.00")
    charge = wait_for(lambda: OrderCharge.objects.filter(order_id=order_id, status="settled").first(),
                      message="settlement")
    assert (charge.method, charge.usage_amount) == ("credit", D("3.00"))  # never below zero
    assert charge.uncovered_amount == order.metered_usd - D("3.00")
    assert _credit(payer) == D("0.00")
    transfer = wait_for(lambda: ProviderTransfer.objects.filter(charge__order_id=order_id, status="paid").first(),
                        message="the provider's transfer")
    assert (charge.fee_amount, transfer.amount) == (D("0.30"), D("2.70"))
    reasons = list(OrderEvent.objects.filter(order_id=order_id).values_list("reason", flat=True))
    assert reasons.count(CREDIT_LOW) == 1  # $3 is below the $5 warning from the first reading: warned once
    assert "stopped by billing: credit exhausted" in reasons


def test_provisioning_failure_releases_the_card_hold(fake, paid_worker, sim, client_for, customer, provider_a,
                                                     make_node_offer, make_quote):
    from marketplace.billing.models import JournalEntry, OrderCharge, ProviderTransfer

    offer = make_node_offer(provider_a, nodes=1, price="40.0000")
    sim.configure_offer(offer.external_id, boot_latency_s=0.2, failure_rate=1.0)
    client = client_for(customer)

    res = _place(client, make_quote(customer, [offer]), {"method": "card", "payment_method": "pm_card_visa"})

    assert res.status_code == 201, res.content
    order_id = res.json()["id"]
    order = wait_for_state(order_id, {"failed", "completed"})
    assert order.state == "failed" and order.running_at is None
    charge = wait_for(lambda: OrderCharge.objects.filter(order_id=order_id, status="voided").first(),
                      message="the hold released")
    assert (charge.usage_amount, charge.captured_amount) == (D("0.00"), D("0.00"))
    intent = fake.state.payment_intents_retrieve(charge.payment_intent_id, None)
    assert (intent["status"], intent["amount_received"]) == ("canceled", 0)
    assert not ProviderTransfer.objects.filter(charge__order_id=order_id).exists()
    assert not JournalEntry.objects.filter(order_id=order_id).exists()
