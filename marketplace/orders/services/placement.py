"""Placing an order: from a quote (or an offer + configuration re-priced into a one-alternative quote), with an
Idempotency-Key, reserving capacity and queueing provisioning in one transaction.

- Same key + same body -> the same order (created=False); same key + another body -> 409 idempotency_key_reused.
- An expired quote -> 409 quote_expired carrying a fresh quote for the same request.
- Capacity: the quote's alternatives are tried in rank order (at most ORDERS_MAX_ATTEMPTS of them); the first
  with free units is reserved. None -> 409 no_capacity and nothing is written.
- Payment (docs/payments.md "For the order pipeline"): with queue=True the order is reserved and committed, then
  billing authorizes it (card hold or credit check, outside any transaction: it may wait for Stripe), then it is
  queued. A refused authorization fails the order with the payment error's code (its capacity is released) and
  re-raises (402/400/503). queue=False only reserves: the caller authorizes and queues.
- Paid by credit with credit available (billing_credit_ready, read before the transaction), there is no Stripe
  call to wait for: the same steps run in the reserving transaction (the order is written `queued`, with its
  `reserved` and `queued` events, confirmed units, its authorized charge and its provision message), one commit.
"""

from __future__ import annotations

import hashlib
import json
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from marketplace.billing.services.order_hooks import billing_authorize_order_placing, billing_credit_ready
from marketplace.errors import ConflictError, PermissionDeniedError
from marketplace.models import Offer, Quote, User
from marketplace.orders import config
from marketplace.orders.models import Order, OrderEvent
from marketplace.orders.services import outbox, placement_statement, reservations
from marketplace.orders.services.lifecycle import TASK_PROVISION, queued_event, reserved_event
from marketplace.orders.services.placement_plan import alternatives_of, apply_alternative, plan_from_quote
from marketplace.orders.services.placement_reads import placement_reads
from marketplace.orders.states import State


@dataclass(frozen=True)
class JobInput:
    command: str
    duration_hours: Decimal
    image: str = ""
    env: dict[str, str] = field(default_factory=dict)
    budget_cap_usd: Decimal | None = None


@dataclass(frozen=True)
class PaymentInput:
    """How to pay: method "card" or "credit" (None: billing's default, a saved card when the order fits a card
    hold, else credit) and, for a card, the Stripe PaymentMethod (None: the customer's saved card)."""

    method: str | None = None
    payment_method: str | None = None


@dataclass(frozen=True)
class PlacementInput:
    job: JobInput
    quote_id: str | None = None
    offer_id: int | None = None
    nodes: int | None = None
    duration_hours: Decimal | None = None  # for offer + configuration; defaults to the job's duration
    payment: PaymentInput | None = None

    def canonical(self) -> dict[str, Any]:
        """The body as compared for idempotency: numbers normalised, env sorted."""
        def num(value: Decimal | None) -> str | None:
            return None if value is None else format(value.normalize(), "f")

        body = {"quote_id": str(self.quote_id) if self.quote_id else None, "offer_id": self.offer_id,
                "nodes": self.nodes, "duration_hours": num(self.duration_hours),
                "job": {"command": self.job.command, "image": self.job.image, "env": dict(sorted(self.job.env.items())),
                        "duration_hours": num(self.job.duration_hours), "budget_cap_usd": num(self.job.budget_cap_usd)}}
        if self.payment is not None:  # absent: the hash of a body without payment is unchanged
            body["payment"] = {"method": self.payment.method, "payment_method": self.payment.payment_method}
        return body

    def hash(self) -> str:
        return hashlib.sha256(json.dumps(self.canonical(), sort_keys=True).encode()).hexdigest()


def quote_json(quote: Quote | None) -> dict[str, Any] | None:
    if quote is None:
        return None
    return {"id": str(quote.id), "objective": quote.objective, "created_at": quote.created_at.isoformat(),
            "expires_at": quote.expires_at.isoformat(), "alternatives": quote.alternatives}


