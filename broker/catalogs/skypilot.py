"""Read SkyPilot price catalogs (schema v8: `DIR/<cloud>/vms.csv`) into `CatalogOffer`s.

Facts about the format this reader relies on (checked against skypilot-catalog v8; see tests):
- Column order differs per cloud, so rows are read by header; some files have CRLF line endings.
- `GpuInfo` is a Python-literal dict (hyperstack writes JSON's `null` inside it), or real JSON for
  primeintellect. `Gpus[0].MemoryInfo.SizeInMiB` is per GPU everywhere except primeintellect, where it is per
  node; `TotalGpuMemoryInMiB` is inconsistent (lambda: per GPU; primeintellect: count x per node): ignored.
- Spot: a `SpotPrice` column on the on-demand row, except primeintellect, which lists spot as separate
  `<instance>__SPOT` rows with an empty `Price`. Those are folded into the on-demand twin (same instance,
  region and zone) as its interruptible price; a spot row with no on-demand twin is skipped
  (`spot_without_on_demand`): our offers always carry an on-demand price, and listing a spot price as an
  on-demand one would promise capacity that can be taken away.
- Aggregator rows (primeintellect: `<upstream>__<N>x<GPU>_<mem>__...`) record the upstream cloud.

Row outcomes are checked in this order: CPU-only (no accelerator name, or a count of 0), no region, unknown
accelerator, missing price, count out of range, duplicate; the report counts each.
"""

from __future__ import annotations

import ast
import csv
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from broker.catalogs.model import (
    SKIP_COUNT_OUT_OF_RANGE,
    SKIP_CPU_ONLY,
    SKIP_DUPLICATE,
    SKIP_NO_PRICE,
    SKIP_NO_REGION,
    SKIP_SPOT_WITHOUT_ON_DEMAND,
    SKIP_UNKNOWN_ACCELERATOR,
    CatalogError,
    CatalogOffer,
    CloudReport,
    ImportReport,
)
from broker.catalogs.regions import RegionMap, default_region_map
from broker.catalogs.skypilot_names import canonical_accelerator, interconnect_for
from broker.hardware.vocabulary import Vocabulary, default_vocabulary

CATALOG = "skypilot"
REQUIRED_COLUMNS = (
    "InstanceType",
    "AcceleratorName",
    "AcceleratorCount",
    "vCPUs",
    "MemoryGiB",
    "Price",
    "Region",
)
AGGREGATORS = frozenset({"primeintellect"})
PER_NODE_GPU_MEMORY = frozenset({"primeintellect"})  # SizeInMiB is the node's total, not one GPU's
SPOT_SUFFIX = "__SPOT"
MAX_COUNT = 64
MIB_PER_GB = 1024  # catalogs say 81920 MiB for an "80GB" part: marketing GB are GiB here

_NAMES = {"null": None, "None": None, "true": True, "True": True, "false": False, "False": False}


def parse_gpu_info(text: str) -> dict[str, Any] | None:
    """GpuInfo as a dict: JSON, or a Python literal that may contain JSON's null/true/false. None if empty."""
    text = (text or "").strip()
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        value = _literal(ast.parse(text, mode="eval").body)
    if not isinstance(value, dict):
        raise ValueError("GpuInfo is not a dict")
    return value


def _literal(node: ast.AST) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name) and node.id in _NAMES:
        return _NAMES[node.id]
    if isinstance(node, ast.Dict):
        return {
            _literal(k): _literal(v) for k, v in zip(node.keys, node.values, strict=True) if k is not None
        }
    if isinstance(node, ast.List | ast.Tuple):
        return [_literal(e) for e in node.elts]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_literal(node.operand)
    raise ValueError(f"unsupported syntax in GpuInfo: {ast.dump(node)[:60]}")


def gpu_memory_gb(info: dict[str, Any] | None, count: int, *, per_node: bool) -> float | None:
    """Memory of one accelerator in GB, or None when the catalog does not say (missing or 0)."""
    if not info or not info.get("Gpus"):
        return None
    size = info["Gpus"][0].get("MemoryInfo", {}).get("SizeInMiB")
    if not size:
        return None
    mib = float(size) / count if per_node else float(size)
    return round(mib / MIB_PER_GB, 2)


def _decimal(value: str, column: str, path: Path, line: int) -> Decimal | None:
    value = (value or "").strip()
    if not value:
        return None
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise CatalogError(path, line, f"{column} {value!r} is not a number") from None
    if not number.is_finite() or number < 0:
        raise CatalogError(path, line, f"{column} {value!r} is not a non-negative number")
    return number


