"""Reads the portal needs beyond the shared selectors: tokens, members, and why a search found nothing."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from django.db.models import Count, F, Max, Min, QuerySet, Sum

from broker.query.language import Clause
from marketplace.models import ApiToken, Offer, Provider, User
from marketplace.selectors.offers import NUMERIC, filter_clauses, listed_offers


def tokens_of(user: User) -> QuerySet[ApiToken]:
    return ApiToken.objects.filter(user=user).order_by("-created_at", "-id")


def provider_recent_orders(provider: Provider, limit: int = 10) -> QuerySet:
    """The latest orders on the provider's capacity (no customer identity: providers see the work, not who)."""
    from marketplace.orders.models import Order

    return (Order.objects.filter(offer__provider=provider).select_related("offer__accelerator", "offer__region")
            .order_by("-created_at", "-id")[:limit])


def members_of(provider: Provider) -> QuerySet[User]:
    return User.objects.filter(provider=provider).order_by("username").only("username", "email", "date_joined")


@dataclass(frozen=True, slots=True)
class ClauseImpact:
    """What one clause of an empty search costs: the offers that match every *other* clause."""

    clause: str
    matches_without: int
    nearest: str | None  # e.g. "the lowest price_per_hour among them is 2.1"


def why_no_offers(clauses: Sequence[Clause]) -> tuple[int, list[ClauseImpact]]:
    """(listed offers in total, for each clause the matches if it were dropped), most helpful clause first.

    One COUNT per clause (a query has at most 30), run only when a search came back empty.
    """
    total = listed_offers().count()
    impacts: list[ClauseImpact] = []
    for i, clause in enumerate(clauses):
        rest = filter_clauses(listed_offers(), [c for j, c in enumerate(clauses) if j != i])
        matches = rest.count()
        nearest = None
        if matches and clause.field in NUMERIC and clause.op in ("<", "<=", ">", ">="):
            column = NUMERIC[clause.field].path
            low = clause.op in ("<", "<=")
            best = rest.aggregate(v=(Min if low else Max)(column))["v"]
            if best is not None:
                nearest = f"the {'lowest' if low else 'highest'} {clause.field} among them is {_plain(best)}"
        impacts.append(ClauseImpact(str(clause), matches, nearest))
    impacts.sort(key=lambda c: -c.matches_without)
    return total, impacts


def _plain(value: object) -> str:
    text = f"{value:f}" if hasattr(value, "as_tuple") else f"{value:g}" if isinstance(value, float) else str(value)
    return text.rstrip("0").rstrip(".") if "." in text else text


@dataclass(frozen=True, slots=True)
class OfferTotals:
    listed: int
    draft: int
    unlisted: int
    listed_nodes: int
    listed_accelerators: int


def offer_totals(provider: Provider) -> OfferTotals:
    """Counts of a provider's offers by status, and the listed capacity in nodes and accelerators."""
    by_status = dict(Offer.objects.filter(provider=provider).values_list("status").annotate(n=Count("id")))
    listed = Offer.objects.filter(provider=provider, status=Offer.Status.LISTED)
    sums = listed.aggregate(nodes=Sum("nodes_available"), acc=Sum(F("nodes_available") * F("accelerator_count")))
    nodes, accelerators = sums["nodes"] or 0, sums["acc"] or 0
    return OfferTotals(listed=by_status.get("listed", 0), draft=by_status.get("draft", 0),
                       unlisted=by_status.get("unlisted", 0), listed_nodes=nodes, listed_accelerators=accelerators)
