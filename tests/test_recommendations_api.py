"""POST /api/v1/recommendations/ and manage.py recommend, against the real database and engine."""

from __future__ import annotations

import io
import json
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.utils import timezone

from marketplace.errors import NotFoundError
from marketplace.models import Accelerator, Quote
from marketplace.selectors.snapshot import clear_snapshot_cache
from marketplace.services.catalog_version import catalog_bump
from marketplace.services.quotes import quote_for_offer, quote_get, quote_is_expired

URL = "/api/v1/recommendations/"
H100X8 = {"resources": {"accelerator": "H100", "count": 8}, "duration_hours": 10, "objective": "cost"}


@pytest.fixture(autouse=True)
def fresh_cache():
    clear_snapshot_cache()
    yield
    clear_snapshot_cache()


@pytest.fixture
def offers(provider_a, provider_b, make_offer):
    catalog_bump()
    return {
        "a_cheap": make_offer(provider_a, name="a-8x", external_id="a1", price_per_hour=Decimal("18.5000")),
        "b_dear": make_offer(provider_b, name="b-8x", external_id="b1", price_per_hour=Decimal("24.0000")),
        "a_small": make_offer(provider_a, name="a-1x", external_id="a2", accelerator_count=1,
                              price_per_hour=Decimal("2.1000")),
    }


@pytest.mark.django_db
def test_anonymous_is_401(anon):
    res = anon.post(URL, H100X8, format="json")
    assert res.status_code == 401
    assert res.json()["error"]["code"] == "not_authenticated"


@pytest.mark.django_db
def test_ranks_by_total_cost_and_stores_a_quote(client_for, customer, offers):
    res = client_for(customer).post(URL, H100X8, format="json")
    assert res.status_code == 200, res.content
    body = res.json()
    recs = body["recommendations"]
    assert [r["offer_id"] for r in recs] == [offers["a_cheap"].id, offers["b_dear"].id]
    assert recs[0]["est_total_usd"] == "185.00"
    assert recs[0]["provider"] == "Provider A"
    assert recs[0]["accelerator"] == "NVIDIA H100-SXM5-80GB"
    assert body["excluded"]["considered"] == 3
    quote = Quote.objects.get(pk=body["quote"]["id"])
    assert quote.user == customer
    assert [a["offer_id"] for a in quote.alternatives] == [offers["a_cheap"].id, offers["b_dear"].id]
    assert quote.alternatives[0]["est_total_usd"] == "185.00"
    assert quote.expires_at - quote.created_at == timedelta(minutes=15)


@pytest.mark.django_db
def test_no_match_is_200_with_explanation_and_no_quote(client_for, customer, offers):
    req = {**H100X8, "max_price_per_hour": 10}
    res = client_for(customer).post(URL, req, format="json")
    assert res.status_code == 200
    body = res.json()
    assert body["recommendations"] == []
    assert body["quote"] is None
    reasons = {r["code"]: r["count"] for r in body["excluded"]["by_reason"]}
    assert reasons.get("max_price_per_hour") == 2
    assert body["excluded"]["near_misses"]
    assert Quote.objects.count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"workload": {"kind": "llm_inference", "params_b": 0}, "duration_hours": 1}, "workload.params_b"),
        ({"resources": {"accelerator": "H10O"}, "duration_hours": 1}, "resources.accelerator"),
        ({"resources": {"count": 0}, "duration_hours": 1}, "resources"),
        ({"resources": {"accelerator": "H100"}, "deadline": "2001-01-01T00:00:00Z"}, "deadline"),
        ({"resources": {"accelerator": "H100"}, "duration_hours": 1, "objective": "fastest-please"}, "objective"),
    ],
)
def test_bad_requests_are_400_naming_the_field(client_for, customer, offers, payload, field):
    res = client_for(customer).post(URL, payload, format="json")
    assert res.status_code == 400, res.content
    err = res.json()["error"]
    assert any(k == field or k.startswith(field) for k in err["fields"]), err
    assert Quote.objects.count() == 0


@pytest.mark.django_db
def test_non_object_body_is_400(client_for, customer):
    res = client_for(customer).post(URL, [1, 2], format="json")
    assert res.status_code == 400
    assert res.json()["error"]["code"] == "invalid_request"


@pytest.mark.django_db
def test_snapshot_follows_catalog_version(client_for, customer, offers):
    client = client_for(customer)
    first = client.post(URL, H100X8, format="json").json()["recommendations"][0]["offer_id"]
    offers["a_cheap"].price_per_hour = Decimal("30.0000")
    offers["a_cheap"].save()
    # Without a bump the cached snapshot still answers; with one it is rebuilt.
    assert client.post(URL, H100X8, format="json").json()["recommendations"][0]["offer_id"] == first
    catalog_bump()
    assert client.post(URL, H100X8, format="json").json()["recommendations"][0]["offer_id"] == offers["b_dear"].id


@pytest.mark.django_db
def test_quotes_are_private_and_expire(client_for, customer, make_user, offers):
    body = client_for(customer).post(URL, H100X8, format="json").json()
    quote = quote_get(customer, body["quote"]["id"])
    other = make_user("mallory")
    with pytest.raises(NotFoundError):
        quote_get(other, body["quote"]["id"])
    with pytest.raises(NotFoundError):
        quote_get(customer, "not-a-uuid")
    assert not quote_is_expired(quote)
    assert quote_is_expired(quote, now=quote.expires_at + timedelta(seconds=1))


@pytest.mark.django_db
def test_quote_for_offer_reprices_through_the_engine(customer, offers):
    from marketplace.errors import ValidationFailed

    with pytest.raises(ValidationFailed, match="inter_node"):  # two nodes need a fabric between them
        quote_for_offer(customer, offers["a_cheap"].id, nodes=2, duration_hours=3)
    offers["a_cheap"].inter_node = "infiniband"
    offers["a_cheap"].save()
    quote = quote_for_offer(customer, offers["a_cheap"].id, nodes=2, duration_hours=3)
    assert len(quote.alternatives) == 1
    alt = quote.alternatives[0]
    assert (alt["offer_id"], alt["nodes"], alt["est_total_usd"]) == (offers["a_cheap"].id, 2, "111.00")


@pytest.mark.django_db
def test_recommend_command_prints_the_api_answer(offers, tmp_path):
    path = tmp_path / "req.json"
    path.write_text(json.dumps(H100X8))
    out = io.StringIO()
    call_command("recommend", "--request", str(path), stdout=out)
    answer = json.loads(out.getvalue())
    assert [r["offer_id"] for r in answer["recommendations"]] == [offers["a_cheap"].id, offers["b_dear"].id]
    assert Quote.objects.filter(pk=answer["quote"]["id"], user__isnull=True).exists()


@pytest.mark.django_db
def test_unlisted_and_expired_offers_are_not_recommended(client_for, customer, offers):
    offers["a_cheap"].status = "unlisted"
    offers["a_cheap"].save()
    offers["b_dear"].available_until = timezone.now() - timedelta(minutes=1)
    offers["b_dear"].save()
    catalog_bump()
    body = client_for(customer).post(URL, H100X8, format="json").json()
    assert body["recommendations"] == []
    assert body["excluded"]["considered"] == 1  # only the listed 1x offer is in the snapshot
    assert Accelerator.objects.filter(canonical_name="NVIDIA H100-SXM5-80GB").exists()
