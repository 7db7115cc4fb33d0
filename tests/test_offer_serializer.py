"""The offer output shape: OfferSerializer.to_representation (one dict display, for speed) against the declared
fields and against a field-by-field rendering of the same selector rows."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from marketplace.api.offer_serializers import OfferSerializer
from marketplace.selectors.offers import offer_queryset

pytestmark = pytest.mark.django_db

# Output field -> the selector row's key (ROW_COLUMNS), and the decimal places of the fixed-point ones.
ROW_KEYS = {
    "id": "id", "external_id": "external_id", "name": "name", "status": "status", "source": "source",
    "provider": "provider__slug", "provider_name": "provider__name", "accelerator": "accelerator__canonical_name",
    "vendor": "accelerator__vendor", "stack": "accelerator__stack_family", "count": "accelerator_count",
    "memory_gb": "accelerator_memory_gb", "total_memory_gb": "total_memory_gb",
    "bf16_tflops": "accelerator__bf16_tflops", "fp64_tflops": "accelerator__fp64_tflops", "vcpus": "vcpus",
    "ram_gb": "ram_gb", "disk_gb": "disk_gb", "interconnect": "interconnect", "inter_node": "inter_node",
    "network_gbps": "network_gbps", "region": "region__key", "country": "region__country",
    "carbon_gco2_per_kwh": "region__grid_ci_gco2_per_kwh", "nodes_available": "nodes_available",
    "upstream_cloud": "upstream_cloud",
}
DECIMAL_KEYS = {
    "reliability": ("provider__reliability_score", 3), "price_per_hour": ("price_per_hour", 4),
    "price_per_accelerator_hour": ("price_per_accelerator_hour", 6),
    "interruptible_price_per_hour": ("interruptible_price_per_hour", 4), "min_rental_hours": ("min_rental_hours", 2),
}


def reference(row: dict) -> dict:
    out = {name: row[key] for name, key in ROW_KEYS.items()}
    for name, (key, places) in DECIMAL_KEYS.items():
        value = row[key]
        out[name] = None if value is None else f"{Decimal(value):.{places}f}"
    until = row["available_until"]
    out["available_until"] = None if until is None else until.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"
                                                                                     ).replace(".000000Z", "Z")
    out["provider_verified"] = row["provider__verification_status"] == "verified"
    return out


@pytest.fixture
def offers(make_provider, make_offer):
    verified = make_provider("Verified Co", verification_status="verified", reliability_score=Decimal("0.875"))
    unknown = make_provider("Unknown Co")
    make_offer(verified, name="plain", price_per_hour=Decimal("12.5"), min_rental_hours=Decimal("1.5"))
    make_offer(verified, name="spot", accelerator_count=3, price_per_hour=Decimal("10"),
               interruptible_price_per_hour=Decimal("3.25"), network_gbps=400.0, upstream_cloud="aws",
               available_until=datetime(2030, 1, 2, 3, 4, 5, 123456, tzinfo=UTC))
    make_offer(unknown, name="round hour", external_id="x-1", accelerator_count=1, accelerator_memory_gb=80.5,
               price_per_hour=Decimal("0.0001"), available_until=datetime(2030, 1, 2, 3, 0, tzinfo=UTC))
    make_offer(unknown, name='quote " backslash \\ tab \t line\u2028sep \u00e9t\u00e9 \u4e2d\u6587 \U0001f680',
               accelerator_memory_gb=0.1, ram_gb=1e-7, disk_gb=123456789.125, vcpus=0, nodes_available=0,
               price_per_hour=Decimal("9999.9999"), interruptible_price_per_hour=Decimal("0"),
               available_until=datetime(2030, 6, 1, 12, 0, 0, 1, tzinfo=UTC))


def test_every_row_renders_as_field_by_field(offers):
    rows = list(offer_queryset().order_by("id"))
    data = OfferSerializer(rows, many=True).data
    assert [dict(d) for d in data] == [reference(row) for row in rows]
    assert {name for d in data for name in d} == set(OfferSerializer().fields)
    spot = data[1]
    assert spot["price_per_accelerator_hour"] == "3.333333" and spot["interruptible_price_per_hour"] == "3.2500"
    assert spot["available_until"] == "2030-01-02T03:04:05.123456Z"
    assert data[2]["available_until"] == "2030-01-02T03:00:00Z"
    assert data[0]["reliability"] == "0.875" and data[0]["provider_verified"] and data[2]["reliability"] is None
    assert data[0]["min_rental_hours"] == "1.50" and data[2]["price_per_hour"] == "0.0001"

