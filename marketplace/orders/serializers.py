"""Order API shapes: the placement input (with its job) and the order, event and log outputs."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from rest_framework import serializers

from marketplace.orders.models import Order, OrderEvent
from marketplace.orders.models.orders import MAX_DURATION_HOURS
from marketplace.orders.services.placement import JobInput, PlacementInput

ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MAX_ENV_VARS = 100
MAX_ENV_VALUE = 4096
MAX_COMMAND = 10_000


def _no_unknown(serializer: serializers.Serializer, data: Any) -> None:
    if isinstance(data, dict):
        unknown = sorted(set(data) - set(serializer.fields))
        if unknown:
            valid = ", ".join(serializer.fields)
            raise serializers.ValidationError({k: [f"unknown field; valid fields: {valid}"] for k in unknown})


def _positive_hours(value: Decimal) -> Decimal:
    if value <= 0:
        raise serializers.ValidationError("Ensure this value is greater than 0.")
    return value


class JobSerializer(serializers.Serializer):
    command = serializers.CharField(max_length=MAX_COMMAND, required=False, allow_blank=True, default="",
                                    trim_whitespace=False, help_text="Shell command to run (required unless image).")
    image = serializers.CharField(max_length=300, required=False, allow_blank=True, default="",
                                  help_text="Container image reference, for providers that run images.")
    env = serializers.JSONField(required=False, default=dict, help_text="Environment: {NAME: string value}.")
    duration_hours = serializers.DecimalField(max_digits=None, decimal_places=4, max_value=MAX_DURATION_HOURS,
                                              help_text="Time limit of the job: 0 < hours <= 720.")
    budget_cap_usd = serializers.DecimalField(max_digits=12, decimal_places=2, required=False, allow_null=True,
                                              default=None, help_text="Stop the job when metering reaches this.")

    def to_internal_value(self, data: Any) -> Any:
        _no_unknown(self, data)
        return super().to_internal_value(data)

    def validate_duration_hours(self, value: Decimal) -> Decimal:
        return _positive_hours(value)

    def validate_budget_cap_usd(self, value: Decimal | None) -> Decimal | None:
        if value is not None and value <= 0:
            raise serializers.ValidationError("Ensure this value is greater than 0.")
        return value

    def validate_env(self, value: Any) -> dict[str, str]:
        if not isinstance(value, dict):
            raise serializers.ValidationError("Expected an object of NAME: string value.")
        if len(value) > MAX_ENV_VARS:
            raise serializers.ValidationError(f"At most {MAX_ENV_VARS} variables.")
        problems = []
        for name, item in value.items():
            if not ENV_NAME.match(name):
                problems.append(f"'{name}' is not a valid variable name (letters, digits and _, not starting "
                                "with a digit)")
            elif not isinstance(item, str):
                problems.append(f"'{name}' must be a string, not {type(item).__name__}")
            elif len(item) > MAX_ENV_VALUE or "\x00" in item:
                problems.append(f"'{name}' is longer than {MAX_ENV_VALUE} characters or contains NUL")
        if problems:
            raise serializers.ValidationError(problems)
        return value

    def validate(self, attrs: dict) -> dict:
        if not attrs.get("command", "").strip() and not attrs.get("image", "").strip():
            raise serializers.ValidationError({"command": ["This field is required (or give an image)."]})
        return attrs


class OrderCreateSerializer(serializers.Serializer):
    quote_id = serializers.UUIDField(required=False, help_text="A quote of yours (GET it from /recommendations/).")
    offer_id = serializers.IntegerField(required=False, min_value=1, help_text="Or: an offer id, with nodes.")
    nodes = serializers.IntegerField(required=False, min_value=1, max_value=10_000)
    duration_hours = serializers.DecimalField(required=False, max_digits=None, decimal_places=4,
                                              max_value=MAX_DURATION_HOURS,
                                              help_text="For offer + configuration; defaults to job.duration_hours.")
    job = JobSerializer()

    def to_internal_value(self, data: Any) -> Any:
        _no_unknown(self, data)
        return super().to_internal_value(data)

    def validate_duration_hours(self, value: Decimal) -> Decimal:
        return _positive_hours(value)

    def validate(self, attrs: dict) -> dict:
        has_quote, has_offer = "quote_id" in attrs, "offer_id" in attrs
        if has_quote == has_offer:
            message = "Give either quote_id, or offer_id with nodes."
            raise serializers.ValidationError({"quote_id": [message], "offer_id": [message]})
        if has_offer and "nodes" not in attrs:
            raise serializers.ValidationError({"nodes": ["This field is required with offer_id."]})
        if has_quote and ("nodes" in attrs or "duration_hours" in attrs):
            raise serializers.ValidationError({"quote_id": ["A quote fixes nodes and duration; leave them out."]})
        return attrs

    def placement(self) -> PlacementInput:
        data = self.validated_data
        job = data["job"]
        return PlacementInput(
            job=JobInput(command=job["command"], image=job["image"], env=job["env"],
                         duration_hours=job["duration_hours"], budget_cap_usd=job["budget_cap_usd"]),
            quote_id=str(data["quote_id"]) if "quote_id" in data else None, offer_id=data.get("offer_id"),
            nodes=data.get("nodes"), duration_hours=data.get("duration_hours"))


MONEY4 = {"max_digits": 12, "decimal_places": 4}


class OrderSerializer(serializers.ModelSerializer):
    customer = serializers.CharField(source="customer.username")
    quote_id = serializers.UUIDField(allow_null=True)
    offer = serializers.SerializerMethodField()
    simulated = serializers.SerializerMethodField(help_text="True when no real machine runs the job.")
    job = serializers.SerializerMethodField()
    failure = serializers.SerializerMethodField()
    node_price_per_hour = serializers.DecimalField(**MONEY4, help_text="USD per node-hour, locked by the quote.")
    price_per_hour = serializers.DecimalField(max_digits=14, decimal_places=4, help_text="USD per hour, all nodes.")
    metered_usd = serializers.DecimalField(max_digits=14, decimal_places=2)
    links = serializers.SerializerMethodField()

    class Meta:
        model = Order
        fields = ["id", "state", "stop_outcome", "customer", "quote_id", "offer", "simulated", "nodes",
                  "accelerator_count", "job", "attempt", "job_ref", "failure", "node_price_per_hour",
                  "price_per_hour", "metered_usd", "metered_seconds", "created_at", "updated_at", "provisioning_at",
                  "running_at", "finished_at", "links"]

    def get_offer(self, order: Order) -> dict[str, Any]:
        offer = order.offer
        return {"id": offer.pk, "name": offer.name, "provider": offer.provider.slug,
                "accelerator": offer.accelerator.canonical_name, "region": offer.region.key, "driver": order.driver}

    def get_simulated(self, order: Order) -> bool:
        return order.driver == "simulated"

    def get_job(self, order: Order) -> dict[str, Any]:
        return {"command": order.command, "image": order.image, "env": order.env,
                "duration_hours": str(order.duration_hours),
                "budget_cap_usd": None if order.budget_cap_usd is None else str(order.budget_cap_usd)}

    def get_failure(self, order: Order) -> dict[str, str] | None:
        if not order.failure_code:
            return None
        return {"code": order.failure_code, "reason": order.failure_reason}

    def get_links(self, order: Order) -> dict[str, str]:
        base = f"/api/v1/orders/{order.pk}/"
        return {"self": base, "events": base + "events/", "logs": base + "logs/", "cancel": base + "cancel/"}


class OrderEventSerializer(serializers.ModelSerializer):
    actor = serializers.SerializerMethodField(help_text="The user who acted, or null for a task.")
    task = serializers.CharField(source="actor_task")

    class Meta:
        model = OrderEvent
        fields = ["id", "from_state", "to_state", "at", "actor", "task", "reason", "data"]

    def get_actor(self, event: OrderEvent) -> str | None:
        return event.actor.username if event.actor_id else None


class OrderLogSerializer(serializers.Serializer):
    offset = serializers.IntegerField()
    next_offset = serializers.IntegerField(help_text="Ask for ?offset=<next_offset> to continue.")
    text = serializers.CharField()
    complete = serializers.BooleanField(help_text="The order finished and every character was returned.")
