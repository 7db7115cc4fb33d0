"""Placing orders (service level, real database): reservation, idempotency, expiry, capacity rules."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from marketplace.errors import ConflictError, NotFoundError, PermissionDeniedError
from marketplace.orders.models import CapacityUnit, Order, OrderEvent, OutboxMessage, Reservation
from marketplace.orders.services.placement import order_place
from marketplace.orders.services.reconciler import reconcile
from marketplace.orders.services.reservations import capacity_sync, free_units
from tests.orders.conftest import job, placement

pytestmark = pytest.mark.django_db


@pytest.fixture
def offer_a(provider_a, make_node_offer):
    return make_node_offer(provider_a, nodes=2, price="20.0000")


@pytest.fixture
def offer_b(provider_b, make_node_offer):
    return make_node_offer(provider_b, nodes=1, price="24.5000")


@pytest.fixture
def sent(monkeypatch):
    """The messages outbox.send_task publishes (recorded instead of sent)."""
    from marketplace.orders.services import outbox

    messages: list[tuple[str, list]] = []
    monkeypatch.setattr(outbox, "send_task", lambda task, args, countdown=0: messages.append((task, list(args))))
    return messages


def test_place_from_quote_reserves_and_queues(customer, offer_a, offer_b, make_quote, sent,
                                              django_capture_on_commit_callbacks):
    quote = make_quote(customer, [offer_a, offer_b], nodes=2)
    with django_capture_on_commit_callbacks(execute=True):
        order, created = order_place(user=customer, idempotency_key="k1", data=placement(quote_id=str(quote.id)))

    assert created is True
    order.refresh_from_db()
    assert (order.state, order.attempt, order.offer_id, order.nodes) == ("queued", 1, offer_a.id, 2)
    assert order.plan_index == 0
    assert order.node_price_per_hour == Decimal("20.0000")
    assert order.price_per_hour == Decimal("40.0000")
    assert order.accelerator_count == 8
    assert order.driver == "simulated"
    assert (order.command, order.env, order.duration_hours) == ("python train.py", {"EPOCHS": "3"}, Decimal("1"))
    assert [p["offer_id"] for p in order.plan] == [offer_a.id, offer_b.id]
    held = Reservation.objects.filter(order=order, active=True)
    assert sorted(held.values_list("unit__index", flat=True)) == [0, 1]
    assert set(held.values_list("expires_at", flat=True)) == {None}  # confirmed when queued
    events = list(OrderEvent.objects.filter(order=order).values_list("from_state", "to_state", "actor__username"))
    assert events == [("", "reserved", "customer"), ("reserved", "queued", "customer")]
    # Its provisioning is published after commit, with no outbox row (outbox.send_after_commit).
    assert sent == [("workers.tasks.orders.provision", [order.id, 1])]
    assert not OutboxMessage.objects.exists()


def test_a_provision_message_that_cannot_be_published_is_kept_for_the_reconciler(
        customer, offer_a, make_quote, monkeypatch, django_capture_on_commit_callbacks):
    from kombu.exceptions import OperationalError

    from marketplace.orders.services import outbox

    def redis_down(*args, **kwargs):
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(outbox, "send_task", redis_down)
    with django_capture_on_commit_callbacks(execute=True):
        order, _ = order_place(user=customer, idempotency_key="k1",
                               data=placement(quote_id=str(make_quote(customer, [offer_a]).id)))
    row = OutboxMessage.objects.get()
    assert (row.task, row.args, row.attempts) == ("workers.tasks.orders.provision", [order.pk, 1], 1)
    assert "Connection refused" in row.last_error
    assert Order.objects.get(pk=order.pk).state == "queued"


def test_same_key_same_body_is_the_same_order(customer, offer_a, make_quote, sent,
                                              django_capture_on_commit_callbacks):
    quote = make_quote(customer, [offer_a])
    with django_capture_on_commit_callbacks(execute=True):
        first, created = order_place(user=customer, idempotency_key="k1", data=placement(quote_id=str(quote.id)))
    with django_capture_on_commit_callbacks(execute=True):
        again, created_again = order_place(user=customer, idempotency_key="k1",
                                           data=placement(quote_id=str(quote.id)))
    assert (created, created_again, again.pk) == (True, False, first.pk)
    assert Order.objects.count() == 1
    assert Reservation.objects.filter(active=True).count() == 1
    assert sent == [("workers.tasks.orders.provision", [first.pk, 1])]  # published once


def test_same_key_other_body_is_409_and_changes_nothing(customer, offer_a, make_quote):
    quote = make_quote(customer, [offer_a])
    first, _ = order_place(user=customer, idempotency_key="k1", data=placement(quote_id=str(quote.id)))
    with pytest.raises(ConflictError) as err:
        order_place(user=customer, idempotency_key="k1",
                    data=placement(job(command="other"), quote_id=str(quote.id)))
    assert (err.value.code, err.value.extra) == ("idempotency_key_reused", {"order_id": first.pk})
    assert Order.objects.count() == 1
    assert Reservation.objects.filter(active=True).count() == 1


def test_the_same_key_of_another_customer_is_independent(customer, make_user, offer_a, make_quote):
    other = make_user("other")
    mine, _ = order_place(user=customer, idempotency_key="k1",
                          data=placement(quote_id=str(make_quote(customer, [offer_a]).id)))
    theirs, created = order_place(user=other, idempotency_key="k1",
                                  data=placement(quote_id=str(make_quote(other, [offer_a]).id)))
    assert created and theirs.pk != mine.pk
    assert Reservation.objects.filter(active=True).count() == 2


def test_equal_numbers_written_differently_are_the_same_body(customer, offer_a, make_quote):
    quote = make_quote(customer, [offer_a])
    first, _ = order_place(user=customer, idempotency_key="k1",
                           data=placement(job(duration_hours="2"), quote_id=str(quote.id)))
    again, created = order_place(user=customer, idempotency_key="k1",
                                 data=placement(job(duration_hours="2.000"), quote_id=str(quote.id)))
    assert (again.pk, created) == (first.pk, False)


def test_no_capacity_is_409_and_writes_nothing(customer, offer_b, make_quote):
    quote = make_quote(customer, [offer_b])
    order_place(user=customer, idempotency_key="k1", data=placement(quote_id=str(quote.id)))
    before = (Order.objects.count(), OrderEvent.objects.count(), Reservation.objects.count(),
              OutboxMessage.objects.count())
    with pytest.raises(ConflictError) as err:
        order_place(user=customer, idempotency_key="k2", data=placement(quote_id=str(quote.id)))
    assert (err.value.code, err.value.extra) == ("no_capacity", {"offers": [offer_b.id]})
    assert (Order.objects.count(), OrderEvent.objects.count(), Reservation.objects.count(),
            OutboxMessage.objects.count()) == before


def test_held_nodes_per_offer(customer, offer_a, offer_b, make_quote):
    from marketplace.orders.selectors import held_nodes

    order_place(user=customer, idempotency_key="k1", data=placement(quote_id=str(make_quote(customer, [offer_a],
                                                                                              nodes=2).id)))
    order_place(user=customer, idempotency_key="k2", data=placement(quote_id=str(make_quote(customer, [offer_b]).id)))
    assert held_nodes([offer_a.id, offer_b.id, 999]) == {offer_a.id: 2, offer_b.id: 1}


def test_a_full_first_alternative_falls_through_to_the_next(customer, offer_a, offer_b, make_quote):
    quote = make_quote(customer, [offer_b, offer_a])
    first, _ = order_place(user=customer, idempotency_key="k1", data=placement(quote_id=str(quote.id)))
    second, _ = order_place(user=customer, idempotency_key="k2", data=placement(quote_id=str(quote.id)))
    assert (first.offer_id, second.offer_id) == (offer_b.id, offer_a.id)
    second.refresh_from_db()
    assert (second.plan_index, second.node_price_per_hour) == (1, Decimal("20.0000"))
    placed = OrderEvent.objects.get(order=second, to_state="reserved")
    assert placed.data["skipped_offers"] == [offer_b.id]


def test_another_customers_quote_is_404(customer, make_user, offer_a, make_quote):
    quote = make_quote(make_user("other"), [offer_a])
    with pytest.raises(NotFoundError):
        order_place(user=customer, idempotency_key="k1", data=placement(quote_id=str(quote.id)))
    assert Order.objects.count() == 0


def test_provider_members_cannot_place(member_a, offer_a, make_quote):
    quote = make_quote(member_a, [offer_a])
    with pytest.raises(PermissionDeniedError):
        order_place(user=member_a, idempotency_key="k1", data=placement(quote_id=str(quote.id)))
    assert Order.objects.count() == 0


def test_unconfirmed_reservation_expires_and_frees_capacity(customer, offer_b, make_quote):
    quote = make_quote(customer, [offer_b])
    order, _ = order_place(user=customer, idempotency_key="k1", data=placement(quote_id=str(quote.id)), queue=False)
    assert order.state == "reserved"
    assert free_units(offer_b.id).count() == 0
    assert reconcile(now=timezone.now() + timedelta(seconds=60)).expired == 0  # TTL (600 s) not over yet

    report = reconcile(now=timezone.now() + timedelta(seconds=601))

    assert report.expired == 1
    order.refresh_from_db()
    assert (order.state, order.failure_code) == ("expired", "reservation_expired")
    assert free_units(offer_b.id).count() == 1
    assert Reservation.objects.get(order=order).release_reason == "order expired"
    assert list(OrderEvent.objects.filter(order=order).values_list("from_state", "to_state", "actor_task")) == [
        ("", "reserved", ""), ("reserved", "expired", "reconciler")]


@pytest.mark.db_engine
def test_the_database_refuses_a_second_active_reservation_of_a_unit(customer, offer_b, make_quote):
    quote = make_quote(customer, [offer_b])
    order, _ = order_place(user=customer, idempotency_key="k1", data=placement(quote_id=str(quote.id)))
    held = Reservation.objects.get(order=order)
    with pytest.raises(IntegrityError), transaction.atomic():
        Reservation.objects.create(order=order, unit=held.unit, offer=offer_b, attempt=2)
    assert Reservation.objects.filter(unit=held.unit, active=True).count() == 1


def test_units_follow_nodes_available(customer, offer_a, make_quote):
    quote = make_quote(customer, [offer_a])
    order, _ = order_place(user=customer, idempotency_key="k1", data=placement(quote_id=str(quote.id)))
    offer_a.nodes_available = 4
    offer_a.save()
    capacity_sync(offer_a)
    live = CapacityUnit.objects.filter(offer=offer_a, retired=False)
    assert list(live.values_list("index", flat=True)) == [0, 1, 2, 3]
    assert list(free_units(offer_a.id).values_list("index", flat=True)) == [1, 2, 3]
    offer_a.nodes_available = 1  # shrinks below what is held: unit 0 stays held by the order, nothing is free
    offer_a.save()
    capacity_sync(offer_a)
    assert list(CapacityUnit.objects.filter(offer=offer_a, retired=False).values_list("index", flat=True)) == [0]
    assert free_units(offer_a.id).count() == 0
    with pytest.raises(ConflictError):
        order_place(user=customer, idempotency_key="k2", data=placement(quote_id=str(quote.id)))
    assert Reservation.objects.get(order=order).active is True
