"""Billing's adapter to the orders app: the calls the order pipeline makes, each taking the Order as it stands.

    at placement (order row committed, before queueing):  billing_authorize_order_for(order, method=..., ...)
    after each meter reading (order.metered_usd updated): outcome = billing_meter_order(order)
                                                          outcome.action == "stop" -> stop the order
    once the order reached a final state:                 billing_order_finished(order_id)  (a Celery task)

Pricing rules applied when an order ends (docs/payments.md):
- completed, or cancelled/stopped while running: the metered usage is charged (per second run, as metered); the
  rest of a card hold is released; credit is never debited ahead of use, so nothing else is owed back;
- never ran (provisioning failed, cancelled before running, reservation expired): nothing is charged; a card
  hold is released and any credit already debited is refunded;
- failed while running because of the provider (job lost, terminated by the provider, provider unreachable,
  node failed): the run is refunded in full (the hold released; debited credit returned) and the provider is
  not paid;
- failed because of the job itself (non-zero exit) or because credit ran out: the metered usage is charged.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from marketplace.billing.conf import billing_settings
from marketplace.billing.models import OrderCharge, PaymentMethodKind
from marketplace.billing.money import round_money
from marketplace.billing.services.customers import customer_billing
from marketplace.billing.services.orders import (
    UsageOutcome,
    billing_authorize_credit_placing,
    billing_authorize_order,
    billing_reassign_provider,
    billing_record_usage,
    billing_refund_order,
    billing_settle_order,
    credit_available,
    credit_placing_charge,
)

PROVIDER_FAULT_CODES = frozenset({"job_lost", "terminated_by_provider", "provider_unreachable", "node_failed"})
QUANTUM = Decimal("0.0001")


def order_max_amount(order) -> Decimal:
    """The most the order can cost: its locked hourly price for its whole duration, or its budget cap."""
    total = round_money(order.node_price_per_hour * order.nodes * order.duration_hours)
    return min(total, order.budget_cap_usd) if order.budget_cap_usd is not None else total


def order_quantity(order) -> Decimal:
    """Accelerator-hours metered so far."""
    hours = Decimal(str(order.metered_seconds)) / Decimal(3600)
    return (hours * order.nodes * order.accelerator_count).quantize(QUANTUM, rounding=ROUND_HALF_UP)


def _description(order) -> str:
    offer = order.offer
    return (f"{order.nodes} node(s) × {order.accelerator_count} {offer.accelerator.canonical_name} "
            f"on {offer.provider.name} ({offer.region.key})")


def default_method(order) -> str:
    """Card when the customer saved one and the order fits in a card hold; otherwise prepaid credit."""
    return _default_method(customer_billing(order.customer), order.duration_hours)


def _default_method(profile, duration_hours: Decimal) -> str:
    fits = duration_hours <= billing_settings().card_hold_max_hours
    return PaymentMethodKind.CARD if fits and profile.default_payment_method else PaymentMethodKind.CREDIT


def billing_authorize_order_for(order, *, method: str | None = None,
                                payment_method: str | None = None) -> OrderCharge:
    """Authorize payment for a just-placed order (see billing_authorize_order: 402 PaymentDeclined /
    InsufficientCredit, 503 PaymentProviderUnavailable, 400 PaymentMethodNotAllowed)."""
    return billing_authorize_order(
        order.pk, method=method or default_method(order), expected_hours=order.duration_hours,
        payment_method=payment_method, **_authorization(order))


def billing_credit_ready(customer, *, method: str | None, payment_method: str | None,
                         duration_hours: Decimal, profile=None, account=None) -> bool:
    """True when an order of `duration_hours` will be paid from prepaid credit (asked for, or the default: no
    saved card, or too long for a card hold) and the customer has credit available now. Placement then pays for it
    inside the transaction that reserves it (billing_authorize_order_placing): no Stripe call, one commit. False
    sends it down the usual path (billing_authorize_order_for after the reservation commits), which also gives a
    refusal its error (too little credit: 402, the order failed and its capacity freed). `profile` and `account`:
    the customer's billing profile and credit account when the caller has just read them."""
    if method not in (None, PaymentMethodKind.CREDIT) or payment_method:
        return False
    profile = profile or customer_billing(customer)
    if (method or _default_method(profile, duration_hours)) != PaymentMethodKind.CREDIT:
        return False  # the default is the saved card
    return credit_available(customer, profile=profile, account=account)[1] > 0


def billing_authorize_order_placing(order) -> OrderCharge:
    """Authorize a credit-paid order in the transaction that creates it (after billing_credit_ready)."""
    return billing_authorize_credit_placing(order.pk, **_authorization(order))


def billing_order_placing_charge(order) -> OrderCharge:
    """The charge billing_authorize_order_placing writes, unsaved, for an order not inserted yet: placement's
    one-statement path writes both (marketplace/orders/services/placement_statement.py)."""
    return credit_placing_charge(None, **_authorization(order))


def _authorization(order) -> dict:
    unit_price = (order.node_price_per_hour / order.accelerator_count).quantize(QUANTUM, rounding=ROUND_HALF_UP)
    # A job quoted under a cent still holds one cent (a card hold is then raised to Stripe's minimum).
    return {"customer": order.customer, "provider": order.offer.provider, "unit_price": unit_price,
            "max_amount": max(order_max_amount(order), Decimal("0.01")), "description": _description(order)}


def _follow_provider(order, charge: OrderCharge) -> None:
    if charge.provider_id != order.offer.provider_id and charge.usage_amount == 0:
        billing_reassign_provider(order.pk, order.offer.provider)  # failover moved the order before it ran


def billing_meter_order(order) -> UsageOutcome | None:
    """Charge the order's metered usage so far. None when the order has no billing record (placed without
    payment, e.g. by an operator for a demo)."""
    charge = OrderCharge.objects.filter(order_id=order.pk).first()
    if charge is None:
        return None
    _follow_provider(order, charge)
    return billing_record_usage(order.pk, metered_total=order.metered_usd, quantity_total=order_quantity(order))


def billing_order_finished(order_id: int) -> OrderCharge | None:
    """Settle or refund a finished order by the rules above. Idempotent; a no-op while the order is active."""
    from marketplace.orders.models import Order

    order = Order.objects.select_related("offer__provider").filter(pk=order_id).first()
    charge = OrderCharge.objects.filter(order_id=order_id).first()
    if order is None or charge is None or not order.finished:
        return charge
    if charge.status == OrderCharge.Status.AUTHORIZING:  # the authorization's answer was never recorded
        return billing_refund_order(order_id, reason="authorization never completed")
    ran = order.running_at is not None
    if order.state == "completed" or (ran and order.state == "cancelled") or \
            (ran and order.state == "failed" and order.failure_code not in PROVIDER_FAULT_CODES):
        _follow_provider(order, charge)
        return billing_settle_order(order_id, final_metered=order.metered_usd, final_quantity=order_quantity(order))
    reason = f"order {order.state}" + (f": {order.failure_code}" if order.failure_code else "")
    return billing_refund_order(order_id, reason=reason[:64])
