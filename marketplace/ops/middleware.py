"""Request id and HTTP metrics for every request (first in MIDDLEWARE, so its timing covers the others)."""

from __future__ import annotations

import time

from marketplace.ops.context import request_id, request_id_from
from marketplace.ops.metrics import HTTP_LATENCY, HTTP_REQUESTS


class RequestContextMiddleware:
    """Takes X-Request-ID from the request (a proxy's or client's, when sane) or makes one, keeps it in a
    contextvar for the logs, returns it in the response; counts and times the request by view name."""

    header = "X-Request-ID"

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        rid = request_id_from(request.headers.get(self.header))
        request_id.set(rid)  # cleared on request_finished (after Django has logged a 4xx/5xx response)
        request.request_id = rid
        started = time.perf_counter()
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        view = (match.view_name or match.route) if match is not None else "<unmatched>"
        HTTP_LATENCY.labels(view, request.method).observe(time.perf_counter() - started)
        HTTP_REQUESTS.labels(view, request.method, str(response.status_code)).inc()
        response[self.header] = rid
        return response


def clear_request_id(**_) -> None:
    request_id.set(None)
