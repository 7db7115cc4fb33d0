"""Property: any sequence of top-ups, orders (card or credit), usage, settlements, failures, refunds and payouts
keeps every journal entry summing to zero, every balance equal to the sum of its lines, prepaid credit never
negative, and the money the ledger says is at Stripe equal to what the fake Stripe actually holds."""

from __future__ import annotations

import contextlib
from decimal import Decimal

import pytest
from django.db import transaction
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.billing.conftest import Driver, finish_order

pytestmark = pytest.mark.django_db

D = Decimal
cents = st.integers(min_value=1, max_value=4000)
usage = st.tuples(st.just("usage"), st.integers(0, 9), cents)
ops = st.one_of(
    st.tuples(st.just("topup"), st.integers(0, 1), st.integers(100, 3000)),
    st.tuples(st.just("order"), st.integers(0, 1), st.integers(0, 1), st.sampled_from(["card", "credit"]),
              st.integers(0, 3000)),
    usage, usage, usage, usage, usage,
    st.tuples(st.just("finish"), st.integers(0, 9), st.sampled_from(
        ["completed", "completed", "completed", "cancelled_running", "job_failed", "job_lost", "never_ran"])),
    st.tuples(st.just("final_reading"), st.integers(0, 9), st.integers(0, 100)),
    st.tuples(st.just("refund"), st.integers(0, 9), st.integers(1, 100)),
    st.tuples(st.just("work"),),
)


class Run:
    def __init__(self, fake, client, customers, providers, make_order) -> None:
        self.driver = Driver(fake, client)
        self.fake = fake
        self.customers = customers
        self.providers = providers
        self.make_order = make_order
        self.orders: list = []

    def apply(self, op: tuple) -> None:
        from marketplace.billing.errors import InsufficientCredit
        from marketplace.billing.services.order_hooks import billing_authorize_order_for, billing_order_finished
        from marketplace.billing.services.orders import billing_record_usage, billing_settle_order
        from marketplace.billing.services.topups import topup_create

        kind = op[0]
        if kind == "topup":
            topup_create(self.customers[op[1]], amount=D(op[2]) / 100, payment_method="pm_card_visa")
        elif kind == "order":
            order = self.make_order(self.customers[op[1]], self.providers[op[2]], state="running",
                                    node_price="20.0000", duration_hours="2")
            try:
                billing_authorize_order_for(order, method=op[3], payment_method="pm_card_visa")
            except InsufficientCredit:
                return
            self.orders.append(order)
            if op[4]:  # a first meter reading
                order.metered_usd = D(op[4]) / 100
                order.save()
                billing_record_usage(order.pk, metered_total=order.metered_usd)
        elif kind == "work":
            self.driver.settle_all()
        elif kind == "refund":
            self._refund(op[1], op[2])
        else:
            # Usage, finishing and final readings target the orders still running (so they are not wasted).
            running = [o for o in self.orders if not type(o).objects.get(pk=o.pk).finished]
            if not running:
                return
            order = running[op[1] % len(running)]
            order.refresh_from_db()
            if kind == "usage":
                order.metered_usd += D(op[2]) / 100
                order.save()
                billing_record_usage(order.pk, metered_total=order.metered_usd)
            elif kind == "finish":
                how = op[2]
                if how == "never_ran":
                    finish_order(order, "failed", failure_code="provision_failed", ran=False)
                elif how in ("job_failed", "job_lost"):
                    finish_order(order, "failed", failure_code=how)
                else:
                    finish_order(order, "cancelled" if how == "cancelled_running" else "completed")
                billing_order_finished(order.pk)
            elif kind == "final_reading":
                final = (order.metered_usd * op[2] / 100).quantize(D("0.01"))
                finish_order(order, "completed", metered=str(final))
                billing_settle_order(order.pk, final_metered=final)

    def _refund(self, index: int, percent: int) -> None:
        """Refund part (or all) of a settled order; a refund bigger than what is left is a 400, which may happen."""
        from marketplace.billing.models import OrderCharge
        from marketplace.billing.services.orders import billing_refund_order
        from marketplace.errors import ValidationFailed

        settled = list(OrderCharge.objects.filter(status="settled", order__in=[o.pk for o in self.orders])
                       .order_by("order_id"))
        if not settled:
            return
        charge = settled[index % len(settled)]
        amount = None if percent == 100 else (charge.usage_amount * percent / 100).quantize(D("0.01"))
        with contextlib.suppress(ValidationFailed):
            billing_refund_order(charge.order_id, reason="property", amount=amount or None)


