"""Billing pages: a prepaid-credit top-up with a test card is credited once Stripe's webhook has been processed
by the worker (the page polls until then); a declined test card shows its message beside the field."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest
from playwright.sync_api import expect

from tests.portal.conftest import sign_in

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_top_up_credit_with_a_test_card(page, url, orders_worker, shot):
    from marketplace.billing.models import TopUp
    from marketplace.billing.selectors.billing import credit_summary
    from marketplace.models import User

    alice = User.objects.get(username="alice")
    sign_in(page, url, "alice", "demo-pass-123")
    page.goto(url("/billing/"))
    expect(page.locator("#credit-balance")).to_have_text("$0.00")

    # A declined card: the decline beside the field, no credit.
    page.get_by_label("Amount (USD)").fill("25.00")
    page.get_by_label("Test card").select_option("pm_card_chargeDeclined")
    page.get_by_role("button", name="Top up").click()
    expect(page.locator("#err-payment_method")).to_have_text("Your card was declined.")
    assert TopUp.objects.get(customer=alice).status == "failed"

    # A good card: processing, then credited when the webhook has gone through the worker.
    page.get_by_label("Amount (USD)").fill("40.00")
    page.get_by_label("Test card").select_option("pm_card_visa")
    page.get_by_role("button", name="Top up").click()
    expect(page.locator(".messages")).to_contain_text("Top-up of $40.00 sent to Stripe (test mode)")
    expect(page.locator("#credit-balance")).to_have_text("$40.00", timeout=30_000)
    expect(page.locator("#topups tbody tr").first).to_have_attribute("data-status", "succeeded")
    assert credit_summary(alice)["balance"] == Decimal("40.00")
    expect(page.locator("#invoices")).to_contain_text("INV-M")
    shot(page, "billing-topup")

    # The card saved for orders.
    page.get_by_label("Card for orders (test mode)").select_option("pm_card_mastercard")
    page.get_by_role("button", name="Save card").click()
    expect(page.locator("#credit")).to_contain_text("Mastercard •••• 4444 (succeeds)")
    assert credit_summary(alice)["default_payment_method"] == "pm_card_mastercard"

    # An order paid from credit, straight from the offer browser: it runs, is cancelled, and is settled from the
    # credit at exactly its metered cost (credit has no minimum charge).
    from marketplace.billing.models import OrderCharge
    from marketplace.orders.models import Order

    page.goto(url("/offers/?q=provider=demo-gpu-host+accelerator=L40S"))
    page.get_by_role("link", name="Order l40s.8x from Demo GPU Host").click()
    page.get_by_role("button", name="Get a quote").click()
    page.get_by_label("Command").fill("python bench.py")
    page.get_by_label("Prepaid credit").check()
    expect(page.locator("#credit-available")).to_contain_text("$40.00")
    page.get_by_role("button", name="Place order").click()
    expect(page.locator("#order-state")).to_have_attribute("data-state", "running", timeout=45_000)
    expect(page.locator("#order-payment")).to_contain_text("Prepaid credit")
    expect(page.locator("#order-cost")).not_to_have_text("$0.00", timeout=40_000)
    page.get_by_role("button", name="Cancel order").click()
    expect(page.locator("#order-state")).to_have_attribute("data-state", "cancelled", timeout=30_000)
    order = Order.objects.get(customer=alice)
    deadline = time.monotonic() + 30
    while OrderCharge.objects.get(order=order).status != "settled":
        assert time.monotonic() < deadline, OrderCharge.objects.get(order=order).status
        time.sleep(0.2)
    order.refresh_from_db()
    charge = OrderCharge.objects.get(order=order)
    assert (charge.method, charge.usage_amount) == ("credit", order.metered_usd) and order.metered_usd > 0
    assert credit_summary(alice)["balance"] == Decimal("40.00") - order.metered_usd
    page.get_by_role("link", name=f"Invoice INV-O{order.pk}").click()
    expect(page.locator("#invoice-status")).to_have_text("final")
    expect(page.locator("#invoice-total")).to_have_text(f"${order.metered_usd:,.2f}")
    expect(page.locator("#invoice-payments")).to_contain_text(f"credit: ${order.metered_usd:,.2f}")
    shot(page, "invoice-credit")
    page.goto(url("/billing/"))
    expect(page.locator("#credit-balance")).to_have_text(f"${Decimal('40.00') - order.metered_usd:,.2f}")
    expect(page.locator("#order-invoices")).to_contain_text(f"INV-O{order.pk}")


def test_provider_sets_up_payouts_through_stripe_onboarding(page, url, orders_worker, shot):
    from marketplace.billing.models import ProviderPayoutAccount

    sign_in(page, url, "bob", "demo-pass-123")
    page.goto(url("/provider/organisation/"))
    expect(page.locator("#payouts")).to_contain_text("Not set up")
    page.get_by_role("button", name="Set up payouts with Stripe").click()
    # Stripe's hosted onboarding (the fake completes it at once) sends the member back; the page then waits for
    # Stripe's account.updated webhook to be processed by the worker.
    expect(page.locator("#payout-status")).to_have_text("Payouts active", timeout=30_000)
    account = ProviderPayoutAccount.objects.get(provider__slug="demo-gpu-host")
    assert (account.charges_enabled, account.payouts_enabled, account.details_submitted) == (True, True, True)
    expect(page.locator("#payouts")).to_contain_text(account.stripe_account_id)
    shot(page, "payouts-active")
