"""Rate limits: token creation, recommendations and order placement (DRF throttles, per user), portal sign-in (per
address, and failed attempts per username + address). Each test uses its own key prefix in the shared Redis
cache and small rates; the limits must fail open, with a log line, when the cache does not answer."""

from __future__ import annotations

import logging
import socket
import uuid

import pytest
from django.test import Client

from marketplace import throttling


@pytest.fixture
def limits(settings):
    """A private key space in the throttle cache (Redis) and small rates; skips when Redis does not answer."""
    from django.core.cache import caches

    settings.CACHES = {**settings.CACHES,
                       "throttle": {**settings.CACHES["throttle"], "KEY_PREFIX": f"t-{uuid.uuid4().hex[:12]}"}}
    try:
        caches["throttle"].get("ping")
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"the throttle cache (Redis at REDIS_URL) does not answer: {exc}")
    settings.THROTTLE_RATES = {"signin": "100/min", "tokens": "3/min", "recommendations": "2/min", "orders": "2/min"}
    settings.SIGNIN_FAILURES_MAX = 3
    settings.SIGNIN_LOCKOUT_SECONDS = 600
    throttling._state.update(down_until=0.0)
    yield settings
    throttling._state.update(down_until=0.0)


def _throttled(response) -> int:
    assert response.status_code == 429, response.content
    body = response.json()
    assert body["error"]["code"] == "throttled", body
    assert set(body["error"]) == {"code", "message", "fields"}
    retry_after = int(response["Retry-After"])
    assert 0 < retry_after <= 60
    return retry_after


def test_token_creation_is_limited_per_user(limits, client_for, customer, make_user) -> None:
    from marketplace.models import ApiToken

    api = client_for(customer)
    assert [api.post("/api/v1/tokens/", {"name": f"t{i}"}, format="json").status_code for i in range(3)] == [201] * 3
    before = ApiToken.objects.filter(user=customer).count()
    _throttled(api.post("/api/v1/tokens/", {"name": "one too many"}, format="json"))
    assert ApiToken.objects.filter(user=customer).count() == before  # nothing created
    assert api.get("/api/v1/tokens/").status_code == 200  # listing is not limited
    other = client_for(make_user("other-customer"))
    assert other.post("/api/v1/tokens/", {"name": "mine"}, format="json").status_code == 201  # per user


def test_recommendations_and_orders_are_limited_per_user(limits, client_for, customer) -> None:
    api = client_for(customer)
    request = {"resources": {"accelerator": "H100", "count": 8}, "duration_hours": 1}
    assert [api.post("/api/v1/recommendations/", request, format="json").status_code for _ in range(2)] == [200, 200]
    _throttled(api.post("/api/v1/recommendations/", request, format="json"))
    # Order placement counts every POST (an invalid one too), per user; reading orders is not limited.
    codes = [api.post("/api/v1/orders/", {}, format="json", HTTP_IDEMPOTENCY_KEY=f"k{i}").status_code
             for i in range(2)]
    assert codes == [400, 400]
    _throttled(api.post("/api/v1/orders/", {}, format="json", HTTP_IDEMPOTENCY_KEY="k3"))
    assert api.get("/api/v1/orders/").status_code == 200


def _sign_in(username: str, password: str, addr: str = "10.0.0.1"):
    return Client(REMOTE_ADDR=addr).post("/signin/", {"username": username, "password": password})


def test_failed_sign_ins_lock_the_username_from_that_address(limits, make_user) -> None:
    make_user("victim")  # password pw-victim-123
    for _ in range(3):
        assert _sign_in("victim", "wrong").status_code == 200  # the form again, with its error
    locked = _sign_in("victim", "pw-victim-123")  # even the right password: not checked while locked
    assert locked.status_code == 429
    assert 590 <= int(locked["Retry-After"]) <= 600
    assert b"Too many failed sign-ins" in locked.content
    assert _sign_in("victim", "pw-victim-123", addr="10.0.0.2").status_code == 302  # another address
    make_user("bystander")
    assert _sign_in("bystander", "pw-bystander-123").status_code == 302  # another username


