"""Billing policy settings, read from the environment (Stripe's own settings live in gateway.py)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from django.core.exceptions import ImproperlyConfigured

from broker.env import env_int, env_str


def _env_decimal(name: str, default: str, *, minimum: Decimal, maximum: Decimal | None = None) -> Decimal:
    raw = env_str(name, default)
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise ImproperlyConfigured(f"environment variable {name}={raw!r} is not a decimal number") from None
    if not value.is_finite() or value < minimum or (maximum is not None and value > maximum):
        bounds = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
        raise ImproperlyConfigured(f"environment variable {name}={raw!r} must be {bounds}")
    return value


@dataclass(frozen=True)
class BillingSettings:
    platform_fee_percent: Decimal  # PLATFORM_FEE_PERCENT: the platform's cut of every order's charged usage
    credit_warn_usd: Decimal  # BILLING_CREDIT_WARN_USD: a credit-paid order is warned below this balance
    card_hold_max_hours: int  # BILLING_CARD_HOLD_MAX_HOURS: longer orders must pay with credit
    transfer_retry_minutes: int  # BILLING_TRANSFER_RETRY_MINUTES: first retry delay of a failed transfer
    transfer_max_attempts: int  # BILLING_TRANSFER_MAX_ATTEMPTS: then the transfer waits for an operator


def billing_settings() -> BillingSettings:
    return BillingSettings(
        platform_fee_percent=_env_decimal("PLATFORM_FEE_PERCENT", "10", minimum=Decimal(0), maximum=Decimal(100)),
        credit_warn_usd=_env_decimal("BILLING_CREDIT_WARN_USD", "5.00", minimum=Decimal(0)),
        card_hold_max_hours=env_int("BILLING_CARD_HOLD_MAX_HOURS", 144, minimum=1),
        transfer_retry_minutes=env_int("BILLING_TRANSFER_RETRY_MINUTES", 5, minimum=1),
        transfer_max_attempts=env_int("BILLING_TRANSFER_MAX_ATTEMPTS", 8, minimum=1),
    )
