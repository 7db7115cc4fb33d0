"""Demo data in the project's own offer format (offers.csv; provenance in README.md here).

Rows with `synthetic=no` are derived from the SkyPilot catalogs by build_demo_offers.py; rows with
`synthetic=yes` are hand-written demo offers for hardware those clouds do not carry. Lines starting with '#'
are comments.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

DEMO_DIR = Path(__file__).resolve().parent
OFFERS_CSV = DEMO_DIR / "offers.csv"

COLUMNS = (
    "provider",
    "provider_name",
    "provider_kind",
    "catalog",
    "external_id",
    "name",
    "accelerator",
    "count",
    "memory_gb",
    "vcpus",
    "ram_gb",
    "disk_gb",
    "interconnect",
    "inter_node",
    "region_key",
    "price_per_hour",
    "interruptible_price_per_hour",
    "upstream_cloud",
    "driver",
    "nodes_available",
    "min_rental_hours",
    "synthetic",
)


@dataclass(frozen=True, slots=True)
class DemoOffer:
    provider: str  # provider slug (= the cloud's catalog name for derived rows)
    provider_name: str
    provider_kind: str
    catalog: str  # 'skypilot' for derived rows, '' for hand-written ones
    external_id: str
    name: str
    accelerator: str  # canonical accelerator name
    count: int
    memory_gb: float
    vcpus: int
    ram_gb: float
    disk_gb: float
    interconnect: str
    inter_node: str
    region_key: str
    price_per_hour: Decimal
    interruptible_price_per_hour: Decimal | None
    upstream_cloud: str
    driver: str
    nodes_available: int
    min_rental_hours: Decimal
    synthetic: bool


def parse_row(row: dict[str, str]) -> DemoOffer:
    spot = row["interruptible_price_per_hour"].strip()
    return DemoOffer(
        provider=row["provider"],
        provider_name=row["provider_name"],
        provider_kind=row["provider_kind"],
        catalog=row["catalog"],
        external_id=row["external_id"],
        name=row["name"],
        accelerator=row["accelerator"],
        count=int(row["count"]),
        memory_gb=float(row["memory_gb"]),
        vcpus=int(row["vcpus"]),
        ram_gb=float(row["ram_gb"]),
        disk_gb=float(row["disk_gb"]),
        interconnect=row["interconnect"],
        inter_node=row["inter_node"],
        region_key=row["region_key"],
        price_per_hour=Decimal(row["price_per_hour"]),
        interruptible_price_per_hour=Decimal(spot) if spot else None,
        upstream_cloud=row["upstream_cloud"],
        driver=row["driver"],
        nodes_available=int(row["nodes_available"]),
        min_rental_hours=Decimal(row["min_rental_hours"]),
        synthetic=row["synthetic"] == "yes",
    )


def _data_lines(fh: Iterable[str]) -> Iterable[str]:
    return (line for line in fh if not line.startswith("#"))


def read_demo_offers(path: Path = OFFERS_CSV) -> list[DemoOffer]:
    with open(path, newline="", encoding="utf-8") as fh:
        return [parse_row(r) for r in csv.DictReader(_data_lines(fh))]


def format_row(o: DemoOffer) -> dict[str, str]:
    return {
        "provider": o.provider,
        "provider_name": o.provider_name,
        "provider_kind": o.provider_kind,
        "catalog": o.catalog,
        "external_id": o.external_id,
        "name": o.name,
        "accelerator": o.accelerator,
        "count": str(o.count),
        "memory_gb": f"{o.memory_gb:g}",
        "vcpus": str(o.vcpus),
        "ram_gb": f"{o.ram_gb:g}",
        "disk_gb": f"{o.disk_gb:g}",
        "interconnect": o.interconnect,
        "inter_node": o.inter_node,
        "region_key": o.region_key,
        "price_per_hour": str(o.price_per_hour),
        "interruptible_price_per_hour": ""
        if o.interruptible_price_per_hour is None
        else str(o.interruptible_price_per_hour),
        "upstream_cloud": o.upstream_cloud,
        "driver": o.driver,
        "nodes_available": str(o.nodes_available),
        "min_rental_hours": str(o.min_rental_hours),
        "synthetic": "yes" if o.synthetic else "no",
    }
