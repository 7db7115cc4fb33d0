"""Support for tests that need a real Celery worker process against a real Redis (never task_always_eager).

- `redis_url_for_tests()` gives the Redis the test process is configured for (settings.REDIS_URL),
  starting the embedded redis-server (broker/embedded_redis.py) on the configured unix socket when that
  is where it points and nothing answers; None only when a redis:// server cannot be reached.
- `CeleryWorker` runs `celery -A broker worker` in its own process group on a private base queue (and the kind
  queues derived from it: broker/celery_routing.py), with the test database and Redis passed through the
  environment, and stops it by pid.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import quote

import redis

from broker.celery_routing import KINDS, queues_for

ROOT = Path(__file__).resolve().parent.parent
_embedded: subprocess.Popen | None = None


def _answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=2).ping())
    except (redis.RedisError, OSError):
        return False


def _stop_embedded() -> None:
    if _embedded is not None and _embedded.poll() is None:
        _embedded.terminate()
        _embedded.wait(timeout=20)


def redis_url_for_tests() -> str | None:
    """settings.REDIS_URL once it answers PING; None when it is a TCP server that does not answer."""
    global _embedded
    from django.conf import settings

    url = settings.REDIS_URL
    if _answers(url):
        return url
    if not url.startswith("unix://") or _embedded is not None:
        return None
    import atexit

    socket_path = url.removeprefix("unix://")
    _embedded = subprocess.Popen([sys.executable, "-m", "broker.embedded_redis", "--socket", socket_path],
                                 cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    atexit.register(_stop_embedded)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and _embedded.poll() is None:
        if _answers(url):
            return url
        time.sleep(0.1)
    return None


def database_url_of(settings_dict: dict) -> str:
    """A DATABASE_URL naming the database the test process is connected to (the test database)."""
    engine = settings_dict["ENGINE"]
    if engine.endswith("sqlite3"):
        return f"sqlite:///{settings_dict['NAME']}"
    if engine.endswith("postgresql"):
        user = quote(settings_dict.get("USER") or "", safe="")
        password = quote(settings_dict.get("PASSWORD") or "", safe="")
        auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
        port = f":{settings_dict['PORT']}" if settings_dict.get("PORT") else ""
        return f"postgres://{auth}{settings_dict.get('HOST') or ''}{port}/{settings_dict['NAME']}"
    raise ValueError(f"no DATABASE_URL for engine {engine}")


class CeleryProcess:
    """A `celery -A broker ...` process in its own process group, logging to a file; a context manager."""

    ready_text = ""

    def __init__(self, *, database_url: str, redis_url: str, log_path: Path, queue: str, args: list[str]) -> None:
        self.queue = queue
        self.log_path = log_path
        self.env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": redis_url,
                    "CELERY_QUEUE": queue, "BROKER_DEV": "1", "PYTHONUNBUFFERED": "1"}
        self.args = [sys.executable, "-m", "celery", "-A", "broker", *args]
        self.process: subprocess.Popen | None = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def start(self, timeout: float = 60) -> CeleryProcess:
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(self.args, cwd=ROOT, env=self.env, stdout=log,
                                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            start_new_session=True)
        deadline = time.monotonic() + timeout
        while self.ready_text not in self.log():
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.args[5]} exited with {self.process.returncode}:\n{self.log()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.args[5]} not ready after {timeout:.0f} s:\n{self.log()}")
            time.sleep(0.1)
        return self

    def wait_for_log(self, text: str, timeout: float = 10) -> bool:
        """Wait until `text` appears in the log (a worker logs a task's outcome just after storing it)."""
        deadline = time.monotonic() + timeout
        while text not in self.log():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def wait_for_pattern(self, pattern: str, timeout: float = 10) -> re.Match | None:
        deadline = time.monotonic() + timeout
        while (match := re.search(pattern, self.log())) is None:
            if time.monotonic() > deadline:
                return None
            time.sleep(0.05)
        return match

    def stop(self) -> int | None:
        """SIGTERM (warm shutdown); after 20 s, SIGKILL to the process group (a worker's pool children too)."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        return self.process.returncode

    def __enter__(self) -> CeleryProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def private_queue() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


class CeleryWorker(CeleryProcess):
    """`celery -A broker worker` on a private base queue (a new one unless given), consuming the queues of the
    given kinds derived from it (broker/celery_routing.py; all four unless `kinds` names some)."""

    ready_text = " ready."  # "celery@<host> ready."

    def __init__(self, *, database_url: str, redis_url: str, log_path: Path, queue: str | None = None,
                 concurrency: int = 1, kinds: Iterable[str] = KINDS) -> None:
        queue = queue or private_queue()
        self.kinds = tuple(kinds)
        super().__init__(database_url=database_url, redis_url=redis_url, log_path=log_path, queue=queue,
                         args=["worker", "--loglevel", "INFO", "--concurrency", str(concurrency),
                               "--queues", ",".join(queues_for(self.kinds, queue)), "--hostname", f"{queue}@%h",
                               "--without-gossip", "--without-mingle", "--without-heartbeat"])

    @property
    def queues(self) -> list[str]:
        """Every queue this worker consumes (its base queue's kind queues)."""
        return queues_for(self.kinds, self.queue)

    def registered_tasks(self) -> set[str]:
        """The task names the worker printed in its start-up banner."""
        section = self.log().split("[tasks]", 1)[1].split("\n\n", 1)[0]
        return {line.strip().removeprefix(". ") for line in section.splitlines() if line.strip()}


class CeleryBeat(CeleryProcess):
    """`celery -A broker beat` sending the project's schedule to a private queue."""

    ready_text = "beat: Starting..."

    def __init__(self, *, database_url: str, redis_url: str, log_path: Path, queue: str, schedule: Path) -> None:
        super().__init__(database_url=database_url, redis_url=redis_url, log_path=log_path, queue=queue,
                         args=["beat", "--loglevel", "INFO", "--schedule", str(schedule), "--max-interval", "1"])
