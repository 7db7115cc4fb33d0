"""Journey 2: a provider uploads a CSV of machines (one bad row reported, nothing saved until the file is fixed
and confirmed), sees the offers listed, edits and unlists one, and a customer's search finds the others."""

from __future__ import annotations

from decimal import Decimal

import pytest
from playwright.sync_api import expect

from tests.portal.conftest import PASSWORD, sign_in

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

HEADER = "external_id,name,accelerator,count,region,price_per_hour,nodes_available,interconnect,inter_node\n"
GOOD_ROWS = (
    "fjord-h100-1,fjord-8x-h100,H100,8,eu-finland,21.50,3,nvlink,infiniband\n"
    "fjord-l40s-1,fjord-4x-l40s,L40S,4,eu-finland,4.80,6,pcie,none\n"
)
BAD_ROW = "fjord-mi300x-1,fjord-8x-mi300x,MI300X,8,mars-north-1,19.90,2,xgmi,roce\n"
FIXED_ROW = "fjord-mi300x-1,fjord-8x-mi300x,MI300X,8,eu-sweden,19.90,2,xgmi,roce\n"


def _csv(*rows: str) -> dict:
    return {"name": "machines.csv", "mimeType": "text/csv", "buffer": (HEADER + "".join(rows)).encode()}


def test_provider_uploads_machines_and_customers_find_them(page, url, portal_data, shot):
    from marketplace.models import Offer, Provider, User

    offers_before = Offer.objects.count()

    # Sign up as a provider with a new organisation.
    page.goto(url("/signup/"))
    page.get_by_label("Username").fill("freya")
    page.get_by_label("Email").fill("freya@fjord.example")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_label("list capacity (provider)").check()
    page.get_by_label("Organisation (providers)").fill("Fjord Compute")
    page.get_by_role("button", name="Create account").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Fjord Compute")
    provider = Provider.objects.get(name="Fjord Compute")
    assert provider.slug == "fjord-compute" and provider.verification_status == "unverified"
    assert User.objects.get(username="freya").provider_id == provider.pk

    # Upload a file with one bad row: the report names it; nothing is saved.
    page.get_by_role("link", name="Upload CSV").click()
    page.set_input_files("#id_file", _csv(GOOD_ROWS, BAD_ROW))
    page.get_by_role("button", name="Check file").click()
    expect(page.locator("#report-errors")).to_contain_text("1 of 3 rows have problems. Nothing was saved.")
    bad = page.locator("#report-rows tr.bad-row")
    expect(bad).to_have_count(1)
    expect(bad).to_have_attribute("data-line", "4")
    expect(bad).to_contain_text("region: unknown region 'mars-north-1'")
    expect(page.locator("#confirm-import")).to_have_count(0)
    assert Offer.objects.filter(provider=provider).count() == 0
    assert Offer.objects.count() == offers_before
    shot(page, "upload-bad-row")

    # Fix the row and upload again: a clean report, still nothing saved until confirmed.
    page.set_input_files("#id_file", _csv(GOOD_ROWS, FIXED_ROW))
    page.get_by_role("button", name="Check file").click()
    expect(page.locator("#report-clean")).to_contain_text(
        "All 3 rows are valid. Importing will create 3, update 0 and leave 0 unchanged. Nothing is saved yet.")
    expect(page.locator("#report-rows .badge")).to_have_text(["create", "create", "create"])
    assert Offer.objects.filter(provider=provider).count() == 0
    shot(page, "upload-clean")
    page.locator("#confirm-import").click()
    expect(page.locator(".messages")).to_contain_text("Imported machines.csv: 3 created, 0 updated, 0 unchanged.")

    rows = page.locator("#provider-offers tbody tr")
    expect(rows).to_have_count(3)
    saved = {o.external_id: o for o in Offer.objects.filter(provider=provider).select_related("region")}
    assert set(saved) == {"fjord-h100-1", "fjord-l40s-1", "fjord-mi300x-1"}
    assert {k: (o.status, o.price_per_hour, o.nodes_available, o.region.key) for k, o in saved.items()} == {
        "fjord-h100-1": ("listed", Decimal("21.5000"), 3, "eu-finland"),
        "fjord-l40s-1": ("listed", Decimal("4.8000"), 6, "eu-finland"),
        "fjord-mi300x-1": ("listed", Decimal("19.9000"), 2, "eu-sweden"),
    }
    assert Offer.objects.count() == offers_before + 3
    shot(page, "provider-offers")

    # Edit a price inline (htmx) and unlist another.
    l40s = saved["fjord-l40s-1"]
    row = page.locator(f"#offer-{l40s.pk}")
    row.get_by_role("link", name="Edit fjord-4x-l40s").click()
    page.locator(f"#offer-{l40s.pk} input[name=price_per_hour]").fill("4.25")
    page.locator(f"#offer-{l40s.pk}").get_by_role("button", name="Save").click()
    expect(page.locator(f"#offer-{l40s.pk}")).to_contain_text("Saved.")
    expect(page.locator(f"#offer-{l40s.pk}")).to_contain_text("$4.25")
    l40s.refresh_from_db()
    assert l40s.price_per_hour == Decimal("4.2500")
    mi300x = saved["fjord-mi300x-1"]
    page.locator(f"#offer-{mi300x.pk}").get_by_role("button", name="Unlist fjord-8x-mi300x").click()
    expect(page.locator(f"#offer-{mi300x.pk} .badge")).to_have_text("unlisted")
    mi300x.refresh_from_db()
    assert mi300x.status == "unlisted"

    # A customer's search finds the two listed offers, cheapest first, and not the unlisted one.
    page.get_by_role("button", name="Sign out").click()
    sign_in(page, url, "alice", "demo-pass-123")
    page.goto(url("/offers/"))
    page.get_by_label("Query").fill("provider=fjord-compute")
    page.get_by_role("button", name="Search").click()
    found = page.locator("#offer-table tbody tr")
    expect(found).to_have_count(2)
    expect(found.nth(0)).to_contain_text("fjord-4x-l40s")
    expect(found.nth(0)).to_contain_text("$4.25")
    expect(found.nth(1)).to_contain_text("fjord-8x-h100")
    expect(found.nth(1)).to_contain_text("$21.50")
    shot(page, "customer-finds-offers")

    # ... and orders one as listed: more nodes than are free is refused beside the field; a fit gets a quote.
    found.nth(1).get_by_role("link", name="Order fjord-8x-h100 from Fjord Compute").click()
    page.get_by_label("Nodes").fill("4")
    page.get_by_label("For how long (hours)").fill("3")
    page.get_by_role("button", name="Get a quote").click()
    expect(page.locator("#err-nodes")).to_have_text(
        "This offer cannot run it: fewer nodes available than the workload needs.")
    page.get_by_label("Nodes").fill("2")
    page.get_by_role("button", name="Get a quote").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Order 2 nodes of 8× NVIDIA H100-SXM5-80GB")
    expect(page.locator("#quote")).to_contain_text("$43.00 per hour for the configuration")
    expect(page.locator("#quote")).to_contain_text("$129.00 in total")


