"""Provider reliability: the one-statement UPDATE (reliability.py, written as SQL) folds observations in exactly as
documented, score <- round(score + 0.2 x (value - score), 3) from a prior of 0.5, on PostgreSQL and on SQLite, by
offer or by provider, without touching other providers."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

import pytest

from marketplace.models import Provider
from marketplace.orders.services.reliability import provisioning_value, reliability_observe

pytestmark = pytest.mark.django_db


def expected(values: list[Decimal]) -> Decimal:
    score = Decimal("0.5")
    for value in values:
        score = (score + Decimal("0.2") * (value - score)).quantize(Decimal("0.001"), rounding=ROUND_HALF_UP)
    return score


def test_observations_fold_into_the_score_as_documented(provider_a, provider_b, make_node_offer):
    offer = make_node_offer(provider_a)
    values = [Decimal(1), Decimal(1), Decimal(0), provisioning_value(1000.0), Decimal(1), Decimal(0), Decimal(0)]
    for n, value in enumerate(values):
        if n % 2:
            reliability_observe(offer.pk, value, provider_id=provider_a.pk)
        else:
            reliability_observe(offer.pk, value)
        assert Provider.objects.get(pk=provider_a.pk).reliability_score == expected(values[: n + 1])
    assert Provider.objects.get(pk=provider_b.pk).reliability_score is None  # another provider: never observed


def test_an_unknown_offer_changes_nothing(provider_a, make_node_offer):
    make_node_offer(provider_a)
    reliability_observe(10**9, Decimal(1))
    assert Provider.objects.get(pk=provider_a.pk).reliability_score is None
