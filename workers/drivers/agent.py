"""The `agent` driver: the broker talks HTTP to a provider's agent (workers/agent, or any implementation of its API).

Every request is signed (workers/drivers/http.py) with the provider agent's secret and every answer's signature
is checked (bound to the request's nonce). Each call has one deadline, `timeout_s`, covering connect, send and
reading the whole answer. Error mapping:

    timeout, connection refused/reset, truncated answer, 5xx, 429      -> TransientDriverError  (retry w/ backoff)
    409 {"error": {"code": "capacity"}}                                -> CapacityGoneError     (fail over)
    401/403 (after trying the previous secret during a rotation)       -> TerminalDriverError agent_auth_refused
    other 4xx                                                          -> TerminalDriverError (the agent's code)
    2xx that is not signed, not JSON, or lacks the expected fields     -> TerminalDriverError agent_bad_response
    404 on status -> JobState.LOST; on terminate -> no-op; on logs/usage -> TerminalDriverError job_unknown
"""

from __future__ import annotations

import http.client
import json
import time
from typing import Any
from urllib.parse import urlencode, urlsplit

from workers.drivers.base import (
    CapacityGoneError,
    JobSpec,
    JobState,
    JobStatus,
    LogChunk,
    TerminalDriverError,
    TransientDriverError,
    Usage,
)
from workers.drivers.http import H_NONCE, SignatureError, sign_request, verify_response
from workers.drivers.registry import register_driver

MAX_RESPONSE_BYTES = 4 * 1024 * 1024
_STATES = {s.value for s in JobState}


class _Answer:
    def __init__(self, status: int, data: dict[str, Any]) -> None:
        self.status = status
        self.data = data

    @property
    def error_code(self) -> str:
        error = self.data.get("error")
        return str(error.get("code", "")) if isinstance(error, dict) else ""

    @property
    def error_message(self) -> str:
        error = self.data.get("error")
        return str(error.get("message", "")) if isinstance(error, dict) else ""


