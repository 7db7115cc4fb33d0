"""Every form of the portal is CSRF-protected: a POST without the token is refused with 403 and changes nothing;
the same POST with the token the page handed out goes through."""

from __future__ import annotations

import re

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db

POSTS_SIGNED_OUT = ["/signup/", "/signin/", "/recommend/"]
POSTS_CUSTOMER = ["/signout/", "/account/tokens/", "/account/tokens/1/revoke/", "/recommend/quote/",
                  "/orders/1/cancel/", "/billing/", "/billing/card/",
                  "/orders/new/00000000-0000-0000-0000-000000000000/1/"]
POSTS_PROVIDER = ["/provider/offers/new/", "/provider/offers/1/edit/", "/provider/offers/1/status/",
                  "/provider/upload/", "/provider/upload/confirm/", "/provider/organisation/"]


@pytest.fixture
def strict():
    return Client(enforce_csrf_checks=True)


@pytest.mark.parametrize("path", POSTS_SIGNED_OUT)
def test_signed_out_posts_need_the_token(strict, path):
    from marketplace.models import User

    before = User.objects.count()
    response = strict.post(path, {"username": "mallory", "email": "m@example.com", "password": "x-long-password-1",
                                  "role": "customer"})
    assert response.status_code == 403
    assert User.objects.count() == before


@pytest.mark.parametrize("path", POSTS_CUSTOMER)
def test_customer_posts_need_the_token(strict, customer, path):
    from marketplace.models import ApiToken

    strict.force_login(customer)
    response = strict.post(path, {"name": "ci", "amount": "10.00", "payment_method": "pm_card_visa"})
    assert response.status_code == 403
    assert ApiToken.objects.count() == 0


@pytest.mark.parametrize("path", POSTS_PROVIDER)
def test_provider_posts_need_the_token(strict, member_a, path):
    from marketplace.models import Offer

    strict.force_login(member_a)
    response = strict.post(path, {"name": "x", "accelerator": "H100", "count": "8", "region": "us-east-virginia",
                                  "price_per_hour": "1", "nodes_available": "1", "action": "unlist"})
    assert response.status_code == 403
    assert Offer.objects.count() == 0


def test_with_the_token_the_post_goes_through(strict, customer):
    from marketplace.models import ApiToken

    strict.force_login(customer)
    page = strict.get("/account/tokens/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode()).group(1)
    response = strict.post("/account/tokens/", {"name": "ci", "csrfmiddlewaretoken": token})
    assert response.status_code == 200
    assert list(ApiToken.objects.filter(user=customer).values_list("name", flat=True)) == ["ci"]


def test_htmx_requests_carry_the_token_in_a_header(strict):
    """htmx sends X-CSRFToken from the <body hx-headers> of every page; the header alone is accepted."""
    page = strict.get("/recommend/")
    body = page.content.decode()
    token = re.search(r'hx-headers=\'\{"X-CSRFToken": "([^"]+)"\}\'', body).group(1)
    response = strict.post("/recommend/", {"template": "gpus", "accelerator": "H100", "count": "8", "nodes": "1",
                                           "duration_hours": "24", "objective": "cost", "top_k": "10"},
                           HTTP_X_CSRFTOKEN=token, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert b'id="recommendations"' in response.content or b'id="recommend-empty"' in response.content
