"""Order flow: the quote for the chosen option, job spec and payment, then the order's live status."""

from __future__ import annotations

from uuid import UUID

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from marketplace.errors import DomainError
from marketplace.portal.views.access import signed_in
from marketplace.services.quotes import quote_get, quote_is_expired


@signed_in
@require_http_methods(["GET", "POST"])
def order_new(request: HttpRequest, quote_id: UUID, offer_id: int) -> HttpResponse:
    try:
        quote = quote_get(request.user, quote_id)
    except DomainError as exc:
        messages.error(request, exc.message)
        return redirect("portal:recommend")
    option = next((a for a in quote.alternatives if a["offer_id"] == offer_id), None)
    if option is None:
        messages.error(request, "That option is not part of the quote.")
        return redirect("portal:recommend")
    return render(request, "portal/orders/new.html", {
        "nav": "orders", "quote": quote, "option": option, "expired": quote_is_expired(quote)})
