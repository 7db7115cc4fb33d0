"""Readiness checks: the database answers, Redis answers, and every kind queue has a worker heard recently.

Each check returns a Check; /readyz is 200 when all pass, 503 with every check's outcome otherwise."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import redis
from django.conf import settings
from django.db import DatabaseError, connection

from broker.celery_routing import KINDS, queues_for
from marketplace.ops import heartbeat


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str

    def as_dict(self) -> dict:
        return asdict(self)


def check_database() -> Check:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError as exc:
        return Check("database", False, f"{type(exc).__name__}: {exc}"[:300])
    return Check("database", True, connection.vendor)


def check_redis(conn: redis.Redis) -> Check:
    try:
        conn.ping()
    except (redis.RedisError, OSError) as exc:
        return Check("redis", False, f"{type(exc).__name__}: {exc}"[:300])
    return Check("redis", True, "PONG")


def check_workers(conn: redis.Redis, now: float | None = None) -> Check:
    """Every kind queue (default, provisioning, polling, billing) consumed by a worker whose heartbeat is fresh."""
    now = time.time() if now is None else now
    stale_s = settings.WORKER_HEARTBEAT_STALE_S
    try:
        beats = heartbeat.read(conn)
    except (redis.RedisError, OSError) as exc:
        return Check("workers", False, f"heartbeats unreadable: {type(exc).__name__}: {exc}"[:300])
    fresh = [(name, queues) for name, at, queues in beats if now - at <= stale_s]
    served = {queue for _, queues in fresh for queue in queues}
    missing = [queue for queue in queues_for(KINDS) if queue not in served]
    if missing:
        return Check("workers", False, f"no worker heard within {stale_s} s consumes: {', '.join(missing)}")
    return Check("workers", True, f"{len(fresh)} worker(s) heard within {stale_s} s")


def readiness() -> list[Check]:
    conn = heartbeat.client()
    return [check_database(), check_redis(conn), check_workers(conn)]
