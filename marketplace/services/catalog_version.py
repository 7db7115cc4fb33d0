"""Bump the catalog version in the same transaction as any write that changes what search/engine can see."""

from __future__ import annotations

from django.db.models import F

from marketplace.models import CatalogVersion


def catalog_bump() -> None:
    """Call inside the writing transaction; the row lock it takes serialises concurrent bumps."""
    if not CatalogVersion.objects.filter(id=1).update(version=F("version") + 1):
        CatalogVersion.objects.get_or_create(id=1, defaults={"version": 1})


def catalog_version() -> int:
    row = CatalogVersion.objects.filter(id=1).values_list("version", flat=True).first()
    return row or 0


def catalog_stamp() -> tuple[int, object]:
    """(version, changed_at): unlike the bare counter it also moves when the row is deleted and re-created,
    as a test database flush does."""
    row = CatalogVersion.objects.filter(id=1).values_list("version", "changed_at").first()
    return row or (0, None)
