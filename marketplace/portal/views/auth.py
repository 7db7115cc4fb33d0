"""Home, sign up / in / out, and the API tokens page."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.views import LoginView, LogoutView
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from marketplace.errors import DomainError
from marketplace.models.accounts import Role
from marketplace.portal.forms import SignInForm, SignUpForm, TokenForm, apply_domain_error
from marketplace.portal.selectors import tokens_of
from marketplace.portal.services import account_signup
from marketplace.portal.views.access import signed_in
from marketplace.portal.views.limits import refused_post, render_refused
from marketplace.services.tokens import token_create, token_revoke
from marketplace.throttling import signin_check


def _landing(user) -> str:
    if user.is_authenticated and user.is_provider_member:
        return reverse("portal:provider-dashboard")
    return reverse("portal:recommend")


def home(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect(_landing(request.user))
    return render(request, "portal/home.html", {"nav": "home"})


@require_http_methods(["GET", "POST"])
def signup(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect(_landing(request.user))
    form = SignUpForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            user = account_signup(username=data["username"], email=data["email"], password=data["password"],
                                  role=data["role"], organisation=data.get("organisation") or "")
        except DomainError as exc:
            apply_domain_error(form, exc)
        else:
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            if user.role == Role.PROVIDER:
                messages.success(request, f"Welcome, {user.username}. List your first machines below.")
            else:
                messages.success(request, f"Welcome, {user.username}. Tell us what you need to run.")
            return redirect(_landing(user))
    return render(request, "portal/auth/signup.html", {"form": form, "nav": "signup"})


class SignInView(LoginView):
    """Sign-in with rate limits (marketplace/throttling.py): too many attempts from an address, or too many failures
    for a username from an address, answer 429 with Retry-After before the password is even checked. Failures are
    recorded by the auth signals (throttling.connect_signals), for the admin's sign-in too."""

    template_name = "portal/auth/signin.html"
    authentication_form = SignInForm
    redirect_authenticated_user = True
    extra_context = {"nav": "signin"}

    def get_default_redirect_url(self) -> str:
        return _landing(self.request.user)

    def post(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        refusal = signin_check(request, self._username())
        if refusal is None:
            return super().post(request, *args, **kwargs)
        form = self.get_form_class()(request, initial={"username": self._username()})  # unbound: no password check
        form.cleaned_data = {}
        form.add_error(None, f"{refusal.reason} Try again in {refusal.retry_after_s} s.")
        response = self.render_to_response(self.get_context_data(form=form), status=429)
        response["Retry-After"] = str(refusal.retry_after_s)
        return response

    def _username(self) -> str:
        return str(self.request.POST.get("username", ""))


class SignOutView(LogoutView):
    next_page = "portal:home"


@signed_in
@require_http_methods(["GET", "POST"])
def tokens(request: HttpRequest) -> HttpResponse:
    form = TokenForm(request.POST or None)
    new_key = None
    if refusal := refused_post(request, "tokens", form):
        return render_refused(request, "portal/auth/tokens.html",
                              {"form": form, "tokens": tokens_of(request.user), "nav": "tokens"}, refusal)
    if request.method == "POST" and form.is_valid():
        try:
            token, new_key = token_create(user=request.user, name=form.cleaned_data["name"])
        except DomainError as exc:
            apply_domain_error(form, exc)
        else:
            form = TokenForm()
            messages.success(request, f"Token “{token.name}” created. Copy the key now: it is shown only once.")
    return render(request, "portal/auth/tokens.html",
                  {"form": form, "tokens": tokens_of(request.user), "new_key": new_key, "nav": "tokens"})


@signed_in
@require_POST
def token_revoke_view(request: HttpRequest, pk: int) -> HttpResponse:
    try:
        token = token_revoke(user=request.user, token_id=pk)
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Token “{token.name}” revoked; requests with it now get 401.")
    return redirect("portal:tokens")
