"""The database itself refuses bad rows, even when Python validation is bypassed (SQLite and PostgreSQL)."""

from decimal import Decimal

import pytest
from django.db import DataError, IntegrityError, connection, transaction

from marketplace.models import Offer, User

pytestmark = pytest.mark.django_db


def refused(fn) -> bool:
    """True when the database rejects the write. Usually a check constraint (IntegrityError); on PostgreSQL a
    count of 0 fails one step earlier, computing the generated price per accelerator (division by zero)."""
    try:
        with transaction.atomic():
            fn()
    except (IntegrityError, DataError):
        return True
    return False


@pytest.mark.parametrize(("field", "value"), [
    ("price_per_hour", Decimal("-1")),
    ("price_per_hour", Decimal("100000.0001")),
    ("accelerator_count", 0),
    ("accelerator_count", 10000),
    ("accelerator_memory_gb", 0),
    ("accelerator_memory_gb", -80),
    ("interruptible_price_per_hour", Decimal("-0.01")),
    ("ram_gb", -1),
    ("disk_gb", -1),
    ("min_rental_hours", Decimal("-1")),
    ("status", "bogus"),
])
def test_bad_offer_values_are_refused_on_insert_and_update(make_offer, provider_a, field, value):
    assert refused(lambda: make_offer(provider_a, **{field: value}))
    offer = make_offer(provider_a)
    before = Offer.objects.filter(pk=offer.pk).values().get()
    assert refused(lambda: Offer.objects.filter(pk=offer.pk).update(**{field: value}))
    assert Offer.objects.filter(pk=offer.pk).values().get() == before
    assert Offer.objects.count() == 1


def test_count_beyond_the_column_type_is_refused_too(make_offer, provider_a):
    # PostgreSQL: smallint out of range (DataError); SQLite: the check constraint (IntegrityError).
    expected = DataError if connection.vendor == "postgresql" else IntegrityError
    with pytest.raises(expected), transaction.atomic():
        make_offer(provider_a, accelerator_count=40000)
    assert Offer.objects.count() == 0


def test_external_id_is_unique_per_provider_when_set(make_offer, provider_a, provider_b):
    make_offer(provider_a, external_id="x")
    assert refused(lambda: make_offer(provider_a, external_id="x"))
    make_offer(provider_b, external_id="x")  # another provider may use the same id
    make_offer(provider_a, external_id="")
    make_offer(provider_a, external_id="")  # blank ids do not collide
    other = make_offer(provider_a, external_id="y")
    assert refused(lambda: Offer.objects.filter(pk=other.pk).update(external_id="x"))
    assert sorted(Offer.objects.values_list("provider__slug", "external_id")) == [
        ("provider-a", ""), ("provider-a", ""), ("provider-a", "x"), ("provider-a", "y"), ("provider-b", "x")]


def test_user_role_and_provider_must_agree(provider_a):
    assert refused(lambda: User.objects.create(username="p", role="provider", provider=None))
    assert refused(lambda: User.objects.create(username="c", role="customer", provider=provider_a))
    assert refused(lambda: User.objects.create(username="o", role="operator", provider=provider_a))
    member = User.objects.create(username="m", role="provider", provider=provider_a)
    assert refused(lambda: User.objects.filter(pk=member.pk).update(provider=None))
    assert list(User.objects.values_list("username", "role", "provider__slug")) == [
        ("m", "provider", "provider-a")]


def test_provider_reliability_is_between_0_and_1(provider_a):
    from marketplace.models import Provider

    assert refused(lambda: Provider.objects.filter(pk=provider_a.pk).update(reliability_score=Decimal("1.5")))
    assert refused(lambda: Provider.objects.filter(pk=provider_a.pk).update(reliability_score=Decimal("-0.1")))
    provider_a.refresh_from_db()
    assert provider_a.reliability_score is None
