"""Prepaid credit: a top-up is credited only by the payment_intent.succeeded webhook (once, however often it is
delivered); usage debits it as metered; the order is warned when low and stopped at zero; no negative balance
unless an operator allows an overdraft."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.billing.conftest import finish_order

pytestmark = pytest.mark.django_db

D = Decimal


def _credit(user) -> Decimal:
    from marketplace.billing.services import ledger

    return ledger.balance(ledger.customer_credit_account(user))


def _top_up(driver, user, amount: str):
    from marketplace.billing.services.topups import topup_create

    topup = topup_create(user, amount=D(amount), payment_method="pm_card_visa")
    driver.deliver_events({"payment_intent.succeeded"})
    driver.run_work()
    topup.refresh_from_db()
    return topup


def test_topup_credited_only_by_the_webhook(fake, driver, customer):
    from marketplace.billing.models import JournalEntry, StripeEvent
    from marketplace.billing.services.topups import topup_create

    topup = topup_create(customer, amount=D("20.00"), payment_method="pm_card_visa")
    # Stripe already says succeeded, but no webhook yet: nothing is credited.
    assert fake.state.payment_intents_retrieve(topup.payment_intent_id, None)["status"] == "succeeded"
    assert (topup.status, _credit(customer)) == ("processing", D("0.00"))
    assert fake.executions(r"/v1/payment_intents")[0].idempotency_key == f"topup:{topup.pk}:intent"

    sent = driver.deliver_events({"payment_intent.succeeded"})
    assert [e["type"] for e in sent] == ["payment_intent.succeeded"]
    assert _credit(customer) == D("0.00")  # stored, waiting for the worker
    driver.run_work()
    topup.refresh_from_db()
    assert (topup.status, topup.credited_amount, _credit(customer)) == ("succeeded", D("20.00"), D("20.00"))
    assert JournalEntry.objects.get(key=f"topup:{topup.pk}:credit").kind == "topup"
    assert StripeEvent.objects.get(event_id=sent[0]["id"]).status == "processed"


def test_usage_debits_credit_warns_then_stops_at_zero(fake, driver, customer, provider_a, make_order):
    from marketplace.billing.models import OrderCharge, ProviderTransfer
    from marketplace.billing.services import ledger
    from marketplace.billing.services.order_hooks import (
        billing_authorize_order_for,
        billing_meter_order,
        billing_order_finished,
    )

    _top_up(driver, customer, "10.00")
    order = make_order(customer, provider_a, state="running", node_price="8.0000", duration_hours="4")
    charge = billing_authorize_order_for(order, method="credit")
    assert (charge.status, charge.method, charge.authorized_amount) == ("authorized", "credit", D("32.00"))

    readings = [("3.00", "continue", "", D("7.00")), ("6.00", "warn", "credit_low", D("4.00")),
                ("9.99", "warn", "credit_low", D("0.01")), ("12.00", "stop", "credit_exhausted", D("0.00"))]
    for metered, action, reason, remaining in readings:
        order.metered_usd = D(metered)
        order.save()
        outcome = billing_meter_order(order)
        assert (outcome.action, outcome.reason, outcome.remaining_credit) == (action, reason, remaining), metered
        assert _credit(customer) == remaining
    assert (outcome.charged, outcome.uncovered) == (D("10.00"), D("2.00"))
    charge = OrderCharge.objects.get(order=order)
    assert charge.warned_at is not None and charge.uncovered_amount == D("2.00")

    # The pipeline stops the order (failed: credit_exhausted); billing charges what the credit covered.
    finish_order(order, "failed", metered="12.00", failure_code="credit_exhausted")
    billing_order_finished(order.pk)
    driver.run_work()
    charge.refresh_from_db()
    assert (charge.status, charge.usage_amount, charge.fee_amount) == ("settled", D("10.00"), D("1.00"))
    assert _credit(customer) == D("0.00")
    assert ProviderTransfer.objects.get(charge=charge).amount == D("9.00")
    assert ledger.balance(ledger.platform_account("platform_revenue")) == D("1.00")


def test_operator_overdraft_lets_credit_go_negative_to_the_limit(fake, driver, customer, operator, provider_a,
                                                                  make_order):
    from marketplace.billing.services.customers import billing_set_overdraft
    from marketplace.billing.services.orders import billing_authorize_order, billing_record_usage

    _top_up(driver, customer, "2.00")
    billing_set_overdraft(operator=operator, customer=customer, limit=D("3.00"))
    order = make_order(customer, provider_a, state="running")
    billing_authorize_order(order.pk, customer=customer, provider=provider_a, method="credit",
                            max_amount=D("16.00"), expected_hours=D("2"), unit_price=D("1.0000"))
    outcome = billing_record_usage(order.pk, metered_total=D("4.50"))
    assert (outcome.action, outcome.reason, outcome.remaining_credit) == ("warn", "credit_low", D("0.50"))
    assert _credit(customer) == D("-2.50")
    outcome = billing_record_usage(order.pk, metered_total=D("6.00"))
    assert (outcome.action, outcome.charged, outcome.uncovered, _credit(customer)) == (
        "stop", D("5.00"), D("1.00"), D("-3.00"))


def test_credit_orders_need_credit(fake, customer, provider_a, make_order):
    from marketplace.billing.errors import InsufficientCredit
    from marketplace.billing.models import OrderCharge
    from marketplace.billing.services.order_hooks import billing_authorize_order_for

    order = make_order(customer, provider_a)
    with pytest.raises(InsufficientCredit) as info:
        billing_authorize_order_for(order, method="credit")
    assert (info.value.status_code, info.value.code, info.value.message) == (
        402, "insufficient_credit", "Prepaid credit is 0.00 USD; top up before ordering.")
    assert not OrderCharge.objects.exists()


def test_reconciler_stops_a_running_order_whose_credit_ran_out(fake, driver, customer, provider_a, make_order):
    """Backstop of the pipeline's own metering call: the reconciler charges the order's meter and asks the
    order pipeline to stop it (failed, credit_exhausted)."""
    from marketplace.billing.services.order_hooks import billing_authorize_order_for
    from marketplace.billing.services.reconcile import meter_running_credit_orders
    from marketplace.orders.models import OrderEvent

    _top_up(driver, customer, "5.00")
    order = make_order(customer, provider_a, state="running")
    billing_authorize_order_for(order, method="credit")
    order.metered_usd = D("7.25")
    order.save()
    assert meter_running_credit_orders() == (1, 1)
    order.refresh_from_db()
    assert (order.state, order.stop_outcome, order.failure_code) == ("stopping", "failed", "credit_exhausted")
    event = OrderEvent.objects.filter(order=order).last()
    assert (event.from_state, event.to_state, event.reason) == (
        "running", "stopping", "stopped by billing: prepaid credit exhausted")
    assert _credit(customer) == D("0.00")
    assert meter_running_credit_orders() == (0, 0)
