"""Provider organisations and their own policies."""

from __future__ import annotations

from django.db import models
from django.db.models import Q

WORKLOAD_KINDS = ("llm_inference", "llm_training", "fine_tuning", "hpc", "batch", "resources")


class Provider(models.Model):
    class Kind(models.TextChoices):
        CLOUD = "cloud", "Cloud"
        GPU_HOST = "gpu_host", "GPU host"
        HPC_CENTER = "hpc_center", "HPC center"
        AGGREGATOR = "aggregator", "Aggregator"

    class Verification(models.TextChoices):
        UNVERIFIED = "unverified", "Unverified"
        PENDING = "pending", "Pending review"
        VERIFIED = "verified", "Verified"
        REJECTED = "rejected", "Rejected"

    name = models.CharField(max_length=120, unique=True)
    slug = models.SlugField(max_length=120, unique=True)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.GPU_HOST)
    verification_status = models.CharField(max_length=16, choices=Verification.choices,
                                           default=Verification.UNVERIFIED)
    reliability_score = models.DecimalField(max_digits=4, decimal_places=3, null=True, blank=True,
                                            help_text="0–1; empty until the broker has observed the provider.")
    min_rental_hours = models.DecimalField(max_digits=8, decimal_places=2, default=0)
    allowed_workload_kinds = models.JSONField(default=list, blank=True,
                                              help_text=f"Empty means all. Kinds: {', '.join(WORKLOAD_KINDS)}.")
    interruptible_allowed = models.BooleanField(default=True)
    website = models.URLField(blank=True)
    catalog_name = models.CharField(max_length=64, blank=True,
                                    help_text="Set for providers created by a catalog import (e.g. 'lambda').")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(reliability_score__isnull=True) | Q(reliability_score__gte=0, reliability_score__lte=1),
                name="provider_reliability_0_1"),
            models.CheckConstraint(condition=Q(min_rental_hours__gte=0), name="provider_min_rental_nonneg"),
        ]

    def __str__(self) -> str:
        return self.name
