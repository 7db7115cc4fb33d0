"""A single counter bumped in the same transaction as any change to listed offers.

Engine snapshots are cached per process and rebuilt when the counter moves (one primary-key read per request).
"""

from __future__ import annotations

from django.db import models


class CatalogVersion(models.Model):
    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    version = models.PositiveBigIntegerField(default=0)
    changed_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.CheckConstraint(condition=models.Q(id=1), name="catalog_version_singleton")]

    def __str__(self) -> str:
        return f"catalog v{self.version}"
