"""Provider pages: dashboard, offers table (edit price/availability, unlist), capacity form, CSV upload,
organisation and policies."""

from __future__ import annotations

import hashlib

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from marketplace.billing.selectors.billing import payout_account_for
from marketplace.billing.services.payouts import provider_onboarding_link
from marketplace.errors import DomainError, NotFoundError
from marketplace.models import Offer
from marketplace.portal import csv_import
from marketplace.portal.dashboard import DEFAULT_RANGE, provider_dashboard
from marketplace.portal.forms import CsvUploadForm, OfferEditForm, OfferForm, PolicyForm, apply_domain_error
from marketplace.portal.selectors import members_of, offer_totals, provider_recent_orders
from marketplace.portal.services import provider_policy_update
from marketplace.portal.views.access import provider_member
from marketplace.selectors.offers import offers_of_provider
from marketplace.services.offers import offer_create, offer_unlist, offer_update

SESSION_KEY = "portal_csv_upload"


def _htmx(request: HttpRequest) -> bool:
    return bool(request.headers.get("HX-Request"))


@provider_member
def dashboard(request: HttpRequest) -> HttpResponse:
    provider = request.user.provider
    return render(request, "portal/provider/dashboard.html", {
        "nav": "provider", "provider": provider, "totals": offer_totals(provider),
        "dash": provider_dashboard(provider, request.GET.get("range") or DEFAULT_RANGE),
        "recent": provider_recent_orders(provider)})


# -------------------------------------------------------------------------------------------- offers
@provider_member
def offer_list(request: HttpRequest) -> HttpResponse:
    status = request.GET.get("status") or None
    if status not in (None, *Offer.Status.values):
        status = None
    rows = offers_of_provider(user=request.user, status=status)
    return render(request, "portal/provider/offers.html", {
        "nav": "provider", "rows": rows, "status": status or "", "statuses": Offer.Status.choices,
        "totals": offer_totals(request.user.provider)})


@provider_member
@require_http_methods(["GET", "POST"])
def offer_new(request: HttpRequest) -> HttpResponse:
    form = OfferForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            offer = offer_create(user=request.user, data=form.offer_data())
        except DomainError as exc:
            apply_domain_error(form, exc)
        else:
            messages.success(request, f"Offer “{offer.name}” created ({offer.status}).")
            return redirect("portal:provider-offers")
    return render(request, "portal/provider/offer_form.html", {"nav": "provider", "form": form})


def _own_offer(request: HttpRequest, pk: int) -> dict:
    offer = offers_of_provider(user=request.user).filter(pk=pk).first()
    if offer is None:
        raise NotFoundError(f"No offer {pk}.")
    return offer


@provider_member
@require_http_methods(["GET", "POST"])
def offer_edit(request: HttpRequest, pk: int) -> HttpResponse:
    """The inline edit row of the offers table (htmx), or a page of its own without JavaScript."""
    try:
        offer = _own_offer(request, pk)
    except NotFoundError as exc:
        messages.error(request, exc.message)
        return redirect("portal:provider-offers")
    if request.method == "POST":
        form = OfferEditForm(request.POST)
        if form.is_valid():
            try:
                offer_update(user=request.user, offer_id=pk, data=form.offer_data())
            except DomainError as exc:
                apply_domain_error(form, exc)
            else:
                offer = _own_offer(request, pk)
                if _htmx(request):
                    return render(request, "portal/provider/_offer_row.html", {"o": offer, "saved": True})
                messages.success(request, f"Offer “{offer['name']}” saved.")
                return redirect("portal:provider-offers")
    else:
        form = OfferEditForm(initial={k: offer[k] for k in OfferEditForm.base_fields})
    if request.GET.get("cancel") and _htmx(request):
        return render(request, "portal/provider/_offer_row.html", {"o": offer})
    template = "portal/provider/_offer_edit_row.html" if _htmx(request) else "portal/provider/offer_edit.html"
    return render(request, template, {"o": offer, "form": form, "nav": "provider"})


@provider_member
@require_POST
def offer_status(request: HttpRequest, pk: int) -> HttpResponse:
    """Unlist a listed offer, or list a draft/unlisted one."""
    action = request.POST.get("action")
    try:
        if action == "unlist":
            offer = offer_unlist(user=request.user, offer_id=pk)
        elif action == "list":
            offer = offer_update(user=request.user, offer_id=pk, data={"status": Offer.Status.LISTED})
        else:
            raise DomainError("Unknown action; use list or unlist.")
    except DomainError as exc:
        if _htmx(request):
            offer = offers_of_provider(user=request.user).filter(pk=pk).first()
            if offer is not None:
                return render(request, "portal/provider/_offer_row.html", {"o": offer, "error": exc.message})
        messages.error(request, exc.message)
        return redirect("portal:provider-offers")
    offer = _own_offer(request, pk)
    if _htmx(request):
        return render(request, "portal/provider/_offer_row.html", {"o": offer, "saved": True})
    messages.success(request, f"Offer “{offer['name']}” is now {offer['status']}.")
    return redirect("portal:provider-offers")


