"""Webhooks through the real views, signed with the SDK's own helper: forged, tampered or 10-minute-old
signatures are refused and change nothing; a replayed event is a no-op; events in any order end in the same
state because processing re-reads the object from Stripe."""

from __future__ import annotations

import json
import time
from decimal import Decimal

import pytest
import stripe

from tests.billing.conftest import CONNECT_SECRET, WEBHOOK_SECRET, post_event, sign

pytestmark = pytest.mark.django_db

D = Decimal


def _credit(user) -> Decimal:
    from marketplace.billing.services import ledger

    return ledger.balance(ledger.customer_credit_account(user))


def _succeeded_topup_event(fake, user, amount: str = "15.00"):
    from marketplace.billing.services.topups import topup_create

    topup = topup_create(user, amount=D(amount), payment_method="pm_card_visa")
    return topup, fake.events("payment_intent.succeeded")[-1]


def _nothing_stored() -> bool:
    from marketplace.billing.models import JournalEntry, StripeEvent

    return StripeEvent.objects.count() == 0 and JournalEntry.objects.count() == 0


def test_signed_event_is_stored_once_and_processed(fake, client, customer):
    from marketplace.billing.models import StripeEvent
    from marketplace.billing.services.webhooks import billing_process_event

    topup, event = _succeeded_topup_event(fake, customer)
    response = post_event(client, event)
    assert response.status_code == 200
    assert response.json() == {"received": True, "event": event["id"], "type": "payment_intent.succeeded",
                               "duplicate": False}
    row = StripeEvent.objects.get()
    assert (row.event_id, row.endpoint, row.object_id, row.status) == (event["id"], "platform",
                                                                       topup.payment_intent_id, "received")
    billing_process_event(row.pk)
    assert _credit(customer) == D("15.00")

    # Stripe redelivers (at-least-once): 200, flagged duplicate, nothing stored or credited again.
    again = post_event(client, event)
    assert (again.status_code, again.json()["duplicate"]) == (200, True)
    assert StripeEvent.objects.count() == 1
    billing_process_event(row.pk)
    assert _credit(customer) == D("15.00")


def test_replayed_webhook_credits_once_even_when_processed_twice(fake, client, customer):
    """Two deliveries race past the event-id check? The ledger entry key topup:<id>:credit still credits once."""
    from marketplace.billing.models import JournalEntry, StripeEvent
    from marketplace.billing.services.webhooks import billing_process_event

    topup, event = _succeeded_topup_event(fake, customer, "7.50")
    post_event(client, event)
    row = StripeEvent.objects.get()
    StripeEvent.objects.create(event_id=event["id"] + "_copy", type=event["type"], endpoint="platform",
                               object_id=row.object_id, payload=event)
    for pk in StripeEvent.objects.values_list("pk", flat=True):
        billing_process_event(pk)
    assert _credit(customer) == D("7.50")
    assert JournalEntry.objects.filter(key=f"topup:{topup.pk}:credit").count() == 1
    assert JournalEntry.objects.count() == 1


@pytest.mark.parametrize("case", ["forged", "wrong_secret", "tampered", "stale", "missing", "connect_secret"])
def test_bad_signatures_are_refused_and_change_nothing(fake, client, customer, case):
    _, event = _succeeded_topup_event(fake, customer)
    body = json.dumps(event)
    if case == "forged":
        response = post_event(client, event, signature=f"t={int(time.time())},v1={'0' * 64}")
    elif case == "wrong_secret":
        response = post_event(client, event, secret="whsec_attacker")
    elif case == "tampered":
        signature = sign(body)
        response = post_event(client, event, payload=body.replace("15", "99"), signature=signature)
    elif case == "stale":  # signed correctly, ten minutes ago (tolerance is five)
        response = post_event(client, event, timestamp=int(time.time()) - 600)
    elif case == "missing":
        response = client.post("/api/v1/stripe/webhook/", data=body, content_type="application/json")
    else:  # the Connect endpoint's secret does not sign platform events
        response = post_event(client, event, secret=CONNECT_SECRET)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_signature"
    expected = {"stale": "Timestamp outside the tolerance zone",
                "missing": "No Stripe-Signature header value was provided."}
    assert error["message"].startswith(expected.get(case, "No signatures found matching the expected signature"))
    assert _nothing_stored()
    assert _credit(customer) == D("0.00")


def test_body_that_is_not_an_event_is_refused(fake, client):
    body = json.dumps({"hello": "world"})
    response = post_event(client, {}, payload=body, signature=sign(body))
    assert response.status_code == 400
    assert response.json()["error"]["message"].startswith("the body is not a Stripe event")
    assert _nothing_stored()


def test_only_post(client):
    response = client.get("/api/v1/stripe/webhook/")
    assert (response.status_code, response.json()["error"]["code"]) == (405, "method_not_allowed")


def _state(user, topup) -> tuple:
    from marketplace.billing.models import JournalEntry, StripeEvent

    topup.refresh_from_db()
    return (topup.status, topup.credited_amount, _credit(user), JournalEntry.objects.count(),
            sorted(StripeEvent.objects.values_list("status", flat=True)))