def _replay(user: User, key: str, request_hash: str, *, read: Order | None = None) -> Order | None:
    """The order this key already made (`read`: as the caller just read it), or None; 409 for another body."""
    existing = read or Order.objects.filter(customer=user, idempotency_key=key).only("id", "request_hash").first()
    if existing is None:
        return None
    if existing.request_hash != request_hash:
        raise ConflictError("This Idempotency-Key was used for a different request.", code="idempotency_key_reused",
                            extra={"order_id": existing.pk})
    return existing


def _quote_for(user: User, data: PlacementInput, now: datetime, *, read: Quote | None = None) -> Quote:
    """The quote to place from (`read`: the user's quote as the caller just read it)."""
    from marketplace.services.quotes import quote_for_offer, quote_get, quote_is_expired, quote_refresh

    if data.quote_id:
        quote = read or quote_get(user, data.quote_id)
        if quote_is_expired(quote, now):
            fresh = quote_refresh(quote, now=now)
            raise ConflictError("The quote has expired; here is a fresh one for the same request.",
                                code="quote_expired", extra={"quote": quote_json(fresh)})
        return quote
    duration = data.duration_hours if data.duration_hours is not None else data.job.duration_hours
    return quote_for_offer(user, data.offer_id, data.nodes, float(duration), now=now)


def order_place(*, user: User, idempotency_key: str, data: PlacementInput, queue: bool = True,
                now: datetime | None = None) -> tuple[Order, bool]:
    """Returns (order, created). With queue=False the order waits in `reserved` (its reservation expires) and
    nothing is paid; with queue=True it is paid for (data.payment) and queued, or failed if payment is refused.
    A replayed key whose order is still reserved (a crash or a concurrent request between reserving and paying)
    retries the authorization, which billing makes idempotent."""
    order, created = _reserve(user=user, idempotency_key=idempotency_key, data=data, now=now, queue=queue)
    if not queue or order.state != State.RESERVED:
        return order, created
    from marketplace.orders.services.payment import order_pay_and_queue

    return order_pay_and_queue(order, actor=user, payment=data.payment), created


def _reserve(*, user: User, idempotency_key: str, data: PlacementInput, now: datetime | None,
             queue: bool = False) -> tuple[Order, bool]:
    """The order placed and reserved; with `queue`, when it is paid by credit and credit is available, also paid
    and queued in the same transaction (no commit in between: one commit per order)."""
    if not (user.role == "customer" or user.is_operator):
        raise PermissionDeniedError("Only customers place orders.")
    now = now or timezone.now()
    request_hash = data.hash()
    read = placement_reads(user, idempotency_key, data.quote_id)
    existing = _replay(user, idempotency_key, request_hash, read=read.replayed) if read.replayed else None
    if existing is not None:
        return existing, False
    quote = _quote_for(user, data, now, read=read.quote)
    payment = data.payment or PaymentInput()
    by_credit = queue and billing_credit_ready(user, method=payment.method, payment_method=payment.payment_method,
                                               duration_hours=data.job.duration_hours, profile=read.profile,
                                               account=read.credit_account)
    try:
        tried = by_credit and read.offer is not None and placement_statement.usable()
        if tried:
            placed = _place_by_statement(user, idempotency_key, request_hash, quote, data.job, read.offer, now=now)
            if placed is not None:
                return placed, True
        return _place(user, idempotency_key, request_hash, quote, data.job, now=now, by_credit=by_credit,
                      statement=not tried), True
    except IntegrityError:
        existing = _replay(user, idempotency_key, request_hash)  # a concurrent request with the same key won
        if existing is None:
            raise
        return existing, False


def _new_order(user: User, key: str, request_hash: str, quote: Quote, plan: list[dict[str, Any]], job: JobInput,
               *, now: datetime, state: State) -> Order:
    return Order(customer=user, quote=quote, plan=plan, command=job.command, image=job.image, env=job.env,
                 duration_hours=job.duration_hours, budget_cap_usd=job.budget_cap_usd, state=state, attempt=1,
                 idempotency_key=key, request_hash=request_hash, state_changed_at=now, checked_at=now)


