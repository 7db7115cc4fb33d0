"""Reserved capacity is not offered: the engine's snapshot subtracts the nodes held by active reservations, and
reserving or releasing bumps the catalog version so the cached snapshot is rebuilt at once."""

from __future__ import annotations

from decimal import Decimal

import pytest

from marketplace.models import Offer
from marketplace.selectors.snapshot import clear_snapshot_cache, offer_rows
from marketplace.services.catalog_version import catalog_version
from tests.orders.conftest import placement

pytestmark = pytest.mark.django_db
URL = "/api/v1/recommendations/"
ONE_NODE = {"resources": {"accelerator": "H100", "count": 8, "nodes": 1}, "duration_hours": 1, "objective": "cost"}


@pytest.fixture(autouse=True)
def fresh_cache():
    clear_snapshot_cache()
    yield
    clear_snapshot_cache()


def recommended(client) -> list[int]:
    res = client.post(URL, ONE_NODE, format="json")
    assert res.status_code == 200, res.content
    return [r["offer_id"] for r in res.json()["recommendations"]]


def test_a_fully_held_offer_is_not_recommended_until_released(client_for, customer, provider_a, provider_b,
                                                              make_node_offer):
    from marketplace.orders.services.cancel import order_cancel
    from marketplace.orders.services.placement import order_place

    cheap = make_node_offer(provider_a, nodes=2, price="18.0000")
    dear = make_node_offer(provider_b, nodes=2, price="24.0000")
    client = client_for(customer)
    assert recommended(client) == [cheap.id, dear.id]  # the snapshot is now cached

    before = catalog_version()
    first, _ = order_place(user=customer, idempotency_key="hold-1", data=placement(offer_id=cheap.id, nodes=1))
    assert first.state == "queued"
    assert catalog_version() == before + 1  # the reservation bumped it (paying and queueing did not)
    assert recommended(client) == [cheap.id, dear.id]  # one node is still free
    order_place(user=customer, idempotency_key="hold-2", data=placement(offer_id=cheap.id, nodes=1))
    assert recommended(client) == [dear.id]
    assert {r.offer_id: r.nodes_available for r in offer_rows()} == {dear.id: 2}  # no free node: not listed
    assert [r.nodes_available for r in offer_rows(Offer.objects.filter(pk=cheap.pk))] == [0]  # chosen directly

    order_cancel(user=customer, order_id=first.pk)

    assert catalog_version() == before + 3
    assert recommended(client) == [cheap.id, dear.id]
    assert {r.offer_id: r.nodes_available for r in offer_rows()} == {cheap.id: 1, dear.id: 2}


def test_partly_held_offer_shows_its_free_nodes_in_two_queries(customer, provider_a, make_node_offer,
                                                               django_assert_num_queries):
    from marketplace.orders.services.placement import order_place

    offer = make_node_offer(provider_a, nodes=3, price=str(Decimal("18.0000")))
    other = make_node_offer(provider_a, nodes=1, price="19.0000")
    order_place(user=customer, idempotency_key="hold-one", data=placement(offer_id=offer.id, nodes=1))

    with django_assert_num_queries(2):  # the offers, and the held nodes of all of them
        rows = {r.offer_id: r.nodes_available for r in offer_rows()}
    assert rows == {offer.id: 2, other.id: 1}
