"""Order flow: the quote for the chosen option and the job spec, then the order's live status, logs and cancel."""

from __future__ import annotations

import uuid
from decimal import ROUND_CEILING, Decimal
from uuid import UUID

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from broker.engine.filters import BY_CODE
from marketplace.billing.errors import (
    InsufficientCredit,
    PaymentDeclined,
    PaymentMethodNotAllowed,
    PaymentProviderUnavailable,
)
from marketplace.billing.selectors.billing import charge_for, credit_summary
from marketplace.errors import DomainError
from marketplace.orders.selectors import order_events, order_for_user, order_log, orders_visible
from marketplace.orders.serializers import JobSerializer
from marketplace.orders.services.cancel import order_cancel
from marketplace.orders.services.placement import JobInput, PaymentInput, PlacementInput, order_place
from marketplace.portal.forms import OfferOrderForm, OrderForm, apply_domain_error
from marketplace.portal.orders import order_progress
from marketplace.portal.views.access import signed_in
from marketplace.portal.views.limits import refused_post, render_refused
from marketplace.selectors.offers import offer_visible
from marketplace.services.quotes import quote_for_offer, quote_get, quote_is_expired

LIVE_POLL_SECONDS = 2


def _default_hours(option: dict) -> Decimal:
    hours = Decimal(str(option.get("billed_hours") or option.get("est_hours") or 1))
    return min(hours.quantize(Decimal("0.01"), rounding=ROUND_CEILING), Decimal(720))


def _retry_form(form: OrderForm, field: str, message: str) -> OrderForm:
    """The same answers with a fresh idempotency key (the refused order is closed), the refusal beside `field`."""
    again = OrderForm({**form.data.dict(), "idempotency_key": uuid.uuid4().hex}, initial=form.initial)
    again.is_valid()
    again.add_error(field, message)
    return again


def _placement(form: OrderForm, quote, option: dict) -> PlacementInput | None:
    """The placement for the form (job and payment), or None after putting the job checks' errors on the form."""
    data = form.cleaned_data
    card = data["card"] or None  # None: the customer's saved card
    payment = PaymentInput(method=data["method"], payment_method=card if data["method"] == "card" else None)
    cap = data["budget_cap_usd"]
    job = JobSerializer(data={"command": data["command"], "image": data["image"], "env": data["env"],
                              "duration_hours": str(data["duration_hours"]),
                              "budget_cap_usd": None if cap is None else str(cap)})
    if not job.is_valid():
        for name, errors in job.errors.items():
            for message in errors if isinstance(errors, list) else [errors]:
                form.add_error(name if name in form.fields else None, str(message))
        return None
    job_input = JobInput(**job.validated_data)
    if option["rank"] == 1:  # the quote's own order: fails over along its other options
        return PlacementInput(job=job_input, quote_id=str(quote.id), payment=payment)
    return PlacementInput(job=job_input, offer_id=option["offer_id"], nodes=option["nodes"], payment=payment)


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
    credit = credit_summary(request.user)
    saved = credit["default_payment_method"]
    form = OrderForm(request.POST or None, initial={
        "duration_hours": _default_hours(option), "idempotency_key": uuid.uuid4().hex, "saved_card": saved,
        "method": "card" if saved or credit["available"] <= 0 else "credit", "card": "" if saved else "pm_card_visa"})
    context = {"nav": "orders", "quote": quote, "option": option, "expired": quote_is_expired(quote), "form": form,
               "credit": credit}
    if refusal := refused_post(request, "orders", form):
        return render_refused(request, "portal/orders/new.html", context, refusal)
    if request.method == "POST" and form.is_valid():
        placement = _placement(form, quote, option)
        if placement is not None:
            data = form.cleaned_data
            try:
                order, created = order_place(user=request.user, idempotency_key=data["idempotency_key"],
                                             data=placement)
            except (PaymentDeclined, InsufficientCredit, PaymentMethodNotAllowed, PaymentProviderUnavailable) as exc:
                form = _retry_form(form, "card" if data["method"] == "card" else "method", exc.message)
            except DomainError as exc:
                fresh = (exc.extra.get("quote") or {}) if exc.code == "quote_expired" else {}
                if any(a.get("offer_id") == offer_id for a in fresh.get("alternatives", [])):
                    messages.warning(request, "The quote had expired; here it is again at today's prices. Check "
                                              "the total and place the order.")
                    return redirect("portal:order-new", quote_id=fresh["id"], offer_id=offer_id)
                apply_domain_error(form, exc)
            else:
                if created:
                    messages.success(request, f"Order {order.pk} placed and paid: capacity is reserved and the job "
                                              f"is queued.")
                return redirect("portal:order-detail", pk=order.pk)
    return render(request, "portal/orders/new.html", {**context, "form": form})


