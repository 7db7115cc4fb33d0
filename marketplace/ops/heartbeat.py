"""The worker heartbeat: every Celery worker writes (time, queues it consumes) to a Redis hash every
WORKER_HEARTBEAT_INTERVAL_S; /readyz wants every kind queue served by a worker heard within WORKER_HEARTBEAT_STALE_S.

One hash per base queue (`broker:ops:heartbeat:<base>`), field = worker hostname, so processes on other base
queues (tests) do not see each other. Written from a thread of the worker's main process: it says the worker is up
and connected to Redis; a worker hung in a task still beats (the task time limits bound that)."""

from __future__ import annotations

import functools
import json
import logging
import threading
import time

import redis
from django.conf import settings

log = logging.getLogger(__name__)
FORGET_AFTER_S = 86_400  # entries of workers gone for a day are pruned


def key(base: str | None = None) -> str:
    return f"broker:ops:heartbeat:{base or settings.CELERY_TASK_DEFAULT_QUEUE}"


def client() -> redis.Redis:
    """A client of REDIS_URL with short timeouts (probes must answer quickly), one pool per URL and process."""
    return _client(settings.REDIS_URL)


@functools.lru_cache(maxsize=4)
def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)


def beat(hostname: str, queues: list[str], now: float | None = None, conn: redis.Redis | None = None) -> None:
    conn = conn or client()
    now = time.time() if now is None else now
    conn.hset(key(), hostname, json.dumps({"at": now, "queues": queues}))
    old = [name for name, at, _ in read(conn) if now - at > FORGET_AFTER_S]
    if old:
        conn.hdel(key(), *old)


def forget(hostname: str) -> None:
    client().hdel(key(), hostname)


def read(conn: redis.Redis | None = None) -> list[tuple[str, float, list[str]]]:
    """(hostname, time of the last beat, queues) of every worker of this base queue."""
    rows = []
    for name, raw in (conn or client()).hgetall(key()).items():
        try:
            data = json.loads(raw)
            rows.append((name.decode(), float(data["at"]), list(data["queues"])))
        except (ValueError, KeyError, TypeError):
            continue
    return rows


class Heart(threading.Thread):
    """Beats until stopped (a daemon thread of the worker's main process)."""

    def __init__(self, hostname: str, queues: list[str], interval_s: float) -> None:
        super().__init__(name="ops-heartbeat", daemon=True)
        self.hostname, self.queues, self.interval_s = hostname, queues, interval_s
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            try:
                beat(self.hostname, self.queues)
            except (redis.RedisError, OSError) as exc:
                log.warning("worker heartbeat not written: %s", exc)
            self.stopped.wait(self.interval_s)

    def stop(self) -> None:
        self.stopped.set()
