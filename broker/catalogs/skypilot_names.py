"""SkyPilot accelerator names -> our canonical accelerators, and the intra-node interconnect.

SkyPilot's `AcceleratorName` is coarser than our catalog: 'A100' covers four parts, 'H100' both PCIe and SXM5.
The part is decided from the GPU memory in GpuInfo and from hints in the instance type, the aggregator's
upstream instance id and the GPU name (all lower-cased into one `hints` string):

| SkyPilot name | decision |
|---|---|
| A100 80 GB, A100-80GB | 'pcie' hint -> A100-PCIE-80GB; else A100-SXM4-80GB (SkyPilot/GCP/Lambda usage) |
| A100, 40 GB | 'pcie' -> A100-PCIE-40GB; 'sxm'/'nvlink'/DataCrunch '.40S.' -> A100-SXM4-40GB; no hint: |
|             | 1 GPU -> PCIe (Lambda: gpu_1x_a100 is the PCIe card, gpu_1x_a100_sxm4 the SXM4 one), |
|             | 2+ GPUs -> SXM4 (Lambda's 2x/4x/8x A100 cost per GPU what gpu_1x_a100_sxm4 costs; HGX) |
| H100 | 'pcie' -> H100-PCIE-80GB; ~94 GB -> H100-NVL-94GB; else H100-SXM5-80GB (HBM3 parts, 'sxm' names) |
| V100 | 32 GB -> the 32GB part, else 16GB; 'pcie' -> PCIe, else SXM2 (Lambda's 8x V100 is SXM2) |
| A6000, RTXA6000, RTX-A6000 | RTX A6000 |
| RTX6000Ada | RTX 6000 Ada Generation |
| A100-80G-PCIe[-NVLink], H100-80G-PCIe[-NVLink], H100-80G-SXM5 | Hyperstack's names for the parts they say |

Hyperstack (directly or behind primeintellect) names SXM parts explicitly, so its unnamed A100/H100 are PCIe.
Names that are not in our catalog are reported as unknown, never guessed: 'RTX6000' is the 24 GB Quadro
RTX 6000 (Turing), not the RTX 6000 Ada; L40, A30, A4000/RTX-A4000, RTXPRO6000/'RTX PRO 6000 96GB' have no
spec row.
"""

from __future__ import annotations

import re

from broker.hardware.catalog import AcceleratorSpec
from broker.hardware.vocabulary import Vocabulary, default_vocabulary, normalize

A100_PCIE_40 = "NVIDIA A100-PCIE-40GB"
A100_PCIE_80 = "NVIDIA A100-PCIE-80GB"
A100_SXM_40 = "NVIDIA A100-SXM4-40GB"
A100_SXM_80 = "NVIDIA A100-SXM4-80GB"
H100_PCIE = "NVIDIA H100-PCIE-80GB"
H100_SXM = "NVIDIA H100-SXM5-80GB"
H100_NVL = "NVIDIA H100-NVL-94GB"
RTX_A6000 = "NVIDIA RTX A6000"
RTX_6000_ADA = "NVIDIA RTX 6000 Ada Generation"

# SkyPilot names with one fixed meaning (keys are vocabulary-normalized).
FIXED: dict[str, str] = {
    normalize("A6000"): RTX_A6000,
    normalize("RTXA6000"): RTX_A6000,
    normalize("RTX-A6000"): RTX_A6000,
    normalize("RTX6000Ada"): RTX_6000_ADA,
    normalize("A100-80G-PCIe"): A100_PCIE_80,
    normalize("A100-80G-PCIe-NVLink"): A100_PCIE_80,
    normalize("H100-80G-PCIe"): H100_PCIE,
    normalize("H100-80G-PCIe-NVLink"): H100_PCIE,
    normalize("H100-80G-SXM5"): H100_SXM,
}

# Names that the vocabulary could match fuzzily but that are different parts absent from our catalog.
NOT_IN_CATALOG = frozenset(
    normalize(n)
    for n in (
        "RTX6000",
        "L40",
        "A30",
        "A4000",
        "RTX-A4000",
        "RTXPRO6000",
        "RTX PRO 6000 96GB",
        "RTX PRO 6000",
    )
)

_DATACRUNCH_SXM = re.compile(r"\.\d+s\.")  # DataCrunch ids: '8A100.40S.176V', '1H100.80S.30V'


def _form(hints: str, *, pcie_by_default: bool) -> str:
    """'pcie', 'sxm' or '' (no hint)."""
    if "pcie" in hints:
        return "pcie"
    if "sxm" in hints or "nvlink" in hints or _DATACRUNCH_SXM.search(hints):
        return "sxm"
    return "pcie" if pcie_by_default else ""


def canonical_accelerator(
    name: str,
    memory_gb: float | None,
    count: int,
    hints: str = "",
    *,
    vocabulary: Vocabulary | None = None,
    pcie_by_default: bool = False,
) -> str | None:
    """Our canonical accelerator name for a SkyPilot row, or None when it is not in our catalog."""
    key = normalize(name)
    hints = hints.lower()
    if key in NOT_IN_CATALOG:
        return None
    if key in FIXED:
        return FIXED[key]
    if key in ("a100", "a10080gb"):
        form = _form(hints, pcie_by_default=pcie_by_default)
        if key == "a10080gb" or (memory_gb or 0) >= 60:
            return A100_PCIE_80 if form == "pcie" else A100_SXM_80
        if form:
            return A100_PCIE_40 if form == "pcie" else A100_SXM_40
        return A100_PCIE_40 if count == 1 else A100_SXM_40
    if key == "h100":
        if _form(hints, pcie_by_default=pcie_by_default) == "pcie":
            return H100_PCIE
        return H100_NVL if (memory_gb or 0) >= 90 else H100_SXM
    if key == "v100":
        size = "32GB" if (memory_gb or 0) >= 24 else "16GB"
        form = "PCIE" if _form(hints, pcie_by_default=pcie_by_default) == "pcie" else "SXM2"
        return f"NVIDIA V100-{form}-{size}"
    resolution = (vocabulary or default_vocabulary()).resolve(name)
    return resolution.canonical


def interconnect_for(spec: AcceleratorSpec, hints: str) -> str:
    """Between the accelerators of a node: SXM parts and NVLink-bridged cards -> 'nvlink', else 'pcie'."""
    if spec.form_factor.upper().startswith("SXM") or "nvlink" in hints.lower():
        return "nvlink"
    return "pcie"
