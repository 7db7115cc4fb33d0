"""The provider dashboard's figures and chart series (plain dicts, rendered as JSON for Chart.js)."""

from __future__ import annotations

from typing import Any

from django.db.models import F, Sum

from marketplace.models import Offer, Provider


def capacity_by_accelerator(provider: Provider) -> dict[str, Any]:
    """Listed accelerators per model (nodes available × accelerators per node)."""
    rows = (Offer.objects.filter(provider=provider, status=Offer.Status.LISTED)
            .values("accelerator__canonical_name")
            .annotate(n=Sum(F("nodes_available") * F("accelerator_count")))
            .order_by("-n", "accelerator__canonical_name"))
    return {"type": "bar", "labels": [r["accelerator__canonical_name"] for r in rows],
            "datasets": [{"label": "Accelerators listed", "data": [r["n"] for r in rows]}]}


def provider_dashboard(provider: Provider) -> dict[str, Any]:
    return {"capacity": capacity_by_accelerator(provider),
            "reliability": None if provider.reliability_score is None else float(provider.reliability_score)}
