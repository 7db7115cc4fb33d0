"""Input limits: every over-limit input is a 4xx in the one error shape naming the field (README, Configuration).
Each limit is lowered through its setting here, so the tests also show that the setting is what is enforced."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.django_db


def error_of(response, status: int) -> dict:
    assert response.status_code == status, (response.status_code, response.content[:300])
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"} and {"code", "message", "fields"} <= set(body["error"]), body
    return body["error"]


# ------------------------------------------------------------------------------------------- request body
def test_a_json_body_over_max_request_bytes_is_413_before_it_is_read(settings, client_for, customer, anon):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 4096
    body = json.dumps({"resources": {"accelerator": "H100", "count": 8}, "duration_hours": 1,
                       "regions_allowed": ["x" * 40] * 200})
    assert len(body) > 4096
    for client in (client_for(customer), anon):
        error = error_of(client.post("/api/v1/recommendations/", body, content_type="application/json"), 413)
        assert error["code"] == "too_large"
        assert error["fields"]["body"] == [f"The request body is {len(body):,} bytes; the limit is 4,096. "
                                           f"(MAX_REQUEST_BYTES)"]
    # Just under the limit it is read (and answered on its merits).
    small = client_for(customer).post("/api/v1/recommendations/", json.dumps({"top_k": 0}),
                                      content_type="application/json")
    assert error_of(small, 400)["fields"].keys() >= {"top_k"}


def test_a_form_body_over_the_limit_is_413_on_a_portal_page_too(settings, client, member_a):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 4096
    client.force_login(member_a)
    response = client.post("/provider/upload/", {"list_new": "on", "junk": "x" * 5000})
    assert response.status_code == 413
    assert b"the limit is 4,096" in response.content


def test_a_bad_content_length_is_a_400(client_for, customer):
    response = client_for(customer).generic("POST", "/api/v1/tokens/", b"{}", content_type="application/json",
                                            CONTENT_LENGTH="lots")
    assert error_of(response, 400)["fields"] == {"body": ["Content-Length is not a number."]}


def test_an_unrouted_api_url_is_a_json_404(client_for, customer):
    error = error_of(client_for(customer).get("/api/v1/orders/-5/"), 404)
    assert error["code"] == "not_found"


# ------------------------------------------------------------------------------------------- page size
def _paginated_lists(client) -> list[str]:
    schema = client.get("/api/schema/?format=json").json()
    return sorted(path for path, ops in schema["paths"].items()
                  if "get" in ops and "{" not in path
                  and any(p.get("name") == "page_size" for p in ops["get"].get("parameters", [])))


def test_every_paginated_list_refuses_a_page_size_over_the_maximum(settings, client_for, customer, member_a,
                                                                    client):
    settings.API_MAX_PAGE_SIZE = 7
    lists = _paginated_lists(client)
    assert {"/api/v1/offers/", "/api/v1/orders/", "/api/v1/tokens/", "/api/v1/provider/offers/",
            "/api/v1/billing/topups/", "/api/v1/billing/charges/", "/api/v1/billing/transfers/"} <= set(lists)
    clients = [client_for(customer), client_for(member_a)]
    for path in lists:
        allowed = [c for c in clients if c.get(path, {"page_size": 7}).status_code == 200]
        assert allowed, f"nobody may read {path}"
        for api in allowed:
            error = error_of(api.get(path, {"page_size": 8}), 400)
            assert error["fields"] == {"page_size": ["Ensure this value is less than or equal to 7."]}, path
            assert error_of(api.get(path, {"page_size": 0}), 400)["fields"].keys() == {"page_size"}


def test_the_schema_documents_the_maximum_page_size(client):
    schema = client.get("/api/schema/?format=json").json()
    param = next(p for p in schema["paths"]["/api/v1/orders/"]["get"]["parameters"] if p["name"] == "page_size")
    assert (param["schema"]["minimum"], param["schema"]["maximum"]) == (1, 200)


def test_a_page_past_the_end_is_a_400_on_page(client_for, customer):
    error = error_of(client_for(customer).get("/api/v1/orders/", {"page": 99}), 400)
    assert list(error["fields"]) == ["page"]


# ------------------------------------------------------------------------------------------- query language
@pytest.mark.parametrize(("q", "message"), [
    ("count>=8 " * 8, "query is 72 characters long; the limit is 60"),
    ("count>=1 count>=2 count>=3 count>=4", "query has more than 3 clauses; the limit is 3"),
    ("region in [a,b,c,d,e]", "region in [...]: the list has 5 items; the limit is 4"),
    ("region in [a,[b,c]]", "lists cannot be nested (position 13)"),
])
def test_queries_over_the_limits_are_400_on_q(settings, client_for, customer, q, message):
    settings.QUERY_MAX_LENGTH, settings.QUERY_MAX_CLAUSES, settings.QUERY_MAX_LIST_ITEMS = 60, 3, 4
    error = error_of(client_for(customer).get("/api/v1/offers/", {"q": q}), 400)
    assert (error["code"], error["fields"]) == ("invalid_query", {"q": [message]})


def test_a_query_at_the_limits_is_accepted(settings, client_for, customer):
    settings.QUERY_MAX_LENGTH, settings.QUERY_MAX_CLAUSES, settings.QUERY_MAX_LIST_ITEMS = 60, 3, 4
    response = client_for(customer).get("/api/v1/offers/", {"q": "count>=1 count>=2 region in [a,b,c,d]"})
    assert response.status_code == 200, response.content


def test_the_portal_search_applies_the_same_query_limits(settings, client, customer):
    settings.QUERY_MAX_LENGTH = 60
    client.force_login(customer)
    response = client.get("/offers/", {"q": "count>=8 " * 8})  # the form strips the trailing space
    assert response.context["form"].errors == {"q": ["query is 71 characters long; the limit is 60"]}


# ------------------------------------------------------------------------------------------- CSV uploads
HEADER = "external_id,name,accelerator,count,region,price_per_hour,nodes_available\n"


def _csv(rows: int, pad: int = 0) -> str:
    return HEADER + "".join(f"n{i},node{'x' * pad},H100,8,us-east-virginia,20,2\n" for i in range(rows))


def test_api_csv_over_the_byte_limit_is_400_on_offers(settings, client_for, member_a, region, h100):
    settings.CSV_MAX_BYTES = 2048
    response = client_for(member_a).post("/api/v1/offers/bulk/", _csv(10, pad=300), content_type="text/csv")
    error = error_of(response, 400)
    assert error["fields"] == {"offers": ["The CSV is over 2,048 bytes (CSV_MAX_BYTES); split it into several "
                                          "uploads."]}


def test_api_bulk_over_the_row_limit_is_400_on_offers(settings, client_for, member_a, region, h100):
    from marketplace.models import Offer

    settings.OFFERS_BULK_MAX_ROWS = 3
    api = client_for(member_a)
    error = error_of(api.post("/api/v1/offers/bulk/", _csv(4), content_type="text/csv"), 400)
    assert error["fields"] == {"offers": ["at most 3 offers per request"]}
    rows = [{"external_id": f"j{i}", "name": "n", "accelerator": "H100", "count": 8, "region": "us-east-virginia",
             "price_per_hour": "20", "nodes_available": 1} for i in range(4)]
    error = error_of(api.post("/api/v1/offers/bulk/", {"offers": rows}, format="json"), 400)
    assert error["fields"] == {"offers": ["at most 3 offers per request"]}
    assert not Offer.objects.exists()
    assert api.post("/api/v1/offers/bulk/", _csv(3), content_type="text/csv").status_code == 200


def _upload(client, content: str):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return client.post("/provider/upload/", {"file": SimpleUploadedFile("m.csv", content.encode(), "text/csv"),
                                             "list_new": "on"})


def test_portal_csv_over_the_byte_limit_is_a_400_with_the_file_field_error(settings, client, member_a):
    settings.CSV_MAX_BYTES = 2048
    client.force_login(member_a)
    response = _upload(client, _csv(10, pad=300))
    assert response.status_code == 400
    assert response.context["form"].errors == {"file": [f"The file is {len(_csv(10, pad=300)):,} bytes; "
                                                        f"the limit is 2,048."]}


def test_portal_csv_over_the_row_limit_is_a_400_with_the_file_field_error(settings, client, member_a, region):
    settings.OFFERS_BULK_MAX_ROWS = 3
    client.force_login(member_a)
    response = _upload(client, _csv(4))
    assert response.status_code == 400
    assert response.context["form"].errors == {"file": ["The file has 4 machines; at most 3 per upload."]}
    assert _upload(client, _csv(3)).status_code == 200


def test_every_write_documents_the_413_and_each_body_the_415(client):
    schema = client.get("/api/schema/?format=json").json()
    writes = [(path, method, op) for path, ops in schema["paths"].items() for method, op in ops.items()
              if method in ("post", "put", "patch")]
    assert len(writes) > 15
    for path, method, operation in writes:
        codes = ("413", "415") if "requestBody" in operation else ("413",)
        for code in codes:
            assert operation["responses"][code]["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/Error"}, (method, path, code)


def test_an_unreadable_content_type_is_a_415_in_the_error_shape(client_for, customer):
    response = client_for(customer).post("/api/v1/tokens/", b"name=x", content_type="application/x-yaml")
    assert error_of(response, 415)["code"] == "unsupported_media_type"
