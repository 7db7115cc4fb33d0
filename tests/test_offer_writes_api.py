"""Offer writes: who may write what, field-level errors for bad input, bulk all-or-nothing, transitions, expiry."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from marketplace.models import Offer
from marketplace.services.offers import offers_unlist_expired

pytestmark = pytest.mark.django_db

URL = "/api/v1/offers/"
GOOD = {"name": "8x H100", "accelerator": "H100 SXM", "count": 8, "region": "us-east-virginia",
        "price_per_hour": "24.5000", "status": "listed", "external_id": "node-1"}


def snapshot() -> list[dict]:
    return list(Offer.objects.order_by("id").values())


@pytest.fixture
def a_client(client_for, member_a):
    return client_for(member_a)


@pytest.fixture
def b_client(client_for, member_b):
    return client_for(member_b)


def test_provider_member_creates_an_offer_for_their_provider(a_client, provider_a):
    response = a_client.post(URL, GOOD, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    offer = Offer.objects.get(pk=body["id"])
    assert (offer.provider, offer.accelerator.canonical_name, offer.accelerator_count, offer.accelerator_memory_gb,
            offer.price_per_hour, offer.status, offer.source, offer.external_id) == (
        provider_a, "NVIDIA H100-SXM5-80GB", 8, 80.0, Decimal("24.5"), "listed", "provider", "node-1")
    assert (body["provider"], body["memory_gb"], body["price_per_accelerator_hour"]) == ("provider-a", 80.0,
                                                                                         "3.062500")


def test_customer_gets_403_and_nothing_is_written(client_for, customer):
    response = client_for(customer).post(URL, GOOD, format="json")
    assert response.status_code == 403
    assert response.json() == {"error": {"code": "permission_denied", "fields": {},
                                         "message": "Only provider members and operators can write offers."}}
    assert Offer.objects.count() == 0


def test_anonymous_write_is_401(anon, make_offer, provider_a):
    offer = make_offer(provider_a)
    before = snapshot()
    for response in (anon.post(URL, GOOD, format="json"), anon.patch(f"{URL}{offer.id}/", {"count": 1}),
                     anon.post(f"{URL}{offer.id}/unlist/"), anon.post(f"{URL}bulk/", {"offers": [GOOD]})):
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "not_authenticated"
    assert snapshot() == before


def test_provider_b_cannot_change_provider_a_offers(b_client, make_offer, provider_a):
    offer = make_offer(provider_a, external_id="a-1")
    draft = make_offer(provider_a, status="draft", external_id="a-2")
    before = snapshot()
    for response in (b_client.patch(f"{URL}{offer.id}/", {"price_per_hour": "0.01"}, format="json"),
                     b_client.patch(f"{URL}{draft.id}/", {"status": "listed"}, format="json"),
                     b_client.post(f"{URL}{offer.id}/unlist/"),
                     b_client.patch(f"{URL}{offer.id}/", {"count": 0}, format="json")):
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"
    assert b_client.get(f"{URL}{draft.id}/").status_code == 404
    # Nor through the back doors: naming A as the provider, or reusing A's external id in a bulk upload.
    response = b_client.post(URL, {**GOOD, "provider": "provider-a"}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {
        "provider": ["you can only write offers of your own provider 'provider-b'"]}
    response = b_client.post(f"{URL}bulk/", {"provider": "provider-a", "offers": [{**GOOD, "external_id": "a-1"}]},
                             format="json")
    assert response.status_code == 400
    assert snapshot() == before


def test_operator_may_change_any_offer(client_for, operator, make_offer, provider_a):
    offer = make_offer(provider_a)
    response = client_for(operator).patch(f"{URL}{offer.id}/", {"price_per_hour": "18.25"}, format="json")
    assert response.status_code == 200
    offer.refresh_from_db()
    assert offer.price_per_hour == Decimal("18.25")
    response = client_for(operator).post(URL, GOOD, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"provider": ["This field is required for operators."]}


BAD_INPUT = [
    ({"count": 0}, {"count": ["Ensure this value is greater than or equal to 1."]}),
    ({"count": 10000}, {"count": ["Ensure this value is less than or equal to 64."]}),
    ({"price_per_hour": "-1"}, {"price_per_hour": ["Ensure this value is greater than or equal to 0."]}),
    ({"price_per_hour": "100000.01"},
     {"price_per_hour": ["Ensure this value is less than or equal to 100000."]}),
    ({"memory_gb": "lots"}, {"memory_gb": ["A valid number is required."]}),
    ({"memory_gb": 0}, {"memory_gb": ["Ensure this value is greater than 0."]}),
    ({"memory_gb": "NaN"}, {"memory_gb": ["A valid number is required."]}),
    ({"interconnect": "carrier-pigeon"}, {"interconnect": ['"carrier-pigeon" is not a valid choice.']}),
    ({"accelerator": "gpu9000"}, {"accelerator": ["unknown accelerator 'gpu9000'"]}),
    ({"accelerator": "H10"}, {"accelerator": ["unknown accelerator 'H10'; did you mean NVIDIA H100-SXM5-80GB, "
                                              "NVIDIA H20 (96GB), NVIDIA A10?"]}),
    ({"accelerator": "A100"}, {"accelerator": [
        "'A100' is ambiguous: it could be NVIDIA A100-PCIE-40GB, NVIDIA A100-PCIE-80GB, NVIDIA A100-SXM4-40GB, "
        "NVIDIA A100-SXM4-80GB; name one of them"]}),
    ({"region": "us-east"}, {"region": ["unknown region 'us-east'; did you mean us-east-virginia?"]}),
    ({"status": "unlisted"}, {"status": ["a new offer starts as draft or listed, not unlisted"]}),
    ({"interruptible_price_per_hour": "30"}, {"interruptible_price_per_hour": [
        "the interruptible price (30.0000) cannot be higher than the on-demand price (24.5000)"]}),
    ({"available_until": "2001-01-01T00:00:00Z"},
     {"available_until": ["a listed offer must be available until a time in the future"]}),
    ({"gpu_ram": 80}, {"gpu_ram": ["unknown field; valid fields: provider, external_id, name, accelerator, count, "
                                   "memory_gb, vcpus, ram_gb, disk_gb, interconnect, inter_node, network_gbps, "
                                   "region, price_per_hour, interruptible_price_per_hour, nodes_available, "
                                   "min_rental_hours, available_until, status, driver"]}),
]


@pytest.mark.parametrize(("change", "fields"), BAD_INPUT, ids=[next(iter(c)) + str(i) for i, (c, _) in
                                                                enumerate(BAD_INPUT)])
def test_bad_input_is_400_with_field_messages_and_nothing_written(a_client, change, fields):
    response = a_client.post(URL, {**GOOD, **change}, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["fields"]) == ("invalid", fields)
    assert Offer.objects.count() == 0


def test_every_problem_is_reported_at_once(a_client):
    response = a_client.post(URL, {"name": "x", "accelerator": "A100", "count": 0, "region": "nowhere",
                                   "price_per_hour": "-1"}, format="json")
    assert sorted(response.json()["error"]["fields"]) == ["accelerator", "count", "price_per_hour", "region"]


def test_duplicate_external_id_is_a_field_error(a_client, make_offer, provider_a):
    existing = make_offer(provider_a, external_id="node-1")
    response = a_client.post(URL, GOOD, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {
        "external_id": [f"offer {existing.id} of this provider already has external_id 'node-1'"]}
    assert Offer.objects.count() == 1


def test_status_transitions(a_client, make_offer, provider_a):
    offer = make_offer(provider_a, status="draft")
    assert a_client.post(f"{URL}{offer.id}/unlist/").status_code == 409
    assert a_client.patch(f"{URL}{offer.id}/", {"status": "listed"}, format="json").json()["status"] == "listed"
    response = a_client.patch(f"{URL}{offer.id}/", {"status": "draft"}, format="json")
    assert response.json()["error"]["fields"] == {
        "status": ["cannot go from listed to draft; from listed an offer can go to unlisted"]}
    assert a_client.post(f"{URL}{offer.id}/unlist/").json()["status"] == "unlisted"
    assert a_client.post(f"{URL}{offer.id}/unlist/").json()["status"] == "unlisted"  # idempotent
    assert a_client.patch(f"{URL}{offer.id}/", {"status": "listed"}, format="json").json()["status"] == "listed"
    offer.refresh_from_db()
    assert offer.status == "listed"


def test_patch_changes_only_what_it_names(a_client, make_offer, provider_a):
    offer = make_offer(provider_a, network_gbps=100)
    before = Offer.objects.filter(pk=offer.pk).values().get()
    response = a_client.patch(f"{URL}{offer.id}/", {"price_per_hour": "24", "accelerator": "MI300X",
                                                    "memory_gb": 192}, format="json")
    assert response.status_code == 200
    after = Offer.objects.filter(pk=offer.pk).values().get()
    changed = {k for k in after if after[k] != before[k]}
    assert changed == {"price_per_hour", "price_per_accelerator_hour", "accelerator_id", "accelerator_memory_gb",
                       "updated_at"}
    assert response.json()["accelerator"] == "AMD Instinct MI300X"


# --------------------------------------------------------------------------------------------------- bulk
def rows(*changes: dict) -> list[dict]:
    return [{**GOOD, "external_id": f"node-{i}", **c} for i, c in enumerate(changes)]


def test_bulk_with_bad_rows_lists_each_and_writes_nothing(a_client, make_offer, provider_a):
    make_offer(provider_a, external_id="node-0", price_per_hour=Decimal("9"))
    before = snapshot()
    response = a_client.post(f"{URL}bulk/", {"offers": rows({}, {"count": 0}, {"accelerator": "gpu9000"}, {},
                                                             {"external_id": "node-1"}, {"external_id": ""})},
                             format="json")
    assert response.status_code == 400
    assert response.json()["error"] == {
        "code": "invalid", "message": "4 of 6 rows are invalid; nothing was written.",
        "fields": {"offers": {
            "1": {"count": ["Ensure this value is greater than or equal to 1."]},
            "2": {"accelerator": ["unknown accelerator 'gpu9000'"]},
            "4": {"external_id": ["'node-1' is also used by row 1"]},
            "5": {"external_id": ["required in a bulk upload (rows are matched by it)"]},
        }},
    }
    assert snapshot() == before


def test_bulk_creates_updates_and_leaves_unchanged_rows(a_client, make_offer, provider_a):
    kept = make_offer(provider_a, external_id="node-0", name="8x H100", price_per_hour=Decimal("24.5"))
    changed = make_offer(provider_a, external_id="node-1", price_per_hour=Decimal("30"))
    response = a_client.post(f"{URL}bulk/", {"offers": [
        {"external_id": "node-0", "price_per_hour": "24.5000"},
        {"external_id": "node-1", "price_per_hour": "22"},
        *rows({}, {}, {"accelerator": "MI300X", "count": 4})[2:],
    ]}, format="json")
    assert response.status_code == 200, response.json()
    body = response.json()
    new = list(Offer.objects.filter(external_id__in=["node-2"]).values_list("id", flat=True))
    assert (body["unchanged"], body["updated"], body["created"]) == ([kept.id], [changed.id], new)
    assert body["ids"] == [kept.id, changed.id, *new]
    changed.refresh_from_db()
    assert changed.price_per_hour == Decimal("22")
    created = Offer.objects.get(external_id="node-2")
    assert (created.accelerator.canonical_name, created.accelerator_count, created.provider) == (
        "AMD Instinct MI300X", 4, provider_a)


def test_bulk_accepts_csv(a_client, provider_a):
    body = ("external_id,name,accelerator,count,region,price_per_hour,status,network_gbps\n"
            "c-1,node a,H100,8,us-east-virginia,20,listed,\n"
            "c-2,node b,MI300X,8,eu-finland,25.5,draft,400\n")
    response = a_client.post(f"{URL}bulk/", body, content_type="text/csv")
    assert response.status_code == 200, response.json()
    assert list(Offer.objects.order_by("external_id").values_list("external_id", "status", "network_gbps",
                                                                  "price_per_hour")) == [
        ("c-1", "listed", None, Decimal("20")), ("c-2", "draft", 400.0, Decimal("25.5"))]


@pytest.mark.parametrize(("body", "message"), [
    ("external_id,name\nc-1,a,extra\n", "CSV line 2 has 3 cells; the header has 2."),
    ("external_id,colour\nc-1,red\n", "Unknown CSV column(s) colour; valid columns: provider, external_id, name, "
                                      "accelerator, count, memory_gb, vcpus, ram_gb, disk_gb, interconnect, "
                                      "inter_node, network_gbps, region, price_per_hour, "
                                      "interruptible_price_per_hour, nodes_available, min_rental_hours, "
                                      "available_until, status, driver."),
    ('external_id,name\n"c-1,a\n', "Malformed CSV at line 2: unexpected end of data."),
])
def test_malformed_csv_is_a_400(a_client, body, message):
    response = a_client.post(f"{URL}bulk/", body, content_type="text/csv")
    assert response.status_code == 400
    assert response.json() == {"error": {"code": "parse_error", "message": message, "fields": {}}}
    assert Offer.objects.count() == 0


def test_empty_csv_is_a_400(a_client):
    response = a_client.post(f"{URL}bulk/", "", content_type="text/csv")
    assert response.json() == {"error": {"code": "invalid", "message": "offers: This field is required.",
                                         "fields": {"offers": ["This field is required."]}}}
    response = a_client.post(f"{URL}bulk/", "external_id,name\n", content_type="text/csv")
    assert response.json()["error"]["fields"] == {"offers": ["This list may not be empty."]}


def test_malformed_json_is_a_400(a_client):
    response = a_client.post(f"{URL}bulk/", '{"offers": [', content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "parse_error"
    response = a_client.post(f"{URL}bulk/", {"offers": "nope"}, format="json")
    assert response.json()["error"]["fields"] == {"offers": ['Expected a list of items but got type "str".']}
    response = a_client.post(f"{URL}bulk/", {"offers": [1]}, format="json")
    assert response.json()["error"]["fields"] == {"offers": {"0": ['Expected a dictionary of items but got type '
                                                                   '"int".']}}
    assert Offer.objects.count() == 0


# ------------------------------------------------------------------------------------- own offers, expiry
def test_provider_offer_list_shows_own_offers_in_every_status(a_client, client_for, customer, operator,
                                                             make_offer, provider_a, provider_b):
    mine = [make_offer(provider_a, status=s).id for s in ("draft", "listed", "unlisted")]
    make_offer(provider_b)
    body = a_client.get("/api/v1/provider/offers/").json()
    assert [r["id"] for r in body["results"]] == mine
    assert [r["id"] for r in a_client.get("/api/v1/provider/offers/?status=draft").json()["results"]] == mine[:1]
    assert client_for(customer).get("/api/v1/provider/offers/").status_code == 403
    assert client_for(operator).get("/api/v1/provider/offers/").json()["count"] == 4
    assert client_for(operator).get("/api/v1/provider/offers/?provider=provider-b").json()["count"] == 1


def test_unlist_expired_unlists_only_listed_offers_past_their_window(make_offer, provider_a):
    past = timezone.now() - timedelta(seconds=1)
    expired = make_offer(provider_a, available_until=past)
    draft_expired = make_offer(provider_a, status="draft", available_until=past)
    current = make_offer(provider_a, available_until=timezone.now() + timedelta(hours=1))
    open_ended = make_offer(provider_a)
    assert offers_unlist_expired() == 1
    assert offers_unlist_expired() == 0
    statuses = dict(Offer.objects.values_list("id", "status"))
    assert statuses == {expired.id: "unlisted", draft_expired.id: "draft", current.id: "listed",
                        open_ended.id: "listed"}
