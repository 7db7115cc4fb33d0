"""Customers' billing profiles and their Stripe customer objects."""

from __future__ import annotations

from decimal import Decimal

from django.db import IntegrityError, transaction

from marketplace.billing import gateway
from marketplace.billing.models import CustomerBilling, OperationKind
from marketplace.billing.money import round_money
from marketplace.billing.services.operations import run_operation
from marketplace.errors import PermissionDeniedError, ValidationFailed


def customer_billing(user) -> CustomerBilling:
    profile = CustomerBilling.objects.filter(user=user).first()
    if profile is not None:
        return profile
    try:
        with transaction.atomic():
            return CustomerBilling.objects.create(user=user)
    except IntegrityError:
        return CustomerBilling.objects.get(user=user)


def ensure_stripe_customer(user) -> str:
    """The customer's Stripe customer id, created once (key `user:<id>:customer`)."""
    profile = customer_billing(user)
    if profile.stripe_customer_id:
        return profile.stripe_customer_id
    key = f"user:{user.pk}:customer"
    params = {"email": user.email or "", "name": user.get_username(), "user_id": user.pk}
    result = run_operation(key=key, kind=OperationKind.CUSTOMER, params=params,
                           call=lambda: gateway.create_customer(email=user.email or "", name=user.get_username(),
                                                                metadata={"user_id": str(user.pk)}, key=key))
    CustomerBilling.objects.filter(pk=profile.pk).update(stripe_customer_id=result["id"])
    return result["id"]


def billing_profile_update(user, *, default_payment_method: str) -> CustomerBilling:
    if not default_payment_method.startswith("pm_") or len(default_payment_method) > 64:
        raise ValidationFailed("Not a Stripe PaymentMethod id.",
                               fields={"default_payment_method": ["Expected a PaymentMethod id such as pm_card_visa."]})
    profile = customer_billing(user)
    profile.default_payment_method = default_payment_method
    profile.save(update_fields=["default_payment_method"])
    return profile


def billing_set_overdraft(*, operator, customer, limit: Decimal) -> CustomerBilling:
    """Operators may let a customer's prepaid credit go negative, down to -limit."""
    if not getattr(operator, "is_operator", False):
        raise PermissionDeniedError("Only operators can allow an overdraft.")
    if limit < 0 or round_money(limit) != limit:
        raise ValidationFailed("Invalid overdraft limit.",
                               fields={"overdraft_limit": ["Must be zero or more, in cents precision."]})
    profile = customer_billing(customer)
    profile.overdraft_limit = limit
    profile.save(update_fields=["overdraft_limit"])
    return profile
