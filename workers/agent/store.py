"""The agent's persistent state: jobs (by reference and idempotency key) and seen nonces, in SQLite in its work dir.

A restart of the agent keeps both: a create with a key seen before returns the same job, and a request replayed
within the signature window is still refused. Stdlib only.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    ref TEXT PRIMARY KEY,
    idempotency_key TEXT NOT NULL UNIQUE,
    spec_hash TEXT NOT NULL,
    spec TEXT NOT NULL,
    state TEXT NOT NULL,
    pid INTEGER,
    created_at REAL NOT NULL,
    started_at REAL,
    ended_at REAL,
    exit_code INTEGER,
    cpu_s REAL,
    max_rss_kb INTEGER,
    message TEXT NOT NULL DEFAULT '',
    stop_reason TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS nonces (
    nonce TEXT PRIMARY KEY,
    seen_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS nonces_seen_at ON nonces (seen_at);
"""

ACTIVE_STATES = ("pending", "running")


@dataclass(frozen=True, slots=True)
class JobRow:
    ref: str
    idempotency_key: str
    spec_hash: str
    spec: dict[str, Any]
    state: str
    pid: int | None
    created_at: float
    started_at: float | None
    ended_at: float | None
    exit_code: int | None
    cpu_s: float | None
    max_rss_kb: int | None
    message: str
    stop_reason: str

    @property
    def finished(self) -> bool:
        return self.state not in ACTIVE_STATES


class AgentStore:
    """One SQLite connection shared by the server's threads, serialised by a lock (writes are tiny)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=10)
        self._db.row_factory = sqlite3.Row
        self.lock = threading.RLock()
        with self.lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self.lock:
            self._db.close()

    # ------------------------------------------------------------------------------------------- nonces
    def remember_nonce(self, nonce: str, *, now: float, ttl_s: float) -> bool:
        """True the first time a nonce is seen; False for a replay. Forgets nonces older than ttl_s."""
        with self.lock:
            self._db.execute("DELETE FROM nonces WHERE seen_at < ?", (now - ttl_s,))
            try:
                self._db.execute("INSERT INTO nonces (nonce, seen_at) VALUES (?, ?)", (nonce, now))
            except sqlite3.IntegrityError:
                return False
            return True

    # --------------------------------------------------------------------------------------------- jobs
    def insert_job(self, *, ref: str, key: str, spec_hash: str, spec: dict[str, Any], now: float) -> None:
        with self.lock:
            self._db.execute(
                "INSERT INTO jobs (ref, idempotency_key, spec_hash, spec, state, created_at) "
                "VALUES (?, ?, ?, ?, 'pending', ?)", (ref, key, spec_hash, json.dumps(spec), now))

    def update_job(self, ref: str, **values: Any) -> None:
        if not values:
            return
        columns = ", ".join(f"{name} = ?" for name in values)
        with self.lock:
            self._db.execute(f"UPDATE jobs SET {columns} WHERE ref = ?", (*values.values(), ref))

    def finish_job(self, ref: str, **values: Any) -> bool:
        """Set the final state unless the job already has one. True if this call finished it."""
        columns = ", ".join(f"{name} = ?" for name in values)
        with self.lock:
            cursor = self._db.execute(
                f"UPDATE jobs SET {columns} WHERE ref = ? AND state IN ('pending', 'running')",
                (*values.values(), ref))
            return cursor.rowcount == 1

    def job(self, ref: str) -> JobRow | None:
        with self.lock:
            row = self._db.execute("SELECT * FROM jobs WHERE ref = ?", (ref,)).fetchone()
        return _row(row)

    def job_by_key(self, key: str) -> JobRow | None:
        with self.lock:
            row = self._db.execute("SELECT * FROM jobs WHERE idempotency_key = ?", (key,)).fetchone()
        return _row(row)

    def active_jobs(self) -> list[JobRow]:
        with self.lock:
            rows = self._db.execute("SELECT * FROM jobs WHERE state IN ('pending', 'running') ORDER BY created_at"
                                    ).fetchall()
        return [r for r in (_row(row) for row in rows) if r is not None]

    def count_active(self) -> int:
        with self.lock:
            return int(self._db.execute(
                "SELECT COUNT(*) FROM jobs WHERE state IN ('pending', 'running')").fetchone()[0])

    def count_jobs(self) -> int:
        with self.lock:
            return int(self._db.execute("SELECT COUNT(*) FROM jobs").fetchone()[0])


def _row(row: sqlite3.Row | None) -> JobRow | None:
    if row is None:
        return None
    values = dict(row)
    values["spec"] = json.loads(values["spec"])
    return JobRow(**values)


def now() -> float:
    return time.time()