def _explained(exc: DomainError) -> DomainError:
    """The engine's reason codes for an infeasible configuration, as the sentences the engine documents."""
    if exc.code != "offer_not_feasible":
        return exc
    codes = [c.strip() for m in exc.fields.get("nodes", []) for c in m.split(";") if c.strip()]
    text = "; ".join(BY_CODE[c].description if c in BY_CODE else c for c in codes)
    return DomainError(exc.message, fields={"nodes": [f"This offer cannot run it: {text}."]}, code=exc.code)


@signed_in
@require_http_methods(["GET", "POST"])
def offer_order(request: HttpRequest, offer_id: int) -> HttpResponse:
    """Order one listed offer as it is: the engine prices the configuration into a quote, then the order form."""
    offer = offer_visible(user=request.user, offer_id=offer_id)
    if offer is None or offer["status"] != "listed":
        messages.error(request, f"Offer {offer_id} is not listed.")
        return redirect("portal:offers")
    form = OfferOrderForm(request.POST or None)
    if refusal := refused_post(request, "recommendations", form):  # a quote runs the engine
        return render_refused(request, "portal/orders/offer.html", {"nav": "offers", "offer": offer, "form": form},
                              refusal)
    if request.method == "POST" and form.is_valid():
        try:
            quote = quote_for_offer(request.user, offer_id, form.cleaned_data["nodes"],
                                    float(form.cleaned_data["duration_hours"]))
        except DomainError as exc:
            apply_domain_error(form, _explained(exc))
        else:
            return redirect("portal:order-new", quote_id=quote.id, offer_id=offer_id)
    return render(request, "portal/orders/offer.html", {"nav": "offers", "offer": offer, "form": form})


@signed_in
def order_list(request: HttpRequest) -> HttpResponse:
    orders = orders_visible(request.user).order_by("-created_at", "-id")[:200]
    return render(request, "portal/orders/list.html", {"nav": "orders", "orders": orders})


def _live_context(request: HttpRequest, pk: int) -> dict:
    order = order_for_user(request.user, pk)
    try:
        charge = charge_for(request.user, pk)
    except DomainError:
        charge = None  # placed without payment (an operator's demo order)
    return {"order": order, "events": list(order_events(order)), "log": order_log(order), "charge": charge,
            "progress": order_progress(order), "poll": LIVE_POLL_SECONDS, "nav": "orders"}


@signed_in
def order_detail(request: HttpRequest, pk: int) -> HttpResponse:
    try:
        context = _live_context(request, pk)
    except DomainError as exc:
        messages.error(request, exc.message)
        return redirect("portal:orders")
    return render(request, "portal/orders/detail.html", context)


@signed_in
def order_live(request: HttpRequest, pk: int) -> HttpResponse:
    """The polled part of the order page: state, cost, timeline and log. Stops polling once finished."""
    try:
        context = _live_context(request, pk)
    except DomainError:
        return HttpResponse(status=286)  # htmx: stop polling
    return render(request, "portal/orders/_live.html", context)


@signed_in
@require_POST
def order_cancel_view(request: HttpRequest, pk: int) -> HttpResponse:
    try:
        order = order_cancel(user=request.user, order_id=pk)
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Order {order.pk} is being cancelled; you pay only for the time it ran."
                         if order.state == "stopping" else f"Order {order.pk} cancelled.")
    return redirect("portal:order-detail", pk=pk)
