"""brokerctl invoices against a live test server: an order settled from prepaid credit (an operator-granted
overdraft, so no card is involved) shows up in the list, as a table, as CSV and in the month's invoice."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal

import pytest
from django.utils import timezone

from tests.cli.helpers import table
from tests.worker_process import redis_url_for_tests

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

DESCRIPTION = "1 node(s) × 8 NVIDIA H100-SXM5-80GB on Alpha Compute (us-east-virginia)"


@pytest.fixture
def settled_order(market, customer, operator, settings):
    """A completed order billed 9.25 USD (30 min of 8 GPUs at 18.50/h) from credit, settled."""
    from marketplace.billing.services.customers import billing_set_overdraft
    from marketplace.billing.services.order_hooks import billing_authorize_order_for, billing_order_finished
    from marketplace.orders.models import Order

    redis_url = redis_url_for_tests()
    if redis_url is None:
        pytest.skip(f"no Redis answers at REDIS_URL={settings.REDIS_URL}")
    settings.CELERY_TASK_DEFAULT_QUEUE = queue = f"test-cli-billing-{uuid.uuid4().hex[:8]}"  # payouts land here
    billing_set_overdraft(operator=operator, customer=customer, limit=Decimal("100.00"))
    now = timezone.now()
    order = Order.objects.create(customer=customer, offer=market["cheap8"], nodes=1, accelerator_count=8,
                                 command="python train.py", duration_hours=Decimal("2"), state="running",
                                 idempotency_key=uuid.uuid4().hex, request_hash="0" * 64, driver="simulated",
                                 node_price_per_hour=Decimal("18.5000"), state_changed_at=now, checked_at=now,
                                 running_at=now)
    billing_authorize_order_for(order, method="credit")
    Order.objects.filter(pk=order.pk).update(state="completed", metered_usd=Decimal("9.25"), metered_seconds=1800,
                                             finished_at=now)
    assert billing_order_finished(order.pk).status == "settled"
    yield order
    import redis

    redis.Redis.from_url(redis_url).delete(queue)


def test_invoices_list_show_csv_and_month(brokerctl, settled_order, customer, token_for):
    token = token_for(customer)
    order_id = settled_order.pk
    month = f"{timezone.now():%Y-%m}"
    number_month = f"INV-M{month.replace('-', '')}-U{customer.pk}"
    listing = brokerctl("invoices", "list", token=token)
    assert (listing.exit_code, listing.stderr) == (0, "")
    assert table(listing.stdout) == [["NUMBER", "KIND", "SHOW_WITH"],
                                     [f"INV-O{order_id}", "order", f"brokerctl invoices show --order {order_id}"],
                                     [number_month, "month", f"brokerctl invoices show --month {month}"]]

    shown = brokerctl("invoices", "show", "--order", str(order_id), token=token)
    assert shown.exit_code == 0
    lines = shown.stdout.splitlines()
    assert lines[:4] == [f"invoice:  INV-O{order_id}", "status:   final", "customer: customer", "currency: USD"]
    assert table("\n".join(lines[4:6])) == [["DESCRIPTION", "QUANTITY", "UNIT", "UNIT_PRICE", "AMOUNT"],
                                            [DESCRIPTION, "4.0000", "accelerator-hour", "2.3125", "9.25"]]
    assert lines[6:] == ["usage:       9.25", "not_charged: 0.00", "refunds:     0.00", "total:       9.25"]

    csv = brokerctl("invoices", "show", "--order", str(order_id), "--csv", token=token)
    assert csv.stdout == (
        "invoice,kind,description,order_id,quantity,unit,unit_price,amount,currency\n"
        f"INV-O{order_id},usage,{DESCRIPTION},{order_id},4.0000,accelerator-hour,2.3125,9.25,usd\n"
        f"INV-O{order_id},total,usage,,,,,9.25,usd\nINV-O{order_id},total,not_charged,,,,,0.00,usd\n"
        f"INV-O{order_id},total,refunds,,,,,0.00,usd\nINV-O{order_id},total,total,,,,,9.25,usd\n")

    monthly = json.loads(brokerctl("invoices", "show", "--month", month, "--json", token=token).stdout)
    assert (monthly["number"], monthly["status"]) == (number_month, "open")
    assert monthly["totals"] == {"charges": "9.25", "refunds": "0.00", "total": "9.25", "paid_by_card": "0.00",
                                 "paid_from_credit": "9.25", "credit_purchased": "0.00",
                                 "credit_balance_at_end": "-9.25"}
    both = brokerctl("invoices", "show", "--order", "1", "--month", month, token=token)
    assert (both.exit_code, both.stderr.splitlines()[-1]) == (2, "Error: give either --order ID or --month YYYY-MM")
    missing = brokerctl("invoices", "show", "--order", str(order_id + 1000), token=token)
    assert (missing.exit_code, missing.stderr) == (
        1, f"error: No invoice for order {order_id + 1000}. (HTTP 404, not_found)\n")
