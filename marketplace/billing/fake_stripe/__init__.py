"""A faithful local fake of the Stripe endpoints the broker uses, for tests and `make run` (test mode).

It is plain Python (no Django), serves Stripe's wire format (form-encoded requests, JSON responses, Stripe's
error bodies) on 127.0.0.1, and is driven by the real `stripe` SDK through `STRIPE_API_BASE`. See server.py for
the idempotency and fault semantics and control.py for the `/_fake/` endpoints.

    with FakeStripe() as fake:            # free port
        fake.url                           # "http://127.0.0.1:PORT"
        fake.inject_fault(r"/v1/payment_intents/\\w+/capture", count=3)
        fake.executions(r"/v1/payment_intents/\\w+/capture", key="order:1:capture")
"""

from __future__ import annotations

import re
import threading

from marketplace.billing.fake_stripe.server import FakeStripeServer, Fault, LoggedRequest, Webhooks

__all__ = ["FakeStripe", "LoggedRequest", "sign_payload"]


def sign_payload(payload: str, secret: str, timestamp: int | None = None) -> str:
    return Webhooks.sign(payload, secret, timestamp)


class FakeStripe:
    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, webhook_url: str | None = None,
                 webhook_secret: str | None = None, connect_webhook_url: str | None = None,
                 connect_webhook_secret: str | None = None) -> None:
        if host not in ("127.0.0.1", "localhost"):
            raise ValueError("the fake Stripe server only binds the loopback interface")
        self.server = FakeStripeServer((host, port))
        self.server.webhooks.configure("platform", webhook_url, webhook_secret)
        self.server.webhooks.configure("connect", connect_webhook_url, connect_webhook_secret)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def state(self):
        return self.server.state

    @property
    def requests(self) -> list[LoggedRequest]:
        return self.server.requests

    def start(self) -> FakeStripe:
        self.server.webhooks.start()
        self._thread = threading.Thread(target=self.server.serve_forever, name="fake-stripe", daemon=True,
                                        kwargs={"poll_interval": 0.05})
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.server.webhooks.stop()
        if self._thread:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeStripe:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reset(self) -> None:
        self.server.reset()

    def inject_fault(self, path: str, *, method: str = "POST", count: int = 1, mode: str = "error",
                     status: int = 500, delay: float = 2.0, code: str | None = None,
                     message: str | None = None) -> None:
        """The next `count` requests whose path fully matches the regex `path` fail as `mode` says."""
        with self.state.lock:
            self.server.faults.append(Fault(re.compile(path), method.upper(), count, mode, status, delay, code,
                                            message))

    def executions(self, path: str, *, key: str | None = None, method: str = "POST") -> list[LoggedRequest]:
        """Requests that really executed (not replays, faults or validation errors), optionally for one key."""
        pattern = re.compile(path)
        return [r for r in self.requests if r.executed and r.method == method and pattern.fullmatch(r.path)
                and (key is None or r.idempotency_key == key)]

    def events(self, type_: str | None = None) -> list[dict]:
        with self.state.lock:
            return [e for e in self.state.events if type_ is None or e["type"] == type_]
