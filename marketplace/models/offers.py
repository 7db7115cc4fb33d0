"""Offers: a node type a provider rents out, with its price and availability."""

from __future__ import annotations

from decimal import Decimal

from django.db import models
from django.db.models import F, Q, Value
from django.db.models.functions import Cast, NullIf

MAX_ACCELERATORS_PER_NODE = 64
MAX_PRICE_PER_HOUR = Decimal("100000")


class Interconnect(models.TextChoices):
    """Between the accelerators of one node."""

    NVLINK = "nvlink", "NVLink / SXM"
    XGMI = "xgmi", "Infinity Fabric (xGMI)"
    HCCS = "hccs", "HCCS"
    PCIE = "pcie", "PCIe"
    NONE = "none", "None"


class InterNode(models.TextChoices):
    """Between nodes."""

    INFINIBAND = "infiniband", "InfiniBand"
    ROCE = "roce", "RoCE"
    ETHERNET = "ethernet", "Ethernet"
    NONE = "none", "None"


class Offer(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        LISTED = "listed", "Listed"
        UNLISTED = "unlisted", "Unlisted"

    class Source(models.TextChoices):
        PROVIDER = "provider", "Listed by the provider"
        IMPORT = "import", "Imported from a catalog"

    provider = models.ForeignKey("marketplace.Provider", on_delete=models.CASCADE, related_name="offers")
    external_id = models.CharField(max_length=200, blank=True,
                                   help_text="The provider's or catalog's id; unique per provider when set.")
    name = models.CharField(max_length=200, help_text="Instance type or node type name.")
    accelerator = models.ForeignKey("marketplace.Accelerator", on_delete=models.PROTECT, related_name="offers")
    accelerator_count = models.PositiveSmallIntegerField()
    accelerator_memory_gb = models.FloatField()
    vcpus = models.PositiveIntegerField(default=0)
    ram_gb = models.FloatField(default=0)
    disk_gb = models.FloatField(default=0)
    interconnect = models.CharField(max_length=12, choices=Interconnect.choices, default=Interconnect.PCIE)
    inter_node = models.CharField(max_length=12, choices=InterNode.choices, default=InterNode.NONE)
    network_gbps = models.FloatField(null=True, blank=True)
    region = models.ForeignKey("marketplace.Region", on_delete=models.PROTECT, related_name="offers")
    price_per_hour = models.DecimalField(max_digits=12, decimal_places=4, help_text="USD per node-hour, on demand.")
    interruptible_price_per_hour = models.DecimalField(
        max_digits=12, decimal_places=4, null=True, blank=True,
        help_text="USD per node-hour floor for interruptible (spot) use; empty when not offered.")
    price_per_accelerator_hour = models.GeneratedField(
        # Dividing by a float keeps SQLite from integer division when a whole price is stored as an integer;
        # the column is rounded to 6 decimals (exact for any price the model allows).
        # NULLIF: a zero count must reach the check constraint, not fail as a division by zero first.
        expression=F("price_per_hour") / NullIf(Cast(F("accelerator_count"), models.FloatField()), Value(0.0)),
        output_field=models.DecimalField(max_digits=16, decimal_places=6), db_persist=True)
    nodes_available = models.PositiveIntegerField(default=1)
    min_rental_hours = models.DecimalField(max_digits=8, decimal_places=2, default=0)
    available_until = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DRAFT)
    driver = models.CharField(max_length=40, default="simulated", help_text="Provisioning driver name.")
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.PROVIDER)
    catalog_name = models.CharField(max_length=64, blank=True)
    upstream_cloud = models.CharField(max_length=64, blank=True,
                                      help_text="For aggregator rows: the cloud that really runs the machine.")
    imported_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(condition=Q(price_per_hour__gte=0) & Q(price_per_hour__lte=MAX_PRICE_PER_HOUR),
                                   name="offer_price_in_range"),
            models.CheckConstraint(
                condition=Q(interruptible_price_per_hour__isnull=True) | Q(interruptible_price_per_hour__gte=0),
                name="offer_interruptible_price_nonneg"),
            models.CheckConstraint(
                condition=Q(accelerator_count__gte=1) & Q(accelerator_count__lte=MAX_ACCELERATORS_PER_NODE),
                name="offer_accelerator_count_in_range"),
            models.CheckConstraint(condition=Q(accelerator_memory_gb__gt=0), name="offer_memory_positive"),
            models.CheckConstraint(condition=Q(ram_gb__gte=0) & Q(disk_gb__gte=0), name="offer_ram_disk_nonneg"),
            models.CheckConstraint(condition=Q(min_rental_hours__gte=0), name="offer_min_rental_nonneg"),
            models.CheckConstraint(condition=Q(status__in=["draft", "listed", "unlisted"]), name="offer_status_valid"),
            models.UniqueConstraint(fields=["provider", "external_id"], condition=~Q(external_id=""),
                                    name="offer_unique_provider_external_id"),
        ]
        indexes = [
            models.Index(fields=["status", "price_per_hour", "id"], name="offer_listed_price"),
            # Covering (PostgreSQL INCLUDE) so a search's page of ids is an index-only scan.
            models.Index(fields=["status", "accelerator", "accelerator_count", "price_per_hour"],
                         include=["available_until", "id"], name="offer_listed_acc_count_price"),
            models.Index(fields=["status", "region", "price_per_hour"], name="offer_listed_region_price"),
            # Pages by per-accelerator price naming regions: one probe per region (selectors/offers.py).
            models.Index(fields=["status", "region", "price_per_accelerator_hour"], name="offer_listed_region_ppah"),
            # Pages by price filtered by accelerator count alone: one probe per count (selectors/offers.py).
            models.Index(fields=["status", "accelerator_count", "price_per_hour"], name="offer_listed_count_price"),
            models.Index(fields=["provider", "status"], name="offer_provider_status"),
            models.Index(fields=["status", "price_per_accelerator_hour", "id"], name="offer_listed_ppah"),
        ]

    def __str__(self) -> str:
        return f"{self.provider} {self.name} ({self.accelerator_count}× {self.accelerator})"
