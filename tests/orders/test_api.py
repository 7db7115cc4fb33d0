"""The order API: placement errors with field-level messages, visibility (404 for other customers' orders),
pagination and query counts, events, logs with offsets, cancel rules."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from marketplace.orders.models import Order, OrderEvent, OrderLogChunk, Reservation
from marketplace.orders.services.placement import order_place
from marketplace.orders.states import lifecycle_table
from tests.orders.conftest import job, placement

pytestmark = pytest.mark.django_db
URL = "/api/v1/orders/"


@pytest.fixture
def offer(provider_a, make_node_offer):
    return make_node_offer(provider_a, nodes=3, price="20.0000")


def post(client, body, key="key-1"):
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key is not None else {}
    return client.post(URL, body, format="json", **headers)


def test_anonymous_is_401(anon):
    assert anon.get(URL).status_code == 401
    assert anon.post(URL, {}, format="json").status_code == 401


def test_create_renders_the_order(client_for, customer, offer, make_quote):
    quote = make_quote(customer, [offer], nodes=2)
    res = post(client_for(customer), {"quote_id": str(quote.id),
                                      "job": job(budget_cap_usd="50", env={"A": "1", "B": ""})})
    assert res.status_code == 201, res.content
    body = res.json()
    order = Order.objects.get()
    assert body["id"] == order.pk
    assert {k: body[k] for k in ("state", "stop_outcome", "customer", "quote_id", "simulated", "nodes",
                                 "accelerator_count", "attempt", "job_ref", "failure", "node_price_per_hour",
                                 "price_per_hour", "metered_usd", "metered_seconds", "running_at")} == {
        "state": "queued", "stop_outcome": "", "customer": "customer", "quote_id": str(quote.id), "simulated": True,
        "nodes": 2, "accelerator_count": 8, "attempt": 1, "job_ref": "", "failure": None,
        "node_price_per_hour": "20.0000", "price_per_hour": "40.0000", "metered_usd": "0.00", "metered_seconds": 0.0,
        "running_at": None}
    assert body["offer"] == {"id": offer.pk, "name": "node", "provider": "provider-a",
                             "accelerator": "NVIDIA H100-SXM5-80GB", "region": "us-east-virginia",
                             "driver": "simulated"}
    assert body["job"] == {"command": "python train.py", "image": "", "env": {"A": "1", "B": ""},
                           "duration_hours": "1.0000", "budget_cap_usd": "50.00"}
    assert body["links"] == {"self": f"/api/v1/orders/{order.pk}/", "events": f"/api/v1/orders/{order.pk}/events/",
                             "logs": f"/api/v1/orders/{order.pk}/logs/", "cancel": f"/api/v1/orders/{order.pk}/cancel/"}


def test_replay_is_200_and_other_body_409(client_for, customer, offer, make_quote):
    client = client_for(customer)
    body = {"quote_id": str(make_quote(customer, [offer]).id), "job": job()}
    first = post(client, body)
    again = post(client, body)
    other = post(client, {**body, "job": job(duration_hours="2")})
    assert (first.status_code, again.status_code, again.json()["id"]) == (201, 200, first.json()["id"])
    assert other.status_code == 409
    assert other.json()["error"] == {
        "code": "idempotency_key_reused", "message": "This Idempotency-Key was used for a different request.",
        "fields": {}, "order_id": first.json()["id"]}
    assert Order.objects.count() == 1


def test_missing_idempotency_key_is_400(client_for, customer, offer, make_quote):
    res = post(client_for(customer), {"quote_id": str(make_quote(customer, [offer]).id), "job": job()}, key=None)
    assert res.status_code == 400
    assert res.json()["error"]["fields"] == {"Idempotency-Key": ["This header is required."]}
    assert Order.objects.count() == 0


@pytest.mark.parametrize(("job_changes", "field", "message"), [
    ({"command": ""}, "command", "This field is required (or give an image)."),
    ({"command": "   "}, "command", "This field is required (or give an image)."),
    ({"duration_hours": "0"}, "duration_hours", "Ensure this value is greater than 0."),
    ({"duration_hours": "-1"}, "duration_hours", "Ensure this value is greater than 0."),
    ({"duration_hours": "720.0001"}, "duration_hours", "Ensure this value is less than or equal to 720."),
    ({"duration_hours": "10000"}, "duration_hours", "Ensure this value is less than or equal to 720."),
    ({"duration_hours": "abc"}, "duration_hours", "A valid number is required."),
    ({"env": ["A=1"]}, "env", "Expected an object of NAME: string value."),
    ({"env": {"A": 1}}, "env", "'A' must be a string, not int"),
    ({"env": {"A": None}}, "env", "'A' must be a string, not NoneType"),
    ({"env": {"1A": "x"}}, "env", "'1A' is not a valid variable name (letters, digits and _, not starting with a "
                                  "digit)"),
    ({"budget_cap_usd": "0"}, "budget_cap_usd", "Ensure this value is greater than 0."),
    ({"gpu": "many"}, "gpu", "unknown field; valid fields: command, image, env, duration_hours, budget_cap_usd"),
])
def test_bad_job_specs_are_400_with_the_field(client_for, customer, offer, make_quote, job_changes, field, message):
    body = job(**job_changes)
    res = post(client_for(customer), {"quote_id": str(make_quote(customer, [offer]).id), "job": body})
    assert res.status_code == 400, res.content
    assert res.json()["error"]["fields"] == {"job": {field: [message]}}
    assert (Order.objects.count(), Reservation.objects.count()) == (0, 0)


def test_missing_duration_and_job_are_400(client_for, customer, offer, make_quote):
    client = client_for(customer)
    quote_id = str(make_quote(customer, [offer]).id)
    no_duration = {k: v for k, v in job().items() if k != "duration_hours"}
    assert post(client, {"quote_id": quote_id, "job": no_duration}).json()["error"]["fields"] == {
        "job": {"duration_hours": ["This field is required."]}}
    assert post(client, {"quote_id": quote_id}).json()["error"]["fields"] == {"job": ["This field is required."]}


@pytest.mark.parametrize(("body", "fields"), [
    ({}, {"quote_id": ["Give either quote_id, or offer_id with nodes."],
          "offer_id": ["Give either quote_id, or offer_id with nodes."]}),
    ({"offer_id": 1}, {"nodes": ["This field is required with offer_id."]}),
    ({"quote_id": "not-a-uuid"}, {"quote_id": ["Must be a valid UUID."]}),
    ({"offer_id": 0, "nodes": 1}, {"offer_id": ["Ensure this value is greater than or equal to 1."]}),
])
def test_bad_targets_are_400(client_for, customer, body, fields):
    res = post(client_for(customer), {**body, "job": job()})
    assert res.status_code == 400
    assert res.json()["error"]["fields"] == fields


def test_unknown_or_foreign_quote_is_404(client_for, customer, make_user, offer, make_quote):
    client = client_for(customer)
    foreign = make_quote(make_user("other"), [offer])
    for quote_id in (str(foreign.id), "00000000-0000-4000-8000-000000000000"):
        res = post(client, {"quote_id": quote_id, "job": job()}, key=quote_id)
        assert (res.status_code, res.json()["error"]["code"]) == (404, "quote_not_found")
    assert Order.objects.count() == 0


def test_expired_quote_is_409_with_a_fresh_quote(client_for, customer, offer):
    from marketplace.selectors.snapshot import clear_snapshot_cache
    from marketplace.services.catalog_version import catalog_bump
    from marketplace.services.quotes import quote_create

    catalog_bump()
    clear_snapshot_cache()
    old_time = timezone.now() - timedelta(hours=1)
    quote, _ = quote_create(customer, {"resources": {"accelerator": "H100", "count": 8}, "duration_hours": 2,
                                       "objective": "cost"}, now=old_time)
    assert quote.expires_at < timezone.now()

    res = post(client_for(customer), {"quote_id": str(quote.id), "job": job()})

    assert res.status_code == 409
    error = res.json()["error"]
    assert (error["code"], error["message"]) == ("quote_expired",
                                                "The quote has expired; here is a fresh one for the same request.")
    fresh = error["quote"]
    assert fresh["id"] != str(quote.id)
    assert [a["offer_id"] for a in fresh["alternatives"]] == [offer.pk]
    assert fresh["alternatives"][0]["node_price_per_hour"] == "20.00"
    assert Order.objects.count() == 0


def test_place_on_an_offer_directly(client_for, customer, provider_a, make_node_offer):
    from marketplace.selectors.snapshot import clear_snapshot_cache
    from marketplace.services.catalog_version import catalog_bump

    offer = make_node_offer(provider_a, nodes=3, inter_node="infiniband")

    catalog_bump()
    clear_snapshot_cache()
    res = post(client_for(customer), {"offer_id": offer.pk, "nodes": 2, "job": job(duration_hours="3")})
    assert res.status_code == 201, res.content
    order = Order.objects.get()
    assert (order.offer_id, order.nodes, order.node_price_per_hour) == (offer.pk, 2, Decimal("20.0000"))
    assert order.quote.alternatives[0]["offer_id"] == offer.pk
    missing = post(client_for(customer), {"offer_id": 999999, "nodes": 1, "job": job()}, key="k2")
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "offer_not_found")


def test_provider_members_get_403(client_for, member_a, offer, make_quote):
    res = post(client_for(member_a), {"quote_id": str(make_quote(member_a, [offer]).id), "job": job()})
    assert (res.status_code, res.json()["error"]["code"]) == (403, "permission_denied")


def _orders(user, quote, n, prefix=""):
    return [order_place(user=user, idempotency_key=f"{prefix}{user.username}-{i}",
                        data=placement(quote_id=str(quote.id)))[0] for i in range(n)]


def test_list_shows_own_orders_newest_first_and_operators_all(client_for, customer, make_user, operator, offer,
                                                              make_quote):
    other = make_user("other")
    mine = _orders(customer, make_quote(customer, [offer]), 2)
    theirs = _orders(other, make_quote(other, [offer]), 1)
    body = client_for(customer).get(URL).json()
    assert body["count"] == 2
    assert [o["id"] for o in body["results"]] == [mine[1].pk, mine[0].pk]
    everyone = client_for(operator).get(URL).json()
    assert [o["id"] for o in everyone["results"]] == [theirs[0].pk, mine[1].pk, mine[0].pk]
    paged = client_for(operator).get(URL + "?page_size=2&page=2").json()
    assert [o["id"] for o in paged["results"]] == [mine[0].pk]


def test_list_query_count_does_not_grow_with_orders(client_for, customer, provider_a, make_node_offer,
                                                    make_quote):
    offer = make_node_offer(provider_a, nodes=20)
    client = client_for(customer)
    _orders(customer, make_quote(customer, [offer]), 2)
    client.get(URL)  # the token's last_used_at is touched at most every 5 minutes: not in the counts below
    with CaptureQueriesContext(connection) as few:
        assert client.get(URL).status_code == 200
    _orders(customer, make_quote(customer, [offer]), 10, prefix="more-")
    with CaptureQueriesContext(connection) as many:
        assert len(client.get(URL).json()["results"]) == 12
    assert len(few) == len(many) == 3  # token + user, count, page (orders + customer, offer and its references)


def test_another_customers_order_is_404_everywhere(client_for, customer, make_user, offer, make_quote):
    other = make_user("other")
    [order] = _orders(other, make_quote(other, [offer]), 1)
    client = client_for(customer)
    for path in ("", "events/", "logs/"):
        res = client.get(f"{URL}{order.pk}/{path}")
        assert (res.status_code, res.json()["error"]["code"]) == (404, "order_not_found")
    res = client.post(f"{URL}{order.pk}/cancel/")
    assert res.status_code == 404
    order.refresh_from_db()
    assert order.state == "queued"
    assert client.get(f"{URL}999999/").status_code == 404


def test_events_say_who_and_why(client_for, customer, offer, make_quote):
    [order] = _orders(customer, make_quote(customer, [offer]), 1)
    client = client_for(customer)
    client.post(f"{URL}{order.pk}/cancel/")
    events = client.get(f"{URL}{order.pk}/events/").json()["results"]
    assert [(e["from_state"], e["to_state"], e["actor"], e["task"], e["reason"]) for e in events] == [
        ("", "reserved", "customer", "", "order placed; capacity reserved"),
        ("reserved", "queued", "customer", "", "queued for provisioning"),
        ("queued", "cancelled", "customer", "", "cancelled by the customer")]
    assert events[0]["data"]["units"] == list(Reservation.objects.filter(order=order).values_list("unit", flat=True))


def test_logs_by_offset(client_for, customer, offer, make_quote):
    [order] = _orders(customer, make_quote(customer, [offer]), 1)
    OrderLogChunk.objects.create(order=order, attempt=1, offset=0, text="hello\n")
    OrderLogChunk.objects.create(order=order, attempt=1, offset=6, text="world\n")
    Order.objects.filter(pk=order.pk).update(log_chars=12)
    client = client_for(customer)
    assert client.get(f"{URL}{order.pk}/logs/").json() == {"offset": 0, "next_offset": 12,
                                                            "text": "hello\nworld\n", "complete": False}
    assert client.get(f"{URL}{order.pk}/logs/?offset=8").json() == {"offset": 8, "next_offset": 12,
                                                                     "text": "rld\n", "complete": False}
    assert client.get(f"{URL}{order.pk}/logs/?offset=12").json()["text"] == ""
    res = client.get(f"{URL}{order.pk}/logs/?offset=-1")
    assert res.status_code == 400
    assert res.json()["error"]["fields"] == {"offset": ["A non-negative integer is required."]}


def test_cancel_queued_then_finished_is_409(client_for, customer, offer, make_quote):
    [order] = _orders(customer, make_quote(customer, [offer]), 1)
    client = client_for(customer)
    res = client.post(f"{URL}{order.pk}/cancel/")
    assert (res.status_code, res.json()["state"]) == (200, "cancelled")
    assert Reservation.objects.filter(order=order, active=True).count() == 0
    events_before = OrderEvent.objects.count()
    again = client.post(f"{URL}{order.pk}/cancel/")
    assert again.status_code == 409
    assert again.json()["error"] == {"code": "not_cancellable", "message": f"Order {order.pk} is cancelled; it cannot "
                                     "be cancelled.", "fields": {}, "state": "cancelled"}
    assert OrderEvent.objects.count() == events_before


def test_the_lifecycle_table_is_the_documented_one():
    assert lifecycle_table() == [
        ("reserved", ["cancelled", "expired", "failed", "queued"]),
        ("queued", ["cancelled", "failed", "provisioning"]),
        ("provisioning", ["failed", "queued", "running", "stopping"]),
        ("running", ["failed", "stopping"]),
        ("stopping", ["cancelled", "completed", "failed"]),
        ("completed", []), ("failed", []), ("cancelled", []), ("expired", [])]
