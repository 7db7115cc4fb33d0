"""`/_fake/...` control endpoints (no authentication: the fake binds 127.0.0.1 only).

    POST   /_fake/reset                               forget every object, event, key, fault and logged request
    POST   /_fake/faults      {"path": regex, "method": "POST", "count": 1, "mode": "error|hang|timeout|declined",
                               "status": 500, "delay": 2.0, "code": ..., "message": ...}
    DELETE /_fake/faults
    GET    /_fake/requests                            the request log (method, path, key, status, executed, replayed)
    POST   /_fake/webhooks    {"url", "secret", "connect_url", "connect_secret"}
    GET    /_fake/deliveries                          webhook deliveries and their HTTP status
    POST   /_fake/accounts/<id>/onboard   {"charges_enabled": true, "payouts_enabled": true}
    POST   /_fake/accounts/<id>/payout_failed   {"amount": 1000, "failure_code": "account_closed"}
    POST   /_fake/payment_intents/<id>/expire      an authorization hold runs out
    GET    /_fake/onboarding/<id>?return_url=…      the "hosted onboarding" page: completes it and redirects
    GET    /_fake/state                               object counts
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from marketplace.billing.fake_stripe.state import FakeStripeError

if TYPE_CHECKING:
    from marketplace.billing.fake_stripe.server import FakeStripeServer

Result = tuple[int, Any, dict[str, str] | None]


def _json(body: str) -> dict:
    if not body:
        return {}
    data = json.loads(body)
    if not isinstance(data, dict):
        raise ValueError("the body must be a JSON object")
    return data


def control(server: FakeStripeServer, method: str, path: str, query: str, body: str) -> Result:
    from marketplace.billing.fake_stripe.server import Fault

    try:
        data = _json(body)
        state = server.state
        with state.lock:
            if (method, path) == ("POST", "/_fake/reset"):
                server.reset()
                return 200, {"reset": True}, None
            if (method, path) == ("POST", "/_fake/faults"):
                fault = Fault(path=re.compile(data["path"]), method=data.get("method", "POST").upper(),
                              count=int(data.get("count", 1)), mode=data.get("mode", "error"),
                              status=int(data.get("status", 500)), delay=float(data.get("delay", 2.0)),
                              code=data.get("code"), message=data.get("message"))
                if fault.mode not in ("error", "hang", "timeout", "declined"):
                    return 400, {"error": f"unknown mode {fault.mode!r}"}, None
                server.faults.append(fault)
                return 200, {"faults": len(server.faults)}, None
            if (method, path) == ("DELETE", "/_fake/faults"):
                server.faults.clear()
                return 200, {"faults": 0}, None
            if (method, path) == ("GET", "/_fake/requests"):
                return 200, {"data": [asdict(r) for r in server.requests]}, None
            if (method, path) == ("GET", "/_fake/deliveries"):
                return 200, {"data": list(server.webhooks.deliveries)}, None
            if (method, path) == ("GET", "/_fake/state"):
                return 200, {kind: len(objs) for kind, objs in state.objects.items()} | {
                    "events": len(state.events)}, None
            if (method, path) == ("POST", "/_fake/webhooks"):
                server.webhooks.configure("platform", data.get("url"), data.get("secret"))
                server.webhooks.configure("connect", data.get("connect_url"), data.get("connect_secret"))
                return 200, {"endpoints": sorted(server.webhooks.endpoints)}, None
            if match := re.fullmatch(r"/_fake/accounts/([A-Za-z0-9_]+)/onboard", path):
                acct = state.accounts_onboard(match.group(1), charges_enabled=data.get("charges_enabled", True),
                                              payouts_enabled=data.get("payouts_enabled", True))
                return 200, acct, None
            if match := re.fullmatch(r"/_fake/accounts/([A-Za-z0-9_]+)/payout_failed", path):
                payout = state.payouts_fail(match.group(1), int(data.get("amount", 1000)),
                                            data.get("failure_code", "account_closed"))
                return 200, payout, None
            if match := re.fullmatch(r"/_fake/payment_intents/([A-Za-z0-9_]+)/expire", path):
                return 200, state.payment_intents_expire(match.group(1)), None
            if method == "GET" and (match := re.fullmatch(r"/_fake/onboarding/([A-Za-z0-9_]+)", path)):
                state.accounts_onboard(match.group(1))
                return_url = (parse_qs(query).get("return_url") or [""])[0]
                if return_url.startswith(("https://", "http://")):  # like Stripe: back to the platform
                    return 302, "", {"Location": return_url}
                return 200, {"onboarded": match.group(1)}, None
    except FakeStripeError as exc:
        return exc.status, exc.body(), None
    except (KeyError, ValueError, TypeError) as exc:
        return 400, {"error": f"bad control request: {exc!r}"}, None
    return 404, {"error": f"no control endpoint {method} {path}"}, None
