"""Load the demo: users of every role, the demo offers (marketplace/demo/offers.csv), an API token for alice, and
a saved test card for alice (DEMO_CARD, Stripe's test PaymentMethod) so her orders can be paid by card.

Idempotent: users, providers, regions and offers are matched by natural keys (username, provider slug, region
key, (provider, external_id)); running it twice leaves the same rows. Passwords are reset to DEMO_PASSWORD.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.db import transaction
from django.utils import timezone

from broker.catalogs.regions import RegionInfo, default_region_map
from marketplace.demo import OFFERS_CSV, DemoOffer, read_demo_offers
from marketplace.models import ApiToken, Offer, Provider, Region, User
from marketplace.models.accounts import Role
from marketplace.services.catalog_import import (
    accelerator_ids,
    ensure_regions,
    fill_energy_region_coords,
    money,
    upsert_offers,
)
from marketplace.services.catalog_version import catalog_bump
from marketplace.services.tokens import token_create

DEMO_PASSWORD = "demo-pass-123"  # local demo only; printed by `make run` / `manage.py load_demo`
DEMO_PROVIDER_SLUG = "demo-gpu-host"
DEMO_TOKEN_NAME = "demo"
DEMO_CUSTOMER = "alice"
DEMO_CARD = "pm_card_visa"  # test mode only (the fake Stripe, or Stripe with a test key)

# Policies of the hand-written providers (catalog providers keep the model defaults).
PROVIDER_POLICY: dict[str, dict[str, Any]] = {
    "demo-gpu-host": {
        "verification_status": Provider.Verification.VERIFIED,
        "reliability_score": Decimal("0.97"),
    },
    "campus-hpc": {
        "min_rental_hours": Decimal("1"),
        "interruptible_allowed": False,
        "allowed_workload_kinds": ["hpc", "llm_training", "fine_tuning", "batch"],
        "verification_status": Provider.Verification.VERIFIED,
        "reliability_score": Decimal("0.99"),
    },
}

USERS = (
    ("admin", Role.OPERATOR, {"is_staff": True, "is_superuser": True, "email": "admin@example.com"}),
    ("alice", Role.CUSTOMER, {"email": "alice@example.com"}),
    ("bob", Role.PROVIDER, {"email": "bob@example.com"}),
)


@dataclass(frozen=True, slots=True)
class DemoSummary:
    users_created: int
    providers: int
    providers_created: int
    offers: int
    synthetic_offers: int
    offers_created: int
    offers_updated: int
    regions_created: int


def demo_load(path: Path = OFFERS_CSV, now: datetime | None = None) -> DemoSummary:
    return _load(read_demo_offers(path), now or timezone.now())


@transaction.atomic
def _load(rows: list[DemoOffer], now: datetime) -> DemoSummary:
    providers, providers_created = _providers(rows)
    users_created = _users(
        providers[DEMO_PROVIDER_SLUG]
        if DEMO_PROVIDER_SLUG in providers
        else _provider(DEMO_PROVIDER_SLUG, "Demo GPU Host", "gpu_host", "")[0]
    )
    _demo_card()
    region_ids, regions_created = ensure_regions(_region_infos({r.region_key for r in rows}))
    acc_ids = accelerator_ids({r.accelerator for r in rows})
    grouped: dict[tuple[str, str, str], dict[str, dict[str, Any]]] = defaultdict(dict)
    for r in rows:
        source = Offer.Source.IMPORT if r.catalog else Offer.Source.PROVIDER
        grouped[(r.provider, source, r.catalog)][r.external_id] = _fields(r, acc_ids, region_ids)
    created = updated = 0
    for (slug, source, catalog), fields in grouped.items():
        counts = upsert_offers(providers[slug], fields, now=now, source=source, catalog_name=catalog)
        created += counts["created"]
        updated += counts["updated"] + counts["relisted"]
    fill_energy_region_coords()
    if created or updated:
        catalog_bump()
    return DemoSummary(
        users_created=users_created,
        providers=len(providers),
        providers_created=providers_created,
        offers=len(rows),
        synthetic_offers=sum(r.synthetic for r in rows),
        offers_created=created,
        offers_updated=updated,
        regions_created=regions_created,
    )


def _provider(slug: str, name: str, kind: str, catalog: str) -> tuple[Provider, bool]:
    lookup = {"catalog_name": slug} if catalog else {"slug": slug}
    provider = Provider.objects.filter(**lookup).first()
    created = provider is None
    if created:
        provider = Provider.objects.create(
            slug=slug, name=name, kind=kind, catalog_name=slug if catalog else ""
        )
    policy = PROVIDER_POLICY.get(slug, {})
    if any(getattr(provider, k) != v for k, v in policy.items()):
        Provider.objects.filter(pk=provider.pk).update(**policy)
        provider.refresh_from_db()
    return provider, created


def _providers(rows: list[DemoOffer]) -> tuple[dict[str, Provider], int]:
    out: dict[str, Provider] = {}
    created = 0
    for r in rows:
        if r.provider not in out:
            out[r.provider], was_created = _provider(r.provider, r.provider_name, r.provider_kind, r.catalog)
            created += was_created
    return out, created


def _users(demo_provider: Provider) -> int:
    created = 0
    for username, role, extra in USERS:
        user = User.objects.filter(username=username).first()
        if user is None:
            user = User(username=username)
            created += 1
        user.role = role
        user.provider = demo_provider if role == Role.PROVIDER else None
        for key, value in extra.items():
            setattr(user, key, value)
        user.set_password(DEMO_PASSWORD)
        user.save()
    return created


def _demo_card() -> None:
    """alice pays by card by default. Prepaid credit is not granted here: billing has no operator grant (credit
    only comes from a top-up confirmed by Stripe's webhook), so the demo tops up through the portal or the API."""
    from marketplace.billing.services.customers import billing_profile_update, customer_billing

    alice = User.objects.get(username=DEMO_CUSTOMER)
    if customer_billing(alice).default_payment_method != DEMO_CARD:
        billing_profile_update(alice, default_payment_method=DEMO_CARD)


def _region_infos(keys: set[str]) -> list[RegionInfo]:
    """Catalog regions come from catalog_regions.csv; energy reference regions (cn-gansu-qingyang) exist."""
    by_key = {info.key: info for info in default_region_map().rows.values()}
    existing = set(Region.objects.filter(key__in=keys).values_list("key", flat=True))
    infos = []
    for key in sorted(keys):
        if key in by_key:
            infos.append(by_key[key])
        elif key not in existing:
            infos.append(
                RegionInfo(key=key, name=key, country="", latitude=None, longitude=None, energy_zone="")
            )
    return infos


def _fields(r: DemoOffer, acc_ids: dict[str, int], region_ids: dict[str, int]) -> dict[str, Any]:
    region_id = region_ids.get(r.region_key) or Region.objects.values_list("id", flat=True).get(
        key=r.region_key
    )
    return {
        "name": r.name,
        "accelerator_id": acc_ids[r.accelerator],
        "accelerator_count": r.count,
        "accelerator_memory_gb": r.memory_gb,
        "vcpus": r.vcpus,
        "ram_gb": r.ram_gb,
        "disk_gb": r.disk_gb,
        "interconnect": r.interconnect,
        "inter_node": r.inter_node,
        "region_id": region_id,
        "price_per_hour": money(r.price_per_hour),
        "interruptible_price_per_hour": money(r.interruptible_price_per_hour),
        "upstream_cloud": r.upstream_cloud,
        "driver": r.driver,
        "nodes_available": r.nodes_available,
        "min_rental_hours": r.min_rental_hours,
        "status": Offer.Status.LISTED,
    }


@transaction.atomic
def demo_token(username: str = "alice") -> str:
    """A fresh API key for the demo user; their earlier demo tokens are revoked (keys are stored hashed)."""
    user = User.objects.get(username=username)
    ApiToken.objects.filter(user=user, name=DEMO_TOKEN_NAME, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )
    _, key = token_create(user=user, name=DEMO_TOKEN_NAME)
    return key
