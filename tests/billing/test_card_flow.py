"""Card orders end to end against the fake Stripe (real SDK): hold -> usage -> capture of exactly the metered
amount -> provider transfer of usage minus the fee -> invoice; declines; capture retries charging once."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.billing.conftest import CAPTURE_PATH, finish_order

pytestmark = pytest.mark.django_db

D = Decimal


def _onboard(fake, provider) -> str:
    """A provider whose Express account finished onboarding (account.updated processed)."""
    from marketplace.billing.models import ProviderPayoutAccount

    acct = fake.state.accounts_create({"type": "express"}, None)
    fake.state.accounts_onboard(acct["id"])
    ProviderPayoutAccount.objects.create(provider=provider, stripe_account_id=acct["id"], charges_enabled=True,
                                         payouts_enabled=True)
    return acct["id"]


def _authorize(order, pm: str = "pm_card_visa"):
    from marketplace.billing.services.order_hooks import billing_authorize_order_for

    return billing_authorize_order_for(order, method="card", payment_method=pm)


def test_card_hold_usage_capture_transfer_invoice(fake, driver, customer, provider_a, make_order):
    from marketplace.billing.models import OrderCharge, PaymentOperation, ProviderTransfer
    from marketplace.billing.selectors.invoices import invoice_csv, order_invoice
    from marketplace.billing.services import ledger
    from marketplace.billing.services.order_hooks import billing_meter_order, billing_order_finished

    acct = _onboard(fake, provider_a)
    order = make_order(customer, provider_a, node_price="8.0000", nodes=1, accelerator_count=8, duration_hours="2")
    charge = _authorize(order)

    # The hold is the quoted maximum: 8 USD/h x 1 node x 2 h.
    assert (charge.status, charge.authorized_amount) == ("authorized", D("16.00"))
    intent = fake.state.payment_intents_retrieve(charge.payment_intent_id, None)
    assert (intent["status"], intent["capture_method"], intent["amount_capturable"]) == ("requires_capture",
                                                                                         "manual", 1600)
    assert PaymentOperation.objects.get(key=f"order:{order.pk}:authorize").status == "succeeded"

    # The job runs 45 min: metered 6.00 USD = 6 accelerator-hours x 1.00.
    order.state, order.metered_usd, order.metered_seconds = "running", D("3.00"), 1350.0
    order.save()
    outcome = billing_meter_order(order)
    assert (outcome.action, outcome.charged) == ("continue", D("3.00"))
    order.metered_usd, order.metered_seconds = D("6.00"), 2700.0
    order.save()
    assert billing_meter_order(order).charged == D("6.00")
    assert billing_meter_order(order).charged == D("6.00")  # a repeated reading charges nothing more

    finish_order(order, "completed", metered="6.00", seconds=2700.0)
    billing_order_finished(order.pk)
    assert OrderCharge.objects.get(order=order).status == "settling"
    driver.settle_all()

    charge = OrderCharge.objects.get(order=order)
    assert (charge.status, charge.usage_amount, charge.captured_amount, charge.fee_amount) == (
        "settled", D("6.00"), D("6.00"), D("0.60"))
    intent = fake.state.payment_intents_retrieve(charge.payment_intent_id, None)
    assert (intent["status"], intent["amount_received"], intent["amount_capturable"]) == ("succeeded", 600, 0)
    assert len(fake.executions(CAPTURE_PATH, key=f"order:{order.pk}:capture")) == 1

    transfer = ProviderTransfer.objects.get(charge=charge)
    assert (transfer.status, transfer.amount) == ("paid", D("5.40"))
    stripe_transfer = fake.state.transfers_retrieve(transfer.stripe_transfer_id, None)
    assert (stripe_transfer["amount"], stripe_transfer["destination"]) == (540, acct)
    assert [r.idempotency_key for r in fake.executions(r"/v1/transfers")] == [f"transfer:{order.pk}:{provider_a.pk}"]

    # Ledger: customer paid 6.00 through Stripe; 0.60 revenue; provider paid 5.40; nothing left owed.
    assert ledger.balance(ledger.platform_account("stripe_clearing")) == D("0.60")
    assert ledger.balance(ledger.platform_account("platform_revenue")) == D("0.60")
    assert ledger.balance(ledger.provider_payable_account(provider_a)) == D("0.00")
    assert ledger.balance(ledger.customer_receivable_account(customer)) == D("0.00")

    invoice = order_invoice(customer, order.pk)
    assert invoice["status"] == "final"
    assert invoice["lines"] == [{
        "kind": "usage", "description": "1 node(s) × 8 NVIDIA H100-SXM5-80GB on Provider A (us-east-virginia)",
        "order_id": order.pk, "quantity": "6.0000", "unit": "accelerator-hour", "unit_price": "1.0000",
        "amount": "6.00"}]
    assert invoice["totals"] == {"usage": "6.00", "not_charged": "0.00", "refunds": "0.00", "total": "6.00"}
    assert invoice["payments"] == [{"method": "card", "amount": "6.00", "reference": charge.payment_intent_id}]
    assert invoice["fees"] == {"platform_fee_included": "0.60", "platform_fee_percent": "10"}
    assert invoice_csv(invoice).splitlines()[1] == (
        f"INV-O{order.pk},usage,1 node(s) × 8 NVIDIA H100-SXM5-80GB on Provider A (us-east-virginia),"
        f"{order.pk},6.0000,accelerator-hour,1.0000,6.00,usd")


def test_declined_card_is_402_and_nothing_is_held(fake, customer, provider_a, make_order):
    from marketplace.billing.errors import PaymentDeclined
    from marketplace.billing.models import JournalEntry, OrderCharge

    order = make_order(customer, provider_a)
    with pytest.raises(PaymentDeclined) as info:
        _authorize(order, "pm_card_chargeDeclinedInsufficientFunds")
    assert (info.value.status_code, info.value.extra) == (402, {"decline_code": "insufficient_funds"})
    assert info.value.message == "Your card has insufficient funds."
    charge = OrderCharge.objects.get(order=order)
    assert (charge.status, charge.failure_code) == ("declined", "insufficient_funds")
    assert JournalEntry.objects.count() == 0
    # Asking again answers the same without a second request to Stripe.
    requests = len(fake.requests)
    with pytest.raises(PaymentDeclined):
        _authorize(order, "pm_card_chargeDeclinedInsufficientFunds")
    assert len(fake.requests) == requests


def test_long_orders_cannot_use_a_card_hold(fake, customer, provider_a, make_order):
    from marketplace.billing.errors import PaymentMethodNotAllowed
    from marketplace.billing.models import OrderCharge

    order = make_order(customer, provider_a, duration_hours="200")
    with pytest.raises(PaymentMethodNotAllowed) as info:
        _authorize(order)
    assert info.value.message.startswith("Orders longer than 144 hours must be paid with prepaid credit")
    assert not OrderCharge.objects.exists() and fake.requests == []


def test_capture_500s_then_success_charges_once(fake, driver, customer, provider_a, make_order):
    """Three 500s outlast the SDK's two retries: the task fails transiently, the operation stays pending; the
    retry repeats the same key and Stripe (the fake) captures once."""
    from marketplace.billing.gateway import TransientGatewayError
    from marketplace.billing.models import OrderCharge, PaymentOperation
    from marketplace.billing.services.orders import billing_record_usage, billing_settle_order
    from marketplace.billing.services.settlement import billing_capture_order

    order = make_order(customer, provider_a)
    _authorize(order)
    billing_record_usage(order.pk, metered_total=D("4.20"))
    billing_settle_order(order.pk)
    fake.inject_fault(CAPTURE_PATH, count=3, status=500)
    with pytest.raises(TransientGatewayError):
        billing_capture_order(order.pk)
    op = PaymentOperation.objects.get(key=f"order:{order.pk}:capture")
    assert (op.status, op.attempts, op.error_kind) == ("pending", 1, "transient")
    assert OrderCharge.objects.get(order=order).status == "settling"
    assert [r.status for r in fake.requests if r.path.endswith("/capture")] == [500, 500, 500]

    charge = billing_capture_order(order.pk)  # the Celery retry
    assert (charge.status, charge.captured_amount) == ("settled", D("4.20"))
    captures = [r for r in fake.requests if r.path.endswith("/capture")]
    assert [(r.status, r.executed, r.idempotency_key) for r in captures] == [
        (500, False, f"order:{order.pk}:capture")] * 3 + [(200, True, f"order:{order.pk}:capture")]
    assert len(fake.executions(CAPTURE_PATH, key=f"order:{order.pk}:capture")) == 1
    assert fake.state.payment_intents_retrieve(charge.payment_intent_id, None)["amount_received"] == 420
    # A redelivered task finds the charge settled and calls nobody.
    before = len(fake.requests)
    billing_capture_order(order.pk)
    assert len(fake.requests) == before


def test_capture_500_retried_by_the_sdk_with_the_same_key(fake, customer, provider_a, make_order):
    from marketplace.billing.services.orders import billing_record_usage, billing_settle_order
    from marketplace.billing.services.settlement import billing_capture_order

    order = make_order(customer, provider_a)
    _authorize(order)
    billing_record_usage(order.pk, metered_total=D("1.00"))
    billing_settle_order(order.pk)
    fake.inject_fault(CAPTURE_PATH, count=1, status=500)
    assert billing_capture_order(order.pk).status == "settled"
    captures = [(r.status, r.idempotency_key) for r in fake.requests if r.path.endswith("/capture")]
    assert captures == [(500, f"order:{order.pk}:capture"), (200, f"order:{order.pk}:capture")]
    assert len(fake.executions(CAPTURE_PATH)) == 1


def test_capture_answer_lost_to_a_timeout_is_replayed_not_repeated(fake, customer, provider_a, make_order):
    """The fake captures, then withholds the answer past the client's 1 s timeout; the SDK's retry with the same
    key gets Stripe's saved answer (Idempotent-Replayed) instead of a second capture."""
    from marketplace.billing.services.orders import billing_record_usage, billing_settle_order
    from marketplace.billing.services.settlement import billing_capture_order

    order = make_order(customer, provider_a)
    _authorize(order)
    billing_record_usage(order.pk, metered_total=D("2.50"))
    billing_settle_order(order.pk)
    fake.inject_fault(CAPTURE_PATH, count=1, mode="timeout", delay=1.5)
    charge = billing_capture_order(order.pk)
    assert (charge.status, charge.captured_amount) == ("settled", D("2.50"))
    captures = [(r.executed, r.replayed, r.fault) for r in fake.requests if r.path.endswith("/capture")]
    assert captures == [(True, False, "timeout"), (False, True, None)]


