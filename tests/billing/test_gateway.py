"""The gateway: configuration from the environment, and the SDK's errors mapped to ours."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from marketplace.billing import gateway


def test_dev_mode_defaults_to_the_local_fake(monkeypatch, settings):
    for name in ("STRIPE_SECRET_KEY", "STRIPE_API_BASE", "STRIPE_WEBHOOK_SECRET", "STRIPE_CONNECT_WEBHOOK_SECRET",
                 "STRIPE_API_VERSION"):
        monkeypatch.delenv(name, raising=False)
    settings.DEV_MODE = True
    config = gateway.load_config()
    assert (config.secret_key, config.api_base, config.api_version, config.mode) == (
        "sk_test_local_fake", "http://127.0.0.1:12111", "2026-10-28.endive", "test")


def test_real_keys_talk_to_stripe(monkeypatch, settings):
    monkeypatch.setenv("STRIPE_SECRET_KEY", "sk_live_abc")
    monkeypatch.delenv("STRIPE_API_BASE", raising=False)
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", "whsec_a")
    monkeypatch.setenv("STRIPE_CONNECT_WEBHOOK_SECRET", "whsec_b")
    settings.DEV_MODE = False
    config = gateway.load_config()
    assert (config.api_base, config.mode, config.webhook_secret, config.connect_webhook_secret) == (
        None, "live", "whsec_a", "whsec_b")


@pytest.mark.parametrize("env, message", [
    ({}, "environment variable STRIPE_SECRET_KEY is required outside dev mode"),
    ({"STRIPE_SECRET_KEY": "pk_live_x"}, "environment variable STRIPE_SECRET_KEY must start with sk_test_"),
    ({"STRIPE_SECRET_KEY": "sk_live_x", "STRIPE_API_BASE": "http://stripe.example"},
     "environment variable STRIPE_API_BASE='http://stripe.example' must be https://"),
    ({"STRIPE_SECRET_KEY": "sk_live_x"}, "environment variable STRIPE_WEBHOOK_SECRET is required but not set"),
])
def test_bad_configuration_fails_with_the_variable_named(monkeypatch, settings, env, message):
    for name in ("STRIPE_SECRET_KEY", "STRIPE_API_BASE", "STRIPE_WEBHOOK_SECRET", "STRIPE_CONNECT_WEBHOOK_SECRET"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings.DEV_MODE = False
    with pytest.raises(ImproperlyConfigured) as info:
        gateway.load_config()
    assert str(info.value).startswith(message)


def test_errors_are_mapped(fake):
    from tests.billing.conftest import CAPTURE_PATH

    with pytest.raises(gateway.CardDeclined) as declined:
        gateway.create_payment_intent(amount_cents=900, currency="usd", customer=None, manual_capture=True,
                                      payment_method="pm_card_chargeDeclinedFraudulent", description="x",
                                      metadata={}, key="m1")
    assert (declined.value.code, declined.value.decline_code, declined.value.http_status) == (
        "card_declined", "fraudulent", 402)
    with pytest.raises(gateway.RequestRejected) as rejected:
        gateway.capture_payment_intent("pi_nope", amount_cents=100, key="m2")
    assert (rejected.value.code, rejected.value.http_status) == ("resource_missing", 404)
    fake.inject_fault(r"/v1/customers", count=1, status=429)
    with pytest.raises(gateway.TransientGatewayError) as limited:
        gateway.create_customer(email="a@example.com", name="a", metadata={}, key="m3")
    assert limited.value.http_status == 429
    fake.inject_fault(CAPTURE_PATH, count=3, status=503)
    with pytest.raises(gateway.TransientGatewayError) as unavailable:
        gateway.capture_payment_intent("pi_any", amount_cents=100, key="m4")
    assert unavailable.value.http_status == 503
    fake.inject_fault(r"/v1/customers", count=3, mode="hang", delay=1.2)
    with pytest.raises(gateway.TransientGatewayError) as timeout:
        gateway.create_customer(email="b@example.com", name="b", metadata={}, key="m5")
    assert timeout.value.http_status is None


def test_verify_webhook(fake):
    from tests.billing.conftest import WEBHOOK_SECRET, sign

    payload = '{"id": "evt_1", "object": "event", "type": "payment_intent.succeeded", "data": {"object": {}}}'
    assert gateway.verify_webhook(payload.encode(), sign(payload), connect=False)["id"] == "evt_1"
    with pytest.raises(gateway.InvalidSignature):
        gateway.verify_webhook(payload.encode(), sign(payload), connect=True)
    with pytest.raises(gateway.InvalidSignature, match="not a Stripe event"):
        gateway.verify_webhook(b"\xff\xfe", sign("\xff"), connect=False)
    assert gateway.load_config().webhook_secret == WEBHOOK_SECRET


def test_system_check_names_the_bad_variable(monkeypatch, settings):
    from marketplace.billing.checks import billing_configuration

    settings.DEV_MODE = True
    monkeypatch.setenv("PLATFORM_FEE_PERCENT", "ten")
    errors = billing_configuration()
    assert [(e.id, e.msg) for e in errors] == [
        ("billing.E001", "environment variable PLATFORM_FEE_PERCENT='ten' is not a decimal number")]
    monkeypatch.setenv("PLATFORM_FEE_PERCENT", "12.5")
    assert billing_configuration() == []
    settings.DEV_MODE = False
    monkeypatch.delenv("STRIPE_SECRET_KEY", raising=False)
    assert [e.msg for e in billing_configuration()] == [
        "environment variable STRIPE_SECRET_KEY is required outside dev mode (payments need a Stripe secret key; "
        "BROKER_DEV=1 uses the local fake)"]
