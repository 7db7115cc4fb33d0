"""Accelerator specs loaded from the product's own copy of the accelerator table."""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from broker.data import DATA_DIR

ACCELERATORS_CSV = DATA_DIR / "accelerators.csv"

# Precisions with a dense peak column in the table; the value is the column name.
PEAK_COLUMNS = {
    "fp64": "fp64_tflops",
    "fp64_tensor": "fp64_tensor_tflops",
    "fp32": "fp32_tflops",
    "tf32": "tf32_tflops",
    "bf16": "bf16_tflops",
    "fp16": "fp16_tflops",
    "fp8": "fp8_tflops",
    "int8": "int8_tops",
}


@dataclass(frozen=True, slots=True)
class AcceleratorSpec:
    canonical_name: str
    slug: str
    vendor: str
    form_factor: str
    architecture: str
    aliases: tuple[str, ...]
    memory_gb: float | None
    memory_type: str
    memory_bandwidth_gbps: float | None
    peak_tflops: dict[str, float]
    tdp_w: float | None
    interconnect: str
    software_stack: str
    stack_family: str
    release_year: int | None
    confidence: str

    def peak(self, precision: str) -> float | None:
        return self.peak_tflops.get(precision)


def slugify(name: str) -> str:
    """'NVIDIA GH200 (Grace Hopper, 144GB HBM3e)' -> 'nvidia-gh200-grace-hopper-144gb-hbm3e'."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


STACK_FAMILIES = (
    ("CUDA", "cuda"),
    ("ROCm", "rocm"),
    ("DTK", "dtk"),
    ("CANN", "cann"),
    ("Neuware", "neuware"),
    ("Gaudi", "gaudi"),
    ("Kunlunxin", "xpu"),
)


def stack_family(software_stack: str) -> str:
    """Short name of the software ecosystem an accelerator needs: cuda, rocm, dtk, cann, neuware, gaudi, xpu."""
    for needle, family in STACK_FAMILIES:
        if needle.lower() in software_stack.lower():
            return family
    return "other"


def _num(value: str) -> float | None:
    value = (value or "").strip()
    return float(value) if value else None


def parse_row(row: dict[str, str]) -> AcceleratorSpec:
    peaks = {p: v for p, col in PEAK_COLUMNS.items() if (v := _num(row.get(col, ""))) is not None}
    year = row.get("release_year", "").strip()
    return AcceleratorSpec(
        canonical_name=row["canonical_name"].strip(),
        slug=slugify(row["canonical_name"]),
        vendor=row["vendor"].strip(),
        form_factor=row.get("form_factor", "").strip(),
        architecture=row.get("architecture", "").strip(),
        aliases=tuple(a.strip() for a in row.get("aliases", "").split(";") if a.strip()),
        memory_gb=_num(row.get("memory_gb", "")),
        memory_type=row.get("memory_type", "").strip(),
        memory_bandwidth_gbps=_num(row.get("memory_bandwidth_gbps", "")),
        peak_tflops=peaks,
        tdp_w=_num(row.get("tdp_w", "")),
        interconnect=row.get("interconnect", "").strip(),
        software_stack=row.get("software_stack", "").strip(),
        stack_family=stack_family(row.get("software_stack", "")),
        release_year=int(float(year)) if year else None,
        confidence=row.get("confidence", "").strip() or "low",
    )


def load_accelerators(path: Path = ACCELERATORS_CSV) -> tuple[AcceleratorSpec, ...]:
    with open(path, newline="", encoding="utf-8") as fh:
        return tuple(parse_row(r) for r in csv.DictReader(fh))


@lru_cache(maxsize=1)
def default_accelerators() -> tuple[AcceleratorSpec, ...]:
    return load_accelerators()

