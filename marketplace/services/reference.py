"""Seed and refresh the reference tables (accelerators, energy regions) from the product's data files.

The functions take the model classes as arguments so the data migration can pass its historical models.
They are idempotent: rows are matched by their natural key and updated in place.
"""

from __future__ import annotations

import csv
import re
from decimal import Decimal
from typing import Any

from broker.data import DATA_DIR
from broker.hardware.catalog import default_accelerators

_PUE = re.compile(r"\b(1\.\d{1,2})\b")


def accelerator_fields(spec: Any) -> dict[str, Any]:
    return {
        "slug": spec.slug,
        "vendor": spec.vendor,
        "form_factor": spec.form_factor,
        "architecture": spec.architecture,
        "aliases": list(spec.aliases),
        "memory_gb": spec.memory_gb,
        "memory_type": spec.memory_type,
        "memory_bandwidth_gbps": spec.memory_bandwidth_gbps,
        "fp64_tflops": spec.peak("fp64"),
        "fp32_tflops": spec.peak("fp32"),
        "tf32_tflops": spec.peak("tf32"),
        "bf16_tflops": spec.peak("bf16"),
        "fp16_tflops": spec.peak("fp16"),
        "fp8_tflops": spec.peak("fp8"),
        "int8_tops": spec.peak("int8"),
        "tdp_w": spec.tdp_w,
        "interconnect": spec.interconnect[:200],
        "software_stack": spec.software_stack[:300],
        "stack_family": spec.stack_family,
        "release_year": spec.release_year,
        "confidence": spec.confidence,
    }


def sync_accelerators(accelerator_model: Any) -> int:
    for spec in default_accelerators():
        accelerator_model.objects.update_or_create(canonical_name=spec.canonical_name,
                                                   defaults=accelerator_fields(spec))
    return len(default_accelerators())


def first_pue(text: str) -> float | None:
    """The first PUE figure in a free-text cell such as 'AWS us-east-1 1.15 (2024); GCP ... 1.09'."""
    match = _PUE.search(text or "")
    return float(match.group(1)) if match else None


def energy_rows() -> list[dict[str, str]]:
    with open(DATA_DIR / "regions_energy.csv", newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def region_fields(row: dict[str, str]) -> dict[str, Any]:
    ci = row.get("grid_ci_gco2_per_kwh", "").strip()
    price = row.get("industrial_price_usd_per_kwh", "").strip()
    return {
        "name": row["region_name"].strip(),
        "country": row.get("country", "").strip()[:2],
        "grid_ci_gco2_per_kwh": float(ci) if ci else None,
        "pue": first_pue(row.get("pue_reported", "")),
        "power_price_usd_per_kwh": Decimal(price) if price else None,
        "energy_zone": row["region_key"].strip(),
    }


def sync_energy_regions(region_model: Any) -> int:
    rows = energy_rows()
    for row in rows:
        region_model.objects.update_or_create(key=row["region_key"].strip(), defaults=region_fields(row))
    return len(rows)
