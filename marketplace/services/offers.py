"""Offer writes by providers (and operators): create, update, unlist, bulk upsert, and expiry.

Who may write: a provider member only offers of their own provider (another provider's offer is "not
found", so its existence does not leak); an operator any offer. Customers may not write offers.

Input arrives already type-checked by the API's serializer (ranges, choices, numbers). Errors that check
found come in as `input_errors` (the valid fields still come in `data`), so one answer lists every problem.
The service resolves names to rows (accelerator through the hardware vocabulary, region key, provider
slug), checks the status transition table and cross-field rules, and writes inside one transaction. The
database's check and unique constraints are the last line; a violation that slips past (a concurrent
duplicate) becomes a 409.

Bulk upsert is all-or-nothing: every row is validated first; if any row fails, the answer lists each failing
row's field errors and nothing is written. Rows are matched to existing offers by `external_id`.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from broker.hardware.vocabulary import default_vocabulary
from marketplace.errors import ConflictError, NotFoundError, PermissionDeniedError, ValidationFailed
from marketplace.models import Accelerator, Offer, Provider, Region, User
from marketplace.services.catalog_version import catalog_bump

MAX_BULK_ROWS = 1000  # the default of settings.OFFERS_BULK_MAX_ROWS, which is what is enforced

# (from, to) pairs a provider may move an offer along. Staying in the same status is always allowed.
TRANSITIONS: frozenset[tuple[str, str]] = frozenset({
    ("draft", "listed"), ("listed", "unlisted"), ("unlisted", "listed"),
})
CREATE_STATUSES = ("draft", "listed")

# API field name -> model field name, for the fields copied as they are.
PLAIN_FIELDS = {
    "external_id": "external_id", "name": "name", "count": "accelerator_count",
    "memory_gb": "accelerator_memory_gb", "vcpus": "vcpus", "ram_gb": "ram_gb", "disk_gb": "disk_gb",
    "interconnect": "interconnect", "inter_node": "inter_node", "network_gbps": "network_gbps",
    "price_per_hour": "price_per_hour", "interruptible_price_per_hour": "interruptible_price_per_hour",
    "nodes_available": "nodes_available", "min_rental_hours": "min_rental_hours",
    "available_until": "available_until", "status": "status",
}
WRITABLE_MODEL_FIELDS = (*PLAIN_FIELDS.values(), "accelerator", "region", "driver")

Errors = dict[str, list[str]]


@dataclass
class BulkResult:
    created: list[int] = field(default_factory=list)
    updated: list[int] = field(default_factory=list)
    unchanged: list[int] = field(default_factory=list)
    ids: list[int] = field(default_factory=list)  # in row order


# ----------------------------------------------------------------------------------------- who may write
def writable_provider(*, user: User, provider_slug: str | None) -> Provider:
    """The provider `user` writes offers for; raises 403 for customers, 400 for a foreign provider."""
    if user.is_operator:
        if not provider_slug:
            raise ValidationFailed("Operators must say which provider the offers belong to.",
                                   fields={"provider": ["This field is required for operators."]})
        provider = Provider.objects.filter(slug=provider_slug).first()
        if provider is None:
            raise ValidationFailed(f"Unknown provider '{provider_slug}'.",
                                   fields={"provider": [f"unknown provider '{provider_slug}'"]})
        return provider
    if not user.is_provider_member:
        raise PermissionDeniedError("Only provider members and operators can write offers.")
    provider = user.provider
    if provider_slug and provider_slug != provider.slug:
        raise ValidationFailed(
            f"You can only write offers of your own provider '{provider.slug}'.",
            fields={"provider": [f"you can only write offers of your own provider '{provider.slug}'"]})
    return provider


def _locked_offer(*, user: User, offer_id: int) -> Offer:
    qs = Offer.objects.select_for_update(no_key=True).filter(pk=offer_id)  # reservations.lock_offers: why no_key
    if not user.is_operator:
        if not user.is_provider_member:
            raise PermissionDeniedError("Only provider members and operators can write offers.")
        qs = qs.filter(provider_id=user.provider_id)
    offer = qs.first()
    if offer is None:
        raise NotFoundError(f"No offer {offer_id}.")
    return offer


# ------------------------------------------------------------------------------------------ resolution
class _Resolver:
    """Turns names into rows, caching within one request (a bulk upload names the same few many times)."""

    def __init__(self) -> None:
        self._accelerators: dict[str, Accelerator | str] = {}
        self._regions: dict[str, Region | None] = {}

    def accelerator(self, name: str) -> Accelerator | str:
        """The accelerator row, or the error message."""
        if name not in self._accelerators:
            res = default_vocabulary().resolve(name)
            if res.status == "exact":
                row = Accelerator.objects.filter(canonical_name=res.canonical).first()
                self._accelerators[name] = row or f"accelerator '{res.canonical}' is not in the catalog"
            elif res.status == "ambiguous":
                self._accelerators[name] = f"{res.message()}; name one of them"
            else:
                self._accelerators[name] = res.message()
        return self._accelerators[name]

    def region(self, key: str) -> Region | str:
        if key not in self._regions:
            self._regions[key] = Region.objects.filter(key=key).first()
        row = self._regions[key]
        if row is not None:
            return row
        keys = list(Region.objects.values_list("key", flat=True))
        close = sorted(k for k in keys if k.startswith(key + "-"))[:3]
        close = close or difflib.get_close_matches(key, keys, n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        return f"unknown region '{key}'{hint}"


def _resolve(data: Mapping[str, Any], resolver: _Resolver, *, current: Offer | None,
             provider: Provider | None = None) -> tuple[dict, Errors]:
    """API fields -> model fields for the given (possibly partial) data, with field errors."""
    errors: Errors = {}
    values: dict[str, Any] = {PLAIN_FIELDS[k]: v for k, v in data.items() if k in PLAIN_FIELDS}
    if "driver" in data and (current is None or data["driver"] != current.driver):
        from marketplace.orders.services.drivers import driver_refusal

        refusal = driver_refusal(provider or current.provider, data["driver"])
        if refusal:
            errors["driver"] = [refusal]
        else:
            values["driver"] = data["driver"]
    accelerator = current.accelerator if current is not None else None
    if "accelerator" in data:
        found = resolver.accelerator(data["accelerator"])
        if isinstance(found, str):
            errors["accelerator"] = [found]
        else:
            accelerator = values["accelerator"] = found
    if "region" in data:
        found = resolver.region(data["region"])
        if isinstance(found, str):
            errors["region"] = [found]
        else:
            values["region"] = found
    if current is None and values.get("accelerator_memory_gb") is None and accelerator is not None:
        if accelerator.memory_gb:
            values["accelerator_memory_gb"] = accelerator.memory_gb
        else:
            errors["memory_gb"] = [
                f"required: the catalog has no memory size for {accelerator.canonical_name}"]
    merged = {f: getattr(current, f) for f in PLAIN_FIELDS.values()} if current is not None else {}
    merged.update(values)
    errors.update(_cross_field_errors(merged, current=current))
    return values, errors


def _cross_field_errors(merged: Mapping[str, Any], *, current: Offer | None) -> Errors:
    errors: Errors = {}
    price, spot = merged.get("price_per_hour"), merged.get("interruptible_price_per_hour")
    if price is not None and spot is not None and Decimal(spot) > Decimal(price):
        errors["interruptible_price_per_hour"] = [
            f"the interruptible price ({spot}) cannot be higher than the on-demand price ({price})"]
    status = merged.get("status", Offer.Status.DRAFT)
    if current is None:
        if status not in CREATE_STATUSES:
            errors["status"] = [f"a new offer starts as {' or '.join(CREATE_STATUSES)}, not {status}"]
    elif status != current.status and (current.status, status) not in TRANSITIONS:
        allowed = sorted(to for frm, to in TRANSITIONS if frm == current.status)
        errors["status"] = [f"cannot go from {current.status} to {status}; from {current.status} "
                            f"an offer can go to {', '.join(allowed)}"]
    until: datetime | None = merged.get("available_until")
    if status == Offer.Status.LISTED and until is not None and until <= timezone.now():
        errors["available_until"] = ["a listed offer must be available until a time in the future"]
    return errors


def _save(offer: Offer, values: Mapping[str, Any]) -> Offer:
    for name, value in values.items():
        setattr(offer, name, value)
    try:
        with transaction.atomic():
            offer.save()
            catalog_bump()
    except IntegrityError as exc:
        raise _conflict(exc) from None
    offer.refresh_from_db(fields=["price_per_accelerator_hour"])
    return offer


def _conflict(exc: IntegrityError) -> ConflictError:
    if "external_id" in str(exc) or "offer_unique_provider_external_id" in str(exc):
        return ConflictError("An offer with this external_id already exists for the provider.",
                             fields={"external_id": ["already used by another offer of this provider"]})
    return ConflictError(f"The database refused the write: {exc}")


def _check_external_id_free(provider: Provider, external_id: str, exclude_id: int | None) -> Errors:
    if not external_id:
        return {}
    qs = Offer.objects.filter(provider=provider, external_id=external_id)
    if exclude_id is not None:
        qs = qs.exclude(pk=exclude_id)
    if qs.exists():
        return {"external_id": [f"offer {qs.values_list('id', flat=True).first()} of this provider "
                                f"already has external_id '{external_id}'"]}
    return {}


# --------------------------------------------------------------------------------------------- services
@transaction.atomic
def offer_create(*, user: User, data: Mapping[str, Any], input_errors: Errors | None = None) -> Offer:
    provider = writable_provider(user=user, provider_slug=data.get("provider"))
    values, errors = _resolve(data, _Resolver(), current=None, provider=provider)
    errors.update(_check_external_id_free(provider, data.get("external_id", ""), None))
    errors = _merge(input_errors, errors)
    if errors:
        raise ValidationFailed(_summary(errors), fields=errors)
    return _save(Offer(provider=provider, source=Offer.Source.PROVIDER), values)


@transaction.atomic
def offer_update(*, user: User, offer_id: int, data: Mapping[str, Any], input_errors: Errors | None = None
                 ) -> Offer:
    offer = _locked_offer(user=user, offer_id=offer_id)
    if data.get("provider") and data["provider"] != offer.provider.slug:
        raise ValidationFailed("An offer cannot move to another provider.",
                               fields={"provider": ["an offer cannot move to another provider"]})
    values, errors = _resolve(data, _Resolver(), current=offer)
    if "external_id" in data:
        errors.update(_check_external_id_free(offer.provider, data["external_id"], offer.pk))
    errors = _merge(input_errors, errors)
    if errors:
        raise ValidationFailed(_summary(errors), fields=errors)
    return _save(offer, values)


@transaction.atomic
def offer_unlist(*, user: User, offer_id: int) -> Offer:
    offer = _locked_offer(user=user, offer_id=offer_id)
    if offer.status == Offer.Status.UNLISTED:
        return offer
    if offer.status != Offer.Status.LISTED:
        raise ConflictError(f"Only a listed offer can be unlisted; offer {offer_id} is {offer.status}.",
                            code="invalid_transition")
    return _save(offer, {"status": Offer.Status.UNLISTED})


def offers_bulk_upsert(*, user: User, rows: Sequence[Mapping[str, Any]], provider_slug: str | None = None,
                       input_errors: Mapping[int, Errors] | None = None) -> BulkResult:
    """Create or update many offers of one provider, matched by external_id. All rows or none.

    `input_errors` maps a row index to the field errors the caller's parsing found in it.
    """
    provider = writable_provider(user=user, provider_slug=provider_slug)
    if not rows:
        raise ValidationFailed("No offers given.", fields={"offers": ["give at least one offer"]})
    max_rows = settings.OFFERS_BULK_MAX_ROWS
    if len(rows) > max_rows:
        raise ValidationFailed(f"At most {max_rows} offers per request; got {len(rows)}.",
                               fields={"offers": [f"at most {max_rows} offers per request"]})
    with transaction.atomic():
        return _bulk_upsert(provider, rows, input_errors or {})


def _bulk_upsert(provider: Provider, rows: Sequence[Mapping[str, Any]], input_errors: Mapping[int, Errors]
                 ) -> BulkResult:
    row_errors: dict[str, Errors] = {str(i): dict(e) for i, e in input_errors.items() if e}
    seen: dict[str, int] = {}
    for i, row in enumerate(rows):
        ext = row.get("external_id") or ""
        if "external_id" in input_errors.get(i, {}):
            continue
        if not ext:
            row_errors.setdefault(str(i), {})["external_id"] = [
                "required in a bulk upload (rows are matched by it)"]
        elif ext in seen:
            row_errors.setdefault(str(i), {})["external_id"] = [f"'{ext}' is also used by row {seen[ext]}"]
        else:
            seen[ext] = i
    existing = {o.external_id: o for o in
                Offer.objects.select_for_update(of=("self",), no_key=True).select_related("accelerator")
                .filter(provider=provider, external_id__in=list(seen))}
    resolver = _Resolver()
    plans: list[tuple[Offer | None, dict]] = []
    for i, row in enumerate(rows):
        current = existing.get(row.get("external_id") or "")
        missing = [] if current is not None else [f for f in ("name", "accelerator", "count", "region",
                                                              "price_per_hour") if f not in row]
        values, errors = _resolve(row, resolver, current=current, provider=provider)
        for name in missing:
            if name not in input_errors.get(i, {}):
                errors.setdefault(name, ["This field is required."])
        if errors:
            row_errors[str(i)] = _merge(row_errors.get(str(i)), errors)
        plans.append((current, values))
    if row_errors:
        raise ValidationFailed(f"{len(row_errors)} of {len(rows)} rows are invalid; nothing was written.",
                               fields={"offers": row_errors})
    now = timezone.now()
    new: list[Offer] = []
    changed: list[Offer] = []
    ordered: list[Offer] = []
    unchanged: set[int] = set()
    for current, values in plans:
        if current is None:
            offer = Offer(provider=provider, source=Offer.Source.PROVIDER, created_at=now, updated_at=now,
                          **values)
            new.append(offer)
        else:
            offer = current
            if any(getattr(offer, k) != v for k, v in values.items()):
                for k, v in values.items():
                    setattr(offer, k, v)
                offer.updated_at = now
                changed.append(offer)
            else:
                unchanged.add(id(offer))
        ordered.append(offer)
    try:
        with transaction.atomic():
            Offer.objects.bulk_create(new, batch_size=500)
            if changed:
                Offer.objects.bulk_update(changed, [*WRITABLE_MODEL_FIELDS, "updated_at"], batch_size=500)
            if new or changed:
                catalog_bump()
    except IntegrityError as exc:
        raise _conflict(exc) from None
    result = BulkResult(created=[o.pk for o in new], updated=[o.pk for o in changed],
                        unchanged=[o.pk for o in ordered if id(o) in unchanged], ids=[o.pk for o in ordered])
    return result


def offers_unlist_expired() -> int:
    """Unlist listed offers whose availability window has closed. One conditional UPDATE; idempotent."""
    now = timezone.now()
    with transaction.atomic():
        count = Offer.objects.filter(status=Offer.Status.LISTED, available_until__lt=now).update(
            status=Offer.Status.UNLISTED, updated_at=now)
        if count:
            catalog_bump()
    return count


def _merge(first: Errors | None, second: Errors) -> Errors:
    merged: Errors = {k: list(v) for k, v in (first or {}).items()}
    for key, messages in second.items():
        merged.setdefault(key, []).extend(m for m in messages if m not in merged[key])
    return merged


def _summary(errors: Errors) -> str:
    return "; ".join(f"{name}: {' '.join(msgs)}" for name, msgs in errors.items())
