"""provisioning -> queued on the next alternative of the quote (or -> failed `no_capacity` when none is left).

The failed attempt's capacity is released, the provider gets a failed-provisioning observation, and the next
alternatives are tried in rank order: each one without free capacity is skipped with an event; the first that
reserves becomes attempt n+1 and its provision task is enqueued. Attempts are bounded (ORDERS_MAX_ATTEMPTS).
When none is left the order fails with code `no_capacity` if the last attempt failed for want of capacity (or
of a provider able to run it: CAPACITY_CODES), else with the last error's own code (e.g. agent_auth_refused).
"""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from marketplace.models import Offer
from marketplace.orders import config
from marketplace.orders.models import Order
from marketplace.orders.services import outbox, reservations
from marketplace.orders.services.lifecycle import TASK_PROVISION, TASK_TERMINATE, locked, move, note
from marketplace.orders.services.placement_plan import Alternative, alternatives_of, apply_alternative
from marketplace.orders.services.reliability import reliability_observe
from marketplace.orders.states import State

CAPACITY_CODES = frozenset({"capacity_gone", "provision_failed", "provision_timeout", "job_lost",
                            "provider_unreachable"})


@transaction.atomic
def order_failover(order_id: int, attempt: int, *, code: str, reason: str, task: str,
                   now: datetime | None = None) -> Order | None:
    """Move a failed provisioning attempt to the next alternative. None when the order moved on already."""
    now = now or timezone.now()
    order = locked(order_id)
    if order.attempt != attempt or order.state != State.PROVISIONING:
        return None
    failed_offer, failed_ref = order.offer_id, order.job_ref
    candidates = _candidates(order)
    # The alternatives' offers are locked before the release touches units and the catalog version: the locking
    # order of every reservation (reservations.py), so a failover never waits for an offer while holding the
    # version row that a placement on that offer waits for.
    offers = reservations.lock_offers([alt.offer_id for _, alt in candidates]) if candidates else {}
    reservations.release(order, reason=f"attempt {attempt} failed: {code}", now=now)
    if failed_ref:  # a job that failed to come up may still hold the provider's machines
        outbox.enqueue(TASK_TERMINATE, [order.pk, failed_offer, failed_ref])
    chosen = _next_alternative(order, candidates, offers, now=now, task=task)
    if chosen is None:
        order.failure_code = "no_capacity" if code in CAPACITY_CODES else code
        order.failure_reason = (f"attempt {attempt} on offer {failed_offer} failed ({code}: {reason}); "
                                f"no alternative with free capacity is left")
        move(order, State.FAILED, now=now, reason=order.failure_reason, task=task,
             data={"code": order.failure_code, "last_error": code, "attempt": attempt},
             extra_fields=("failure_code", "failure_reason"))
    else:
        index, alternative, offer = chosen
        order.attempt = attempt + 1
        apply_alternative(order, index, alternative, offer)
        order.job_ref, order.log_offset = "", 0
        move(order, State.QUEUED, now=now, reason=f"failover after {code}: {reason}", task=task,
             data={"from_offer": failed_offer, "to_offer": alternative.offer_id, "attempt": order.attempt,
                   "code": code},
             extra_fields=("attempt", "offer", "plan_index", "nodes", "accelerator_count", "node_price_per_hour",
                           "driver", "job_ref", "log_offset"))
        reservations.confirm(order)
        outbox.enqueue(TASK_PROVISION, [order.pk, order.attempt])
    reliability_observe(failed_offer, 0)
    return order


def _candidates(order: Order) -> list[tuple[int, Alternative]]:
    """The alternatives after the current one, as many as attempts are left."""
    remaining = config.max_attempts() - order.attempt
    return [(i, alt) for i, alt in alternatives_of(order.plan) if i > order.plan_index][: max(0, remaining)]


def _next_alternative(order: Order, candidates: list[tuple[int, Alternative]], offers: dict[int, Offer], *,
                      now: datetime, task: str) -> tuple[int, Alternative, Offer] | None:
    for index, alternative in candidates:
        offer = offers.get(alternative.offer_id)
        held = reservations.reserve(order, offer, alternative.nodes, attempt=order.attempt + 1, expires_at=None)
        if held:
            return index, alternative, offer
        note(order, now=now, reason=f"alternative {alternative.rank} (offer {alternative.offer_id}) skipped: "
                                    f"no free capacity", task=task, data={"offer_id": alternative.offer_id})
    return None
