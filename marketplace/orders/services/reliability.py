"""Provider reliability from observed outcomes: an exponential moving average into Provider.reliability_score.

Each observation is a value in 0..1:
- provisioned and running: 1.0 when it took at most FAST_S to run, falling linearly to 0.5 at SLOW_S and beyond;
- failed to provision (boot failure, capacity gone, stayed pending too long, unreachable): 0.0;
- a run that ended because the provider lost or killed it: 0.0; a run that completed: 1.0.
A job that exits non-zero is the customer's fault and is not observed; nor is a customer's cancel.
score <- round(score + ALPHA x (value - score), 3), starting from PRIOR for a provider never observed.
Call inside the transaction of the transition that observed it, after every other lock (order, offers).
"""

from __future__ import annotations

from decimal import Decimal

from django.db import models
from django.db.models import ExpressionWrapper, F, Subquery, Value
from django.db.models.functions import Coalesce, Round

from marketplace.models import Offer, Provider

ALPHA = Decimal("0.2")
PRIOR = Decimal("0.5")
FAST_S = 300.0
SLOW_S = 1800.0
SCORE = models.DecimalField(max_digits=4, decimal_places=3)


def provisioning_value(seconds_to_running: float) -> Decimal:
    if seconds_to_running <= FAST_S:
        return Decimal(1)
    late = min(1.0, (seconds_to_running - FAST_S) / (SLOW_S - FAST_S))
    return (Decimal(1) - Decimal(str(round(late, 6))) / 2).quantize(Decimal("0.000001"))


def reliability_observe(offer_id: int, value: Decimal | int, *, provider_id: int | None = None) -> None:
    """Fold one observation into the score of the offer's provider (`provider_id` when the caller knows it): one
    UPDATE (its row lock serialises observers)."""
    current = Coalesce(F("reliability_score"), Value(PRIOR), output_field=SCORE)
    provider = provider_id if provider_id is not None else Subquery(
        Offer.objects.filter(pk=offer_id).values("provider_id"))
    Provider.objects.filter(pk=provider).update(reliability_score=Round(
        ExpressionWrapper(current + Value(ALPHA) * (Value(Decimal(value)) - current), output_field=SCORE),
        precision=3, output_field=SCORE))
