"""“What do you need to run?”: template forms whose results update as the form changes (htmx)."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from broker.engine import RequestError
from marketplace.errors import DomainError
from marketplace.portal.recommend_form import DEFAULT_TEMPLATE, TEMPLATES, RecommendForm
from marketplace.portal.recommendations import chart_data, histogram, recommend_preview, relaxation_patch
from marketplace.portal.views.access import signed_in
from marketplace.portal.views.limits import refused_post, render_refused
from marketplace.services.quotes import quote_create
from marketplace.throttling import page_rate_check


def _results(form: RecommendForm) -> dict[str, Any]:
    """Run the form through the engine; errors of either layer end up on the form."""
    if not form.is_valid():
        return {}
    document = form.document()
    try:
        answer = recommend_preview(document)
    except RequestError as exc:
        form.add_engine_errors(exc.fields)
        return {}
    relaxations = [{**r, "patch": relaxation_patch(r, form, answer)} for r in answer["relaxations"]]
    return {
        "answer": answer, "document_json": json.dumps(document, separators=(",", ":")),
        "chart": chart_data(answer) if answer["recommendations"] else None,
        "histogram": histogram(answer), "relaxations": relaxations,
    }


@require_http_methods(["GET", "POST"])
def recommend(request: HttpRequest) -> HttpResponse:
    template = request.POST.get("template") or request.GET.get("template") or DEFAULT_TEMPLATE
    if template not in TEMPLATES:
        template = DEFAULT_TEMPLATE
    if request.method == "POST":
        form = RecommendForm(request.POST, template=template)
    else:
        form = RecommendForm(RecommendForm.initial_data(template), template=template)
    # Each change of the form (htmx) runs the engine: the API's per-user limit (per address when signed out)
    # applies here too. A refused update keeps the form and says why, with status 429 (portal.js swaps it in).
    refusal = refused_post(request, "recommendations", form)
    context = {"form": form, "templates": TEMPLATES.values(), "template": form.spec, "nav": "recommend",
               **({} if refusal else _results(form))}
    partial = bool(request.headers.get("HX-Request")) and request.method == "POST"
    page = "portal/recommend/_results.html" if partial else "portal/recommend/page.html"
    return render_refused(request, page, context, refusal) if refusal else render(request, page, context)


@signed_in
@require_POST
def quote(request: HttpRequest) -> HttpResponse:
    """“Order this”: lock today's prices in a quote for the request, and go to the order form for the option."""
    refusal = page_rate_check(request, "recommendations")  # a quote runs the engine, as the API's quotes do
    if refusal is not None:
        messages.error(request, f"{refusal.reason} (in {refusal.retry_after_s} s)")
        return redirect("portal:recommend")
    try:
        document = json.loads(request.POST.get("document", ""))
        offer_id = int(request.POST.get("offer_id", ""))
    except (ValueError, TypeError):
        messages.error(request, "That order button was out of date; pick an option again.")
        return redirect("portal:recommend")
    try:
        quote_obj, answer = quote_create(request.user, document)
    except DomainError as exc:
        messages.error(request, f"The request is no longer valid: {exc.message}")
        return redirect("portal:recommend")
    if quote_obj is None or not any(a["offer_id"] == offer_id for a in quote_obj.alternatives):
        messages.warning(request, "Prices or capacity changed since the results were shown, and that option is "
                                  "no longer among the best. Here are today's options.")
        return redirect("portal:recommend")
    return redirect("portal:order-new", quote_id=quote_obj.id, offer_id=offer_id)
