"""The fake's HTTP layer: Stripe's wire format, authentication, Idempotency-Key semantics, fault injection,
signed webhook delivery, and the `/_fake/...` control endpoints used by tests and the local demo.

Idempotency (as https://docs.stripe.com/idempotency describes it):
- a POST whose key was seen with the same method, path and parameters gets the saved status and body back
  (header `Idempotent-Replayed: true`), including saved errors such as a card decline;
- the same key with other parameters is a 400 `idempotency_error`;
- parameter validation errors are not saved (the request never started executing).
Injected faults happen before the request reaches the idempotency layer (mode `error`, `hang`) or after it was
executed and saved (mode `timeout`: the response is withheld past the client's timeout, so a retry replays it).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import queue
import re
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from marketplace.billing.fake_stripe.connect import ConnectMixin
from marketplace.billing.fake_stripe.forms import FormError, decode_form
from marketplace.billing.fake_stripe.payments import PaymentsMixin
from marketplace.billing.fake_stripe.state import FakeStripeError, invalid

ID = r"(?P<id>[A-Za-z0-9_]+)"
ROUTES: list[tuple[str, re.Pattern, str, bool]] = [  # method, path, state method, takes an id
    (m, re.compile(p), name, "(?P<id>" in p) for m, p, name in [
        ("POST", r"/v1/customers", "customers_create"),
        ("GET", rf"/v1/customers/{ID}", "customers_retrieve"),
        ("POST", r"/v1/payment_intents", "payment_intents_create"),
        ("GET", rf"/v1/payment_intents/{ID}", "payment_intents_retrieve"),
        ("POST", rf"/v1/payment_intents/{ID}/confirm", "payment_intents_confirm"),
        ("POST", rf"/v1/payment_intents/{ID}/capture", "payment_intents_capture"),
        ("POST", rf"/v1/payment_intents/{ID}/cancel", "payment_intents_cancel"),
        ("GET", rf"/v1/charges/{ID}", "charges_retrieve"),
        ("POST", r"/v1/refunds", "refunds_create"),
        ("GET", rf"/v1/refunds/{ID}", "refunds_retrieve"),
        ("POST", r"/v1/accounts", "accounts_create"),
        ("GET", rf"/v1/accounts/{ID}", "accounts_retrieve"),
        ("POST", r"/v1/account_links", "account_links_create"),
        ("POST", r"/v1/transfers", "transfers_create"),
        ("GET", rf"/v1/transfers/{ID}", "transfers_retrieve"),
        ("POST", rf"/v1/transfers/{ID}/reversals", "transfer_reversals_create"),
        ("GET", rf"/v1/payouts/{ID}", "payouts_retrieve"),
        ("GET", r"/v1/events", "events_list"),
        ("GET", rf"/v1/events/{ID}", "events_retrieve"),
    ]
]


class FakeState(PaymentsMixin, ConnectMixin):
    """All resources of the fake."""


@dataclass
class Fault:
    path: re.Pattern
    method: str = "POST"
    count: int = 1
    mode: str = "error"  # error | hang | timeout | declined
    status: int = 500
    delay: float = 2.0
    code: str | None = None
    message: str | None = None

    def matches(self, method: str, path: str) -> bool:
        return self.count > 0 and self.method == method and bool(self.path.fullmatch(path))


@dataclass
class LoggedRequest:
    method: str
    path: str
    idempotency_key: str | None
    account: str | None
    status: int
    executed: bool  # the resource logic ran (not a replay, not an injected fault, not a validation error)
    replayed: bool = False
    fault: str | None = None
    params: dict = field(default_factory=dict)


@dataclass
class Saved:
    fingerprint: str
    status: int
    body: str


class Webhooks:
    """Delivers each new event, signed like Stripe (`Stripe-Signature: t=…,v1=HMAC-SHA256(secret, "t.payload")`),
    to the platform endpoint (events without `account`) or the Connect endpoint (events with `account`)."""

    def __init__(self) -> None:
        self.endpoints: dict[str, tuple[str, str]] = {}
        self.deliveries: list[dict] = []
        self._queue: queue.Queue[dict | None] = queue.Queue()
        self._thread: threading.Thread | None = None

    def configure(self, kind: str, url: str | None, secret: str | None) -> None:
        if url and secret:
            self.endpoints[kind] = (url, secret)
        else:
            self.endpoints.pop(kind, None)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="fake-stripe-webhooks", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._queue.put(None)
        if self._thread:
            self._thread.join(timeout=5)

    def enqueue(self, event: dict) -> None:
        if self.endpoints.get("connect" if event.get("account") else "platform"):
            self._queue.put(event)

    @staticmethod
    def sign(payload: str, secret: str, timestamp: int | None = None) -> str:
        timestamp = int(time.time()) if timestamp is None else timestamp
        mac = hmac.new(secret.encode(), f"{timestamp}.{payload}".encode(), hashlib.sha256).hexdigest()
        return f"t={timestamp},v1={mac}"

    def _run(self) -> None:
        while (event := self._queue.get()) is not None:
            endpoint = self.endpoints.get("connect" if event.get("account") else "platform")
            if endpoint is None:
                continue
            url, secret = endpoint
            payload = json.dumps(event)
            status: int | str = "unsent"
            for attempt in range(3):
                request = urllib.request.Request(url, data=payload.encode(), method="POST", headers={
                    "Content-Type": "application/json; charset=utf-8",
                    "Stripe-Signature": self.sign(payload, secret), "User-Agent": "Stripe/1.0 (+fake)"})
                try:
                    with urllib.request.urlopen(request, timeout=10) as response:
                        status = response.status
                except urllib.error.HTTPError as exc:
                    status = exc.code
                except OSError as exc:
                    status = f"error: {exc}"
                if isinstance(status, int) and status < 500:
                    break
                time.sleep(0.5 * 2 ** attempt)
            self.deliveries.append({"event": event["id"], "type": event["type"], "url": url, "status": status})


class FakeStripeServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int]) -> None:
        super().__init__(address, Handler)
        self.state = FakeState()
        self.webhooks = Webhooks()
        self.state.listeners.append(self.webhooks.enqueue)
        self.faults: list[Fault] = []
        self.requests: list[LoggedRequest] = []
        self.idempotency: dict[tuple[str | None, str], Saved] = {}
        self.state.base_url = f"http://{self.server_address[0]}:{self.server_address[1]}"

    def reset(self) -> None:
        with self.state.lock:
            self.state.reset()
            self.faults.clear()
            self.requests.clear()
            self.idempotency.clear()

    def take_fault(self, method: str, path: str) -> Fault | None:
        with self.state.lock:
            for fault in self.faults:
                if fault.matches(method, path):
                    fault.count -= 1
                    return fault
        return None


def _error(status: int, message: str, type_: str = "invalid_request_error", **extra: Any) -> tuple[int, dict]:
    return status, {"error": {"type": type_, "message": message, **extra}}


class Handler(BaseHTTPRequestHandler):
    server: FakeStripeServer
    server_version = "FakeStripe/1.0"
    protocol_version = "HTTP/1.0"

    def log_message(self, format: str, *args: Any) -> None:  # quiet: the request log is kept in memory
        pass

    # -- plumbing --------------------------------------------------------------------------------
    def _send(self, status: int, body: dict | str, headers: dict[str, str] | None = None,
              delay: float = 0.0) -> None:
        text = body if isinstance(body, str) else json.dumps(body)
        if delay:
            time.sleep(delay)
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(text.encode())))
            self.send_header("Request-Id", f"req_{int(time.time() * 1000) % 10**10}")
            self.send_header("Stripe-Version", self.headers.get("Stripe-Version") or "2026-10-28.endive")
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(text.encode())
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up waiting (an injected timeout): nothing to send to

    def _body(self) -> str:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length).decode() if length else ""

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        split = urlsplit(self.path)
        path = split.path.rstrip("/") or "/"
        body = self._body()
        if path.startswith("/_fake/"):
            from marketplace.billing.fake_stripe.control import control

            status, payload, headers = control(self.server, method, path, split.query, body)
            self._send(status, payload, headers)
            return
        self._api(method, path, split.query, body)

    # -- the Stripe API --------------------------------------------------------------------------
    def _api(self, method: str, path: str, query: str, body: str) -> None:
        server = self.server
        auth = self.headers.get("Authorization", "")
        key = auth.removeprefix("Bearer ").strip()
        account = self.headers.get("Stripe-Account") or None
        idem = self.headers.get("Idempotency-Key") if method == "POST" else None
        log = LoggedRequest(method, path, idem, account, 0, executed=False)
        if not key.startswith("sk_test_"):
            log.status = 401
            server.requests.append(log)
            self._send(*_error(401, f"Invalid API Key provided: {key[:12]}… (the fake accepts sk_test_ keys)"))
            return
        try:
            params = decode_form(body if method == "POST" else query)
        except FormError as exc:
            self._finish(log, *_error(400, str(exc)))
            return
        log.params = params
        fault = server.take_fault(method, path)
        if fault and fault.mode in ("error", "hang"):
            log.fault = fault.mode
            status = fault.status if fault.mode == "error" else 500
            type_ = "rate_limit_error" if status == 429 else "api_error"
            message = fault.message or ("Too many requests" if status == 429 else "An unknown error occurred")
            self._finish(log, *_error(status, message, type_), delay=fault.delay if fault.mode == "hang" else 0.0)
            return
        route = self._route(method, path)
        if route is None:
            self._finish(log, *_error(404, f"Unrecognized request URL ({method}: {path}). Please see "
                                           "https://stripe.com/docs or we can help at https://support.stripe.com/."))
            return
        name, ident = route
        fingerprint = json.dumps([method, path, params], sort_keys=True)
        slot = (account, idem) if idem else None
        with server.state.lock:
            saved = server.idempotency.get(slot) if slot else None
            if saved is not None:
                if saved.fingerprint != fingerprint:
                    msg = ("Keys for idempotent requests can only be used with the same parameters they were first "
                           f"used with. Try using a key other than '{idem}' if you meant to execute a different "
                           "request.")
                    self._finish(log, *_error(400, msg, "idempotency_error"))
                    return
                log.replayed = True
                self._finish(log, saved.status, saved.body, {"Idempotent-Replayed": "true"})
                return
            # Requests execute one at a time under the state lock, so a key is never seen mid-flight.
            status, payload, store = self._execute(name, ident, params, account, fault)
            log.executed = store
            text = json.dumps(payload)
            if slot and store:
                server.idempotency[slot] = Saved(fingerprint, status, text)
        delay = fault.delay if fault and fault.mode == "timeout" else 0.0
        if fault and fault.mode == "timeout":
            log.fault = "timeout"
        self._finish(log, status, text, delay=delay)

    def _route(self, method: str, path: str) -> tuple[str, str | None] | None:
        for route_method, pattern, name, has_id in ROUTES:
            match = pattern.fullmatch(path)
            if match and route_method == method:
                return name, (match.group("id") if has_id else None)
        return None

    def _execute(self, name: str, ident: str | None, params: dict, account: str | None,
                 fault: Fault | None) -> tuple[int, dict, bool]:
        state = self.server.state
        try:
            if fault and fault.mode == "declined":
                raise FakeStripeError(402, fault.message or "Your card was declined.", type="card_error",
                                      code=fault.code or "card_declined", decline_code="generic_decline")
            handler = getattr(state, name)
            if name.startswith("events_"):
                result = handler(ident, account) if ident else handler(params, account)
            elif ident is None:
                result = handler(params, account)
            elif name.endswith("_retrieve"):
                if set(params) - {"expand"}:
                    raise invalid(f"Received unknown parameter: {sorted(set(params) - {'expand'})[0]}")
                result = handler(ident, account)
            else:
                result = handler(ident, params, account)
            return 200, result, True
        except FakeStripeError as exc:
            return exc.status, exc.body(), exc.saved

    def _finish(self, log: LoggedRequest, status: int, body: dict | str, headers: dict[str, str] | None = None,
                delay: float = 0.0) -> None:
        log.status = status
        self.server.requests.append(log)
        self._send(status, body, headers, delay)

