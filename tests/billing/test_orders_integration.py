"""Billing wired to the real order services (orders app), exactly at the hook points docs/payments.md gives the
pipeline: placement (queue=False) -> authorize -> queue; driver usage -> metered_usd -> billing meter; stop ->
final state -> settle. Also: a declined card fails the order and frees its capacity."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

pytestmark = pytest.mark.django_db

D = Decimal


@pytest.fixture
def quote_for(db):
    """A stored quote over one offer, as the recommendations API makes it (1 node)."""
    from marketplace.models import Quote

    def make(user, offer):
        price = offer.price_per_hour
        now = timezone.now()
        alternative = {"rank": 1, "offer_id": offer.pk, "provider": offer.provider.slug,
                       "accelerator": offer.accelerator.canonical_name, "count": offer.accelerator_count, "nodes": 1,
                       "region": offer.region.key, "node_price_per_hour": str(price), "price_per_hour": str(price),
                       "est_hours": 1.0, "est_total_usd": str(price)}
        return Quote.objects.create(user=user, request={"resources": {"nodes": 1}}, objective="cost",
                                    alternatives=[alternative], created_at=now, expires_at=now + timedelta(minutes=15))

    return make


def _place(customer, quote, key: str):
    from marketplace.orders.serializers import OrderCreateSerializer
    from marketplace.orders.services.placement import order_place

    serializer = OrderCreateSerializer(data={"quote_id": str(quote.id),
                                             "job": {"command": "python train.py", "duration_hours": "2"}})
    assert serializer.is_valid(), serializer.errors
    order, created = order_place(user=customer, idempotency_key=key, data=serializer.placement(), queue=False)
    assert created and order.state == "reserved"
    return order


def test_card_order_through_the_order_services(fake, driver, customer, provider_a, make_offer, quote_for):
    from marketplace.billing.models import OrderCharge, ProviderPayoutAccount, ProviderTransfer
    from marketplace.billing.selectors.invoices import order_invoice
    from marketplace.billing.services.order_hooks import (
        billing_authorize_order_for,
        billing_meter_order,
        billing_order_finished,
    )
    from marketplace.orders.services import transitions
    from marketplace.orders.services.metering import order_record_usage
    from workers.drivers.base import Usage

    acct = fake.state.accounts_create({"type": "express"}, None)
    fake.state.accounts_onboard(acct["id"])
    ProviderPayoutAccount.objects.create(provider=provider_a, stripe_account_id=acct["id"], charges_enabled=True,
                                         payouts_enabled=True)
    offer = make_offer(provider_a, price_per_hour=D("12.0000"), accelerator_count=8, nodes_available=2,
                       external_id="integration-1")
    order = _place(customer, quote_for(customer, offer), "k-card")

    # Placement: authorize before queueing (A2's placement would call this with the order's payment choice).
    charge = billing_authorize_order_for(order, method="card", payment_method="pm_card_visa")
    assert (charge.status, charge.authorized_amount) == ("authorized", D("24.00"))  # 12/h x 2 h
    transitions.order_queue(order.pk)
    transitions.order_claim_provisioning(order.pk, 1, task="test")
    assert transitions.order_record_job(order.pk, 1, "job-1", task="test", running=True) == "running"

    # Metering: the driver reports 30 min, the order's meter says 6.00; billing charges it.
    order = order_record_usage(order.pk, 1, Usage(elapsed_s=1800.0))
    assert order.metered_usd == D("6.00")
    outcome = billing_meter_order(order)
    assert (outcome.action, outcome.charged) == ("continue", D("6.00"))

    # Stop at 45 min (the customer's job finished): final state, then billing settles.
    order = order_record_usage(order.pk, 1, Usage(elapsed_s=2700.0))
    transitions.order_begin_stop(order.pk, outcome=transitions.State.COMPLETED, reason="job exited", task="test")
    order = transitions.order_finish(order.pk, terminated_ref="job-1", task="test")
    assert (order.state, order.metered_usd) == ("completed", D("9.00"))
    billing_order_finished(order.pk)
    driver.settle_all()

    charge = OrderCharge.objects.get(order=order)
    assert (charge.status, charge.captured_amount, charge.fee_amount) == ("settled", D("9.00"), D("0.90"))
    assert fake.state.payment_intents_retrieve(charge.payment_intent_id, None)["amount_received"] == 900
    assert ProviderTransfer.objects.get(charge=charge).amount == D("8.10")
    line = order_invoice(customer, order.pk)["lines"][0]
    assert (line["quantity"], line["unit_price"], line["amount"]) == ("6.0000", "1.5000", "9.00")


def test_declined_card_fails_the_order_and_frees_capacity(fake, customer, provider_a, make_offer, quote_for):
    from marketplace.billing.errors import PaymentDeclined
    from marketplace.billing.services.order_hooks import billing_authorize_order_for
    from marketplace.orders.models import Order
    from marketplace.orders.services import transitions

    offer = make_offer(provider_a, nodes_available=1, external_id="integration-2")
    quote = quote_for(customer, offer)
    order = _place(customer, quote, "k-declined")
    with pytest.raises(PaymentDeclined):
        billing_authorize_order_for(order, method="card", payment_method="pm_card_chargeDeclined")
    # What placement does on a decline: fail the order with the code; capacity is released in that transaction.
    transitions.order_fail(order.pk, code="payment_declined", reason="the card was declined")
    assert Order.objects.get(pk=order.pk).state == "failed"
    again = _place(customer, quote_for(customer, offer), "k-second")  # the only node is free again
    assert again.pk != order.pk
