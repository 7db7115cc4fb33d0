"""Operators' views (admin lists with filters, the retry action) and the `manage.py fake_stripe` command."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest
import stripe

ROOT = Path(__file__).resolve().parents[2]
D = Decimal


@pytest.mark.django_db
def test_admin_lists_failed_transfers_and_retries_them(fake, client, make_user, customer, provider_a, make_order):
    from marketplace.billing.models import OrderCharge, ProviderTransfer

    admin = make_user("root", role="operator", is_staff=True, is_superuser=True)
    order = make_order(customer, provider_a)
    charge = OrderCharge.objects.create(order=order, customer=customer, provider=provider_a, method="credit",
                                        status="settled", usage_amount=D("5.00"), metered_amount=D("5.00"))
    failed = ProviderTransfer.objects.create(charge=charge, provider=provider_a, amount=D("4.50"),
                                             status="needs_operator", attempts=8, last_error="Insufficient funds.")
    client.force_login(admin)
    page = client.get("/admin/billing/providertransfer/?status__exact=needs_operator")
    assert page.status_code == 200
    assert "Insufficient funds." in page.content.decode() and "Failed (retries exhausted)" in page.content.decode()
    paid_only = client.get("/admin/billing/providertransfer/?status__exact=paid").content.decode()
    assert "Insufficient funds." not in paid_only
    response = client.post("/admin/billing/providertransfer/", {
        "action": "retry_now", "_selected_action": [failed.pk]}, follow=True)
    assert "1 transfer(s) queued for another attempt." in response.content.decode()
    failed.refresh_from_db()
    assert (failed.status, failed.attempts) == ("failed", 0)
    for path in ("journalentry", "ordercharge", "paymentoperation", "stripeevent", "topup", "providerpayoutaccount",
                 "ledgeraccount", "customerbilling"):
        assert client.get(f"/admin/billing/{path}/").status_code == 200, path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_fake_stripe_command_serves_test_mode_only(tmp_path):
    port = _free_port()
    env = {**os.environ, "BROKER_DEV": "1", "BROKER_VAR_DIR": str(tmp_path), "PYTHONUNBUFFERED": "1"}
    env.pop("STRIPE_SECRET_KEY", None)
    log = tmp_path / "fake.log"
    with log.open("wb") as out:
        process = subprocess.Popen([sys.executable, "manage.py", "fake_stripe", "--port", str(port), "--no-webhooks"],
                                   cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while "Fake Stripe" not in log.read_text() and time.monotonic() < deadline:
            assert process.poll() is None, log.read_text()
            time.sleep(0.1)
        assert f"Fake Stripe (TEST MODE, no real money) on http://127.0.0.1:{port}" in log.read_text()
        sdk = stripe.StripeClient("sk_test_local_fake", base_addresses={"api": f"http://127.0.0.1:{port}"})
        intent = sdk.v1.payment_intents.create(params={"amount": 1500, "currency": "usd", "confirm": True,
                                                       "payment_method": "pm_card_visa"})
        assert intent.status == "succeeded"
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert "Fake Stripe stopped." in log.read_text()

    live = subprocess.run([sys.executable, "manage.py", "fake_stripe", "--port", str(port)], cwd=ROOT,
                          env={**env, "STRIPE_SECRET_KEY": "sk_live_real"}, capture_output=True, text=True, timeout=60)
    assert live.returncode != 0
    assert "STRIPE_SECRET_KEY is a live key: the fake only serves test mode." in live.stderr
