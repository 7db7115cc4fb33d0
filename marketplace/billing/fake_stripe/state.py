"""In-memory Stripe state shared by the fake's resources: objects, events, ids, errors, parameter checks."""

from __future__ import annotations

import copy
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any

from marketplace.billing.fake_stripe.forms import FormError

MINIMUM_AMOUNT = {"usd": 50, "eur": 50, "gbp": 30}  # Stripe's minimum charge amounts, in the smallest unit
API_VERSION = "2026-10-28.endive"


class FakeStripeError(Exception):
    """An API error as Stripe renders it. `saved` errors are stored under the idempotency key (the request
    started executing, e.g. a card decline); unsaved ones (parameter validation) are not, as on Stripe."""

    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error", code: str | None = None,
                 param: str | None = None, decline_code: str | None = None, saved: bool = True,
                 extra: dict | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.decline_code = decline_code
        self.saved = saved
        self.extra = extra or {}

    def body(self) -> dict:
        error: dict[str, Any] = {"type": self.type, "message": self.message}
        for name in ("code", "param", "decline_code"):
            if getattr(self, name):
                error[name] = getattr(self, name)
        error.update(self.extra)
        return {"error": error}


def invalid(message: str, param: str | None = None, code: str | None = "parameter_invalid") -> FakeStripeError:
    return FakeStripeError(400, message, param=param, code=code, saved=False)


def missing(kind: str, ident: str, param: str = "id") -> FakeStripeError:
    return FakeStripeError(404, f"No such {kind}: '{ident}'", code="resource_missing", param=param, saved=False)


class BaseState:
    """Objects by id, the event log, and helpers. Subclasses add the resources; every public method is called
    with the state lock held by the server."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.objects: dict[str, dict[str, dict]] = {}
        self.events: list[dict] = []
        self.listeners: list[Callable[[dict], None]] = []
        self.base_url = "http://127.0.0.1"

    def reset(self) -> None:
        with self.lock:
            self.objects.clear()
            self.events.clear()

    # -- helpers ---------------------------------------------------------------------------------
    @staticmethod
    def new_id(prefix: str) -> str:
        return f"{prefix}_{secrets.token_urlsafe(18).replace('-', 'x').replace('_', 'y')[:24]}"

    @staticmethod
    def now() -> int:
        return int(time.time())

    def table(self, kind: str) -> dict[str, dict]:
        return self.objects.setdefault(kind, {})

    def get(self, kind: str, ident: str, label: str | None = None, param: str = "id") -> dict:
        obj = self.table(kind).get(ident)
        if obj is None:
            raise missing(label or kind.replace("_", " "), ident, param)
        return obj

    def put(self, kind: str, obj: dict) -> dict:
        self.table(kind)[obj["id"]] = obj
        return obj

    @staticmethod
    def only(params: dict, allowed: set[str]) -> None:
        for name in params:
            if name not in allowed and name != "expand":
                raise invalid(f"Received unknown parameter: {name}", param=name, code="parameter_unknown")

    @staticmethod
    def metadata(params: dict) -> dict:
        meta = params.get("metadata") or {}
        if meta == "":
            return {}
        if not isinstance(meta, dict):
            raise invalid("Invalid metadata: must be a hash", param="metadata")
        return {str(k): str(v) for k, v in meta.items()}

    @staticmethod
    def currency(params: dict) -> str:
        value = params.get("currency")
        if not value:
            raise invalid("Missing required param: currency.", param="currency", code="parameter_missing")
        value = str(value).lower()
        if value not in MINIMUM_AMOUNT:
            raise invalid(f"Invalid currency: {value}.", param="currency")
        return value

    @staticmethod
    def amount(params: dict, name: str, currency: str, *, required: bool = True) -> int | None:
        from marketplace.billing.fake_stripe.forms import as_int

        try:
            value = as_int(params, name, required=required, minimum=1)
        except FormError as exc:
            raise invalid(str(exc), param=name, code="parameter_missing" if "Missing" in str(exc) else None) from None
        if value is not None and value < MINIMUM_AMOUNT[currency]:
            raise FakeStripeError(
                400, f"Amount must be at least {MINIMUM_AMOUNT[currency]} {currency} cents", code="amount_too_small",
                param=name, saved=False)
        return value

    # -- events ----------------------------------------------------------------------------------
    def emit(self, type_: str, obj: dict, *, account: str | None = None, previous: dict | None = None) -> dict:
        event: dict[str, Any] = {
            "id": self.new_id("evt"), "object": "event", "api_version": API_VERSION, "created": self.now(),
            "type": type_, "livemode": False, "pending_webhooks": 1,
            "data": {"object": copy.deepcopy(obj)}, "request": {"id": None, "idempotency_key": None},
        }
        if previous:
            event["data"]["previous_attributes"] = previous
        if account:
            event["account"] = account
        self.events.append(event)
        for listener in list(self.listeners):
            listener(copy.deepcopy(event))
        return event

    def events_list(self, params: dict, account: str | None) -> dict:
        from marketplace.billing.fake_stripe.forms import as_int

        limit = as_int(params, "limit") or 10
        if not 1 <= limit <= 100:
            raise invalid("Invalid limit: must be between 1 and 100.", param="limit")
        types = set(params.get("types") or ([params["type"]] if params.get("type") else []))
        items = [e for e in reversed(self.events) if e.get("account") == account and (not types or e["type"] in types)]
        after = params.get("starting_after")
        if after:
            ids = [e["id"] for e in items]
            if after not in ids:
                raise missing("event", after, "starting_after")
            items = items[ids.index(after) + 1:]
        return {"object": "list", "url": "/v1/events", "has_more": len(items) > limit,
                "data": copy.deepcopy(items[:limit])}

    def events_retrieve(self, ident: str, account: str | None) -> dict:
        for event in self.events:
            if event["id"] == ident and event.get("account") == account:
                return copy.deepcopy(event)
        raise missing("event", ident)
