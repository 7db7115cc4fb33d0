"""Builders for engine tests: offer rows with sensible defaults."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from broker.engine.snapshot import OfferRow
from broker.engine.specs import default_specs

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
H100 = "NVIDIA H100-SXM5-80GB"
A100 = "NVIDIA A100-SXM4-80GB"
L40S = "NVIDIA L40S"
L4 = "NVIDIA L4"
MI300X = "AMD Instinct MI300X"
GAUDI2 = "Intel Gaudi 2"
MLU590 = "Cambricon MLU590"


def offer(
    offer_id: int,
    accelerator: str = H100,
    count: int = 8,
    price: str = "20",
    *,
    provider_id: int = 1,
    provider_name: str | None = None,
    reliability: float | None = 0.99,
    provider_min_rental: str = "0",
    kinds: tuple[str, ...] = (),
    provider_interruptible: bool = True,
    memory_gb: float | None = None,
    vcpus: float = 96,
    ram_gb: float = 1024,
    disk_gb: float = 2000,
    interconnect: str | None = None,
    inter_node: str = "none",
    region: str = "us-east",
    country: str = "US",
    ci: float | None = 300.0,
    pue: float | None = 1.2,
    interruptible: str | None = None,
    nodes: int = 1,
    min_rental: str = "0",
    stack: str | None = None,
) -> OfferRow:
    spec = default_specs().spec(accelerator)
    if memory_gb is None:
        memory_gb = spec.memory_gb if spec and spec.memory_gb else 64.0
    if interconnect is None:
        interconnect = "nvlink" if spec and spec.form_factor.startswith("SXM") and count > 1 else "pcie"
    return OfferRow(
        offer_id=offer_id,
        provider_id=provider_id,
        provider_name=provider_name or f"provider-{provider_id}",
        provider_reliability=reliability,
        provider_min_rental_hours=Decimal(provider_min_rental),
        provider_allowed_kinds=kinds,
        provider_interruptible_allowed=provider_interruptible,
        accelerator=accelerator,
        count=count,
        memory_gb=memory_gb,
        vcpus=vcpus,
        ram_gb=ram_gb,
        disk_gb=disk_gb,
        interconnect=interconnect,
        inter_node=inter_node,
        region_key=region,
        country=country,
        grid_ci_gco2_per_kwh=ci,
        pue=pue,
        price_per_hour=Decimal(price),
        interruptible_price_per_hour=None if interruptible is None else Decimal(interruptible),
        nodes_available=nodes,
        min_rental_hours=Decimal(min_rental),
        stack_family=stack or (spec.stack_family if spec else "other"),
    )
