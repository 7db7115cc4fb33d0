"""Customers, PaymentIntents (automatic and manual capture, partial capture, cancel), charges and refunds."""

from __future__ import annotations

import copy

from marketplace.billing.fake_stripe.forms import FormError, as_bool, as_int
from marketplace.billing.fake_stripe.state import BaseState, FakeStripeError, invalid

# Stripe's test PaymentMethods (https://docs.stripe.com/testing): None = succeeds, else (code, decline_code, message).
TEST_PAYMENT_METHODS: dict[str, tuple[str, str | None, str] | None] = {
    "pm_card_visa": None,
    "pm_card_mastercard": None,
    "pm_card_amex": None,
    "pm_card_us": None,
    "pm_card_visa_debit": None,
    "pm_card_chargeDeclined": ("card_declined", "generic_decline", "Your card was declined."),
    "pm_card_chargeDeclinedInsufficientFunds": ("card_declined", "insufficient_funds",
                                                "Your card has insufficient funds."),
    "pm_card_chargeDeclinedFraudulent": ("card_declined", "fraudulent", "Your card was declined."),
    "pm_card_chargeDeclinedExpiredCard": ("expired_card", "expired_card", "Your card has expired."),
    "pm_card_chargeDeclinedIncorrectCvc": ("incorrect_cvc", "incorrect_cvc",
                                           "Your card's security code is incorrect."),
    "pm_card_chargeDeclinedProcessingError": ("processing_error", "processing_error",
                                              "An error occurred while processing your card. Try again in a "
                                              "little bit."),
}
REQUIRES_ACTION = {"pm_card_authenticationRequired", "pm_card_threeDSecure2Required"}
LAST4 = {"pm_card_mastercard": "4444", "pm_card_amex": "8431", "pm_card_visa_debit": "5556"}
CANCELABLE = {"requires_payment_method", "requires_capture", "requires_confirmation", "requires_action"}
PI_CREATE = {"amount", "currency", "customer", "capture_method", "confirm", "payment_method", "description",
             "metadata", "transfer_group", "payment_method_types", "automatic_payment_methods", "receipt_email",
             "statement_descriptor_suffix", "off_session", "setup_future_usage", "return_url"}


