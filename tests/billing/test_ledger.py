"""The ledger's invariants: balanced entries only, cents only, idempotent by key, immutable lines, a database
CHECK against zero lines, balances derived from the lines; money rounding and fee split."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction

pytestmark = pytest.mark.django_db

D = Decimal


@pytest.fixture
def accounts(customer, provider_a):
    from marketplace.billing.services import ledger

    return {"credit": ledger.customer_credit_account(customer), "payable": ledger.provider_payable_account(provider_a),
            "clearing": ledger.platform_account("stripe_clearing"),
            "revenue": ledger.platform_account("platform_revenue")}


def _count() -> tuple[int, int]:
    from marketplace.billing.models import JournalEntry, JournalLine

    return JournalEntry.objects.count(), JournalLine.objects.count()


@pytest.mark.parametrize("amounts, message", [
    ((D("10.00"), D("-9.99")), "t: lines sum to 0.01, not zero"),
    ((D("10.001"), D("-10.001")), "t: line amount Decimal('10.001') is not a Decimal rounded to the cent"),
    ((10, -10), "t: line amount 10 is not a Decimal rounded to the cent"),
])
def test_unbalanced_or_unrounded_entries_are_refused(accounts, amounts, message):
    from marketplace.billing.services.ledger import LedgerError, post_entry

    with pytest.raises(LedgerError) as info, transaction.atomic():
        post_entry(key="t", kind="topup", lines=[(accounts["clearing"], amounts[0]), (accounts["credit"], amounts[1])])
    assert str(info.value) == message
    assert _count() == (0, 0)


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_posting_needs_the_callers_transaction(accounts):
    from marketplace.billing.services.ledger import LedgerError, post_entry

    with pytest.raises(LedgerError, match="must run inside transaction.atomic"):
        post_entry(key="t", kind="topup", lines=[(accounts["clearing"], D("1.00")), (accounts["credit"], D("-1.00"))])
    assert _count() == (0, 0)


def test_same_key_is_posted_once_and_must_match(accounts):
    from marketplace.billing.services.ledger import LedgerError, balance, post_entry

    lines = [(accounts["clearing"], D("5.00")), (accounts["credit"], D("-5.00"))]
    with transaction.atomic():
        first = post_entry(key="topup:1:credit", kind="topup", lines=lines)
        again = post_entry(key="topup:1:credit", kind="topup", lines=lines)
    assert first.pk == again.pk and _count() == (1, 2)
    assert balance(accounts["credit"]) == D("5.00") and balance(accounts["clearing"]) == D("5.00")
    with pytest.raises(LedgerError, match="was already posted with different lines"), transaction.atomic():
        post_entry(key="topup:1:credit", kind="topup",
                   lines=[(accounts["clearing"], D("6.00")), (accounts["credit"], D("-6.00"))])
    assert _count() == (1, 2)


def test_lines_on_the_same_account_are_merged_and_zero_lines_dropped(accounts):
    from marketplace.billing.models import JournalEntry
    from marketplace.billing.services.ledger import post_entry

    with transaction.atomic():
        entry = post_entry(key="k", kind="refund", lines=[
            (accounts["revenue"], D("0.00")), (accounts["payable"], D("1.00")), (accounts["payable"], D("2.00")),
            (accounts["credit"], D("-3.00"))])
        nothing = post_entry(key="empty", kind="refund", lines=[(accounts["revenue"], D("0.00"))])
    assert nothing is None and not JournalEntry.objects.filter(key="empty").exists()
    assert sorted((line.account.kind, line.amount) for line in entry.lines.all()) == [
        ("customer_credit", D("-3.00")), ("provider_payable", D("3.00"))]


def test_database_refuses_zero_lines_and_entries_are_immutable(accounts):
    from marketplace.billing.models import JournalEntry, JournalLine
    from marketplace.billing.services.ledger import post_entry

    entry = JournalEntry.objects.create(key="raw", kind="topup")
    with pytest.raises(IntegrityError), transaction.atomic():
        JournalLine.objects.create(entry=entry, account=accounts["credit"], amount=D("0.00"))
    with transaction.atomic():
        posted = post_entry(key="p", kind="topup", lines=[(accounts["clearing"], D("1.00")),
                                                          (accounts["credit"], D("-1.00"))])
    line = posted.lines.first()
    line.amount = D("2.00")
    with pytest.raises(ValueError, match="journal lines are immutable"):
        line.save()
    with pytest.raises(ValueError, match="journal entries are immutable"):
        posted.delete()
    assert JournalLine.objects.get(pk=line.pk).amount == D("1.00")


def test_account_owner_must_match_its_kind(customer, provider_a):
    from marketplace.billing.models import LedgerAccount

    with pytest.raises(IntegrityError), transaction.atomic():
        LedgerAccount.objects.create(kind="provider_payable", owner_key=f"user:{customer.pk}", customer=customer)
    with pytest.raises(IntegrityError), transaction.atomic():
        LedgerAccount.objects.create(kind="platform_revenue", owner_key="platform", provider=provider_a)


def test_money_rounding_and_fee_split():
    from marketplace.billing.money import from_cents, platform_fee, round_money, to_cents

    assert round_money(D("2.345")) == D("2.35") and round_money(D("2.335")) == D("2.34")  # half up
    assert round_money(D("-0.005")) == D("-0.01")
    assert (to_cents(D("12.34")), from_cents(1234)) == (1234, D("12.34"))
    with pytest.raises(ValueError, match="not rounded to the cent"):
        to_cents(D("1.234"))
    with pytest.raises(TypeError, match="money must be Decimal, got float"):
        round_money(1.5)
    assert platform_fee(D("3.25"), D("10")) == (D("0.33"), D("2.92"))
    assert platform_fee(D("0.05"), D("10")) == (D("0.01"), D("0.04"))
    assert platform_fee(D("9.99"), D("12.5")) == (D("1.25"), D("8.74"))


def test_a_customer_credit_balance_is_kept_in_its_row_and_read_without_summing_the_lines(accounts, customer):
    """Placement and every meter run read the credit balance: it must not cost a SUM over the customer's whole
    history. post_entry keeps it in the account row (whole cents) in the entry's transaction; a replayed key and a
    rolled-back posting leave it alone; other accounts are still summed from their lines."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from marketplace.billing.models import LedgerAccount
    from marketplace.billing.services import ledger
    from marketplace.billing.services.orders import credit_available

    def kept(account) -> int | None:
        return LedgerAccount.objects.get(pk=account.pk).raw_balance_cents

    assert (kept(accounts["credit"]), kept(accounts["clearing"]), kept(accounts["payable"])) == (0, None, None)
    with transaction.atomic():
        for i in range(5):  # top-ups of 10.01 each, then usage of 0.07 each
            ledger.post_entry(key=f"topup:{i}", kind="topup",
                              lines=[(accounts["clearing"], D("10.01")), (accounts["credit"], D("-10.01"))])
            ledger.post_entry(key=f"usage:{i}", kind="usage",
                              lines=[(accounts["credit"], D("0.07")), (accounts["payable"], D("-0.07"))])
        ledger.post_entry(key="topup:0", kind="topup",  # a replay: no new lines, no change
                          lines=[(accounts["clearing"], D("10.01")), (accounts["credit"], D("-10.01"))])
    with pytest.raises(RuntimeError), transaction.atomic():
        ledger.post_entry(key="rolled-back", kind="topup",
                          lines=[(accounts["clearing"], D("1.00")), (accounts["credit"], D("-1.00"))])
        raise RuntimeError("the state change failed")
    assert kept(accounts["credit"]) == -4970  # credit-normal: 5 x -10.01 + 5 x 0.07
    assert ledger.sum_lines(accounts["credit"].lines.all()) == D("-49.70")
    with CaptureQueriesContext(connection) as queries:
        balance, available = credit_available(customer)
    assert (balance, str(balance)) == (D("49.70"), "49.70")
    assert not [q["sql"] for q in queries.captured_queries if "SUM(" in q["sql"].upper()]
    assert ledger.balance(accounts["payable"]) == D("0.35")  # summed from its lines