def test_capacity_form_errors_beside_fields_and_policies(page, url, portal_data, shot):
    from marketplace.models import Offer, Provider

    sign_in(page, url, "bob", "demo-pass-123")
    provider = Provider.objects.get(slug="demo-gpu-host")
    before = Offer.objects.filter(provider=provider).count()
    page.goto(url("/provider/offers/new/"))
    page.get_by_label("Node type name").fill("gpu-2x-h200")
    page.locator("#id_accelerator").fill("H2OO")
    page.get_by_label("Accelerators per node").fill("2")
    page.get_by_label("Region").fill("eu-finland")
    page.get_by_label("Price per node-hour (USD)").fill("9.50")
    page.get_by_label("Interruptible price (USD)").fill("12")
    page.get_by_role("button", name="Save offer").click()
    expect(page.locator("#err-accelerator")).to_contain_text("H2OO")
    expect(page.locator("#err-interruptible_price_per_hour")).to_have_text(
        "the interruptible price (12) cannot be higher than the on-demand price (9.50)")
    assert Offer.objects.filter(provider=provider).count() == before
    shot(page, "capacity-form-errors")

    page.locator("#id_accelerator").fill("H200")
    page.get_by_label("Interruptible price (USD)").fill("5")
    page.get_by_role("button", name="Save offer").click()
    expect(page.locator(".messages")).to_contain_text("Offer “gpu-2x-h200” created (listed).")
    offer = Offer.objects.get(provider=provider, name="gpu-2x-h200")
    assert (offer.accelerator.canonical_name, offer.accelerator_count, offer.price_per_hour,
            offer.interruptible_price_per_hour, offer.status) == (
        "NVIDIA H200-SXM-141GB", 2, Decimal("9.5000"), Decimal("5.0000"), "listed")

    # Policies: accept only training and HPC, a 2-hour minimum rental.
    page.goto(url("/provider/organisation/"))
    expect(page.locator("#members")).to_contain_text("bob")
    page.get_by_label("Minimum rental (hours)").fill("2")
    for kind in ("llm inference", "fine tuning", "batch", "resources"):
        page.get_by_label(kind, exact=True).uncheck()
    page.get_by_role("button", name="Save policies").click()
    expect(page.locator(".messages")).to_contain_text("Policies saved")
    provider.refresh_from_db()
    assert (provider.min_rental_hours, provider.allowed_workload_kinds) == (Decimal("2.00"), ["llm_training", "hpc"])
    # Unchecking every kind is refused beside the field, and changes nothing.
    for kind in ("llm training", "hpc"):
        page.get_by_label(kind, exact=True).uncheck()
    page.get_by_role("button", name="Save policies").click()
    expect(page.locator("#err-allowed_workload_kinds")).to_have_text("Accept at least one kind of workload.")
    provider.refresh_from_db()
    assert provider.allowed_workload_kinds == ["llm_training", "hpc"]
