"""The API's rate limits on the portal's forms: a refused POST shows its form again, saying why, with a 429."""

from __future__ import annotations

from django import forms
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from marketplace.throttling import Refusal, page_rate_check


def refused_post(request: HttpRequest, scope: str, form: forms.Form) -> Refusal | None:
    """For a POST over the `scope` limit (the API's counter): the refusal, with the reason on the form."""
    refusal = page_rate_check(request, scope) if request.method == "POST" else None
    if refusal is not None:
        form.is_valid()
        form.add_error(None, f"{refusal.reason} (in {refusal.retry_after_s} s)")
    return refusal


def render_refused(request: HttpRequest, template: str, context: dict, refusal: Refusal) -> HttpResponse:
    response = render(request, template, context, status=429)
    response["Retry-After"] = str(refusal.retry_after_s)
    return response
