"""Shared fixtures: users of every role with API clients, and small reference objects."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from rest_framework.test import APIClient

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(autouse=True, scope="session")
def _fast_password_hashing():
    """Passwords hashed with one PBKDF2 iteration in the test process (tests/hashers.py says why). Through
    override_settings, whose setting_changed signal clears Django's cached hashers."""
    from django.test import override_settings

    with override_settings(PASSWORD_HASHERS=["tests.hashers.OneIterationPBKDF2PasswordHasher"]):
        yield


@pytest.fixture(autouse=True, scope="session")
def _fast_flush_and_restore():
    """Transactional tests end with a flush and start with the serialized reference rows restored; both made
    faster for the test process (tests/fast_db.py)."""
    from tests.fast_db import fast_flush_and_restore

    with fast_flush_and_restore():
        yield


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.exists():
        pytest.skip(f"shared reference data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture
def make_provider(db):
    from marketplace.models import Provider

    def make(name: str = "Acme GPU", **kw):
        slug = kw.pop("slug", name.lower().replace(" ", "-"))
        return Provider.objects.create(name=name, slug=slug, **kw)

    return make


@pytest.fixture
def make_user(db):
    from marketplace.models import User
    from marketplace.models.accounts import Role

    def make(username: str, role: str = Role.CUSTOMER, provider=None, **kw):
        return User.objects.create_user(username=username, password="pw-" + username + "-123", role=role,
                                        provider=provider, **kw)

    return make


@pytest.fixture
def client_for():
    """An APIClient authenticated with a fresh API token of the given user."""
    from marketplace.services.tokens import token_create

    def make(user) -> APIClient:
        _, key = token_create(user=user, name="test")
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
        return client

    return make


@pytest.fixture
def provider_a(make_provider):
    return make_provider("Provider A")


@pytest.fixture
def provider_b(make_provider):
    return make_provider("Provider B")


@pytest.fixture
def member_a(make_user, provider_a):
    return make_user("member_a", role="provider", provider=provider_a)


@pytest.fixture
def member_b(make_user, provider_b):
    return make_user("member_b", role="provider", provider=provider_b)


@pytest.fixture
def customer(make_user):
    return make_user("customer")


@pytest.fixture
def operator(make_user):
    return make_user("operator", role="operator", is_staff=True)


@pytest.fixture
def anon() -> APIClient:
    return APIClient()


def ensure_reference_data() -> None:
    """The accelerator and energy-region rows that migration 0002 seeds. A transactional test's flush can leave
    the database without them when the serialized copy is not restored (seen after browser tests), so seed
    them again, idempotently, and drop the caches that hold their ids."""
    from marketplace.models import Accelerator, Region

    if Region.objects.filter(key="us-east-virginia").exists() and Accelerator.objects.exists():
        return
    from marketplace.selectors import offers as offer_selectors
    from marketplace.selectors.snapshot import clear_snapshot_cache
    from marketplace.services.reference import sync_accelerators, sync_energy_regions

    sync_accelerators(Accelerator)
    sync_energy_regions(Region)
    offer_selectors._ACCELERATOR_IDS.clear()
    clear_snapshot_cache()


@pytest.fixture
def region(db):
    from marketplace.models import Region

    ensure_reference_data()
    return Region.objects.get(key="us-east-virginia")


@pytest.fixture
def h100(db):
    from marketplace.models import Accelerator

    ensure_reference_data()
    return Accelerator.objects.get(canonical_name="NVIDIA H100-SXM5-80GB")


@pytest.fixture
def make_offer(db, region, h100):
    from marketplace.models import Offer

    def make(provider, **kw):
        defaults = dict(name="node", accelerator=h100, accelerator_count=8, accelerator_memory_gb=80,
                        vcpus=96, ram_gb=1024, disk_gb=2000, region=region, price_per_hour=Decimal("20.0000"),
                        nodes_available=2, status="listed")
        defaults.update(kw)
        return Offer.objects.create(provider=provider, **defaults)

    return make


def pytest_collection_modifyitems(items):
    """Every transactional test (live_server, transactional_db, transaction=True) also restores the serialized
    database after it flushes, so the reference rows seeded by migrations (accelerators, regions, content types)
    are back for the next test whatever order the tests run in."""
    for item in items:
        marker = item.get_closest_marker("django_db")
        names = getattr(item, "fixturenames", ())
        transactional = ("live_server" in names or "transactional_db" in names
                         or (marker is not None and marker.kwargs.get("transaction")))
        if transactional and not (marker is not None and marker.kwargs.get("serialized_rollback")):
            kwargs = dict(marker.kwargs) if marker is not None else {}
            kwargs.update(transaction=True, serialized_rollback=True)
            item.add_marker(pytest.mark.django_db(**kwargs), append=False)  # must be the closest marker
