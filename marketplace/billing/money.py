"""Money arithmetic. Amounts are `Decimal` in a currency's major unit (USD dollars) everywhere in billing.

Rounding happens once, at a single documented point: when an amount is about to be *posted* (to the ledger, or
sent to Stripe in cents), with `ROUND_HALF_UP` to the cent. Metered usage arrives unrounded and cumulative
(e.g. 12.34567 USD so far); billing rounds the cumulative total and posts the difference from what it had
posted before, so rounding never accumulates drift across meter readings. The platform fee is rounded the same
way and the provider's share is the rest (fee + share == charged, exactly).
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")
ZERO = Decimal("0.00")
CURRENCY = "usd"  # the one currency orders are priced in; accounts carry it so more can be added later
STRIPE_MINIMUM = {"usd": Decimal("0.50")}  # the smallest amount Stripe charges or captures


def round_money(amount: Decimal) -> Decimal:
    if not isinstance(amount, Decimal):
        raise TypeError(f"money must be Decimal, got {type(amount).__name__}")
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


def to_cents(amount: Decimal) -> int:
    """An already-rounded amount in Stripe's smallest unit."""
    rounded = round_money(amount)
    if rounded != amount:
        raise ValueError(f"{amount} is not rounded to the cent")
    return int(rounded * 100)


def from_cents(cents: int) -> Decimal:
    return (Decimal(cents) / 100).quantize(CENT)


def platform_fee(charged: Decimal, percent: Decimal) -> tuple[Decimal, Decimal]:
    """(fee, provider share) of a charged amount: fee rounded half-up to the cent, share the exact rest."""
    fee = round_money(charged * percent / Decimal(100))
    return fee, charged - fee