def _place_by_statement(user: User, key: str, request_hash: str, quote: Quote, job: JobInput, offer: Offer,
                        *, now: datetime) -> Order | None:
    """Paid by credit, on the quote's first alternative: everything `_place` writes for it, as one statement that
    is its own transaction (placement_statement.py), without the offer's row lock: the units it picks are locked
    instead, skipping those another placement holds. `offer` is the first alternative's offer as read before
    (placement_reads, unlocked; the statement checks it is still listed with as many nodes). None, with nothing
    written, when this way cannot place it (the offer not the first alternative's or changed, too few free units
    or units out of step): the caller then takes `_place`. PostgreSQL only (placement_statement.usable)."""
    plan = plan_from_quote(quote.alternatives)
    candidates = list(alternatives_of(plan))
    if not candidates or candidates[0][1].offer_id != offer.pk:
        return None
    order = _new_order(user, key, request_hash, quote, plan, job, now=now, state=State.QUEUED)
    apply_alternative(order, *candidates[0], offer)
    # Its own transaction (no BEGIN/COMMIT round trips); within a caller's transaction, a savepoint, so that an
    # error (the same key placed concurrently) leaves the caller's transaction usable.
    with transaction.atomic() if connection.in_atomic_block else nullcontext():
        placed = placement_statement.place_queued(order, offer, actor=user, now=now, quote_id=str(quote.id))
    return order if placed else None


@transaction.atomic
def _place(user: User, key: str, request_hash: str, quote: Quote, job: JobInput, *, now: datetime,
           by_credit: bool = False, statement: bool = True) -> Order:
    """Reserve (the order `reserved`, its units held until expires_at); `by_credit`: also pay by credit and queue,
    so the order is written `queued` with both events (reserved, queued), its units confirmed (no expiry), its
    authorized charge and its provision message, all in this transaction. `statement`: first try the
    one-statement write under the lock (False: `_place_by_statement` has just found it cannot place the order)."""
    plan = plan_from_quote(quote.alternatives)
    candidates = list(alternatives_of(plan))[: config.max_attempts()]
    if not candidates:
        raise ConflictError("The quote has no alternative an order can use.", code="no_capacity")
    offers = reservations.lock_offers([alt.offer_id for _, alt in candidates], for_placement=True)
    first = candidates[0]
    if first[1].offer_id not in offers:
        raise ConflictError("The quote's first offer no longer exists.", code="no_capacity")
    order = _new_order(user, key, request_hash, quote, plan, job, now=now,
                       state=State.QUEUED if by_credit else State.RESERVED)
    apply_alternative(order, *first, offers[first[1].offer_id])
    if by_credit and statement and placement_statement.usable() and placement_statement.place_queued(
            order, offers[first[1].offer_id], actor=user, now=now, quote_id=str(quote.id)):
        return order
    order.save()
    # Held until the order is paid for and queued (which confirms the reservation), or until it expires; paid and
    # queued here: confirmed at once.
    expires_at = None if by_credit else now + timedelta(seconds=config.reservation_ttl_s())
    skipped: list[int] = []
    held, chosen = None, first
    for candidate in candidates:
        offer = offers.get(candidate[1].offer_id)
        held = reservations.reserve(order, offer, candidate[1].nodes, attempt=1, expires_at=expires_at)
        if held:
            chosen = candidate
            break
        skipped.append(candidate[1].offer_id)
    if not held:
        raise ConflictError(f"No capacity left on the quote's alternatives (offers {', '.join(map(str, skipped))}).",
                            code="no_capacity", extra={"offers": skipped})
    if chosen is not first:
        apply_alternative(order, *chosen, offers[chosen[1].offer_id])
        order.save(update_fields=["offer", "plan_index", "nodes", "accelerator_count", "node_price_per_hour",
                                  "driver"])
    events = [reserved_event(order, quote_id=str(quote.id), now=now, actor=user, units=[r.unit_id for r in held],
                             skipped_offers=skipped)]
    if by_credit:  # what order_pay_and_queue does after a commit, here before it (credit needs no Stripe call)
        billing_authorize_order_placing(order)
        events.append(queued_event(order, now=now, actor=user))
        outbox.send_after_commit(TASK_PROVISION, [order.pk, order.attempt])
    OrderEvent.objects.bulk_create(events)
    return order
