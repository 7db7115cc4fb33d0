"""Writes the portal needs that no other service covers yet: sign-up, and a provider's own policies.

Both are plain services (validate, lock, write in one transaction) so the REST API can call them later too.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.utils.text import slugify

from marketplace.errors import PermissionDeniedError, ValidationFailed
from marketplace.models import Provider, User
from marketplace.models.accounts import Role
from marketplace.models.providers import WORKLOAD_KINDS
from marketplace.services.catalog_version import catalog_bump

MAX_MIN_RENTAL_HOURS = Decimal("8784")  # a leap year


def _unique_slug(name: str) -> str:
    base = slugify(name)[:100] or "provider"
    slug, n = base, 2
    while Provider.objects.filter(slug=slug).exists():
        slug, n = f"{base}-{n}", n + 1
    return slug


@transaction.atomic
def account_signup(*, username: str, email: str, password: str, role: str,
                   organisation: str = "") -> User:
    """A new customer, or a provider member together with their new (unverified) provider organisation.

    The password is already checked by Django's validators in the form; the username's uniqueness is checked
    here again under the database's unique constraint, so two sign-ups racing for one name get a field error.
    """
    errors: dict[str, list[str]] = {}
    if role not in (Role.CUSTOMER, Role.PROVIDER):
        errors["role"] = ["choose customer or provider"]
    organisation = organisation.strip()
    if role == Role.PROVIDER:
        if not organisation:
            errors["organisation"] = ["a provider account needs the organisation's name"]
        elif Provider.objects.filter(name__iexact=organisation).exists():
            errors["organisation"] = [f"'{organisation}' is already registered; ask one of its members to "
                                      f"add you instead"]
    if User.objects.filter(username__iexact=username).exists():
        errors["username"] = ["this username is taken"]
    if errors:
        raise ValidationFailed("; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items()), fields=errors)
    provider = None
    if role == Role.PROVIDER:
        provider = Provider.objects.create(name=organisation, slug=_unique_slug(organisation))
    try:
        with transaction.atomic():
            return User.objects.create_user(username=username, email=email, password=password, role=role,
                                            provider=provider)
    except IntegrityError:
        raise ValidationFailed("username: this username is taken",
                               fields={"username": ["this username is taken"]}) from None


@transaction.atomic
def provider_policy_update(*, user: User, min_rental_hours: Decimal, allowed_workload_kinds: Sequence[str],
                           interruptible_allowed: bool) -> Provider:
    """A provider member changes their organisation's policies; the engine sees them at once (catalog bump)."""
    if not user.is_provider_member:
        raise PermissionDeniedError("Only members of a provider can change its policies.")
    errors: dict[str, list[str]] = {}
    if not (Decimal(0) <= min_rental_hours <= MAX_MIN_RENTAL_HOURS):
        errors["min_rental_hours"] = [f"must be between 0 and {MAX_MIN_RENTAL_HOURS} hours"]
    unknown = sorted(set(allowed_workload_kinds) - set(WORKLOAD_KINDS))
    if not allowed_workload_kinds:
        errors["allowed_workload_kinds"] = ["accept at least one kind of workload"]
    elif unknown:
        errors["allowed_workload_kinds"] = [f"unknown kind(s) {', '.join(unknown)}; "
                                            f"use {', '.join(WORKLOAD_KINDS)}"]
    if errors:
        raise ValidationFailed("; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items()), fields=errors)
    provider = Provider.objects.select_for_update().get(pk=user.provider_id)
    kinds = [k for k in WORKLOAD_KINDS if k in set(allowed_workload_kinds)]
    if len(kinds) == len(WORKLOAD_KINDS):
        kinds = []  # the model's convention: empty means every kind
    changed = (provider.min_rental_hours != min_rental_hours or provider.allowed_workload_kinds != kinds
               or provider.interruptible_allowed != interruptible_allowed)
    if changed:
        provider.min_rental_hours = min_rental_hours
        provider.allowed_workload_kinds = kinds
        provider.interruptible_allowed = interruptible_allowed
        provider.save(update_fields=["min_rental_hours", "allowed_workload_kinds", "interruptible_allowed"])
        catalog_bump()
    return provider

