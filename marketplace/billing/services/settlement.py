"""Stripe work that follows an order's settlement, run by Celery tasks (workers/tasks/billing.py): capture the
card, release a hold, execute a refund. Each re-reads the row, skips work already done, and calls Stripe with
the key derived from the order (`order:<id>:capture`, `order:<id>:cancel`, `order:<id>:refund:<n>`).
A TransientGatewayError propagates so the task retries with backoff; a refusal is recorded for operators.
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from marketplace.billing import gateway
from marketplace.billing.models import EntryKind, OperationKind, OrderCharge, OrderRefund, PaymentOperation
from marketplace.billing.money import from_cents, to_cents
from marketplace.billing.services import ledger
from marketplace.billing.services.operations import run_operation
from marketplace.billing.services.orders import complete_refund, finish_settlement, lock_charge

Status = OrderCharge.Status


def billing_capture_order(order_id: int) -> OrderCharge:
    """Capture exactly the charged usage of a settling card order; the rest of the hold is released by Stripe."""
    charge = OrderCharge.objects.get(order_id=order_id)
    if charge.status != Status.SETTLING:
        return charge
    key = f"order:{order_id}:capture"
    params = {"payment_intent": charge.payment_intent_id, "amount": to_cents(charge.usage_amount)}
    try:
        intent = run_operation(key=key, kind=OperationKind.CAPTURE, params=params,
                               call=lambda: gateway.capture_payment_intent(
                                   charge.payment_intent_id, amount_cents=params["amount"], key=key))
    except (gateway.RequestRejected, gateway.CardDeclined) as exc:
        return _capture_failed(order_id, exc)
    with transaction.atomic():
        charge = lock_charge(order_id)
        if charge.status != Status.SETTLING:
            return charge
        captured = from_cents(intent["amount_received"])
        if intent.get("status") != "succeeded" or captured != charge.usage_amount:
            return _capture_failed(order_id, gateway.RequestRejected(
                f"Stripe reports {intent.get('status')} with {captured} captured; {charge.usage_amount} expected."))
        ledger.post_entry(key=key, kind=EntryKind.CAPTURE, order_id=order_id, memo=f"captured {intent['id']}",
                          lines=[(ledger.platform_account("stripe_clearing", charge.currency), captured),
                                 (ledger.customer_receivable_account(charge.customer), -captured)])
        charge.captured_amount = captured
        finish_settlement(charge)
        charge.save()
        return charge


def _capture_failed(order_id: int, exc: gateway.GatewayError) -> OrderCharge:
    with transaction.atomic():
        charge = lock_charge(order_id)
        if charge.status == Status.SETTLING:
            charge.status = Status.CAPTURE_FAILED
            charge.failure_code = (exc.code or "capture_failed")[:64]
            charge.failure_message = exc.message[:300]
            charge.save()
        return charge


def billing_void_order(order_id: int) -> OrderCharge:
    """Release a card hold (PaymentIntent cancel) and reverse the usage that had accrued as a receivable."""
    charge = OrderCharge.objects.get(order_id=order_id)
    if charge.status != Status.VOIDING:
        return charge
    intent_id = charge.payment_intent_id or _authorized_intent_id(order_id)
    if intent_id:
        key = f"order:{order_id}:cancel"
        try:
            run_operation(key=key, kind=OperationKind.CANCEL, params={"payment_intent": intent_id},
                          call=lambda: gateway.cancel_payment_intent(intent_id, key=key))
        except gateway.RequestRejected as exc:
            # Already canceled (the hold expired) is fine; anything else (e.g. captured) needs an operator.
            if gateway.retrieve_payment_intent(intent_id).get("status") != "canceled":
                return _void_failed(order_id, exc)
    with transaction.atomic():
        charge = lock_charge(order_id)
        if charge.status != Status.VOIDING:
            return charge
        outstanding = charge.usage_amount - charge.written_off_amount
        if outstanding > 0:
            ledger.post_entry(key=f"order:{order_id}:void", kind=EntryKind.VOID, order_id=order_id,
                              memo="usage not charged: hold released",
                              lines=[(ledger.provider_payable_account(charge.provider), outstanding),
                                     (ledger.customer_receivable_account(charge.customer), -outstanding)])
            charge.written_off_amount += outstanding
        charge.payment_intent_id = charge.payment_intent_id or intent_id or ""
        charge.status = Status.VOIDED
        charge.settled_at = timezone.now()
        charge.save()
        return charge


def _authorized_intent_id(order_id: int) -> str:
    """The PaymentIntent of an authorization whose answer we never recorded: repeat the request with its key
    (Stripe replays the first result) to learn it."""
    op = PaymentOperation.objects.filter(key=f"order:{order_id}:authorize").first()
    if op is None:
        return ""
    if op.stripe_id:
        return op.stripe_id
    if op.status != PaymentOperation.Status.PENDING:
        return ""
    params = op.params
    try:
        intent = run_operation(key=op.key, kind=op.kind, params=params, call=lambda: gateway.create_payment_intent(
            amount_cents=params["amount"], currency=params["currency"], customer=params["customer"],
            manual_capture=True, payment_method=params["payment_method"], description=f"Order {order_id}",
            metadata={"order_id": str(order_id), "kind": "order"}, key=op.key))
    except (gateway.CardDeclined, gateway.RequestRejected):
        return ""
    return intent["id"]


def _void_failed(order_id: int, exc: gateway.GatewayError) -> OrderCharge:
    with transaction.atomic():
        charge = lock_charge(order_id)
        if charge.status == Status.VOIDING:
            charge.status = Status.CAPTURE_FAILED
            charge.failure_code = (exc.code or "release_failed")[:64]
            charge.failure_message = f"Could not release the hold: {exc.message}"[:300]
            charge.save()
        return charge


def billing_execute_refund(refund_id: int) -> OrderRefund:
    """Refund a settled card order's captured money (Stripe Refund), then book it."""
    refund = OrderRefund.objects.select_related("charge").get(pk=refund_id)
    if refund.status != OrderRefund.Status.PENDING:
        return refund
    charge = refund.charge
    key = f"order:{charge.order_id}:refund:{refund.seq}"
    params = {"payment_intent": charge.payment_intent_id, "amount": to_cents(refund.amount)}
    try:
        result = run_operation(key=key, kind=OperationKind.REFUND, params=params,
                               call=lambda: gateway.create_refund(
                                   charge.payment_intent_id, amount_cents=params["amount"], key=key,
                                   metadata={"order_id": str(charge.order_id), "reason": refund.reason}))
    except (gateway.RequestRejected, gateway.CardDeclined) as exc:
        OrderRefund.objects.filter(pk=refund.pk, status=OrderRefund.Status.PENDING).update(
            status=OrderRefund.Status.FAILED, failure_message=exc.message[:300])
        refund.refresh_from_db()
        return refund
    with transaction.atomic():
        charge = lock_charge(charge.order_id)
        refund = OrderRefund.objects.select_for_update().get(pk=refund_id)
        complete_refund(charge, refund, result["id"])
        charge.save()
        return refund
