"""The engine on the real SkyPilot catalogs: cheapest on-demand answers equal the CSV minimum."""

from __future__ import annotations

import csv
from decimal import Decimal

import pytest

from broker.engine import OfferRow, OfferSnapshot, parse_request, recommend
from broker.engine.specs import default_specs
from tests.engine.helpers import NOW

# SkyPilot's names for each part; Lambda also calls its H100 PCIe and A100 PCIe machines "H100"/"A100-80GB"
# (instance types gpu_1x_h100_pcie ...), so PCIe instance types are not the SXM part.
SKYPILOT_NAMES = {
    "H100": ({"H100", "H100-SXM"}, True),
    "A100-80GB": ({"A100-80GB", "A100-80GB-SXM"}, True),
    "L40S": ({"L40S"}, False),
}


DB_PLACES = Decimal("0.0001")  # Offer.price_per_hour is DECIMAL(12, 4); a few catalog prices are float artefacts


def db_price(value: Decimal | None) -> Decimal | None:
    return None if value is None else value.quantize(DB_PLACES)


def catalog_rows(shared_data) -> list[OfferRow]:
    skypilot = pytest.importorskip("broker.catalogs.skypilot")
    from broker.catalogs.regions import default_region_map

    offers, _ = skypilot.read_catalog(shared_data / "skypilot-catalog")
    regions = default_region_map()
    clouds = sorted({o.cloud for o in offers})
    rows = []
    for i, o in enumerate(offers, start=1):
        info = regions.lookup(o.cloud, o.region, o.zone)
        spec = default_specs().spec(o.accelerator)
        rows.append(
            OfferRow(
                offer_id=i,
                provider_id=clouds.index(o.cloud) + 1,
                provider_name=o.cloud,
                provider_reliability=None,
                provider_min_rental_hours=Decimal(0),
                provider_allowed_kinds=(),
                provider_interruptible_allowed=True,
                accelerator=o.accelerator,
                count=o.count,
                memory_gb=o.memory_gb,
                vcpus=o.vcpus,
                ram_gb=o.ram_gb,
                disk_gb=o.disk_gb,
                interconnect=o.interconnect,
                inter_node="none",
                region_key=o.region_key,
                country=info.country if info else "",
                grid_ci_gco2_per_kwh=None,
                pue=None,
                price_per_hour=db_price(o.price),
                interruptible_price_per_hour=db_price(o.interruptible_price),
                nodes_available=1,
                min_rental_hours=Decimal(0),
                stack_family=spec.stack_family if spec else "other",
            )
        )
    return rows


def csv_minimum(shared_data, name: str, count: int) -> tuple[Decimal, set[tuple[str, str]]]:
    """Cheapest on-demand price for `count` × `name` read directly from every <cloud>/vms.csv."""
    names, sxm_only = SKYPILOT_NAMES[name]
    found: list[tuple[Decimal, str, str]] = []
    for path in sorted((shared_data / "skypilot-catalog").glob("*/vms.csv")):
        with open(path, newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                if row.get("AcceleratorName") not in names or not row.get("AcceleratorCount"):
                    continue
                if float(row["AcceleratorCount"]) != count or not row.get("Price") or not row.get("Region"):
                    continue
                if sxm_only and "pcie" in row["InstanceType"].lower():
                    continue
                found.append((db_price(Decimal(row["Price"])), path.parent.name, row["InstanceType"]))
    best = min(p for p, _, _ in found)
    return best, {(cloud, it) for p, cloud, it in found if p == best}


@pytest.mark.parametrize(
    ("name", "count", "known"),
    [
        ("H100", 8, "8.0000"),  # mithril h100-80gb.sxm.8x
        ("A100-80GB", 8, "8.2800"),  # primeintellect latitude__8xA100_80GB__128__1536
        ("L40S", 1, "0.8500"),  # seeweb ECS1GPU7
    ],
)
def test_cheapest_on_demand_equals_csv_minimum(shared_data, name, count, known):
    snapshot = OfferSnapshot.from_rows(catalog_rows(shared_data))
    expected, where = csv_minimum(shared_data, name, count)
    assert expected == Decimal(known)
    request = parse_request(
        {"resources": {"accelerator": name, "count": count}, "duration_hours": 1, "objective": "cost"}, now=NOW
    )
    answer = recommend(snapshot, request, now=NOW)
    top = answer.recommendations[0]
    assert top.node_price_per_hour == expected
    assert top.est_total_usd == expected.quantize(Decimal("0.01"))
    assert not top.interruptible
    assert top.provider in {cloud for cloud, _ in where}
    assert top.count == count and top.nodes == 1
    assert answer.excluded.considered == len(snapshot)


def test_catalog_inference_request_is_answered_with_reasons(shared_data):
    snapshot = OfferSnapshot.from_rows(catalog_rows(shared_data))
    request = parse_request(
        {
            "workload": {
                "kind": "llm_inference",
                "model": "llama-3-70b",
                "precision": "fp16",
                "tokens_per_second": 2000,
            },
            "duration_hours": 24,
            "max_price_per_hour": 40,
            "objective": "cost",
        },
        now=NOW,
    )
    answer = recommend(snapshot, request, now=NOW)
    assert answer.recommendations, answer.excluded
    prices = [r.price_per_hour for r in answer.recommendations]
    assert all(p <= 40 for p in prices)
    totals = [r.est_total_usd for r in answer.recommendations]
    assert totals == sorted(totals)
    assert answer.excluded.by_reason  # e.g. single-GPU nodes that cannot hold 190.8 GB