def _float(value: str, column: str, path: Path, line: int) -> float:
    value = (value or "").strip()
    if not value:
        return 0.0
    try:
        number = float(value)
    except ValueError:
        raise CatalogError(path, line, f"{column} {value!r} is not a number") from None
    if number != number or number < 0:
        raise CatalogError(path, line, f"{column} {value!r} is not a non-negative number")
    return number


@dataclass(slots=True)
class _Draft:
    """An offer being built; spot rows may still set its interruptible price."""

    offer: dict[str, Any]
    interruptible: Decimal | None


def upstream_of(instance_type: str) -> str:
    """'lambdalabs__8xA100_80GB__240__1800' -> 'lambdalabs'."""
    return instance_type.split("__", 1)[0] if "__" in instance_type else ""


def external_id(instance_type: str, region: str, zone: str) -> str:
    return f"{instance_type}@{region}/{zone}" if zone else f"{instance_type}@{region}"


def csv_rows(path: Path) -> Iterator[tuple[int, list[str], dict[str, str]]]:
    """(line number, header, row with stripped values) for each data row; CatalogError on a malformed file."""
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            try:
                header = reader.fieldnames or []
                missing = [c for c in REQUIRED_COLUMNS if c not in header]
                if missing:
                    raise CatalogError(path, 1, f"missing column(s) {', '.join(missing)}")
                for row in reader:
                    if None in row or any(v is None for v in row.values()):
                        raise CatalogError(path, reader.line_num, f"expected {len(header)} fields")
                    yield reader.line_num, header, {k: v.strip() for k, v in row.items()}
            except csv.Error as exc:
                raise CatalogError(path, reader.line_num, f"CSV error: {exc}") from None
    except UnicodeDecodeError:
        raise CatalogError(path, 0, "not UTF-8 text") from None
    except OSError as exc:
        raise CatalogError(path, 0, f"cannot read: {exc.strerror}") from None


