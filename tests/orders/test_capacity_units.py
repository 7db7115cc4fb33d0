"""Capacity units' `held` flag: kept with the reservations by the services, repaired by the reconciler, and what
lets reserving find free units through the partial index whatever the number of held units; units kept in step
with an offer whose nodes_available changed behind the services' back."""

from __future__ import annotations

import json

import pytest
from django.db import connection

from marketplace.errors import ConflictError
from marketplace.models import Offer
from marketplace.orders.models import CapacityUnit, Order, Reservation
from marketplace.orders.services.placement import order_place
from marketplace.orders.services.reconciler import reconcile
from marketplace.orders.services.reservations import free_units, repair_held
from marketplace.orders.services.transitions import order_fail
from marketplace.orders.states import State
from tests.orders.conftest import placement

pytestmark = pytest.mark.django_db


def held_indexes(offer) -> list[int]:
    return list(CapacityUnit.objects.filter(offer=offer, held=True).order_by("index").values_list("index", flat=True))


def active_indexes(offer) -> list[int]:
    return sorted(Reservation.objects.filter(offer=offer, active=True).values_list("unit__index", flat=True))


def place(customer, quote, key: str) -> Order:
    return order_place(user=customer, idempotency_key=key, data=placement(quote_id=str(quote.id)))[0]


def test_held_follows_reservations_and_freed_units_are_reused(customer, provider_a, make_node_offer, make_quote):
    offer = make_node_offer(provider_a, nodes=4)
    quote = make_quote(customer, [offer], nodes=2)
    first, second = place(customer, quote, "k1"), place(customer, quote, "k2")
    assert held_indexes(offer) == active_indexes(offer) == [0, 1, 2, 3]
    order_fail(first.pk, code="test", reason="released by the test")
    assert Order.objects.get(pk=first.pk).state == State.FAILED
    assert held_indexes(offer) == active_indexes(offer) == [2, 3]
    assert list(free_units(offer.pk).values_list("index", flat=True)) == [0, 1]
    third = place(customer, quote, "k3")
    assert sorted(Reservation.objects.filter(order=third, active=True).values_list("unit__index", flat=True)) == [0, 1]
    assert held_indexes(offer) == [0, 1, 2, 3] and second.pk != third.pk


def test_the_reconciler_repairs_held_changed_behind_the_services(customer, provider_a, make_node_offer, make_quote):
    offer = make_node_offer(provider_a, nodes=3)
    quote = make_quote(customer, [offer])
    order = place(customer, quote, "k1")
    Reservation.objects.filter(order=order).update(active=False, released_at=order.created_at)  # by hand
    CapacityUnit.objects.filter(offer=offer, index=2).update(held=False)
    Reservation.objects.create(order=order, unit=CapacityUnit.objects.get(offer=offer, index=2), offer=offer,
                               attempt=9)  # by hand, without held
    assert held_indexes(offer) == [0] and active_indexes(offer) == [2]
    report = reconcile()
    assert report.units_repaired == 2
    assert held_indexes(offer) == active_indexes(offer) == [2]
    assert repair_held() == 0
    assert list(free_units(offer.pk).values_list("index", flat=True)) == [0, 1]


def test_nodes_available_changed_without_a_sync_is_caught_before_reserving(customer, provider_a, make_node_offer,
                                                                          make_quote):
    offer = make_node_offer(provider_a, nodes=2)
    quote = make_quote(customer, [offer])
    place(customer, quote, "k1")  # creates units 0 and 1, holds 0
    Offer.objects.filter(pk=offer.pk).update(nodes_available=1)  # shrunk behind the services' back
    with pytest.raises(ConflictError):  # unit 1 is no longer there to take
        place(customer, quote, "k2")
    assert active_indexes(offer) == held_indexes(offer) == [0]  # (the refused placement's sync rolled back with it)
    Offer.objects.filter(pk=offer.pk).update(nodes_available=3)  # grown, no sync
    CapacityUnit.objects.filter(offer=offer, index=1).delete()  # and a unit row gone (less capacity, never more)
    grown = place(customer, quote, "k3")
    assert Reservation.objects.get(order=grown, active=True).unit.index == 1
    assert list(CapacityUnit.objects.filter(offer=offer, retired=False).order_by("index")
                .values_list("index", flat=True)) == [0, 1, 2]
    assert held_indexes(offer) == active_indexes(offer) == [0, 1]


def test_finding_a_free_unit_reads_one_entry_however_many_are_held(customer, provider_a, make_node_offer,
                                                                   make_quote):
    if connection.vendor != "postgresql":
        pytest.skip("reads the PostgreSQL plan")
    offer = make_node_offer(provider_a, nodes=400)
    quote = make_quote(customer, [offer])
    for i in range(300):
        place(customer, quote, f"k{i}")
    assert len(held_indexes(offer)) == 300
    sql, params = free_units(offer.pk).values_list("pk", flat=True)[:1].query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # the test table is small; production's are not
        cursor.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0]
    plan = json.loads(plan) if isinstance(plan, str) else plan
    nodes = list(walk(plan[0]["Plan"]))
    unit_scans = [n for n in nodes if n.get("Relation Name") == "orders_capacityunit"]
    assert [n.get("Index Name") for n in unit_scans] == ["capacity_unit_free"]
    assert unit_scans[0]["Actual Rows"] == 1  # not the 300 held units below the first free one


def walk(node: dict):
    yield node
    for child in node.get("Plans", []):
        yield from walk(child)


def test_a_unit_whose_held_flag_drifted_is_not_booked_twice(customer, provider_a, make_node_offer, make_quote):
    offer = make_node_offer(provider_a, nodes=3)
    quote = make_quote(customer, [offer])
    first = place(customer, quote, "k1")
    CapacityUnit.objects.filter(offer=offer, index=0).update(held=False)  # drift: unit 0 is still reserved
    second = place(customer, quote, "k2")  # the guard drops unit 0; the fallback finds unit 1
    assert Reservation.objects.get(order=first, active=True).unit.index == 0
    assert Reservation.objects.get(order=second, active=True).unit.index == 1
    assert active_indexes(offer) == [0, 1]
