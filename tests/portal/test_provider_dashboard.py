"""The provider dashboard after real orders ran on the provider's capacity (a real worker, the simulated driver):
utilisation, earnings (from the ledger), orders by outcome and the reliability score, as charts and figures."""

from __future__ import annotations

import json
import time
from decimal import Decimal

import pytest
from playwright.sync_api import expect

from tests.portal.conftest import sign_in

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def _place(customer, offer, key: str):
    from marketplace.orders.services.placement import JobInput, PaymentInput, PlacementInput, order_place

    job = JobInput(command="python train.py", duration_hours=Decimal("1"))
    order, created = order_place(user=customer, idempotency_key=key,
                                 data=PlacementInput(job=job, offer_id=offer.pk, nodes=1,
                                                     payment=PaymentInput(method="credit")))
    assert created
    return order


def _wait_finished(order_ids: list[int], timeout: float = 60) -> None:
    from marketplace.orders.models import Order

    deadline = time.monotonic() + timeout
    while Order.objects.filter(pk__in=order_ids, state__in=["completed", "failed", "cancelled"]).count() < len(
            order_ids):
        assert time.monotonic() < deadline, list(Order.objects.filter(pk__in=order_ids).values_list("pk", "state"))
        time.sleep(0.2)


def test_provider_dashboard_after_orders_ran(page, url, orders_worker, shot):
    from marketplace.billing.models import AccountKind, EntryKind, JournalLine
    from marketplace.billing.services.ledger import sum_lines
    from marketplace.models import Offer, Provider, User
    from marketplace.orders.models import Order
    from marketplace.orders.services.drivers import offer_external_id

    provider = Provider.objects.get(slug="demo-gpu-host")
    offers = {o.name: o for o in Offer.objects.filter(provider=provider, status="listed")}
    assert set(offers) == {"rtx4090.1x", "rtx4090.4x", "l40s.8x"}
    sim = orders_worker.sim
    # Seconds of use earn cents: the $6.40/h node runs 15 s (about 3 cents), the small one 6 s, one start fails.
    sim.configure_offer(offer_external_id(offers["rtx4090.1x"]), run_duration_s=6.0)
    sim.configure_offer(offer_external_id(offers["l40s.8x"]), run_duration_s=15.0)
    sim.configure_offer(offer_external_id(offers["rtx4090.4x"]), failure_rate=1.0)
    alice = User.objects.get(username="alice")
    # Paid from prepaid credit (no minimum charge, so even seconds of use are earned): a top-up with a test card,
    # credited when the worker has processed Stripe's webhook.
    from marketplace.billing.selectors.billing import credit_summary
    from marketplace.billing.services.topups import topup_create

    topup_create(alice, amount=Decimal("20.00"), payment_method="pm_card_visa")
    deadline = time.monotonic() + 30
    while credit_summary(alice)["balance"] != Decimal("20.00"):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    placed = [_place(alice, offers[name], f"dash-{name}") for name in ("rtx4090.1x", "rtx4090.4x", "l40s.8x")]
    _wait_finished([o.pk for o in placed])
    from marketplace.billing.models import OrderCharge

    deadline = time.monotonic() + 30  # billing settles each finished order in the worker
    while OrderCharge.objects.filter(order__in=placed, status__in=["settled", "voided"]).count() < 3:
        assert time.monotonic() < deadline, list(OrderCharge.objects.values_list("order_id", "status"))
        time.sleep(0.2)
    states = dict(Order.objects.filter(pk__in=[o.pk for o in placed]).values_list("offer__name", "state"))
    assert states == {"rtx4090.1x": "completed", "l40s.8x": "completed", "rtx4090.4x": "failed"}
    provider.refresh_from_db()

    sign_in(page, url, "bob", "demo-pass-123")
    expect(page.get_by_role("heading", level=1)).to_have_text(provider.name)
    for chart in ("utilisation-chart", "earnings-chart", "orders-chart", "reliability-chart"):
        expect(page.locator(f"#{chart}")).to_have_attribute("data-ready", "true")
    expect(page.locator("#orders-total")).to_have_text("3")
    expect(page.locator("#dashboard-charts")).to_contain_text("All time: 2 completed · 1 failed · 0 cancelled")
    expect(page.locator("#reliability-score")).to_have_text(f"{float(provider.reliability_score) * 100:.0f}%")

    # The chart data: this hour's utilisation is what the two runs used of the 13 listed accelerators.
    utilisation = json.loads(page.locator("#utilisation-data").text_content())
    assert len(utilisation["labels"]) == 24 and utilisation["datasets"][0]["data"][-1] > 0
    orders_chart = json.loads(page.locator("#orders-data").text_content())
    assert {d["label"]: d["data"][-1] for d in orders_chart["datasets"]} == {
        "completed": 2, "failed": 1, "cancelled": 0, "active": 0}
    # Earnings agree with the ledger: every line on the provider's payable account except transfers out.
    earned = -sum_lines(JournalLine.objects.filter(account__kind=AccountKind.PROVIDER_PAYABLE,
                                                   account__provider=provider)
                        .exclude(entry__kind__in=[EntryKind.TRANSFER, EntryKind.TRANSFER_REVERSAL]))
    assert earned > 0
    expect(page.locator("#earned-total")).to_have_text(f"${earned:,.2f}")
    expect(page.locator("#provider-orders tbody tr")).to_have_count(3)

    # The last hour, by minute: the runs show as utilisation; the 14-day view keeps the same totals.
    page.get_by_role("link", name="last hour").click()
    expect(page.locator("#orders-total")).to_have_text("3")
    minutes = json.loads(page.locator("#utilisation-data").text_content())["datasets"][0]["data"]
    assert len(minutes) == 60 and sum(minutes) > 0
    expect(page.locator("#utilisation-chart")).to_have_attribute("data-ready", "true")
    shot(page, "provider-dashboard", docs=True, full_page=False)
    page.get_by_role("link", name="last 14 days").click()
    expect(page.locator("#orders-total")).to_have_text("3")
    assert len(json.loads(page.locator("#utilisation-data").text_content())["labels"]) == 14
