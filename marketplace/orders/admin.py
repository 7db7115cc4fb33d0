from django.contrib import admin

from marketplace.orders.models import (
    CapacityUnit,
    Lease,
    Order,
    OrderEvent,
    OrderLogChunk,
    OutboxMessage,
    Reservation,
)


class OrderEventInline(admin.TabularInline):
    model = OrderEvent
    extra = 0
    can_delete = False
    fields = ("at", "from_state", "to_state", "actor", "actor_task", "reason", "data")
    readonly_fields = fields


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    """Read-only: orders change state only through the services (transition table, events, outbox)."""

    list_display = ("id", "customer", "state", "offer", "nodes", "attempt", "failure_code", "metered_usd",
                    "created_at")
    list_filter = ("state", "driver", "failure_code")
    search_fields = ("id", "customer__username", "job_ref", "idempotency_key")
    inlines = [OrderEventInline]

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(Reservation)
class ReservationAdmin(admin.ModelAdmin):
    list_display = ("id", "order", "offer", "unit", "attempt", "active", "expires_at", "released_at")
    list_filter = ("active",)
    search_fields = ("order__id", "offer__name", "offer__provider__slug", "release_reason")

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(CapacityUnit)
class CapacityUnitAdmin(admin.ModelAdmin):
    list_display = ("id", "offer", "index", "retired")
    list_filter = ("retired",)
    search_fields = ("offer__name", "offer__external_id", "offer__provider__slug")


@admin.register(OutboxMessage)
class OutboxMessageAdmin(admin.ModelAdmin):
    list_display = ("id", "task", "args", "created_at", "attempts", "last_error")
    search_fields = ("task", "last_error")


@admin.register(OrderEvent)
class OrderEventAdmin(admin.ModelAdmin):
    list_display = ("id", "order", "from_state", "to_state", "at", "actor", "actor_task", "reason")
    list_filter = ("to_state", "from_state")
    search_fields = ("order__id", "reason", "actor_task", "actor__username")
    raw_id_fields = ("order", "actor")


@admin.register(OrderLogChunk)
class OrderLogChunkAdmin(admin.ModelAdmin):
    list_display = ("id", "order", "attempt", "offset", "at")
    search_fields = ("order__id", "text")
    raw_id_fields = ("order",)


@admin.register(Lease)
class LeaseAdmin(admin.ModelAdmin):
    list_display = ("name", "holder", "held_until")
    search_fields = ("name", "holder")
