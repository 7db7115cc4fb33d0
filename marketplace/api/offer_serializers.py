"""Offer serializers: one output shape (named like the query-language fields) and the write input."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from django.conf import settings
from rest_framework import serializers

from marketplace.models.offers import MAX_ACCELERATORS_PER_NODE, MAX_PRICE_PER_HOUR, Interconnect, InterNode

MAX_MEMORY_GB = 4096  # per accelerator; the largest parts today carry 288 GB
MONEY = {"max_digits": 12, "decimal_places": 4, "coerce_to_string": True}


def must_be_positive(value: float) -> None:
    if value <= 0:
        raise serializers.ValidationError("Ensure this value is greater than 0.")


class OfferSerializer(serializers.Serializer):
    """A search result or an offer's detail, from a selector row. Money is a decimal string in USD.

    The declared fields document the shape; `to_representation` renders a row directly, because a search
    page is 50-200 rows and per-field DRF machinery would cost more than the database query.
    """

    id = serializers.IntegerField(read_only=True)
    external_id = serializers.CharField()
    name = serializers.CharField()
    status = serializers.CharField()
    source = serializers.CharField()
    provider = serializers.CharField(help_text="Provider slug.")
    provider_name = serializers.CharField()
    provider_verified = serializers.BooleanField()
    reliability = serializers.DecimalField(max_digits=4, decimal_places=3, allow_null=True)
    accelerator = serializers.CharField(help_text="Canonical accelerator name.")
    vendor = serializers.CharField()
    stack = serializers.CharField()
    count = serializers.IntegerField(help_text="Accelerators per node.")
    memory_gb = serializers.FloatField(help_text="Per accelerator.")
    total_memory_gb = serializers.FloatField(help_text="count x memory_gb.")
    bf16_tflops = serializers.FloatField(allow_null=True)
    fp64_tflops = serializers.FloatField(allow_null=True)
    vcpus = serializers.IntegerField()
    ram_gb = serializers.FloatField()
    disk_gb = serializers.FloatField()
    interconnect = serializers.CharField()
    inter_node = serializers.CharField()
    network_gbps = serializers.FloatField(allow_null=True)
    region = serializers.CharField(help_text="Region key.")
    country = serializers.CharField()
    carbon_gco2_per_kwh = serializers.FloatField(allow_null=True)
    price_per_hour = serializers.DecimalField(**MONEY)
    price_per_accelerator_hour = serializers.DecimalField(max_digits=16, decimal_places=6)
    interruptible_price_per_hour = serializers.DecimalField(**MONEY, allow_null=True)
    nodes_available = serializers.IntegerField()
    min_rental_hours = serializers.DecimalField(max_digits=8, decimal_places=2)
    available_until = serializers.DateTimeField(allow_null=True)
    upstream_cloud = serializers.CharField()

    def to_representation(self, row: dict) -> dict:
        # One dict display, no loops: this runs for every row of every search page. tests/test_offer_serializer.py
        # checks it against the declared fields and a field-by-field rendering of the same rows.
        until = row["available_until"]
        return {
            "id": row["id"], "external_id": row["external_id"], "name": row["name"], "status": row["status"],
            "source": row["source"], "provider": row["provider__slug"], "provider_name": row["provider__name"],
            "accelerator": row["accelerator__canonical_name"], "vendor": row["accelerator__vendor"],
            "stack": row["accelerator__stack_family"], "count": row["accelerator_count"],
            "memory_gb": row["accelerator_memory_gb"], "total_memory_gb": row["total_memory_gb"],
            "bf16_tflops": row["accelerator__bf16_tflops"], "fp64_tflops": row["accelerator__fp64_tflops"],
            "vcpus": row["vcpus"], "ram_gb": row["ram_gb"], "disk_gb": row["disk_gb"],
            "interconnect": row["interconnect"], "inter_node": row["inter_node"],
            "network_gbps": row["network_gbps"], "region": row["region__key"], "country": row["region__country"],
            "carbon_gco2_per_kwh": row["region__grid_ci_gco2_per_kwh"], "nodes_available": row["nodes_available"],
            "upstream_cloud": row["upstream_cloud"],
            "reliability": _fixed(row["provider__reliability_score"], _PLACES_3),
            "price_per_hour": _fixed(row["price_per_hour"], _PLACES_4),
            "price_per_accelerator_hour": _fixed(row["price_per_accelerator_hour"], _PLACES_6),
            "interruptible_price_per_hour": _fixed(row["interruptible_price_per_hour"], _PLACES_4),
            "min_rental_hours": _fixed(row["min_rental_hours"], _PLACES_2),
            "available_until": None if until is None else _iso(until),
            "provider_verified": row["provider__verification_status"] == "verified",
        }


_PLACES_2, _PLACES_3, _PLACES_4, _PLACES_6 = (Decimal(10) ** -n for n in (2, 3, 4, 6))


def _fixed(value: Decimal | None, places: Decimal) -> str | None:
    """A decimal as DRF's DecimalField writes it: fixed point, exactly `places` decimals."""
    return None if value is None else format(value.quantize(places), "f")


