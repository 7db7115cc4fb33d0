"""Billing for customers: prepaid credit and top-ups (test cards), the saved card, and invoices."""

from __future__ import annotations

import re

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from marketplace.billing.errors import PaymentDeclined
from marketplace.billing.models import TopUp
from marketplace.billing.selectors.billing import credit_summary, topups_for
from marketplace.billing.selectors.invoices import invoice_index, monthly_invoice, order_invoice
from marketplace.billing.services.customers import billing_profile_update
from marketplace.billing.services.topups import topup_create
from marketplace.errors import DomainError
from marketplace.portal.forms import TEST_CARDS, CardForm, TopUpForm, apply_domain_error
from marketplace.portal.views.access import customer

PENDING_TOPUP = (TopUp.Status.CREATED, TopUp.Status.PROCESSING)
MONTH = re.compile(r"^\d{4}-\d{2}$")


def _context(request: HttpRequest, **extra) -> dict:
    topups = list(topups_for(request.user)[:20])
    return {"nav": "billing", "credit": credit_summary(request.user), "topups": topups,
            "pending": any(t.status in PENDING_TOPUP for t in topups), "invoices": invoice_index(request.user),
            "cards": dict(TEST_CARDS), **extra}


@customer
@require_http_methods(["GET", "POST"])
def billing(request: HttpRequest) -> HttpResponse:
    form = TopUpForm(request.POST or None)
    card_form = CardForm(prefix="card", initial={
        "payment_method": credit_summary(request.user)["default_payment_method"] or "pm_card_visa"})
    if request.method == "POST" and form.is_valid():
        try:
            topup = topup_create(request.user, amount=form.cleaned_data["amount"],
                                 payment_method=form.cleaned_data["payment_method"])
        except PaymentDeclined as exc:
            form.add_error("payment_method", exc.message)  # the card's answer belongs beside the card
        except DomainError as exc:
            apply_domain_error(form, exc)
        else:
            messages.success(request, f"Top-up of ${topup.amount} sent to Stripe (test mode); your credit grows "
                                      f"once Stripe confirms the payment.")
            return redirect("portal:billing")
    return render(request, "portal/billing/billing.html", _context(request, form=form, card_form=card_form))


@customer
def billing_live(request: HttpRequest) -> HttpResponse:
    """The polled credit and top-ups block (stops polling when no top-up is pending)."""
    response = render(request, "portal/billing/_credit.html", _context(request))
    return response


@customer
@require_POST
def card_save(request: HttpRequest) -> HttpResponse:
    form = CardForm(request.POST, prefix="card")
    if form.is_valid():
        try:
            billing_profile_update(request.user, default_payment_method=form.cleaned_data["payment_method"])
        except DomainError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, f"Saved {dict(TEST_CARDS)[form.cleaned_data['payment_method']]} for orders.")
    else:
        messages.error(request, "Choose one of the test cards.")
    return redirect("portal:billing")


@customer
def invoice_order(request: HttpRequest, order_id: int) -> HttpResponse:
    try:
        invoice = order_invoice(request.user, order_id)
    except DomainError as exc:
        messages.error(request, exc.message)
        return redirect("portal:billing")
    return render(request, "portal/billing/invoice.html", {"nav": "billing", "invoice": invoice})


@customer
def invoice_month(request: HttpRequest, month: str) -> HttpResponse:
    if not MONTH.match(month):
        messages.error(request, "Months look like 2026-11.")
        return redirect("portal:billing")
    try:
        invoice = monthly_invoice(request.user, month)
    except DomainError as exc:
        messages.error(request, exc.message)
        return redirect("portal:billing")
    return render(request, "portal/billing/invoice.html", {"nav": "billing", "invoice": invoice})
