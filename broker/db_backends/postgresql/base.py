"""Django's PostgreSQL backend, with a connection health check that does not ask the server while it need not.

Django's check (CONN_HEALTH_CHECKS, on in broker/settings.py) runs `SELECT 1` before the first query of every
request that reuses a persistent connection: one more round trip per request (on the offer search: one of three,
~0.1-0.15 ms of the two processes' CPU). An idle connection whose server is gone is one whose socket has become
readable: a terminated backend sends its FATAL error and closes; a restarted server closes. So `is_usable` first
polls the socket without waiting: nothing to read on an idle connection means nothing has happened to it since
its last query, and it is used as is; anything else (a closed socket, pending input, a connection not idle)
falls back to Django's `SELECT 1`. A connection that dies after the poll fails its next query as it would after
Django's check, whose answer can be stale by the time the query runs all the same.
"""

from __future__ import annotations

import select

from django.db.backends.postgresql import base
from psycopg import pq


class DatabaseWrapper(base.DatabaseWrapper):
    def is_usable(self) -> bool:
        connection = self.connection
        if connection is None or connection.closed:
            return False
        if connection.info.transaction_status == pq.TransactionStatus.IDLE:
            try:
                readable, _, _ = select.select([connection.fileno()], [], [], 0)
            except (OSError, ValueError):  # the socket is closed or invalid
                return False
            if not readable:
                return True
        return super().is_usable()
