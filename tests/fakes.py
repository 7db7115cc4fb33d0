"""Fixtures and helpers shared by several test areas: the fake Stripe server (test mode, the real SDK talks to it
through STRIPE_API_BASE) and Stripe-style webhook signing. Test packages use them by importing them into their
conftest.py (`from tests.fakes import fake, fake_server  # noqa: F401`)."""

from __future__ import annotations

import json

import pytest
import stripe

from marketplace.billing.fake_stripe import FakeStripe

SECRET_KEY = "sk_test_billing_tests"
WEBHOOK_SECRET = "whsec_test_platform_secret"
CONNECT_SECRET = "whsec_test_connect_secret"
CAPTURE_PATH = r"/v1/payment_intents/\w+/capture"

# The environment a process needs to use the fake (the test process gets it from `fake`; a worker process
# started by a test gets it with stripe_env(fake)).
def stripe_env(fake_server: FakeStripe) -> dict[str, str]:
    return {"STRIPE_SECRET_KEY": SECRET_KEY, "STRIPE_API_BASE": fake_server.url,
            "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET, "STRIPE_CONNECT_WEBHOOK_SECRET": CONNECT_SECRET,
            "STRIPE_MAX_NETWORK_RETRIES": "2", "STRIPE_TIMEOUT_SECONDS": "1", "PLATFORM_FEE_PERCENT": "10",
            "BILLING_CREDIT_WARN_USD": "5.00"}


@pytest.fixture(scope="session")
def fake_server():
    with FakeStripe() as fake:
        yield fake


@pytest.fixture
def fake(fake_server, monkeypatch):
    """The fake, emptied, with the broker pointed at it (fresh env => fresh SDK client in the gateway)."""
    fake_server.reset()
    for name, value in stripe_env(fake_server).items():
        monkeypatch.setenv(name, value)
    return fake_server


def sign(payload: str, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> str:
    return stripe.WebhookSignature.generate_signature_header(payload, secret, timestamp=timestamp)


def post_event(client, event: dict, *, connect: bool = False, secret: str | None = None,
               timestamp: int | None = None, payload: str | None = None, signature: str | None = None):
    """POST an event to the real webhook view, signed like Stripe signs it."""
    body = payload if payload is not None else json.dumps(event)
    header = signature if signature is not None else sign(
        body, secret or (CONNECT_SECRET if connect else WEBHOOK_SECRET), timestamp)
    url = "/api/v1/stripe/connect-webhook/" if connect else "/api/v1/stripe/webhook/"
    return client.post(url, data=body, content_type="application/json", HTTP_STRIPE_SIGNATURE=header)
