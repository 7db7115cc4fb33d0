"""The fake Stripe server, driven by the real `stripe` SDK: wire format, idempotency-key semantics, errors as
Stripe renders them, injected faults, Connect, events, and signed webhook delivery that the SDK verifies."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
import stripe

from marketplace.billing.fake_stripe import FakeStripe


@pytest.fixture
def fake():
    with FakeStripe() as server:
        yield server


@pytest.fixture
def sdk(fake):
    return stripe.StripeClient("sk_test_fake_tests", base_addresses={"api": fake.url, "connect": fake.url},
                               max_network_retries=2, http_client=stripe.RequestsClient(timeout=1))


def _intent(sdk, key: str, **params):
    body = {"amount": 1000, "currency": "usd", "capture_method": "manual", "confirm": True,
            "payment_method": "pm_card_visa", **params}
    return sdk.v1.payment_intents.create(params=body, options={"idempotency_key": key})


def test_manual_capture_of_part_of_the_hold(fake, sdk):
    intent = _intent(sdk, "k1")
    assert (intent.status, intent.amount_capturable, intent.amount_received) == ("requires_capture", 1000, 0)
    captured = sdk.v1.payment_intents.capture(intent.id, params={"amount_to_capture": 640},
                                              options={"idempotency_key": "k2"})
    assert (captured.status, captured.amount_received, captured.amount_capturable) == ("succeeded", 640, 0)
    charge = sdk.v1.charges.retrieve(captured.latest_charge)
    assert (charge.captured, charge.amount_captured, charge.payment_intent) == (True, 640, intent.id)
    with pytest.raises(stripe.InvalidRequestError) as info:
        sdk.v1.payment_intents.capture(intent.id, options={"idempotency_key": "k3"})
    assert info.value.code == "payment_intent_unexpected_state"
    assert [e["type"] for e in fake.events()] == [
        "payment_intent.created", "charge.succeeded", "payment_intent.amount_capturable_updated", "charge.captured",
        "payment_intent.succeeded"]


def test_idempotency_replay_and_conflict(fake, sdk):
    first = _intent(sdk, "order:1:authorize")
    again = _intent(sdk, "order:1:authorize")
    assert again.id == first.id
    assert again.last_response.headers["Idempotent-Replayed"] == "true"
    assert len(fake.state.objects["payment_intents"]) == 1
    with pytest.raises(stripe.IdempotencyError) as info:
        _intent(sdk, "order:1:authorize", amount=2000)
    assert info.value.http_status == 400
    assert "can only be used with the same parameters" in info.value.user_message
    # Keys are scoped per connected account (Stripe-Account header).
    other = sdk.v1.customers.create(params={"email": "a@example.com"},
                                    options={"idempotency_key": "order:1:authorize", "stripe_account": "acct_x"})
    assert other.id.startswith("cus_")


def test_a_decline_is_saved_under_its_key_but_validation_errors_are_not(fake, sdk):
    with pytest.raises(stripe.CardError) as info:
        _intent(sdk, "d1", payment_method="pm_card_chargeDeclinedExpiredCard")
    assert (info.value.code, info.value.error.decline_code, info.value.http_status) == (
        "expired_card", "expired_card", 402)
    with pytest.raises(stripe.CardError):
        _intent(sdk, "d1", payment_method="pm_card_chargeDeclinedExpiredCard")
    assert [(r.executed, r.replayed) for r in fake.requests] == [(True, False), (False, True)]

    with pytest.raises(stripe.InvalidRequestError) as info:
        _intent(sdk, "v1", amount=49)
    assert (info.value.code, info.value.user_message) == ("amount_too_small", "Amount must be at least 50 usd cents")
    assert _intent(sdk, "v1").status == "requires_capture"  # same key, now valid: not a replay of the 400


def test_unknown_parameters_resources_and_keys(fake, sdk):
    with pytest.raises(stripe.InvalidRequestError, match="Received unknown parameter: colour") as info:
        sdk.v1.customers.create(params={"colour": "blue"})
    assert info.value.code == "parameter_unknown"
    with pytest.raises(stripe.InvalidRequestError, match="No such payment_intent: 'pi_missing'") as info:
        sdk.v1.payment_intents.retrieve("pi_missing")
    assert info.value.http_status == 404
    with pytest.raises(stripe.AuthenticationError):
        stripe.StripeClient("sk_live_real", base_addresses={"api": fake.url}).v1.customers.create()
    assert requests.get(f"{fake.url}/v1/nothing", timeout=2,
                        headers={"Authorization": "Bearer sk_test_x"}).status_code == 404


def test_refund_limits(fake, sdk):
    intent = sdk.v1.payment_intents.create(params={"amount": 500, "currency": "usd", "confirm": True,
                                                   "payment_method": "pm_card_visa"})
    assert intent.status == "succeeded"
    refund = sdk.v1.refunds.create(params={"payment_intent": intent.id, "amount": 200})
    assert (refund.amount, refund.status) == (200, "succeeded")
    with pytest.raises(stripe.InvalidRequestError) as info:
        sdk.v1.refunds.create(params={"payment_intent": intent.id, "amount": 301})
    assert info.value.user_message == "Refund amount (3.01) is greater than unrefunded amount on charge (3.00)"
    sdk.v1.refunds.create(params={"payment_intent": intent.id})
    charge = sdk.v1.charges.retrieve(intent.latest_charge)
    assert (charge.amount_refunded, charge.refunded) == (500, True)


def test_requires_action_and_cancel(fake, sdk):
    intent = _intent(sdk, "a1", payment_method="pm_card_authenticationRequired")
    assert (intent.status, intent.next_action.type) == ("requires_action", "use_stripe_sdk")
    canceled = sdk.v1.payment_intents.cancel(intent.id, params={"cancellation_reason": "abandoned"})
    assert (canceled.status, canceled.cancellation_reason) == ("canceled", "abandoned")


def test_faults_error_hang_and_timeout(fake, sdk):
    fake.inject_fault(r"/v1/customers", count=1, status=429)
    with pytest.raises(stripe.RateLimitError):  # the SDK does not retry a 429 itself; the gateway's caller does
        sdk.v1.customers.create(options={"idempotency_key": "c1"})
    assert sdk.v1.customers.create(options={"idempotency_key": "c1"}).id.startswith("cus_")
    assert [(r.status, r.executed) for r in fake.requests] == [(429, False), (200, True)]

    fake.inject_fault(r"/v1/customers", count=3, status=500)
    with pytest.raises(stripe.APIError):
        sdk.v1.customers.create(options={"idempotency_key": "c2"})
    assert len(fake.executions(r"/v1/customers", key="c2")) == 0

    fake.inject_fault(r"/v1/customers", count=3, mode="hang", delay=1.3)
    with pytest.raises(stripe.APIConnectionError):
        sdk.v1.customers.create(options={"idempotency_key": "c3"})
    assert len(fake.executions(r"/v1/customers", key="c3")) == 0

    fake.inject_fault(r"/v1/customers", count=1, mode="timeout", delay=1.3)
    created = sdk.v1.customers.create(params={"email": "t@example.com"}, options={"idempotency_key": "c4"})
    assert len(fake.executions(r"/v1/customers", key="c4")) == 1
    assert created.last_response.headers["Idempotent-Replayed"] == "true"


def test_connect_accounts_links_transfers_and_reversals(fake, sdk):
    account = sdk.v1.accounts.create(params={"type": "express", "capabilities": {"transfers": {"requested": True}}})
    assert (account.charges_enabled, account.payouts_enabled) == (False, False)
    link = sdk.v1.account_links.create(params={"account": account.id, "type": "account_onboarding",
                                               "refresh_url": "http://127.0.0.1:9/r",
                                               "return_url": "http://127.0.0.1:9/done"})
    with pytest.raises(stripe.InvalidRequestError) as info:
        sdk.v1.transfers.create(params={"amount": 100, "currency": "usd", "destination": account.id})
    assert info.value.code == "insufficient_capabilities_for_transfer"
    # Visiting the hosted onboarding page completes it and sends the member back.
    page = requests.get(link.url, allow_redirects=False, timeout=2)
    assert (page.status_code, page.headers["Location"]) == (302, "http://127.0.0.1:9/done")
    assert sdk.v1.accounts.retrieve(account.id).payouts_enabled is True
    updated = fake.events("account.updated")[-1]
    assert (updated["account"], updated["data"]["previous_attributes"]["payouts_enabled"]) == (account.id, False)

    transfer = sdk.v1.transfers.create(params={"amount": 900, "currency": "usd", "destination": account.id,
                                               "transfer_group": "order:7"})
    reversal = sdk.v1.transfers.reversals.create(transfer.id, params={"amount": 300})
    assert (reversal.amount, reversal.transfer) == (300, transfer.id)
    after = sdk.v1.transfers.retrieve(transfer.id)
    assert (after.amount_reversed, after.reversed) == (300, False)
    with pytest.raises(stripe.InvalidRequestError):
        sdk.v1.transfers.reversals.create(transfer.id, params={"amount": 601})


def test_events_list_retrieve_and_connect_scope(fake, sdk):
    for n in range(3):
        fake.state.emit("customer.created", {"id": f"cus_{n}"})
    account = fake.state.accounts_create({"type": "express"}, None)
    fake.state.accounts_onboard(account["id"])
    page = sdk.v1.events.list(params={"limit": 2})
    assert (len(page.data), page.has_more, page.data[0].type) == (2, True, "customer.created")
    rest = sdk.v1.events.list(params={"limit": 10, "starting_after": page.data[-1].id})
    assert ([e.data.object.id for e in rest.data], rest.has_more) == (["cus_0"], False)
    assert sdk.v1.events.retrieve(page.data[0].id).id == page.data[0].id
    connect = sdk.v1.events.list(options={"stripe_account": account["id"]})
    assert [e.type for e in connect.data] == ["account.updated"]


def test_signed_webhook_delivery_verifies_with_the_sdk(fake, sdk):
    received: list[tuple[bytes, str]] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((body, self.headers["Stripe-Signature"]))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        fake.server.webhooks.configure("platform", f"http://127.0.0.1:{server.server_address[1]}/hook",
                                       "whsec_delivery")
        intent = sdk.v1.payment_intents.create(params={"amount": 700, "currency": "usd", "confirm": True,
                                                       "payment_method": "pm_card_visa"})
        import time

        deadline = time.monotonic() + 10
        while len(received) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        server.shutdown()
        server.server_close()
    events = [stripe.Webhook.construct_event(body, signature, "whsec_delivery") for body, signature in received]
    assert [e.type for e in events] == ["payment_intent.created", "charge.succeeded", "payment_intent.succeeded"]
    assert events[-1].data.object.id == intent.id
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(received[0][0], received[0][1], "whsec_other")
    assert [d["status"] for d in fake.server.webhooks.deliveries] == [200, 200, 200]
    assert json.loads(received[-1][0])["data"]["object"]["amount_received"] == 700
