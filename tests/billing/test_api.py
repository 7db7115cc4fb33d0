"""The billing API: credit and top-ups, charges, invoices (JSON and CSV downloads), operator refunds and
overdrafts, permissions, the one error shape."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from tests.billing.conftest import finish_order

pytestmark = pytest.mark.django_db

D = Decimal


def _topup_via_api(driver, api, amount: str = "25.00") -> dict:
    response = api.post("/api/v1/billing/topups/", {"amount": amount, "payment_method": "pm_card_visa"},
                        format="json")
    assert response.status_code == 201, response.content
    driver.deliver_events({"payment_intent.succeeded"})
    driver.run_work()
    return response.json()


def test_credit_and_topups(fake, driver, client_for, customer):
    api = client_for(customer)
    assert api.get("/api/v1/billing/credit/").json() == {
        "currency": "usd", "balance": "0.00", "overdraft_limit": "0.00", "available": "0.00",
        "default_payment_method": "", "mode": "test"}
    created = _topup_via_api(driver, api)
    assert (created["status"], created["amount"], created["credited_amount"]) == ("processing", "25.00", "0.00")
    detail = api.get(f"/api/v1/billing/topups/{created['id']}/").json()
    assert (detail["status"], detail["credited_amount"]) == ("succeeded", "25.00")
    assert api.get("/api/v1/billing/credit/").json()["balance"] == "25.00"
    assert [t["id"] for t in api.get("/api/v1/billing/topups/").json()["results"]] == [created["id"]]


def test_topup_without_payment_method_returns_the_client_secret(fake, client_for, customer):
    response = client_for(customer).post("/api/v1/billing/topups/", {"amount": "5.00"}, format="json")
    body = response.json()
    assert (response.status_code, body["status"]) == (201, "requires_payment")
    assert body["client_secret"].startswith(body["payment_intent_id"] + "_secret_")


def test_declined_topup_is_402(fake, client_for, customer):
    from marketplace.billing.models import JournalEntry, TopUp

    response = client_for(customer).post("/api/v1/billing/topups/",
                                         {"amount": "5.00", "payment_method": "pm_card_chargeDeclined"},
                                         format="json")
    assert response.status_code == 402
    topup = TopUp.objects.get()
    assert response.json() == {"error": {"code": "payment_declined", "message": "Your card was declined.",
                                         "fields": {}, "decline_code": "generic_decline", "topup_id": topup.pk}}
    assert (topup.status, topup.failure_code) == ("failed", "card_declined")
    assert JournalEntry.objects.count() == 0


@pytest.mark.parametrize("body, fields", [
    ({"amount": "0.50"}, {"amount": ["Ensure this value is greater than or equal to 1.00."]}),
    ({"amount": "10000.01"}, {"amount": ["Ensure this value is less than or equal to 10000.00."]}),
    ({"amount": "5.001"}, {"amount": ["Ensure that there are no more than 2 decimal places."]}),
    ({"amount": "ten"}, {"amount": ["A valid number is required."]}),
    ({}, {"amount": ["This field is required."]}),
    ({"amount": "5.00", "payment_method": "card_123"}, {"payment_method": ["Expected a pm_… id."]}),
])
def test_bad_topups_are_400_and_change_nothing(fake, client_for, customer, body, fields):
    from marketplace.billing.models import TopUp

    response = client_for(customer).post("/api/v1/billing/topups/", body, format="json")
    assert (response.status_code, response.json()["error"]["fields"]) == (400, fields)
    assert not TopUp.objects.exists() and fake.requests == []


def test_only_customers_top_up(fake, client_for, member_a, anon):
    response = client_for(member_a).post("/api/v1/billing/topups/", {"amount": "5.00"}, format="json")
    assert (response.status_code, response.json()["error"]["code"]) == (403, "permission_denied")
    assert anon.get("/api/v1/billing/credit/").status_code == 401


def test_profile_saves_a_default_card(fake, client_for, customer):
    api = client_for(customer)
    response = api.put("/api/v1/billing/profile/", {"default_payment_method": "pm_card_visa"}, format="json")
    assert response.json()["default_payment_method"] == "pm_card_visa"
    bad = api.put("/api/v1/billing/profile/", {"default_payment_method": "4242424242424242"}, format="json")
    assert bad.json()["error"]["fields"] == {
        "default_payment_method": ["Expected a PaymentMethod id such as pm_card_visa."]}


def _settled_order(driver, customer, provider, make_order, metered: str, seconds: float):
    from marketplace.billing.services.order_hooks import billing_authorize_order_for, billing_order_finished

    order = make_order(customer, provider, state="running", node_price="8.0000", accelerator_count=8)
    billing_authorize_order_for(order, method="credit")
    finish_order(order, "completed", metered=metered, seconds=seconds)
    billing_order_finished(order.pk)
    driver.run_work()
    return order


def test_charges_and_invoices(fake, driver, client_for, customer, make_user, operator, provider_a, make_order):
    api = client_for(customer)
    _topup_via_api(driver, api, "30.00")
    order = _settled_order(driver, customer, provider_a, make_order, "12.00", 5400.0)
    charge = api.get(f"/api/v1/billing/charges/{order.pk}/").json()
    assert (charge["status"], charge["method"], charge["usage_amount"], charge["fee_amount"],
            charge["usage_quantity"]) == ("settled", "credit", "12.00", "1.20", "12.0000")
    assert api.get("/api/v1/billing/charges/").json()["count"] == 1

    invoice = api.get(f"/api/v1/billing/invoices/orders/{order.pk}/").json()
    assert (invoice["number"], invoice["status"], invoice["totals"]["total"]) == (f"INV-O{order.pk}", "final",
                                                                                  "12.00")
    assert invoice["payments"] == [{"method": "credit", "amount": "12.00", "reference": "prepaid credit"}]
    download = api.get(f"/api/v1/billing/invoices/orders/{order.pk}/csv/")
    assert download["Content-Type"] == "text/csv; charset=utf-8"
    assert download["Content-Disposition"] == f'attachment; filename="INV-O{order.pk}.csv"'
    rows = download.content.decode().splitlines()
    assert rows[0] == "invoice,kind,description,order_id,quantity,unit,unit_price,amount,currency"
    assert rows[1].endswith(f",{order.pk},12.0000,accelerator-hour,1.0000,12.00,usd")
    assert rows[2:] == [f"INV-O{order.pk},total,usage,,,,,12.00,usd", f"INV-O{order.pk},total,not_charged,,,,,0.00,usd",
                        f"INV-O{order.pk},total,refunds,,,,,0.00,usd", f"INV-O{order.pk},total,total,,,,,12.00,usd"]

    # An operator refunds 2.00 of it; the monthly invoice shows usage, refund and the credit bought.
    refund = client_for(operator).post(f"/api/v1/billing/charges/{order.pk}/refund/",
                                       {"reason": "goodwill", "amount": "2.00"}, format="json")
    assert (refund.status_code, refund.json()["refunded_amount"]) == (200, "2.00")
    month = f"{datetime.now(UTC):%Y-%m}"
    monthly = api.get(f"/api/v1/billing/invoices/months/{month}/").json()
    assert [(line["kind"], line["amount"]) for line in monthly["lines"]] == [("usage", "12.00"), ("refund", "-2.00")]
    assert [(line["kind"], line["amount"]) for line in monthly["credits"]] == [("credit_purchase", "30.00")]
    assert monthly["totals"] == {"charges": "12.00", "refunds": "2.00", "total": "10.00", "paid_by_card": "0.00",
                                 "paid_from_credit": "12.00", "credit_purchased": "30.00",
                                 "credit_balance_at_end": "20.00"}
    assert monthly["status"] == "open"
    csv_rows = api.get(f"/api/v1/billing/invoices/months/{month}/csv/").content.decode().splitlines()
    assert len(csv_rows) == 1 + 3 + 7
    index = api.get("/api/v1/billing/invoices/").json()
    assert index["orders"] == [{"order_id": order.pk, "number": f"INV-O{order.pk}"}]
    assert [m["month"] for m in index["months"]] == [month]

    # Another customer sees none of it; a bad month is a 400.
    other = client_for(make_user("other"))
    assert other.get(f"/api/v1/billing/invoices/orders/{order.pk}/").status_code == 404
    assert other.get(f"/api/v1/billing/charges/{order.pk}/").status_code == 404
    assert other.get(f"/api/v1/billing/invoices/months/{month}/").json()["totals"]["total"] == "0.00"
    bad = api.get("/api/v1/billing/invoices/months/2026-13/")
    assert (bad.status_code, bad.json()["error"]["fields"]) == (400, {"month": ["Use YYYY-MM."]})


def test_refund_and_overdraft_are_operator_only(fake, driver, client_for, customer, operator, provider_a,
                                                make_order):
    api = client_for(customer)
    _topup_via_api(driver, api, "30.00")
    order = _settled_order(driver, customer, provider_a, make_order, "4.00", 1800.0)
    denied = api.post(f"/api/v1/billing/charges/{order.pk}/refund/", {"reason": "me"}, format="json")
    assert (denied.status_code, denied.json()["error"]["code"]) == (403, "permission_denied")
    assert api.put(f"/api/v1/billing/customers/{customer.pk}/overdraft/", {"overdraft_limit": "50.00"},
                   format="json").status_code == 403
    ops = client_for(operator)
    response = ops.put(f"/api/v1/billing/customers/{customer.pk}/overdraft/", {"overdraft_limit": "50.00"},
                       format="json")
    assert (response.json()["overdraft_limit"], response.json()["available"]) == ("50.00", "76.00")
    assert ops.put(f"/api/v1/billing/customers/{operator.pk}/overdraft/", {"overdraft_limit": "1.00"},
                   format="json").status_code == 404
    too_much = ops.post(f"/api/v1/billing/charges/{order.pk}/refund/", {"reason": "x", "amount": "4.01"},
                        format="json")
    assert (too_much.status_code, too_much.json()["error"]["fields"]) == (
        400, {"amount": ["At most 4.00 can be refunded."]})
    assert api.get("/api/v1/billing/credit/").json()["balance"] == "26.00"
