"""What the order page shows beyond the order row: cost against budget, and where the order is on its path."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from marketplace.orders.states import FINAL, State

PATH = (State.RESERVED, State.QUEUED, State.PROVISIONING, State.RUNNING, State.STOPPING, State.COMPLETED)
LABELS = {
    State.RESERVED: "Capacity reserved", State.QUEUED: "Queued", State.PROVISIONING: "Starting at the provider",
    State.RUNNING: "Running", State.STOPPING: "Stopping", State.COMPLETED: "Completed", State.FAILED: "Failed",
    State.CANCELLED: "Cancelled", State.EXPIRED: "Reservation expired",
}
TONE = {State.RUNNING: "ok", State.COMPLETED: "ok", State.FAILED: "bad", State.CANCELLED: "warn",
        State.EXPIRED: "warn", State.STOPPING: "warn"}


def order_progress(order) -> dict[str, Any]:
    """Cost so far against the most the order can cost (its budget cap, or price × duration)."""
    state = State(order.state)
    limit = (order.node_price_per_hour * order.nodes * order.duration_hours).quantize(Decimal("0.01"))
    if order.budget_cap_usd is not None:
        limit = min(limit, order.budget_cap_usd)
    spent = order.metered_usd
    percent = 0 if not limit else min(100, int(spent * 100 / limit))
    return {
        "state": state.value, "label": LABELS[state], "tone": TONE.get(state, "info"),
        "finished": state in FINAL, "cancellable": state in (State.RESERVED, State.QUEUED, State.PROVISIONING,
                                                            State.RUNNING),
        "spent": spent, "limit": limit, "percent": percent, "capped": order.budget_cap_usd is not None,
        "price_per_hour": order.node_price_per_hour * order.nodes,
    }
