"""The order lifecycle: states and the one table of legal moves. Pure Python (no Django).

    reserved ──► queued ──► provisioning ──► running ──► stopping ──► completed
       │            │          │   ▲                        │  ├──► cancelled
       │            │          │   └─ failover (next        │  └──► failed
       │            │          │      alternative, re-      │
       ▼            ▼          ▼      reserved) ─► queued   ▼
    expired     cancelled    stopping (cancel) / failed     failed

- reserved: capacity is held (Reservation rows); nothing has been asked of a provider. A reservation that never
  proceeds expires (reconciler) -> expired.
- queued: the provision task is enqueued (outbox) for attempt N.
- provisioning: the driver was asked to create the job (idempotency key order:<id>:attempt:<n>) and we poll it.
- running: the job runs; the meter task fetches logs and usage and stops it at the duration or budget cap.
- stopping: the job is being terminated; `stop_outcome` says which final state follows (completed, cancelled,
  failed). Capacity is released in the same transaction as the final state.
"""

from __future__ import annotations

from enum import StrEnum


class State(StrEnum):
    RESERVED = "reserved"
    QUEUED = "queued"
    PROVISIONING = "provisioning"
    RUNNING = "running"
    STOPPING = "stopping"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


FINAL: frozenset[State] = frozenset({State.COMPLETED, State.FAILED, State.CANCELLED, State.EXPIRED})
ACTIVE: frozenset[State] = frozenset(State) - FINAL
# States in which a Celery step is expected to make progress (the reconciler re-drives them when stale).
IN_FLIGHT: frozenset[State] = frozenset({State.QUEUED, State.PROVISIONING, State.RUNNING, State.STOPPING})

TRANSITIONS: dict[State, frozenset[State]] = {
    State.RESERVED: frozenset({State.QUEUED, State.CANCELLED, State.EXPIRED, State.FAILED}),
    State.QUEUED: frozenset({State.PROVISIONING, State.CANCELLED, State.FAILED}),
    State.PROVISIONING: frozenset({State.RUNNING, State.QUEUED, State.STOPPING, State.FAILED}),
    State.RUNNING: frozenset({State.STOPPING, State.FAILED}),
    State.STOPPING: frozenset({State.COMPLETED, State.CANCELLED, State.FAILED}),
    State.COMPLETED: frozenset(),
    State.FAILED: frozenset(),
    State.CANCELLED: frozenset(),
    State.EXPIRED: frozenset(),
}
STOP_OUTCOMES: frozenset[State] = frozenset({State.COMPLETED, State.CANCELLED, State.FAILED})


def can_move(source: str, target: str) -> bool:
    return State(target) in TRANSITIONS[State(source)]


def lifecycle_table() -> list[tuple[str, list[str]]]:
    """(state, legal next states) rows, for docs and tests."""
    return [(state.value, sorted(t.value for t in TRANSITIONS[state])) for state in State]
