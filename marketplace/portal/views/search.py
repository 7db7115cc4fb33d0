"""The offer browser: filters and the query language, sortable columns, keyset pages, helpful empty states.

It reads through the same selector and filter definitions as GET /api/v1/offers/, so a query means the same
in the portal and the API.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.http import urlencode

from broker.query.language import QueryError, parse
from marketplace.api.limits import query_limits
from marketplace.api.offer_search import OfferSearchFilter, decode_cursor, encode_cursor
from marketplace.errors import DomainError
from marketplace.models import Offer
from marketplace.portal.forms import OfferFilterForm, apply_domain_error
from marketplace.portal.selectors import why_no_offers
from marketplace.selectors.offers import DEFAULT_ORDERING, Position, offer_search, parse_ordering, sort_value

PAGE_SIZE = 25

COLUMNS = (  # (label, sort field or '', numeric)
    ("Provider", "", False), ("Node type", "", False), ("Accelerator", "", False), ("Count", "count", True),
    ("Memory / acc.", "memory_gb", True), ("Region", "", False), ("Carbon g/kWh", "carbon_gco2_per_kwh", True),
    ("Nodes", "nodes_available", True), ("Reliability", "reliability", True), ("$ / acc.-hour",
                                                                                "price_per_accelerator_hour", True),
    ("$ / node-hour", "price_per_hour", True),
)


def offers(request: HttpRequest) -> HttpResponse:
    form = OfferFilterForm(request.GET)
    context: dict = {"form": form, "nav": "offers", "columns": COLUMNS, "rows": [], "searched": False,
                     "can_order": request.user.is_authenticated and request.user.role == "customer"}
    ordering = DEFAULT_ORDERING
    if form.is_valid():
        ordering = form.cleaned_data.get("ordering") or DEFAULT_ORDERING
        context.update(_search(form, ordering))
    filters = {k: v for k, v in request.GET.items() if k in OfferFilterForm.FILTERS + ("q",) and v}
    context["ordering"] = ordering
    context["base_query"] = urlencode(filters) + "&" if filters else ""
    template = "portal/offers/_results.html" if request.headers.get("HX-Request") else "portal/offers/browse.html"
    return render(request, template, context)


def _search(form: OfferFilterForm, ordering: str) -> dict:
    data = form.cleaned_data
    params = {k: str(data[k]) for k in OfferFilterForm.FILTERS if data.get(k) not in (None, "")}
    try:
        clauses, notes = OfferSearchFilter(params, queryset=Offer.objects.none()).clauses()
    except DomainError as exc:
        apply_domain_error(form, exc)
        return {}
    try:
        query = parse(data.get("q") or "", limits=query_limits())
    except QueryError as exc:
        form.add_error("q", exc.message)
        return {}
    field, _ = parse_ordering(ordering)
    position = None
    if data.get("cursor"):
        try:
            position = decode_cursor(data["cursor"], ordering)
        except DomainError as exc:
            form.add_error(None, exc.message)
            return {}
    all_clauses = [*clauses, *query.clauses]
    rows, more = offer_search(clauses=all_clauses, ordering=ordering, position=position, limit=PAGE_SIZE)
    backwards = bool(position and position.backwards)
    has_next = more if not backwards else True
    has_previous = (more if backwards else position is not None) and bool(rows)

    def cursor(row: dict, back: bool) -> str:
        return encode_cursor(Position(ordering, sort_value(row, field), row["id"], back))

    result = {
        "searched": True, "rows": rows, "notes": [*notes, *query.notes], "clauses": [str(c) for c in all_clauses],
        "next_cursor": cursor(rows[-1], False) if rows and has_next else None,
        "previous_cursor": cursor(rows[0], True) if has_previous else None,
    }
    if not rows and position is None:
        total, impacts = why_no_offers(all_clauses)
        result.update(total_listed=total, impacts=impacts)
    return result
