"""Placing an order pays for it: the API's optional `payment`, billing's default method, and every refusal failing
the order (capacity released) with the payment error in the one error shape. Card payments go to the fake Stripe."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest

from marketplace.orders.models import Order, OrderEvent, Reservation
from tests.orders.conftest import job

pytestmark = pytest.mark.django_db
URL = "/api/v1/orders/"
D = Decimal


@pytest.fixture
def offer(provider_a, make_node_offer):
    return make_node_offer(provider_a, nodes=1, price="20.0000")


def post(client, body: dict, key: str | None = None):
    return client.post(URL, body, format="json", HTTP_IDEMPOTENCY_KEY=key or uuid.uuid4().hex)


def body(quote, payment: dict | None = None, **job_changes) -> dict:
    data = {"quote_id": str(quote.id), "job": job(**job_changes)}
    if payment is not None:
        data["payment"] = payment
    return data


def charge_of(order_id: int):
    from marketplace.billing.models import OrderCharge

    return OrderCharge.objects.filter(order_id=order_id).first()


def assert_failed_and_released(order_id: int, code: str) -> None:
    order = Order.objects.get(pk=order_id)
    assert (order.state, order.failure_code) == ("failed", code)
    assert not Reservation.objects.filter(order_id=order_id, active=True).exists()
    assert list(OrderEvent.objects.filter(order_id=order_id).values_list("from_state", "to_state")) == [
        ("", "reserved"), ("reserved", "failed")]


def test_card_is_held_then_the_order_is_queued(fake, client_for, customer, offer, make_quote):
    res = post(client_for(customer), body(make_quote(customer, [offer]),
                                          {"method": "card", "payment_method": "pm_card_visa"}))

    assert res.status_code == 201, res.content
    assert res.json()["state"] == "queued"
    charge = charge_of(res.json()["id"])
    assert (charge.method, charge.status, charge.authorized_amount, charge.payment_method) == (
        "card", "authorized", D("20.00"), "pm_card_visa")
    intent = fake.state.payment_intents_retrieve(charge.payment_intent_id, None)
    assert (intent["status"], intent["amount_capturable"]) == ("requires_capture", 2000)
    assert Reservation.objects.get(order_id=res.json()["id"]).expires_at is None  # confirmed once paid


def test_default_is_the_saved_card_else_credit(fake, client_for, customer, make_user, provider_a, make_node_offer,
                                               make_quote):
    from marketplace.billing.services.customers import billing_profile_update

    offer = make_node_offer(provider_a, nodes=2, price="20.0000")
    billing_profile_update(customer, default_payment_method="pm_card_mastercard")
    other = make_user("other")  # no saved card: credit (its credit line)

    carded = post(client_for(customer), body(make_quote(customer, [offer])))
    credited = post(client_for(other), body(make_quote(other, [offer]), duration_hours="0.5"))

    assert (carded.status_code, credited.status_code) == (201, 201)
    card = charge_of(carded.json()["id"])
    assert (card.method, card.status, card.payment_method) == ("card", "authorized", "pm_card_mastercard")
    credit = charge_of(credited.json()["id"])
    assert (credit.method, credit.status, credit.authorized_amount) == ("credit", "authorized", D("10.00"))


def test_a_long_order_defaults_to_credit_even_with_a_saved_card(client_for, customer, offer, make_quote):
    from marketplace.billing.services.customers import billing_profile_update

    billing_profile_update(customer, default_payment_method="pm_card_visa")
    res = post(client_for(customer), body(make_quote(customer, [offer]), duration_hours="200"))
    assert res.status_code == 201, res.content
    assert charge_of(res.json()["id"]).method == "credit"  # no Stripe call: the fake is not even running here


def test_declined_card_is_402_fails_the_order_and_frees_capacity(fake, client_for, customer, offer, make_quote):
    res = post(client_for(customer), body(make_quote(customer, [offer]),
                                          {"method": "card", "payment_method": "pm_card_chargeDeclined"}))

    assert res.status_code == 402
    error = res.json()["error"]
    assert (error["code"], error["decline_code"]) == ("payment_declined", "generic_decline")
    order = Order.objects.get(customer=customer)
    assert_failed_and_released(order.pk, "payment_declined")
    assert charge_of(order.pk).status == "declined"


def test_no_credit_is_402_and_nothing_is_held(client_for, make_user, offer, make_quote):
    payer = make_user("payer", credit=False)
    res = post(client_for(payer), body(make_quote(payer, [offer]), {"method": "credit"}))

    assert res.status_code == 402
    assert (res.json()["error"]["code"], res.json()["error"]["balance"]) == ("insufficient_credit", "0.00")
    order = Order.objects.get(customer=payer)
    assert_failed_and_released(order.pk, "insufficient_credit")
    assert charge_of(order.pk) is None


def test_card_for_a_long_order_is_400_not_allowed(client_for, customer, offer, make_quote):
    res = post(client_for(customer), body(make_quote(customer, [offer]),
                                          {"method": "card", "payment_method": "pm_card_visa"}, duration_hours="200"))

    assert res.status_code == 400
    assert res.json()["error"]["code"] == "payment_method_not_allowed"
    assert "payment" in res.json()["error"]["fields"]
    assert_failed_and_released(Order.objects.get(customer=customer).pk, "payment_method_not_allowed")


def test_card_without_a_card_is_400_on_payment_method(client_for, customer, offer, make_quote):
    res = post(client_for(customer), body(make_quote(customer, [offer]), {"method": "card"}))

    assert res.status_code == 400
    assert list(res.json()["error"]["fields"]) == ["payment_method"]
    assert_failed_and_released(Order.objects.get(customer=customer).pk, "invalid")


def test_stripe_down_is_503_and_the_order_failed(fake, client_for, customer, offer, make_quote):
    fake.inject_fault("/v1/payment_intents", count=3, status=500)  # the SDK's request and its two retries
    res = post(client_for(customer), body(make_quote(customer, [offer]),
                                          {"method": "card", "payment_method": "pm_card_visa"}))

    assert res.status_code == 503
    assert res.json()["error"]["code"] == "payment_provider_unavailable"
    order = Order.objects.get(customer=customer)
    assert_failed_and_released(order.pk, "payment_provider_unavailable")
    assert charge_of(order.pk).status == "authorizing"  # billing's order_finished releases whatever Stripe held


@pytest.mark.parametrize(("payment", "fields"), [
    ({"method": "cash"}, {"payment": {"method": ['"cash" is not a valid choice.']}}),
    ({"method": "credit", "payment_method": "pm_card_visa"},
     {"payment": {"payment_method": ["Only with method card."]}}),
    ({"payment_method": "tok_visa"},
     {"payment": {"payment_method": ["Expected a Stripe PaymentMethod id such as pm_card_visa."]}}),
    ({"card": "pm_card_visa"}, {"payment": {"card": ["unknown field; valid fields: method, payment_method"]}}),
])
def test_bad_payment_is_400_and_nothing_is_written(client_for, customer, offer, make_quote, payment, fields):
    res = post(client_for(customer), body(make_quote(customer, [offer]), payment))

    assert res.status_code == 400
    assert res.json()["error"]["fields"] == fields
    assert not Order.objects.exists()


def test_payment_is_part_of_the_idempotent_request(fake, client_for, customer, offer, make_quote):
    client, quote = client_for(customer), make_quote(customer, [offer])
    card = {"method": "card", "payment_method": "pm_card_visa"}
    first = post(client, body(quote, card), key="k-1")
    again = post(client, body(quote, card), key="k-1")
    other = post(client, body(quote, {"method": "credit"}), key="k-1")

    assert (first.status_code, again.status_code, other.status_code) == (201, 200, 409)
    assert other.json()["error"]["code"] == "idempotency_key_reused"
    assert again.json()["id"] == first.json()["id"]
    assert len(fake.executions("/v1/payment_intents")) == 1
