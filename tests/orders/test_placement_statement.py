"""Placement paid by credit in one statement on PostgreSQL (marketplace/orders/services/placement_statement.py) and
its pre-transaction reads in one statement (placement_reads.py): the same rows as the ORM path, in fewer trips."""

from __future__ import annotations

import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from marketplace.billing.models import OrderCharge
from marketplace.errors import ConflictError, NotFoundError
from marketplace.models import CatalogVersion
from marketplace.orders.models import CapacityUnit, Order, OrderEvent, OutboxMessage, Reservation
from marketplace.orders.services import placement_statement
from marketplace.orders.services.placement import order_place
from tests.orders.conftest import job, placement

pytestmark = pytest.mark.django_db
postgres_only = pytest.mark.skipif("connection.vendor != 'postgresql'", reason="the one-statement path is PostgreSQL's")

ORDER_VARYING = {"id", "idempotency_key", "request_hash", "key_salt", "created_at", "updated_at"}
CHARGE_VARYING = {"id", "order_id", "created_at", "updated_at"}


@pytest.fixture
def offer(provider_a, make_node_offer):
    return make_node_offer(provider_a, nodes=10, price="20.0000")


def _written(order_id: int) -> dict:
    """Every row placement wrote for the order, less what differs between two orders by nature."""
    order = Order.objects.filter(pk=order_id).values().get()
    charge = OrderCharge.objects.filter(order_id=order_id).values().get()
    events = list(OrderEvent.objects.filter(order_id=order_id).order_by("id")
                  .values("from_state", "to_state", "at", "actor_id", "actor_task", "reason", "data"))
    for event in events:
        event["data"].pop("units", None)
    reservations = list(Reservation.objects.filter(order_id=order_id)
                        .values("offer_id", "attempt", "active", "expires_at", "released_at", "release_reason"))
    units = Reservation.objects.filter(order_id=order_id).values_list("unit_id", flat=True)
    return {"order": {k: v for k, v in order.items() if k not in ORDER_VARYING},
            "charge": {k: v for k, v in charge.items() if k not in CHARGE_VARYING},
            "events": events, "reservations": reservations,
            "held": list(CapacityUnit.objects.filter(pk__in=units).values_list("held", flat=True)),
            "outbox": list(OutboxMessage.objects.filter(args=[order_id, 1]).values_list("task", "countdown"))}


@postgres_only
def test_the_statement_writes_what_the_orm_path_writes(customer, offer, make_quote, monkeypatch):
    quote = make_quote(customer, [offer], nodes=2)
    now = timezone.now()
    order_place(user=customer, idempotency_key="warm", data=placement(quote_id=str(quote.id)), now=now)  # units made
    monkeypatch.setattr(placement_statement, "usable", lambda: False)
    version = CatalogVersion.objects.get().version
    by_orm, _ = order_place(user=customer, idempotency_key="orm", data=placement(quote_id=str(quote.id)), now=now)
    assert CatalogVersion.objects.get().version == version + 1
    monkeypatch.undo()
    with CaptureQueriesContext(connection) as captured:
        by_statement, _ = order_place(user=customer, idempotency_key="one", data=placement(quote_id=str(quote.id)),
                                      now=now)
    written = [q["sql"] for q in captured.captured_queries if 'ord AS (INSERT INTO "orders_order"' in q["sql"]]
    assert len(written) == 1 and written[0].startswith("WITH ")  # the path was taken
    assert CatalogVersion.objects.get().version == version + 2

    assert _written(by_statement.pk) == _written(by_orm.pk)
    assert _written(by_statement.pk)["outbox"] == []  # published after commit (test_placement.py)
    units = sorted(Reservation.objects.filter(order=by_statement).values_list("unit_id", flat=True))
    reserved = OrderEvent.objects.filter(order=by_statement).order_by("id").first()
    assert reserved.data["units"] == units and len(units) == 2
    # Nobody else holds those units; all three orders hold six different units.
    assert Reservation.objects.filter(active=True).values("unit_id").distinct().count() == 6
    # The instance returned is the row as written (the API renders it without reading it back).
    stored = Order.objects.get(pk=by_statement.pk)
    assert (by_statement.state, by_statement.created_at, by_statement.key_salt) == (
        stored.state, stored.created_at, stored.key_salt)


@postgres_only
def test_placement_runs_four_statements(customer, offer, make_quote):
    """In a test's transaction: the reads (the first alternative's offer with them), a savepoint, the write (with
    the free units, locked), the release. No offer lock."""
    quote = make_quote(customer, [offer])
    order_place(user=customer, idempotency_key="warm", data=placement(quote_id=str(quote.id)))
    with CaptureQueriesContext(connection) as captured:
        order_place(user=customer, idempotency_key="k", data=placement(quote_id=str(quote.id)))
    kinds = [q["sql"].split()[0] for q in captured.captured_queries]
    assert kinds == ["SELECT", "SAVEPOINT", "WITH", "RELEASE"]
    assert "FOR UPDATE SKIP LOCKED" in captured.captured_queries[2]["sql"]


@postgres_only
def test_a_full_first_offer_falls_back_to_the_next_alternative(customer, provider_b, offer, make_quote,
                                                               make_node_offer):
    small = make_node_offer(provider_b, nodes=1, price="10.0000")
    quote = make_quote(customer, [small, offer])
    first, _ = order_place(user=customer, idempotency_key="a", data=placement(quote_id=str(quote.id)))
    second, _ = order_place(user=customer, idempotency_key="b", data=placement(quote_id=str(quote.id)))
    assert (first.offer_id, second.offer_id) == (small.pk, offer.pk)
    skipped = OrderEvent.objects.filter(order=second, to_state="reserved").get().data["skipped_offers"]
    assert skipped == [small.pk]


