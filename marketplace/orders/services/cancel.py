"""Cancel by the customer (or an operator).

reserved/queued -> cancelled at once (capacity released). provisioning/running -> stopping with outcome
cancelled: the stop task terminates the job at the provider, then the order becomes cancelled. Cancelling an
order that is already stopping towards `cancelled` changes nothing; a finished order (or one stopping towards
another outcome) is a 409.
"""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from marketplace.errors import ConflictError
from marketplace.models import User
from marketplace.orders.models import Order
from marketplace.orders.selectors import order_for_user
from marketplace.orders.services.lifecycle import locked, move
from marketplace.orders.services.transitions import stop_locked
from marketplace.orders.states import State


@transaction.atomic
def order_cancel(*, user: User, order_id: int, now: datetime | None = None) -> Order:
    now = now or timezone.now()
    order_for_user(user, order_id)  # 404 for another customer's order
    order = locked(order_id)
    state = State(order.state)
    if state in (State.RESERVED, State.QUEUED):
        move(order, State.CANCELLED, now=now, reason="cancelled by the customer", actor=user)
    elif state in (State.PROVISIONING, State.RUNNING):
        stop_locked(order, outcome=State.CANCELLED, reason="cancelled by the customer", code="", actor=user,
                     task="", data={"job_ref": order.job_ref}, now=now)
    elif state == State.STOPPING and order.stop_outcome == State.CANCELLED:
        pass
    else:
        what = "is already stopping" if state == State.STOPPING else f"is {state.value}"
        raise ConflictError(f"Order {order_id} {what}; it cannot be cancelled.", code="not_cancellable",
                            extra={"state": state.value})
    return order
