"""Reads of billing state for the API: credit balance, charges, top-ups, transfers, payout accounts."""

from __future__ import annotations

from django.db.models import QuerySet

from marketplace.billing.gateway import load_config
from marketplace.billing.models import (
    OrderCharge,
    ProviderPayoutAccount,
    ProviderTransfer,
    TopUp,
)
from marketplace.billing.services import ledger
from marketplace.billing.services.customers import customer_billing
from marketplace.errors import NotFoundError, PermissionDeniedError


def credit_summary(user) -> dict:
    balance = ledger.balance(ledger.customer_credit_account(user))
    profile = customer_billing(user)
    return {"currency": "usd", "balance": balance, "overdraft_limit": profile.overdraft_limit,
            "available": balance + profile.overdraft_limit, "default_payment_method": profile.default_payment_method,
            "mode": load_config().mode}


def topups_for(user) -> QuerySet[TopUp]:
    return TopUp.objects.filter(customer=user).order_by("-id")


def topup_for(user, topup_id: int) -> TopUp:
    topup = TopUp.objects.filter(pk=topup_id, customer=user).first()
    if topup is None:
        raise NotFoundError(f"No top-up {topup_id}.")
    return topup


def charge_for(user, order_id: int) -> OrderCharge:
    charge = OrderCharge.objects.select_related("provider").filter(order_id=order_id).first()
    if charge is None or not (charge.customer_id == user.pk or getattr(user, "is_operator", False)):
        raise NotFoundError(f"Order {order_id} has no billing record.")
    return charge


def charges_for(user) -> QuerySet[OrderCharge]:
    return OrderCharge.objects.filter(customer=user).select_related("provider").order_by("-id")


def payout_account_for(user) -> ProviderPayoutAccount | None:
    if not getattr(user, "is_provider_member", False):
        raise PermissionDeniedError("Only provider members have a payout account.")
    return ProviderPayoutAccount.objects.filter(provider_id=user.provider_id).first()


def transfers_for(user, *, status: str | None = None) -> QuerySet[ProviderTransfer]:
    """A provider member sees their provider's transfers; an operator sees all (optionally by status)."""
    queryset = ProviderTransfer.objects.select_related("charge", "provider").order_by("-id")
    if getattr(user, "is_operator", False):
        pass
    elif getattr(user, "is_provider_member", False):
        queryset = queryset.filter(provider_id=user.provider_id)
    else:
        raise PermissionDeniedError("Only provider members and operators see transfers.")
    if status:
        queryset = queryset.filter(status=status)
    return queryset
