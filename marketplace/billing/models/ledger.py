"""Double-entry ledger: accounts, journal entries and their lines. Lines are immutable; balances are sums of lines.

Sign convention: a line's amount is positive for a debit and negative for a credit; every entry's lines sum to
zero (checked by the posting service before anything is written; each line is non-zero by a database CHECK).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q


class AccountKind(models.TextChoices):
    CUSTOMER_CREDIT = "customer_credit", "Customer prepaid credit"  # liability to the customer
    CUSTOMER_CARD_RECEIVABLE = "customer_card_receivable", "Customer card receivable"  # usage not yet captured
    PROVIDER_PAYABLE = "provider_payable", "Provider payable"  # owed to the provider, not yet transferred
    PLATFORM_REVENUE = "platform_revenue", "Platform revenue"  # the platform's fees
    STRIPE_CLEARING = "stripe_clearing", "Stripe clearing"  # money held at Stripe on the platform's behalf


CUSTOMER_KINDS = (AccountKind.CUSTOMER_CREDIT, AccountKind.CUSTOMER_CARD_RECEIVABLE)
PLATFORM_KINDS = (AccountKind.PLATFORM_REVENUE, AccountKind.STRIPE_CLEARING)
# Accounts whose natural balance is a credit (negative sum of lines); displayed with the sign flipped.
CREDIT_NORMAL = (AccountKind.CUSTOMER_CREDIT, AccountKind.PROVIDER_PAYABLE, AccountKind.PLATFORM_REVENUE)


class LedgerAccount(models.Model):
    kind = models.CharField(max_length=32, choices=AccountKind.choices)
    owner_key = models.CharField(max_length=40, help_text="user:<id>, provider:<id> or platform")
    customer = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                 related_name="ledger_accounts")
    provider = models.ForeignKey("marketplace.Provider", null=True, blank=True, on_delete=models.PROTECT,
                                 related_name="ledger_accounts")
    currency = models.CharField(max_length=3, default="usd")
    created_at = models.DateTimeField(auto_now_add=True)
    # The sum of the account's lines in cents, kept by the posting service in the transaction that writes them, for
    # customer credit accounts only: their balance is read on every order placement and every meter run, where
    # summing a customer's whole history (a usage entry per meter run) would grow without bound. NULL elsewhere
    # (those balances are summed from the lines). Whole cents: exact on SQLite too.
    raw_balance_cents = models.BigIntegerField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["kind", "owner_key"]
        constraints = [
            models.UniqueConstraint(fields=["kind", "owner_key", "currency"], name="ledger_account_unique"),
            models.CheckConstraint(
                condition=(Q(kind__in=CUSTOMER_KINDS, customer__isnull=False, provider__isnull=True)
                           | Q(kind=AccountKind.PROVIDER_PAYABLE, customer__isnull=True, provider__isnull=False)
                           | Q(kind__in=PLATFORM_KINDS, customer__isnull=True, provider__isnull=True,
                               owner_key="platform")),
                name="ledger_account_owner_matches_kind"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.owner_key} ({self.currency})"


class EntryKind(models.TextChoices):
    TOPUP = "topup", "Credit top-up"
    USAGE = "usage", "Metered usage"
    USAGE_ADJUSTMENT = "usage_adjustment", "Usage corrected at settlement"
    CAPTURE = "capture", "Card capture"
    FEE = "fee", "Platform fee"
    WRITE_OFF = "write_off", "Usage written off"
    VOID = "void", "Charge voided"
    REFUND = "refund", "Refund"
    TOPUP_REFUND = "topup_refund", "Top-up refunded"
    TRANSFER = "transfer", "Transfer to provider"
    TRANSFER_REVERSAL = "transfer_reversal", "Transfer reversed"


class JournalEntry(models.Model):
    key = models.CharField(max_length=120, unique=True,
                           help_text="Deterministic, from our ids: posting the same movement twice is a no-op.")
    kind = models.CharField(max_length=24, choices=EntryKind.choices)
    order_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    memo = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["id"]
        verbose_name_plural = "journal entries"

    def __str__(self) -> str:
        return self.key

    def save(self, *args, **kwargs) -> None:
        if self.pk is not None and not self._state.adding:
            raise ValueError("journal entries are immutable; post a correcting entry instead")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValueError("journal entries are immutable; post a correcting entry instead")


class JournalLine(models.Model):
    entry = models.ForeignKey(JournalEntry, on_delete=models.PROTECT, related_name="lines")
    account = models.ForeignKey(LedgerAccount, on_delete=models.PROTECT, related_name="lines")
    amount = models.DecimalField(max_digits=14, decimal_places=2, help_text="Debit positive, credit negative.")

    class Meta:
        ordering = ["id"]
        constraints = [models.CheckConstraint(condition=~Q(amount=0), name="journal_line_amount_nonzero")]

    def __str__(self) -> str:
        return f"{self.account}: {self.amount}"

    def save(self, *args, **kwargs) -> None:
        if self.pk is not None and not self._state.adding:
            raise ValueError("journal lines are immutable")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValueError("journal lines are immutable")
