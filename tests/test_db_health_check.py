"""The PostgreSQL backend's health check (broker/db_backends/postgresql/base.py): no round trip while the
connection is idle and untouched, Django's `SELECT 1` when anything has arrived on it, and a connection whose
backend was terminated is found unusable and replaced."""

from __future__ import annotations

import select
import time

import psycopg
import pytest
from django.db import connection

from tests.worker_process import database_url_of

pytestmark = [pytest.mark.django_db(transaction=True)]


@pytest.fixture
def postgres():
    if connection.vendor != "postgresql":
        pytest.skip("the health check is PostgreSQL's")
    connection.ensure_connection()
    with psycopg.connect(database_url_of(connection.settings_dict), autocommit=True) as other:
        yield other


def last_query(other: psycopg.Connection, pid: int) -> str:
    return other.execute("SELECT query FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone()[0]


def test_the_backend_is_ours():
    assert connection.settings_dict["ENGINE"] == "broker.db_backends.postgresql" or connection.vendor == "sqlite"


def test_an_idle_connection_is_usable_without_asking_the_server(postgres):
    pid = connection.connection.info.backend_pid
    with connection.cursor() as cursor:
        cursor.execute("SELECT 'health-marker'")
    assert connection.is_usable()
    assert last_query(postgres, pid) == "SELECT 'health-marker'"  # Django's check would have sent SELECT 1


def test_input_waiting_on_the_connection_makes_it_ask_the_server(postgres):
    pid = connection.connection.info.backend_pid
    with connection.cursor() as cursor:
        cursor.execute("LISTEN health_check_test")
    postgres.execute("NOTIFY health_check_test")
    readable = wait_readable(connection.connection)
    assert readable, "the notification never reached the socket"
    assert connection.is_usable()  # alive: SELECT 1 answered
    assert last_query(postgres, pid) == "SELECT 1"
    with connection.cursor() as cursor:
        cursor.execute("UNLISTEN *")


def test_a_terminated_backend_is_found_and_replaced(postgres):
    pid = connection.connection.info.backend_pid
    assert postgres.execute("SELECT pg_terminate_backend(%s)", [pid]).fetchone()[0]
    assert wait_readable(connection.connection), "the server's FATAL never reached the socket"
    assert not connection.is_usable()
    connection.health_check_done = False  # as at the start of a request
    connection.close_if_health_check_failed()
    assert connection.connection is None  # closed: the next query opens a new one instead of failing
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        assert cursor.fetchone()[0] != pid


def wait_readable(conn: psycopg.Connection, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if select.select([conn.fileno()], [], [], 0.05)[0]:
            return True
    return False
