"""The accelerator catalog: one canonical row per model (seeded from broker/data/accelerators.csv)."""

from __future__ import annotations

from django.db import models


class Accelerator(models.Model):
    canonical_name = models.CharField(max_length=120, unique=True)
    slug = models.SlugField(max_length=120, unique=True)
    vendor = models.CharField(max_length=60)
    form_factor = models.CharField(max_length=120, blank=True)
    architecture = models.CharField(max_length=120, blank=True)
    aliases = models.JSONField(default=list, blank=True)
    memory_gb = models.FloatField(null=True, blank=True)
    memory_type = models.CharField(max_length=80, blank=True)
    memory_bandwidth_gbps = models.FloatField(null=True, blank=True)
    fp64_tflops = models.FloatField(null=True, blank=True)
    fp32_tflops = models.FloatField(null=True, blank=True)
    tf32_tflops = models.FloatField(null=True, blank=True)
    bf16_tflops = models.FloatField(null=True, blank=True)
    fp16_tflops = models.FloatField(null=True, blank=True)
    fp8_tflops = models.FloatField(null=True, blank=True)
    int8_tops = models.FloatField(null=True, blank=True)
    tdp_w = models.FloatField(null=True, blank=True)
    interconnect = models.CharField(max_length=200, blank=True)
    software_stack = models.CharField(max_length=300, blank=True)
    stack_family = models.CharField(max_length=16, blank=True, help_text="cuda, rocm, dtk, cann, neuware, gaudi, xpu")
    release_year = models.PositiveSmallIntegerField(null=True, blank=True)
    confidence = models.CharField(max_length=8, blank=True)

    class Meta:
        ordering = ["vendor", "canonical_name"]

    def __str__(self) -> str:
        return self.canonical_name
