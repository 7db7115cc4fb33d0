"""The billing reconciler (beat: `billing-reconcile`). Re-drives work whose Celery message was lost or never
sent (Redis down at commit time) and catches up with Stripe; every step it triggers is idempotent, so running
it while the original task is still in flight is harmless. Rows are claimed with SKIP LOCKED where the database
has it, so two reconcilers do not work on the same rows."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.utils import timezone

from marketplace.billing import gateway
from marketplace.billing.dispatch import enqueue
from marketplace.billing.models import (
    OrderCharge,
    OrderRefund,
    ProviderPayoutAccount,
    StripeEvent,
)
from marketplace.billing.services.order_hooks import billing_meter_order, billing_order_finished
from marketplace.billing.services.payouts import payout_account_sync, transfers_due
from marketplace.billing.services.webhooks import HANDLERS
from marketplace.errors import DomainError

log = logging.getLogger(__name__)
STALE = timedelta(minutes=2)
FINAL_STATES = ("completed", "failed", "cancelled", "expired")


def _claim(queryset):
    if connection.features.has_select_for_update_skip_locked:
        return queryset.select_for_update(skip_locked=True, of=("self",))
    return queryset


def billing_reconcile(now: datetime | None = None) -> dict[str, int]:
    now = now or timezone.now()
    counts = {"finished": 0, "metered": 0, "stopped": 0, "captures": 0, "voids": 0, "refunds": 0, "events": 0,
              "transfers": 0, "caught_up": 0, "accounts": 0}
    open_statuses = [OrderCharge.Status.AUTHORIZING, OrderCharge.Status.AUTHORIZED, OrderCharge.Status.EXPIRED]
    for order_id in OrderCharge.objects.filter(status__in=open_statuses,
                                               order__state__in=FINAL_STATES,
                                               order__finished_at__lte=now - timedelta(seconds=30)) \
            .values_list("order_id", flat=True)[:200]:
        try:
            billing_order_finished(order_id)
        except DomainError as exc:  # one order's problem must not stop the reconciler
            log.warning("billing: could not settle finished order %s: %s", order_id, exc)
            continue
        counts["finished"] += 1
    counts["metered"], counts["stopped"] = meter_running_credit_orders()
    with transaction.atomic():
        stuck = OrderCharge.objects.filter(status__in=[OrderCharge.Status.SETTLING, OrderCharge.Status.VOIDING],
                                           updated_at__lte=now - STALE)
        for charge in _claim(stuck)[:200]:
            settling = charge.status == OrderCharge.Status.SETTLING
            enqueue("capture_order_payment" if settling else "void_order_payment", charge.order_id)
            counts["captures" if settling else "voids"] += 1
        for refund in _claim(OrderRefund.objects.filter(status=OrderRefund.Status.PENDING,
                                                        created_at__lte=now - STALE))[:200]:
            enqueue("execute_refund", refund.pk)
            counts["refunds"] += 1
        for refund in _claim(OrderRefund.objects.filter(status=OrderRefund.Status.SUCCEEDED, reversal_done=False,
                                                        provider_share__gt=0, charge__transfer__status="paid",
                                                        succeeded_at__lte=now - STALE))[:200]:
            enqueue("reverse_transfer_for_refund", refund.pk)
            counts["refunds"] += 1
        for event in _claim(StripeEvent.objects.filter(status=StripeEvent.Status.RECEIVED,
                                                       received_at__lte=now - STALE))[:200]:
            enqueue("process_stripe_event", event.pk)
            counts["events"] += 1
        for pk in transfers_due(now):
            enqueue("execute_transfer", pk)
            counts["transfers"] += 1
    counts["caught_up"] = catch_up_events()
    counts["accounts"] = resync_accounts(now)
    return counts


def meter_running_credit_orders() -> tuple[int, int]:
    """Backstop of the pipeline's own metering call: charge running credit orders whose meter moved on, and
    stop the ones whose credit ran out."""
    from marketplace.orders.models import Order

    metered = stopped = 0
    for order in Order.objects.filter(state="running", charge__method="credit",
                                      charge__status=OrderCharge.Status.AUTHORIZED).select_related("offer")[:500]:
        if order.metered_usd <= order.charge.metered_amount:
            continue
        try:
            outcome = billing_meter_order(order)
        except DomainError as exc:
            log.warning("billing: could not meter order %s: %s", order.pk, exc)
            continue
        metered += 1
        if outcome is not None and outcome.action == "stop":
            stopped += int(stop_order_for_billing(order.pk, outcome.reason))
    return metered, stopped


def stop_order_for_billing(order_id: int, reason: str) -> bool:
    """Ask the order pipeline to stop an order billing can no longer pay for (failed, code `credit_exhausted`:
    the usage so far is charged, see order_hooks)."""
    from marketplace.orders.services.transitions import order_begin_stop
    from marketplace.orders.states import State

    text = {"credit_exhausted": "prepaid credit exhausted", "hold_exhausted": "card authorization used up"}
    order = order_begin_stop(order_id, outcome=State.FAILED, code=reason or "payment_exhausted",
                             reason=f"stopped by billing: {text.get(reason, reason)}", task="billing")
    return order is not None


def catch_up_events() -> int:
    """Store events Stripe has that we never received (a webhook lost for good), newest first, stopping at the
    first one we know. They are then processed like delivered ones (re-read from Stripe)."""
    try:
        events = gateway.list_events(limit=100, types=sorted(HANDLERS))
    except gateway.GatewayError as exc:
        log.warning("billing: events catch-up failed: %s", exc)
        return 0
    stored = 0
    for event in events:
        if StripeEvent.objects.filter(event_id=event["id"]).exists():
            break
        obj = (event.get("data") or {}).get("object") or {}
        with transaction.atomic():
            row, created = StripeEvent.objects.get_or_create(event_id=event["id"], defaults={
                "type": event["type"][:64], "endpoint": "platform", "account": (event.get("account") or "")[:64],
                "object_id": str(obj.get("id") or "")[:64], "payload": event})
            if created:
                enqueue("process_stripe_event", row.pk)
                stored += 1
    return stored


def resync_accounts(now: datetime) -> int:
    """Re-read connected accounts still waiting for onboarding (in case account.updated was missed)."""
    synced = 0
    for account in ProviderPayoutAccount.objects.filter(payouts_enabled=False).exclude(
            synced_at__gt=now - timedelta(minutes=10))[:20]:
        try:
            payout_account_sync(gateway.retrieve_account(account.stripe_account_id))
        except gateway.GatewayError as exc:
            log.warning("billing: could not re-read account %s: %s", account.stripe_account_id, exc)
            continue
        synced += 1
    return synced
