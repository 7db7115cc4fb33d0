"""The benchmarks' own databases: each bench creates its database (dropped first if it is left over) and drops it
at the end, so it never touches a database the product or the tests use."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

import psycopg


def _admin_connection(url: str) -> psycopg.Connection:
    parsed = urlparse(url)
    return psycopg.connect(host=parsed.hostname or "127.0.0.1", port=parsed.port or 5432,
                           user=parsed.username or "postgres", password=parsed.password, dbname="postgres",
                           autocommit=True, connect_timeout=5)


def drop_database(url: str) -> None:
    """Drop the PostgreSQL database named in `url` (its open connections are terminated first)."""
    name = urlparse(url).path.lstrip("/")
    with _admin_connection(url) as conn:
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", [name])
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')


def recreate_database(url: str) -> None:
    """Drop the PostgreSQL database named in `url` if it exists, and create it empty."""
    drop_database(url)
    name = urlparse(url).path.lstrip("/")
    with _admin_connection(url) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')


def prepare_database(url: str) -> None:
    """An empty database at `url`: PostgreSQL recreated, or a SQLite file (and its WAL files) removed."""
    if url.startswith("sqlite"):
        path = Path(url.removeprefix("sqlite:///"))
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        return
    recreate_database(url)


def discard_database(url: str) -> None:
    """The end of a bench: drop its PostgreSQL database (a SQLite file is left for inspection)."""
    if not url.startswith("sqlite"):
        drop_database(url)
