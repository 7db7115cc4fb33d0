"""The provision step's two one-statement moves (provision_statements.py, PostgreSQL): each writes what the
transactional path writes (the order row, its events, the provider's reliability score; run once each way with
the same `now`), in one statement, and hands every case it does not cover (another attempt, a redelivered claim,
a cancelled order, another job recorded) to the transactional path, writing nothing itself."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from marketplace.errors import ConflictError, NotFoundError
from marketplace.models import Provider
from marketplace.orders.models import Order, OrderEvent
from marketplace.orders.services import provision_statements
from marketplace.orders.services.cancel import order_cancel
from marketplace.orders.services.placement import order_place
from marketplace.orders.services.transitions import order_claim_provisioning, order_record_job
from tests.orders.conftest import job, placement

pytestmark = pytest.mark.django_db(transaction=True)  # the statements run outside a transaction
T = "workers.tasks.orders.provision"
NOW = timezone.now().replace(microsecond=123456)
UP = NOW + timedelta(seconds=1000)  # 700 s late: a provisioning observation below 1
# Differ between two orders whatever the path: ids, keys, the offer (each run has its own provider).
OWN = {"id", "offer", "quote", "plan", "key_salt", "idempotency_key", "request_hash", "created_at"}


@pytest.fixture(autouse=True)
def postgresql_only():
    if connection.vendor != "postgresql":
        pytest.skip("the one-statement moves run on PostgreSQL only (SQLite takes the transactional path)")


@pytest.fixture
def place(customer, make_provider, make_node_offer, make_quote):
    made = []

    def make(score: str | None = "0.800") -> Order:
        provider = make_provider(f"Statements {len(made)}")
        Provider.objects.filter(pk=provider.pk).update(reliability_score=score and Decimal(score))
        offer = make_node_offer(provider, nodes=2)
        quote = make_quote(customer, [offer])
        data = placement(job(env={"NAME": "ü"}, duration_hours="1.5"), quote_id=str(quote.id))
        made.append(order_place(user=customer, idempotency_key=f"stmt-{len(made)}", data=data)[0])
        return made[-1]

    return make


def fast(on: bool, monkeypatch) -> None:
    monkeypatch.setattr(provision_statements, "ENABLED", on)


def row(order_id: int, *, skip: frozenset[str] = frozenset()) -> dict:
    order = Order.objects.get(pk=order_id)
    return {f.name: getattr(order, f.attname) for f in Order._meta.concrete_fields if f.name not in OWN | skip}


def events(order: Order) -> list[tuple]:
    """The events after placement's two (reserved, queued), this order's own values named so that two compare."""
    order = Order.objects.get(pk=order.pk)
    own = {"offer_id": order.offer_id, "key": order.idempotency_key_for_attempt}

    def same(data: dict) -> dict:
        return {k: f"<{k}>" if k in own and v == own[k] else v for k, v in data.items()}

    return [(e.from_state, e.to_state, e.at, e.actor_id, e.actor_task, e.reason, same(e.data))
            for e in OrderEvent.objects.filter(order=order).order_by("id")[2:]]


def score(order: Order) -> Decimal | None:
    return Provider.objects.get(offers__orders=order).reliability_score


def loaded(order: Order) -> dict:
    names = [f.attname for f in Order._meta.concrete_fields if f.attname not in order.get_deferred_fields()]
    return {name: getattr(order, name) for name in names if name not in {"id", "offer_id", "key_salt"}}


def claim_and_run(order: Order) -> tuple[Order, list[int], str, list[int]]:
    """Both moves with fixed times; the in-memory claim and the statements each sent."""
    with CaptureQueriesContext(connection) as claiming:
        claimed = order_claim_provisioning(order.pk, 1, task=T, now=NOW)
    with CaptureQueriesContext(connection) as starting:
        outcome = order_record_job(order.pk, 1, "job-1", task=T, running=True, message="up", now=UP, known=claimed)
    return claimed, [len(claiming)], outcome, [len(starting)]


def test_both_moves_write_what_the_transactional_path_writes(place, monkeypatch):
    results = {}
    for on in (True, False):
        fast(on, monkeypatch)
        order = place()
        claimed, claim_queries, outcome, run_queries = claim_and_run(order)
        results[on] = {"claimed": loaded(claimed), "deferred": claimed.get_deferred_fields(),
                       "cached": (Order.offer.is_cached(claimed), claimed.offer.accelerator.canonical_name),
                       "outcome": outcome, "row": row(order.pk), "events": events(order), "score": score(order),
                       "queries": claim_queries + run_queries, "in memory": (claimed.state, claimed.running_at)}
    assert results[True]["queries"] == [1, 1]
    assert results[False]["queries"][0] > 1 and results[False]["queries"][1] > 1
    for key in ("claimed", "deferred", "cached", "outcome", "row", "events", "score", "in memory"):
        assert results[True][key] == results[False][key], key
    assert results[True]["outcome"] == "running" and results[True]["score"] == Decimal("0.793")
    assert results[True]["events"] == [
        ("queued", "provisioning", NOW, None, T, "provisioning started", {"attempt": 1, "offer_id": "<offer_id>"}),
        ("provisioning", "running", UP, None, T, "job running",
         {"attempt": 1, "job_ref": "job-1", "key": "<key>", "seconds_to_running": 1000.0, "message": "up",
          "job_created": True})]


def test_the_claim_alone_writes_what_move_writes(place, monkeypatch):
    results = {}
    for on in (True, False):
        fast(on, monkeypatch)
        order = place(score=None)
        before = timezone.now()
        with CaptureQueriesContext(connection) as captured:
            claimed = order_claim_provisioning(order.pk, 1, task=T, now=NOW)
        after = Order.objects.get(pk=order.pk).updated_at
        assert before <= after <= timezone.now() and claimed.updated_at == after  # the clock's, as auto_now
        results[on] = (row(order.pk, skip=frozenset({"updated_at"})), events(order), loaded(claimed).keys(),
                       claimed.state_changed_at, claimed.checked_at, claimed.redrives, claimed.provisioning_at)
        assert ("WITH lazy" in captured[0]["sql"]) is on
    assert results[True] == results[False]
    assert results[True][0]["state"] == "provisioning" and results[True][-1] == NOW


def test_a_claim_for_another_attempt_writes_nothing(place):
    order = place()
    trail, before = events(order), row(order.pk)
    with CaptureQueriesContext(connection) as captured:
        assert order_claim_provisioning(order.pk, 2, task=T, now=NOW) is None
    assert "WITH lazy" in captured[0]["sql"] and len(captured) > 1  # tried, then the transactional path
    assert events(order) == trail and row(order.pk) == before


def test_a_redelivered_claim_resumes_through_the_transactional_path(place):
    order = place()
    first = order_claim_provisioning(order.pk, 1, task=T, now=NOW)
    again = order_claim_provisioning(order.pk, 1, task=T, now=UP)
    assert (first.state, again.state, again.offer.pk) == ("provisioning", "provisioning", order.offer_id)
    assert [e[5] for e in events(order)][-2:] == ["provisioning started",
                                                  "provisioning resumed (task redelivered or re-driven)"]
    assert row(order.pk)["checked_at"] == UP and row(order.pk)["provisioning_at"] == NOW


def test_a_cancelled_order_is_not_claimed(place, customer):
    order = place()
    order_cancel(user=customer, order_id=order.pk)
    trail, before = events(order), row(order.pk)
    assert order_claim_provisioning(order.pk, 1, task=T, now=NOW) is None
    assert events(order) == trail and row(order.pk) == before and before["state"] == "cancelled"
    assert trail[-1][:2] == ("queued", "cancelled")
    with pytest.raises(NotFoundError):
        order_claim_provisioning(10**9, 1, task=T, now=NOW)


def test_a_row_with_another_job_ref_goes_the_transactional_way(place):
    order = place()
    known = order_claim_provisioning(order.pk, 1, task=T, now=NOW)  # read with no job yet
    assert order_record_job(order.pk, 1, "job-1", task=T, now=NOW) == "recorded"  # another step recorded it
    with CaptureQueriesContext(connection) as captured:
        assert order_record_job(order.pk, 1, "job-1", task=T, running=True, now=UP, known=known) == "running"
    assert "WITH lazy" in captured[0]["sql"] and len(captured) > 1
    assert events(order)[-1][1] == "running" and events(order)[-1][6]["job_created"] is False
    assert row(order.pk)["job_ref"] == "job-1" and score(order) == Decimal("0.793")


def test_another_job_than_the_known_one_is_refused(place):
    order = place()
    order_claim_provisioning(order.pk, 1, task=T, now=NOW)
    assert order_record_job(order.pk, 1, "job-1", task=T, now=NOW) == "recorded"
    known, trail = Order.objects.get(pk=order.pk), events(order)
    with CaptureQueriesContext(connection) as captured, pytest.raises(ConflictError):
        order_record_job(order.pk, 1, "job-2", task=T, running=True, now=UP, known=known)
    assert not any("WITH lazy" in q["sql"] for q in captured)  # the transactional path at once
    assert events(order) == trail and row(order.pk)["state"] == "provisioning" and score(order) == Decimal("0.800")


def test_a_stopping_order_is_not_moved_to_running(place, customer):
    order = place()
    known = order_claim_provisioning(order.pk, 1, task=T, now=NOW)
    order_cancel(user=customer, order_id=order.pk)  # provisioning -> stopping
    assert order_record_job(order.pk, 1, "job-1", task=T, running=True, now=UP, known=known) == "recorded"
    assert row(order.pk)["state"] == "stopping" and score(order) == Decimal("0.800")
    assert events(order)[-1][5] == "job created at the provider"


def test_inside_a_transaction_the_transactional_path_runs(place):
    order = place()
    with CaptureQueriesContext(connection) as captured, transaction.atomic():
        assert order_claim_provisioning(order.pk, 1, task=T, now=NOW).state == "provisioning"
    assert not any("WITH lazy" in q["sql"] for q in captured)
    assert any("synchronous_commit" in q["sql"] for q in captured)
