"""Importing the real SkyPilot catalogs (../shared/data/skypilot-catalog) into providers and offers."""

from __future__ import annotations

import csv
import io
import json
import shutil
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from marketplace.errors import ValidationFailed
from marketplace.models import Offer, Provider, Region
from marketplace.services.catalog_import import catalog_import

CLOUDS = ("hyperbolic", "hyperstack", "jarvislabs", "lambda", "mithril", "nebius", "primeintellect", "seeweb")
# SkyPilot names with no row in our accelerator catalog (see broker/catalogs/skypilot_names.py).
NOT_IN_CATALOG = {"RTX6000", "L40", "A30", "A4000", "RTX-A4000", "RTXPRO6000", "RTX PRO 6000 96GB"}


@pytest.fixture
def catalog_dir(shared_data: Path) -> Path:
    return shared_data / "skypilot-catalog"


def csv_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def independent_counts(catalog_dir: Path) -> dict[str, dict]:
    """What the import should report, computed with plain csv code."""
    out = {}
    for cloud in CLOUDS:
        rows = csv_rows(catalog_dir / cloud / "vms.csv")
        gpu = [r for r in rows if r["AcceleratorName"] and float(r["AcceleratorCount"] or 0) > 0]
        placed = [r for r in gpu if r["Region"]]
        unknown = Counter(r["AcceleratorName"] for r in placed if r["AcceleratorName"] in NOT_IN_CATALOG)
        spot = [
            r
            for r in placed
            if r["InstanceType"].endswith("__SPOT") and r["AcceleratorName"] not in NOT_IN_CATALOG
        ]
        out[cloud] = {
            "rows_read": len(rows),
            "rows_with_accelerator": sum(1 for r in rows if r["AcceleratorName"]),
            "cpu_only": len(rows) - len(gpu),
            "no_region": len(gpu) - len(placed),
            "unknown": dict(unknown),
            "spot_merged": len(spot),
            "offers": len(placed) - sum(unknown.values()) - len(spot),
        }
    return out


EXPECTED_OFFERS = {
    "hyperbolic": 3,
    "hyperstack": 16,
    "jarvislabs": 12,
    "lambda": 357,
    "mithril": 4,
    "nebius": 21,
    "primeintellect": 88,
    "seeweb": 10,
}


@pytest.mark.django_db
def test_import_real_catalogs_exact_counts(catalog_dir: Path) -> None:
    report = catalog_import(catalog_dir)
    expected = independent_counts(catalog_dir)

    assert report.rows_read == 789
    assert report.rows_with_accelerator == 585
    assert report.offers == 511
    assert report.spot_merged == 15
    assert report.skipped == {"cpu_only": 204, "no_region": 15, "unknown_accelerator": 44}
    assert report.unknown_accelerators == {
        "A30": 1,
        "A4000": 3,
        "L40": 13,
        "RTX-A4000": 5,
        "RTX6000": 18,
        "RTXPRO6000": 4,
    }
    assert [c.cloud for c in report.clouds] == list(CLOUDS)
    for c in report.clouds:
        e = expected[c.cloud]
        assert (c.rows_read, c.rows_with_accelerator, c.offers, c.spot_merged) == (
            e["rows_read"],
            e["rows_with_accelerator"],
            e["offers"],
            e["spot_merged"],
        ), c.cloud
        assert c.offers == EXPECTED_OFFERS[c.cloud]
        assert c.skipped.get("cpu_only", 0) == e["cpu_only"], c.cloud
        assert c.skipped.get("no_region", 0) == e["no_region"], c.cloud
        assert dict(c.unknown_accelerators) == e["unknown"], c.cloud
        assert c.skipped.get("unknown_accelerator", 0) == sum(e["unknown"].values())
        assert c.unmapped_regions == ()
    assert report.cloud("lambda").rows_read == 408
    assert dict(report.cloud("seeweb").skipped) == {"cpu_only": 48, "no_region": 15, "unknown_accelerator": 2}

    assert (report.created, report.updated, report.unchanged, report.unlisted) == (511, 0, 0, 0)
    assert (report.providers_created, report.regions_created) == (8, 36)
    assert report.seconds < 2.0
    assert Offer.objects.count() == 511
    assert Offer.objects.filter(status="listed", source="import", catalog_name="skypilot").count() == 511
    per_provider = dict(Counter(Offer.objects.values_list("provider__catalog_name", flat=True)))
    assert per_provider == EXPECTED_OFFERS
    kinds = dict(Provider.objects.values_list("catalog_name", "kind"))
    assert kinds == {c: ("aggregator" if c == "primeintellect" else "cloud") for c in CLOUDS}


