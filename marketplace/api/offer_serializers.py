"""Offer serializers: one output shape (named like the query-language fields) and the write input."""

from __future__ import annotations

from decimal import Decimal

from rest_framework import serializers

from marketplace.models.offers import MAX_ACCELERATORS_PER_NODE, MAX_PRICE_PER_HOUR, Interconnect, InterNode

MAX_MEMORY_GB = 4096  # per accelerator; the largest parts today carry 288 GB
MONEY = {"max_digits": 12, "decimal_places": 4, "coerce_to_string": True}


def must_be_positive(value: float) -> None:
    if value <= 0:
        raise serializers.ValidationError("Ensure this value is greater than 0.")


class OfferSerializer(serializers.Serializer):
    """A search result or an offer's detail. Money is a decimal string in USD."""

    id = serializers.IntegerField(read_only=True)
    external_id = serializers.CharField()
    name = serializers.CharField()
    status = serializers.CharField()
    source = serializers.CharField()
    provider = serializers.CharField(source="provider.slug")
    provider_name = serializers.CharField(source="provider.name")
    provider_verified = serializers.SerializerMethodField()
    reliability = serializers.DecimalField(source="provider.reliability_score", max_digits=4,
                                           decimal_places=3, allow_null=True)
    accelerator = serializers.CharField(source="accelerator.canonical_name")
    vendor = serializers.CharField(source="accelerator.vendor")
    stack = serializers.CharField(source="accelerator.stack_family")
    count = serializers.IntegerField(source="accelerator_count")
    memory_gb = serializers.FloatField(source="accelerator_memory_gb")
    total_memory_gb = serializers.FloatField()
    bf16_tflops = serializers.FloatField(source="accelerator.bf16_tflops", allow_null=True)
    fp64_tflops = serializers.FloatField(source="accelerator.fp64_tflops", allow_null=True)
    vcpus = serializers.IntegerField()
    ram_gb = serializers.FloatField()
    disk_gb = serializers.FloatField()
    interconnect = serializers.CharField()
    inter_node = serializers.CharField()
    network_gbps = serializers.FloatField(allow_null=True)
    region = serializers.CharField(source="region.key")
    country = serializers.CharField(source="region.country")
    carbon_gco2_per_kwh = serializers.FloatField(source="region.grid_ci_gco2_per_kwh", allow_null=True)
    price_per_hour = serializers.DecimalField(**MONEY)
    price_per_accelerator_hour = serializers.DecimalField(max_digits=16, decimal_places=6)
    interruptible_price_per_hour = serializers.DecimalField(**MONEY, allow_null=True)
    nodes_available = serializers.IntegerField()
    min_rental_hours = serializers.DecimalField(max_digits=8, decimal_places=2)
    available_until = serializers.DateTimeField(allow_null=True)
    upstream_cloud = serializers.CharField()

    def get_provider_verified(self, offer) -> bool:
        return offer.provider.verification_status == "verified"


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


class OfferBulkSerializer(serializers.Serializer):
    """Only the envelope; each row is checked with OfferWriteSerializer so errors can name the row."""

    provider = serializers.SlugField(required=False)
    offers = serializers.ListField(child=serializers.DictField(), allow_empty=False, max_length=1000)


class OfferBulkResultSerializer(serializers.Serializer):
    created = serializers.ListField(child=serializers.IntegerField())
    updated = serializers.ListField(child=serializers.IntegerField())
    unchanged = serializers.ListField(child=serializers.IntegerField())
    ids = serializers.ListField(child=serializers.IntegerField(), help_text="Offer ids in row order.")