def test_a_successful_sign_in_clears_the_failures(limits, make_user) -> None:
    make_user("forgetful")
    for _ in range(2):
        assert _sign_in("forgetful", "wrong").status_code == 200
    assert _sign_in("forgetful", "pw-forgetful-123").status_code == 302
    for _ in range(2):
        assert _sign_in("forgetful", "wrong").status_code == 200
    assert _sign_in("forgetful", "pw-forgetful-123").status_code == 302


def test_sign_in_attempts_are_limited_per_address(limits, make_user) -> None:
    limits.THROTTLE_RATES = {**limits.THROTTLE_RATES, "signin": "4/min"}
    codes = [_sign_in(f"nobody{i}", "wrong", addr="10.0.0.9").status_code for i in range(5)]
    assert codes == [200, 200, 200, 200, 429]
    assert _sign_in("nobody", "wrong", addr="10.0.0.10").status_code == 200


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_limits_fail_open_when_the_cache_is_down(settings, client_for, customer, make_user, caplog) -> None:
    settings.CACHES = {**settings.CACHES, "throttle": {**settings.CACHES["throttle"],
                                                       "LOCATION": f"redis://127.0.0.1:{_closed_port()}/0"}}
    settings.THROTTLE_RATES = {"signin": "1/min", "tokens": "1/min", "recommendations": "1/min", "orders": "1/min"}
    settings.SIGNIN_FAILURES_MAX = 1
    throttling._state.update(down_until=0.0, logged_at=float("-inf"))
    api = client_for(customer)
    with caplog.at_level(logging.WARNING, logger="broker.throttling"):
        codes = [api.post("/api/v1/tokens/", {"name": f"t{i}"}, format="json").status_code for i in range(3)]
        throttling._state.update(down_until=0.0)  # past the back-off: the cache is tried (and fails) again
        make_user("walker")
        signins = [_sign_in("walker", "wrong").status_code, _sign_in("walker", "pw-walker-123").status_code]
    throttling._state.update(down_until=0.0)
    assert codes == [201, 201, 201]
    assert signins == [200, 302]
    warnings = [r.getMessage() for r in caplog.records if r.name == "broker.throttling"]
    assert len(warnings) == 1, warnings  # one line per LOG_EVERY_S, not one per request
    assert "failing open" in warnings[0]


def test_the_schema_documents_429_on_limited_operations() -> None:
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    operations = {op["operationId"]: op for path in schema["paths"].values() for op in path.values()}
    for operation_id in ("tokens_create", "recommendations_create", "orders_create"):
        assert "429" in operations[operation_id]["responses"], operation_id
    assert "429" not in operations["tokens_list"]["responses"]


def test_the_portal_token_form_shares_the_api_limit(limits, client_for, customer) -> None:
    from marketplace.models import ApiToken

    api = client_for(customer)
    assert [api.post("/api/v1/tokens/", {"name": f"t{i}"}, format="json").status_code for i in range(2)] == [201] * 2
    browser = Client()
    browser.force_login(customer)
    assert browser.post("/account/tokens/", {"name": "third"}).status_code == 200
    before = ApiToken.objects.filter(user=customer).count()
    refused = browser.post("/account/tokens/", {"name": "fourth"})
    assert refused.status_code == 429
    assert 0 < int(refused["Retry-After"]) <= 60
    assert b"Too many requests" in refused.content
    assert ApiToken.objects.filter(user=customer).count() == before


