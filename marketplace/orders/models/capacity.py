"""Capacity as rows: one CapacityUnit per node of an offer, and Reservations holding units.

The database refuses double booking by itself: a unit has at most one *active* reservation (partial unique
index on `unit` where `active`, which PostgreSQL and SQLite both enforce). The Python check in
services/reservations.py is only the fast path. Units beyond the offer's current `nodes_available` are marked
retired (kept for history; never reserved again).

`held` mirrors "has an active reservation", written in the same transaction as the reservation (reserve,
release, the reconciler's orphan release; the reconciler also repairs any drift). It is what lets reserving find
the lowest free units through a partial index in O(log n), however many units are held: the anti-join on active
reservations alone read every held unit below the first free one (~1 ms per order at 1,200 held units, 12 ms
with the table's statistics stale). The anti-join stays in the query as a guard, over the few candidates only.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q


class CapacityUnit(models.Model):
    offer = models.ForeignKey("marketplace.Offer", on_delete=models.CASCADE, related_name="capacity_units",
                              db_index=False)  # capacity_unit_unique_index leads with it
    index = models.PositiveIntegerField()
    retired = models.BooleanField(default=False)
    held = models.BooleanField(default=False, help_text="Has an active reservation (kept with the reservations).")

    class Meta:
        ordering = ["offer", "index"]
        constraints = [models.UniqueConstraint(fields=["offer", "index"], name="capacity_unit_unique_index")]
        indexes = [
            # The free units of an offer, lowest index first: what reserving reads.
            models.Index(fields=["offer", "index"], condition=Q(retired=False, held=False), name="capacity_unit_free"),
            # Whether a retired unit lies below nodes_available (units out of step with the offer).
            models.Index(fields=["offer", "index"], condition=Q(retired=True), name="capacity_unit_retired"),
        ]

    def __str__(self) -> str:
        return f"offer {self.offer_id} unit {self.index}"


class Reservation(models.Model):
    order = models.ForeignKey("orders.Order", on_delete=models.CASCADE, related_name="reservations",
                              db_index=False)  # reservation_order_active leads with it
    unit = models.ForeignKey(CapacityUnit, on_delete=models.PROTECT, related_name="reservations")
    offer = models.ForeignKey("marketplace.Offer", on_delete=models.CASCADE, related_name="+",
                              db_index=False)  # reservation_offer_active leads with it
    attempt = models.PositiveSmallIntegerField()
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True,
                                      help_text="Set while the order waits in `reserved`; cleared when it proceeds.")
    released_at = models.DateTimeField(null=True, blank=True)
    release_reason = models.CharField(max_length=100, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["unit"], condition=Q(active=True), name="reservation_one_active_per_unit"),
            models.CheckConstraint(condition=Q(active=True, released_at__isnull=True)
                                   | Q(active=False, released_at__isnull=False),
                                   name="reservation_released_iff_inactive"),
        ]
        indexes = [
            models.Index(fields=["order", "active"], name="reservation_order_active"),
            models.Index(fields=["offer", "active"], name="reservation_offer_active"),
            models.Index(fields=["active", "expires_at"], name="reservation_active_expires"),
        ]

    def __str__(self) -> str:
        return f"order {self.order_id} holds {self.unit}"
