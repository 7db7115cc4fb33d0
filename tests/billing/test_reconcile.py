"""The billing reconciler re-drives work whose Celery message was lost (e.g. Redis down at commit), settles
finished orders nobody settled, catches up with Stripe events whose webhook never arrived, and re-reads
Connect accounts still waiting for onboarding."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from tests.billing.conftest import finish_order

pytestmark = pytest.mark.django_db

D = Decimal


@pytest.fixture
def sent(monkeypatch):
    """What the reconciler publishes (dispatch.send), captured instead of going to Redis."""
    calls: list[tuple] = []
    monkeypatch.setattr("marketplace.billing.dispatch.send", lambda task, *args, **kw: calls.append((task, *args)))
    return calls


def _age(model, pk, field: str, minutes: int) -> None:
    model.objects.filter(pk=pk).update(**{field: timezone.now() - timedelta(minutes=minutes)})


def test_lost_messages_are_re_driven(fake, driver, customer, provider_a, make_order, sent,
                                     django_capture_on_commit_callbacks):
    from marketplace.billing.models import OrderCharge, StripeEvent
    from marketplace.billing.services.order_hooks import billing_authorize_order_for
    from marketplace.billing.services.orders import billing_record_usage, billing_settle_order
    from marketplace.billing.services.reconcile import billing_reconcile

    order = make_order(customer, provider_a)
    billing_authorize_order_for(order, method="card", payment_method="pm_card_visa")
    billing_record_usage(order.pk, metered_total=D("3.00"))
    billing_settle_order(order.pk)  # its capture message is "lost": nothing ran it
    charge = OrderCharge.objects.get(order=order)
    event = StripeEvent.objects.create(event_id="evt_lost", type="payment_intent.succeeded", endpoint="platform",
                                       object_id=charge.payment_intent_id, payload={})
    with django_capture_on_commit_callbacks(execute=True):
        counts = billing_reconcile()
    assert (counts["captures"], counts["events"]) == (0, 0)  # too recent: the original task may still run
    _age(OrderCharge, charge.pk, "updated_at", 5)
    _age(StripeEvent, event.pk, "received_at", 5)
    with django_capture_on_commit_callbacks(execute=True):
        counts = billing_reconcile()
    assert (counts["captures"], counts["events"]) == (1, 1)
    assert ("capture_order_payment", order.pk) in sent and ("process_stripe_event", event.pk) in sent


def test_finished_orders_nobody_settled_are_settled(fake, driver, customer, provider_a, make_order, sent,
                                                    django_capture_on_commit_callbacks):
    from marketplace.billing.models import OrderCharge
    from marketplace.billing.services.order_hooks import billing_authorize_order_for
    from marketplace.billing.services.reconcile import billing_reconcile
    from marketplace.billing.services.topups import topup_create

    topup_create(customer, amount=D("10.00"), payment_method="pm_card_visa")
    driver.settle_all()
    order = make_order(customer, provider_a, state="running")
    billing_authorize_order_for(order, method="credit")
    finish_order(order, "completed", metered="2.50")
    order.finished_at = timezone.now() - timedelta(minutes=1)
    order.save()
    with django_capture_on_commit_callbacks(execute=True):
        counts = billing_reconcile()
    assert counts["finished"] == 1
    charge = OrderCharge.objects.get(order=order)
    assert (charge.status, charge.usage_amount) == ("settled", D("2.50"))
    assert ("execute_transfer", charge.transfer.pk) in sent


def test_events_whose_webhook_never_came_are_caught_up(fake, driver, customer, sent,
                                                       django_capture_on_commit_callbacks):
    from marketplace.billing.models import StripeEvent
    from marketplace.billing.services.reconcile import catch_up_events
    from marketplace.billing.services.topups import topup_create
    from marketplace.billing.services.webhooks import billing_process_event

    topup = topup_create(customer, amount=D("8.00"), payment_method="pm_card_visa")
    with django_capture_on_commit_callbacks(execute=True):
        assert catch_up_events() == 1  # only payment_intent.succeeded is a handled type
    row = StripeEvent.objects.get()
    assert (row.type, row.object_id) == ("payment_intent.succeeded", topup.payment_intent_id)
    assert sent == [("process_stripe_event", row.pk)]
    billing_process_event(row.pk)
    topup.refresh_from_db()
    assert topup.status == "succeeded"
    with django_capture_on_commit_callbacks(execute=True):
        assert catch_up_events() == 0  # stops at the newest event it knows


def test_accounts_waiting_for_onboarding_are_re_read(fake, provider_a):
    from marketplace.billing.models import ProviderPayoutAccount
    from marketplace.billing.services.reconcile import resync_accounts

    acct = fake.state.accounts_create({"type": "express"}, None)
    ProviderPayoutAccount.objects.create(provider=provider_a, stripe_account_id=acct["id"])
    fake.state.accounts_onboard(acct["id"])  # account.updated lost
    assert resync_accounts(timezone.now()) == 1
    assert ProviderPayoutAccount.objects.get(provider=provider_a).payouts_enabled is True
    assert resync_accounts(timezone.now()) == 0


def test_publishing_failure_is_logged_not_raised(monkeypatch, caplog):
    from marketplace.billing import dispatch

    class Down:
        def send_task(self, *args, **kwargs):
            raise ConnectionError("Redis is down")

    monkeypatch.setattr("broker.celery.app", Down())
    dispatch.send("execute_transfer", 7)
    assert "could not publish workers.tasks.billing.execute_transfer(7,) (Redis is down)" in caplog.text
