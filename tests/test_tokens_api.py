"""API tokens: create (key shown once), list, revoke; a revoked key stops working at once."""

import pytest

from marketplace.models import ApiToken
from marketplace.services.tokens import hash_key

pytestmark = pytest.mark.django_db
URL = "/api/v1/tokens/"


def test_create_shows_the_key_once_and_stores_only_its_hash(client_for, customer, anon):
    api = client_for(customer)
    response = api.post(URL, {"name": "ci"}, format="json")
    assert response.status_code == 201
    body = response.json()
    key = body["key"]
    token = ApiToken.objects.get(pk=body["id"])
    assert (token.user, token.name, token.prefix, token.key_hash) == (customer, "ci", key[:10], hash_key(key))
    assert key.startswith("cb_") and body["active"] is True and body["prefix"] == key[:10]
    listed = api.get(URL).json()["results"]
    assert [t["name"] for t in listed] == ["ci", "test"]
    assert all("key" not in t for t in listed)
    anon.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert anon.get(URL).status_code == 200


def test_revoke_stops_the_key_and_keeps_the_record(client_for, customer, anon):
    api = client_for(customer)
    body = api.post(URL, {"name": "laptop"}, format="json").json()
    anon.credentials(HTTP_AUTHORIZATION=f"Bearer {body['key']}")
    assert anon.get(URL).status_code == 200
    assert api.delete(f"{URL}{body['id']}/").status_code == 204
    assert anon.get(URL).json() == {"error": {"code": "not_authenticated", "message": "Invalid or revoked token.",
                                              "fields": {}}}
    row = next(t for t in api.get(URL).json()["results"] if t["id"] == body["id"])
    assert row["active"] is False and row["revoked_at"] is not None
    assert api.delete(f"{URL}{body['id']}/").status_code == 204  # revoking twice is harmless


def test_users_see_and_revoke_only_their_own_tokens(client_for, customer, member_a):
    mine = client_for(customer)
    theirs = client_for(member_a)
    their_token = ApiToken.objects.get(user=member_a)
    assert [t["id"] for t in mine.get(URL).json()["results"]] == [ApiToken.objects.get(user=customer).id]
    response = mine.delete(f"{URL}{their_token.id}/")
    assert response.status_code == 404
    assert response.json() == {"error": {"code": "not_found", "message": "No such token.", "fields": {}}}
    their_token.refresh_from_db()
    assert their_token.revoked_at is None
    assert theirs.get(URL).status_code == 200


@pytest.mark.parametrize(("data", "fields"), [
    ({}, {"name": ["This field is required."]}),
    ({"name": ""}, {"name": ["This field may not be blank."]}),
    ({"name": "x" * 101}, {"name": ["Ensure this field has no more than 100 characters."]}),
])
def test_bad_token_input(client_for, customer, data, fields):
    api = client_for(customer)
    response = api.post(URL, data, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == fields
    assert ApiToken.objects.filter(user=customer).count() == 1


def test_anonymous_cannot_touch_tokens(anon):
    assert anon.get(URL).status_code == 401
    assert anon.post(URL, {"name": "x"}, format="json").status_code == 401
    assert ApiToken.objects.count() == 0


def test_the_token_lookup_runs_prepared_and_revocation_still_applies_at_once(client_for, customer):
    """On PostgreSQL every request's token lookup is a prepared statement (parsed and planned once per
    connection, not per request); a revoked key must still be refused on the very next request."""
    from django.db import connection

    api = client_for(customer)
    for _ in range(7):  # psycopg prepares a statement at its sixth execution (prepare_threshold 5)
        assert api.get(URL).status_code == 200
    if connection.vendor == "postgresql" and connection.settings_dict["OPTIONS"].get("prepare_threshold"):
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE %s",
                           ['%"key_hash" = $1%'])
            assert cursor.fetchone()[0] == 1
    ApiToken.objects.filter(user=customer).update(revoked_at="2026-01-01T00:00:00Z")
    assert api.get(URL).status_code == 401
