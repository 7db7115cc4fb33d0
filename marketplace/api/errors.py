"""One error shape for every 4xx (and the 503 of a database that does not answer):
{"error": {"code", "message", "fields"}}."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied, RequestDataTooBig, SuspiciousOperation, TooManyFieldsSent
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, JsonResponse
from django.views import defaults
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from marketplace.db_unavailable import CODE as DB_UNAVAILABLE
from marketplace.db_unavailable import DATABASE_UNAVAILABLE, MESSAGE, RETRY_AFTER_S, log_unavailable
from marketplace.errors import DomainError


def _flatten(detail: Any) -> list[str]:
    if isinstance(detail, dict):
        return [f"{k}: {m}" for k, v in detail.items() for m in _flatten(v)]
    if isinstance(detail, list):
        return [m for item in detail for m in _flatten(item)]
    return [str(detail)]


def _fields(detail: Any) -> dict[str, Any]:
    """DRF's nested detail to {field: [messages]} (nested serializers keep their structure)."""
    if isinstance(detail, dict):
        out: dict[str, Any] = {}
        for key, value in detail.items():
            if isinstance(value, dict):
                out[key] = _fields(value)
            elif isinstance(value, list) and value and isinstance(value[0], dict):
                out[key] = [_fields(v) for v in value]
            else:
                out[key] = [str(m) for m in (value if isinstance(value, list) else [value])]
        return out
    return {}


def error_body(code: str, message: str, fields: dict | None = None, **extra: Any) -> dict:
    return {"error": {"code": code, "message": message, "fields": fields or {}, **extra}}


def exception_handler(exc: Exception, context: dict) -> Response | None:
    if isinstance(exc, DomainError):
        return Response(error_body(exc.code, exc.message, exc.fields, **exc.extra), status=exc.status_code)
    if isinstance(exc, DATABASE_UNAVAILABLE):  # a dropped connection: 503, retry (marketplace/db_unavailable.py)
        log_unavailable(context.get("request"), exc)
        return Response(error_body(DB_UNAVAILABLE, MESSAGE), status=503, headers={"Retry-After": str(RETRY_AFTER_S)})
    if isinstance(exc, DjangoValidationError):
        fields = exc.message_dict if hasattr(exc, "error_dict") else {}
        return Response(error_body("invalid", "; ".join(exc.messages), fields), status=400)
    if isinstance(exc, RequestDataTooBig):  # a form body over MAX_REQUEST_BYTES (JSON: RequestSizeLimitMiddleware)
        message = "The request body is over the limit (MAX_REQUEST_BYTES)."
        return Response(error_body("too_large", message, {"body": [message]}), status=413)
    if isinstance(exc, TooManyFieldsSent | SuspiciousOperation):
        message = str(exc) or "The request could not be read."
        return Response(error_body("invalid", message, {"body": [message]}), status=400)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        detail = exc.detail
        fields = _fields(detail) if isinstance(detail, dict) else {}
        non_field = fields.pop("non_field_errors", None)
        messages = non_field or _flatten(detail)
        message = "; ".join(str(m) for m in messages) if messages else "Invalid input."
        response.data = error_body("invalid", message, fields)
        return response
    if isinstance(exc, exceptions.APIException):
        codes = exc.get_codes()
        code = codes if isinstance(codes, str) else "error"
        if response.status_code == status.HTTP_401_UNAUTHORIZED:
            code = "not_authenticated"
        response.data = error_body(code, "; ".join(_flatten(exc.detail)))
    return response


def _wants_api(request) -> bool:
    return request.path.startswith("/api/")


def not_found(request, exception=None):
    """handler404: a URL under /api/ that matches no route (say /api/v1/orders/-1/) answers in the error shape."""
    if _wants_api(request):
        return JsonResponse(error_body("not_found", "No such endpoint or object."), status=404)
    return defaults.page_not_found(request, exception)


def server_error(request):
    """handler500: the API still answers in the error shape (the traceback is logged, never shown)."""
    if _wants_api(request):
        return JsonResponse(error_body("server_error", "Internal error; it has been logged."), status=500)
    return defaults.server_error(request)
