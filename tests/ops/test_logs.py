"""Request ids (X-Request-ID honoured or made, returned, in every log line of the request) and LOG_FORMAT=json."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from marketplace.ops.context import ContextFilter, ContextFormatter, json_formatter, order_id

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def captured():
    """What django.request logs during the test, as text and as JSON lines."""
    text, js = io.StringIO(), io.StringIO()
    handlers = [logging.StreamHandler(text), logging.StreamHandler(js)]
    handlers[0].setFormatter(ContextFormatter(logging.Formatter("%(levelname)s %(message)s")))
    handlers[1].setFormatter(json_formatter())
    logger = logging.getLogger("django.request")
    for handler in handlers:
        handler.addFilter(ContextFilter())
        logger.addHandler(handler)
    yield text, js
    for handler in handlers:
        logger.removeHandler(handler)


def test_request_id_is_honoured_returned_and_logged(client, captured) -> None:
    text, js = captured
    response = client.get("/no-such-page-at-all/", HTTP_X_REQUEST_ID="edge-7f3a.1")
    assert response.status_code == 404
    assert response["X-Request-ID"] == "edge-7f3a.1"
    assert text.getvalue().strip() == "WARNING Not Found: /no-such-page-at-all/ [request_id=edge-7f3a.1]"
    line = json.loads(js.getvalue().splitlines()[-1])
    assert line["request_id"] == "edge-7f3a.1" and line["message"] == "Not Found: /no-such-page-at-all/"
    assert line["level"] == "WARNING" and line["logger"] == "django.request" and "time" in line
    assert "context" not in line  # the text form's suffix stays out of JSON


def test_a_missing_or_unsafe_request_id_is_replaced(client) -> None:
    made = client.get("/healthz")["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", made)
    assert client.get("/healthz")["X-Request-ID"] != made
    unsafe = client.get("/healthz", HTTP_X_REQUEST_ID="x\" injected=1 " + "y" * 200)["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", unsafe)


def test_order_id_goes_after_the_message_and_before_a_traceback() -> None:
    record = logging.LogRecord("t", logging.ERROR, __file__, 1, "boom", None, None)
    try:
        raise ValueError("x")
    except ValueError:
        record.exc_info = sys.exc_info()
    token = order_id.set(42)
    try:
        out = ContextFormatter(logging.Formatter("%(message)s")).format(record)
    finally:
        order_id.reset(token)
    assert out.splitlines()[0] == "boom [order_id=42]"
    assert out.splitlines()[1].startswith("Traceback")


def test_settings_log_format_json_configures_the_root_logger(tmp_path: Path) -> None:
    env = {**os.environ, "LOG_FORMAT": "json", "BROKER_DEV": "1", "BROKER_VAR_DIR": str(tmp_path)}
    code = ("import django, logging; django.setup(); "
            "logging.getLogger('probe').warning('hello %s', 'there')")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**env, "DJANGO_SETTINGS_MODULE":
                          "broker.settings"}, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    line = json.loads(done.stderr.strip().splitlines()[-1])
    assert line["message"] == "hello there" and line["logger"] == "probe" and line["level"] == "WARNING"
    assert line["request_id"] is None and line["order_id"] is None
