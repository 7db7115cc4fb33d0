"""Operators' views of billing. Ledger rows and Stripe operations are read-only; failed transfers can be retried."""

from __future__ import annotations

from django.contrib import admin, messages

from marketplace.billing.models import (
    CustomerBilling,
    JournalEntry,
    JournalLine,
    LedgerAccount,
    OrderCharge,
    OrderRefund,
    PaymentOperation,
    ProviderPayoutAccount,
    ProviderTransfer,
    StripeEvent,
    TopUp,
)


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class JournalLineInline(admin.TabularInline):
    model = JournalLine
    extra = 0
    can_delete = False
    readonly_fields = ["account", "amount"]

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(JournalEntry)
class JournalEntryAdmin(ReadOnlyAdmin):
    list_display = ["id", "key", "kind", "order_id", "memo", "created_at"]
    list_filter = ["kind"]
    search_fields = ["key", "memo"]
    inlines = [JournalLineInline]


@admin.register(LedgerAccount)
class LedgerAccountAdmin(ReadOnlyAdmin):
    list_display = ["id", "kind", "owner_key", "currency", "raw_balance_cents", "created_at"]
    list_filter = ["kind"]
    search_fields = ["owner_key"]


@admin.register(PaymentOperation)
class PaymentOperationAdmin(ReadOnlyAdmin):
    list_display = ["key", "kind", "status", "attempts", "stripe_id", "error_code", "updated_at"]
    list_filter = ["status", "kind"]
    search_fields = ["key", "stripe_id"]


class OrderRefundInline(admin.TabularInline):
    model = OrderRefund
    extra = 0
    can_delete = False
    readonly_fields = ["seq", "amount", "reason", "status", "provider_share", "fee_share", "stripe_refund_id",
                       "reversal_done", "failure_message", "succeeded_at"]

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(OrderCharge)
class OrderChargeAdmin(ReadOnlyAdmin):
    list_display = ["order_id", "customer", "provider", "method", "status", "authorized_amount", "usage_amount",
                    "captured_amount", "refunded_amount", "failure_code"]
    list_filter = ["status", "method"]
    search_fields = ["order__id", "payment_intent_id", "customer__username"]
    inlines = [OrderRefundInline]


@admin.register(TopUp)
class TopUpAdmin(ReadOnlyAdmin):
    list_display = ["id", "customer", "amount", "status", "credited_amount", "payment_intent_id", "created_at"]
    list_filter = ["status"]
    search_fields = ["payment_intent_id", "customer__username"]


@admin.register(CustomerBilling)
class CustomerBillingAdmin(admin.ModelAdmin):
    list_display = ["user", "stripe_customer_id", "default_payment_method", "overdraft_limit"]
    fields = ["user", "stripe_customer_id", "default_payment_method", "overdraft_limit"]
    readonly_fields = ["user", "stripe_customer_id"]
    search_fields = ["user__username", "stripe_customer_id"]

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(ProviderPayoutAccount)
class ProviderPayoutAccountAdmin(ReadOnlyAdmin):
    list_display = ["provider", "stripe_account_id", "charges_enabled", "payouts_enabled",
                    "last_payout_failure_code", "last_payout_failure_at", "synced_at"]
    list_filter = ["payouts_enabled", "charges_enabled", "last_payout_failure_code"]
    search_fields = ["provider__slug", "provider__name", "stripe_account_id"]


@admin.register(ProviderTransfer)
class ProviderTransferAdmin(ReadOnlyAdmin):
    list_display = ["id", "provider", "charge", "amount", "status", "attempts", "next_attempt_at", "last_error",
                    "stripe_transfer_id", "paid_at"]
    list_filter = ["status", "provider"]
    search_fields = ["stripe_transfer_id", "charge__order__id"]
    actions = ["retry_now"]

    @admin.action(description="Retry the selected failed transfers now")
    def retry_now(self, request, queryset) -> None:
        from marketplace.billing.services.payouts import billing_retry_transfer

        retried = 0
        for transfer in queryset.filter(status__in=[ProviderTransfer.Status.FAILED,
                                                    ProviderTransfer.Status.NEEDS_OPERATOR]):
            billing_retry_transfer(operator=request.user, transfer_id=transfer.pk)
            retried += 1
        self.message_user(request, f"{retried} transfer(s) queued for another attempt.", messages.SUCCESS)


@admin.register(StripeEvent)
class StripeEventAdmin(ReadOnlyAdmin):
    list_display = ["event_id", "type", "endpoint", "status", "attempts", "error", "received_at", "processed_at"]
    list_filter = ["status", "type", "endpoint"]
    search_fields = ["event_id", "object_id"]


@admin.register(JournalLine)
class JournalLineAdmin(ReadOnlyAdmin):  # lines are immutable: only the posting service writes them
    list_display = ("id", "entry", "account", "amount")
    search_fields = ("entry__key", "account__owner_key")
    raw_id_fields = ("entry", "account")


@admin.register(OrderRefund)
class OrderRefundAdmin(admin.ModelAdmin):
    list_display = ("id", "charge", "seq", "amount", "reason", "status", "created_at", "succeeded_at")
    list_filter = ("status",)
    search_fields = ("charge__order__id", "stripe_refund_id", "reason")
    raw_id_fields = ("charge",)
