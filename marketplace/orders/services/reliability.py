"""Provider reliability from observed outcomes: an exponential moving average into Provider.reliability_score.

Each observation is a value in 0..1:
- provisioned and running: 1.0 when it took at most FAST_S to run, falling linearly to 0.5 at SLOW_S and beyond;
- failed to provision (boot failure, capacity gone, stayed pending too long, unreachable): 0.0;
- a run that ended because the provider lost or killed it: 0.0; a run that completed: 1.0.
A job that exits non-zero is the customer's fault and is not observed; nor is a customer's cancel.
score <- score + ALPHA x (value - score), starting from PRIOR for a provider never observed; 3 decimals.
Call inside the transaction of the transition that observed it, after every other lock (order, offers).
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from marketplace.models import Provider

ALPHA = Decimal("0.2")
PRIOR = Decimal("0.5")
FAST_S = 300.0
SLOW_S = 1800.0
STEP = Decimal("0.001")


def provisioning_value(seconds_to_running: float) -> Decimal:
    if seconds_to_running <= FAST_S:
        return Decimal(1)
    late = min(1.0, (seconds_to_running - FAST_S) / (SLOW_S - FAST_S))
    return (Decimal(1) - Decimal(str(round(late, 6))) / 2).quantize(Decimal("0.000001"))


def reliability_observe(provider_id: int, value: Decimal) -> Decimal:
    """Fold one observation into the provider's score; returns the new score."""
    provider = Provider.objects.select_for_update().only("pk", "reliability_score").get(pk=provider_id)
    old = provider.reliability_score if provider.reliability_score is not None else PRIOR
    new = (old + ALPHA * (Decimal(value) - old)).quantize(STEP, rounding=ROUND_HALF_UP)
    new = min(Decimal(1), max(Decimal(0), new))
    Provider.objects.filter(pk=provider_id).update(reliability_score=new)
    return new
