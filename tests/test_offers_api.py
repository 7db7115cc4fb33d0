"""The offer search API: exact results for q= and filter parameters, ordering, keyset pagination, errors."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from marketplace.models import Accelerator, Region

pytestmark = pytest.mark.django_db

URL = "/api/v1/offers/"



def acc(name: str) -> Accelerator:
    return Accelerator.objects.get(canonical_name=name)


def reg(key: str) -> Region:
    return Region.objects.get(key=key)


@pytest.fixture
def catalog(make_offer, provider_a, provider_b):
    """Seven offers; five are searchable (one is a draft, one has expired)."""
    b = {}
    b["h100x8"] = make_offer(provider_a, name="h100x8", price_per_hour=Decimal("20"), interconnect="nvlink",
                             network_gbps=400)
    b["h100x4"] = make_offer(provider_a, name="h100x4", accelerator_count=4, price_per_hour=Decimal("12"),
                             region=reg("eu-frankfurt"), network_gbps=100)
    b["a100x8"] = make_offer(provider_b, name="a100x8", accelerator=acc("NVIDIA A100-SXM4-80GB"),
                             price_per_hour=Decimal("14"), region=reg("us-west-oregon"),
                             interconnect="nvlink")
    b["a100x1"] = make_offer(provider_b, name="a100x1", accelerator=acc("NVIDIA A100-PCIE-40GB"),
                             accelerator_count=1, accelerator_memory_gb=40, price_per_hour=Decimal("1.5"),
                             network_gbps=25)
    b["mi300x8"] = make_offer(provider_b, name="mi300x8", accelerator=acc("AMD Instinct MI300X"),
                              accelerator_memory_gb=192, price_per_hour=Decimal("25"),
                              region=reg("eu-finland"), interconnect="xgmi", network_gbps=400)
    b["draft"] = make_offer(provider_a, name="draft", price_per_hour=Decimal("5"), status="draft")
    b["expired"] = make_offer(provider_a, name="expired", price_per_hour=Decimal("6"),
                              available_until=timezone.now() - timedelta(minutes=1))
    return b


@pytest.fixture
def api(client_for, customer):
    return client_for(customer)


def names(response) -> list[str]:
    assert response.status_code == 200, response.json()
    return [row["name"] for row in response.json()["results"]]


@pytest.mark.parametrize(("params", "expected"), [
    ({}, ["a100x1", "h100x4", "a100x8", "h100x8", "mi300x8"]),
    ({"q": "accelerator=H100 count>=8"}, ["h100x8"]),
    ({"q": "accelerator=A100"}, ["a100x1", "a100x8"]),
    ({"q": "accelerator!=A100"}, ["h100x4", "h100x8", "mi300x8"]),
    ({"q": "accelerator in [MI300X,h100_sxm] count>=8"}, ["h100x8", "mi300x8"]),
    ({"q": "region in [us-east]"}, ["a100x1", "h100x8"]),
    ({"q": "region=eu-*"}, ["h100x4", "mi300x8"]),
    ({"q": "region notin [us-east,us-west]"}, ["h100x4", "mi300x8"]),
    ({"q": "country in [DE,FI]"}, ["h100x4", "mi300x8"]),
    ({"q": "interconnect in [nvlink,xgmi] price_per_hour<=20"}, ["a100x8", "h100x8"]),
    ({"q": "vendor=amd"}, ["mi300x8"]),
    ({"q": "stack!=cuda"}, ["mi300x8"]),
    ({"q": "total_memory_gb>=640 total_memory_gb<1000"}, ["a100x8", "h100x8"]),
    ({"q": "memory_gb>80"}, ["mi300x8"]),
    ({"q": "price_per_accelerator_hour<=1.75"}, ["a100x1", "a100x8"]),
    pytest.param({"q": "price_per_accelerator_hour<=1.75 price_per_accelerator_hour>=1.75"}, ["a100x8"]),
    ({"q": "network_gbps>=100"}, ["h100x4", "h100x8", "mi300x8"]),
    ({"q": "network_gbps!=400"}, ["a100x1", "h100x4", "a100x8"]),
    ({"q": "count in [1,4]"}, ["a100x1", "h100x4"]),
    ({"q": "provider=provider-b count=8"}, ["a100x8", "mi300x8"]),
    ({"q": "provider=provider-*"}, ["a100x1", "h100x4", "a100x8", "h100x8", "mi300x8"]),
    ({"q": "bf16_tflops>=1000"}, ["mi300x8"]),
    ({"q": "carbon_gco2_per_kwh<50"}, ["mi300x8"]),
    ({"q": "carbon_gco2_per_kwh<100"}, ["a100x8", "mi300x8"]),
    ({"accelerator": "H100", "min_count": "8"}, ["h100x8"]),
    ({"max_price_per_hour": "14"}, ["a100x1", "h100x4", "a100x8"]),
    ({"region": "us-west", "interconnect": "nvlink"}, ["a100x8"]),
    ({"vendor": "nvidia", "max_count": "4", "q": "price_per_hour>2"}, ["h100x4"]),
    ({"min_memory_gb": "100"}, ["mi300x8"]),
    ({"country": "us", "provider": "provider-a"}, ["h100x8"]),
])
def test_search_results_are_exact(api, catalog, params, expected):
    assert names(api.get(URL, params)) == expected


def test_ambiguous_accelerator_is_any_of_and_the_response_says_so(api, catalog):
    body = api.get(URL, {"q": "accelerator=A100"}).json()
    assert body["notes"] == ["accelerator 'A100' is ambiguous; matching any of NVIDIA A100-PCIE-40GB, "
                             "NVIDIA A100-PCIE-80GB, NVIDIA A100-SXM4-40GB, NVIDIA A100-SXM4-80GB"]


def test_result_row_shape(api, catalog):
    row = api.get(URL, {"q": "accelerator=MI300X"}).json()["results"][0]
    assert row == {
        "id": catalog["mi300x8"].id, "external_id": "", "name": "mi300x8", "status": "listed",
        "source": "provider", "provider": "provider-b", "provider_name": "Provider B",
        "provider_verified": False, "reliability": None, "accelerator": "AMD Instinct MI300X",
        "vendor": "AMD",
        "stack": "rocm", "count": 8, "memory_gb": 192.0, "total_memory_gb": 1536.0, "bf16_tflops": 1307.4,
        "fp64_tflops": 81.7, "vcpus": 96, "ram_gb": 1024.0, "disk_gb": 2000.0, "interconnect": "xgmi",
        "inter_node": "none", "network_gbps": 400.0, "region": "eu-finland", "country": "FI",
        "carbon_gco2_per_kwh": 39.32, "price_per_hour": "25.0000", "price_per_accelerator_hour": "3.125000",
        "interruptible_price_per_hour": None, "nodes_available": 2, "min_rental_hours": "0.00",
        "available_until": None, "upstream_cloud": "",
    }


@pytest.mark.parametrize(("ordering", "expected"), [
    ("price_per_hour", ["a100x1", "h100x4", "a100x8", "h100x8", "mi300x8"]),
    ("-price_per_hour", ["mi300x8", "h100x8", "a100x8", "h100x4", "a100x1"]),
    ("count", ["a100x1", "h100x4", "h100x8", "a100x8", "mi300x8"]),  # ties by id
    ("-count", ["mi300x8", "a100x8", "h100x8", "h100x4", "a100x1"]),
    ("-total_memory_gb", ["mi300x8", "a100x8", "h100x8", "h100x4", "a100x1"]),
    pytest.param("price_per_accelerator_hour", ["a100x1", "a100x8", "h100x8", "h100x4", "mi300x8"]),
    ("network_gbps", ["a100x1", "h100x4", "h100x8", "mi300x8", "a100x8"]),  # unknown (NULL) last
    ("-network_gbps", ["mi300x8", "h100x8", "h100x4", "a100x1", "a100x8"]),  # NULL last here too
])
def test_ordering_ascending_and_descending(api, catalog, ordering, expected):
    assert names(api.get(URL, {"ordering": ordering})) == expected


@pytest.mark.parametrize("ordering", ["price_per_hour", "-price_per_hour", "count", "-count", "network_gbps",
                                      "-network_gbps", "-total_memory_gb"])
def test_cursor_pagination_walks_forward_and_back_exactly(api, catalog, ordering):
    everything = names(api.get(URL, {"ordering": ordering}))
    pages, url = [], None
    first = api.get(URL, {"ordering": ordering, "page_size": 2})
    body = first.json()
    assert body["previous"] is None
    pages.append([r["name"] for r in body["results"]])
    while body["next"]:
        url = body["next"]
        body = api.get(url).json()
        pages.append([r["name"] for r in body["results"]])
    assert pages == [everything[0:2], everything[2:4], everything[4:5]]
    back = api.get(body["previous"]).json()
    assert [r["name"] for r in back["results"]] == everything[2:4]
    back = api.get(back["previous"]).json()
    assert [r["name"] for r in back["results"]] == everything[0:2]
    assert back["previous"] is None
    assert back["next"] is not None


def test_search_is_two_queries_token_and_page(api, catalog, django_assert_num_queries):
    api.get(URL, {"q": "accelerator=A100"})  # the first use of a token stamps last_used_at; ids get cached
    with django_assert_num_queries(2):
        response = api.get(URL, {"q": "accelerator=A100 region in [us-east,us-west] price_per_hour<=30",
                                 "ordering": "-price_per_hour", "page_size": 1})
    with django_assert_num_queries(2):
        api.get(response.json()["next"])


@pytest.mark.parametrize(("params", "status", "code", "fields"), [
    ({"q": "gpu_ram>=24"}, 400, "invalid_query",
     {"q": ["unknown field 'gpu_ram' (did you mean 'memory_gb'?); valid fields: accelerator, vendor, "
            "stack, count, memory_gb, total_memory_gb, bf16_tflops, fp64_tflops, vcpus, ram_gb, disk_gb, "
            "interconnect, inter_node, network_gbps, region, country, carbon_gco2_per_kwh, price_per_hour, "
            "price_per_accelerator_hour, interruptible_price_per_hour, nodes_available, min_rental_hours, "
            "provider, reliability"]}),
    ({"q": "count~8"}, 400, "invalid_query",
     {"q": ["operator '~' is not valid; use one of = != < <= > >= in notin"]}),
    ({"q": "count>=lots"}, 400, "invalid_query", {"q": ["count>=lots: 'lots' is not a number"]}),
    ({"min_count": "lots"}, 400, "invalid", {"min_count": ["Enter a number."]}),
    ({"min_count": "10000"}, 400, "invalid", {"min_count": ["count>=10000: count cannot be more than 64"]}),
    ({"max_price_per_hour": "-1"}, 400, "invalid",
     {"max_price_per_hour": ["price_per_hour<=-1: price_per_hour cannot be less than 0"]}),
    ({"accelerator": "gpu9000"}, 400, "invalid", {"accelerator": ["accelerator=\"gpu9000\": unknown "
                                                                  "accelerator 'gpu9000'"]}),
    ({"interconnect": "infiniband"}, 400, "invalid",
     {"interconnect": ["Select a valid choice. infiniband is not one of the available choices."]}),
    ({"ordering": "name"}, 400, "invalid",
     {"ordering": ["cannot order by 'name'; order by one of count, memory_gb, total_memory_gb, bf16_tflops, "
                   "fp64_tflops, vcpus, ram_gb, disk_gb, network_gbps, carbon_gco2_per_kwh, price_per_hour, "
                   "price_per_accelerator_hour, interruptible_price_per_hour, nodes_available, "
                   "min_rental_hours, reliability (prefix '-' for descending)"]}),
    ({"page_size": "500"}, 400, "invalid",
     {"page_size": ["Ensure this value is less than or equal to 200."]}),
    ({"page_size": "0"}, 400, "invalid",
     {"page_size": ["Ensure this value is greater than or equal to 1."]}),
    ({"cursor": "garbage"}, 400, "invalid_cursor",
     {"cursor": ["not a cursor this API issued; use the 'next' or 'previous' link as given"]}),
])
def test_bad_search_input_is_a_400_in_the_error_shape(api, catalog, params, status, code, fields):
    response = api.get(URL, params)
    assert response.status_code == status
    error = response.json()["error"]
    assert (error["code"], error["fields"]) == (code, fields)
    assert error["message"].endswith(next(iter(fields.values()))[0])


def test_query_error_carries_its_position(api):
    error = api.get(URL, {"q": "count>=8 memory_gb>=lots"}).json()["error"]
    assert error == {"code": "invalid_query", "message": "memory_gb>=lots: 'lots' is not a number",
                     "fields": {"q": ["memory_gb>=lots: 'lots' is not a number"]}, "position": 9}


def test_a_cursor_belongs_to_its_ordering(api, catalog):
    next_url = api.get(URL, {"ordering": "count", "page_size": 1}).json()["next"]
    response = api.get(next_url.replace("ordering=count", "ordering=-count"))
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {
        "cursor": ["this cursor belongs to ordering=count, not ordering=-count"]}


def test_anonymous_gets_401_in_the_error_shape(anon, catalog):
    for response in (anon.get(URL), anon.get(f"{URL}{catalog['h100x8'].id}/"),
                     anon.post(URL, {}, format="json"), anon.get("/api/v1/accelerators/resolve/?name=H100")):
        assert response.status_code == 401
        assert response.json() == {"error": {"code": "not_authenticated", "fields": {},
                                              "message": "Authentication credentials were not provided."}}
    assert anon.get(URL, HTTP_AUTHORIZATION="Token nope").json()["error"] == {
        "code": "not_authenticated", "message": "Invalid or revoked token.", "fields": {}}


def test_detail_shows_listed_offers_and_own_drafts_only(api, client_for, member_a, member_b, operator,
                                                        catalog):
    draft = catalog["draft"].id
    assert api.get(f"{URL}{catalog['h100x8'].id}/").json()["name"] == "h100x8"
    assert api.get(f"{URL}{draft}/").status_code == 404
    assert client_for(member_b).get(f"{URL}{draft}/").status_code == 404
    assert client_for(member_a).get(f"{URL}{draft}/").json()["status"] == "draft"
    assert client_for(operator).get(f"{URL}{draft}/").json()["status"] == "draft"
    assert api.get(f"{URL}999999/").json() == {"error": {"code": "not_found", "message": "No offer 999999.",
                                                         "fields": {}}}