@register_driver("agent")
class AgentDriver:
    name = "agent"
    simulated = False

    def __init__(self, *, base_url: str, key_id: str, secret: str, fallback_secrets: tuple[str, ...] | list[str] = (),
                 connect_timeout_s: float = 5.0, **_ignored: Any) -> None:
        url = urlsplit(base_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise TerminalDriverError(f"agent base URL must be http(s)://host[:port], got {base_url!r}",
                                      code="bad_driver_config")
        if not secret:
            raise TerminalDriverError("agent driver needs the provider agent's secret", code="bad_driver_config")
        self.base_url = base_url.rstrip("/")
        self._url = url
        self.key_id = key_id
        self._secrets = [secret, *[s for s in fallback_secrets if s and s != secret]]
        self.connect_timeout_s = connect_timeout_s

    # ------------------------------------------------------------------------------------------ contract
    def create(self, spec: JobSpec, *, timeout_s: float = 30.0) -> str:
        body = {"idempotency_key": spec.idempotency_key, "order_id": spec.order_id,
                "offer_external_id": spec.offer_external_id, "nodes": spec.nodes,
                "accelerators_per_node": spec.accelerators_per_node, "accelerator": spec.accelerator,
                "command": spec.command, "image": spec.image, "env": dict(spec.env),
                "time_limit_s": int(spec.time_limit_s), "vcpus": spec.vcpus, "ram_gb": spec.ram_gb,
                "options": dict(spec.options)}
        answer = self._call("POST", "/v1/jobs", body, timeout_s, "create")
        self._raise_for(answer, "create")
        return self._field(answer, "job_ref", str, "create")

    def status(self, job_ref: str, *, timeout_s: float = 10.0) -> JobStatus:
        answer = self._call("GET", f"/v1/jobs/{job_ref}", None, timeout_s, "status")
        if answer.status == 404:
            return JobStatus(job_ref=job_ref, state=JobState.LOST, message="the agent does not know this job")
        self._raise_for(answer, "status")
        return self._job_status(answer, job_ref, "status")

    def logs(self, job_ref: str, offset: int = 0, *, timeout_s: float = 10.0) -> LogChunk:
        query = urlencode({"offset": max(0, int(offset))})
        answer = self._call("GET", f"/v1/jobs/{job_ref}/logs?{query}", None, timeout_s, "logs")
        self._raise_for(answer, "logs")
        return LogChunk(text=self._field(answer, "text", str, "logs"),
                        next_offset=self._field(answer, "next_offset", int, "logs"),
                        complete=self._field(answer, "complete", bool, "logs"))

    def usage(self, job_ref: str, *, timeout_s: float = 10.0) -> Usage:
        answer = self._call("GET", f"/v1/jobs/{job_ref}/usage", None, timeout_s, "usage")
        self._raise_for(answer, "usage")
        elapsed = self._field(answer, "elapsed_s", (int, float), "usage")
        exit_code = answer.data.get("exit_code")
        if exit_code is not None and not isinstance(exit_code, int):
            raise self._bad("usage", "exit_code is not an integer")
        details = {k: answer.data[k] for k in ("cpu_s", "max_rss_kb") if answer.data.get(k) is not None}
        return Usage(elapsed_s=float(elapsed), accelerator_s=float(answer.data.get("accelerator_s") or 0.0),
                     exit_code=exit_code, details=details)

    def terminate(self, job_ref: str, *, timeout_s: float = 30.0) -> None:
        answer = self._call("POST", f"/v1/jobs/{job_ref}/terminate", {}, timeout_s, "terminate")
        if answer.status == 404:
            return
        self._raise_for(answer, "terminate")
        self._job_status(answer, job_ref, "terminate")

    # ----------------------------------------------------------------------------------------- transport
    def _call(self, method: str, path: str, body: dict[str, Any] | None, timeout_s: float, call: str) -> _Answer:
        """One signed request; during a secret rotation a refused signature is retried with the previous secret."""
        deadline = time.monotonic() + timeout_s
        payload = json.dumps(body).encode() if body is not None else b""
        for index, secret in enumerate(self._secrets):
            answer = self._once(method, path, payload, secret, deadline, timeout_s, call)
            if answer.status in (401, 403) and answer.error_code == "bad_signature" and index + 1 < len(self._secrets):
                continue
            return answer
        raise AssertionError("unreachable")

    def _once(self, method: str, path: str, payload: bytes, secret: str, deadline: float, timeout_s: float,
              call: str) -> _Answer:
        full_path = (self._url.path.rstrip("/") + path) if self._url.path not in ("", "/") else path
        headers = sign_request(secret=secret, key_id=self.key_id, method=method, path=full_path, body=payload)
        headers.update({"Content-Type": "application/json", "Accept": "application/json",
                        "Content-Length": str(len(payload))})
        connection_class = http.client.HTTPSConnection if self._url.scheme == "https" else http.client.HTTPConnection
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TransientDriverError(f"agent {call} timed out after {timeout_s:g}s", code="timeout")
        conn = connection_class(self._url.hostname, self._url.port, timeout=min(remaining, self.connect_timeout_s))
        try:
            conn.connect()
            conn.sock.settimeout(max(0.001, deadline - time.monotonic()))
            conn.request(method, full_path, body=payload or None, headers=headers)
            response = conn.getresponse()
            raw = self._read(response, conn, deadline)
            status, response_headers = response.status, response.headers
        except TimeoutError:
            raise TransientDriverError(f"agent {call} timed out after {timeout_s:g}s", code="timeout") from None
        except (OSError, http.client.HTTPException) as exc:
            raise TransientDriverError(f"agent {call} failed: {type(exc).__name__}: {exc}",
                                       code="agent_unreachable") from None
        finally:
            conn.close()
        if status >= 500 or status == 429:
            raise TransientDriverError(f"agent {call} answered HTTP {status}", code=f"agent_http_{status}")
        if status in (401, 403):
            return _Answer(status, _loads(raw) or {})
        try:
            verify_response(response_headers.get, status=status, request_nonce=headers[H_NONCE], body=raw,
                            secret=secret)
        except SignatureError as exc:
            raise TerminalDriverError(f"agent {call}: answer refused ({exc.message})",
                                      code="agent_bad_signature") from None
        data = _loads(raw)
        if data is None:
            raise self._bad(call, f"HTTP {status} with a body that is not a JSON object")
        return _Answer(status, data)

    @staticmethod
    def _read(response: http.client.HTTPResponse, conn: http.client.HTTPConnection, deadline: float) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError()
            if conn.sock is not None:
                conn.sock.settimeout(remaining)
            chunk = response.read1(65536) if hasattr(response, "read1") else response.read(65536)
            if not chunk:
                body = b"".join(chunks)
                if response.length:  # the connection closed before Content-Length bytes came
                    raise http.client.IncompleteRead(body, response.length)
                return body
            size += len(chunk)
            if size > MAX_RESPONSE_BYTES:
                raise http.client.HTTPException(f"answer larger than {MAX_RESPONSE_BYTES} bytes")
            chunks.append(chunk)

    # ---------------------------------------------------------------------------------------- decoding
    def _raise_for(self, answer: _Answer, call: str) -> None:
        if 200 <= answer.status < 300:
            return
        detail = answer.error_message or f"HTTP {answer.status}"
        if answer.status in (401, 403):
            raise TerminalDriverError(f"agent {call}: the agent refused our signature ({answer.error_code or '?'}: "
                                      f"{detail})", code="agent_auth_refused")
        if answer.status == 409 and answer.error_code == "capacity":
            raise CapacityGoneError(f"agent {call}: {detail}")
        if answer.status == 404:
            raise TerminalDriverError(f"agent {call}: {detail}", code="job_unknown")
        raise TerminalDriverError(f"agent {call}: HTTP {answer.status}: {detail}",
                                  code=answer.error_code or f"agent_http_{answer.status}")

    def _job_status(self, answer: _Answer, job_ref: str, call: str) -> JobStatus:
        state = self._field(answer, "state", str, call)
        if state not in _STATES:
            raise self._bad(call, f"unknown state {state!r}")
        exit_code = answer.data.get("exit_code")
        if exit_code is not None and not isinstance(exit_code, int):
            raise self._bad(call, "exit_code is not an integer")
        return JobStatus(job_ref=job_ref, state=JobState(state), exit_code=exit_code,
                         message=str(answer.data.get("message") or ""))

    def _field(self, answer: _Answer, name: str, kind: type | tuple[type, ...], call: str) -> Any:
        value = answer.data.get(name)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise self._bad(call, f"field {name!r} missing or of the wrong type")
        return value

    @staticmethod
    def _bad(call: str, why: str) -> TerminalDriverError:
        return TerminalDriverError(f"agent {call}: unusable answer: {why}", code="agent_bad_response")


def _loads(raw: bytes) -> dict[str, Any] | None:
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None
