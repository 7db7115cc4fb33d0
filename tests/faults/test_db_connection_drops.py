"""PostgreSQL connections dropped in the middle of requests: clients see success or a clean 503 (the API's error
shape, Retry-After), never a 500 page and never a half-written order; retrying with the same Idempotency-Key
converges to one order per key.

gunicorn (2 workers, persistent connections) places orders while a thread in the test terminates every backend
of the web server (pg_terminate_backend on its application_name) every 20-150 ms: inside transactions, between the
reservation's commit and the payment's, during the after-commit outbox publish, and on idle pooled connections.
Orders are placed in rounds of ORDERS until at least MIN_CUT requests were cut (a fast machine placed all 16 of
one round before the killer's first pass), at most MAX_ROUNDS.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest
from django.db import connection

from marketplace.billing.models import OrderCharge
from marketplace.db_unavailable import DatabaseUnavailableMiddleware
from marketplace.orders.models import Order, OrderEvent, OutboxMessage, Reservation
from tests.faults.conftest import report_figures
from tests.faults.processes import Answer, ApiClient, WebServer
from tests.orders.conftest import job
from tests.worker_process import database_url_of

URL = "/api/v1/orders/"
APP_NAME = "faults-web"
ORDERS = 16  # per round
MAX_ROUNDS = 8
MIN_CUT = 3
CLIENTS = 3
MAX_TRIES = 40


class BackendKiller(threading.Thread):
    """Terminates every PostgreSQL backend whose application_name is APP_NAME, every 20-150 ms, until stopped."""

    def __init__(self, database_url: str) -> None:
        super().__init__(daemon=True)
        self.database_url = database_url
        self.stopped = threading.Event()
        self.killed = 0

    def run(self) -> None:
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            while not self.stopped.wait(random.uniform(0.02, 0.15)):
                row = conn.execute("SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
                                   "WHERE application_name = %s AND pid <> pg_backend_pid()", [APP_NAME]).fetchone()
                self.killed += row[0]


def place_until_done(client: ApiClient, body: dict, key: str) -> list[Answer]:
    """POST until the order is there (201/200) or an answer other than 503 comes back. The test retries after
    0.1 s rather than the Retry-After it is given, to keep the run short."""
    answers: list[Answer] = []
    for _ in range(MAX_TRIES):
        answers.append(answer := client.post(URL, body, key=key))
        client.get(URL)  # a read in between: also 200 or 503
        if answer.status != 503:
            break
        time.sleep(0.1)
    return answers


@pytest.mark.slow
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_connections_dropped_mid_request_give_503_or_success_and_retries_converge(
        private_queue, redis_url, customer, api_token, provider_a, make_node_offer, make_quote, tmp_path: Path):
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL only: SQLite has no server connection to drop")
    offer = make_node_offer(provider_a, nodes=ORDERS * MAX_ROUNDS + 5)
    work: list[tuple[dict, str]] = []
    tries: list[list[Answer]] = []
    database_url = database_url_of(connection.settings_dict)
    web = WebServer(env={"DATABASE_URL": f"{database_url}?application_name={APP_NAME}", "REDIS_URL": redis_url,
                         "CELERY_QUEUE": private_queue}, log_path=tmp_path / "web.log")
    killer = BackendKiller(database_url)
    with web:
        client = ApiClient(web.url, api_token)
        killer.start()
        try:
            for _ in range(MAX_ROUNDS):
                round_ = [({"quote_id": str(make_quote(customer, [offer]).id), "job": job(command="true")},
                           uuid.uuid4().hex) for _ in range(ORDERS)]
                work += round_
                with ThreadPoolExecutor(CLIENTS) as pool:
                    tries += list(pool.map(lambda w: place_until_done(client, *w), round_))
                if sum(a.status == 503 for attempt in tries for a in attempt) >= MIN_CUT:
                    break
        finally:
            killer.stopped.set()
            killer.join()
        replays = [client.post(URL, body, key=key) for body, key in work]
        gets = [client.get(URL) for _ in range(3)]
        web_log = web.log()

    answers = [a for attempt in tries for a in attempt]
    unavailable = [a for a in answers if a.status == 503]
    report_figures(
        "postgres_connections_dropped", orders_placed=len(work), requests=len(answers), answers_503=len(unavailable),
        backends_killed=killer.killed, max_tries_for_one_order=max(len(t) for t in tries),
        orders_in_database=Order.objects.filter(customer=customer).count(),
        duplicates=Order.objects.filter(customer=customer).count() - len(work))

    assert {a.status for a in answers} <= {200, 201, 503}, sorted({(a.status, str(a.body)[:200]) for a in answers})
    assert "Internal Server Error" not in web_log and "Traceback" not in web_log, web_log[-3000:]
    assert len(unavailable) >= MIN_CUT, (f"{len(unavailable)} requests cut in {len(work)} orders ({killer.killed} "
                                         "backends killed): the test proves too little")
    for answer in unavailable:
        assert answer.body["error"]["code"] == "database_unavailable", answer.body
        assert set(answer.body["error"]) >= {"code", "message", "fields"}
        assert answer.headers["Retry-After"] == "2"
    assert all(t[-1].status in (200, 201) for t in tries), [[a.status for a in t] for t in tries]
    # retries with the same key converge: one order per key, the same one every time
    assert [r.status for r in replays] == [200] * len(work)
    assert [r.body["id"] for r in replays] == [t[-1].body["id"] for t in tries]
    assert all(g.status == 200 for g in gets)
    ids = [r.body["id"] for r in replays]
    orders = Order.objects.filter(customer=customer)
    assert sorted(orders.values_list("pk", flat=True)) == sorted(ids)
    # never half-written: each order is reserved, paid for (credit authorized) and queued, with its events
    for order in orders:
        assert (order.state, order.attempt) == ("queued", 1), (order.pk, order.state, order.failure_code)
        events = list(OrderEvent.objects.filter(order=order).order_by("id").values_list("from_state", "to_state"))
        assert events == [("", "reserved"), ("reserved", "queued")], (order.pk, events)
        assert Reservation.objects.filter(order=order, active=True).count() == 1
        charge = OrderCharge.objects.get(order=order)
        assert (charge.status, charge.authorized_amount > 0) == ("authorized", True)
    # nothing orphaned: no reservation, charge or outbox message of an order that is not there
    assert Reservation.objects.filter(active=True).count() == len(work)
    assert OrderCharge.objects.count() == len(work)
    assert {m.args[0] for m in OutboxMessage.objects.all()} <= set(ids)


def test_portal_pages_answer_503_with_retry_after_when_the_database_drops(rf):
    from django.db import InterfaceError, OperationalError

    middleware = DatabaseUnavailableMiddleware(lambda request: None)
    page = middleware.process_exception(rf.get("/portal/orders/"), OperationalError("server closed the connection"))
    api = middleware.process_exception(rf.get("/api/v1/offers/"), InterfaceError("connection already closed"))
    other = middleware.process_exception(rf.get("/portal/orders/"), ValueError("a bug"))

    assert (page.status_code, page["Retry-After"], page["Content-Type"]) == (503, "2", "text/html; charset=utf-8")
    assert b"Temporarily unavailable" in page.content
    assert (api.status_code, api["Retry-After"]) == (503, "2")
    assert api.content.startswith(b'{"error": {"code": "database_unavailable"')
    assert other is None  # anything else is still a 500 (and logged)
