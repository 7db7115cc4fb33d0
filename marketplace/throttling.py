"""Rate limits: DRF throttles on token creation, recommendations and order placement, and the portal's sign-in
limits (every attempt per client address, and failed attempts per username + address).

State lives in the `throttle` cache (settings.CACHES: Redis, so every gunicorn worker counts together). Limits
fail open: when the cache does not answer, the request goes through, a warning is logged (at most once per
LOG_EVERY_S in a process) and the cache is not tried again for RETRY_AFTER_FAILURE_S, so a Redis outage costs
neither availability nor latency. Rates come from settings.THROTTLE_RATES (environment: broker/env.py).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from types import SimpleNamespace

from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.core.cache import caches
from django.core.exceptions import PermissionDenied
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle, SimpleRateThrottle
from rest_framework.views import APIView

log = logging.getLogger("broker.throttling")

CACHE_ALIAS = "throttle"
LOG_EVERY_S = 30.0
RETRY_AFTER_FAILURE_S = 5.0
_state = {"down_until": 0.0, "logged_at": -math.inf}


def _cache_failed(exc: Exception) -> None:
    now = time.monotonic()
    _state["down_until"] = now + RETRY_AFTER_FAILURE_S
    if now - _state["logged_at"] >= LOG_EVERY_S:
        _state["logged_at"] = now
        log.warning("rate limits are not enforced: the throttle cache does not answer (%s: %s); failing open",
                    type(exc).__name__, exc)


def _cache_usable() -> bool:
    return time.monotonic() >= _state["down_until"]


def client_address(request) -> str:
    """REMOTE_ADDR, or with TRUSTED_PROXY_COUNT=n (REST_FRAMEWORK NUM_PROXIES) the X-Forwarded-For entry n hops
    from the right, as DRF's throttles identify clients."""
    return BaseThrottle().get_ident(request) or "unknown"


class FailOpenRateThrottle(SimpleRateThrottle):
    """A scoped throttle on the view's `throttle_scope`, for the methods in `throttle_methods` (default: POST),
    keyed by user (or client address when anonymous); the rate is read at each request from settings."""

    scope_attr = "throttle_scope"

    def __init__(self) -> None:  # the rate depends on the view: allow_request reads it
        pass

    @property
    def cache(self):  # type: ignore[override]
        return caches[CACHE_ALIAS]

    def allow_request(self, request: Request, view: APIView) -> bool:
        if request.method not in getattr(view, "throttle_methods", ("POST",)):
            return True
        self.scope = getattr(view, self.scope_attr, None)
        self.rate = settings.THROTTLE_RATES.get(self.scope) if self.scope else None
        if self.rate is None or not _cache_usable():
            return True
        self.num_requests, self.duration = self.parse_rate(self.rate)
        try:
            return super().allow_request(request, view)
        except Exception as exc:  # noqa: BLE001  (any cache failure: redis errors, OSError, timeouts)
            _cache_failed(exc)
            return True

    def get_cache_key(self, request: Request, view: APIView) -> str:
        user = request.user
        ident = f"user:{user.pk}" if user and user.is_authenticated else f"addr:{self.get_ident(request)}"
        return self.cache_format % {"scope": self.scope, "ident": ident}


# ------------------------------------------------------------------------------------------------ sign-in
@dataclass(frozen=True)
class Refusal:
    retry_after_s: int
    reason: str


def page_rate_check(request, scope: str) -> Refusal | None:
    """The API's limit for `scope`, applied to a portal form's POST (the same counter as the API's)."""
    throttle = FailOpenRateThrottle()
    if throttle.allow_request(request, SimpleNamespace(throttle_scope=scope, throttle_methods=("POST",))):
        return None
    return Refusal(max(1, math.ceil(throttle.wait() or 1)), "Too many requests; wait a moment and try again.")


def signin_check(request, username: str, *, count_attempt: bool = True) -> Refusal | None:
    """Before a password is checked: refuse when the address made too many attempts in the rate's window (only
    when `count_attempt`: the portal's sign-in view counts them), or when this username failed
    SIGNIN_FAILURES_MAX times from this address within SIGNIN_LOCKOUT_SECONDS."""
    if not _cache_usable():
        return None
    now = time.time()
    try:
        cache = caches[CACHE_ALIAS]
        rate = settings.THROTTLE_RATES.get("signin")
        if rate and count_attempt:
            count, period = SimpleRateThrottle.parse_rate(None, rate)
            key = f"signin:addr:{client_address(request)}"
            history = [t for t in cache.get(key, []) if t > now - period]
            if len(history) >= count:
                return Refusal(math.ceil(history[0] + period - now), "Too many sign-in attempts from your address.")
            cache.set(key, [*history, now], period)
        failures = cache.get(_failure_key(request, username), [])
        recent = [t for t in failures if t > now - settings.SIGNIN_LOCKOUT_SECONDS]
        if len(recent) >= settings.SIGNIN_FAILURES_MAX:
            return Refusal(math.ceil(recent[-settings.SIGNIN_FAILURES_MAX] + settings.SIGNIN_LOCKOUT_SECONDS - now),
                           "Too many failed sign-ins for this account; wait before trying again.")
    except Exception as exc:  # noqa: BLE001
        _cache_failed(exc)
    return None


def signin_failed(request, username: str) -> None:
    if not _cache_usable():
        return
    now = time.time()
    try:
        cache = caches[CACHE_ALIAS]
        key = _failure_key(request, username)
        window = settings.SIGNIN_LOCKOUT_SECONDS
        failures = [t for t in cache.get(key, []) if t > now - window]
        cache.set(key, [*failures[-50:], now], window)
    except Exception as exc:  # noqa: BLE001
        _cache_failed(exc)


def signin_succeeded(request, username: str) -> None:
    if not _cache_usable():
        return
    try:
        caches[CACHE_ALIAS].delete(_failure_key(request, username))
    except Exception as exc:  # noqa: BLE001
        _cache_failed(exc)


def _failure_key(request, username: str) -> str:
    return f"signin:fail:{username.strip().lower()[:150]}:{client_address(request)}"


class SignInLimitBackend(ModelBackend):
    """First in AUTHENTICATION_BACKENDS: every password sign-in (portal, admin) is refused while its username is
    locked out from that address, before the password is checked. A wrong password ends the chain here too (the
    plain ModelBackend listed after it only serves sessions made with it, and must not hash the password again)."""

    def authenticate(self, request, username: str | None = None, password: str | None = None, **kwargs):
        if username is None or password is None:
            return None
        if request is not None and signin_check(request, username, count_attempt=False):
            raise PermissionDenied("too many failed sign-ins")  # stops authenticate(); the failure is recorded
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is None:
            raise PermissionDenied("wrong username or password")
        return user


def _on_login_failed(sender, credentials: dict, request=None, **kwargs) -> None:
    if request is not None and credentials.get("username"):
        signin_failed(request, str(credentials["username"]))


def _on_logged_in(sender, request, user, **kwargs) -> None:
    if request is not None and request.method == "POST" and request.POST.get("username"):
        signin_succeeded(request, str(request.POST["username"]))


def connect_signals() -> None:
    """Failed and successful password sign-ins, whichever view they come through (MarketplaceConfig.ready)."""
    user_login_failed.connect(_on_login_failed, dispatch_uid="throttling.login_failed")
    user_logged_in.connect(_on_logged_in, dispatch_uid="throttling.logged_in")
