"""Regions/sites with the energy facts the broker prices carbon with."""

from __future__ import annotations

from django.db import models
from django.db.models import Q


class Region(models.Model):
    key = models.CharField(max_length=80, unique=True, help_text="e.g. 'us-east-virginia' or 'lambda/us-east-1'.")
    name = models.CharField(max_length=160)
    country = models.CharField(max_length=2, blank=True, help_text="ISO 3166 alpha-2.")
    latitude = models.FloatField(null=True, blank=True)
    longitude = models.FloatField(null=True, blank=True)
    grid_ci_gco2_per_kwh = models.FloatField(null=True, blank=True,
                                             help_text="Grid carbon intensity, gCO2e per kWh (annual average).")
    pue = models.FloatField(null=True, blank=True, help_text="Power usage effectiveness of the site.")
    power_price_usd_per_kwh = models.DecimalField(max_digits=8, decimal_places=4, null=True, blank=True)
    energy_zone = models.CharField(max_length=80, blank=True,
                                   help_text="Key of the energy reference row the facts come from.")

    class Meta:
        ordering = ["key"]
        constraints = [
            models.CheckConstraint(condition=Q(grid_ci_gco2_per_kwh__isnull=True) | Q(grid_ci_gco2_per_kwh__gte=0),
                                   name="region_ci_nonneg"),
            models.CheckConstraint(condition=Q(pue__isnull=True) | Q(pue__gte=1), name="region_pue_at_least_1"),
        ]

    def __str__(self) -> str:
        return self.key
