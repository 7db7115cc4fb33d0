"""Paying for a reserved order, at the hook billing documents (docs/payments.md "For the order pipeline"):

    order_place(queue=False) -> billing_authorize_order_for(order, method, payment_method) -> queue

Authorization runs outside any transaction (a card hold waits for Stripe). A refused authorization (a declined
card, too little credit, a method not allowed for the order, no card to charge, or Stripe not answering) fails the
order at once with the error's code, which releases its capacity and, like every final state, hands the order to
billing's `order_finished` (a hold that Stripe may have made is released), and re-raises for the API to render
(402 / 402 / 400 / 400 / 503).
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from marketplace.errors import DomainError
from marketplace.models import Offer, User
from marketplace.orders.models import Order
from marketplace.orders.services.placement import PaymentInput
from marketplace.orders.services.transitions import order_fail, order_queue_reserved
from marketplace.orders.states import State


def order_pay_and_queue(order: Order, *, actor: User | None, payment: PaymentInput | None = None) -> Order:
    """Authorize payment for a reserved order, then queue it. Returns the order as queued (or as it stands when a
    concurrent request with the same key queued it first)."""
    from marketplace.billing.services.order_hooks import billing_authorize_order_for

    if not _loaded(order):
        order = Order.objects.select_related("customer", "offer__provider", "offer__accelerator", "offer__region") \
            .get(pk=order.pk)
    payment = payment or PaymentInput()
    try:
        billing_authorize_order_for(order, method=payment.method, payment_method=payment.payment_method)
    except DomainError as exc:
        order_fail(order.pk, code=exc.code, reason=f"payment refused: {exc.message}", actor=actor,
                   data={"payment_method": payment.method or "default", **_safe(exc.extra)})
        raise
    return _queue_if_reserved(order, actor=actor)


def _loaded(order: Order) -> bool:
    """The order as placement returns it: a reserved row with its customer and its offer's provider, accelerator
    and region in memory (what billing reads), so it need not be read again."""
    if order.state != State.RESERVED or not (Order.customer.is_cached(order) and Order.offer.is_cached(order)):
        return False
    offer = order.offer
    return all(Offer._meta.get_field(name).is_cached(offer) for name in ("provider", "accelerator", "region"))


def _safe(extra: dict) -> dict:
    return {k: v for k, v in extra.items() if isinstance(v, str | int | float | bool) or v is None}


@transaction.atomic
def _queue_if_reserved(order: Order, *, actor: User | None) -> Order:
    """reserved -> queued with one conditional UPDATE; an order that is no longer reserved (a concurrent request
    with the same key queued it, or it expired or failed meanwhile) is returned as it stands."""
    if order_queue_reserved(order, now=timezone.now(), actor=actor):
        return order
    return Order.objects.get(pk=order.pk)