# ---------------------------------------------------------------------------------------- CSV upload
def _digest(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


@provider_member
@require_http_methods(["GET", "POST"])
def upload(request: HttpRequest) -> HttpResponse:
    """Upload a CSV and see the per-row report. Nothing is saved here; a clean file waits for confirmation."""
    form = CsvUploadForm(request.POST or None, request.FILES or None)
    report = None
    if request.method == "POST" and form.is_valid():
        request.session.pop(SESSION_KEY, None)
        content = form.cleaned_data["file"].read()
        try:
            parsed = csv_import.read_csv(content)
        except csv_import.CsvFileError as exc:
            form.add_error("file", str(exc))
        else:
            report = csv_import.check(request.user, parsed, list_new=form.cleaned_data["list_new"])
            if report.clean:
                request.session[SESSION_KEY] = {
                    "content": content.decode("utf-8-sig"), "digest": _digest(content),
                    "name": form.cleaned_data["file"].name, "list_new": form.cleaned_data["list_new"]}
    return render(request, "portal/provider/upload.html", {
        "nav": "provider", "form": form, "report": report,
        "pending": request.session.get(SESSION_KEY)}, status=400 if form.errors else 200)


@provider_member
@require_POST
def upload_confirm(request: HttpRequest) -> HttpResponse:
    pending = request.session.get(SESSION_KEY)
    if not pending or request.POST.get("digest") != pending["digest"]:
        messages.error(request, "There is no checked file waiting to be imported; upload it again.")
        return redirect("portal:provider-upload")
    parsed = csv_import.read_csv(pending["content"].encode())
    report, result = csv_import.commit(request.user, parsed, list_new=pending["list_new"])
    request.session.pop(SESSION_KEY, None)
    if result is None:
        messages.error(request, "The offers changed since the file was checked, and the import was refused. "
                                "Nothing was saved; see the report.")
        return render(request, "portal/provider/upload.html",
                      {"nav": "provider", "form": CsvUploadForm(), "report": report, "pending": None})
    messages.success(request, f"Imported {pending['name']}: {report.created} created, {report.updated} updated, "
                              f"{report.unchanged} unchanged.")
    return redirect("portal:provider-offers")


@provider_member
def upload_template(request: HttpRequest) -> HttpResponse:
    response = HttpResponse(csv_import.template_csv(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="machines-template.csv"'
    return response


# ---------------------------------------------------------------------------- organisation, policies
@provider_member
@require_http_methods(["GET", "POST"])
def organisation(request: HttpRequest) -> HttpResponse:
    provider = request.user.provider
    initial_kinds = provider.allowed_workload_kinds or [k for k, _ in PolicyForm.base_fields[
        "allowed_workload_kinds"].choices]
    form = PolicyForm(request.POST or None, initial={
        "min_rental_hours": provider.min_rental_hours, "allowed_workload_kinds": initial_kinds,
        "interruptible_allowed": provider.interruptible_allowed})
    if request.method == "POST" and form.is_valid():
        try:
            provider_policy_update(user=request.user, **form.cleaned_data)
        except DomainError as exc:
            apply_domain_error(form, exc)
        else:
            messages.success(request, "Policies saved; new recommendations use them at once.")
            return redirect("portal:provider-organisation")
    return render(request, "portal/provider/organisation.html", {
        "nav": "provider", "provider": provider, "members": members_of(provider), "form": form,
        "payout": payout_account_for(request.user), "poll_payouts": request.GET.get("payouts") == "returned"})


@provider_member
@require_POST
def payouts_onboard(request: HttpRequest) -> HttpResponse:
    """Send the member to Stripe's hosted onboarding (Connect Express); Stripe sends them back here."""
    back = request.build_absolute_uri(reverse("portal:provider-organisation") + "?payouts=returned")
    try:
        _, link = provider_onboarding_link(user=request.user, return_url=back, refresh_url=back)
    except DomainError as exc:
        messages.error(request, exc.message)
        return redirect("portal:provider-organisation")
    return redirect(link["url"])


@provider_member
def payouts_live(request: HttpRequest) -> HttpResponse:
    """The polled payout-status block (polls until Stripe has reported the account)."""
    return render(request, "portal/provider/_payouts.html", {"payout": payout_account_for(request.user),
                                                             "poll_payouts": True})