def test_the_admin_sign_in_is_locked_out_too(limits, make_user) -> None:
    make_user("ops", role="operator", is_staff=True, is_superuser=True)
    admin = Client(REMOTE_ADDR="10.0.0.20")
    for _ in range(3):
        admin.post("/admin/login/", {"username": "ops", "password": "wrong"})
    refused = admin.post("/admin/login/?next=/admin/", {"username": "ops", "password": "pw-ops-123"})
    assert refused.status_code == 200  # the admin's form again: the right password is not even checked
    assert "_auth_user_id" not in admin.session
    other = Client(REMOTE_ADDR="10.0.0.21")
    assert other.post("/admin/login/?next=/admin/", {"username": "ops", "password": "pw-ops-123"}).status_code == 302


def test_the_client_address_behind_trusted_proxies(limits, make_user) -> None:
    from rest_framework.test import APIRequestFactory

    forged = APIRequestFactory().get("/", REMOTE_ADDR="10.1.1.1", HTTP_X_FORWARDED_FOR="6.6.6.6")
    assert throttling.client_address(forged) == "10.1.1.1"  # no proxy trusted: a client's header is ignored
    limits.REST_FRAMEWORK = {**limits.REST_FRAMEWORK, "NUM_PROXIES": 1}
    proxied = APIRequestFactory().get("/", REMOTE_ADDR="10.1.1.1", HTTP_X_FORWARDED_FOR="6.6.6.6, 203.0.113.7")
    assert throttling.client_address(proxied) == "203.0.113.7"  # what our proxy appended, not what came before


def test_the_portal_shares_the_api_limits_on_recommendations_quotes_and_orders(limits, client_for, customer,
                                                                               provider_a, make_offer) -> None:
    """The portal's engine-backed forms (live recommendations, "Order this", ordering an offer) count against the
    recommendations limit, its order form against the orders limit: each refusal is a 429 page that says why,
    with Retry-After, and nothing is written."""
    from datetime import timedelta

    from django.utils import timezone

    from marketplace.models import Quote
    from marketplace.orders.models import Order
    from tests.orders.conftest import alternative

    browser = Client()
    browser.force_login(customer)
    form = {"template": "gpus", "accelerator": "H100", "count": "8", "nodes": "1", "duration_hours": "1"}
    hx = {"HTTP_HX_REQUEST": "true"}
    assert [browser.post("/recommend/", form, **hx).status_code for _ in range(2)] == [200, 200]
    refused = browser.post("/recommend/", form, **hx)
    assert refused.status_code == 429 and 0 < int(refused["Retry-After"]) <= 60
    assert b"Too many requests" in refused.content and b'id="recommend-errors"' in refused.content
    quotes = Quote.objects.count()
    answer = browser.post("/recommend/quote/", {"document": "{}", "offer_id": "1"}, follow=True)
    assert answer.redirect_chain == [("/recommend/", 302)] and b"Too many requests" in answer.content
    assert Quote.objects.count() == quotes
    offer = make_offer(provider_a, external_id="portal-limits")
    refused = browser.post(f"/offers/{offer.pk}/order/", {"nodes": "1", "duration_hours": "1"})
    assert refused.status_code == 429 and b"Too many requests" in refused.content
    assert Quote.objects.count() == quotes
    # Orders: the API's two placements use up the limit the portal's order form shares.
    api = client_for(customer)
    assert [api.post("/api/v1/orders/", {}, format="json", HTTP_IDEMPOTENCY_KEY=f"k{i}").status_code
            for i in range(2)] == [400, 400]
    now = timezone.now()
    quote = Quote.objects.create(user=customer, request={"resources": {"nodes": 1}}, objective="cost",
                                 alternatives=[alternative(offer, 1)], created_at=now,
                                 expires_at=now + timedelta(minutes=15))
    refused = browser.post(f"/orders/new/{quote.id}/{offer.pk}/", {
        "duration_hours": "1", "command": "python serve.py", "method": "credit", "idempotency_key": "p1"})
    assert refused.status_code == 429 and 0 < int(refused["Retry-After"]) <= 60
    assert b"Too many requests" in refused.content
    assert not Order.objects.filter(customer=customer).exists()
