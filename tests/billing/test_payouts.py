"""Providers: Connect Express onboarding through the API, account.updated, transfers that wait for onboarding,
refused transfers retried under a new key, exhausted retries visible to operators."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import pytest
from django.utils import timezone

pytestmark = pytest.mark.django_db

D = Decimal


def _settled_credit_order(driver, customer, provider, make_order, amount: str = "10.00"):
    from marketplace.billing.services.order_hooks import billing_authorize_order_for
    from marketplace.billing.services.orders import billing_record_usage, billing_settle_order
    from marketplace.billing.services.topups import topup_create

    topup_create(customer, amount=D("50.00"), payment_method="pm_card_visa")
    driver.deliver_events({"payment_intent.succeeded"})
    driver.run_work()
    order = make_order(customer, provider, state="running")
    billing_authorize_order_for(order, method="credit")
    billing_record_usage(order.pk, metered_total=D(amount))
    billing_settle_order(order.pk)
    return order


def test_onboarding_link_then_account_updated(fake, driver, client_for, member_a, provider_a):
    from marketplace.billing.models import PaymentOperation

    api = client_for(member_a)
    response = api.post("/api/v1/billing/provider/onboarding-link/",
                        {"return_url": "https://broker.example/settings/payouts"}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    account_id = body["account"]["stripe_account_id"]
    assert body["account"]["payouts_enabled"] is False
    url = urlsplit(body["url"])
    assert (url.path, parse_qs(url.query)["return_url"]) == (f"/_fake/onboarding/{account_id}",
                                                              ["https://broker.example/settings/payouts"])
    acct = fake.state.accounts_retrieve(account_id, None)
    assert (acct["type"], acct["metadata"]) == ("express", {"provider_id": str(provider_a.pk)})
    # A second link reuses the account and asks for a new link under the next key.
    assert api.post("/api/v1/billing/provider/onboarding-link/", {}, format="json").status_code == 200
    keys = sorted(PaymentOperation.objects.values_list("key", flat=True))  # link keys end with a params digest
    assert [key.rsplit(":", 1)[0] if "link" in key else key for key in keys] == [
        f"provider:{provider_a.pk}:account", f"provider:{provider_a.pk}:account_link:1",
        f"provider:{provider_a.pk}:account_link:2"]

    assert api.get("/api/v1/billing/provider/payout-account/").json()["payouts_enabled"] is False
    fake.state.accounts_onboard(account_id)  # the member completes Stripe's hosted onboarding
    driver.settle_all()
    account = api.get("/api/v1/billing/provider/payout-account/").json()
    assert (account["charges_enabled"], account["payouts_enabled"], account["requirements_due"]) == (True, True, [])


def test_onboarding_is_for_provider_members(fake, client_for, customer, anon):
    response = client_for(customer).post("/api/v1/billing/provider/onboarding-link/", {}, format="json")
    assert (response.status_code, response.json()["error"]["code"]) == (403, "permission_denied")
    assert anon.post("/api/v1/billing/provider/onboarding-link/", {}, format="json").status_code == 401
    assert fake.requests == []


def test_onboarding_rejects_foreign_return_urls(fake, client_for, member_a):
    response = client_for(member_a).post("/api/v1/billing/provider/onboarding-link/",
                                         {"return_url": "http://evil.example/x"}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"return_url": ["Must be an https:// URL (or local in dev)."]}
    assert fake.requests == []


def test_transfer_waits_for_onboarding_then_is_paid(fake, driver, customer, provider_a, member_a, make_order):
    from marketplace.billing.models import ProviderPayoutAccount, ProviderTransfer
    from marketplace.billing.services.payouts import provider_onboarding_link

    order = _settled_credit_order(driver, customer, provider_a, make_order)
    driver.run_work()
    transfer = ProviderTransfer.objects.get(charge__order=order)
    assert (transfer.status, transfer.attempts, transfer.amount) == ("failed", 0, D("9.00"))
    assert transfer.last_error == "The provider has not finished Stripe onboarding (payouts disabled)."
    assert fake.executions(r"/v1/transfers") == []

    account, _ = provider_onboarding_link(user=member_a, return_url="https://x.example/",
                                          refresh_url="https://x.example/")
    fake.state.accounts_onboard(account.stripe_account_id)
    driver.deliver_events({"account.updated"})
    from marketplace.billing.models import StripeEvent
    from marketplace.billing.services.webhooks import billing_process_event

    with pytest.MonkeyPatch.context() as patch:
        enqueued: list[tuple] = []
        patch.setattr("marketplace.billing.services.payouts.enqueue", lambda *a, **k: enqueued.append(a))
        billing_process_event(StripeEvent.objects.get(type="account.updated").pk)
    assert ProviderPayoutAccount.objects.get(provider=provider_a).payouts_enabled is True
    assert enqueued == [("execute_transfer", transfer.pk)]  # the waiting transfer is retried at once
    from marketplace.billing.services.payouts import billing_execute_transfer

    transfer = billing_execute_transfer(transfer.pk)
    assert (transfer.status, transfer.stripe_transfer_id != "") == ("paid", True)
    assert fake.state.transfers_retrieve(transfer.stripe_transfer_id, None)["amount"] == 900


def test_refused_transfer_retries_under_a_new_key_and_pays_once(fake, driver, customer, provider_a, make_order):
    from marketplace.billing.models import PaymentOperation, ProviderPayoutAccount, ProviderTransfer
    from marketplace.billing.services.payouts import billing_execute_transfer, transfers_due

    acct = fake.state.accounts_create({"type": "express"}, None)
    fake.state.accounts_onboard(acct["id"])
    ProviderPayoutAccount.objects.create(provider=provider_a, stripe_account_id=acct["id"], charges_enabled=True,
                                         payouts_enabled=True)
    order = _settled_credit_order(driver, customer, provider_a, make_order)
    transfer = ProviderTransfer.objects.get(charge__order=order)
    fake.inject_fault(r"/v1/transfers", mode="declined", code="balance_insufficient",
                      message="You have insufficient available funds in your Stripe account.")
    transfer = billing_execute_transfer(transfer.pk)
    assert (transfer.status, transfer.attempts, transfer.key_generation) == ("failed", 1, 1)
    assert transfer.last_error == "You have insufficient available funds in your Stripe account."
    assert transfer.next_attempt_at > timezone.now() + timedelta(minutes=4)
    assert transfers_due() == []
    assert transfers_due(timezone.now() + timedelta(minutes=6)) == [transfer.pk]

    transfer = billing_execute_transfer(transfer.pk)  # the beat retry, after the backoff
    assert transfer.status == "paid"
    base = f"transfer:{order.pk}:{provider_a.pk}"
    assert [(r.idempotency_key, r.status) for r in fake.requests if r.path == "/v1/transfers"] == [
        (base, 402), (f"{base}:retry-1", 200)]
    assert dict(PaymentOperation.objects.filter(kind="transfer").values_list("key", "status")) == {
        base: "failed", f"{base}:retry-1": "succeeded"}
    assert len(fake.state.objects["transfers"]) == 1


def test_transient_transfer_failure_keeps_the_key(fake, driver, customer, provider_a, make_order):
    from marketplace.billing.models import ProviderPayoutAccount, ProviderTransfer
    from marketplace.billing.services.payouts import billing_execute_transfer

    acct = fake.state.accounts_create({"type": "express"}, None)
    fake.state.accounts_onboard(acct["id"])
    ProviderPayoutAccount.objects.create(provider=provider_a, stripe_account_id=acct["id"], charges_enabled=True,
                                         payouts_enabled=True)
    order = _settled_credit_order(driver, customer, provider_a, make_order)
    transfer = ProviderTransfer.objects.get(charge__order=order)
    fake.inject_fault(r"/v1/transfers", count=3, status=503)
    transfer = billing_execute_transfer(transfer.pk)
    assert (transfer.status, transfer.key_generation, transfer.attempts) == ("failed", 0, 1)
    assert billing_execute_transfer(transfer.pk).status == "paid"
    assert {r.idempotency_key for r in fake.requests if r.path == "/v1/transfers"} == {
        f"transfer:{order.pk}:{provider_a.pk}"}


def test_exhausted_transfers_are_listed_for_operators_and_can_be_retried(fake, driver, client_for, operator,
                                                                         member_a, member_b, customer, provider_a,
                                                                         make_order, monkeypatch):
    from marketplace.billing.models import ProviderPayoutAccount, ProviderTransfer
    from marketplace.billing.services.payouts import billing_execute_transfer

    monkeypatch.setenv("BILLING_TRANSFER_MAX_ATTEMPTS", "2")
    acct = fake.state.accounts_create({"type": "express"}, None)
    fake.state.accounts_onboard(acct["id"])
    ProviderPayoutAccount.objects.create(provider=provider_a, stripe_account_id=acct["id"], charges_enabled=True,
                                         payouts_enabled=True)
    order = _settled_credit_order(driver, customer, provider_a, make_order)
    transfer = ProviderTransfer.objects.get(charge__order=order)
    fake.inject_fault(r"/v1/transfers", count=2, mode="declined", code="balance_insufficient",
                      message="Insufficient funds.")
    billing_execute_transfer(transfer.pk)
    transfer = billing_execute_transfer(transfer.pk)
    assert (transfer.status, transfer.attempts, transfer.next_attempt_at) == ("needs_operator", 2, None)

    api = client_for(operator)
    listed = api.get("/api/v1/billing/transfers/?status=needs_operator").json()
    assert [(t["id"], t["order_id"], t["amount"], t["last_error"]) for t in listed["results"]] == [
        (transfer.pk, order.pk, "9.00", "Insufficient funds.")]
    assert api.get("/api/v1/billing/transfers/?status=paid").json()["results"] == []
    assert api.get("/api/v1/billing/transfers/?status=bogus").status_code == 400
    assert client_for(member_a).get("/api/v1/billing/transfers/").json()["count"] == 1
    assert client_for(member_b).get("/api/v1/billing/transfers/").json()["count"] == 0
    assert client_for(customer).get("/api/v1/billing/transfers/").status_code == 403
    assert client_for(member_a).post(f"/api/v1/billing/transfers/{transfer.pk}/retry/").status_code == 403

    retried = api.post(f"/api/v1/billing/transfers/{transfer.pk}/retry/").json()
    assert (retried["status"], retried["attempts"]) == ("failed", 0)
    assert billing_execute_transfer(transfer.pk).status == "paid"
    assert api.post("/api/v1/billing/transfers/999999/retry/").status_code == 404
