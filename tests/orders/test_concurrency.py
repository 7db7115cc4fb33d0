"""200 orders racing for 20 units from 40 threads, each with its own database connection: exactly 20 succeed,
no unit is held twice, no deadlock. Runs on SQLite and PostgreSQL (`db_engine`: make test runs both)."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from django.db import connections

from marketplace.errors import ConflictError
from marketplace.orders.models import CapacityUnit, Order, Reservation
from marketplace.orders.services.placement import order_place
from tests.orders.conftest import placement

pytestmark = [pytest.mark.db_engine, pytest.mark.django_db(transaction=True, serialized_rollback=True)]
THREADS = 40  # PostgreSQL allows 100 connections; 40 at once leaves room for everything else
ORDERS = 200


def test_200_orders_race_for_20_units(customer, make_user, provider_a, provider_b, make_node_offer, make_quote):
    offer_a = make_node_offer(provider_a, nodes=10)
    offer_b = make_node_offer(provider_b, nodes=10)
    customers = [customer, make_user("second")]
    # Half the quotes rank A first, half B first: reservations lock offers in id order, so no deadlock.
    quotes = {(c.pk, flip): make_quote(c, [offer_b, offer_a] if flip else [offer_a, offer_b])
              for c in customers for flip in (False, True)}
    outcomes: list[str] = []
    barrier = threading.Barrier(THREADS)
    lock = threading.Lock()

    def run(thread: int) -> None:
        try:
            barrier.wait()
            for n in range(thread, ORDERS, THREADS):
                user = customers[n % 2]
                data = placement(quote_id=str(quotes[(user.pk, n % 4 >= 2)].id))
                try:
                    order_place(user=user, idempotency_key=f"race-{n}", data=data)
                    outcome = "placed"
                except ConflictError as exc:
                    outcome = exc.code
                except Exception as exc:  # noqa: BLE001 - any other error is a failure of the test
                    outcome = f"{type(exc).__name__}: {exc}"
                with lock:
                    outcomes.append(outcome)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(t,)) for t in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)

    assert Counter(outcomes) == {"placed": 20, "no_capacity": 180}
    active = Reservation.objects.filter(active=True)
    assert active.count() == 20
    assert active.values("unit").distinct().count() == 20
    assert {o: active.filter(offer=o).count() for o in (offer_a, offer_b)} == {offer_a: 10, offer_b: 10}
    assert Order.objects.count() == 20
    assert set(Order.objects.values_list("state", flat=True)) == {"queued"}
    assert CapacityUnit.objects.count() == 20


def test_a_failover_locks_its_alternatives_before_it_takes_the_catalog_version(
        customer, provider_a, provider_b, make_node_offer, make_quote):
    """The locking order (reservations.py: offers, units, catalog version): a failover waiting for its next
    offer's lock (held here by another transaction, as a placement through the ORM holds it) does not hold the
    catalog version row, which that placement takes last. Releasing first (units, then the version) and locking
    the offers after had left the two waiting for each other: a deadlock."""
    import time

    import psycopg
    from django.db import connection

    from marketplace.orders.services.failover import order_failover
    from tests.worker_process import database_url_of

    if connection.vendor != "postgresql":
        pytest.skip("row locks: PostgreSQL's (SQLite serialises its writers)")
    first, second = make_node_offer(provider_a, nodes=1), make_node_offer(provider_b, nodes=1)
    order, _ = order_place(user=customer, idempotency_key="k", data=placement(
        quote_id=str(make_quote(customer, [first, second]).id)))
    Order.objects.filter(pk=order.pk).update(state="provisioning")
    url = database_url_of(connection.settings_dict)
    outcome: dict = {}

    def fail_over() -> None:
        try:
            outcome["order"] = order_failover(order.pk, 1, code="capacity_gone", reason="gone", task="test")
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            outcome["error"] = exc
        finally:
            connections.close_all()

    with psycopg.connect(url) as holder, psycopg.connect(url, autocommit=True) as watcher:
        holder.execute('SELECT 1 FROM "marketplace_offer" WHERE "id" = %s FOR NO KEY UPDATE', [second.pk])
        thread = threading.Thread(target=fail_over)
        thread.start()
        deadline = time.monotonic() + 20
        while not watcher.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                  "AND wait_event_type = 'Lock'").fetchone()[0]:
            assert time.monotonic() < deadline and thread.is_alive(), outcome
            time.sleep(0.02)
        holder.execute('SELECT 1 FROM "marketplace_catalogversion" WHERE "id" = 1 FOR UPDATE NOWAIT')  # not held
        holder.rollback()
        thread.join(timeout=30)
    assert "error" not in outcome, outcome
    moved = Order.objects.get(pk=order.pk)
    assert (moved.state, moved.attempt, moved.offer_id) == ("queued", 2, second.pk)