def _check_invariants(fake, customers) -> None:
    from django.db.models import Sum

    from marketplace.billing.models import JournalEntry, JournalLine, LedgerAccount
    from marketplace.billing.services import ledger

    assert ledger.sum_lines(JournalLine.objects.all()) == D("0.00")
    for entry in JournalEntry.objects.prefetch_related("lines"):
        assert sum((line.amount for line in entry.lines.all()), D("0")) == 0, entry.key
    for account in LedgerAccount.objects.all():
        by_python = sum((line.amount for line in account.lines.all()), D("0"))
        assert ledger.raw_balance(account) == by_python, account
        # a customer credit balance kept in the account row (whole cents) agrees with its lines; others keep none
        kept = LedgerAccount.objects.get(pk=account.pk).raw_balance_cents
        assert kept == (int(by_python * 100) if account.kind == "customer_credit" else None), account
        grouped = JournalLine.objects.filter(account=account).values("account").annotate(total=Sum("amount"))
        assert [D(str(g["total"])).quantize(D("0.01")) for g in grouped] == ([by_python] if grouped else [])
    for customer in customers:
        assert ledger.balance(ledger.customer_credit_account(customer)) >= 0
    # What the ledger says sits at Stripe == what the fake holds: captured + top-ups - refunds - transfers + reversals
    state = fake.state
    with state.lock:
        received = sum(pi["amount_received"] for pi in state.table("payment_intents").values())
        refunded = sum(r["amount"] for r in state.table("refunds").values())
        transferred = sum(t["amount"] - t["amount_reversed"] for t in state.table("transfers").values())
    at_stripe = D(received - refunded - transferred) / 100
    clearing = ledger.balance(ledger.platform_account("stripe_clearing"))
    # Top-ups whose webhook has not been processed yet are at Stripe but not yet credited.
    from marketplace.billing.models import TopUp

    uncredited = sum((t.amount for t in TopUp.objects.exclude(status="succeeded").filter(
        payment_intent_id__in=[pi for pi, obj in state.table("payment_intents").items()
                               if obj["status"] == "succeeded"])), D("0"))
    assert clearing + uncredited == at_stripe
    # A provider's payable is never negative, except by refunds whose share is still to be reversed from a
    # transfer already paid (the reversal is queued work).
    from marketplace.billing.models import OrderRefund

    for account in LedgerAccount.objects.filter(kind="provider_payable"):
        owed_back = sum((r.provider_share for r in OrderRefund.objects.filter(
            charge__provider=account.provider, status="succeeded", reversal_done=False,
            charge__transfer__status="paid")), D("0"))
        assert ledger.balance(account) + owed_back >= 0, account


def _note_coverage() -> None:
    """Statistics (pytest --hypothesis-show-statistics): which paths the examples reached."""
    from marketplace.billing.models import OrderCharge, OrderRefund, ProviderTransfer

    for status in OrderCharge.objects.values_list("status", flat=True).distinct():
        event(f"charge {status}")
    for status in ProviderTransfer.objects.values_list("status", flat=True).distinct():
        event(f"transfer {status}")
    if OrderRefund.objects.filter(status="succeeded", reversal_done=True).exists():
        event("refund reversed a paid transfer")
    if OrderRefund.objects.filter(status="succeeded").exists():
        event("refund succeeded")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(topups=st.lists(st.tuples(st.just("topup"), st.integers(0, 1), st.integers(100, 3000)), min_size=1, max_size=2),
       orders=st.lists(st.tuples(st.just("order"), st.integers(0, 1), st.integers(0, 1),
                                 st.sampled_from(["card", "credit"]), st.integers(0, 3000)), min_size=1, max_size=3),
       body=st.lists(ops, min_size=3, max_size=20),
       closing=st.lists(st.tuples(st.just("refund"), st.integers(0, 9), st.integers(1, 100)), max_size=3))
def test_any_sequence_keeps_the_ledger_balanced(fake, client, make_provider, make_order, topups, orders, body,
                                                closing):
    """After the random body, every order still open completes (end of day) and a few refunds follow, so that
    settlements, transfers and refunds after payouts are reached in most examples."""
    finish_all = [("finish", n, "completed") for n in range(len(orders) + sum(op[0] == "order" for op in body))]
    sequence = [*topups, ("work",), *orders, *body, *finish_all, ("work",), *closing]
    from marketplace.billing.models import ProviderPayoutAccount

    fake.reset()
    with transaction.atomic():
        from marketplace.models import User

        customers = [User.objects.create(username=f"prop_c{n}", role="customer") for n in range(2)]  # no hashing
        providers = [make_provider("Prop P0"), make_provider("Prop P1")]
        acct = fake.state.accounts_create({"type": "express"}, None)
        fake.state.accounts_onboard(acct["id"])
        ProviderPayoutAccount.objects.create(provider=providers[0], stripe_account_id=acct["id"],
                                             charges_enabled=True, payouts_enabled=True)  # P1 never onboarded
        run = Run(fake, client, customers, providers, make_order)
        for op in sequence:
            run.apply(op)
            _check_invariants(fake, customers)
        run.driver.settle_all()
        _check_invariants(fake, customers)
        _note_coverage()
        transaction.set_rollback(True)
