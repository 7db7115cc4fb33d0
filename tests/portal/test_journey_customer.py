"""Journey 1: a customer signs up, asks to serve a 70B model, sees recommendations and the chart, applies a
suggested relaxation, orders, watches the order reach running (a real Celery worker and the simulated driver),
reads its logs and cancels."""

from __future__ import annotations

import re
import time
from decimal import Decimal

import pytest
from django.db.models import F
from playwright.sync_api import expect

from tests.portal.conftest import PASSWORD

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

SERVE_70B = {"workload": {"kind": "llm_inference", "model": "llama-3.1-70b", "precision": "fp16",
                          "context_length": 4096, "concurrent_sequences": 16},
             "duration_hours": 24.0, "objective": "cost", "top_k": 20}


def test_customer_serves_a_70b_model_orders_and_cancels(page, url, orders_worker, shot):
    from marketplace.orders.models import Order, OrderEvent
    from marketplace.portal.recommendations import recommend_preview

    # Sign up.
    page.goto(url("/signup/"))
    page.get_by_label("Username").fill("carol")
    page.get_by_label("Email").fill("carol@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("What do you need to run?")
    expect(page.locator(".tabs a[aria-current=page]")).to_have_text("Serve an LLM")
    expect(page.locator("#id_model")).to_have_value("llama-3.1-70b")

    # Recommendations and the chart, for the template's defaults.
    answer = recommend_preview(SERVE_70B)
    recs = answer["recommendations"]
    assert len(recs) == 20
    rows = page.locator("#recommendations tr.rec")
    expect(rows).to_have_count(20)
    expect(page.locator("#recommendations tr.rec.pareto")).to_have_count(sum(r["pareto"] for r in recs))
    expect(page.locator("#recommend-chart")).to_have_attribute("data-ready", "true")
    expect(rows.first).to_have_attribute("data-offer-id", str(recs[0]["offer_id"]))
    expect(page.locator("#recommendations tr.why .why-text").first).to_have_text(
        recs[0]["why"][:1].upper() + recs[0]["why"][1:])
    shot(page, "recommendations", docs=True, full_page=False)
    # The best ten are shown; the rest one click away.
    expect(rows.nth(9)).to_be_visible()
    expect(rows.nth(10)).to_be_hidden()
    page.get_by_role("button", name="Show all 20 options").click()
    expect(rows.nth(19)).to_be_visible()

    # A price cap nothing meets: an explanation and a suggested relaxation, applied with one click.
    capped = {**SERVE_70B, "max_price_per_hour": "3"}
    capped_answer = recommend_preview(capped)
    assert capped_answer["recommendations"] == []
    relax = next(r for r in capped_answer["relaxations"] if r["constraint"] == "max_price_per_hour")
    page.locator("summary", has_text="Priorities and limits").click()
    page.get_by_label("Max. price per hour, all nodes (USD)").fill("3")
    page.get_by_label("Max. price per hour, all nodes (USD)").press("Tab")
    expect(page.locator("#recommend-empty")).to_be_visible()
    url_before = page.url
    apply = page.locator("#relaxations button[data-apply-field=max_price_per_hour]")
    expect(apply).to_be_visible()
    expect(page.locator("#relaxations")).to_contain_text(relax["effect"])
    relaxed_price = apply.get_attribute("data-apply-value")
    apply.click()
    expect(page.locator("#recommendations tr.rec").first).to_be_visible()
    new_value = page.get_by_label("Max. price per hour, all nodes (USD)").input_value()
    assert new_value == relaxed_price
    relaxed = recommend_preview({**SERVE_70B, "max_price_per_hour": new_value})
    assert relaxed["recommendations"] and relax["cheapest_offer_id"] in [
        r["offer_id"] for r in relaxed["recommendations"]]
    expect(page.locator("#recommendations tr.rec")).to_have_count(len(relaxed["recommendations"]))
    assert page.url == url_before  # results updated in place, no page load

    # Order the best option.
    best = relaxed["recommendations"][0]
    from marketplace.models import Offer

    assert Offer.objects.get(pk=best["offer_id"]).driver == "simulated"
    page.locator("#recommendations tr.rec").first.get_by_role("button", name=re.compile(r"^Order option 1")).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Order 1 node")
    expect(page.locator("#quote")).to_contain_text("Prices held until")
    page.get_by_label("Command").fill("python -m vllm.entrypoints.openai.api_server --model llama-3.1-70b")
    page.get_by_label("Environment").fill("HF_HOME=/data/hf\nMAX_BATCH=16")
    # A declined test card: the decline beside the card; that attempt's order is closed and its capacity freed.
    page.get_by_label("Card (the most it can cost is held; you pay for what runs)").check()
    page.get_by_label("Test card").select_option("pm_card_chargeDeclined")
    page.get_by_role("button", name="Place order").click()
    expect(page.locator("#err-card")).to_have_text("Your card was declined.")
    declined = Order.objects.get(customer__username="carol")
    assert (declined.state, declined.failure_code) == ("failed", "payment_declined")
    # A good test card: the hold is the most the order can cost.
    page.get_by_label("Test card").select_option("pm_card_visa")
    page.get_by_role("button", name="Place order").click()
    expect(page.locator(".messages")).to_contain_text("placed and paid: capacity is reserved and the job is queued")
    order = Order.objects.filter(customer__username="carol").exclude(pk=declined.pk).get()
    assert (order.offer_id, order.nodes, order.env) == (best["offer_id"], best["nodes"],
                                                         {"HF_HOME": "/data/hf", "MAX_BATCH": "16"})
    from marketplace.billing.models import OrderCharge

    charge = OrderCharge.objects.get(order=order)
    hold = (order.node_price_per_hour * order.nodes * order.duration_hours).quantize(Decimal("0.01"))
    assert (charge.method, charge.status, charge.authorized_amount) == ("card", "authorized", hold)
    expect(page.locator("#order-payment")).to_contain_text(f"Card: ${hold:,.2f} held")

    # Live status: the timeline reaches running without reloading the page; logs stream in.
    expect(page.locator("#order-state")).to_have_attribute("data-state", "running", timeout=45_000)
    expect(page.locator("#timeline li[data-to=running]")).to_have_count(1)
    expect(page.locator("#order-logs")).not_to_be_empty(timeout=20_000)
    # Metering reaches the page: the first cent is charged after about ten seconds at this price.
    expect(page.locator("#order-cost")).not_to_have_text("$0.00", timeout=40_000)
    shot(page, "order-timeline", docs=True, full_page=False)

    # Cancel: stopping, then cancelled; the cancel button goes away.
    page.get_by_role("button", name="Cancel order").click()
    expect(page.locator(".messages")).to_contain_text(f"Order {order.pk} is being cancelled")
    expect(page.locator("#order-state")).to_have_attribute("data-state", "cancelled", timeout=30_000)
    expect(page.locator("#cancel-order")).to_have_count(0)
    states = list(OrderEvent.objects.filter(order=order).exclude(from_state=F("to_state"))
                  .values_list("to_state", flat=True))
    assert states[:4] == ["reserved", "queued", "provisioning", "running"]
    assert states[-2:] == ["stopping", "cancelled"]
    expect(page.locator("#invoice-link")).to_have_text(f"Invoice INV-O{order.pk}")
    shot(page, "order-cancelled")

    # Billing settles the cancelled order in the worker. Seconds at $3.77/h come to a few cents, below Stripe's
    # $0.50 minimum charge: the usage is written off and the whole hold released, and the final invoice says so.
    order.refresh_from_db()
    deadline = time.monotonic() + 30
    while OrderCharge.objects.get(order=order).status != "voided":
        assert time.monotonic() < deadline, OrderCharge.objects.get(order=order).status
        time.sleep(0.2)
    charge = OrderCharge.objects.get(order=order)
    assert Decimal("0") < order.metered_usd < Decimal("0.50")
    assert (charge.metered_amount, charge.captured_amount, charge.written_off_amount) == (
        order.metered_usd, Decimal("0.00"), order.metered_usd)
    page.locator("#invoice-link").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Invoice INV-O{order.pk}")
    expect(page.locator("#invoice-status")).to_have_text("final")
    lines = page.locator("#invoice-lines tbody tr")
    expect(lines).to_have_count(2)
    expect(lines.nth(0)).to_contain_text(f"${order.metered_usd:,.2f}")
    expect(lines.nth(1)).to_contain_text("Usage not charged (order voided or below the minimum charge)")
    expect(page.locator("#invoice-total")).to_have_text("$0.00")
    shot(page, "invoice")
