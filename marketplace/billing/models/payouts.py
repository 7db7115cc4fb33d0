"""Providers' Stripe Connect accounts and the transfers of their earnings."""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from marketplace.billing.models.payments import MONEY, ZERO, OrderCharge


class ProviderPayoutAccount(models.Model):
    provider = models.OneToOneField("marketplace.Provider", on_delete=models.PROTECT, related_name="payout_account")
    stripe_account_id = models.CharField(max_length=64, unique=True)
    charges_enabled = models.BooleanField(default=False)
    payouts_enabled = models.BooleanField(default=False)
    details_submitted = models.BooleanField(default=False)
    requirements_due = models.JSONField(default=list, blank=True)
    last_payout_failure_code = models.CharField(max_length=64, blank=True)
    last_payout_failure_at = models.DateTimeField(null=True, blank=True)
    synced_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.provider} → {self.stripe_account_id}"


class ProviderTransfer(models.Model):
    """The provider's share of one settled order (usage minus the platform fee), paid by a Stripe transfer."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        PAID = "paid", "Paid"
        FAILED = "failed", "Failed (will retry)"
        NEEDS_OPERATOR = "needs_operator", "Failed (retries exhausted)"
        NOTHING_DUE = "nothing_due", "Nothing due"

    charge = models.OneToOneField(OrderCharge, on_delete=models.PROTECT, related_name="transfer")
    provider = models.ForeignKey("marketplace.Provider", on_delete=models.PROTECT, related_name="transfers")
    amount = models.DecimalField(**MONEY)
    currency = models.CharField(max_length=3, default="usd")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    key_generation = models.PositiveIntegerField(
        default=0, help_text="Bumped after Stripe refused an attempt, so the next attempt is a new request.")
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)
    stripe_transfer_id = models.CharField(max_length=64, blank=True)
    reversed_amount = models.DecimalField(**MONEY, default=ZERO)
    created_at = models.DateTimeField(auto_now_add=True)
    paid_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["status", "next_attempt_at"])]
        constraints = [models.CheckConstraint(condition=Q(amount__gte=0, reversed_amount__gte=0),
                                              name="provider_transfer_amounts_nonneg")]

    def __str__(self) -> str:
        return f"transfer for order {self.charge.order_id}: {self.amount} ({self.status})"

    @property
    def idempotency_key(self) -> str:
        base = f"transfer:{self.charge.order_id}:{self.provider_id}"
        return base if self.key_generation == 0 else f"{base}:retry-{self.key_generation}"
