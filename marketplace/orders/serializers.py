"""Order API shapes: the placement input (with its job) and the order, event and log outputs."""

from __future__ import annotations

import copy
import re
from decimal import Decimal
from typing import Any

from rest_framework import serializers

from marketplace.orders.models import Order, OrderEvent
from marketplace.orders.models.orders import MAX_DURATION_HOURS
from marketplace.orders.services.placement import JobInput, PaymentInput, PlacementInput

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


class BoundCopies:
    """Bind shallow copies of the declared fields instead of DRF's deep copies (Serializer.get_fields). Binding sets
    attributes on the copy (field_name, parent, source, label, the validators it builds on first use), never on
    the declared field, and nothing mutates a field's shared parts (its arguments, validators, error messages):
    copying each field's whole tree of arguments was a third of validating an order (every POST /orders/)."""

    def get_fields(self) -> dict[str, serializers.Field]:
        return {name: copy.copy(field) for name, field in self._declared_fields.items()}


def _positive_hours(value: Decimal) -> Decimal:
    if value <= 0:
        raise serializers.ValidationError("Ensure this value is greater than 0.")
    return value


class JobSerializer(BoundCopies, serializers.Serializer):
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


class PaymentSerializer(BoundCopies, serializers.Serializer):
    method = serializers.ChoiceField(choices=["card", "credit"], required=False, allow_null=True, default=None,
                                     help_text="card (a hold of the order's maximum, captured for usage) or credit "
                                               "(prepaid, debited as metered). Default: your saved card when the "
                                               "order fits a card hold, else credit.")
    payment_method = serializers.CharField(required=False, allow_null=True, default=None, max_length=64,
                                           help_text="For card: a Stripe PaymentMethod id (test mode: pm_card_visa); "
                                                     "default: your saved card.")

    def to_internal_value(self, data: Any) -> Any:
        _no_unknown(self, data)
        return super().to_internal_value(data)

    def validate_payment_method(self, value: str | None) -> str | None:
        if value is not None and not value.startswith("pm_"):
            raise serializers.ValidationError("Expected a Stripe PaymentMethod id such as pm_card_visa.")
        return value

    def validate(self, attrs: dict) -> dict:
        if attrs.get("payment_method") and attrs.get("method") == "credit":
            raise serializers.ValidationError({"payment_method": ["Only with method card."]})
        if attrs.get("payment_method") and attrs.get("method") is None:
            attrs["method"] = "card"  # a card was given: pay with it
        return attrs


class OrderCreateSerializer(BoundCopies, serializers.Serializer):
    quote_id = serializers.UUIDField(required=False, help_text="A quote of yours (GET it from /recommendations/).")
    offer_id = serializers.IntegerField(required=False, min_value=1, help_text="Or: an offer id, with nodes.")
    nodes = serializers.IntegerField(required=False, min_value=1, max_value=10_000)
    duration_hours = serializers.DecimalField(required=False, max_digits=None, decimal_places=4,
                                              max_value=MAX_DURATION_HOURS,
                                              help_text="For offer + configuration; defaults to job.duration_hours.")
    job = JobSerializer()
    payment = PaymentSerializer(required=False, help_text="How to pay (optional; see docs/payments.md).")

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
            nodes=data.get("nodes"), duration_hours=data.get("duration_hours"),
            payment=PaymentInput(method=data["payment"]["method"], payment_method=data["payment"]["payment_method"])
            if data.get("payment") is not None else None)


def _money(value: Decimal | None, places: str) -> str | None:
    return None if value is None else str(value.quantize(Decimal(places)))


def _time(value) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


class OrderSerializer(serializers.Serializer):
    """An order. The declared fields document the shape; `to_representation` renders the row directly (a list
    page is up to 200 orders, and per-field DRF machinery would cost more than the query)."""

    id = serializers.IntegerField()
    state = serializers.CharField(help_text="reserved, queued, provisioning, running, stopping, completed, failed, "
                                            "cancelled or expired (docs/orders.md).")
    stop_outcome = serializers.CharField(help_text="While stopping: the final state that follows.")
    customer = serializers.CharField()
    quote_id = serializers.UUIDField(allow_null=True)
    offer = serializers.DictField(help_text="id, name, provider, accelerator, region, driver of the current attempt.")
    simulated = serializers.BooleanField(help_text="True when no real machine runs the job (simulated driver).")
    nodes = serializers.IntegerField()
    accelerator_count = serializers.IntegerField(help_text="Per node.")
    job = serializers.DictField(help_text="command, image, env, duration_hours, budget_cap_usd.")
    attempt = serializers.IntegerField()
    job_ref = serializers.CharField(help_text="The provider's job reference.")
    failure = serializers.DictField(allow_null=True, help_text="{code, reason} once failed (or expired).")
    node_price_per_hour = serializers.DecimalField(max_digits=12, decimal_places=4,
                                                   help_text="USD per node-hour, locked by the quote.")
    price_per_hour = serializers.DecimalField(max_digits=14, decimal_places=4, help_text="USD per hour, all nodes.")
    metered_usd = serializers.DecimalField(max_digits=14, decimal_places=2)
    metered_seconds = serializers.FloatField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    provisioning_at = serializers.DateTimeField(allow_null=True)
    running_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    links = serializers.DictField()

    def to_representation(self, order: Order) -> dict[str, Any]:
        offer = order.offer
        base = f"/api/v1/orders/{order.pk}/"
        return {
            "id": order.pk, "state": order.state, "stop_outcome": order.stop_outcome,
            "customer": order.customer.username, "quote_id": str(order.quote_id) if order.quote_id else None,
            "offer": {"id": offer.pk, "name": offer.name, "provider": offer.provider.slug,
                      "accelerator": offer.accelerator.canonical_name, "region": offer.region.key,
                      "driver": order.driver},
            "simulated": order.driver == "simulated", "nodes": order.nodes,
            "accelerator_count": order.accelerator_count,
            "job": {"command": order.command, "image": order.image, "env": order.env,
                    "duration_hours": _money(order.duration_hours, "0.0001"),
                    "budget_cap_usd": _money(order.budget_cap_usd, "0.01")},
            "attempt": order.attempt, "job_ref": order.job_ref,
            "failure": {"code": order.failure_code, "reason": order.failure_reason} if order.failure_code else None,
            "node_price_per_hour": _money(order.node_price_per_hour, "0.0001"),
            "price_per_hour": _money(order.price_per_hour, "0.0001"),
            "metered_usd": _money(order.metered_usd, "0.01"), "metered_seconds": order.metered_seconds,
            "created_at": _time(order.created_at), "updated_at": _time(order.updated_at),
            "provisioning_at": _time(order.provisioning_at), "running_at": _time(order.running_at),
            "finished_at": _time(order.finished_at),
            "links": {"self": base, "events": base + "events/", "logs": base + "logs/", "cancel": base + "cancel/"},
        }


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
