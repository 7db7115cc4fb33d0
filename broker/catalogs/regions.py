"""Where catalog regions are: broker/data/catalog_regions.csv maps (cloud, region[, zone]) to our Regions."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from broker.data import DATA_DIR

CATALOG_REGIONS_CSV = DATA_DIR / "catalog_regions.csv"
ENERGY_REGION_COORDS_CSV = DATA_DIR / "energy_region_coords.csv"


@dataclass(frozen=True, slots=True)
class RegionInfo:
    key: str  # our Region.key, e.g. 'lambda/us-east-1'
    name: str
    country: str  # ISO 3166 alpha-2, '' when unknown
    latitude: float | None
    longitude: float | None
    energy_zone: str  # a region_key of regions_energy.csv whose grid facts apply; '' when none fits


def _float(value: str) -> float | None:
    value = (value or "").strip()
    return float(value) if value else None


class RegionMap:
    def __init__(self, rows: dict[tuple[str, str, str], RegionInfo]):
        self.rows = rows

    def lookup(self, cloud: str, region: str, zone: str = "") -> RegionInfo | None:
        """The zone-specific row if there is one, else the region's row."""
        return self.rows.get((cloud, region, zone)) or self.rows.get((cloud, region, ""))

    def resolve(self, cloud: str, region: str, zone: str = "") -> RegionInfo:
        """A region without a mapping row still gets a Region of its own (no location, no energy facts)."""
        return self.lookup(cloud, region, zone) or RegionInfo(
            key=f"{cloud}/{region}",
            name=f"{cloud} {region}",
            country="",
            latitude=None,
            longitude=None,
            energy_zone="",
        )


def load_region_map(path: Path = CATALOG_REGIONS_CSV) -> RegionMap:
    rows: dict[tuple[str, str, str], RegionInfo] = {}
    with open(path, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            key = (row["cloud"].strip(), row["region"].strip(), row.get("zone", "").strip())
            rows[key] = RegionInfo(
                key=row["region_key"].strip(),
                name=row["name"].strip(),
                country=row["country"].strip(),
                latitude=_float(row["latitude"]),
                longitude=_float(row["longitude"]),
                energy_zone=row["energy_zone"].strip(),
            )
    return RegionMap(rows)


@lru_cache(maxsize=1)
def default_region_map() -> RegionMap:
    return load_region_map()


def load_energy_region_coords(path: Path = ENERGY_REGION_COORDS_CSV) -> dict[str, tuple[float, float]]:
    """Approximate coordinates of the energy reference regions (key -> (latitude, longitude))."""
    with open(path, newline="", encoding="utf-8") as fh:
        return {
            r["region_key"].strip(): (float(r["latitude"]), float(r["longitude"])) for r in csv.DictReader(fh)
        }