class PaymentsMixin(BaseState):
    # -- customers -------------------------------------------------------------------------------
    def customers_create(self, params: dict, account: str | None) -> dict:
        self.only(params, {"email", "name", "description", "metadata"})
        return self.put("customers", {
            "id": self.new_id("cus"), "object": "customer", "created": self.now(), "livemode": False,
            "email": params.get("email"), "name": params.get("name"), "description": params.get("description"),
            "metadata": self.metadata(params), "balance": 0, "currency": None,
        })

    def customers_retrieve(self, ident: str, account: str | None) -> dict:
        return self.get("customers", ident, "customer")

    # -- payment intents -------------------------------------------------------------------------
    def payment_intents_create(self, params: dict, account: str | None) -> dict:
        self.only(params, PI_CREATE)
        currency = self.currency(params)
        amount = self.amount(params, "amount", currency)
        capture_method = params.get("capture_method", "automatic_async")
        if capture_method not in ("automatic", "automatic_async", "manual"):
            raise invalid(f"Invalid capture_method: {capture_method}", param="capture_method")
        if params.get("customer"):
            self.get("customers", params["customer"], "customer", param="customer")
        try:
            confirm = as_bool(params, "confirm")
        except FormError as exc:
            raise invalid(str(exc), param="confirm") from None
        pi_id = self.new_id("pi")
        intent = self.put("payment_intents", {
            "id": pi_id, "object": "payment_intent", "created": self.now(), "livemode": False,
            "amount": amount, "amount_capturable": 0, "amount_received": 0, "currency": currency,
            "capture_method": capture_method, "confirmation_method": "automatic",
            "client_secret": f"{pi_id}_secret_{self.new_id('s')[2:]}", "customer": params.get("customer"),
            "description": params.get("description"), "metadata": self.metadata(params),
            "payment_method": params.get("payment_method"), "transfer_group": params.get("transfer_group"),
            "status": "requires_payment_method" if not params.get("payment_method") else "requires_confirmation",
            "last_payment_error": None, "latest_charge": None, "canceled_at": None, "cancellation_reason": None,
            "next_action": None,
        })
        self.emit("payment_intent.created", intent)
        if confirm:
            return self._confirm(intent, params.get("payment_method"))
        return intent

    def payment_intents_retrieve(self, ident: str, account: str | None) -> dict:
        return self.get("payment_intents", ident, "payment_intent", param="intent")

    def payment_intents_confirm(self, ident: str, params: dict, account: str | None) -> dict:
        self.only(params, {"payment_method", "return_url", "off_session"})
        intent = self.payment_intents_retrieve(ident, account)
        if intent["status"] not in ("requires_payment_method", "requires_confirmation"):
            raise FakeStripeError(
                400, f"This PaymentIntent's status is {intent['status']}, but it must be requires_payment_method "
                     "or requires_confirmation to be confirmed.", code="payment_intent_unexpected_state",
                extra={"payment_intent": copy.deepcopy(intent)})
        return self._confirm(intent, params.get("payment_method") or intent["payment_method"])

    def _confirm(self, intent: dict, payment_method: str | None) -> dict:
        if not payment_method:
            raise FakeStripeError(400, "You cannot confirm this PaymentIntent because it's missing a payment method.",
                                  code="payment_intent_unexpected_state", param="payment_method")
        if payment_method not in TEST_PAYMENT_METHODS and payment_method not in REQUIRES_ACTION:
            raise FakeStripeError(400, f"No such PaymentMethod: '{payment_method}'", code="resource_missing",
                                  param="payment_method")
        intent["payment_method"] = payment_method
        if payment_method in REQUIRES_ACTION:
            intent.update(status="requires_action",
                          next_action={"type": "use_stripe_sdk", "use_stripe_sdk": {"type": "three_d_secure_redirect"}})
            self.emit("payment_intent.requires_action", intent)
            return intent
        decline = TEST_PAYMENT_METHODS[payment_method]
        charge = self._charge_for(intent, payment_method, failed=decline is not None)
        if decline is not None:
            code, decline_code, message = decline
            error = {"type": "card_error", "code": code, "decline_code": decline_code, "message": message,
                     "charge": charge["id"], "payment_method": {"id": payment_method, "object": "payment_method"}}
            intent.update(status="requires_payment_method", last_payment_error=error)
            self.emit("charge.failed", charge)
            self.emit("payment_intent.payment_failed", intent)
            raise FakeStripeError(402, message, type="card_error", code=code, decline_code=decline_code,
                                  extra={"charge": charge["id"], "payment_intent": copy.deepcopy(intent)})
        intent["last_payment_error"] = None
        if intent["capture_method"] == "manual":
            intent.update(status="requires_capture", amount_capturable=intent["amount"])
            self.emit("charge.succeeded", charge)
            self.emit("payment_intent.amount_capturable_updated", intent)
        else:
            charge.update(captured=True, amount_captured=intent["amount"])
            intent.update(status="succeeded", amount_received=intent["amount"])
            self.emit("charge.succeeded", charge)
            self.emit("payment_intent.succeeded", intent)
        return intent

    def _charge_for(self, intent: dict, payment_method: str, *, failed: bool) -> dict:
        charge = self.put("charges", {
            "id": self.new_id("ch"), "object": "charge", "created": self.now(), "livemode": False,
            "amount": intent["amount"], "amount_captured": 0, "amount_refunded": 0, "captured": False,
            "refunded": False, "currency": intent["currency"], "customer": intent["customer"],
            "payment_intent": intent["id"], "payment_method": payment_method, "paid": not failed,
            "status": "failed" if failed else "succeeded", "metadata": dict(intent["metadata"]),
            "transfer_group": intent["transfer_group"],
            "payment_method_details": {"type": "card", "card": {
                "brand": "mastercard" if "mastercard" in payment_method else "visa",
                "last4": LAST4.get(payment_method, "4242"),
                "capture_before": self.now() + 7 * 86400 if intent["capture_method"] == "manual" else None}},
        })
        intent["latest_charge"] = charge["id"]
        return charge

    def payment_intents_capture(self, ident: str, params: dict, account: str | None) -> dict:
        self.only(params, {"amount_to_capture", "metadata", "final_capture", "application_fee_amount",
                           "statement_descriptor_suffix"})
        intent = self.payment_intents_retrieve(ident, account)
        if intent["status"] != "requires_capture":
            raise FakeStripeError(
                400, f"This PaymentIntent could not be captured because it has a status of {intent['status']}. "
                     "Only a PaymentIntent with one of the following statuses may be captured: requires_capture.",
                code="payment_intent_unexpected_state", extra={"payment_intent": copy.deepcopy(intent)})
        amount = self.amount(params, "amount_to_capture", intent["currency"], required=False)
        amount = intent["amount_capturable"] if amount is None else amount
        if amount > intent["amount_capturable"]:
            raise invalid(f"The amount_to_capture ({amount}) must be less than or equal to the amount capturable "
                          f"({intent['amount_capturable']}).", param="amount_to_capture", code="amount_too_large")
        charge = self.get("charges", intent["latest_charge"], "charge")
        charge.update(captured=True, amount_captured=amount)
        intent.update(status="succeeded", amount_received=amount, amount_capturable=0)
        if params.get("metadata"):
            intent["metadata"].update(self.metadata(params))
        self.emit("charge.captured", charge)
        self.emit("payment_intent.succeeded", intent)
        return intent

    def payment_intents_cancel(self, ident: str, params: dict, account: str | None) -> dict:
        self.only(params, {"cancellation_reason"})
        intent = self.payment_intents_retrieve(ident, account)
        reason = params.get("cancellation_reason")
        if reason not in (None, "duplicate", "fraudulent", "requested_by_customer", "abandoned"):
            raise invalid(f"Invalid cancellation_reason: {reason}", param="cancellation_reason")
        return self._cancel(intent, reason)

    def _cancel(self, intent: dict, reason: str | None) -> dict:
        if intent["status"] not in CANCELABLE:
            raise FakeStripeError(
                400, f"You cannot cancel this PaymentIntent because it has a status of {intent['status']}. Only a "
                     "PaymentIntent with one of the following statuses may be canceled: "
                     + ", ".join(sorted(CANCELABLE)) + ".",
                code="payment_intent_unexpected_state", extra={"payment_intent": copy.deepcopy(intent)})
        intent.update(status="canceled", amount_capturable=0, canceled_at=self.now(), cancellation_reason=reason)
        self.emit("payment_intent.canceled", intent)
        return intent

    def payment_intents_expire(self, ident: str) -> dict:
        """Test helper: an authorization hold runs out (Stripe cancels the intent with reason `automatic`)."""
        intent = self.payment_intents_retrieve(ident, None)
        if intent["status"] != "requires_capture":
            raise invalid(f"Only an uncaptured authorization can expire (status is {intent['status']}).")
        return self._cancel(intent, "automatic")

    # -- charges and refunds ---------------------------------------------------------------------
    def charges_retrieve(self, ident: str, account: str | None) -> dict:
        return self.get("charges", ident, "charge")

    def refunds_create(self, params: dict, account: str | None) -> dict:
        self.only(params, {"payment_intent", "charge", "amount", "reason", "metadata", "reverse_transfer",
                           "refund_application_fee"})
        if params.get("payment_intent"):
            intent = self.get("payment_intents", params["payment_intent"], "payment_intent", param="payment_intent")
            if not intent["latest_charge"] or intent["status"] != "succeeded":
                raise FakeStripeError(400, f"This PaymentIntent ({intent['id']}) does not have a successful charge "
                                           "to refund.", code="charge_not_refundable")
            charge = self.get("charges", intent["latest_charge"], "charge")
        elif params.get("charge"):
            charge = self.get("charges", params["charge"], "charge", param="charge")
        else:
            raise invalid("One of the following params should be provided for this request: payment_intent or "
                          "charge.", code="parameter_missing")
        if params.get("reason") not in (None, "duplicate", "fraudulent", "requested_by_customer"):
            raise invalid(f"Invalid reason: {params['reason']}", param="reason")
        remaining = charge["amount_captured"] - charge["amount_refunded"]
        try:
            amount = as_int(params, "amount", minimum=1)
        except FormError as exc:
            raise invalid(str(exc), param="amount") from None
        amount = remaining if amount is None else amount
        if amount > remaining or remaining <= 0:
            raise FakeStripeError(
                400, f"Refund amount ({amount / 100:.2f}) is greater than unrefunded amount on charge "
                     f"({remaining / 100:.2f})", code="amount_too_large", param="amount")
        refund = self.put("refunds", {
            "id": self.new_id("re"), "object": "refund", "created": self.now(), "amount": amount,
            "currency": charge["currency"], "charge": charge["id"], "payment_intent": charge["payment_intent"],
            "reason": params.get("reason"), "status": "succeeded", "metadata": self.metadata(params),
        })
        charge["amount_refunded"] += amount
        charge["refunded"] = charge["amount_refunded"] == charge["amount_captured"]
        self.emit("refund.created", refund)
        self.emit("charge.refunded", charge)
        return refund

    def refunds_retrieve(self, ident: str, account: str | None) -> dict:
        return self.get("refunds", ident, "refund")
