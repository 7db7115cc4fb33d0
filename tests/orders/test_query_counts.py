"""Pinned query counts of the hot path an order takes to `running` (bench/orders_bench.py measures its cost): the
placement service (reserve, pay by credit, queue) and the provision step. They may only go down."""

from __future__ import annotations

import pytest
from django.db import connection

from marketplace.orders.models import Order, OrderEvent
from marketplace.orders.services import pipeline
from marketplace.orders.services.placement import order_place
from tests.orders.conftest import placement

pytestmark = pytest.mark.django_db

# In a test's transaction (savepoints instead of BEGIN/COMMIT; on_commit work does not run).
# Placing an order paid by credit on an offer that has taken orders before (its capacity units exist, its customer
# has a credit account). PostgreSQL: the reads (replayed key, quote, billing profile, credit account, the first
# alternative's offer) in one statement, then the free units picked and locked and every row written by one
# statement (placement_statement.py), without the offer's lock; in a test's transaction between a savepoint and
# its release (outside one, that statement is its own transaction: 2 statements in all). SQLite: the same reads,
# then the ORM's writes. Neither writes an outbox row (the provision message is published after commit).
PLACEMENT_QUERIES = {"postgresql": 4, "sqlite": 11}  # 5 and 12 with the offer locked first and the outbox row;
# 27 on both before the one-statement reads and writes (36 before
# an order paid by credit was paid and queued in the transaction that reserves it; 40 before the conditional queue
# UPDATE, loaded offer and merged unit check)
PROVISION_QUERIES = 10  # was 11 before the conditional provisioning -> running UPDATE
# On PostgreSQL both steps' transactions also SET LOCAL synchronous_commit TO OFF (no query compiled; transitions.py
# lazy_commit: the worker does not wait for two WAL flushes per order).
LAZY_COMMITS = 2


@pytest.fixture
def offer(provider_a, make_node_offer):
    return make_node_offer(provider_a, nodes=2, price="20.0000")


def test_placing_an_order_paid_by_credit(customer, offer, make_quote, django_assert_num_queries):
    quote = make_quote(customer, [offer])
    order_place(user=customer, idempotency_key="k0", data=placement(quote_id=str(quote.id)))
    with django_assert_num_queries(PLACEMENT_QUERIES[connection.vendor]):
        order, created = order_place(user=customer, idempotency_key="k1", data=placement(quote_id=str(quote.id)))
    assert created is True
    assert Order.objects.get(pk=order.pk).state == "queued"


def test_provisioning_to_running(customer, offer, make_quote, sim, django_assert_num_queries):
    quote = make_quote(customer, [offer])
    order, _ = order_place(user=customer, idempotency_key="k1", data=placement(quote_id=str(quote.id)))
    lazy = LAZY_COMMITS if connection.vendor == "postgresql" else 0
    with django_assert_num_queries(PROVISION_QUERIES + lazy) as captured:
        nxt = pipeline.step_provision(order.pk, 1, task="test")
    assert sum("synchronous_commit" in q["sql"] for q in captured.captured_queries) == lazy
    assert nxt is None  # metering starts from the row's meter_due_at (the sweep sends the run)
    order.refresh_from_db()
    assert order.meter_due_at is not None
    assert (order.state, order.job_ref) == ("running", sim.job_ref_for(order.provider_key(1)))
    assert list(OrderEvent.objects.filter(order=order).order_by("id").values_list("to_state", flat=True)) == [
        "reserved", "queued", "provisioning", "running"]
