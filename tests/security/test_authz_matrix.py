"""The authorization matrix: every API endpoint and portal page x six principals -> the expected status, and no
object of another tenant in any response.

Principals: anonymous, customer A, customer B, provider member A, provider member B, operator. Objects in paths
are always tenant A's (customer A's order, quote, top-up and token; provider A's draft offer, agent and
transfer), so the B column is the "other tenant" probe and must be a 404 (never a 403 that confirms the object
exists). Every response body, whatever its status, is searched for the markers of the tenants the principal may
not see (tests/security/world.py) and for secrets nobody may see (token keys, agent secrets).

The table is checked against the URL resolver: an endpoint (or an API method) without a row fails
`test_every_route_has_a_row`, so a new endpoint cannot ship without its authorization decided here.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import pytest
from django.db import transaction
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone

from tests.security.world import World, build_world

PRINCIPALS = ("anon", "cust_a", "cust_b", "prov_a", "prov_b", "op")
SEES = {"anon": set(), "cust_a": {"cust_a"}, "cust_b": {"cust_b"}, "prov_a": {"prov_a"}, "prov_b": {"prov_b"},
        "op": {"cust_a", "cust_b", "prov_a", "prov_b"}}
MONTH = f"{timezone.now():%Y-%m}"
R = "redirect"  # a 302 (the portal sends people elsewhere instead of a 403)
UP = "200 or 503"  # /readyz: whether the database, Redis and workers are up, the same for everyone


@dataclass(frozen=True)
class Row:
    method: str
    name: str
    args: tuple[str, ...]           # world.ids keys (or literals prefixed with "=")
    expect: tuple[Any, ...]         # one per PRINCIPALS
    body: Any = None
    query: str = ""

    @property
    def id(self) -> str:
        return f"{self.method} {self.name}" + (f"?{self.query}" if self.query else "")


def row(method: str, name: str, anon, ca, cb, pa, pb, op, *args: str, body: Any = None, query: str = "") -> Row:
    return Row(method, name, args, (anon, ca, cb, pa, pb, op), body, query)


OFFER_BODY = {"name": "new node", "accelerator": "H100 SXM", "count": 8, "region": "us-east-virginia",
              "price_per_hour": "12.50", "status": "draft"}
RECOMMEND_BODY = {"resources": {"accelerator": "H100", "count": 8}, "duration_hours": 2, "objective": "cost"}

# ------------------------------------------------------------------------------------------------------------
#                                                 anon  cust A  cust B  prov A  prov B  op
API = [
    row("GET", "offers",                          401,  200,    200,    200,    200,    200),
    row("POST", "offers",                         401,  403,    403,    201,    201,    400, body=OFFER_BODY),
    row("POST", "offers-bulk",                    401,  403,    403,    200,    200,    400,
        body={"offers": [{**OFFER_BODY, "external_id": "bulk-1"}]}),
    row("GET", "offer-detail",                    401,  404,    404,    200,    404,    200, "draft_a"),
    row("PATCH", "offer-detail",                  401,  403,    403,    200,    404,    200, "draft_a",
        body={"price_per_hour": "11.00"}),
    row("POST", "offer-unlist",                   401,  403,    403,    200,    404,    200, "listed_a"),
    row("GET", "provider-offers",                 401,  403,    403,    200,    200,    200),
    row("GET", "provider-offers",                 401,  403,    403,    200,    200,    200,
        query="provider=sec-prov-a"),
    row("GET", "offers",                          401,  200,    200,    200,    200,    200,
        query="q=provider=sec-prov-a&status=draft"),
    row("GET", "accelerators",                    401,  200,    200,    200,    200,    200),
    row("GET", "accelerator-resolve",             401,  200,    200,    200,    200,    200, query="name=H100"),
    row("GET", "regions",                         401,  200,    200,    200,    200,    200),
    row("GET", "tokens",                          401,  200,    200,    200,    200,    200),
    row("POST", "tokens",                         401,  201,    201,    201,    201,    201, body={"name": "ci"}),
    row("DELETE", "token-revoke",                 401,  204,    404,    404,    404,    404, "token_a"),
    row("POST", "recommendations",                401,  200,    200,    200,    200,    200, body=RECOMMEND_BODY),
    row("GET", "orders",                          401,  200,    200,    200,    200,    200),
    row("POST", "orders",                         401,  201,    404,    403,    403,    404,
        body={"quote_id": "quote_a", "job": {"command": "true", "duration_hours": "1"}}),
    row("GET", "order-detail",                    401,  200,    404,    404,    404,    200, "order_a"),
    row("GET", "order-events",                    401,  200,    404,    404,    404,    200, "order_a"),
    row("GET", "order-logs",                      401,  200,    404,    404,    404,    200, "order_a"),
    row("POST", "order-cancel",                   401,  200,    404,    404,    404,    200, "order_a"),
    row("POST", "stripe-webhook",                 400,  400,    400,    400,    400,    400, body={"id": "evt_x"}),
    row("POST", "stripe-connect-webhook",         400,  400,    400,    400,    400,    400, body={"id": "evt_x"}),
    row("GET", "billing-credit",                  401,  200,    200,    200,    200,    200),
    row("PUT", "billing-profile",                 401,  400,    400,    400,    400,    400, body={}),
    row("GET", "billing-topups",                  401,  200,    200,    200,    200,    200),
    row("POST", "billing-topups",                 401,  400,    400,    403,    403,    403, body={"amount": "0"}),
    row("GET", "billing-topup",                   401,  200,    404,    404,    404,    404, "topup_a"),
    row("GET", "billing-charges",                 401,  200,    200,    200,    200,    200),
    row("GET", "billing-charge",                  401,  200,    404,    404,    404,    200, "order_a"),
    row("POST", "billing-charge-refund",          401,  403,    403,    403,    403,    200, "order_a",
        body={"reason": "requested_by_customer"}),
    row("GET", "billing-invoices",                401,  200,    200,    200,    200,    200),
    row("GET", "billing-invoice-order",           401,  200,    404,    404,    404,    200, "order_a"),
    row("GET", "billing-invoice-order-csv",       401,  200,    404,    404,    404,    200, "order_a"),
    row("GET", "billing-invoice-month",           401,  200,    200,    200,    200,    200, "=" + MONTH),
    row("GET", "billing-invoice-month-csv",       401,  200,    200,    200,    200,    200, "=" + MONTH),
    row("POST", "billing-onboarding-link",        401,  403,    403,    400,    400,    403,
        body={"return_url": "not a url"}),
    row("GET", "billing-payout-account",          401,  403,    403,    200,    200,    403),
    row("GET", "billing-transfers",               401,  403,    403,    200,    200,    200),
    row("GET", "billing-transfers",               401,  403,    403,    200,    200,    200, query="status=failed"),
    row("POST", "billing-transfer-retry",         401,  403,    403,    403,    403,    200, "transfer_a"),
    row("PUT", "billing-overdraft",               401,  403,    403,    403,    403,    200, "customer_a",
        body={"overdraft_limit": "10.00"}),
    row("GET", "agents",                          401,  403,    403,    200,    200,    200),
    row("POST", "agents",                         401,  403,    403,    201,    201,    400, body={"name": "second"}),
    row("POST", "agent-register",                 401,  401,    401,    401,    401,    401, body={"slots": 1}),
    row("POST", "agent-rotate-secret",            401,  403,    403,    200,    404,    200, "agent_a",
        body={"grace_seconds": 0}),
    row("GET", "schema",                          200,  200,    200,    200,    200,    200),
    row("GET", "docs",                            200,  200,    200,    200,    200,    200),
]

#                                                 anon  cust A  cust B  prov A  prov B  op
PORTAL = [
    row("GET", "portal:home",                     200,  R,      R,      R,      R,      R),
    row("GET", "portal:signup",                   200,  R,      R,      R,      R,      R),
    row("GET", "portal:signin",                   200,  R,      R,      R,      R,      R),
    row("POST", "portal:signout",                 R,    R,      R,      R,      R,      R),
    row("GET", "portal:tokens",                   R,    200,    200,    200,    200,    200),
    row("POST", "portal:token-revoke",            R,    R,      R,      R,      R,      R, "token_a"),
    row("GET", "portal:recommend",                200,  200,    200,    200,    200,    200),
    row("POST", "portal:quote",                   R,    R,      R,      R,      R,      R),
    row("GET", "portal:offers",                   200,  200,    200,    200,    200,    200),
    row("GET", "portal:offer-order",              R,    200,    200,    200,    200,    200, "listed_a"),
    row("GET", "portal:orders",                   R,    200,    200,    200,    200,    200),
    row("GET", "portal:order-new",                R,    200,    R,      R,      R,      R, "quote_a", "listed_a"),
    row("GET", "portal:order-detail",             R,    200,    R,      R,      R,      200, "order_a"),
    row("GET", "portal:order-live",               R,    200,    286,    286,    286,    200, "order_a"),
    row("POST", "portal:order-cancel",            R,    R,      R,      R,      R,      R, "order_a"),
    row("GET", "portal:billing",                  R,    200,    200,    R,      R,      R),
    row("GET", "portal:billing-live",             R,    200,    200,    R,      R,      R),
    row("POST", "portal:billing-card",            R,    R,      R,      R,      R,      R),
    row("GET", "portal:invoice-order",            R,    200,    R,      R,      R,      R, "order_a"),
    row("GET", "portal:invoice-month",            R,    200,    200,    R,      R,      R, "=" + MONTH),
    row("GET", "portal:provider-dashboard",       R,    R,      R,      200,    200,    R),
    row("GET", "portal:provider-offers",          R,    R,      R,      200,    200,    R),
    row("GET", "portal:provider-offer-new",       R,    R,      R,      200,    200,    R),
    row("GET", "portal:provider-offer-edit",      R,    R,      R,      200,    R,      R, "draft_a"),
    row("POST", "portal:provider-offer-status",   R,    R,      R,      R,      R,      R, "draft_a"),
    row("GET", "portal:provider-upload",          R,    R,      R,      200,    200,    R),
    row("POST", "portal:provider-upload-confirm", R,    R,      R,      R,      R,      R),
    row("GET", "portal:provider-upload-template", R,    R,      R,      200,    200,    R),
    row("GET", "portal:provider-organisation",    R,    R,      R,      200,    200,    R),
    row("POST", "portal:provider-payouts-onboard", R,   R,      R,      R,      R,      R),
    row("GET", "portal:provider-payouts-status",  R,    R,      R,      200,    200,    R),
    row("GET", "healthz",                         200,  200,    200,    200,    200,    200),
    row("GET", "readyz",                          UP,   UP,     UP,     UP,     UP,     UP),
    row("GET", "metrics",                         403,  403,    403,    403,    403,    200),
    row("GET", "admin:index",                     R,    R,      R,      R,      R,      200),
    row("GET", "admin:orders_order_changelist",   R,    R,      R,      R,      R,      200),
    row("GET", "admin:agents_provideragent_changelist", R, R,   R,      R,      R,      200),
    row("GET", "admin:billing_ordercharge_changelist", R, R,    R,      R,      R,      200),
]
# ------------------------------------------------------------------------------------------------------------

ROWS = API + PORTAL
IGNORED_NAMESPACES = ("admin",)  # Django's admin: every page needs is_staff; three rows above pin that
API_PREFIXES = ("api/",)


# ------------------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker):
    """The tenants and their objects, built once for the module inside a transaction that is rolled back at the
    end; each test runs in a savepoint of it (pytest-django's `db`)."""
    from marketplace.selectors import offers as offer_selectors
    from marketplace.selectors.snapshot import clear_snapshot_cache

    with django_db_blocker.unblock():
        atomic = transaction.atomic()
        atomic.__enter__()
        try:
            yield build_world()
        finally:
            transaction.set_rollback(True)
            atomic.__exit__(None, None, None)
            clear_snapshot_cache()
            offer_selectors._ACCELERATOR_IDS.clear()


def _client(world: World, principal: str, *, api: bool) -> Client:
    from django.conf import settings

    if api:
        from rest_framework.test import APIClient

        client = APIClient()
        if principal != "anon":
            client.credentials(HTTP_AUTHORIZATION=f"Token {world.keys[principal]}")
        return client
    client = Client()
    if principal != "anon":
        client.cookies[settings.SESSION_COOKIE_NAME] = world.sessions[principal]
    return client


def _resolve(world: World, value: Any) -> Any:
    if isinstance(value, str):
        if value.startswith("="):
            return value[1:]
        return world.ids.get(value, value)
    if isinstance(value, dict):
        return {k: _resolve(world, v) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(world, v) for v in value]
    return value


def _request(world: World, r: Row, principal: str, *, body: Any = None):
    is_api = r in API  # API rows use token authentication; pages (portal, ops, admin) a session
    url = reverse(r.name, args=[world.ids[a] if not a.startswith("=") else a[1:] for a in r.args])
    if r.query:
        url += "?" + r.query
    client = _client(world, principal, api=is_api)
    kwargs: dict[str, Any] = {}
    if body is not None or r.body is not None:
        kwargs = {"data": json.dumps(_resolve(world, r.body) if body is None else body),
                  "content_type": "application/json"}
    if r.name == "orders" and r.method == "POST":
        kwargs["HTTP_IDEMPOTENCY_KEY"] = f"matrix-{principal}"
    return getattr(client, r.method.lower())(url, **kwargs)


def _leaks(world: World, principal: str, body: str) -> list[str]:
    found = [f"secret {s[:6]}…" for s in world.never if s in body]
    if principal == "op":
        return found
    for tenant, markers in world.markers.items():
        if tenant not in SEES[principal]:
            found += [f"{tenant}:{m}" for m in markers if m in body]
    allowed = set().union(*(world.order_ids[t] for t in SEES[principal])) if SEES[principal] else set()
    others = set().union(*world.order_ids.values()) - allowed
    for match in re.finditer(r'"order_id":\s*(\d+)|"orders?/(\d+)/|/orders/(\d+)/', body):
        number = int(next(g for g in match.groups() if g))
        if number in others:
            found.append(f"order id {number}")
    return found


def _status(response) -> Any:
    if response.status_code == 302:
        return R
    if response.request["PATH_INFO"] == reverse("readyz") and response.status_code in (200, 503):
        return UP
    return response.status_code


# --------------------------------------------------------------------------------------------------- tests
@pytest.mark.parametrize("r", ROWS, ids=[r.id for r in ROWS])
def test_matrix(world: World, db, r: Row) -> None:
    got, leaks = {}, {}
    for principal in PRINCIPALS:
        with transaction.atomic():  # each principal's request sees the world untouched by the previous one
            response = _request(world, r, principal)
            got[principal] = _status(response)
            body = response.content.decode("utf-8", "replace")
            found = _leaks(world, principal, body)
            if found:
                leaks[principal] = found
            transaction.set_rollback(True)
    expected = dict(zip(PRINCIPALS, r.expect, strict=True))
    if r.body is not None and r in API:
        # Authorization is decided before the input is read: a refused principal gets the same answer for a body
        # no endpoint accepts, so validation messages never tell outsiders what an endpoint wants.
        for principal in PRINCIPALS:
            if expected[principal] in (401, 403):
                with transaction.atomic():
                    response = _request(world, r, principal, body=[1])
                    if _status(response) != expected[principal]:
                        got[principal] = f"{_status(response)} with an invalid body"
                    transaction.set_rollback(True)
    wrong = ", ".join(f"{p} {got[p]}!={expected[p]}" for p in PRINCIPALS if got[p] != expected[p])
    assert got == expected, f"{r.id}: {wrong}"
    assert not leaks, f"{r.id} shows other tenants' objects: {leaks}"


def test_the_leak_check_sees_leaks(world: World, db) -> None:
    order_a = world.ids["order_a"]
    assert _leaks(world, "cust_b", '{"command": "echo cmd-secret-cust_a"}') == ["cust_a:cmd-secret-cust_a"]
    assert _leaks(world, "prov_b", f'{{"order_id": {order_a}}}') == [f"order id {order_a}"]
    assert _leaks(world, "cust_a", f'<a href="/orders/{order_a}/">') == []
    assert _leaks(world, "cust_a", world.keys["cust_a"]) == [f"secret {world.keys['cust_a'][:6]}…"]
    assert _leaks(world, "op", "cmd-secret-cust_a draft-secret-prov_b") == []


def _routes() -> set[tuple[str, str]]:
    """(method, url name) of every route: DRF views by the handlers they define, portal views by name."""
    out: set[tuple[str, str]] = set()

    def walk(patterns, namespace: str = "") -> None:
        for p in patterns:
            if isinstance(p, URLResolver):
                ns = p.namespace or ""
                walk(p.url_patterns, f"{namespace}{ns}:" if ns else namespace)
            elif isinstance(p, URLPattern) and p.name:
                name = namespace + p.name
                if name.split(":")[0] in IGNORED_NAMESPACES:
                    continue
                view_class = getattr(p.callback, "view_class", None) or getattr(p.callback, "cls", None)
                methods = ({m.upper() for m in ("get", "post", "put", "patch", "delete") if hasattr(view_class, m)}
                           if view_class is not None and not name.startswith("portal:") else {"*"})
                out.update((m, name) for m in methods)

    walk(get_resolver().url_patterns)
    return out


def test_every_route_has_a_row() -> None:
    routes = _routes()
    covered = {(r.method if (r.method, r.name) in routes else "*", r.name) for r in ROWS}
    missing = sorted(f"{m} {n}" for m, n in routes - covered)
    assert not missing, f"routes without a row in the authorization matrix: {missing}"
    names = {n for _, n in routes}
    stale = sorted(r.id for r in ROWS if r.name not in names and not r.name.startswith("admin:"))
    assert not stale, f"rows for routes that no longer exist: {stale}"