def test_reads_replay_the_key_and_refuse_another_body(customer, offer, make_quote):
    quote = make_quote(customer, [offer])
    first, created = order_place(user=customer, idempotency_key="k", data=placement(quote_id=str(quote.id)))
    again, created_again = order_place(user=customer, idempotency_key="k", data=placement(quote_id=str(quote.id)))
    assert (created, created_again, again.pk) == (True, False, first.pk)
    with pytest.raises(ConflictError) as refused:
        order_place(user=customer, idempotency_key="k", data=placement(job(command="other"), quote_id=str(quote.id)))
    assert refused.value.code == "idempotency_key_reused"


def test_reads_do_not_give_another_customers_quote(customer, make_user, offer, make_quote):
    other = make_user("other-customer")
    quote = make_quote(other, [offer])
    with pytest.raises(NotFoundError):
        order_place(user=customer, idempotency_key="k", data=placement(quote_id=str(quote.id)))
    with pytest.raises(NotFoundError):
        order_place(user=customer, idempotency_key="k2", data=placement(quote_id=str(uuid.uuid4())))
    assert not Order.objects.exists()


# --- without the offer's lock: the units are locked instead (placement.py `_place_by_statement`) ---------------

@pytest.fixture
def other_connection():
    """A second PostgreSQL session (the test's rows are committed: transaction=True), for holding locks."""
    import psycopg

    from tests.worker_process import database_url_of

    connection.ensure_connection()
    with psycopg.connect(database_url_of(connection.settings_dict)) as other:
        yield other
        other.rollback()


def _place_waiting_at_most_1s(customer, quote, key: str):
    """order_place with a 1 s lock timeout on this session: a placement that waited for a lock fails."""
    def lock_timeout(value: str) -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT set_config('lock_timeout', %s, false)", [value])

    lock_timeout("1s")
    try:
        return order_place(user=customer, idempotency_key=key, data=placement(quote_id=str(quote.id)))
    finally:
        lock_timeout("0")


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_placement_does_not_wait_for_the_offer_lock(customer, offer, make_quote, other_connection):
    """An offer locked by another transaction (an offer edit, a placement through the ORM, a failover) does not
    hold up a placement by credit: with a 1 s lock timeout it would fail if it waited."""
    quote = make_quote(customer, [offer])
    order_place(user=customer, idempotency_key="warm", data=placement(quote_id=str(quote.id)))
    other_connection.execute('SELECT 1 FROM "marketplace_offer" WHERE "id" = %s FOR NO KEY UPDATE', [offer.pk])
    order, created = _place_waiting_at_most_1s(customer, quote, "k")
    assert created and Order.objects.get(pk=order.pk).state == "queued"


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_a_unit_another_transaction_holds_is_skipped(customer, offer, make_quote, other_connection):
    """Unit 1 (the next free one) locked by another transaction (a placement in flight): the placement takes unit
    2 without waiting; once that transaction is gone, unit 1 is the next one taken."""
    quote = make_quote(customer, [offer])
    order_place(user=customer, idempotency_key="warm", data=placement(quote_id=str(quote.id)))  # units made: 0 held
    unit1 = CapacityUnit.objects.get(offer=offer, index=1)
    other_connection.execute('SELECT 1 FROM "orders_capacityunit" WHERE "id" = %s FOR UPDATE', [unit1.pk])
    first, _ = _place_waiting_at_most_1s(customer, quote, "a")
    assert list(Reservation.objects.filter(order=first).values_list("unit__index", flat=True)) == [2]
    other_connection.rollback()
    second, _ = order_place(user=customer, idempotency_key="b", data=placement(quote_id=str(quote.id)))
    assert list(Reservation.objects.filter(order=second).values_list("unit__index", flat=True)) == [1]
    assert first.state == second.state == "queued"


@postgres_only
@pytest.mark.parametrize("change", [{"status": "unlisted"}, {"nodes_available": 9}])
def test_an_offer_changed_since_it_was_read_is_not_placed_by_the_statement(customer, offer, make_quote, change):
    """The statement checks the offer as of itself: unlisted, or its nodes changed, after the caller read it,
    nothing is written (the caller then takes the ORM path, which locks the offer and reads it again)."""
    from marketplace.models import Offer
    from marketplace.orders.services.placement import _place_by_statement
    from marketplace.orders.services.placement_reads import placement_reads

    quote = make_quote(customer, [offer])
    order_place(user=customer, idempotency_key="warm", data=placement(quote_id=str(quote.id)))
    data = placement(quote_id=str(quote.id))
    read = placement_reads(customer, "k", str(quote.id))
    assert read.offer is not None and read.offer.pk == offer.pk and read.offer.provider.pk == offer.provider_id
    Offer.objects.filter(pk=offer.pk).update(**change)
    before = (Order.objects.count(), Reservation.objects.count(), OutboxMessage.objects.count())
    assert _place_by_statement(customer, "k", data.hash(), quote, data.job, read.offer, now=timezone.now()) is None
    assert (Order.objects.count(), Reservation.objects.count(), OutboxMessage.objects.count()) == before
