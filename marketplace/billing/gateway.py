"""The one module that talks to Stripe (the `stripe` SDK, v16). Everything else in billing calls these functions,
which take and return plain data (dicts), and raise the typed errors below instead of the SDK's.

Configuration, from the environment:
- STRIPE_SECRET_KEY               sk_live_… / sk_test_…; required outside dev mode (BROKER_DEV=1 defaults to the
                                  local fake's test key)
- STRIPE_WEBHOOK_SECRET           whsec_… of the platform endpoint /api/v1/stripe/webhook/
- STRIPE_CONNECT_WEBHOOK_SECRET   whsec_… of the Connect endpoint /api/v1/stripe/connect-webhook/
- STRIPE_API_BASE                 override of https://api.stripe.com, e.g. http://127.0.0.1:12111 for the fake
                                  (dev mode defaults to it when no secret key is set)
- STRIPE_API_VERSION              pinned; defaults to the version this SDK was built for
- STRIPE_TIMEOUT_SECONDS          per request (default 20)
- STRIPE_MAX_NETWORK_RETRIES      the SDK's own retries of connection errors, 409 and 5xx, with the same
                                  idempotency key (default 2)
Every POST goes out with the caller's deterministic idempotency key.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import stripe
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from broker.env import env_int, env_str

API_VERSION = "2026-10-28.endive"  # stripe 16.1.0's version, pinned so an SDK upgrade cannot change payloads
DEV_SECRET_KEY = "sk_test_local_fake"
DEV_WEBHOOK_SECRET = "whsec_local_fake_platform"
DEV_CONNECT_WEBHOOK_SECRET = "whsec_local_fake_connect"
DEV_API_BASE = "http://127.0.0.1:12111"
SIGNATURE_TOLERANCE_SECONDS = 300


class GatewayError(Exception):
    """A Stripe call failed. `code` is Stripe's error code when it gave one."""

    def __init__(self, message: str, *, code: str | None = None, http_status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.http_status = http_status


class TransientGatewayError(GatewayError):
    """Connection error, timeout, 429 or 5xx after the SDK's retries: try again later with the same key."""


class CardDeclined(GatewayError):
    """The card was declined (or needs the customer to authenticate): terminal for this payment method."""

    def __init__(self, message: str, *, code: str | None, decline_code: str | None = None,
                 http_status: int | None = None) -> None:
        super().__init__(message, code=code, http_status=http_status)
        self.decline_code = decline_code


class RequestRejected(GatewayError):
    """Stripe refused the request (invalid state or parameters, idempotency conflict): terminal, needs a person."""


class InvalidSignature(Exception):
    """A webhook whose signature does not verify, is too old, or whose body is not an event."""


@dataclass(frozen=True)
class StripeConfig:
    secret_key: str
    webhook_secret: str
    connect_webhook_secret: str
    api_base: str | None
    api_version: str
    timeout: float
    max_network_retries: int

    @property
    def test_mode(self) -> bool:
        return self.secret_key.startswith("sk_test_")

    @property
    def mode(self) -> str:
        return "test" if self.test_mode else "live"


def load_config() -> StripeConfig:
    dev = settings.DEV_MODE
    key = env_str("STRIPE_SECRET_KEY")
    if key is None and not dev:
        raise ImproperlyConfigured("environment variable STRIPE_SECRET_KEY is required outside dev mode "
                                   "(payments need a Stripe secret key; BROKER_DEV=1 uses the local fake)")
    if key is not None and not key.startswith(("sk_test_", "sk_live_", "rk_test_", "rk_live_")):
        raise ImproperlyConfigured("environment variable STRIPE_SECRET_KEY must start with sk_test_, sk_live_, "
                                   "rk_test_ or rk_live_")
    base = env_str("STRIPE_API_BASE", DEV_API_BASE if key is None else None)
    if base is not None and not base.startswith(("http://127.0.0.1", "http://localhost", "https://")):
        raise ImproperlyConfigured(f"environment variable STRIPE_API_BASE={base!r} must be https:// or a local "
                                   "http://127.0.0.1 fake")
    webhook_secret = env_str("STRIPE_WEBHOOK_SECRET", DEV_WEBHOOK_SECRET if dev else None, required=not dev)
    connect_secret = env_str("STRIPE_CONNECT_WEBHOOK_SECRET", DEV_CONNECT_WEBHOOK_SECRET if dev else None,
                             required=not dev)
    return StripeConfig(
        secret_key=key or DEV_SECRET_KEY, webhook_secret=webhook_secret, connect_webhook_secret=connect_secret,
        api_base=base.rstrip("/") if base else None, api_version=env_str("STRIPE_API_VERSION", API_VERSION),
        timeout=float(env_int("STRIPE_TIMEOUT_SECONDS", 20, minimum=1)),
        max_network_retries=env_int("STRIPE_MAX_NETWORK_RETRIES", 2, minimum=0),
    )


@functools.lru_cache(maxsize=8)
def _client(config: StripeConfig) -> stripe.StripeClient:
    bases = {name: config.api_base for name in ("api", "connect", "files", "meter_events")} if config.api_base else None
    return stripe.StripeClient(
        config.secret_key, stripe_version=config.api_version, base_addresses=bases,
        max_network_retries=config.max_network_retries,
        http_client=stripe.RequestsClient(timeout=config.timeout),
    )


def client() -> stripe.StripeClient:
    return _client(load_config())


def _plain(obj: Any) -> dict:
    return obj.to_dict() if hasattr(obj, "to_dict") else dict(obj)


def _call(fn, *args: Any, **kwargs: Any) -> dict:
    """Run an SDK call; translate its errors to ours."""
    try:
        return _plain(fn(*args, **kwargs))
    except stripe.CardError as exc:
        decline = getattr(exc.error, "decline_code", None) if exc.error else None
        raise CardDeclined(exc.user_message or str(exc), code=exc.code, decline_code=decline,
                           http_status=exc.http_status) from exc
    except (stripe.APIConnectionError, stripe.RateLimitError) as exc:
        raise TransientGatewayError(exc.user_message or str(exc) or type(exc).__name__, code=exc.code,
                                    http_status=exc.http_status) from exc
    except stripe.APIError as exc:
        if exc.http_status is None or exc.http_status >= 500:
            raise TransientGatewayError(exc.user_message or str(exc), code=exc.code,
                                        http_status=exc.http_status) from exc
        raise RequestRejected(exc.user_message or str(exc), code=exc.code, http_status=exc.http_status) from exc
    except (stripe.AuthenticationError, stripe.PermissionError) as exc:
        raise ImproperlyConfigured(f"Stripe refused the secret key: {exc.user_message}") from exc
    except stripe.StripeError as exc:  # InvalidRequestError, IdempotencyError, ...
        raise RequestRejected(exc.user_message or str(exc), code=exc.code, http_status=exc.http_status) from exc


def _opts(key: str) -> dict:
    return {"idempotency_key": key}


# -- customers and payment intents ---------------------------------------------------------------

def create_customer(*, email: str, name: str, metadata: dict[str, str], key: str) -> dict:
    return _call(client().v1.customers.create, params={"email": email, "name": name, "metadata": metadata},
                 options=_opts(key))


def create_payment_intent(*, amount_cents: int, currency: str, customer: str, manual_capture: bool,
                          payment_method: str | None, description: str, metadata: dict[str, str],
                          key: str) -> dict:
    """With a payment method the intent is confirmed at once (server-side, off the customer's card on file)."""
    params: dict[str, Any] = {"amount": amount_cents, "currency": currency, "customer": customer,
                              "capture_method": "manual" if manual_capture else "automatic",
                              "description": description, "metadata": metadata,
                              "payment_method_types": ["card"]}
    if payment_method:
        params.update(payment_method=payment_method, confirm=True)
    return _call(client().v1.payment_intents.create, params=params, options=_opts(key))


def retrieve_payment_intent(intent_id: str) -> dict:
    return _call(client().v1.payment_intents.retrieve, intent_id)


def capture_payment_intent(intent_id: str, *, amount_cents: int, key: str) -> dict:
    return _call(client().v1.payment_intents.capture, intent_id, params={"amount_to_capture": amount_cents},
                 options=_opts(key))


def cancel_payment_intent(intent_id: str, *, key: str) -> dict:
    return _call(client().v1.payment_intents.cancel, intent_id, params={"cancellation_reason": "abandoned"},
                 options=_opts(key))


def create_refund(intent_id: str, *, amount_cents: int, metadata: dict[str, str], key: str) -> dict:
    return _call(client().v1.refunds.create,
                 params={"payment_intent": intent_id, "amount": amount_cents, "metadata": metadata},
                 options=_opts(key))


def retrieve_charge(charge_id: str) -> dict:
    return _call(client().v1.charges.retrieve, charge_id)


# -- Connect ---------------------------------------------------------------------------------------

def create_express_account(*, email: str, metadata: dict[str, str], key: str) -> dict:
    return _call(client().v1.accounts.create, params={
        "type": "express", "email": email, "metadata": metadata,
        "capabilities": {"transfers": {"requested": True}}}, options=_opts(key))


def retrieve_account(account_id: str) -> dict:
    return _call(client().v1.accounts.retrieve, account_id)


def create_account_link(account_id: str, *, refresh_url: str, return_url: str, key: str) -> dict:
    return _call(client().v1.account_links.create, params={
        "account": account_id, "refresh_url": refresh_url, "return_url": return_url, "type": "account_onboarding"},
        options=_opts(key))


def create_transfer(*, amount_cents: int, currency: str, destination: str, transfer_group: str,
                    metadata: dict[str, str], key: str) -> dict:
    return _call(client().v1.transfers.create, params={
        "amount": amount_cents, "currency": currency, "destination": destination,
        "transfer_group": transfer_group, "metadata": metadata}, options=_opts(key))


def retrieve_transfer(transfer_id: str) -> dict:
    return _call(client().v1.transfers.retrieve, transfer_id)


def reverse_transfer(transfer_id: str, *, amount_cents: int, metadata: dict[str, str], key: str) -> dict:
    return _call(client().v1.transfers.reversals.create, transfer_id,
                 params={"amount": amount_cents, "metadata": metadata}, options=_opts(key))


def retrieve_payout(payout_id: str, *, account: str) -> dict:
    return _call(client().v1.payouts.retrieve, payout_id, options={"stripe_account": account})


# -- events and webhooks -----------------------------------------------------------------------------

def retrieve_event(event_id: str, *, account: str | None = None) -> dict:
    return _call(client().v1.events.retrieve, event_id, options={"stripe_account": account} if account else None)


def list_events(*, limit: int = 100, types: list[str] | None = None) -> list[dict]:
    """The most recent events of the platform account, newest first (the catch-up for missed webhooks)."""
    params: dict[str, Any] = {"limit": limit}
    if types:
        params["types"] = types
    return _call(client().v1.events.list, params=params).get("data", [])


def verify_webhook(payload: bytes, signature: str | None, *, connect: bool) -> dict:
    """The event in a webhook request, after checking its Stripe-Signature on the raw body (HMAC-SHA256 with the
    endpoint's secret, timestamp within 5 minutes). Raises InvalidSignature."""
    config = load_config()
    secret = config.connect_webhook_secret if connect else config.webhook_secret
    try:
        event = stripe.Webhook.construct_event(payload, signature, secret, tolerance=SIGNATURE_TOLERANCE_SECONDS)
    except stripe.SignatureVerificationError as exc:
        raise InvalidSignature(exc.user_message or str(exc)) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidSignature(f"the body is not a Stripe event: {exc}") from None
    data = _plain(event)
    if not isinstance(data.get("id"), str) or not isinstance(data.get("type"), str):
        raise InvalidSignature("the body is not a Stripe event (no id or type)")
    return data