def test_expired_hold_cannot_be_captured(fake, driver, customer, provider_a, make_order):
    from marketplace.billing.models import OrderCharge
    from marketplace.billing.services.order_hooks import billing_meter_order, billing_order_finished

    order = make_order(customer, provider_a, state="running")
    charge = _authorize(order)
    order.metered_usd = D("1.50")
    order.save()
    billing_meter_order(order)
    fake.state.payment_intents_expire(charge.payment_intent_id)
    driver.deliver_events({"payment_intent.canceled"})
    driver.run_work()
    charge = OrderCharge.objects.get(order=order)
    assert (charge.status, charge.failure_code) == ("expired", "automatic")
    order.metered_usd = D("2.00")
    order.save()
    outcome = billing_meter_order(order)
    assert (outcome.action, outcome.reason, outcome.charged) == ("stop", "hold_expired", D("1.50"))
    finish_order(order, "completed", metered="2.00")
    billing_order_finished(order.pk)
    charge.refresh_from_db()
    assert charge.status == "capture_failed"
    assert charge.failure_message == "The card authorization expired before the order ended; nothing was captured."
    assert fake.executions(CAPTURE_PATH) == []


def test_usage_below_stripe_minimum_is_written_off_and_hold_released(fake, driver, customer, provider_a,
                                                                      make_order):
    from marketplace.billing.models import OrderCharge, ProviderTransfer
    from marketplace.billing.services import ledger
    from marketplace.billing.services.orders import billing_record_usage, billing_settle_order

    order = make_order(customer, provider_a)
    charge = _authorize(order)
    billing_record_usage(order.pk, metered_total=D("0.31"))
    billing_settle_order(order.pk)
    driver.run_work()
    charge = OrderCharge.objects.get(order=order)
    assert (charge.status, charge.usage_amount, charge.written_off_amount) == ("voided", D("0.31"), D("0.31"))
    assert fake.state.payment_intents_retrieve(charge.payment_intent_id, None)["status"] == "canceled"
    assert fake.executions(CAPTURE_PATH) == [] and not ProviderTransfer.objects.exists()
    assert ledger.balance(ledger.customer_receivable_account(customer)) == D("0.00")
    assert ledger.balance(ledger.provider_payable_account(provider_a)) == D("0.00")