class _CloudReader:
    def __init__(self, path: Path, cloud: str, vocabulary: Vocabulary, regions: RegionMap):
        self.path, self.cloud, self.vocabulary, self.regions = path, cloud, vocabulary, regions
        self.skipped: Counter[str] = Counter()
        self.unknown: Counter[str] = Counter()
        self.drafts: dict[str, _Draft] = {}
        self.spot_rows: list[tuple[str, Decimal | None]] = []
        self.unmapped: set[str] = set()
        self.rows_read = self.with_accelerator = 0

    def read(self) -> tuple[list[CatalogOffer], CloudReport]:
        for line, header, row in csv_rows(self.path):
            self.rows_read += 1
            aggregator = self.cloud in AGGREGATORS or "UpstreamCloudId" in header
            reason = self.row(line, row, aggregator)
            if reason:
                self.skipped[reason] += 1
        merged = 0
        for ext, spot in self.spot_rows:
            draft = self.drafts.get(ext)
            if draft is None or spot is None:
                self.skipped[SKIP_SPOT_WITHOUT_ON_DEMAND] += 1
                continue
            draft.interruptible = spot if draft.interruptible is None else min(draft.interruptible, spot)
            merged += 1
        offers = [CatalogOffer(**d.offer, interruptible_price=d.interruptible) for d in self.drafts.values()]
        report = CloudReport(
            cloud=self.cloud,
            rows_read=self.rows_read,
            rows_with_accelerator=self.with_accelerator,
            offers=len(offers),
            spot_merged=merged,
            skipped=dict(self.skipped),
            unknown_accelerators=dict(self.unknown),
            unmapped_regions=tuple(sorted(self.unmapped)),
        )
        return offers, report

    def row(self, line: int, row: dict[str, str], aggregator: bool) -> str | None:
        """Turn one row into a draft offer (or a pending spot price); returns a skip reason or None."""
        path, cloud = self.path, self.cloud
        acc_name = row["AcceleratorName"]
        # Every row's numbers are checked, so a malformed file fails even where the row would be skipped.
        count_f = _float(row["AcceleratorCount"], "AcceleratorCount", path, line)
        price = _decimal(row["Price"], "Price", path, line)
        spot = _decimal(row.get("SpotPrice", ""), "SpotPrice", path, line)
        vcpus = _float(row["vCPUs"], "vCPUs", path, line)
        ram_gb = _float(row["MemoryGiB"], "MemoryGiB", path, line)
        disk_gb = _float(row.get("StorageGiB", ""), "StorageGiB", path, line)
        if acc_name:
            self.with_accelerator += 1
        if not acc_name or count_f == 0:
            return SKIP_CPU_ONLY
        region, zone = row["Region"], row.get("AvailabilityZone", "")
        if not region:
            return SKIP_NO_REGION
        if count_f != int(count_f):
            raise CatalogError(path, line, f"AcceleratorCount {row['AcceleratorCount']!r} is not whole")
        count = int(count_f)
        try:
            info = parse_gpu_info(row.get("GpuInfo", ""))
        except (ValueError, SyntaxError) as exc:
            raise CatalogError(path, line, f"GpuInfo cannot be parsed ({exc})") from None
        memory = gpu_memory_gb(info, count, per_node=cloud in PER_NODE_GPU_MEMORY)
        instance = row["InstanceType"]
        if not instance:
            raise CatalogError(path, line, "InstanceType is empty")
        upstream = upstream_of(instance) if aggregator else ""
        gpu_name = ((info or {}).get("Gpus") or [{}])[0].get("Name") or ""
        hints = " ".join((instance, row.get("UpstreamCloudId", ""), gpu_name))
        canonical = canonical_accelerator(
            acc_name,
            memory,
            count,
            hints,
            vocabulary=self.vocabulary,
            pcie_by_default=(upstream or cloud) == "hyperstack",
        )
        if canonical is None:
            self.unknown[acc_name] += 1
            return SKIP_UNKNOWN_ACCELERATOR
        if instance.endswith(SPOT_SUFFIX):
            self.spot_rows.append((external_id(instance[: -len(SPOT_SUFFIX)], region, zone), spot or price))
            return None
        if price is None:
            return SKIP_NO_PRICE
        if not 1 <= count <= MAX_COUNT:
            return SKIP_COUNT_OUT_OF_RANGE
        ext = external_id(instance, region, zone)
        if ext in self.drafts:
            return SKIP_DUPLICATE
        spec = self.vocabulary.by_name[canonical]
        mapped = self.regions.lookup(cloud, region, zone)
        if mapped is None:
            self.unmapped.add(f"{region}/{zone}" if zone else region)
        self.drafts[ext] = _Draft(
            offer={
                "cloud": cloud,
                "external_id": ext,
                "name": instance,
                "accelerator": canonical,
                "count": count,
                "memory_gb": memory or float(spec.memory_gb or 0) or 1.0,
                "vcpus": round(vcpus),
                "ram_gb": ram_gb,
                "disk_gb": disk_gb,
                "interconnect": interconnect_for(spec, hints),
                "region": region,
                "zone": zone,
                "region_key": (mapped or self.regions.resolve(cloud, region, zone)).key,
                "upstream_cloud": upstream,
                "price": price,
            },
            interruptible=spot,
        )
        return None


def read_cloud(
    path: Path, cloud: str, *, vocabulary: Vocabulary | None = None, regions: RegionMap | None = None
) -> tuple[list[CatalogOffer], CloudReport]:
    """Offers and report for one `<cloud>/vms.csv`."""
    return _CloudReader(
        path, cloud, vocabulary or default_vocabulary(), regions or default_region_map()
    ).read()


def cloud_files(source_dir: Path) -> list[tuple[str, Path]]:
    """(cloud, DIR/<cloud>/vms.csv) for every cloud folder that has one, sorted by cloud."""
    source_dir = Path(source_dir)
    if not source_dir.is_dir():
        raise CatalogError(source_dir, 0, "not a directory")
    found = sorted((p.parent.name, p) for p in source_dir.glob("*/vms.csv") if p.is_file())
    if not found:
        raise CatalogError(source_dir, 0, "no <cloud>/vms.csv files found")
    return found


def read_catalog(
    source_dir: Path | str, *, vocabulary: Vocabulary | None = None, regions: RegionMap | None = None
) -> tuple[list[CatalogOffer], ImportReport]:
    offers: list[CatalogOffer] = []
    reports: list[CloudReport] = []
    for cloud, path in cloud_files(Path(source_dir)):
        cloud_offers, report = read_cloud(path, cloud, vocabulary=vocabulary, regions=regions)
        offers.extend(cloud_offers)
        reports.append(report)
    return offers, ImportReport(catalog=CATALOG, source=str(source_dir), clouds=tuple(reports))


__all__ = ["CATALOG", "canonical_accelerator", "parse_gpu_info", "read_catalog", "read_cloud"]