@pytest.mark.django_db
def test_offer_facts(catalog_dir: Path) -> None:
    catalog_import(catalog_dir)
    # primeintellect: the __SPOT row's price becomes the on-demand twin's interruptible price.
    pi = Offer.objects.get(external_id="datacrunch__1xA100_80GB__22__120@FI/FIN-01")
    assert (pi.price_per_hour, pi.interruptible_price_per_hour) == (Decimal("1.1200"), Decimal("0.5300"))
    assert (pi.upstream_cloud, pi.provider.kind, pi.provider.catalog_name) == (
        "datacrunch",
        "aggregator",
        "primeintellect",
    )
    assert (pi.accelerator.canonical_name, pi.accelerator_count, pi.accelerator_memory_gb) == (
        "NVIDIA A100-SXM4-80GB",
        1,
        80.0,
    )
    assert pi.region.key == "primeintellect/FI"
    assert not Offer.objects.filter(external_id__contains="__SPOT").exists()
    # nebius: SpotPrice column on the on-demand row.
    nb = Offer.objects.get(
        provider__catalog_name="nebius", external_id="gpu-h100-sxm_8gpu-128vcpu-1600gb@eu-north1"
    )
    assert (nb.price_per_hour, nb.interruptible_price_per_hour, nb.interconnect) == (
        Decimal("23.6000"),
        Decimal("10.0000"),
        "nvlink",
    )
    assert nb.price_per_accelerator_hour == Decimal("2.95")
    # lambda: no spot market; a 1x A100 without 'sxm4' is the PCIe card; upstream empty for non-aggregators.
    la = Offer.objects.get(provider__catalog_name="lambda", external_id="gpu_1x_a100@us-east-1")
    assert (la.accelerator.canonical_name, la.interruptible_price_per_hour, la.upstream_cloud) == (
        "NVIDIA A100-PCIE-40GB",
        None,
        "",
    )
    assert (
        Offer.objects.filter(upstream_cloud="").exclude(provider__catalog_name="primeintellect").count()
        == 423
    )
    assert Offer.objects.filter(provider__catalog_name="primeintellect", upstream_cloud="").count() == 0
    assert (
        Offer.objects.exclude(interruptible_price_per_hour=None).count() == 27
    )  # 15 merged + 8 nebius + 4 mithril
    # Regions carry the energy facts of their energy zone.
    virginia = Region.objects.get(key="us-east-virginia")
    r = Region.objects.get(key="lambda/us-east-1")
    assert (r.energy_zone, r.country, r.grid_ci_gco2_per_kwh, r.pue, r.power_price_usd_per_kwh) == (
        "us-east-virginia",
        "US",
        virginia.grid_ci_gco2_per_kwh,
        virginia.pue,
        virginia.power_price_usd_per_kwh,
    )
    assert r.grid_ci_gco2_per_kwh == 323.05
    assert Region.objects.get(key="nebius/eu-north1").energy_zone == "eu-finland"
    utah = Region.objects.get(key="lambda/us-west-3")
    assert (utah.energy_zone, utah.grid_ci_gco2_per_kwh, utah.latitude) == ("", None, 40.76)
    assert (virginia.latitude, virginia.longitude) == (39.04, -77.49)
    assert (
        Region.objects.filter(latitude__isnull=True).count() == 12
    )  # catalog regions whose site is unpublished


def copy_catalog(catalog_dir: Path, tmp_path: Path) -> Path:
    target = tmp_path / "catalog"
    shutil.copytree(catalog_dir, target)
    return target


def edit_csv(path: Path, edit) -> None:
    """Rewrite a catalog file through `edit(rows) -> rows`, keeping its header and line endings."""
    raw = path.read_bytes()
    newline = "\r\n" if b"\r\n" in raw else "\n"
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        header, rows = reader.fieldnames, list(reader)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=header, lineterminator=newline)
    writer.writeheader()
    writer.writerows(edit(rows))
    path.write_bytes(buf.getvalue().encode())


