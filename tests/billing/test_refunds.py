"""Refunds: provisioning failure after money moved (card hold released, debited credit returned), provider-fault
failures refunded in full, partial refunds after settlement with the fee and the provider's share reduced in
proportion (a paid transfer partly reversed), final readings below what was charged, and bad refund requests."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.billing.conftest import CAPTURE_PATH, finish_order

pytestmark = pytest.mark.django_db

D = Decimal


def _credit(user) -> Decimal:
    from marketplace.billing.services import ledger

    return ledger.balance(ledger.customer_credit_account(user))


def _top_up(driver, user, amount: str) -> None:
    from marketplace.billing.services.topups import topup_create

    topup_create(user, amount=D(amount), payment_method="pm_card_visa")
    driver.deliver_events({"payment_intent.succeeded"})
    driver.run_work()


def _onboard(fake, provider) -> str:
    from marketplace.billing.models import ProviderPayoutAccount

    acct = fake.state.accounts_create({"type": "express"}, None)
    fake.state.accounts_onboard(acct["id"])
    ProviderPayoutAccount.objects.create(provider=provider, stripe_account_id=acct["id"], charges_enabled=True,
                                         payouts_enabled=True)
    return acct["id"]


def test_provisioning_failure_releases_the_card_hold(fake, driver, customer, provider_a, make_order):
    from marketplace.billing.models import OrderCharge, ProviderTransfer
    from marketplace.billing.selectors.invoices import order_invoice
    from marketplace.billing.services.order_hooks import billing_authorize_order_for, billing_order_finished

    order = make_order(customer, provider_a)
    charge = billing_authorize_order_for(order, method="card", payment_method="pm_card_visa")
    finish_order(order, "failed", failure_code="no_capacity", ran=False)
    billing_order_finished(order.pk)
    assert OrderCharge.objects.get(order=order).status == "voiding"
    driver.run_work()
    charge = OrderCharge.objects.get(order=order)
    assert (charge.status, charge.failure_message) == ("voided", "order failed: no_capacity")
    intent = fake.state.payment_intents_retrieve(charge.payment_intent_id, None)
    assert (intent["status"], intent["amount_received"], intent["cancellation_reason"]) == ("canceled", 0,
                                                                                           "abandoned")
    assert fake.executions(CAPTURE_PATH) == [] and not ProviderTransfer.objects.exists()
    assert [r.idempotency_key for r in fake.executions(r"/v1/payment_intents/\w+/cancel")] == [
        f"order:{order.pk}:cancel"]
    assert order_invoice(customer, order.pk)["totals"]["total"] == "0.00"


def test_provisioning_failure_after_credit_was_debited_refunds_it(fake, driver, customer, provider_a, make_order):
    """Usage was debited on a first attempt's reading, then the order failed over and ran out of alternatives."""
    from marketplace.billing.models import OrderCharge, OrderRefund
    from marketplace.billing.services import ledger
    from marketplace.billing.services.order_hooks import billing_authorize_order_for, billing_order_finished
    from marketplace.billing.services.orders import billing_record_usage

    _top_up(driver, customer, "10.00")
    order = make_order(customer, provider_a)
    billing_authorize_order_for(order, method="credit")
    billing_record_usage(order.pk, metered_total=D("0.45"))
    assert _credit(customer) == D("9.55")
    finish_order(order, "failed", failure_code="provision_timeout", ran=False)
    billing_order_finished(order.pk)
    charge = OrderCharge.objects.get(order=order)
    assert (charge.status, charge.refunded_amount) == ("voided", D("0.45"))
    refund = OrderRefund.objects.get(charge=charge)
    assert (refund.seq, refund.amount, refund.status, refund.reason) == (
        1, D("0.45"), "succeeded", "order failed: provision_timeout")
    assert _credit(customer) == D("10.00")
    assert ledger.balance(ledger.provider_payable_account(provider_a)) == D("0.00")
    billing_order_finished(order.pk)  # again: nothing more
    assert _credit(customer) == D("10.00") and OrderRefund.objects.count() == 1


