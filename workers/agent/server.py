"""The reference provider agent's HTTP API (stdlib ThreadingHTTPServer). Every route but /v1/health needs a signed
request (workers/drivers/http.py); answers are signed with the secret the request was signed with.

    GET  /v1/health                         {"ok": true, "slots", "active"}
    POST /v1/jobs                           create (idempotent by key): 201 new, 200 existing,
                                            409 {"error": {"code": "capacity"}} when every slot is busy,
                                            409 idempotency_conflict when the key was used with another spec
    GET  /v1/jobs/<ref>                     state, exit code, message, pid
    GET  /v1/jobs/<ref>/logs?offset=&limit= {"text", "next_offset", "complete"}  (byte offsets into the log file)
    GET  /v1/jobs/<ref>/usage               {"elapsed_s", "cpu_s", "max_rss_kb", "exit_code", "accelerator_s"}
    POST /v1/jobs/<ref>/terminate           kills the process group; answers the job (usually already cancelled)

Errors use the broker's shape {"error": {"code", "message", "fields"}}; a refused signature is a 401.
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from workers.agent.runner import IdempotencyConflict, JobRunner, NoCapacity
from workers.agent.store import AgentStore, JobRow
from workers.drivers.http import NONCE_TTL_S, SignatureError, sign_response, verify_request

log = logging.getLogger("provider_agent")

MAX_BODY_BYTES = 1024 * 1024
MAX_COMMAND_CHARS = 100_000
MAX_ENV_ENTRIES = 200
MAX_LOG_CHUNK = 1024 * 1024
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
JOB_PATH = re.compile(r"^/v1/jobs/(?P<ref>job-[0-9a-f]{16})(?P<action>/logs|/usage|/terminate)?$")


@dataclass
class AgentConfig:
    key_id: str
    secret: str
    work_dir: Path
    host: str = "127.0.0.1"
    port: int = 8701
    previous_secret: str = ""
    previous_secret_until: float = 0.0   # Unix time; the previous secret is refused afterwards
    slots: int = 1
    max_time_limit_s: int = 7 * 24 * 3600
    kill_grace_s: float = 5.0
    extra: dict[str, Any] = field(default_factory=dict)


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, fields: dict[str, list[str]] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.fields = status, code, message, fields or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "fields": self.fields}}


class AgentApp:
    """Routing, signature checks and validation; the runner does the work."""

    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        self.store = AgentStore(config.work_dir / "agent.sqlite3")
        self.runner = JobRunner(self.store, config.work_dir, slots=config.slots, kill_grace_s=config.kill_grace_s)
        self.runner.recover()

    def secrets(self, now: float) -> list[str]:
        out = [self.config.secret]
        if self.config.previous_secret and now <= self.config.previous_secret_until:
            out.append(self.config.previous_secret)
        return out

    def authenticate(self, method: str, target: str, headers: Any, body: bytes) -> tuple[str, str]:
        """(nonce, secret that matched) or ApiError(401)."""
        now = time.time()
        offered = self.secrets(now)
        try:
            verified = verify_request(headers.get, method=method, path=target, body=body, secrets_=offered, now=now)
        except SignatureError as exc:
            raise ApiError(401, exc.code, exc.message) from None
        if verified.key_id != self.config.key_id:
            raise ApiError(401, "unknown_key", f"this agent is {self.config.key_id}, not {verified.key_id}")
        if not self.store.remember_nonce(verified.nonce, now=now, ttl_s=NONCE_TTL_S):
            raise ApiError(401, "replayed_nonce", "this request was already received (nonce seen before)")
        return verified.nonce, offered[verified.secret_index]

    def route(self, method: str, target: str, body: bytes) -> tuple[int, dict[str, Any]]:
        url = urlsplit(target)
        if url.path == "/v1/jobs" and method == "POST":
            return self.create(_json_object(body))
        match = JOB_PATH.match(url.path)
        if match is None:
            raise ApiError(404, "not_found", f"no route {method} {url.path}")
        job = self.store.job(match["ref"])
        if job is None:
            raise ApiError(404, "job_unknown", f"no job {match['ref']}")
        action = match["action"] or ""
        if (method, action) == ("GET", ""):
            return 200, job_json(job)
        if (method, action) == ("GET", "/logs"):
            offset, limit = _log_window(parse_qs(url.query))
            read = self.runner.read_logs(job, offset, limit)
            return 200, {"job_ref": job.ref, "text": read.text, "next_offset": read.next_offset,
                         "complete": read.complete}
        if (method, action) == ("GET", "/usage"):
            return 200, {"job_ref": job.ref, **self.runner.usage(job)}
        if (method, action) == ("POST", "/terminate"):
            stopped = self.runner.terminate(job.ref)
            return 200, job_json(stopped or job)
        raise ApiError(405, "method_not_allowed", f"{method} is not allowed on {url.path}")

    def create(self, data: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        spec = self.validate_spec(data)
        try:
            job, created = self.runner.create(spec)
        except NoCapacity:
            raise ApiError(409, "capacity", f"all {self.config.slots} slot(s) of this agent are busy") from None
        except IdempotencyConflict:
            raise ApiError(409, "idempotency_conflict",
                           "this idempotency key was already used with another job spec") from None
        return (201 if created else 200), {**job_json(job), "created": created}

    def validate_spec(self, data: dict[str, Any]) -> dict[str, Any]:
        errors: dict[str, list[str]] = {}
        key = data.get("idempotency_key")
        if not isinstance(key, str) or not 1 <= len(key) <= 200:
            errors["idempotency_key"] = ["required: a string of 1 to 200 characters"]
        command = data.get("command")
        if not isinstance(command, str) or not command.strip():
            errors["command"] = ["required: a non-empty shell command"]
        elif len(command) > MAX_COMMAND_CHARS:
            errors["command"] = [f"at most {MAX_COMMAND_CHARS} characters"]
        limit = data.get("time_limit_s")
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= self.config.max_time_limit_s:
            errors["time_limit_s"] = [f"required: whole seconds from 1 to {self.config.max_time_limit_s}"]
        env = data.get("env", {})
        if not isinstance(env, dict) or len(env) > MAX_ENV_ENTRIES:
            errors["env"] = [f"an object of at most {MAX_ENV_ENTRIES} string values"]
        else:
            bad = sorted(k for k, v in env.items() if not ENV_NAME.match(str(k)) or not isinstance(v, str)
                         or "\x00" in v)
            if bad:
                errors["env"] = [f"invalid names or non-string values: {', '.join(bad[:10])}"]
        for name in ("nodes", "accelerators_per_node", "order_id"):
            value = data.get(name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
                errors[name] = ["a whole number >= 0"]
        if data.get("nodes", 1) not in (None, 1) and "nodes" not in errors:
            errors["nodes"] = ["this agent runs single-node jobs only"]
        if errors:
            raise ApiError(400, "invalid", "The job spec is invalid.", errors)
        keep = ("idempotency_key", "command", "time_limit_s", "env", "order_id", "offer_external_id", "nodes",
                "accelerators_per_node", "accelerator", "image", "vcpus", "ram_gb", "options")
        return {k: data[k] for k in keep if k in data}


def job_json(job: JobRow) -> dict[str, Any]:
    return {"job_ref": job.ref, "idempotency_key": job.idempotency_key, "state": job.state,
            "exit_code": job.exit_code, "message": job.message, "pid": job.pid, "created_at": job.created_at,
            "started_at": job.started_at, "ended_at": job.ended_at}


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body or b"{}")
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "invalid", "The body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise ApiError(400, "invalid", "The body must be a JSON object.")
    return data


def _log_window(query: dict[str, list[str]]) -> tuple[int, int]:
    try:
        offset = int(query.get("offset", ["0"])[0])
        limit = int(query.get("limit", [str(64 * 1024)])[0])
    except ValueError:
        raise ApiError(400, "invalid", "offset and limit must be whole numbers.") from None
    if offset < 0 or not 1 <= limit <= MAX_LOG_CHUNK:
        raise ApiError(400, "invalid", f"offset must be >= 0 and limit within 1..{MAX_LOG_CHUNK}.",
                       {"offset": ["must be >= 0"]} if offset < 0 else {"limit": [f"within 1..{MAX_LOG_CHUNK}"]})
    return offset, limit


class Handler(BaseHTTPRequestHandler):
    server_version = "broker-provider-agent/1"
    server: AgentServer

    def do_GET(self) -> None:  # noqa: N802
        self._dispatch("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        app = self.server.app
        nonce, secret = "", app.config.secret
        try:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY_BYTES:
                raise ApiError(413, "too_large", f"bodies are limited to {MAX_BODY_BYTES} bytes")
            body = self.rfile.read(length) if length > 0 else b""
            if method == "GET" and urlsplit(self.path).path == "/v1/health":
                status, payload = 200, {"ok": True, "slots": app.config.slots, "active": app.store.count_active()}
            else:
                nonce, secret = app.authenticate(method, self.path, self.headers, body)
                status, payload = app.route(method, self.path, body)
        except ApiError as exc:
            status, payload = exc.status, exc.body()
        except ValueError:
            status, payload = 400, ApiError(400, "invalid", "bad Content-Length").body()
        except Exception:  # never leave the broker without an answer
            log.exception("agent request failed: %s %s", method, self.path)
            status, payload = 500, ApiError(500, "agent_error", "internal error in the agent").body()
        raw = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        for name, value in sign_response(secret=secret, status=status, request_nonce=nonce, body=raw).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        log.info("%s %s", self.address_string(), format % args)


class AgentServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, app: AgentApp) -> None:
        self.app = app
        super().__init__((app.config.host, app.config.port), Handler)
