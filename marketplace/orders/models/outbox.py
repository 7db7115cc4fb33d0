"""Work to enqueue, written in the same transaction as the state change that calls for it.

After commit the row is sent to Celery and deleted; if Redis was down, the row stays and the reconciler relays it.
A lease row guards the reconciler so only one runs at a time, on either database.
"""

from __future__ import annotations

from django.db import models


class OutboxMessage(models.Model):
    task = models.CharField(max_length=200)
    args = models.JSONField(default=list)
    countdown = models.FloatField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    attempts = models.PositiveIntegerField(default=0, help_text="Failed sends so far.")
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["created_at"], name="outbox_created")]

    def __str__(self) -> str:
        return f"{self.task}{tuple(self.args)}"


class Lease(models.Model):
    """A named lock with an expiry: taken by a conditional UPDATE, so it works on PostgreSQL and SQLite."""

    name = models.CharField(max_length=60, primary_key=True)
    holder = models.CharField(max_length=200, blank=True)
    held_until = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"lease {self.name} ({self.holder or 'free'})"
