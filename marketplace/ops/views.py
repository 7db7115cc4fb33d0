"""Operations endpoints, outside the API (not in the OpenAPI schema: they are for load balancers, orchestrators
and Prometheus, not API clients; documented in docs/deployment.md).

/healthz  liveness: the process serves requests. Touches no database or Redis (a DB outage must not get every
          web process restarted).
/readyz   readiness: database, Redis and a fresh worker heartbeat for every kind queue; 503 naming what fails.
/metrics  Prometheus text format. With METRICS_TOKEN set: `Authorization: Bearer <token>`; a signed-in operator
          (staff or operator role) may always read it. Otherwise 403."""

from __future__ import annotations

import hmac

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from marketplace.ops.health import readiness


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


@never_cache
@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    checks = readiness()
    failing = [check.name for check in checks if not check.ok]
    body = {"status": "unavailable" if failing else "ok", "failing": failing,
            "checks": {check.name: check.as_dict() for check in checks}}
    return JsonResponse(body, status=503 if failing else 200)


def may_read_metrics(request: HttpRequest) -> bool:
    token = settings.METRICS_TOKEN
    header = request.headers.get("Authorization", "")
    if token and header.startswith("Bearer ") and hmac.compare_digest(header.removeprefix("Bearer "), token):
        return True
    user = getattr(request, "user", None)
    return bool(user is not None and user.is_authenticated and (user.is_staff or user.role == "operator"))


@never_cache
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    if not may_read_metrics(request):
        return JsonResponse({"error": {"code": "forbidden", "message": "Metrics need the METRICS_TOKEN bearer "
                                       "token or an operator's session.", "fields": {}}}, status=403)
    from prometheus_client import CONTENT_TYPE_LATEST

    from marketplace.ops.metrics import render

    return HttpResponse(render(), content_type=CONTENT_TYPE_LATEST)
