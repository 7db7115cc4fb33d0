"""Limits on what one request may ask for. Each is a setting a deployer can tune (broker/settings.py, README's
Configuration table); going over one is a 4xx in the one error shape, naming the field or parameter.

- MAX_REQUEST_BYTES (DATA_UPLOAD_MAX_MEMORY_SIZE): any request body, refused by RequestSizeLimitMiddleware from
  its Content-Length before anything reads it (413). Django enforces the limit only on `request.body` and form
  parsing; DRF's parsers read the stream, so without this a JSON body of any size would be parsed.
- API_MAX_PAGE_SIZE: `page_size` of every paginated list (400 above it).
- QUERY_MAX_LENGTH / QUERY_MAX_CLAUSES / QUERY_MAX_LIST_ITEMS: the `q=` language (400 on `q`).
- CSV_MAX_BYTES / OFFERS_BULK_MAX_ROWS: provider offer uploads, API and portal (400 on the body or the file).
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse

from broker.query.language import QueryLimits
from marketplace.api.errors import error_body


def query_limits() -> QueryLimits:
    return QueryLimits(max_length=settings.QUERY_MAX_LENGTH, max_clauses=settings.QUERY_MAX_CLAUSES,
                       max_list_items=settings.QUERY_MAX_LIST_ITEMS)


def too_large_message(size: int, limit: int, what: str = "The request body") -> str:
    return f"{what} is {size:,} bytes; the limit is {limit:,}."


def _declared_length(request: HttpRequest) -> int | None:
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return None


class RequestSizeLimitMiddleware:
    """413 before the body is read when the declared Content-Length is over MAX_REQUEST_BYTES; the API answers
    in the error shape (`fields.body`), other pages in plain text."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        size = _declared_length(request)
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if size is None:
            return self._refuse(request, 400, "Content-Length is not a number.")
        if limit is not None and size > limit:
            return self._refuse(request, 413, too_large_message(size, limit) + " (MAX_REQUEST_BYTES)")
        return self.get_response(request)

    @staticmethod
    def _refuse(request: HttpRequest, status: int, message: str) -> HttpResponse:
        if request.path.startswith("/api/"):
            code = "too_large" if status == 413 else "invalid"
            return JsonResponse(error_body(code, message, {"body": [message]}), status=status)
        return HttpResponse(message, status=status, content_type="text/plain; charset=utf-8")


def document_body_limit(result: dict, generator, request, public) -> dict:
    """drf-spectacular postprocessing hook: every operation that can take a body documents the 413 above, and
    every operation that reads one the 415 of a Content-Type it has no parser for."""
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    for operations in result.get("paths", {}).values():
        for method, operation in operations.items():
            if method not in ("post", "put", "patch") or not isinstance(operation, dict):
                continue
            responses = operation.setdefault("responses", {})
            responses.setdefault("413", {
                "description": "The body is over MAX_REQUEST_BYTES (`too_large`, `fields.body`).", "content": error})
            if "requestBody" in operation:
                responses.setdefault("415", {
                    "description": "A Content-Type this operation does not read (`unsupported_media_type`).",
                    "content": error})
    return result