def test_provider_fault_while_running_refunds_the_run(fake, driver, customer, provider_a, make_order):
    from marketplace.billing.models import OrderCharge, ProviderTransfer
    from marketplace.billing.services.order_hooks import (
        billing_authorize_order_for,
        billing_meter_order,
        billing_order_finished,
    )

    _top_up(driver, customer, "20.00")
    order = make_order(customer, provider_a, state="running")
    billing_authorize_order_for(order, method="credit")
    order.metered_usd = D("5.00")
    order.save()
    billing_meter_order(order)
    assert _credit(customer) == D("15.00")
    finish_order(order, "failed", metered="5.00", failure_code="job_lost")
    billing_order_finished(order.pk)
    charge = OrderCharge.objects.get(order=order)
    assert (charge.status, charge.refunded_amount, _credit(customer)) == ("voided", D("5.00"), D("20.00"))
    assert not ProviderTransfer.objects.exists()


def test_customer_job_failure_is_charged(fake, driver, customer, provider_a, make_order):
    from marketplace.billing.models import OrderCharge
    from marketplace.billing.services.order_hooks import billing_authorize_order_for, billing_order_finished

    _top_up(driver, customer, "20.00")
    order = make_order(customer, provider_a, state="running")
    billing_authorize_order_for(order, method="credit")
    finish_order(order, "failed", metered="3.10", failure_code="job_failed")
    billing_order_finished(order.pk)
    charge = OrderCharge.objects.get(order=order)
    assert (charge.status, charge.usage_amount, _credit(customer)) == ("settled", D("3.10"), D("16.90"))


def test_partial_refund_after_settlement_reverses_part_of_the_paid_transfer(fake, driver, customer, operator,
                                                                             provider_a, make_order):
    from marketplace.billing.models import OrderCharge, OrderRefund, ProviderTransfer
    from marketplace.billing.services import ledger
    from marketplace.billing.services.order_hooks import billing_authorize_order_for
    from marketplace.billing.services.orders import billing_record_usage, billing_refund_order, billing_settle_order

    _onboard(fake, provider_a)
    order = make_order(customer, provider_a)
    billing_authorize_order_for(order, method="card", payment_method="pm_card_visa")
    billing_record_usage(order.pk, metered_total=D("10.00"))
    billing_settle_order(order.pk)
    driver.settle_all()
    transfer = ProviderTransfer.objects.get(charge__order=order)
    assert (transfer.status, transfer.amount) == ("paid", D("9.00"))

    # An operator refunds 3.33 (e.g. an SLA credit): fee on 10.00 was 1.00, on 6.67 it is 0.67.
    charge = billing_refund_order(order.pk, reason="sla_credit", amount=D("3.33"))
    refund = OrderRefund.objects.get(charge=charge)
    assert (refund.status, refund.fee_share, refund.provider_share) == ("pending", D("0.33"), D("3.00"))
    driver.settle_all()
    refund.refresh_from_db()
    charge = OrderCharge.objects.get(order=order)
    assert (refund.status, refund.reversal_done) == ("succeeded", True)
    assert (charge.refunded_amount, charge.fee_amount) == (D("3.33"), D("0.67"))
    stripe_refund = fake.state.refunds_retrieve(refund.stripe_refund_id, None)
    assert (stripe_refund["amount"], stripe_refund["payment_intent"]) == (333, charge.payment_intent_id)
    stripe_transfer = fake.state.transfers_retrieve(transfer.stripe_transfer_id, None)
    assert (stripe_transfer["amount"], stripe_transfer["amount_reversed"]) == (900, 300)
    assert [r.idempotency_key for r in fake.executions(r"/v1/refunds")] == [f"order:{order.pk}:refund:1"]
    assert [r.idempotency_key for r in fake.executions(r"/v1/transfers/\w+/reversals")] == [
        f"transfer:{order.pk}:{provider_a.pk}:reversal:1"]
    # Net: customer paid 6.67, platform kept 0.67, provider kept 6.00; Stripe holds the platform's 0.67.
    assert ledger.balance(ledger.platform_account("platform_revenue")) == D("0.67")
    assert ledger.balance(ledger.platform_account("stripe_clearing")) == D("0.67")
    assert ledger.balance(ledger.provider_payable_account(provider_a)) == D("0.00")

    # The rest, then nothing is left to refund.
    billing_refund_order(order.pk, reason="sla_credit")
    driver.settle_all()
    charge.refresh_from_db()
    assert (charge.refunded_amount, charge.fee_amount) == (D("10.00"), D("0.00"))
    assert fake.state.transfers_retrieve(transfer.stripe_transfer_id, None)["amount_reversed"] == 900
    assert ledger.balance(ledger.platform_account("stripe_clearing")) == D("0.00")
    assert billing_refund_order(order.pk, reason="again").refunded_amount == D("10.00")
    assert OrderRefund.objects.count() == 2


