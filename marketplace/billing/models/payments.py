"""Customers' billing profiles, Stripe operations (one row per idempotency key), order charges, refunds, top-ups."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import F, Q

MONEY = {"max_digits": 14, "decimal_places": 2}
ZERO = Decimal("0.00")
ZERO4 = Decimal("0.0000")


class CustomerBilling(models.Model):
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="billing")
    stripe_customer_id = models.CharField(max_length=64, blank=True)
    default_payment_method = models.CharField(max_length=64, blank=True,
                                              help_text="A Stripe PaymentMethod id (test mode: pm_card_visa).")
    overdraft_limit = models.DecimalField(**MONEY, default=ZERO,
                                          help_text="How far prepaid credit may go below zero (operators only).")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(overdraft_limit__gte=0),
                                              name="customer_billing_overdraft_nonneg")]

    def __str__(self) -> str:
        return f"billing of {self.user}"


class OperationKind(models.TextChoices):
    CUSTOMER = "customer", "Create customer"
    AUTHORIZE = "authorize", "Authorize card hold"
    CAPTURE = "capture", "Capture"
    CANCEL = "cancel", "Release hold"
    REFUND = "refund", "Refund"
    TOPUP_INTENT = "topup_intent", "Top-up payment"
    ACCOUNT = "account", "Create connected account"
    ACCOUNT_LINK = "account_link", "Onboarding link"
    TRANSFER = "transfer", "Transfer to provider"
    TRANSFER_REVERSAL = "transfer_reversal", "Transfer reversal"


class PaymentOperation(models.Model):
    """A Stripe POST, written (committed) before the call under its deterministic idempotency key, so a retried
    task repeats the same request and Stripe replays the first result instead of acting twice."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending (not known to have succeeded)"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed (terminal)"

    key = models.CharField(max_length=120, unique=True)
    kind = models.CharField(max_length=24, choices=OperationKind.choices)
    params = models.JSONField(default=dict)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    stripe_id = models.CharField(max_length=64, blank=True)
    result = models.JSONField(null=True, blank=True)
    error_kind = models.CharField(max_length=24, blank=True)
    error_code = models.CharField(max_length=64, blank=True)
    error_message = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["status", "kind"])]

    def __str__(self) -> str:
        return f"{self.key} ({self.status})"


class PaymentMethodKind(models.TextChoices):
    CARD = "card", "Card (authorize, then capture usage)"
    CREDIT = "credit", "Prepaid credit"


