"""Stripe webhooks: verify, store once, process later by re-reading the object from Stripe.

`webhook_receive` runs in the request: signature check on the raw body, then an INSERT of the event id under a
unique constraint (a redelivery is a no-op) and a Celery task enqueued after commit. `billing_process_event`
runs in the worker: it never trusts the event's snapshot or its order; it fetches the object's current state
from Stripe and moves our rows forward to match, so events processed in any order end in the same state.
"""

from __future__ import annotations

from collections.abc import Callable

from django.db import IntegrityError, transaction
from django.utils import timezone

from marketplace.billing import gateway
from marketplace.billing.dispatch import enqueue
from marketplace.billing.models import OrderCharge, OrderRefund, ProviderTransfer, StripeEvent, TopUp
from marketplace.billing.money import from_cents
from marketplace.billing.services.orders import apply_order_intent
from marketplace.billing.services.payouts import payout_account_sync, payout_failure_record
from marketplace.billing.services.topups import topup_apply_intent, topup_apply_refunds

EventStatus = StripeEvent.Status


def webhook_receive(payload: bytes, signature: str | None, *, connect: bool) -> tuple[StripeEvent, bool]:
    """Returns (event row, created). Raises gateway.InvalidSignature: the view answers 400 and stores nothing."""
    event = gateway.verify_webhook(payload, signature, connect=connect)
    obj = (event.get("data") or {}).get("object") or {}
    with transaction.atomic():
        existing = StripeEvent.objects.filter(event_id=event["id"]).first()
        if existing is not None:
            return existing, False
        try:
            with transaction.atomic():
                row = StripeEvent.objects.create(
                    event_id=event["id"], type=event["type"][:64], endpoint="connect" if connect else "platform",
                    account=(event.get("account") or "")[:64], object_id=str(obj.get("id") or "")[:64], payload=event)
        except IntegrityError:
            return StripeEvent.objects.get(event_id=event["id"]), False
        enqueue("process_stripe_event", row.pk)
        return row, True


def _payment_intent(row: StripeEvent) -> str:
    intent = gateway.retrieve_payment_intent(row.object_id)
    metadata = intent.get("metadata") or {}
    topup = (TopUp.objects.filter(payment_intent_id=intent["id"]).first()
             or (TopUp.objects.filter(pk=int(metadata["topup_id"])).first()
                 if str(metadata.get("topup_id", "")).isdigit() else None))
    if topup is not None:
        topup = topup_apply_intent(topup.pk, intent, confirmed_by_stripe=True)
        return f"top-up {topup.pk}: {topup.status}"
    charge = (OrderCharge.objects.filter(payment_intent_id=intent["id"]).first()
              or (OrderCharge.objects.filter(order_id=int(metadata["order_id"])).first()
                  if str(metadata.get("order_id", "")).isdigit() else None))
    if charge is not None:
        charge = apply_order_intent(charge.order_id, intent)
        return f"order {charge.order_id}: {charge.status}"
    return "no matching top-up or order"


def _charge_refunded(row: StripeEvent) -> str:
    charge = gateway.retrieve_charge(row.object_id)
    intent_id = charge.get("payment_intent") or ""
    topup = TopUp.objects.filter(payment_intent_id=intent_id).first() if intent_id else None
    if topup is not None:
        topup = topup_apply_refunds(topup.pk, charge)
        return f"top-up {topup.pk}: {topup.refunded_amount} refunded"
    order_charge = OrderCharge.objects.filter(payment_intent_id=intent_id).first() if intent_id else None
    if order_charge is None:
        return "no matching top-up or order"
    stripe_total = from_cents(charge.get("amount_refunded") or 0)
    known = sum(r.amount for r in order_charge.refunds.exclude(status=OrderRefund.Status.FAILED))
    if stripe_total > known:
        raise _Discrepancy(f"order {order_charge.order_id}: Stripe shows {stripe_total} refunded, billing knows of "
                           f"{known} (a refund made outside the broker needs an operator)")
    return f"order {order_charge.order_id}: refunds match ({stripe_total})"


def _transfer_reversed(row: StripeEvent) -> str:
    transfer = gateway.retrieve_transfer(row.object_id)
    ours = ProviderTransfer.objects.filter(stripe_transfer_id=transfer["id"]).first()
    if ours is None:
        return "no matching transfer"
    stripe_total = from_cents(transfer.get("amount_reversed") or 0)
    known = sum(r.provider_share for r in OrderRefund.objects.filter(charge_id=ours.charge_id, provider_share__gt=0)
                .exclude(status=OrderRefund.Status.FAILED))
    if stripe_total > known:
        raise _Discrepancy(f"transfer {transfer['id']}: Stripe shows {stripe_total} reversed, billing expects at "
                           f"most {known} (reversed outside the broker: needs an operator)")
    return f"transfer {transfer['id']}: reversals match ({stripe_total})"


def _account_updated(row: StripeEvent) -> str:
    account = payout_account_sync(gateway.retrieve_account(row.account or row.object_id))
    if account is None:
        return "unknown account"
    return f"provider {account.provider_id}: payouts_enabled={account.payouts_enabled}"


def _payout_failed(row: StripeEvent) -> str:
    payout = gateway.retrieve_payout(row.object_id, account=row.account)
    account = payout_failure_record(row.account, payout)
    return f"provider {account.provider_id}: payout {payout['id']} {payout.get('status')}" if account else "unknown"


class _Discrepancy(Exception):
    """Stripe's state cannot be explained by what the broker did: recorded on the event for an operator."""


HANDLERS: dict[str, Callable[[StripeEvent], str]] = {
    "payment_intent.succeeded": _payment_intent,
    "payment_intent.payment_failed": _payment_intent,
    "payment_intent.canceled": _payment_intent,
    "payment_intent.amount_capturable_updated": _payment_intent,
    "payment_intent.processing": _payment_intent,
    "payment_intent.requires_action": _payment_intent,
    "charge.refunded": _charge_refunded,
    "transfer.reversed": _transfer_reversed,
    "account.updated": _account_updated,
    "payout.failed": _payout_failed,
}


def billing_process_event(event_pk: int) -> StripeEvent:
    """Process one stored event (idempotent: a processed event is skipped). TransientGatewayError propagates so
    the task retries; anything Stripe refuses (e.g. the object is gone) marks the event failed."""
    row = StripeEvent.objects.get(pk=event_pk)
    if row.status in (EventStatus.PROCESSED, EventStatus.IGNORED):
        return row
    StripeEvent.objects.filter(pk=row.pk).update(attempts=row.attempts + 1)
    handler = HANDLERS.get(row.type)
    if handler is None:
        status, note = EventStatus.IGNORED, ""
    else:
        try:
            status, note = EventStatus.PROCESSED, handler(row)
        except (gateway.RequestRejected, gateway.CardDeclined, _Discrepancy) as exc:
            status, note = EventStatus.FAILED, str(exc)
    StripeEvent.objects.filter(pk=row.pk).update(status=status, error=note[:300] if status == EventStatus.FAILED
                                                 else "", processed_at=timezone.now())
    row.refresh_from_db()
    return row
