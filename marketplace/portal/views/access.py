"""Who may see which page: signed-in users, provider members."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect

signed_in = login_required(login_url="portal:signin")


def provider_member(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Provider pages: members of a provider organisation only (others are sent to the customer pages)."""

    @signed_in
    @wraps(view)
    def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if not request.user.is_provider_member:
            messages.info(request, "The provider pages are for members of a provider organisation.")
            return redirect("portal:recommend")
        return view(request, *args, **kwargs)

    return wrapped


def customer(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Customer pages (billing): customers only; provider members are sent to their dashboard."""

    @signed_in
    @wraps(view)
    def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if request.user.role != "customer":
            messages.info(request, "Billing pages are for customers; providers see earnings on their dashboard.")
            return redirect("portal:provider-dashboard" if request.user.is_provider_member else "portal:recommend")
        return view(request, *args, **kwargs)

    return wrapped
