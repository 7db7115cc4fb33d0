"""Recommendations and quotes: run the engine on the current snapshot and lock the answer's prices.

A quote keeps the ranked alternatives server-side (the client holds only its random id), so it cannot be forged
or altered; orders fail over along `alternatives` in rank order.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from broker.engine import OfferSnapshot, RequestError, parse_request, recommend
from marketplace.errors import NotFoundError, ValidationFailed
from marketplace.models import Offer, Quote, User
from marketplace.selectors.snapshot import current_snapshot, offer_snapshot

ALTERNATIVE_FIELDS = ("rank", "offer_id", "provider", "accelerator", "count", "nodes", "region", "interruptible",
                      "node_price_per_hour", "price_per_hour", "est_hours", "billed_hours", "est_total_usd",
                      "est_kg_co2e")


def quote_ttl() -> timedelta:
    return timedelta(minutes=getattr(settings, "QUOTE_TTL_MINUTES", 15))


def _validated(document: Any, now: datetime):
    try:
        return parse_request(document, now=now)
    except RequestError as exc:
        raise ValidationFailed(str(exc), fields=exc.fields, code="invalid_request") from None


def _store(user: User | None, document: dict, answer: dict, now: datetime) -> Quote:
    alternatives = [{k: rec[k] for k in ALTERNATIVE_FIELDS if k in rec} for rec in answer["recommendations"]]
    return Quote.objects.create(user=user, request=document, alternatives=alternatives,
                                objective=answer.get("objective", ""), created_at=now,
                                expires_at=now + quote_ttl())


def _answer(snapshot: OfferSnapshot, document: Any, now: datetime) -> dict:
    request = _validated(document, now)
    return recommend(snapshot, request, now=now).to_json()


def _with_quote(answer: dict, quote: Quote | None) -> dict:
    answer["quote"] = None if quote is None else {
        "id": str(quote.id), "expires_at": quote.expires_at.isoformat().replace("+00:00", "Z"),
        "alternatives": len(quote.alternatives)}
    return answer


@transaction.atomic
def quote_create(user: User | None, document: Any, now: datetime | None = None) -> tuple[Quote | None, dict]:
    """Recommend for `document` and store a quote when anything matched. Returns (quote or None, answer JSON)."""
    now = now or timezone.now()
    answer = _answer(current_snapshot(), document, now)
    quote = _store(user, document, answer, now) if answer["recommendations"] else None
    return quote, _with_quote(answer, quote)


def quote_get(user: User, quote_id: Any) -> Quote:
    """The user's own quote; another user's or a missing one is the same 404."""
    quote = Quote.objects.filter(pk=quote_id, user=user).first() if _is_uuid(quote_id) else None
    if quote is None:
        raise NotFoundError("No such quote.", code="quote_not_found")
    return quote


def quote_is_expired(quote: Quote, now: datetime | None = None) -> bool:
    return (now or timezone.now()) >= quote.expires_at


def quote_refresh(quote: Quote, now: datetime | None = None) -> Quote | None:
    """A fresh quote from the same request at today's prices (None when nothing matches any more)."""
    fresh, _ = quote_create(quote.user, quote.request, now=now)
    return fresh


@transaction.atomic
def quote_for_offer(user: User, offer_id: int, nodes: int, duration_hours: float,
                    now: datetime | None = None) -> Quote:
    """Re-price an offer + configuration chosen directly, through the engine, as a one-alternative quote."""
    now = now or timezone.now()
    offer = Offer.objects.select_related("accelerator").filter(pk=offer_id, status=Offer.Status.LISTED).first()
    if offer is None:
        raise NotFoundError("No such listed offer.", code="offer_not_found")
    document = {"resources": {"accelerator": offer.accelerator.canonical_name, "count": offer.accelerator_count,
                              "nodes": nodes},
                "duration_hours": duration_hours, "objective": "cost", "top_k": 1}
    answer = _answer(offer_snapshot(offer.pk), document, now)
    if not answer["recommendations"]:
        reasons = "; ".join(f"{r['code']}" for r in answer["excluded"]["by_reason"]) or "no capacity"
        raise ValidationFailed(f"Offer {offer_id} cannot run this configuration: {reasons}.",
                               fields={"nodes": [reasons]}, code="offer_not_feasible")
    return _store(user, document, answer, now)


def _is_uuid(value: Any) -> bool:
    import uuid

    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True
