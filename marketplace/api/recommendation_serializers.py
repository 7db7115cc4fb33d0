"""Shapes of the recommendation request and answer, for validation of structure and for the OpenAPI schema.

Semantic checks (a model that fits nowhere, a deadline in the past, unknown accelerators) are the engine's
(broker/engine/parse.py) and come back as field-level 400s too.
"""

from __future__ import annotations

from rest_framework import serializers

PRECISIONS = ["fp32", "fp16", "bf16", "fp8", "int8", "int4"]


class StringOrListField(serializers.JSONField):
    """A name, or a list of names meaning "any of"."""


class ResourcesSerializer(serializers.Serializer):
    accelerator = StringOrListField(required=False, help_text="A name or alias, a list meaning any of, or omit.")
    count = serializers.IntegerField(required=False, min_value=1, max_value=64, help_text="Accelerators per node.")
    nodes = serializers.IntegerField(required=False, min_value=1, max_value=1024)
    min_memory_gb = serializers.FloatField(required=False, min_value=0)
    interconnect = serializers.ChoiceField(required=False, choices=["nvlink", "xgmi", "hccs", "pcie", "none"])
    inter_node = serializers.ChoiceField(required=False, choices=["infiniband", "roce", "ethernet", "none"])
    vcpus = serializers.FloatField(required=False, min_value=0)
    ram_gb = serializers.FloatField(required=False, min_value=0)
    disk_gb = serializers.FloatField(required=False, min_value=0)


class WorkloadSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=["llm_inference", "llm_training", "fine_tuning", "hpc", "batch"])
    model = serializers.CharField(required=False, help_text="A bundled model, e.g. llama-3-70b, qwen2.5-72b.")
    params_b = serializers.FloatField(required=False, help_text="Parameters in billions (instead of model).")
    active_params_b = serializers.FloatField(required=False, help_text="Active parameters per token (MoE).")
    precision = serializers.ChoiceField(required=False, choices=PRECISIONS)
    kv_precision = serializers.ChoiceField(required=False, choices=PRECISIONS)
    context_length = serializers.IntegerField(required=False)
    concurrent_sequences = serializers.IntegerField(required=False)
    tokens_per_second = serializers.FloatField(required=False, help_text="Target serving throughput.")
    training_tokens = serializers.FloatField(required=False)
    method = serializers.ChoiceField(required=False, choices=["full", "lora"])
    trainable_fraction = serializers.FloatField(required=False)
    fp64_pflop = serializers.FloatField(required=False)
    node_hours = serializers.FloatField(required=False)
    reference_accelerator = serializers.CharField(required=False)
    reference_count = serializers.IntegerField(required=False)
    duration_hours = serializers.FloatField(required=False)


class RecommendationRequestSerializer(serializers.Serializer):
    resources = ResourcesSerializer(required=False)
    workload = WorkloadSerializer(required=False)
    duration_hours = serializers.FloatField(required=False)
    deadline = serializers.DateTimeField(required=False)
    max_price_per_hour = serializers.DecimalField(required=False, max_digits=12, decimal_places=4)
    max_total_usd = serializers.DecimalField(required=False, max_digits=14, decimal_places=2)
    regions_allowed = serializers.ListField(child=serializers.CharField(), required=False)
    regions_excluded = serializers.ListField(child=serializers.CharField(), required=False)
    countries_allowed = serializers.ListField(child=serializers.CharField(), required=False)
    countries_excluded = serializers.ListField(child=serializers.CharField(), required=False)
    interruptible_allowed = serializers.BooleanField(required=False)
    min_provider_reliability = serializers.FloatField(required=False)
    software_stack = serializers.JSONField(required=False, help_text="cuda, rocm, cann, dtk, ... or a list")
    objective = serializers.JSONField(required=False, help_text="cost | time | carbon | balanced | {weights}")
    top_k = serializers.IntegerField(required=False, min_value=1, max_value=50)


class RankedOfferSerializer(serializers.Serializer):
    rank = serializers.IntegerField()
    offer_id = serializers.IntegerField()
    provider = serializers.CharField()
    accelerator = serializers.CharField()
    count = serializers.IntegerField()
    nodes = serializers.IntegerField()
    region = serializers.CharField()
    price_per_hour = serializers.CharField(help_text="USD per hour for all nodes, decimal string.")
    est_hours = serializers.FloatField()
    est_total_usd = serializers.CharField(help_text="Decimal string.")
    est_kg_co2e = serializers.FloatField(allow_null=True)
    score = serializers.FloatField()
    score_breakdown = serializers.DictField()
    why = serializers.CharField()
    pareto = serializers.BooleanField()


class QuoteRefSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    expires_at = serializers.DateTimeField()
    alternatives = serializers.IntegerField()


class RecommendationResponseSerializer(serializers.Serializer):
    recommendations = RankedOfferSerializer(many=True)
    excluded = serializers.DictField(help_text="considered, feasible, by_reason[], near_misses[]")
    relaxations = serializers.ListField(child=serializers.DictField())
    quote = QuoteRefSerializer(allow_null=True)
