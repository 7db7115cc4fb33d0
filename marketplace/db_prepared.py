"""Prepared statements for the hot statements written as SQL: the token lookup and the offer page (every search
request), and the order hot path's (placement's reads and writes, the offer lock, the free units, the
provisioning claim and move to running, the outbox delete, the reliability update).

The rest of the app keeps Django's client-side binding, whose cursors never prepare.
"""

from __future__ import annotations

from typing import Any

import psycopg
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.utils import CursorWrapper


class PreparedCursor(psycopg.Cursor):
    """A server-side-binding cursor whose statements are prepared on the connection at first use."""

    def execute(self, query: Any, params: Any = None, *, prepare: bool | None = None,
                binary: bool | None = None) -> PreparedCursor:
        return super().execute(query, params, prepare=True, binary=binary)


def prepared_cursor() -> Any:
    """A cursor whose statements run prepared, on PostgreSQL; elsewhere Django's ordinary cursor.

    A statement's text depends only on its shape (for the page query: which fields, operators, ordering, paging
    direction); its values are parameters. Prepared on the (persistent, CONN_MAX_AGE) connection, PostgreSQL
    parses it once and runs its generic plan (broker/settings.py sets plan_cache_mode=force_generic_plan: left
    to itself, PostgreSQL kept planning the common page queries per request, ~0.8 ms each). psycopg keeps up to
    100 prepared statements per connection and deallocates the least recently used. Preparing needs the
    connection's `prepare_threshold` (broker/settings.py sets it unless DB_PREPARED_STATEMENTS=false, for a
    transaction-mode pooler); without it this cursor binds server-side and plans per execution. When Django
    logs queries (DEBUG, or a test capturing them) the ordinary cursor runs the statement, so the logged SQL is
    the executable text with its values (bench/search_bench.py replays it in the bare view); the text and
    results are the same.

    One cursor is kept per connection and handed out again (`with` does not close it): an order request runs six
    of these statements, and making and closing a cursor for each cost ~30 us of CPU apiece.
    """
    db = connections[DEFAULT_DB_ALIAS]  # (once: each attribute of the `connection` proxy looks it up again)
    if db.vendor != "postgresql" or db.queries_logged:
        return db.cursor()
    db.close_if_health_check_failed()
    db.ensure_connection()
    kept = getattr(db, "_kept_prepared_cursor", None)
    if kept is None or kept.cursor.closed or kept.cursor.connection is not db.connection:
        with db.wrap_database_errors:
            kept = db._kept_prepared_cursor = KeptCursor(PreparedCursor(db.connection), db)
    db.validate_thread_sharing()
    return kept


class KeptCursor(CursorWrapper):
    """Django's cursor wrapper (database errors translated), left open when a `with` block ends; it closes with
    its connection."""

    def __exit__(self, type, value, traceback) -> None:
        return None
