"""Prepaid credit: top-ups are PaymentIntents (automatic capture) keyed `topup:<id>:intent`. Credit is granted
only when Stripe's `payment_intent.succeeded` event has been received and the intent re-read from Stripe
(webhook processing), never from the answer to the browser or to our own create call."""

from __future__ import annotations

from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from marketplace.billing import gateway
from marketplace.billing.errors import PaymentDeclined, PaymentProviderUnavailable
from marketplace.billing.models import EntryKind, OperationKind, TopUp
from marketplace.billing.money import CURRENCY, from_cents, round_money, to_cents
from marketplace.billing.services import ledger
from marketplace.billing.services.customers import ensure_stripe_customer
from marketplace.billing.services.operations import run_operation
from marketplace.errors import PermissionDeniedError, ValidationFailed

TOPUP_MIN = Decimal("1.00")
TOPUP_MAX = Decimal("10000.00")
Status = TopUp.Status


def topup_create(user, *, amount: Decimal, payment_method: str | None = None) -> TopUp:
    """Start a top-up. With a payment method (test mode: pm_card_visa) it is confirmed server-side; without
    one the response carries the client secret for Stripe.js to confirm in the browser."""
    if getattr(user, "role", None) != "customer":
        raise PermissionDeniedError("Only customers hold prepaid credit.")
    if not isinstance(amount, Decimal) or round_money(amount) != amount or not TOPUP_MIN <= amount <= TOPUP_MAX:
        raise ValidationFailed("Invalid top-up amount.",
                               fields={"amount": [f"Between {TOPUP_MIN} and {TOPUP_MAX} USD, in cents."]})
    if payment_method is not None and not payment_method.startswith("pm_"):
        raise ValidationFailed("Invalid payment method.", fields={"payment_method": ["Expected a pm_… id."]})
    topup = TopUp.objects.create(customer=user, amount=amount, currency=CURRENCY)
    key = f"topup:{topup.pk}:intent"
    try:
        customer_id = ensure_stripe_customer(user)
        params = {"amount": to_cents(amount), "currency": CURRENCY, "customer": customer_id,
                  "payment_method": payment_method}
        intent = run_operation(key=key, kind=OperationKind.TOPUP_INTENT, params=params,
                               call=lambda: gateway.create_payment_intent(
                                   amount_cents=params["amount"], currency=CURRENCY, customer=customer_id,
                                   manual_capture=False, payment_method=payment_method,
                                   description=f"Prepaid credit top-up {topup.pk}",
                                   metadata={"topup_id": str(topup.pk), "kind": "topup"}, key=key))
    except gateway.TransientGatewayError:
        raise PaymentProviderUnavailable("The payment provider did not answer; try again.") from None
    except (gateway.CardDeclined, gateway.RequestRejected) as exc:
        TopUp.objects.filter(pk=topup.pk).update(status=Status.FAILED, failure_code=(exc.code or "")[:64],
                                                 failure_message=exc.message[:300])
        decline = getattr(exc, "decline_code", None) or exc.code
        raise PaymentDeclined(exc.message, extra={"decline_code": decline, "topup_id": topup.pk}) from None
    return topup_apply_intent(topup.pk, intent, confirmed_by_stripe=False)


def topup_apply_intent(topup_id: int, intent: dict, *, confirmed_by_stripe: bool) -> TopUp:
    """Move the top-up forward to what its PaymentIntent says. Credit only when `confirmed_by_stripe` (the
    intent was re-read from Stripe while processing its webhook event). Never moves back from succeeded."""
    with transaction.atomic():
        topup = TopUp.objects.select_for_update().get(pk=topup_id)
        if topup.payment_intent_id and topup.payment_intent_id != intent["id"]:
            return topup
        topup.payment_intent_id = intent["id"]
        if intent.get("client_secret"):
            topup.client_secret = intent["client_secret"]
        status = intent.get("status")
        if topup.status == Status.SUCCEEDED:
            pass
        elif status == "succeeded" and confirmed_by_stripe:
            received = from_cents(intent["amount_received"])
            ledger.post_entry(key=f"topup:{topup.pk}:credit", kind=EntryKind.TOPUP, memo=f"payment {intent['id']}",
                              lines=[(ledger.platform_account("stripe_clearing", topup.currency), received),
                                     (ledger.customer_credit_account(topup.customer), -received)])
            topup.status, topup.credited_amount, topup.credited_at = Status.SUCCEEDED, received, timezone.now()
        elif status in ("succeeded", "processing"):
            topup.status = Status.PROCESSING
        elif status == "canceled":
            topup.status = Status.CANCELED
        elif status == "requires_payment_method" and intent.get("last_payment_error"):
            error = intent["last_payment_error"]
            topup.status = Status.FAILED
            topup.failure_code = (error.get("decline_code") or error.get("code") or "")[:64]
            topup.failure_message = (error.get("message") or "")[:300]
        elif status in ("requires_payment_method", "requires_confirmation", "requires_action"):
            topup.status = Status.REQUIRES_PAYMENT
        topup.save()
        return topup


def topup_apply_refunds(topup_id: int, charge: dict) -> TopUp:
    """A top-up's charge was refunded at Stripe (e.g. unused credit returned from the dashboard): take the
    refunded amount back out of the customer's credit."""
    with transaction.atomic():
        topup = TopUp.objects.select_for_update().get(pk=topup_id)
        refunded = from_cents(charge.get("amount_refunded") or 0)
        new = refunded - topup.refunded_amount
        if topup.status == Status.SUCCEEDED and new > 0:
            ledger.post_entry(key=f"topup:{topup.pk}:refund:{to_cents(refunded)}", kind=EntryKind.TOPUP_REFUND,
                              memo=f"charge {charge['id']} refunded",
                              lines=[(ledger.customer_credit_account(topup.customer), new),
                                     (ledger.platform_account("stripe_clearing", topup.currency), -new)])
            topup.refunded_amount = refunded
            topup.save(update_fields=["refunded_amount"])
        return topup
