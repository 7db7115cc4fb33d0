"""Billing test fixtures: the fake Stripe server on a free 127.0.0.1 port (tests/fakes.py: the real SDK talks to it
through STRIPE_API_BASE), webhook signing with the SDK's own helper, orders (orders app) to bill, and a synchronous
`Driver` that runs the work billing enqueued the way the Celery tasks would (the real worker is exercised in
test_worker_flow.py)."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from marketplace.billing.fake_stripe import FakeStripe
from tests import fakes
from tests.fakes import CAPTURE_PATH, CONNECT_SECRET, SECRET_KEY, WEBHOOK_SECRET, post_event, sign  # noqa: F401

fake_server = fakes.fake_server  # the shared fixtures, registered for this package
fake = fakes.fake


class Driver:
    """Plays Stripe's webhook deliveries and the Celery worker, synchronously, for service-level tests."""

    def __init__(self, fake: FakeStripe, client) -> None:
        self.fake = fake
        self.client = client
        self.delivered = 0

    def deliver_events(self, types: set[str] | None = None) -> list[dict]:
        """POST every event the fake emitted since the last call to the webhook views."""
        events = self.fake.events()[self.delivered:]
        self.delivered += len(events)
        sent = []
        for event in events:
            if types is None or event["type"] in types:
                response = post_event(self.client, event, connect=bool(event.get("account")))
                assert response.status_code == 200, response.content
                sent.append(event)
        return sent

    def run_work(self) -> None:
        """Run what the tasks would: process stored events, captures, voids, refunds, transfers, reversals."""
        from marketplace.billing.models import OrderCharge, OrderRefund, ProviderTransfer, StripeEvent
        from marketplace.billing.services.payouts import billing_execute_transfer, billing_reverse_transfer_for_refund
        from marketplace.billing.services.settlement import (
            billing_capture_order,
            billing_execute_refund,
            billing_void_order,
        )
        from marketplace.billing.services.webhooks import billing_process_event

        for _ in range(5):
            busy = False
            for pk in StripeEvent.objects.filter(status="received").order_by("id").values_list("pk", flat=True):
                billing_process_event(pk)
                busy = True
            for charge in OrderCharge.objects.filter(status__in=["settling", "voiding"]):
                (billing_capture_order if charge.status == "settling" else billing_void_order)(charge.order_id)
                busy = True
            for pk in OrderRefund.objects.filter(status="pending").values_list("pk", flat=True):
                billing_execute_refund(pk)
                busy = True
            for pk in ProviderTransfer.objects.filter(status="pending").values_list("pk", flat=True):
                billing_execute_transfer(pk)
                busy = True
            for refund in OrderRefund.objects.filter(status="succeeded", reversal_done=False, provider_share__gt=0,
                                                     charge__transfer__status="paid"):
                billing_reverse_transfer_for_refund(refund.pk)
                busy = True
            if not busy:
                return

    def settle_all(self) -> None:
        for _ in range(3):
            self.deliver_events()
            self.run_work()


@pytest.fixture
def driver(fake, client):
    return Driver(fake, client)


@pytest.fixture
def make_order(db, make_offer):
    """An order (orders app) in the given state, priced per node-hour, for billing to bill."""
    from marketplace.orders.models import Order

    def make(customer, provider, *, state: str = "reserved", node_price: str = "8.0000", nodes: int = 1,
             accelerator_count: int = 8, duration_hours: str = "2", budget_cap: str | None = None, **kw):
        offer = kw.pop("offer", None) or make_offer(provider, price_per_hour=Decimal(node_price),
                                                    accelerator_count=accelerator_count,
                                                    external_id=f"bill-{uuid.uuid4().hex[:8]}")
        now = timezone.now()
        fields = dict(customer=customer, offer=offer, nodes=nodes, accelerator_count=accelerator_count,
                      command="python train.py", duration_hours=Decimal(duration_hours),
                      budget_cap_usd=Decimal(budget_cap) if budget_cap else None, state=state,
                      idempotency_key=uuid.uuid4().hex, request_hash="0" * 64, driver="simulated",
                      node_price_per_hour=Decimal(node_price), state_changed_at=now, checked_at=now)
        fields.update(kw)
        return Order.objects.create(**fields)

    return make


def finish_order(order, state: str, *, metered: str | None = None, seconds: float | None = None,
                 failure_code: str = "", ran: bool = True):
    """Put an order in a final state as the pipeline would have left it (test setup only)."""
    now = timezone.now()
    if metered is not None:
        order.metered_usd = Decimal(metered)
    if seconds is not None:
        order.metered_seconds = seconds
    order.state = state
    order.failure_code = failure_code
    order.running_at = now - timedelta(hours=1) if ran else None
    order.finished_at = now
    order.save()
    return order


def wait_until(predicate, timeout: float = 30.0, interval: float = 0.1, message: str = ""):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {message or predicate}")
        time.sleep(interval)