@pytest.mark.django_db
def test_reimport_is_idempotent_and_tracks_changes(catalog_dir: Path, tmp_path: Path) -> None:
    first = catalog_import(catalog_dir)
    ids = dict(Offer.objects.values_list("external_id", "id"))
    again = catalog_import(catalog_dir)
    assert (again.offers, again.created, again.updated, again.unchanged, again.unlisted) == (
        511,
        0,
        0,
        511,
        0,
    )
    assert again.skipped == first.skipped and again.unknown_accelerators == first.unknown_accelerators
    assert (again.providers_created, again.regions_created) == (0, 0)
    assert dict(Offer.objects.values_list("external_id", "id")) == ids
    assert Provider.objects.count() == 8

    copy = copy_catalog(catalog_dir, tmp_path)

    def change(rows):
        for row in rows:
            if row["InstanceType"] == "gpu_8x_h100_sxm5" and row["Region"] == "us-east-1":
                row["Price"] = "29.99"
        return [r for r in rows if not (r["InstanceType"] == "gpu_1x_a10" and r["Region"] == "us-west-1")]

    edit_csv(copy / "lambda" / "vms.csv", change)
    edited = catalog_import(copy)
    assert (edited.offers, edited.created, edited.updated, edited.unchanged, edited.unlisted) == (
        510,
        0,
        1,
        509,
        1,
    )
    h100 = Offer.objects.get(provider__catalog_name="lambda", external_id="gpu_8x_h100_sxm5@us-east-1")
    assert h100.price_per_hour == Decimal("29.9900")
    assert h100.id == ids["gpu_8x_h100_sxm5@us-east-1"]
    gone = Offer.objects.get(provider__catalog_name="lambda", external_id="gpu_1x_a10@us-west-1")
    assert gone.status == "unlisted"
    assert Offer.objects.count() == 511
    assert Offer.objects.filter(status="listed").count() == 510

    back = catalog_import(catalog_dir)
    assert (back.created, back.updated, back.relisted, back.unlisted) == (0, 2, 1, 0)
    gone.refresh_from_db()
    h100.refresh_from_db()
    assert (gone.status, h100.price_per_hour) == ("listed", Decimal("31.9200"))
    assert Offer.objects.filter(status="listed").count() == 511


@pytest.mark.django_db
def test_a_missing_cloud_folder_leaves_its_offers_alone(catalog_dir: Path, tmp_path: Path) -> None:
    catalog_import(catalog_dir)
    only_nebius = tmp_path / "only"
    shutil.copytree(catalog_dir / "nebius", only_nebius / "nebius")
    report = catalog_import(only_nebius)
    assert [c.cloud for c in report.clouds] == ["nebius"]
    assert (report.unchanged, report.unlisted) == (21, 0)
    assert Offer.objects.filter(status="listed").count() == 511


def snapshot() -> list[tuple]:
    return list(Offer.objects.order_by("id").values_list("id", "external_id", "price_per_hour", "status"))


@pytest.mark.django_db
def test_malformed_file_fails_whole_import_and_writes_nothing(catalog_dir: Path, tmp_path: Path) -> None:
    copy = copy_catalog(catalog_dir, tmp_path)
    path = copy / "seeweb" / "vms.csv"

    def break_price(rows):
        rows[10]["Price"] = "twelve"
        return rows

    edit_csv(path, break_price)
    providers_before, regions_before = Provider.objects.count(), Region.objects.count()
    with pytest.raises(ValidationFailed) as err:
        catalog_import(copy)
    assert err.value.message == f"{path}, line 12: Price 'twelve' is not a number"
    assert err.value.extra == {"path": str(path), "line": 12}
    assert (Offer.objects.count(), Provider.objects.count(), Region.objects.count()) == (
        0,
        providers_before,
        regions_before,
    )

    # With data already imported, a malformed re-import changes nothing either.
    catalog_import(catalog_dir)
    before = snapshot()
    edit_csv(copy / "lambda" / "vms.csv", lambda rows: [{**r, "Price": "1"} for r in rows])
    with pytest.raises(ValidationFailed):
        catalog_import(copy)
    assert snapshot() == before


@pytest.mark.django_db
def test_command_prints_report_and_json(catalog_dir: Path, tmp_path: Path) -> None:
    out = io.StringIO()
    call_command("import_catalog", "skypilot", str(catalog_dir), stdout=out)
    text = out.getvalue()
    assert "rows read 789 (with accelerators 585), offers 511, spot rows merged 15" in text
    assert "skipped: cpu_only 204, no_region 15, unknown_accelerator 44" in text
    assert "unknown accelerators: A30 1, A4000 3, L40 13, RTX-A4000 5, RTX6000 18, RTXPRO6000 4" in text
    assert (
        "  primeintellect     190       115      88           15  cpu_only 75, unknown_accelerator 12; "
        "A4000 3, L40 9" in text
    )

    out = io.StringIO()
    call_command("import_catalog", "skypilot", str(catalog_dir), "--json", stdout=out)
    data = json.loads(out.getvalue())
    assert (data["rows_read"], data["offers"], data["created"], data["unchanged"]) == (789, 511, 0, 511)
    assert data["clouds"][3] == {
        "cloud": "lambda",
        "rows_read": 408,
        "rows_with_accelerator": 374,
        "offers": 357,
        "spot_merged": 0,
        "skipped": {"cpu_only": 34, "unknown_accelerator": 17},
        "unknown_accelerators": {"RTX6000": 17},
        "unmapped_regions": [],
    }

    copy = copy_catalog(catalog_dir, tmp_path)
    gpu_info = copy / "hyperbolic" / "vms.csv"
    edit_csv(gpu_info, lambda rows: [{**rows[0], "GpuInfo": "{'Gpus': ["}, *rows[1:]])
    with pytest.raises(CommandError) as err:
        call_command("import_catalog", "skypilot", str(copy))
    assert str(err.value).startswith(
        f"import failed, nothing was written: {gpu_info}, line 2: GpuInfo cannot be parsed"
    )
    with pytest.raises(CommandError, match="not a directory"):
        call_command("import_catalog", "skypilot", str(tmp_path / "nowhere"))


