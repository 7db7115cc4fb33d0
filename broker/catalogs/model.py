"""The catalog readers' output: offers in the product's terms, and a report of what was read and skipped."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from types import MappingProxyType
from typing import Any

# Reasons a catalog row does not become an offer (the report counts rows per reason).
SKIP_CPU_ONLY = "cpu_only"
SKIP_NO_REGION = "no_region"
SKIP_UNKNOWN_ACCELERATOR = "unknown_accelerator"
SKIP_NO_PRICE = "no_price"
SKIP_COUNT_OUT_OF_RANGE = "count_out_of_range"
SKIP_SPOT_WITHOUT_ON_DEMAND = "spot_without_on_demand"
SKIP_DUPLICATE = "duplicate"


class CatalogError(Exception):
    """A malformed catalog file; the whole import is refused."""

    def __init__(self, path: Path | str, line: int, message: str):
        super().__init__(f"{path}, line {line}: {message}")
        self.path = str(path)
        self.line = line
        self.message = message


def _frozen(mapping: Mapping[str, int] | None) -> Mapping[str, int]:
    return MappingProxyType(dict(sorted((mapping or {}).items())))


@dataclass(frozen=True, slots=True)
class CatalogOffer:
    cloud: str
    external_id: str  # deterministic and unique per cloud: "<instance type>@<region>[/<zone>]"
    name: str  # the instance type
    accelerator: str  # canonical name from broker/data/accelerators.csv
    count: int
    memory_gb: float  # per accelerator
    vcpus: int
    ram_gb: float
    disk_gb: float
    interconnect: str  # "nvlink" | "pcie"
    region: str  # the catalog's region
    zone: str  # the catalog's zone ('' when none)
    region_key: str  # our Region.key
    upstream_cloud: str  # for aggregator rows: the cloud that runs the machine; else ''
    price: Decimal  # USD per node-hour, on demand
    interruptible_price: Decimal | None  # USD per node-hour, spot; None when not offered


@dataclass(frozen=True, slots=True)
class CloudReport:
    cloud: str
    rows_read: int
    rows_with_accelerator: int
    offers: int  # offers produced (after merging spot rows)
    spot_merged: int = 0  # separate spot rows folded into their on-demand twin
    skipped: Mapping[str, int] = field(default_factory=dict)
    unknown_accelerators: Mapping[str, int] = field(default_factory=dict)  # catalog name -> rows
    unmapped_regions: tuple[str, ...] = ()  # regions with no row in catalog_regions.csv

    def __post_init__(self) -> None:
        object.__setattr__(self, "skipped", _frozen(self.skipped))
        object.__setattr__(self, "unknown_accelerators", _frozen(self.unknown_accelerators))

    def as_dict(self) -> dict[str, Any]:
        return {
            "cloud": self.cloud,
            "rows_read": self.rows_read,
            "rows_with_accelerator": self.rows_with_accelerator,
            "offers": self.offers,
            "spot_merged": self.spot_merged,
            "skipped": dict(self.skipped),
            "unknown_accelerators": dict(self.unknown_accelerators),
            "unmapped_regions": list(self.unmapped_regions),
        }


@dataclass(frozen=True, slots=True)
class ImportReport:
    catalog: str
    source: str
    clouds: tuple[CloudReport, ...]
    # Filled in by the database import (zero when only reading):
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    unlisted: int = 0
    relisted: int = 0
    regions_created: int = 0
    providers_created: int = 0
    seconds: float = 0.0

    @property
    def rows_read(self) -> int:
        return sum(c.rows_read for c in self.clouds)

    @property
    def rows_with_accelerator(self) -> int:
        return sum(c.rows_with_accelerator for c in self.clouds)

    @property
    def offers(self) -> int:
        return sum(c.offers for c in self.clouds)

    @property
    def spot_merged(self) -> int:
        return sum(c.spot_merged for c in self.clouds)

    @property
    def skipped(self) -> dict[str, int]:
        return _sum_counts(c.skipped for c in self.clouds)

    @property
    def unknown_accelerators(self) -> dict[str, int]:
        return _sum_counts(c.unknown_accelerators for c in self.clouds)

    def cloud(self, name: str) -> CloudReport:
        return next(c for c in self.clouds if c.cloud == name)

    def as_dict(self) -> dict[str, Any]:
        return {
            "catalog": self.catalog,
            "source": self.source,
            "rows_read": self.rows_read,
            "rows_with_accelerator": self.rows_with_accelerator,
            "offers": self.offers,
            "spot_merged": self.spot_merged,
            "skipped": self.skipped,
            "unknown_accelerators": self.unknown_accelerators,
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "unlisted": self.unlisted,
            "relisted": self.relisted,
            "regions_created": self.regions_created,
            "providers_created": self.providers_created,
            "seconds": round(self.seconds, 3),
            "clouds": [c.as_dict() for c in self.clouds],
        }


def _sum_counts(mappings: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for mapping in mappings:
        for key, value in mapping.items():
            out[key] = out.get(key, 0) + value
    return dict(sorted(out.items()))
