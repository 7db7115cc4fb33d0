"""Orders, their audit trail (one event per state change or pipeline step) and their log output."""

from __future__ import annotations

import secrets
from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q

from marketplace.orders.states import STOP_OUTCOMES, State

MAX_DURATION_HOURS = Decimal("720")


def new_key_salt() -> str:
    return secrets.token_hex(6)


class Order(models.Model):
    State = State

    # No index of its own (db_index=False) where a composite index leads with the column: one index less to keep on
    # every insert, and no choice for the planner between a one-column index and the right composite one.
    customer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="orders",
                                 db_index=False)  # order_unique_idempotency_key, order_customer_created
    quote = models.ForeignKey("marketplace.Quote", null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="orders")
    offer = models.ForeignKey("marketplace.Offer", on_delete=models.PROTECT, related_name="orders",
                              help_text="The offer of the current attempt.")
    plan = models.JSONField(default=list, help_text="The alternatives to try, in rank order (from the quote).")
    plan_index = models.PositiveSmallIntegerField(default=0, help_text="Index in `plan` of the current offer.")
    nodes = models.PositiveIntegerField()
    accelerator_count = models.PositiveSmallIntegerField(help_text="Accelerators per node.")
    # The job.
    command = models.TextField()
    image = models.CharField(max_length=300, blank=True)
    env = models.JSONField(default=dict, blank=True)
    duration_hours = models.DecimalField(max_digits=8, decimal_places=4)
    budget_cap_usd = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    # Lifecycle.
    state = models.CharField(max_length=16, choices=[(s.value, s.value) for s in State], default=State.RESERVED)
    stop_outcome = models.CharField(max_length=16, blank=True,
                                    help_text="While stopping: the final state that follows.")
    attempt = models.PositiveSmallIntegerField(default=1)
    job_ref = models.CharField(max_length=200, blank=True, help_text="The provider's job reference (this attempt).")
    driver = models.CharField(max_length=40)
    failure_code = models.CharField(max_length=40, blank=True)
    failure_reason = models.TextField(blank=True)
    redrives = models.PositiveSmallIntegerField(default=0, help_text="Reconciler re-drives in the current state.")
    # Idempotent creation.
    key_salt = models.CharField(max_length=12, default=new_key_salt, editable=False,
                                help_text="Makes provider idempotency keys unique even if order ids are reused "
                                          "(a database restored or reset while a provider keeps its state).")
    idempotency_key = models.CharField(max_length=200)
    request_hash = models.CharField(max_length=64)
    # Money: USD per node-hour locked from the quote; metered = node price x nodes x hours run, rounded once.
    node_price_per_hour = models.DecimalField(max_digits=12, decimal_places=4)
    metered_usd = models.DecimalField(max_digits=14, decimal_places=2, default=Decimal("0"))
    metered_seconds = models.FloatField(default=0)
    log_offset = models.PositiveBigIntegerField(default=0, help_text="Driver log offset read so far (this attempt).")
    log_chars = models.PositiveBigIntegerField(default=0, help_text="Characters of log stored (all attempts).")
    # Timestamps.
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    state_changed_at = models.DateTimeField()
    checked_at = models.DateTimeField(help_text="Last time a pipeline step touched the order (stuck detection).")
    provisioning_at = models.DateTimeField(null=True, blank=True)
    running_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    meter_due_at = models.DateTimeField(
        null=True, blank=True,
        help_text="While running: when the next meter run is due (the beat sweep meter_due sends it; a run due "
                  "sooner than the sweep's interval is sent as a countdown message instead).")

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["customer", "idempotency_key"], name="order_unique_idempotency_key"),
            models.CheckConstraint(condition=Q(state__in=[s.value for s in State]), name="order_state_valid"),
            models.CheckConstraint(
                condition=Q(stop_outcome="") | Q(stop_outcome__in=sorted(s.value for s in STOP_OUTCOMES)),
                name="order_stop_outcome_valid"),
            models.CheckConstraint(condition=Q(nodes__gte=1), name="order_nodes_positive"),
            models.CheckConstraint(condition=Q(duration_hours__gt=0) & Q(duration_hours__lte=MAX_DURATION_HOURS),
                                   name="order_duration_in_range"),
            models.CheckConstraint(condition=Q(budget_cap_usd__isnull=True) | Q(budget_cap_usd__gt=0),
                                   name="order_budget_cap_positive"),
            models.CheckConstraint(condition=Q(node_price_per_hour__gte=0) & Q(metered_usd__gte=0),
                                   name="order_money_nonneg"),
        ]
        indexes = [
            models.Index(fields=["customer", "-created_at"], name="order_customer_created"),
            models.Index(fields=["state", "checked_at"], name="order_state_checked"),
            models.Index(fields=["meter_due_at"], condition=Q(state="running"), name="order_meter_due"),
        ]

    def __str__(self) -> str:
        return f"order {self.pk} ({self.state})"

    @property
    def finished(self) -> bool:
        return State(self.state) in (State.COMPLETED, State.FAILED, State.CANCELLED, State.EXPIRED)

    @property
    def price_per_hour(self) -> Decimal:
        """USD per hour for the whole order (every node)."""
        return self.node_price_per_hour * self.nodes

    @property
    def idempotency_key_for_attempt(self) -> str:
        """The key every provider call of this attempt carries."""
        return self.provider_key(self.attempt)

    def provider_key(self, attempt: int) -> str:
        return f"order:{self.pk}:attempt:{attempt}:{self.key_salt}"


class OrderEvent(models.Model):
    """A state change (from_state != to_state) or a pipeline step in a state (failover, re-drive, retry)."""

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="events",
                              db_index=False)  # order_event_order leads with it
    from_state = models.CharField(max_length=16, blank=True)
    to_state = models.CharField(max_length=16)
    at = models.DateTimeField()
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="+")
    actor_task = models.CharField(max_length=100, blank=True, help_text="The Celery task (or service) that acted.")
    reason = models.CharField(max_length=300)
    data = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["order", "id"], name="order_event_order")]

    def __str__(self) -> str:
        return f"{self.order_id}: {self.from_state or '∅'} -> {self.to_state} ({self.reason})"


class OrderLogChunk(models.Model):
    """The job's output as the driver reported it; `offset` is the character offset of `text` in the whole log."""

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="log_chunks",
                              db_index=False)  # order_log_unique_offset leads with it
    attempt = models.PositiveSmallIntegerField()
    offset = models.PositiveBigIntegerField()
    text = models.TextField()
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["order", "offset"]
        constraints = [models.UniqueConstraint(fields=["order", "offset"], name="order_log_unique_offset")]

    def __str__(self) -> str:
        return f"order {self.order_id} log @{self.offset}"

    @property
    def end(self) -> int:
        return self.offset + len(self.text)
