"""Prepared statements for the two queries every search request runs: the token lookup and the offer page.

The rest of the app keeps Django's client-side binding, whose cursors never prepare.
"""

from __future__ import annotations

from typing import Any

import psycopg
from django.db import connection


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
    """
    if connection.vendor != "postgresql" or connection.queries_logged:
        return connection.cursor()
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    with connection.wrap_database_errors:
        return connection._prepare_cursor(PreparedCursor(connection.connection))