class OrderCharge(models.Model):
    """Billing's side of one order: how it is paid, what has been charged, captured, refunded."""

    class Status(models.TextChoices):
        AUTHORIZING = "authorizing", "Authorizing"
        AUTHORIZED = "authorized", "Authorized (usage accrues)"
        DECLINED = "declined", "Declined"
        SETTLING = "settling", "Settling (capture queued)"
        SETTLED = "settled", "Settled"
        CAPTURE_FAILED = "capture_failed", "Capture failed (operator)"
        VOIDING = "voiding", "Voiding (releasing the hold)"
        VOIDED = "voided", "Voided"
        EXPIRED = "expired", "Card hold expired"

    order = models.OneToOneField("orders.Order", on_delete=models.PROTECT, related_name="charge")
    customer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="order_charges")
    provider = models.ForeignKey("marketplace.Provider", on_delete=models.PROTECT, related_name="order_charges")
    method = models.CharField(max_length=8, choices=PaymentMethodKind.choices)
    currency = models.CharField(max_length=3, default="usd")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.AUTHORIZING)
    description = models.CharField(max_length=200, blank=True)
    unit_label = models.CharField(max_length=32, default="accelerator-hour")
    unit_price = models.DecimalField(max_digits=14, decimal_places=4, default=ZERO4)
    authorized_amount = models.DecimalField(**MONEY, default=ZERO, help_text="Card: the hold. Credit: the quoted max.")
    metered_amount = models.DecimalField(**MONEY, default=ZERO, help_text="Latest cumulative meter reading (rounded).")
    usage_quantity = models.DecimalField(max_digits=14, decimal_places=4, default=ZERO4)
    usage_amount = models.DecimalField(**MONEY, default=ZERO, help_text="Usage charged so far (posted to the ledger).")
    uncovered_amount = models.DecimalField(**MONEY, default=ZERO,
                                           help_text="Metered but not charged: beyond the hold or the credit.")
    written_off_amount = models.DecimalField(**MONEY, default=ZERO)
    captured_amount = models.DecimalField(**MONEY, default=ZERO)
    fee_amount = models.DecimalField(**MONEY, default=ZERO)
    refunded_amount = models.DecimalField(**MONEY, default=ZERO)
    payment_method = models.CharField(max_length=64, blank=True)
    payment_intent_id = models.CharField(max_length=64, blank=True, db_index=True)
    failure_code = models.CharField(max_length=64, blank=True)
    failure_message = models.CharField(max_length=300, blank=True)
    warned_at = models.DateTimeField(null=True, blank=True)
    settled_at = models.DateTimeField(null=True, blank=True, help_text="When it was settled or voided.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(authorized_amount__gte=0, metered_amount__gte=0, usage_amount__gte=0,
                            uncovered_amount__gte=0, written_off_amount__gte=0, captured_amount__gte=0,
                            fee_amount__gte=0, refunded_amount__gte=0),
                name="order_charge_amounts_nonneg"),
            models.CheckConstraint(condition=Q(method="credit") | Q(usage_amount__lte=F("authorized_amount")),
                                   name="order_charge_card_usage_within_hold"),
            models.CheckConstraint(condition=Q(refunded_amount__lte=F("usage_amount")),
                                   name="order_charge_refunds_within_usage"),
        ]

    def __str__(self) -> str:
        return f"order {self.order_id} ({self.method}, {self.status})"


class OrderRefund(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed (operator)"

    charge = models.ForeignKey(OrderCharge, on_delete=models.PROTECT, related_name="refunds")
    seq = models.PositiveIntegerField()
    amount = models.DecimalField(**MONEY)
    reason = models.CharField(max_length=64)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PENDING)
    provider_share = models.DecimalField(**MONEY, default=ZERO, help_text="Taken back from the provider's share.")
    fee_share = models.DecimalField(**MONEY, default=ZERO, help_text="Taken back from the platform fee.")
    stripe_refund_id = models.CharField(max_length=64, blank=True)
    reversal_done = models.BooleanField(default=False,
                                        help_text="The provider's share was reversed from a paid transfer.")
    failure_message = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    succeeded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["charge_id", "seq"]
        constraints = [
            models.UniqueConstraint(fields=["charge", "seq"], name="order_refund_seq_unique"),
            models.CheckConstraint(condition=Q(amount__gt=0), name="order_refund_amount_positive"),
        ]

    def __str__(self) -> str:
        return f"refund {self.seq} of order {self.charge.order_id}: {self.amount} ({self.status})"


class TopUp(models.Model):
    class Status(models.TextChoices):
        CREATED = "created", "Created"
        REQUIRES_PAYMENT = "requires_payment", "Waiting for the customer's payment"
        PROCESSING = "processing", "Paid; waiting for Stripe's confirmation (webhook)"
        SUCCEEDED = "succeeded", "Credited"
        FAILED = "failed", "Payment failed"
        CANCELED = "canceled", "Canceled"

    customer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="topups")
    amount = models.DecimalField(**MONEY)
    currency = models.CharField(max_length=3, default="usd")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.CREATED)
    payment_intent_id = models.CharField(max_length=64, blank=True, db_index=True)
    client_secret = models.CharField(max_length=200, blank=True,
                                     help_text="For Stripe.js to confirm the payment in the browser.")
    credited_amount = models.DecimalField(**MONEY, default=ZERO)
    refunded_amount = models.DecimalField(**MONEY, default=ZERO)
    failure_code = models.CharField(max_length=64, blank=True)
    failure_message = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    credited_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [models.CheckConstraint(condition=Q(amount__gt=0), name="topup_amount_positive")]

    def __str__(self) -> str:
        return f"top-up {self.pk} {self.amount} {self.currency} ({self.status})"
