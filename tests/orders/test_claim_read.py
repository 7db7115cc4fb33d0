"""The claim read (claim_read.py, one SQL statement): the same order, offer and accelerator values the ORM reads,
typed by the same converters (JSON env, Decimal duration, aware datetimes), the rest deferred; None for no order;
on PostgreSQL the order row is locked (FOR UPDATE OF the order only)."""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest
from django.db import connection, connections, transaction
from django.utils import timezone

from marketplace.orders.models import Order
from marketplace.orders.services.claim_read import ACCELERATOR_FIELDS, OFFER_FIELDS, ORDER_FIELDS, claim_read
from marketplace.orders.services.placement import order_place
from tests.orders.conftest import job, placement


def _place(customer, make_quote, offer) -> Order:
    quote = make_quote(customer, [offer])
    data = placement(job(env={"EPOCHS": "3", "NAME": "ü"}, duration_hours="1.5"), quote_id=str(quote.id))
    return order_place(user=customer, idempotency_key="claim-1", data=data)[0]


def _values(instance, names) -> dict:
    return {name: getattr(instance, instance._meta.get_field(name).attname) for name in names}


@pytest.mark.django_db
def test_the_claim_read_matches_the_orm(customer, provider_a, make_node_offer, make_quote):
    offer = make_node_offer(provider_a, nodes=2)
    order = _place(customer, make_quote, offer)
    Order.objects.filter(pk=order.pk).update(provisioning_at=timezone.now(), job_ref="job-7")
    with transaction.atomic():
        read = claim_read(order.pk)
    orm = Order.objects.select_related("offer__accelerator").get(pk=order.pk)
    assert _values(read, ORDER_FIELDS) == _values(orm, ORDER_FIELDS)
    assert _values(read.offer, OFFER_FIELDS) == _values(orm.offer, OFFER_FIELDS)
    assert _values(read.offer.accelerator, ACCELERATOR_FIELDS) == _values(orm.offer.accelerator, ACCELERATOR_FIELDS)
    assert read.env == {"EPOCHS": "3", "NAME": "ü"} and read.duration_hours == Decimal("1.5000")
    assert read.provisioning_at.tzinfo is not None and read.job_ref == "job-7"
    assert {"plan", "customer_id", "metered_usd"} <= read.get_deferred_fields()
    assert claim_read(10**9) is None


@pytest.mark.django_db(transaction=True)
def test_the_claim_read_locks_the_order_row(customer, provider_a, make_node_offer, make_quote):
    if connection.vendor != "postgresql":
        pytest.skip("row locks: PostgreSQL (SQLite serialises writers with BEGIN IMMEDIATE)")
    order = _place(customer, make_quote, make_node_offer(provider_a, nodes=2))
    refused: list[str] = []

    def other() -> None:
        try:
            with transaction.atomic(), connections["default"].cursor() as cursor:
                cursor.execute("SET LOCAL lock_timeout = '100ms'")
                cursor.execute('SELECT 1 FROM "orders_order" WHERE "id" = %s FOR UPDATE', [order.pk])
        except Exception as exc:  # the lock timeout
            refused.append(type(exc).__name__)
        finally:
            connections["default"].close()

    with transaction.atomic():
        assert claim_read(order.pk) is not None
        thread = threading.Thread(target=other)
        thread.start()
        thread.join()
    assert refused == ["OperationalError"]
