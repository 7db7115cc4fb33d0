"""Posting to the double-entry ledger. The only writer of JournalEntry/JournalLine.

`post_entry` is idempotent by key and refuses an entry whose lines do not sum to zero, that mixes currencies,
or that carries an amount not rounded to the cent. Balances are sums of the lines: computed from them, except a
customer credit account's, which post_entry keeps in the account row (`raw_balance_cents`) in the same
transaction as the lines (tests/billing/test_ledger_properties.py checks the two agree after any sequence).
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from django.db import IntegrityError, connection, transaction
from django.db.models import F, Sum

from marketplace.billing.models import AccountKind, JournalEntry, JournalLine, LedgerAccount
from marketplace.billing.models.ledger import CREDIT_NORMAL
from marketplace.billing.money import CURRENCY, ZERO, round_money

# Accounts whose balance is kept in their row (raw_balance_cents) as well as summed from their lines.
KEPT = (AccountKind.CUSTOMER_CREDIT,)


class LedgerError(Exception):
    """A posting that would break the ledger's invariants (a bug in the caller, never user input)."""


def account_key(kind: str, *, customer=None, provider=None, currency: str = CURRENCY) -> dict[str, str]:
    """The unique (kind, owner_key, currency) of an account."""
    if customer is not None:
        owner = f"user:{customer.pk}"
    elif provider is not None:
        owner = f"provider:{provider.pk}"
    else:
        owner = "platform"
    return {"kind": kind, "owner_key": owner, "currency": currency}


def ledger_account(kind: str, *, customer=None, provider=None, currency: str = CURRENCY) -> LedgerAccount:
    key = account_key(kind, customer=customer, provider=provider, currency=currency)
    account = LedgerAccount.objects.filter(**key).first()
    if account is not None:
        return account
    try:
        with transaction.atomic():
            return LedgerAccount.objects.create(**key, customer=customer, provider=provider,
                                                raw_balance_cents=0 if kind in KEPT else None)
    except IntegrityError:
        return LedgerAccount.objects.get(**key)


def platform_account(kind: str, currency: str = CURRENCY) -> LedgerAccount:
    return ledger_account(kind, currency=currency)


def post_entry(*, key: str, kind: str, lines: Iterable[tuple[LedgerAccount, Decimal]], order_id: int | None = None,
               memo: str = "") -> JournalEntry | None:
    """Write one balanced entry; return the existing entry when `key` was posted before (same lines required).
    Zero lines are dropped; an entry with no lines left is not written (returns None). Must run inside the
    transaction of the state change that caused the movement."""
    if not connection.in_atomic_block:
        raise LedgerError("post_entry must run inside transaction.atomic() with the state change it records")
    merged: dict[int, tuple[LedgerAccount, Decimal]] = {}
    for account, amount in lines:
        if not isinstance(amount, Decimal) or round_money(amount) != amount:
            raise LedgerError(f"{key}: line amount {amount!r} is not a Decimal rounded to the cent")
        previous = merged.get(account.pk, (account, ZERO))[1]
        merged[account.pk] = (account, previous + amount)
    kept = [(account, amount) for account, amount in merged.values() if amount != 0]
    total = sum((amount for _, amount in kept), ZERO)
    if total != 0:
        raise LedgerError(f"{key}: lines sum to {total}, not zero")
    if len({account.currency for account, _ in kept}) > 1:
        raise LedgerError(f"{key}: lines mix currencies")
    existing = JournalEntry.objects.filter(key=key).first()
    if existing is not None:
        _check_same(existing, kept)
        return existing
    if not kept:
        return None
    try:
        with transaction.atomic():
            entry = JournalEntry.objects.create(key=key, kind=kind, order_id=order_id, memo=memo[:200])
            JournalLine.objects.bulk_create(JournalLine(entry=entry, account=a, amount=x) for a, x in kept)
            for account, amount in sorted(kept, key=lambda line: line[0].pk):
                if account.kind in KEPT:
                    LedgerAccount.objects.filter(pk=account.pk).update(
                        raw_balance_cents=F("raw_balance_cents") + int(amount * 100))
    except IntegrityError:
        existing = JournalEntry.objects.get(key=key)  # posted concurrently by another delivery of the same work
        _check_same(existing, kept)
        return existing
    return entry


def _check_same(entry: JournalEntry, lines: list[tuple[LedgerAccount, Decimal]]) -> None:
    stored = sorted((line.account_id, line.amount) for line in entry.lines.all())
    if stored != sorted((account.pk, amount) for account, amount in lines):
        raise LedgerError(f"{entry.key} was already posted with different lines")


def sum_lines(lines) -> Decimal:
    """SUM(amount) of a JournalLine queryset, exact to the cent (SQLite sums decimals as floating point; every
    line is a whole number of cents, so rounding the sum to the cent restores the exact value)."""
    total = lines.aggregate(total=Sum("amount"))["total"]
    return round_money(Decimal(total)) if total is not None else ZERO


def raw_balance(account: LedgerAccount) -> Decimal:
    """Sum of the account's lines (debits positive): read from the account row where post_entry keeps it."""
    if account.kind in KEPT:
        cents = LedgerAccount.objects.filter(pk=account.pk).values_list("raw_balance_cents", flat=True).first()
        if cents is not None:
            return Decimal(cents).scaleb(-2)
    return sum_lines(account.lines.all())


def loaded_balance(account: LedgerAccount) -> Decimal:
    """`balance` of an account the caller has just read or locked: a kept balance is taken from the row as loaded
    (no second read); any other is summed from its lines."""
    if account.kind in KEPT and account.raw_balance_cents is not None:
        raw = Decimal(account.raw_balance_cents).scaleb(-2)
        return -raw if account.kind in CREDIT_NORMAL else raw
    return balance(account)


def balance(account: LedgerAccount) -> Decimal:
    """The balance on the account's natural side (credit-normal accounts shown positive when in credit)."""
    raw = raw_balance(account)
    return -raw if account.kind in CREDIT_NORMAL else raw


def order_balance(account: LedgerAccount, order_id: int) -> Decimal:
    """Natural-side balance of the account counting only entries about one order."""
    raw = sum_lines(account.lines.filter(entry__order_id=order_id))
    return -raw if account.kind in CREDIT_NORMAL else raw


def customer_credit_account(user) -> LedgerAccount:
    return ledger_account(AccountKind.CUSTOMER_CREDIT, customer=user)


def customer_credit_account_key(user) -> dict[str, str]:
    return account_key(AccountKind.CUSTOMER_CREDIT, customer=user)


def customer_receivable_account(user) -> LedgerAccount:
    return ledger_account(AccountKind.CUSTOMER_CARD_RECEIVABLE, customer=user)


def provider_payable_account(provider) -> LedgerAccount:
    return ledger_account(AccountKind.PROVIDER_PAYABLE, provider=provider)
