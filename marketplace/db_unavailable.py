"""The database not answering is a 503 with Retry-After, never a 500 page.

DATABASE_UNAVAILABLE are Django's OperationalError and InterfaceError: a connection dropped mid-request (server
restart, failover, a killed backend, a network cut), the server refusing connections or shutting down. Integrity
and programming errors are conflicts or bugs and stay what they are. The API's exception handler
(marketplace/api/errors.py) renders these in the one error shape; `DatabaseUnavailableMiddleware` does the same
for every other view (portal, admin): the JSON shape under /api/, a short HTML page elsewhere.

Nothing else is needed to recover: Django drops a connection that raised such an error at the end of the request
(or at once, when a transaction's rollback fails), and CONN_HEALTH_CHECKS (settings) makes the next request check a
persistent connection before using it. Whether the request's writes were committed is unknown to the client: writes
that matter are idempotent (an order retried with the same Idempotency-Key is placed once;
tests/faults/test_db_connection_drops.py).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse

log = logging.getLogger(__name__)

DATABASE_UNAVAILABLE = (OperationalError, InterfaceError)
CODE = "database_unavailable"
MESSAGE = ("The database did not answer; retry in a moment. An order retried with the same Idempotency-Key is "
           "placed at most once.")
RETRY_AFTER_S = 2


def log_unavailable(request: HttpRequest | None, exc: Exception) -> None:
    path = getattr(request, "path", "?")
    log.warning("database unavailable during %s: %s: %s", path, type(exc).__name__, str(exc).strip()[:300])


class DatabaseUnavailableMiddleware:
    """Last in MIDDLEWARE, so it sees exceptions raised by views."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exc: Exception) -> HttpResponse | None:
        if not isinstance(exc, DATABASE_UNAVAILABLE):
            return None
        log_unavailable(request, exc)
        if request.path.startswith("/api/"):
            body = json.dumps({"error": {"code": CODE, "message": MESSAGE, "fields": {}}})
            response = HttpResponse(body, status=503, content_type="application/json")
        else:
            response = HttpResponse(f"<!doctype html><title>Unavailable</title><h1>Temporarily unavailable</h1>"
                                    f"<p>{MESSAGE.split(';')[0]}; please try again in a moment.</p>",
                                    status=503, content_type="text/html; charset=utf-8")
        response["Retry-After"] = str(RETRY_AFTER_S)
        return response