def test_final_reading_below_what_was_debited_gives_credit_back(fake, driver, customer, provider_a, make_order):
    from marketplace.billing.models import JournalEntry, OrderCharge
    from marketplace.billing.services.order_hooks import billing_authorize_order_for
    from marketplace.billing.services.orders import billing_record_usage, billing_settle_order

    _top_up(driver, customer, "10.00")
    order = make_order(customer, provider_a, state="running")
    billing_authorize_order_for(order, method="credit")
    billing_record_usage(order.pk, metered_total=D("4.00"))
    charge = billing_settle_order(order.pk, final_metered=D("3.25"))
    assert (charge.status, charge.usage_amount, charge.metered_amount) == ("settled", D("3.25"), D("3.25"))
    assert _credit(customer) == D("6.75")
    entry = JournalEntry.objects.get(key=f"order:{order.pk}:adjust")
    assert sorted(line.amount for line in entry.lines.all()) == [D("-0.75"), D("0.75")]
    assert OrderCharge.objects.get(order=order).fee_amount == D("0.33")  # 10 % of 3.25, half-up


def test_bad_refunds(fake, driver, customer, provider_a, make_order):
    from marketplace.billing.models import OrderRefund
    from marketplace.billing.services.order_hooks import billing_authorize_order_for
    from marketplace.billing.services.orders import billing_record_usage, billing_refund_order, billing_settle_order
    from marketplace.errors import ConflictError, ValidationFailed

    order = make_order(customer, provider_a)
    billing_authorize_order_for(order, method="card", payment_method="pm_card_visa")
    billing_record_usage(order.pk, metered_total=D("2.00"))
    billing_settle_order(order.pk)
    with pytest.raises(ConflictError, match="is being captured"):
        billing_refund_order(order.pk, reason="oops")
    driver.run_work()
    with pytest.raises(ValidationFailed) as info:
        billing_refund_order(order.pk, reason="oops", amount=D("2.01"))
    assert info.value.fields == {"amount": ["At most 2.00 can be refunded."]}
    with pytest.raises(ValidationFailed) as info:
        billing_refund_order(order.pk, reason=" ")
    assert info.value.fields == {"reason": ["1 to 64 characters."]}
    assert not OrderRefund.objects.exists()


def test_refund_refused_by_stripe_is_visible(fake, driver, customer, provider_a, make_order):
    from marketplace.billing.models import OrderRefund
    from marketplace.billing.services.order_hooks import billing_authorize_order_for
    from marketplace.billing.services.orders import billing_record_usage, billing_refund_order, billing_settle_order

    order = make_order(customer, provider_a)
    billing_authorize_order_for(order, method="card", payment_method="pm_card_visa")
    billing_record_usage(order.pk, metered_total=D("2.00"))
    billing_settle_order(order.pk)
    driver.run_work()
    fake.inject_fault(r"/v1/refunds", mode="declined", message="The refund could not be processed.",
                      code="charge_disputed")
    billing_refund_order(order.pk, reason="goodwill")
    driver.run_work()
    refund = OrderRefund.objects.get()
    assert (refund.status, refund.failure_message) == ("failed", "The refund could not be processed.")
    assert _credit(customer) == D("0.00")
