"""The order pipeline's entry points into billing (documented in docs/payments.md):

    billing_authorize_order(order_id, ...)        at placement: card hold, or a check that credit is available
    billing_record_usage(order_id, metered_total=...)   while running: charge usage as metered (cumulative)
    billing_settle_order(order_id, final_metered=...)   at the end: capture / finish, then pay the provider
    billing_refund_order(order_id, reason=..., amount=None)   provisioning failed, or an operator refund
    billing_reassign_provider(order_id, provider)  failover to another provider before any usage

Every state change locks the OrderCharge row, writes its ledger entries in the same transaction, and enqueues
Stripe work (capture, release, refund, transfer) only after commit. Only authorization calls Stripe inline,
because the customer is waiting for its answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.utils import timezone

from marketplace.billing import gateway
from marketplace.billing.conf import billing_settings
from marketplace.billing.dispatch import enqueue
from marketplace.billing.errors import (
    InsufficientCredit,
    PaymentDeclined,
    PaymentMethodNotAllowed,
    PaymentProviderUnavailable,
)
from marketplace.billing.models import (
    EntryKind,
    LedgerAccount,
    OperationKind,
    OrderCharge,
    OrderRefund,
    PaymentMethodKind,
)
from marketplace.billing.money import (
    CURRENCY,
    STRIPE_MINIMUM,
    ZERO,
    from_cents,
    platform_fee,
    round_money,
    to_cents,
)
from marketplace.billing.services import ledger
from marketplace.billing.services.customers import customer_billing, ensure_stripe_customer
from marketplace.billing.services.operations import run_operation
from marketplace.errors import ConflictError, NotFoundError, ValidationFailed

Status = OrderCharge.Status


@dataclass(frozen=True)
class UsageOutcome:
    """What the pipeline should do after a meter reading: `continue`, `warn` (credit is low: tell the customer)
    or `stop` (credit exhausted, card hold used up, or the charge is no longer billable: stop the order)."""

    action: str
    reason: str
    charged: Decimal
    uncovered: Decimal
    remaining_credit: Decimal | None


def _money_arg(name: str, value: Decimal, *, positive: bool = False) -> Decimal:
    if not isinstance(value, Decimal) or not value.is_finite() or value < 0 or (positive and value == 0):
        raise ValidationFailed(f"Invalid {name}.", fields={name: ["Must be a non-negative Decimal amount."
                                                                  if not positive else "Must be a positive amount."]})
    return value


def lock_charge(order_id: int) -> OrderCharge:
    try:
        return OrderCharge.objects.select_for_update().get(order_id=order_id)
    except OrderCharge.DoesNotExist:
        raise NotFoundError(f"Order {order_id} has no billing record.") from None


def credit_available(user, *, lock: bool = False, profile=None, account=None) -> tuple[Decimal, Decimal]:
    """(balance, available) of the customer's prepaid credit; available includes an operator's overdraft (from
    `profile`, the customer's billing profile when the caller has just read it; `account`: likewise the credit
    account)."""
    account = account or ledger.customer_credit_account(user)  # read just now: its kept balance is current
    if lock:
        account = LedgerAccount.objects.select_for_update().get(pk=account.pk)
    balance = ledger.loaded_balance(account)
    return balance, balance + (profile or customer_billing(user)).overdraft_limit


# -- authorize -------------------------------------------------------------------------------------

def billing_authorize_order(order_id: int, *, customer, provider, method: str, max_amount: Decimal,
                            expected_hours: Decimal, unit_price: Decimal, description: str = "",
                            unit_label: str = "accelerator-hour", payment_method: str | None = None) -> OrderCharge:
    """Card: hold `max_amount` (PaymentIntent, manual capture) now; raises PaymentDeclined (402) or
    PaymentProviderUnavailable (503; calling again retries the same request). Credit: requires a positive
    available balance (InsufficientCredit, 402). Idempotent per order. Call it after the order row is
    committed and outside a transaction (it waits for Stripe)."""
    existing = OrderCharge.objects.filter(order_id=order_id).first()
    if existing is None:
        existing = _create_charge(order_id, customer=customer, provider=provider, method=method,
                                  max_amount=max_amount, expected_hours=expected_hours, unit_price=unit_price,
                                  description=description, unit_label=unit_label, payment_method=payment_method)
    if existing.status == Status.DECLINED:
        raise PaymentDeclined(existing.failure_message or "The payment was declined.",
                              extra={"decline_code": existing.failure_code})
    if existing.status != Status.AUTHORIZING:
        return existing
    return _authorize_card(existing)


def _create_charge(order_id: int, *, customer, provider, method: str, max_amount: Decimal, expected_hours: Decimal,
                   unit_price: Decimal, description: str, unit_label: str, payment_method: str | None) -> OrderCharge:
    if method not in PaymentMethodKind.values:
        raise ValidationFailed("Unknown payment method.", fields={"payment": ["Choose card or credit."]})
    settings = billing_settings()
    fields = _charge_fields(order_id, customer=customer, provider=provider, method=method, max_amount=max_amount,
                            unit_price=unit_price, description=description, unit_label=unit_label)
    if method == PaymentMethodKind.CARD:
        if expected_hours > settings.card_hold_max_hours:
            raise PaymentMethodNotAllowed(
                f"Orders longer than {settings.card_hold_max_hours} hours must be paid with prepaid credit: a card "
                "authorization expires after about 7 days.", fields={"payment": ["Use credit for long orders."]})
        pm = payment_method or customer_billing(customer).default_payment_method
        if not pm:
            raise ValidationFailed("A card is required.", fields={"payment_method": [
                "Give a Stripe PaymentMethod id or save a default card (test mode: pm_card_visa)."]})
        fields.update(status=Status.AUTHORIZING, payment_method=pm,
                      authorized_amount=max(round_money(max_amount), STRIPE_MINIMUM[CURRENCY]))
    else:
        balance, available = credit_available(customer)
        if available <= 0:
            raise InsufficientCredit(f"Prepaid credit is {balance} {CURRENCY.upper()}; top up before ordering.",
                                     extra={"balance": str(balance)})
        fields.update(_credit_authorized(max_amount))
    try:
        with transaction.atomic():
            return OrderCharge.objects.create(**fields)
    except IntegrityError:
        return OrderCharge.objects.get(order_id=order_id)


def _charge_fields(order_id: int, *, customer, provider, method: str, max_amount: Decimal, unit_price: Decimal,
                   description: str, unit_label: str) -> dict:
    """The fields every new charge has, its amounts checked."""
    _money_arg("max_amount", max_amount, positive=True)
    _money_arg("unit_price", unit_price)
    return dict(order_id=order_id, customer=customer, provider=provider, method=method, currency=CURRENCY,
                description=description[:200], unit_label=unit_label[:32], unit_price=unit_price)


def _credit_authorized(max_amount: Decimal) -> dict:
    return {"status": Status.AUTHORIZED, "authorized_amount": round_money(max_amount)}


def billing_authorize_credit_placing(order_id: int, *, customer, provider, max_amount: Decimal, unit_price: Decimal,
                                     description: str = "", unit_label: str = "accelerator-hour") -> OrderCharge:
    """The credit authorization of billing_authorize_order, for an order paid by credit that the caller checked
    was available (billing_credit_ready) and is creating in the current transaction: the authorized charge is
    written in that transaction, so the order row, its capacity and its charge commit together (or not at all).
    No charge can exist yet for an order that is not committed, so there is nothing to look up first."""
    charge = credit_placing_charge(order_id, customer=customer, provider=provider, max_amount=max_amount,
                                   unit_price=unit_price, description=description, unit_label=unit_label)
    charge.save(force_insert=True)
    return charge


def credit_placing_charge(order_id: int | None, *, customer, provider, max_amount: Decimal, unit_price: Decimal,
                          description: str = "", unit_label: str = "accelerator-hour") -> OrderCharge:
    """The authorized credit charge billing_authorize_credit_placing writes, unsaved (`order_id` None: for a
    statement that writes it with the order it inserts, marketplace/orders/services/placement_statement.py)."""
    fields = _charge_fields(order_id, customer=customer, provider=provider, method=PaymentMethodKind.CREDIT,
                            max_amount=max_amount, unit_price=unit_price, description=description,
                            unit_label=unit_label)
    return OrderCharge(**fields, **_credit_authorized(max_amount))


def _authorize_card(charge: OrderCharge) -> OrderCharge:
    key = f"order:{charge.order_id}:authorize"
    try:
        customer_id = ensure_stripe_customer(charge.customer)
        params = {"amount": to_cents(charge.authorized_amount), "currency": charge.currency,
                  "customer": customer_id, "payment_method": charge.payment_method}
        intent = run_operation(key=key, kind=OperationKind.AUTHORIZE, params=params,
                               call=lambda: gateway.create_payment_intent(
                                   amount_cents=params["amount"], currency=charge.currency, customer=customer_id,
                                   manual_capture=True, payment_method=charge.payment_method,
                                   description=charge.description or f"Order {charge.order_id}",
                                   metadata={"order_id": str(charge.order_id), "kind": "order"}, key=key))
    except gateway.TransientGatewayError:
        raise PaymentProviderUnavailable("The payment provider did not answer; try again.") from None
    except gateway.CardDeclined as exc:
        _mark_declined(charge.order_id, exc.decline_code or exc.code or "card_declined", exc.message)
        raise PaymentDeclined(exc.message, extra={"decline_code": exc.decline_code or exc.code}) from None
    except gateway.RequestRejected as exc:
        _mark_declined(charge.order_id, exc.code or "payment_rejected", exc.message)
        raise PaymentDeclined(exc.message, extra={"decline_code": exc.code}) from None
    charge = apply_order_intent(charge.order_id, intent)
    if charge.status == Status.DECLINED:
        raise PaymentDeclined(charge.failure_message, extra={"decline_code": charge.failure_code})
    return charge


def _mark_declined(order_id: int, code: str, message: str) -> None:
    with transaction.atomic():
        charge = lock_charge(order_id)
        if charge.status == Status.AUTHORIZING:
            charge.status, charge.failure_code, charge.failure_message = Status.DECLINED, code[:64], message[:300]
            charge.save(update_fields=["status", "failure_code", "failure_message", "updated_at"])


def apply_order_intent(order_id: int, intent: dict) -> OrderCharge:
    """Bring an order's charge in line with its PaymentIntent as Stripe reports it now (authorization answer,
    or a webhook re-fetch). Only moves forward; safe in any order and any number of times."""
    with transaction.atomic():
        charge = lock_charge(order_id)
        status = intent.get("status")
        if charge.payment_intent_id and charge.payment_intent_id != intent["id"]:
            return charge
        if charge.status == Status.AUTHORIZING:
            charge.payment_intent_id = intent["id"]
            if status == "requires_capture":
                charge.status = Status.AUTHORIZED
                charge.authorized_amount = min(charge.authorized_amount, from_cents(intent["amount_capturable"]))
            elif status in ("requires_action", "requires_payment_method", "canceled"):
                error = intent.get("last_payment_error") or {}
                charge.status = Status.DECLINED
                charge.failure_code = ("authentication_required" if status == "requires_action"
                                       else error.get("decline_code") or error.get("code") or status)[:64]
                charge.failure_message = (error.get("message") or "The card needs the customer to authenticate; "
                                          "use prepaid credit for this order.")[:300]
        elif charge.status == Status.AUTHORIZED and status == "canceled" and charge.method == PaymentMethodKind.CARD:
            charge.status = Status.EXPIRED  # the hold ran out (or was released at Stripe): nothing to capture
            charge.failure_code = (intent.get("cancellation_reason") or "canceled")[:64]
            charge.failure_message = "The card authorization expired or was canceled before capture."
        charge.save()
        return charge


# -- usage -----------------------------------------------------------------------------------------

def billing_record_usage(order_id: int, *, metered_total: Decimal,
                         quantity_total: Decimal | None = None) -> UsageOutcome:
    """Record the order's cumulative metered cost so far (unrounded is fine; a reading not above the last one is
    a no-op, so retries are safe). Card: accrues as a receivable up to the hold. Credit: debits the customer's
    credit, never below zero (or the operator's overdraft). Returns what the pipeline must do next."""
    _money_arg("metered_total", metered_total)
    target = round_money(metered_total)
    with transaction.atomic():
        charge = lock_charge(order_id)
        if charge.status != Status.AUTHORIZED:
            reason = "hold_expired" if charge.status == Status.EXPIRED else "not_billable"
            return UsageOutcome("stop", reason, charge.usage_amount, charge.uncovered_amount, None)
        if quantity_total is not None and quantity_total > charge.usage_quantity:
            charge.usage_quantity = quantity_total
        if target > charge.metered_amount:
            _accrue(charge, target)
        outcome = _outcome(charge)
        charge.save()
        return outcome


def _accrue(charge: OrderCharge, target: Decimal) -> None:
    """Charge the usage between the last reading and `target` (inside the transaction, charge locked)."""
    delta = target - charge.metered_amount
    payable = ledger.provider_payable_account(charge.provider)
    if charge.method == PaymentMethodKind.CARD:
        amount = min(delta, charge.authorized_amount - charge.usage_amount)
        source = ledger.customer_receivable_account(charge.customer)
    else:
        _, available = credit_available(charge.customer, lock=True)
        amount = min(delta, max(available, ZERO))
        source = ledger.customer_credit_account(charge.customer)
    charge.metered_amount = target
    if amount > 0:
        ledger.post_entry(key=f"order:{charge.order_id}:usage:{to_cents(target)}", kind=EntryKind.USAGE,
                          order_id=charge.order_id, memo=f"usage up to {target}",
                          lines=[(source, amount), (payable, -amount)])
        charge.usage_amount += amount
    charge.uncovered_amount = charge.metered_amount - charge.usage_amount


def _outcome(charge: OrderCharge) -> UsageOutcome:
    if charge.method == PaymentMethodKind.CARD:
        exhausted = charge.usage_amount >= charge.authorized_amount
        return UsageOutcome("stop" if exhausted else "continue", "hold_exhausted" if exhausted else "",
                            charge.usage_amount, charge.uncovered_amount, None)
    _, available = credit_available(charge.customer)
    if available <= 0:
        action, reason = "stop", "credit_exhausted"
    elif available < billing_settings().credit_warn_usd:
        action, reason = "warn", "credit_low"
        charge.warned_at = charge.warned_at or timezone.now()
    else:
        action, reason = "continue", ""
    return UsageOutcome(action, reason, charge.usage_amount, charge.uncovered_amount, available)


# -- settle ----------------------------------------------------------------------------------------

def billing_settle_order(order_id: int, *, final_metered: Decimal | None = None,
                         final_quantity: Decimal | None = None) -> OrderCharge:
    """The order ended (completed, stopped early, or ran out of credit). `final_metered` is the authoritative
    cumulative cost when the driver reports one: higher readings are charged, lower ones correct the usage
    already charged (credit is given back: the early-stop refund). Card orders then capture exactly the charged
    usage (the rest of the hold is released); credit orders are settled at once. The provider's transfer is
    enqueued after settlement. Idempotent."""
    with transaction.atomic():
        charge = lock_charge(order_id)
        if charge.status in (Status.SETTLING, Status.SETTLED, Status.VOIDING, Status.VOIDED, Status.CAPTURE_FAILED,
                             Status.DECLINED):
            return charge
        if charge.status == Status.AUTHORIZING:
            raise ConflictError(f"Order {order_id}'s payment is still being authorized.")
        if final_quantity is not None and final_quantity > charge.usage_quantity:
            charge.usage_quantity = final_quantity
        if final_metered is not None and charge.status == Status.AUTHORIZED:
            final = round_money(_money_arg("final_metered", final_metered))
            if final > charge.metered_amount:
                _accrue(charge, final)
            elif final < charge.usage_amount:
                _correct_down(charge, final)
            charge.metered_amount = final
            charge.uncovered_amount = charge.metered_amount - charge.usage_amount
        if charge.method == PaymentMethodKind.CREDIT:
            finish_settlement(charge)
        elif charge.status == Status.EXPIRED:
            charge.status = Status.CAPTURE_FAILED
            charge.failure_message = "The card authorization expired before the order ended; nothing was captured."
        elif charge.usage_amount >= STRIPE_MINIMUM[charge.currency]:
            charge.status = Status.SETTLING
            enqueue("capture_order_payment", charge.order_id)
        else:
            charge.status = Status.VOIDING  # below Stripe's minimum charge: written off, the hold released
            enqueue("void_order_payment", charge.order_id)
        charge.save()
        return charge


def _correct_down(charge: OrderCharge, final: Decimal) -> None:
    diff = charge.usage_amount - final
    source = (ledger.customer_credit_account(charge.customer) if charge.method == PaymentMethodKind.CREDIT
              else ledger.customer_receivable_account(charge.customer))
    ledger.post_entry(key=f"order:{charge.order_id}:adjust", kind=EntryKind.USAGE_ADJUSTMENT, order_id=charge.order_id,
                      memo=f"final usage {final} below charged {charge.usage_amount}",
                      lines=[(ledger.provider_payable_account(charge.provider), diff), (source, -diff)])
    charge.usage_amount = final


def finish_settlement(charge: OrderCharge) -> None:
    """Book the platform fee, mark settled and create (and enqueue) the provider's transfer. Charge locked."""
    from marketplace.billing.models import ProviderTransfer

    net = charge.usage_amount - charge.written_off_amount - charge.refunded_amount
    fee, share = platform_fee(net, billing_settings().platform_fee_percent)
    ledger.post_entry(key=f"order:{charge.order_id}:fee", kind=EntryKind.FEE, order_id=charge.order_id,
                      memo=f"platform fee on {net}",
                      lines=[(ledger.provider_payable_account(charge.provider), fee),
                             (ledger.platform_account("platform_revenue", charge.currency), -fee)])
    charge.fee_amount = fee
    charge.status = Status.SETTLED
    charge.settled_at = timezone.now()
    transfer, created = ProviderTransfer.objects.get_or_create(
        charge=charge, defaults={"provider": charge.provider, "amount": share, "currency": charge.currency,
                                 "status": ProviderTransfer.Status.PENDING if share > 0
                                 else ProviderTransfer.Status.NOTHING_DUE})
    if created and share > 0:
        enqueue("execute_transfer", transfer.pk)


# -- refunds and failover ----------------------------------------------------------------------------

def billing_refund_order(order_id: int, *, reason: str, amount: Decimal | None = None) -> OrderCharge:
    """Give money back. Before settlement (e.g. provisioning failed): card holds are released and credit already
    debited is returned in full. After settlement: refund `amount` (default: everything not yet refunded) to the
    card or to credit; the platform fee and the provider's share shrink in proportion (a paid transfer is
    partly reversed). Calling it again with amount=None once everything is refunded is a no-op."""
    reason = (reason or "").strip()
    if not reason or len(reason) > 64:
        raise ValidationFailed("A refund needs a reason.", fields={"reason": ["1 to 64 characters."]})
    if amount is not None:
        _money_arg("amount", amount, positive=True)
    with transaction.atomic():
        charge = lock_charge(order_id)
        if charge.status in (Status.DECLINED, Status.VOIDING, Status.VOIDED):
            return charge
        if charge.status == Status.SETTLING:
            raise ConflictError(f"Order {order_id}'s payment is being captured; refund it once it has settled.")
        if charge.status != Status.SETTLED:
            if charge.method == PaymentMethodKind.CREDIT:
                _refund_unsettled_credit(charge, reason)
            else:
                charge.status = Status.VOIDING
                charge.failure_message = reason[:300]
                enqueue("void_order_payment", charge.order_id)
            charge.save()
            return charge
        pending = sum((r.amount for r in charge.refunds.filter(status=OrderRefund.Status.PENDING)), ZERO)
        net = charge.usage_amount - charge.written_off_amount - charge.refunded_amount - pending
        if amount is None:
            if net <= 0:
                return charge
            amount = net
        amount = round_money(amount)
        if amount > net:
            raise ValidationFailed("Refund exceeds what was charged.",
                                   fields={"amount": [f"At most {net} can be refunded."]})
        percent = billing_settings().platform_fee_percent
        fee_back = platform_fee(net, percent)[0] - platform_fee(net - amount, percent)[0]
        refund = OrderRefund.objects.create(charge=charge, seq=charge.refunds.count() + 1, amount=amount,
                                            reason=reason, fee_share=fee_back, provider_share=amount - fee_back)
        if charge.method == PaymentMethodKind.CREDIT:
            complete_refund(charge, refund)
        else:
            enqueue("execute_refund", refund.pk)
        charge.save()
        return charge


def _refund_unsettled_credit(charge: OrderCharge, reason: str) -> None:
    if charge.usage_amount > 0:
        refund = OrderRefund.objects.create(charge=charge, seq=charge.refunds.count() + 1, amount=charge.usage_amount,
                                            reason=reason, provider_share=charge.usage_amount)
        complete_refund(charge, refund)
    charge.status = Status.VOIDED
    charge.settled_at = timezone.now()
    charge.failure_message = reason[:300]


def complete_refund(charge: OrderCharge, refund: OrderRefund, stripe_refund_id: str = "") -> None:
    """Book a refund that succeeded (charge locked, inside the transaction)."""
    if refund.status != OrderRefund.Status.PENDING:
        return
    target = (ledger.customer_credit_account(charge.customer) if charge.method == PaymentMethodKind.CREDIT
              else ledger.platform_account("stripe_clearing", charge.currency))
    ledger.post_entry(key=f"order:{charge.order_id}:refund:{refund.seq}", kind=EntryKind.REFUND,
                      order_id=charge.order_id, memo=refund.reason,
                      lines=[(ledger.platform_account("platform_revenue", charge.currency), refund.fee_share),
                             (ledger.provider_payable_account(charge.provider), refund.provider_share),
                             (target, -refund.amount)])
    refund.status = OrderRefund.Status.SUCCEEDED
    refund.stripe_refund_id = stripe_refund_id
    refund.succeeded_at = timezone.now()
    refund.save(update_fields=["status", "stripe_refund_id", "succeeded_at"])
    charge.refunded_amount += refund.amount
    charge.fee_amount -= refund.fee_share
    transfer = getattr(charge, "transfer", None)
    if transfer is not None and transfer.status == transfer.Status.PAID and refund.provider_share > 0:
        enqueue("reverse_transfer_for_refund", refund.pk)


def billing_reassign_provider(order_id: int, provider) -> OrderCharge:
    """Failover: the order moved to another provider before it ran. Refused once usage has been charged."""
    with transaction.atomic():
        charge = lock_charge(order_id)
        if charge.usage_amount > 0 or charge.status not in (Status.AUTHORIZING, Status.AUTHORIZED):
            raise ConflictError(f"Order {order_id} already has charged usage; it cannot change provider.")
        charge.provider = provider
        charge.save(update_fields=["provider", "updated_at"])
        return charge
