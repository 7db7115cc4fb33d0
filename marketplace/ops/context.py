"""The request id and order id of the work in progress (contextvars), and the logging pieces that print them."""

from __future__ import annotations

import logging
import re
import uuid
from contextvars import ContextVar

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
order_id: ContextVar[int | None] = ContextVar("order_id", default=None)

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def request_id_from(header: str | None) -> str:
    """Honour a client's or proxy's X-Request-ID when it is a sane token; otherwise a new one."""
    if header and _REQUEST_ID.match(header):
        return header
    return uuid.uuid4().hex


class ContextFilter(logging.Filter):
    """Adds `request_id`, `order_id` and `context` (" [request_id=... order_id=...]" or "") to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        rid, oid = request_id.get(), order_id.get()
        record.request_id = rid
        record.order_id = oid
        parts = [f"request_id={rid}"] * (rid is not None) + [f"order_id={oid}"] * (oid is not None)
        record.context = f" [{' '.join(parts)}]" if parts else ""
        return True


class ContextFormatter(logging.Formatter):
    """Wraps a text formatter (Celery's, say) and appends the record's context."""

    def __init__(self, inner: logging.Formatter | None) -> None:
        super().__init__()
        self.inner = inner or logging.Formatter()

    def format(self, record: logging.LogRecord) -> str:
        if not hasattr(record, "context"):
            ContextFilter().filter(record)
        text = self.inner.format(record)
        if not record.context:
            return text
        first, newline, rest = text.partition("\n")  # after the message, before a traceback
        return first + record.context + newline + rest


def json_formatter() -> logging.Formatter:
    """One JSON object a line: time, level, logger, message, request_id, order_id (python-json-logger)."""
    from pythonjsonlogger.core import RESERVED_ATTRS
    from pythonjsonlogger.json import JsonFormatter

    return JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s %(order_id)s",
                         rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
                         reserved_attrs=[*RESERVED_ATTRS, "context"], timestamp=False)  # context: text form only


def attach(logger: logging.Logger, log_format: str) -> None:
    """Give every handler of `logger` the context filter, and the JSON formatter when LOG_FORMAT=json."""
    for handler in logger.handlers:
        if not any(isinstance(f, ContextFilter) for f in handler.filters):
            handler.addFilter(ContextFilter())
        if log_format == "json":
            handler.setFormatter(json_formatter())
        elif not isinstance(handler.formatter, ContextFormatter):
            handler.setFormatter(ContextFormatter(handler.formatter))
