"""The agent driver against misbehaving servers: hangs, refused connections, garbage, errors, bad signatures."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler

import pytest

from tests.drivers import fake_servers
from tests.drivers.fake_servers import SECRET, FakeAgent, Responder
from workers.drivers.base import CapacityGoneError, JobSpec, JobState, TerminalDriverError, TransientDriverError
from workers.drivers.http import H_NONCE
from workers.drivers.registry import get_driver

SPEC = JobSpec(order_id=1, idempotency_key="k", offer_external_id="o", nodes=1, accelerators_per_node=1,
               accelerator="NVIDIA T4", command="true", time_limit_s=60)


def driver_for(url: str, **kw):
    return get_driver("agent", base_url=url, key_id="p/default", secret=SECRET, **kw)


@pytest.fixture
def hanging_server() -> Iterator[str]:
    with fake_servers.hanging_server() as url:
        yield url


@pytest.mark.parametrize("call", ["create", "status", "logs", "usage", "terminate"])
def test_hanging_agent_is_transient_within_the_timeout(hanging_server: str, call: str) -> None:
    driver = driver_for(hanging_server)
    started = time.monotonic()
    with pytest.raises(TransientDriverError) as err:
        if call == "create":
            driver.create(SPEC, timeout_s=0.5)
        else:
            getattr(driver, call)("job-0123456789abcdef", timeout_s=0.5)
    elapsed = time.monotonic() - started
    assert 0.5 <= elapsed < 1.2  # the deadline, plus slack for a loaded machine
    assert (err.value.code, err.value.message) == ("timeout", f"agent {call} timed out after 0.5s")


def test_slow_trickling_answer_hits_the_one_deadline() -> None:
    def trickle(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", "1000")
        handler.end_headers()
        try:
            for _ in range(30):  # one byte every 0.1 s: every read succeeds, the whole answer never comes in time
                handler.wfile.write(b" ")
                handler.wfile.flush()
                time.sleep(0.1)
        except OSError:  # the driver gave up and closed the connection
            pass
        return None

    with FakeAgent(trickle) as fake:
        started = time.monotonic()
        with pytest.raises(TransientDriverError) as err:
            driver_for(fake.url).status("job-0123456789abcdef", timeout_s=0.6)
        assert 0.6 <= time.monotonic() - started < 1.1
        assert err.value.code == "timeout"


def test_connection_refused_is_transient() -> None:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens there now
    with pytest.raises(TransientDriverError) as err:
        driver_for(f"http://127.0.0.1:{port}").create(SPEC, timeout_s=2)
    assert err.value.code == "agent_unreachable"
    assert "ConnectionRefusedError" in err.value.message


def fixed(status: int, body: bytes, signed: bool = True) -> Responder:
    return lambda handler: (status, body, signed)


def job_body(**kw) -> bytes:
    return json.dumps({"job_ref": "job-0123456789abcdef", "state": "running", "exit_code": None, **kw}).encode()


@pytest.mark.parametrize(("status", "body", "signed", "error", "code"), [
    (502, b"<html>Bad gateway</html>", False, TransientDriverError, "agent_http_502"),
    (503, b"", False, TransientDriverError, "agent_http_503"),
    (429, b'{"error": {"code": "slow_down"}}', False, TransientDriverError, "agent_http_429"),
    (200, b"this is not json", True, TerminalDriverError, "agent_bad_response"),
    (200, b"[1, 2, 3]", True, TerminalDriverError, "agent_bad_response"),
    (201, json.dumps({"state": "running"}).encode(), True, TerminalDriverError, "agent_bad_response"),
    (201, json.dumps({"job_ref": 12}).encode(), True, TerminalDriverError, "agent_bad_response"),
    (201, job_body(), False, TerminalDriverError, "agent_bad_signature"),
    (409, b'{"error": {"code": "capacity", "message": "all 1 slot(s) are busy"}}', True, CapacityGoneError,
     "capacity_gone"),
    (409, b'{"error": {"code": "idempotency_conflict", "message": "x"}}', True, TerminalDriverError,
     "idempotency_conflict"),
    (400, b'{"error": {"code": "invalid", "message": "The job spec is invalid."}}', True, TerminalDriverError,
     "invalid"),
    (418, b"teapot", True, TerminalDriverError, "agent_bad_response"),
    (401, b'{"error": {"code": "bad_signature", "message": "signature does not match"}}', False,
     TerminalDriverError, "agent_auth_refused"),
])
def test_answers_map_to_driver_errors(status: int, body: bytes, signed: bool, error: type, code: str) -> None:
    with FakeAgent(fixed(status, body, signed)) as fake, pytest.raises(error) as err:
        driver_for(fake.url).create(SPEC, timeout_s=2)
    assert type(err.value) is error
    assert err.value.code == code


def test_status_answers_are_checked() -> None:
    with FakeAgent(fixed(200, job_body(state="exploded"))) as fake, pytest.raises(TerminalDriverError) as err:
        driver_for(fake.url).status("job-0123456789abcdef")
    assert err.value.message == "agent status: unusable answer: unknown state 'exploded'"
    with FakeAgent(fixed(200, job_body(state="failed", exit_code="3"))) as fake, pytest.raises(TerminalDriverError):
        driver_for(fake.url).status("job-0123456789abcdef")
    with FakeAgent(fixed(200, job_body(state="failed", exit_code=3, message="boom"))) as fake:
        status = driver_for(fake.url).status("job-0123456789abcdef")
    assert (status.state, status.exit_code, status.message) == (JobState.FAILED, 3, "boom")


def test_answer_signed_for_another_request_is_refused() -> None:
    """A recorded answer replayed to a new request: its signature is bound to the old request's nonce."""
    def replayed(handler: BaseHTTPRequestHandler) -> tuple[int, bytes, bool]:
        handler.headers.replace_header(H_NONCE, "an-old-request-nonce-0000")
        return 200, job_body(state="succeeded", exit_code=0), True

    with FakeAgent(replayed) as fake, pytest.raises(TerminalDriverError) as err:
        driver_for(fake.url).status("job-0123456789abcdef")
    assert err.value.code == "agent_bad_signature"


def test_truncated_answer_is_transient() -> None:
    def truncated(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", "500")
        handler.end_headers()
        handler.wfile.write(b'{"job_ref": "job-')
        handler.wfile.flush()
        return None

    with FakeAgent(truncated) as fake, pytest.raises(TransientDriverError) as err:
        driver_for(fake.url).status("job-0123456789abcdef", timeout_s=2)
    assert err.value.code == "agent_unreachable"
    assert "IncompleteRead" in err.value.message


def test_bad_configuration_is_terminal() -> None:
    with pytest.raises(TerminalDriverError) as err:
        get_driver("agent", base_url="ftp://example", key_id="p/default", secret=SECRET)
    assert err.value.code == "bad_driver_config"
    with pytest.raises(TerminalDriverError):
        get_driver("agent", base_url="http://127.0.0.1:1", key_id="p/default", secret="")
