"""Input and output serializers of the billing API. Money is rendered as strings with two decimals."""

from __future__ import annotations

from decimal import Decimal

from rest_framework import serializers

from marketplace.billing.models import OrderCharge, OrderRefund, ProviderPayoutAccount, ProviderTransfer, TopUp


class MoneyField(serializers.DecimalField):
    def __init__(self, **kw):
        super().__init__(max_digits=14, decimal_places=2, coerce_to_string=True, **kw)


class CreditSerializer(serializers.Serializer):
    currency = serializers.CharField()
    balance = MoneyField()
    overdraft_limit = MoneyField()
    available = MoneyField()
    default_payment_method = serializers.CharField()
    mode = serializers.CharField(help_text="test (the fake or Stripe test keys) or live")


class ProfileInputSerializer(serializers.Serializer):
    default_payment_method = serializers.CharField(max_length=64)


class TopUpInputSerializer(serializers.Serializer):
    amount = serializers.DecimalField(max_digits=10, decimal_places=2, min_value=Decimal("1.00"),
                                      max_value=Decimal("10000.00"))
    payment_method = serializers.CharField(max_length=64, required=False, allow_blank=False,
                                           help_text="Confirm server-side with this PaymentMethod (test mode: "
                                                     "pm_card_visa); omit to confirm in the browser.")


class TopUpSerializer(serializers.ModelSerializer):
    amount = MoneyField()
    credited_amount = MoneyField()
    refunded_amount = MoneyField()

    class Meta:
        model = TopUp
        fields = ["id", "amount", "currency", "status", "payment_intent_id", "client_secret", "credited_amount",
                  "refunded_amount", "failure_code", "failure_message", "created_at", "credited_at"]


class RefundSerializer(serializers.ModelSerializer):
    amount = MoneyField()

    class Meta:
        model = OrderRefund
        fields = ["seq", "amount", "reason", "status", "stripe_refund_id", "created_at", "succeeded_at"]


class ChargeSerializer(serializers.ModelSerializer):
    provider = serializers.CharField(source="provider.name")
    authorized_amount = MoneyField()
    metered_amount = MoneyField()
    usage_amount = MoneyField()
    uncovered_amount = MoneyField()
    written_off_amount = MoneyField()
    captured_amount = MoneyField()
    fee_amount = MoneyField()
    refunded_amount = MoneyField()
    refunds = RefundSerializer(many=True, read_only=True)

    class Meta:
        model = OrderCharge
        fields = ["order_id", "provider", "method", "currency", "status", "description", "unit_label", "unit_price",
                  "usage_quantity", "authorized_amount", "metered_amount", "usage_amount", "uncovered_amount",
                  "written_off_amount", "captured_amount", "fee_amount", "refunded_amount", "payment_intent_id",
                  "failure_code", "failure_message", "warned_at", "settled_at", "created_at", "refunds"]


class RefundInputSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=64)
    amount = serializers.DecimalField(max_digits=14, decimal_places=2, min_value=Decimal("0.01"), required=False)


class OverdraftInputSerializer(serializers.Serializer):
    overdraft_limit = serializers.DecimalField(max_digits=14, decimal_places=2, min_value=Decimal("0"))


class OnboardingInputSerializer(serializers.Serializer):
    return_url = serializers.URLField(required=False, max_length=500,
                                      help_text="Where Stripe sends the member after onboarding (default: the "
                                                "payout-account endpoint).")
    refresh_url = serializers.URLField(required=False, max_length=500,
                                       help_text="Where Stripe sends the member when the link expired.")

    def validate(self, data: dict) -> dict:
        for name, url in data.items():
            if not url.startswith(("https://", "http://127.0.0.1", "http://localhost")):
                raise serializers.ValidationError({name: ["Must be an https:// URL (or local in dev)."]})
        return data


class PayoutAccountSerializer(serializers.ModelSerializer):
    class Meta:
        model = ProviderPayoutAccount
        fields = ["stripe_account_id", "charges_enabled", "payouts_enabled", "details_submitted",
                  "requirements_due", "last_payout_failure_code", "last_payout_failure_at", "synced_at"]


class TransferSerializer(serializers.ModelSerializer):
    order_id = serializers.IntegerField(source="charge.order_id")
    provider = serializers.CharField(source="provider.name")
    amount = MoneyField()
    reversed_amount = MoneyField()

    class Meta:
        model = ProviderTransfer
        fields = ["id", "order_id", "provider", "amount", "currency", "status", "attempts", "next_attempt_at",
                  "last_error", "stripe_transfer_id", "reversed_amount", "created_at", "paid_at"]
