"""The agent registers its capacity with the broker on start, then again every `interval_s` as a heartbeat.

POST <broker>/api/v1/agents/register/ signed with the agent's secret (workers/drivers/http.py). A broker that is
down or refuses is retried with capped exponential backoff and jitter; the agent serves jobs meanwhile.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from workers.drivers.http import sign_request

log = logging.getLogger("provider_agent")

REGISTER_PATH = "/api/v1/agents/register/"


@dataclass(frozen=True, slots=True)
class Registration:
    broker_url: str
    key_id: str
    secret: str
    payload: Callable[[], dict[str, Any]]  # rebuilt at every heartbeat (active job count changes)
    interval_s: float = 30.0
    timeout_s: float = 10.0


class RegistrationRefused(Exception):
    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"the broker answered {status}: {body[:500]}")
        self.status = status


def register_once(reg: Registration) -> dict[str, Any]:
    body = json.dumps(reg.payload()).encode()
    base = urlsplit(reg.broker_url)
    path = base.path.rstrip("/") + REGISTER_PATH
    headers = sign_request(secret=reg.secret, key_id=reg.key_id, method="POST", path=path, body=body)
    request = urllib.request.Request(reg.broker_url.rstrip("/") + REGISTER_PATH, data=body, method="POST",
                                     headers={**headers, "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=reg.timeout_s) as response:  # noqa: S310 (http(s) only)
            return json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        raise RegistrationRefused(exc.code, exc.read().decode(errors="replace")) from None


class Registrar(threading.Thread):
    def __init__(self, reg: Registration) -> None:
        super().__init__(daemon=True, name="registrar")
        self.reg = reg
        self.stopping = threading.Event()
        self.registered = threading.Event()
        self.last_answer: dict[str, Any] | None = None
        self.last_error = ""

    def run(self) -> None:
        failures = 0
        while not self.stopping.is_set():
            try:
                self.last_answer = register_once(self.reg)
                if not self.registered.is_set():
                    offer = (self.last_answer or {}).get("offer") or {}
                    log.info("registered with %s as %s; offer %s (%s)", self.reg.broker_url, self.reg.key_id,
                             offer.get("id"), offer.get("external_id"))
                self.registered.set()
                failures = 0
                wait = self.reg.interval_s
            except (OSError, ValueError, RegistrationRefused) as exc:
                failures += 1
                self.last_error = str(exc)
                wait = min(60.0, 0.5 * 2 ** min(failures, 7)) * random.uniform(0.8, 1.2)
                log.warning("registration with %s failed (%s); retrying in %.1fs", self.reg.broker_url, exc, wait)
            self.stopping.wait(wait)

    def stop(self) -> None:
        self.stopping.set()