@pytest.mark.parametrize("order", ["in_order", "reversed"])
def test_events_out_of_order_reach_the_same_state(fake, client, customer, order):
    """A top-up whose first card is declined and whose second succeeds emits payment_failed then succeeded;
    processed in either order, the result is the same: credited once, status succeeded."""
    from marketplace.billing.services.topups import topup_create
    from marketplace.billing.services.webhooks import billing_process_event

    topup = topup_create(customer, amount=D("12.00"))
    assert topup.status == "requires_payment"
    # The customer's browser confirms (Stripe.js, here the SDK): first a declined card, then a good one.
    browser = stripe.StripeClient("sk_test_browser", base_addresses={"api": fake.url})
    with pytest.raises(stripe.CardError, match="Your card was declined"):
        browser.v1.payment_intents.confirm(topup.payment_intent_id, params={"payment_method": "pm_card_chargeDeclined"})
    browser.v1.payment_intents.confirm(topup.payment_intent_id, params={"payment_method": "pm_card_visa"})
    events = [e for e in fake.events() if e["type"].startswith("payment_intent.")
              and e["type"] != "payment_intent.created"]
    assert [e["type"] for e in events] == ["payment_intent.payment_failed", "payment_intent.succeeded"]
    if order == "reversed":
        events.reverse()
    from marketplace.billing.models import StripeEvent

    for event in events:
        assert post_event(client, event).status_code == 200
    for pk in StripeEvent.objects.order_by("id").values_list("pk", flat=True):
        billing_process_event(pk)
    assert _state(customer, topup) == ("succeeded", D("12.00"), D("12.00"), 1, ["processed", "processed"])


def test_account_updated_on_the_connect_endpoint_syncs_payout_flags(fake, client, member_a, provider_a):
    from marketplace.billing.models import ProviderPayoutAccount, StripeEvent
    from marketplace.billing.services.payouts import provider_payouts_ready
    from marketplace.billing.services.webhooks import billing_process_event

    acct = fake.state.accounts_create({"type": "express"}, None)
    ProviderPayoutAccount.objects.create(provider=provider_a, stripe_account_id=acct["id"])
    fake.state.accounts_onboard(acct["id"])
    event = fake.events("account.updated")[-1]
    assert event["account"] == acct["id"]
    # Sent to the platform endpoint it does not verify (different secret): the Connect endpoint takes it.
    assert post_event(client, event, secret=WEBHOOK_SECRET, connect=True).status_code == 400
    assert post_event(client, event, connect=True).status_code == 200
    row = StripeEvent.objects.get()
    assert (row.endpoint, row.account) == ("connect", acct["id"])
    assert provider_payouts_ready(provider_a.pk) is False
    billing_process_event(row.pk)
    account = ProviderPayoutAccount.objects.get(provider=provider_a)
    assert (account.charges_enabled, account.payouts_enabled, account.details_submitted,
            account.requirements_due) == (True, True, True, [])
    assert provider_payouts_ready(provider_a.pk) is True


def test_payout_failed_is_recorded_for_operators(fake, client, provider_a):
    from marketplace.billing.models import ProviderPayoutAccount, StripeEvent
    from marketplace.billing.services.webhooks import billing_process_event

    acct = fake.state.accounts_create({"type": "express"}, None)
    ProviderPayoutAccount.objects.create(provider=provider_a, stripe_account_id=acct["id"])
    fake.state.payouts_fail(acct["id"], 5400)
    assert post_event(client, fake.events("payout.failed")[-1], connect=True).status_code == 200
    billing_process_event(StripeEvent.objects.get().pk)
    account = ProviderPayoutAccount.objects.get(provider=provider_a)
    assert account.last_payout_failure_code == "account_closed" and account.last_payout_failure_at is not None
    assert StripeEvent.objects.get().status == "processed"


def test_unhandled_event_types_are_ignored(fake, client):
    from marketplace.billing.models import StripeEvent
    from marketplace.billing.services.webhooks import billing_process_event

    customer_obj = fake.state.customers_create({"email": "x@example.com"}, None)
    event = fake.state.emit("customer.created", customer_obj)
    assert post_event(client, event).status_code == 200
    assert billing_process_event(StripeEvent.objects.get().pk).status == "ignored"


def test_refund_made_in_the_dashboard_takes_credit_back(fake, driver, client, customer):
    from marketplace.billing.services.topups import topup_create

    topup = topup_create(customer, amount=D("30.00"), payment_method="pm_card_visa")
    driver.deliver_events()
    driver.run_work()
    assert _credit(customer) == D("30.00")
    fake.state.refunds_create({"payment_intent": topup.payment_intent_id, "amount": "1250"}, None)
    driver.deliver_events({"charge.refunded"})
    driver.run_work()
    topup.refresh_from_db()
    assert (topup.refunded_amount, _credit(customer)) == (D("12.50"), D("17.50"))
    driver.deliver_events()  # refund.created is not handled; charge.refunded again changes nothing
    driver.run_work()
    assert _credit(customer) == D("17.50")
