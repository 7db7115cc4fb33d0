"""Portal logic against the database: CSV reading and the check-then-import flow, why a search found nothing,
sign-up and policy services, and the provider dashboard's buckets."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from marketplace.api.offer_serializers import OfferWriteSerializer
from marketplace.portal import csv_import

pytestmark = pytest.mark.django_db

HEADER = "external_id,name,accelerator,count,region,price_per_hour,nodes_available\n"


# ----------------------------------------------------------------------------------------- CSV reading
def test_read_csv_skips_blank_lines_and_keeps_line_numbers():
    parsed = csv_import.read_csv(("\ufeff" + HEADER + "a,n1,H100,8,us-east-virginia,20,2\n\n"
                                  "b,n2,H100,4,us-east-virginia,10,,\n").replace(",,\n", ",\n").encode())
    assert parsed.lines == [2, 4]
    assert parsed.rows[1] == {"external_id": "b", "name": "n2", "accelerator": "H100", "count": "4",
                              "region": "us-east-virginia", "price_per_hour": "10"}


@pytest.mark.parametrize(("content", "message"), [
    (b"", "The file is empty: expected a header row, then one machine per row."),
    (HEADER.encode(), "The file has a header but no machines."),
    (b"name,colour\nx,red\n", "Unknown column(s) colour. Valid columns: " + ", ".join(
        f for f in OfferWriteSerializer().fields if f != "provider") + "."),
    (b"name,name\nx,y\n", "Column(s) name appear more than once in the header."),
    ((HEADER + "a,n,H100,8\n").encode(), "Line 2 has 4 cells; the header has 7."),
    (b"name\n\xff\xfe\n", "The file is not UTF-8 text; save it as \u201cCSV UTF-8\u201d and upload again."),
])
def test_read_csv_refuses_files_it_cannot_read(content, message):
    with pytest.raises(csv_import.CsvFileError) as exc:
        csv_import.read_csv(content)
    assert str(exc.value) == message


def test_check_reports_every_bad_row_and_writes_nothing(member_a):
    from marketplace.models import Offer

    parsed = csv_import.read_csv((HEADER + "a,n1,H100,8,us-east-virginia,20,2\n"
                                           "b,n2,H100,0,us-east-virginia,20,2\n"
                                           "a,n3,Nope9000,8,mars,x,2\n").encode())
    report = csv_import.check(member_a, parsed, list_new=True)
    assert not report.clean
    assert [(r.line, r.errors) for r in report.rows] == [
        (2, []),
        (3, ["count: Ensure this value is greater than or equal to 1."]),
        (4, ["price_per_hour: A valid number is required.", "external_id: 'a' is also used by row 0",
             "accelerator: " + report.rows[2].errors[2].removeprefix("accelerator: "),
             "region: unknown region 'mars'"]),
    ]
    assert "Nope9000" in report.rows[2].errors[2]
    assert Offer.objects.count() == 0


def test_check_then_commit_creates_listed_offers_and_updates_by_external_id(member_a):
    from marketplace.models import Offer

    parsed = csv_import.read_csv((HEADER + "a,n1,H100,8,us-east-virginia,20,2\n"
                                           "b,n2,H100,4,us-east-virginia,10,1\n").encode())
    report = csv_import.check(member_a, parsed, list_new=True)
    assert report.clean and (report.created, report.updated, report.unchanged) == (2, 0, 0)
    assert Offer.objects.count() == 0  # the check is a dry run
    report, result = csv_import.commit(member_a, parsed, list_new=True)
    assert result is not None and len(result.created) == 2
    assert sorted(Offer.objects.values_list("external_id", "status", "price_per_hour")) == [
        ("a", "listed", Decimal("20.0000")), ("b", "listed", Decimal("10.0000"))]
    # Unlist b; a new file updates a's price and leaves b's status alone (list_new is only for new rows).
    Offer.objects.filter(external_id="b").update(status="unlisted")
    again = csv_import.read_csv((HEADER + "a,n1,H100,8,us-east-virginia,18,2\n"
                                          "b,n2,H100,4,us-east-virginia,10,1\n").encode())
    report = csv_import.check(member_a, again, list_new=True)
    assert [r.action for r in report.rows] == ["update", "unchanged"]
    csv_import.commit(member_a, again, list_new=True)
    assert sorted(Offer.objects.values_list("external_id", "status", "price_per_hour")) == [
        ("a", "listed", Decimal("18.0000")), ("b", "unlisted", Decimal("10.0000"))]


def test_without_list_new_new_rows_are_drafts(member_a):
    from marketplace.models import Offer

    parsed = csv_import.read_csv((HEADER + "a,n1,H100,8,us-east-virginia,20,2\n").encode())
    csv_import.commit(member_a, parsed, list_new=False)
    assert Offer.objects.get().status == "draft"


def test_customers_cannot_import(customer):
    parsed = csv_import.read_csv((HEADER + "a,n1,H100,8,us-east-virginia,20,2\n").encode())
    report = csv_import.check(customer, parsed, list_new=True)
    assert report.message == "Only provider members and operators can write offers." and not report.clean


# ----------------------------------------------------------------------------- empty search analysis
def test_why_no_offers_counts_each_condition(provider_a, make_offer, h100):
    from broker.query.language import parse
    from marketplace.portal.selectors import why_no_offers

    make_offer(provider_a, price_per_hour=Decimal("20"))
    make_offer(provider_a, price_per_hour=Decimal("30"), accelerator_count=4)
    make_offer(provider_a, price_per_hour=Decimal("5"), accelerator_count=1)
    total, impacts = why_no_offers(parse("count>=8 price_per_hour<=10").clauses)
    assert total == 3
    assert [(i.clause, i.matches_without, i.nearest) for i in impacts] == [
        ("count>=8", 1, "the highest count among them is 1"),
        ("price_per_hour<=10", 1, "the lowest price_per_hour among them is 20"),
    ]


# ------------------------------------------------------------------------------- sign-up and policies
def test_signup_creates_a_provider_member_with_a_unique_slug(make_provider):
    from marketplace.portal.services import account_signup

    make_provider("Fjord", slug="fjord-compute")
    user = account_signup(username="freya", email="f@x.example", password="a-long-password-1", role="provider",
                          organisation="Fjord Compute")
    assert (user.role, user.provider.name, user.provider.slug, user.check_password("a-long-password-1")) == (
        "provider", "Fjord Compute", "fjord-compute-2", True)


def test_signup_refusals_change_nothing(make_provider, customer):
    from marketplace.errors import ValidationFailed
    from marketplace.models import Provider, User
    from marketplace.portal.services import account_signup

    make_provider("Fjord Compute")
    before = (User.objects.count(), Provider.objects.count())
    with pytest.raises(ValidationFailed) as exc:
        account_signup(username="CUSTOMER", email="", password="a-long-password-1", role="provider",
                       organisation="fjord compute")
    assert exc.value.fields == {
        "organisation": ["'fjord compute' is already registered; ask one of its members to add you instead"],
        "username": ["this username is taken"]}
    with pytest.raises(ValidationFailed) as exc:
        account_signup(username="new", email="", password="a-long-password-1", role="operator")
    assert exc.value.fields == {"role": ["choose customer or provider"]}
    assert (User.objects.count(), Provider.objects.count()) == before


def test_policy_update_bumps_the_catalog_and_stores_all_kinds_as_empty(member_a, customer):
    from marketplace.errors import PermissionDeniedError, ValidationFailed
    from marketplace.models.providers import WORKLOAD_KINDS
    from marketplace.portal.services import provider_policy_update
    from marketplace.services.catalog_version import catalog_version

    before = catalog_version()
    provider = provider_policy_update(user=member_a, min_rental_hours=Decimal("2"),
                                      allowed_workload_kinds=["hpc", "batch"], interruptible_allowed=False)
    assert (provider.min_rental_hours, provider.allowed_workload_kinds, provider.interruptible_allowed) == (
        Decimal("2"), ["hpc", "batch"], False)
    assert catalog_version() == before + 1
    provider = provider_policy_update(user=member_a, min_rental_hours=Decimal("2"),
                                      allowed_workload_kinds=list(WORKLOAD_KINDS), interruptible_allowed=False)
    assert provider.allowed_workload_kinds == [] and catalog_version() == before + 2
    provider_policy_update(user=member_a, min_rental_hours=Decimal("2"), allowed_workload_kinds=list(WORKLOAD_KINDS),
                           interruptible_allowed=False)
    assert catalog_version() == before + 2  # nothing changed, no bump
    with pytest.raises(ValidationFailed) as exc:
        provider_policy_update(user=member_a, min_rental_hours=Decimal("9000"), allowed_workload_kinds=["x"],
                               interruptible_allowed=True)
    assert exc.value.fields == {"min_rental_hours": ["must be between 0 and 8784 hours"],
                                "allowed_workload_kinds": [
                                    f"unknown kind(s) x; use {', '.join(WORKLOAD_KINDS)}"]}
    with pytest.raises(PermissionDeniedError):
        provider_policy_update(user=customer, min_rental_hours=Decimal(0), allowed_workload_kinds=["hpc"],
                               interruptible_allowed=True)


# ------------------------------------------------------------------------------------------- dashboard
def test_dashboard_buckets_utilisation_and_outcomes(provider_a, make_offer, customer):
    from marketplace.orders.models import Order
    from marketplace.portal.dashboard import provider_dashboard

    offer = make_offer(provider_a, accelerator_count=8, nodes_available=2)  # 16 accelerators listed
    now = datetime(2026, 11, 27, 12, 30, tzinfo=UTC)

    def order(state: str, running_at, finished_at, created_at) -> None:
        row = Order.objects.create(customer=customer, offer=offer, nodes=1, accelerator_count=8, command="x",
                                   duration_hours=Decimal(1), state=state, driver="simulated",
                                   idempotency_key=f"k{Order.objects.count()}", request_hash="h",
                                   node_price_per_hour=Decimal(20), state_changed_at=now, checked_at=now,
                                   running_at=running_at, finished_at=finished_at)
        Order.objects.filter(pk=row.pk).update(created_at=created_at)

    # 10:00-11:00 one node (8 of 16 accelerators) the whole hour; 12:00-12:15 one node; one failed start.
    order("completed", now.replace(hour=10, minute=0), now.replace(hour=11, minute=0), now.replace(hour=9, minute=55))
    order("running", now.replace(hour=12, minute=0), None, now.replace(hour=11, minute=58))
    order("failed", None, now.replace(hour=12, minute=5), now.replace(hour=12, minute=4))
    dash = provider_dashboard(provider_a, "24h", now=now)
    labels, busy = dash["utilisation"]["labels"], dash["utilisation"]["datasets"][0]["data"]
    assert (labels[-1], labels[-3], labels[-2]) == ("12:00", "10:00", "11:00")
    assert (busy[-3], busy[-2]) == (50.0, 0.0)
    assert busy[-1] == 50.0  # 30 of the current hour's 30 minutes so far
    assert dash["orders_total"] == 3 and dash["outcomes"] == {"completed": 1, "failed": 1, "cancelled": 0,
                                                              "active": 1}
    by_label = {d["label"]: d["data"] for d in dash["orders"]["datasets"]}
    assert (by_label["completed"][-4], by_label["active"][-2], by_label["failed"][-1]) == (1, 1, 1)
    assert dash["earned_total"] == Decimal("0.00") and dash["capacity"] == 16
    assert len(provider_dashboard(provider_a, "1h", now=now)["utilisation"]["labels"]) == 60
    assert provider_dashboard(provider_a, "nonsense", now=now)["range"] == "24h"