@pytest.mark.django_db
def test_demo_load_is_idempotent_and_matches_the_import(catalog_dir: Path) -> None:
    from marketplace.demo import read_demo_offers
    from marketplace.models import ApiToken, User
    from marketplace.services.demo import DEMO_PASSWORD, demo_load, demo_token

    rows = read_demo_offers()
    assert (len(rows), sum(r.synthetic for r in rows)) == (525, 14)
    first = demo_load()
    assert (first.offers, first.synthetic_offers, first.offers_created, first.offers_updated) == (
        525,
        14,
        525,
        0,
    )
    assert (first.users_created, first.providers, first.providers_created) == (3, 13, 13)
    state = sorted(Offer.objects.values_list("provider__slug", "external_id", "price_per_hour", "status"))
    second = demo_load()
    assert (second.offers_created, second.offers_updated, second.users_created, second.providers_created) == (
        0,
        0,
        0,
        0,
    )
    assert (
        sorted(Offer.objects.values_list("provider__slug", "external_id", "price_per_hour", "status"))
        == state
    )
    assert (Offer.objects.count(), Provider.objects.count(), User.objects.count()) == (525, 13, 3)

    # The derived rows are exactly what the real import produces: importing the catalogs changes nothing.
    report = catalog_import(catalog_dir)
    assert (report.created, report.updated, report.unchanged, report.unlisted) == (0, 0, 511, 0)

    admin, alice, bob = (User.objects.get(username=n) for n in ("admin", "alice", "bob"))
    assert (admin.role, admin.is_staff, admin.is_superuser) == ("operator", True, True)
    assert (alice.role, bob.role, bob.provider.name) == ("customer", "provider", "Demo GPU Host")
    assert all(u.check_password(DEMO_PASSWORD) for u in (admin, alice, bob))

    hpc = Offer.objects.get(external_id="hpc-a100-4x-ib@eu-finland")
    assert (hpc.driver, hpc.inter_node, hpc.provider.kind, hpc.source, hpc.nodes_available) == (
        "slurm",
        "infiniband",
        "hpc_center",
        "provider",
        16,
    )
    ascend = Offer.objects.get(external_id="ascend910b-8x@cn-gansu-qingyang")
    assert (ascend.accelerator.canonical_name, ascend.interconnect, ascend.region.key) == (
        "Huawei Ascend 910B",
        "hccs",
        "cn-gansu-qingyang",
    )
    assert ascend.region.grid_ci_gco2_per_kwh == 477.2
    assert Offer.objects.filter(provider=bob.provider).count() == 3

    from marketplace.billing.models import CustomerBilling, JournalEntry

    # alice has a saved test card (one billing profile after two loads) and no ledger movement: nothing was paid.
    assert list(CustomerBilling.objects.values_list("user__username", "default_payment_method")) == [
        ("alice", "pm_card_visa")]
    assert not JournalEntry.objects.exists()

    key1, key2 = demo_token("alice"), demo_token("alice")
    assert key1 != key2
    assert ApiToken.objects.filter(user=alice, name="demo", revoked_at__isnull=True).count() == 1


@pytest.mark.django_db
def test_load_demo_command_prints_logins() -> None:
    out = io.StringIO()
    call_command("load_demo", stdout=out)
    text = out.getvalue()
    assert "Demo data: 525 offers (14 synthetic) from 13 providers" in text
    assert "http://127.0.0.1:8000/admin/" in text
    assert "password 'demo-pass-123'" in text
    key = text.split("Authorization: Token ")[1].split()[0]
    from marketplace.models import ApiToken
    from marketplace.services.tokens import hash_key

    assert ApiToken.objects.get(key_hash=hash_key(key)).user.username == "alice"
