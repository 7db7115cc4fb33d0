"""Quotes: a recommendation answer with its prices locked until `expires_at`.

The client only ever holds the quote's random id; the ranked alternatives and prices live here, so a quote
cannot be forged or altered by the client. The orders issue places orders from a quote and fails over along
`alternatives` in rank order.
"""

from __future__ import annotations

import uuid

from django.db import models
from django.utils import timezone


class Quote(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey("marketplace.User", on_delete=models.CASCADE, related_name="quotes", null=True, blank=True,
                             help_text="Empty for quotes made from the command line by an operator.")
    request = models.JSONField(help_text="The validated recommendation request.")
    alternatives = models.JSONField(help_text="Ranked recommendations (offer id, nodes, locked prices, estimates).")
    objective = models.CharField(max_length=16)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["user", "-created_at"], name="quote_user_created")]

    def __str__(self) -> str:
        return f"quote {self.id}"