def _iso(value: datetime) -> str:
    value = value.astimezone(UTC).isoformat()
    return value[:-6] + "Z" if value.endswith("+00:00") else value


class OfferWriteSerializer(serializers.Serializer):
    """What a provider sends to create (all required fields) or PATCH (any subset) an offer."""

    provider = serializers.SlugField(required=False, help_text="Provider slug; operators must give it, "
                                     "provider members may omit it (it must be their own).")
    external_id = serializers.CharField(max_length=200, required=False, allow_blank=True,
                                        help_text="Your id for the offer; unique per provider; bulk rows "
                                        "are matched by it.")
    name = serializers.CharField(max_length=200)
    accelerator = serializers.CharField(max_length=120, help_text="Any alias the vocabulary knows; it must "
                                        "name one model (an ambiguous name is refused with the candidates).")
    count = serializers.IntegerField(min_value=1, max_value=MAX_ACCELERATORS_PER_NODE,
                                     help_text="Accelerators per node.")
    memory_gb = serializers.FloatField(required=False, max_value=MAX_MEMORY_GB,
                                       validators=[must_be_positive],
                                       help_text="Per accelerator; defaults to the catalog's figure.")
    vcpus = serializers.IntegerField(required=False, min_value=0, max_value=100_000)
    ram_gb = serializers.FloatField(required=False, min_value=0, max_value=1_000_000)
    disk_gb = serializers.FloatField(required=False, min_value=0, max_value=100_000_000)
    interconnect = serializers.ChoiceField(choices=Interconnect.choices, required=False)
    inter_node = serializers.ChoiceField(choices=InterNode.choices, required=False)
    network_gbps = serializers.FloatField(required=False, allow_null=True, min_value=0, max_value=100_000)
    region = serializers.CharField(max_length=80, help_text="Region key, e.g. us-east-virginia.")
    price_per_hour = serializers.DecimalField(max_digits=12, decimal_places=4, min_value=Decimal(0),
                                              max_value=MAX_PRICE_PER_HOUR, help_text="USD per node-hour.")
    interruptible_price_per_hour = serializers.DecimalField(
        max_digits=12, decimal_places=4, min_value=Decimal(0), max_value=MAX_PRICE_PER_HOUR, required=False,
        allow_null=True)
    nodes_available = serializers.IntegerField(required=False, min_value=0, max_value=1_000_000)
    min_rental_hours = serializers.DecimalField(max_digits=8, decimal_places=2, min_value=Decimal(0),
                                                max_value=Decimal(8784), required=False)
    available_until = serializers.DateTimeField(required=False, allow_null=True)
    status = serializers.ChoiceField(choices=["draft", "listed", "unlisted"], required=False)
    driver = serializers.CharField(max_length=40, required=False,
                                   help_text="How orders run: a registered driver (simulated, agent, slurm). agent "
                                             "needs an enrolled agent; slurm an HPC center whose cluster the "
                                             "operator configured. Default: simulated.")


class OfferBulkSerializer(serializers.Serializer):
    """Only the envelope; each row is checked with OfferWriteSerializer so errors can name the row."""

    provider = serializers.SlugField(required=False)
    offers = serializers.ListField(child=serializers.DictField(), allow_empty=False,
                                   max_length=settings.OFFERS_BULK_MAX_ROWS)


class OfferBulkResultSerializer(serializers.Serializer):
    created = serializers.ListField(child=serializers.IntegerField())
    updated = serializers.ListField(child=serializers.IntegerField())
    unchanged = serializers.ListField(child=serializers.IntegerField())
    ids = serializers.ListField(child=serializers.IntegerField(), help_text="Offer ids in row order.")
