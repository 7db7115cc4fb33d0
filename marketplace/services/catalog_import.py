"""Import external price catalogs into providers, regions and offers.

`catalog_import(source_dir)` reads every `<cloud>/vms.csv` (SkyPilot schema v8) first, so a malformed file
fails the import before anything is written; then, inside one transaction, it upserts one Provider per cloud,
the Regions the offers use (location and energy zone from broker/data/catalog_regions.csv; grid carbon, PUE
and power price copied from the energy reference Region named by `energy_zone`), and the offers, matched by
(provider, external_id). A re-import updates prices, relists offers that came back and unlists imported offers
that vanished from a cloud that is present in the source (clouds absent from the source are left alone).
Prices are rounded once, here, to the 4 decimals the Offer columns hold (ROUND_HALF_UP).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

from django.db import transaction
from django.utils import timezone

from broker.catalogs.model import CatalogError, CatalogOffer, ImportReport
from broker.catalogs.regions import RegionInfo, RegionMap, default_region_map, load_energy_region_coords
from broker.catalogs.skypilot import AGGREGATORS, read_catalog
from marketplace.errors import ValidationFailed
from marketplace.models import Accelerator, Offer, Provider, Region
from marketplace.services.catalog_version import catalog_bump

CATALOGS = ("skypilot",)
PRICE_STEP = Decimal("0.0001")
BATCH = 500

CLOUD_NAMES = {
    "lambda": "Lambda",
    "nebius": "Nebius",
    "primeintellect": "Prime Intellect",
    "seeweb": "Seeweb",
    "hyperbolic": "Hyperbolic",
    "hyperstack": "Hyperstack",
    "jarvislabs": "JarvisLabs",
    "mithril": "Mithril",
}

# Offer columns an import owns; anything else (nodes_available, min_rental_hours, ...) is left as it is.
IMPORTED_FIELDS = (
    "name",
    "accelerator_id",
    "accelerator_count",
    "accelerator_memory_gb",
    "vcpus",
    "ram_gb",
    "disk_gb",
    "interconnect",
    "inter_node",
    "region_id",
    "price_per_hour",
    "interruptible_price_per_hour",
    "upstream_cloud",
    "driver",
    "nodes_available",
    "min_rental_hours",
    "status",
)


def money(value: Decimal | None) -> Decimal | None:
    return None if value is None else value.quantize(PRICE_STEP, rounding=ROUND_HALF_UP)


def catalog_import(
    source_dir: Path | str, catalog: str = "skypilot", now: datetime | None = None
) -> ImportReport:
    if catalog not in CATALOGS:
        raise ValidationFailed(
            f"Unknown catalog format '{catalog}'; known: {', '.join(CATALOGS)}.",
            fields={"catalog": [f"must be one of {', '.join(CATALOGS)}"]},
        )
    started = time.perf_counter()
    try:
        offers, report = read_catalog(source_dir)
    except CatalogError as exc:
        raise ValidationFailed(
            str(exc),
            code="catalog_malformed",
            fields={"source_dir": [exc.message]},
            extra={"path": exc.path, "line": exc.line},
        ) from None
    counts = write_catalog_offers(
        offers, clouds=[c.cloud for c in report.clouds], catalog=catalog, now=now or timezone.now()
    )
    return dataclasses.replace(report, **counts, seconds=time.perf_counter() - started)


@transaction.atomic
def write_catalog_offers(
    offers: list[CatalogOffer],
    *,
    clouds: Iterable[str],
    catalog: str,
    now: datetime,
    regions: RegionMap | None = None,
) -> dict[str, int]:
    """Upsert providers, regions and offers for the given clouds; returns the database counts."""
    regions = regions or default_region_map()
    counts = {
        "created": 0,
        "updated": 0,
        "unchanged": 0,
        "unlisted": 0,
        "relisted": 0,
        "regions_created": 0,
        "providers_created": 0,
    }
    providers: dict[str, Provider] = {}
    for cloud in clouds:
        providers[cloud], created = provider_for_cloud(cloud)
        counts["providers_created"] += created
    infos = {o.region_key: regions.resolve(o.cloud, o.region, o.zone) for o in offers}
    region_ids, counts["regions_created"] = ensure_regions(infos.values())
    acc_ids = accelerator_ids({o.accelerator for o in offers})
    by_cloud: dict[str, dict[str, dict[str, Any]]] = {cloud: {} for cloud in providers}
    for o in offers:
        by_cloud[o.cloud][o.external_id] = offer_fields(o, acc_ids[o.accelerator], region_ids[o.region_key])
    for cloud, rows in by_cloud.items():
        result = upsert_offers(
            providers[cloud], rows, now=now, source=Offer.Source.IMPORT, catalog_name=catalog
        )
        for key, value in result.items():
            counts[key] += value
    fill_energy_region_coords()
    if counts["created"] or counts["updated"] or counts["unlisted"] or counts["relisted"]:
        catalog_bump()
    return counts


def fill_energy_region_coords() -> int:
    """Give the energy reference regions (seeded without a location) their approximate coordinates."""
    coords = load_energy_region_coords()
    regions = list(Region.objects.filter(key__in=coords, latitude__isnull=True))
    for region in regions:
        region.latitude, region.longitude = coords[region.key]
    Region.objects.bulk_update(regions, ["latitude", "longitude"], batch_size=BATCH)
    return len(regions)


def provider_for_cloud(cloud: str) -> tuple[Provider, bool]:
    provider = Provider.objects.filter(catalog_name=cloud).first()
    if provider is not None:
        return provider, False
    name = CLOUD_NAMES.get(cloud, cloud.replace("_", " ").title())
    if Provider.objects.filter(name=name).exists():
        name = f"{name} ({cloud})"
    kind = Provider.Kind.AGGREGATOR if cloud in AGGREGATORS else Provider.Kind.CLOUD
    slug = cloud if not Provider.objects.filter(slug=cloud).exists() else f"{cloud}-catalog"
    return Provider.objects.create(name=name, slug=slug, kind=kind, catalog_name=cloud), True


def ensure_regions(infos: Iterable[RegionInfo]) -> tuple[dict[str, int], int]:
    """Create or refresh the Regions named by `infos`; returns (key -> id, number created)."""
    infos = {i.key: i for i in infos}
    zones = {i.energy_zone for i in infos.values() if i.energy_zone}
    energy = {r.key: r for r in Region.objects.filter(key__in=zones)}
    missing_zones = zones - set(energy)
    if missing_zones:
        raise ValidationFailed(
            f"catalog_regions.csv names energy zones that are not Regions: {sorted(missing_zones)}",
            code="catalog_regions_invalid",
        )
    existing = {r.key: r for r in Region.objects.filter(key__in=infos)}
    to_create: list[Region] = []
    to_update: list[Region] = []
    for key, info in infos.items():
        values = region_values(info, energy.get(info.energy_zone))
        region = existing.get(key)
        if region is None:
            to_create.append(Region(key=key, **values))
        elif any(getattr(region, f) != v for f, v in values.items()):
            for field, value in values.items():
                setattr(region, field, value)
            to_update.append(region)
    Region.objects.bulk_create(to_create, batch_size=BATCH)
    if to_update:
        Region.objects.bulk_update(to_update, list(REGION_FIELDS), batch_size=BATCH)
    ids = dict(Region.objects.filter(key__in=infos).values_list("key", "id"))
    return ids, len(to_create)


REGION_FIELDS = (
    "name",
    "country",
    "latitude",
    "longitude",
    "energy_zone",
    "grid_ci_gco2_per_kwh",
    "pue",
    "power_price_usd_per_kwh",
)


def region_values(info: RegionInfo, zone: Region | None) -> dict[str, Any]:
    return {
        "name": info.name[:160],
        "country": info.country[:2],
        "latitude": info.latitude,
        "longitude": info.longitude,
        "energy_zone": info.energy_zone,
        "grid_ci_gco2_per_kwh": zone.grid_ci_gco2_per_kwh if zone else None,
        "pue": zone.pue if zone else None,
        "power_price_usd_per_kwh": zone.power_price_usd_per_kwh if zone else None,
    }


def accelerator_ids(names: set[str]) -> dict[str, int]:
    ids = dict(Accelerator.objects.filter(canonical_name__in=names).values_list("canonical_name", "id"))
    missing = names - set(ids)
    if missing:
        raise ValidationFailed(
            f"Accelerators missing from the database (run migrations): {sorted(missing)}",
            code="accelerators_missing",
        )
    return ids


def offer_fields(o: CatalogOffer, accelerator_id: int, region_id: int) -> dict[str, Any]:
    return {
        "name": o.name[:200],
        "accelerator_id": accelerator_id,
        "accelerator_count": o.count,
        "accelerator_memory_gb": o.memory_gb,
        "vcpus": o.vcpus,
        "ram_gb": o.ram_gb,
        "disk_gb": o.disk_gb,
        "interconnect": o.interconnect,
        "inter_node": Offer._meta.get_field("inter_node").default,
        "region_id": region_id,
        "price_per_hour": money(o.price),
        "interruptible_price_per_hour": money(o.interruptible_price),
        "upstream_cloud": o.upstream_cloud,
        "driver": Offer._meta.get_field("driver").default,
        "nodes_available": 1,
        "min_rental_hours": Decimal("0"),
        "status": Offer.Status.LISTED,
    }


def upsert_offers(
    provider: Provider, rows: Mapping[str, dict[str, Any]], *, now: datetime, source: str, catalog_name: str
) -> dict[str, int]:
    """Make the provider's offers of this source match `rows` (external_id -> IMPORTED_FIELDS values).

    Offers of the same source whose external_id is absent are unlisted; nothing is deleted, so orders and
    quotes that point at an offer keep their history.
    """
    existing = {
        o.external_id: o
        for o in Offer.objects.filter(provider=provider, source=source)
        .exclude(external_id="")
        .only("id", "external_id", *IMPORTED_FIELDS)
    }
    counts = {"created": 0, "updated": 0, "unchanged": 0, "unlisted": 0, "relisted": 0}
    to_create: list[Offer] = []
    changed: list[Offer] = []
    seen: list[Offer] = []
    for ext, fields in rows.items():
        offer = existing.get(ext)
        if offer is None:
            to_create.append(
                Offer(
                    provider=provider,
                    external_id=ext,
                    source=source,
                    catalog_name=catalog_name,
                    imported_at=now,
                    **fields,
                )
            )
            continue
        diff = {f: v for f, v in fields.items() if getattr(offer, f) != v}
        if diff.get("status") == Offer.Status.LISTED and offer.status == Offer.Status.UNLISTED:
            counts["relisted"] += 1
        if diff:
            for field, value in diff.items():
                setattr(offer, field, value)
            offer.updated_at = now
            changed.append(offer)
            counts["updated"] += 1
        else:
            counts["unchanged"] += 1
        offer.imported_at = now
        offer.catalog_name = catalog_name
        seen.append(offer)
    Offer.objects.bulk_create(to_create, batch_size=BATCH)
    counts["created"] = len(to_create)
    if changed:
        Offer.objects.bulk_update(
            changed, [*IMPORTED_FIELDS, "updated_at", "imported_at", "catalog_name"], batch_size=BATCH
        )
    changed_ids = {o.id for o in changed}
    unchanged = [o for o in seen if o.id not in changed_ids]
    if unchanged:
        Offer.objects.bulk_update(unchanged, ["imported_at", "catalog_name"], batch_size=BATCH)
    gone = [ext for ext in existing if ext not in rows and existing[ext].status != Offer.Status.UNLISTED]
    if gone:
        counts["unlisted"] = Offer.objects.filter(
            provider=provider, source=source, external_id__in=gone
        ).update(status=Offer.Status.UNLISTED, updated_at=now)
    return counts
