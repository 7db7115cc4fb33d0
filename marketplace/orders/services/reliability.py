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
from functools import cache

from marketplace.db_prepared import prepared_cursor
from marketplace.models import Offer, Provider

ALPHA = Decimal("0.2")
PRIOR = Decimal("0.5")
FAST_S = 300.0
SLOW_S = 1800.0


def provisioning_value(seconds_to_running: float) -> Decimal:
    if seconds_to_running <= FAST_S:
        return Decimal(1)
    late = min(1.0, (seconds_to_running - FAST_S) / (SLOW_S - FAST_S))
    return (Decimal(1) - Decimal(str(round(late, 6))) / 2).quantize(Decimal("0.000001"))


def reliability_observe(offer_id: int, value: Decimal | int, *, provider_id: int | None = None) -> None:
    """Fold one observation into the score of the offer's provider (`provider_id` when the caller knows it): one
    UPDATE (its row lock serialises observers). Written as SQL, the same text every time (every order that comes up
    runs it; the ORM spent more time building the expression than the database spends running it)."""
    by_offer = provider_id is None
    with prepared_cursor() as cursor:
        cursor.execute(_observe_sql(by_offer=by_offer),
                       [*observe_params(value), offer_id if by_offer else provider_id])


def observe_params(value: Decimal | int) -> list[Decimal]:
    """The parameters of observe_update's SET, before those of its condition."""
    return [PRIOR, ALPHA, Decimal(value), PRIOR]


def observe_target(*, by_offer: bool) -> str:
    """The condition on the provider row: its id (one parameter), or its offer's id (one parameter)."""
    return f'"id" = (SELECT "provider_id" FROM "{Offer._meta.db_table}" WHERE "id" = %s)' if by_offer else '"id" = %s'


def observe_update(where: str) -> str:
    """score <- ROUND(current + ALPHA * (value - current), 3), current = COALESCE(score, PRIOR), on the provider
    rows of `where`; the decimals are cast so that PostgreSQL computes in numeric (SQLite in its REAL, as the column
    is stored there). Its parameters: observe_params(value), then those of `where`."""
    number = "CAST(%s AS NUMERIC)"
    current = f'COALESCE("reliability_score", {number})'
    return (f'UPDATE "{Provider._meta.db_table}" SET "reliability_score" = '
            f"ROUND({current} + {number} * ({number} - {current}), 3) WHERE {where}")


@cache
def _observe_sql(*, by_offer: bool) -> str:
    return observe_update(observe_target(by_offer=by_offer))
