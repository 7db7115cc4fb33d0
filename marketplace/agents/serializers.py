"""Input and output shapes of the agents API."""

from __future__ import annotations

from decimal import Decimal

from rest_framework import serializers

from marketplace.agents.models import ProviderAgent
from marketplace.models.offers import MAX_ACCELERATORS_PER_NODE, MAX_PRICE_PER_HOUR


class AgentOfferInput(serializers.Serializer):
    external_id = serializers.CharField(max_length=200)
    name = serializers.CharField(max_length=200)
    accelerator = serializers.CharField(max_length=120)
    count = serializers.IntegerField(min_value=1, max_value=MAX_ACCELERATORS_PER_NODE)
    memory_gb = serializers.FloatField(min_value=0.001, required=False, allow_null=True)
    vcpus = serializers.IntegerField(min_value=0, max_value=100_000, default=0)
    ram_gb = serializers.FloatField(min_value=0, max_value=1_000_000, default=0)
    disk_gb = serializers.FloatField(min_value=0, max_value=1_000_000_000, default=0)
    region = serializers.CharField(max_length=80, allow_blank=True)
    price_per_hour = serializers.DecimalField(max_digits=12, decimal_places=4, min_value=Decimal("0"),
                                              max_value=MAX_PRICE_PER_HOUR)
    nodes_available = serializers.IntegerField(min_value=0, max_value=100_000)


class AgentRegisterInput(serializers.Serializer):
    base_url = serializers.URLField(max_length=300)
    slots = serializers.IntegerField(min_value=1, max_value=10_000)
    active_jobs = serializers.IntegerField(min_value=0, max_value=10_000, default=0)
    machine = serializers.DictField(required=False, default=dict)
    offer = AgentOfferInput(required=False, allow_null=True)

    def validate_base_url(self, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise serializers.ValidationError("must be an http:// or https:// URL")
        return value.rstrip("/")

    def validate_machine(self, value: dict) -> dict:
        if len(str(value)) > 4000:
            raise serializers.ValidationError("at most 4000 characters of machine facts")
        return value


class AgentEnrollInput(serializers.Serializer):
    name = serializers.SlugField(max_length=64, default="default")
    provider = serializers.SlugField(max_length=120, required=False, help_text="Operators: which provider.")


class AgentRotateInput(serializers.Serializer):
    grace_seconds = serializers.IntegerField(min_value=0, max_value=30 * 24 * 3600, default=3600)


class AgentSerializer(serializers.ModelSerializer):
    provider = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    key_id = serializers.CharField(read_only=True)
    previous_secret_valid = serializers.SerializerMethodField()

    class Meta:
        model = ProviderAgent
        fields = ["id", "provider", "name", "key_id", "base_url", "enabled", "offer", "slots", "active_jobs",
                  "machine", "last_seen", "registrations", "secret_rotated_at", "previous_secret_expires_at",
                  "previous_secret_valid", "last_secret_used", "created_at"]

    def get_previous_secret_valid(self, agent: ProviderAgent) -> bool:
        from django.utils import timezone

        return bool(agent.previous_secret and agent.previous_secret_expires_at
                    and agent.previous_secret_expires_at >= timezone.now())


class AgentWithSecretSerializer(AgentSerializer):
    secret = serializers.CharField(read_only=True, help_text="Shown once; give it to the agent (AGENT_SECRET).")

    class Meta(AgentSerializer.Meta):
        fields = [*AgentSerializer.Meta.fields, "secret"]
