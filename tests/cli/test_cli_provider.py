"""brokerctl for providers against a live test server: upload offers from a CSV, list them, unlist one."""

from __future__ import annotations

import json

import pytest

from tests.cli.helpers import table

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

CSV = """external_id,name,accelerator,count,region,price_per_hour,vcpus,ram_gb,status
part-gpu,gpu partition node,A100 80GB,4,us-east-virginia,9.50,64,512,listed
part-big,big memory node,H100,8,us-east-virginia,21.00,96,2048,draft
"""


def test_upload_list_update_and_unlist(brokerctl, provider_a, member_a, token_for, tmp_path):
    from marketplace.models import Offer

    token = token_for(member_a)
    offers_csv = tmp_path / "offers.csv"
    offers_csv.write_text(CSV)
    run = brokerctl("offers", "upload", str(offers_csv), token=token)
    assert (run.exit_code, run.stderr) == (0, "")
    gpu = Offer.objects.get(provider=provider_a, external_id="part-gpu")
    big = Offer.objects.get(provider=provider_a, external_id="part-big")
    assert run.stdout == f"2 created, 0 updated, 0 unchanged\noffer ids in row order: {gpu.pk}, {big.pk}\n"
    assert (gpu.status, gpu.accelerator.canonical_name, str(gpu.price_per_hour)) == (
        "listed", "NVIDIA A100-SXM4-80GB", "9.5000")

    listing = table(brokerctl("offers", "list", token=token).stdout)
    assert listing[0] == ["ID", "EXTERNAL_ID", "STATUS", "ACCELERATOR", "COUNT", "MEM_GB", "VCPUS", "RAM_GB", "REGION",
                          "$/HOUR", "$/ACC_HOUR", "NODES"]
    assert sorted(listing[1:]) == sorted([
        [str(gpu.pk), "part-gpu", "listed", "NVIDIA A100-SXM4-80GB", "4", "80", "64", "512", "us-east-virginia",
         "9.5000", "2.375000", "1"],
        [str(big.pk), "part-big", "draft", "NVIDIA H100-SXM5-80GB", "8", "80", "96", "2048", "us-east-virginia",
         "21.0000", "2.625000", "1"],
    ])
    drafts = json.loads(brokerctl("offers", "list", "--status", "draft", "--json", token=token).stdout)
    assert [o["id"] for o in drafts] == [big.pk]

    offers_csv.write_text(CSV.replace("9.50", "8.75"))
    again = brokerctl("offers", "upload", str(offers_csv), "--json", token=token)
    assert json.loads(again.stdout) == {"created": [], "updated": [gpu.pk], "unchanged": [big.pk],
                                        "ids": [gpu.pk, big.pk]}

    unlisted = brokerctl("offers", "unlist", str(gpu.pk), token=token)
    assert (unlisted.exit_code, unlisted.stdout) == (0, f"Offer {gpu.pk} is unlisted.\n")
    shown = json.loads(brokerctl("offers", "show", str(gpu.pk), "--json", token=token).stdout)
    assert (shown["status"], shown["price_per_hour"]) == ("unlisted", "8.7500")


def test_a_bad_row_changes_nothing_and_names_the_row(brokerctl, provider_a, member_a, token_for, tmp_path):
    from marketplace.models import Offer

    bad = tmp_path / "bad.csv"
    bad.write_text(CSV.replace("21.00", "-3"))
    run = brokerctl("offers", "upload", str(bad), token=token_for(member_a))
    assert (run.exit_code, run.stdout) == (1, "")
    lines = run.stderr.splitlines()
    assert lines[0].endswith("(HTTP 400, invalid)")
    assert "  offers.1.price_per_hour: Ensure this value is greater than or equal to 0." in lines
    assert Offer.objects.filter(provider=provider_a).count() == 0


def test_a_customer_cannot_upload_offers(brokerctl, customer, token_for, tmp_path):
    offers_csv = tmp_path / "offers.csv"
    offers_csv.write_text(CSV)
    run = brokerctl("offers", "upload", str(offers_csv), token=token_for(customer))
    assert (run.exit_code, run.stdout) == (1, "")
    assert run.stderr == ("error: Only provider members and operators can write offers. "
                          "(HTTP 403, permission_denied)\n")
    missing = brokerctl("offers", "upload", str(tmp_path / "nope.csv"), token=token_for(customer))
    assert missing.exit_code == 2
    assert "does not exist" in missing.stderr
