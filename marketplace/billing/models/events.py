"""Stripe webhook events as received: the event id is unique, so a redelivered event is a no-op."""

from __future__ import annotations

from django.db import models


class StripeEvent(models.Model):
    class Status(models.TextChoices):
        RECEIVED = "received", "Received"
        PROCESSED = "processed", "Processed"
        IGNORED = "ignored", "Ignored (type not handled)"
        FAILED = "failed", "Failed"

    event_id = models.CharField(max_length=64, unique=True)
    type = models.CharField(max_length=64)
    endpoint = models.CharField(max_length=8, choices=[("platform", "Platform"), ("connect", "Connect")])
    account = models.CharField(max_length=64, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    payload = models.JSONField()
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.RECEIVED)
    attempts = models.PositiveIntegerField(default=0)
    error = models.CharField(max_length=300, blank=True)
    received_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["status", "received_at"])]

    def __str__(self) -> str:
        return f"{self.event_id} {self.type} ({self.status})"
