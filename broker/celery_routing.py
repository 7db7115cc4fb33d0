"""Which Celery queue each task goes to: queues split by kind, so a slow provider never starves payments.

Four kinds, each its own Redis list, derived from the base queue (CELERY_QUEUE, `broker` by default):

    default       <base>               housekeeping and the reconcilers (beat)
    provisioning  <base>.provisioning  provider calls that launch or tear down jobs (can block on a slow provider)
    polling       <base>.polling       short status polls and meter readings that reschedule themselves
    billing       <base>.billing       Stripe: captures, voids, refunds, transfers, webhook events

The queue is derived from the base *at routing time* (settings.CELERY_TASK_DEFAULT_QUEUE), so a process whose
base queue is private (tests set CELERY_QUEUE, or settings at run time) routes into its own family of queues.
Every task the workers register must have a kind here: tests/ops/test_routing.py fails on a task without one.
Deployment (which workers serve which kinds): docs/deployment.md.
"""

from __future__ import annotations

from collections.abc import Iterable

from kombu import Exchange, Queue

DEFAULT = "default"
PROVISIONING = "provisioning"
POLLING = "polling"
BILLING = "billing"
KINDS: tuple[str, ...] = (DEFAULT, PROVISIONING, POLLING, BILLING)

_BILLING = "workers.tasks.billing."
TASK_KINDS: dict[str, str] = {
    "workers.tasks.offers.unlist_expired_offers": DEFAULT,
    "workers.tasks.agents.unlist_stale_agent_offers": DEFAULT,
    "workers.tasks.orders.reconcile": DEFAULT,
    "workers.tasks.orders.provision": PROVISIONING,
    "workers.tasks.orders.stop": PROVISIONING,
    "workers.tasks.orders.terminate_job": PROVISIONING,
    "workers.tasks.orders.poll_status": POLLING,
    "workers.tasks.orders.meter": POLLING,
    "workers.tasks.orders.meter_due": POLLING,
    _BILLING + "process_stripe_event": BILLING,
    _BILLING + "capture_order_payment": BILLING,
    _BILLING + "void_order_payment": BILLING,
    _BILLING + "execute_refund": BILLING,
    _BILLING + "reverse_transfer_for_refund": BILLING,
    _BILLING + "execute_transfer": BILLING,
    _BILLING + "order_finished": BILLING,
    _BILLING + "retry_provider_transfers": BILLING,
    _BILLING + "reconcile": BILLING,
}


def base_queue() -> str:
    from django.conf import settings

    return settings.CELERY_TASK_DEFAULT_QUEUE


def kind_queue(kind: str, base: str | None = None) -> str:
    """The queue of one kind: the base queue itself for `default`, `<base>.<kind>` otherwise."""
    if kind not in KINDS:
        raise ValueError(f"unknown queue kind {kind!r} (one of {', '.join(KINDS)})")
    base = base or base_queue()
    return base if kind == DEFAULT else f"{base}.{kind}"


def queues_for(kinds: Iterable[str] = KINDS, base: str | None = None) -> list[str]:
    """The queues a worker serving `kinds` consumes (`celery worker --queues` takes them comma-separated)."""
    return [kind_queue(kind, base) for kind in kinds]


def task_queues(base: str) -> list[Queue]:
    """CELERY_TASK_QUEUES: what a worker started without --queues consumes (every kind: nothing is left unserved).
    Each queue has its own direct exchange and routing key, as Celery gives a queue it creates on demand: left to
    Celery's defaults they would all share the base queue's exchange and key, and a message would land in all four."""
    return [Queue(name, Exchange(name, type="direct"), routing_key=name) for name in queues_for(KINDS, base)]


def queue_for(task_name: str, base: str | None = None) -> str:
    """The queue a task is sent to. Celery's own tasks (celery.*) and unknown names go to the base queue."""
    return kind_queue(TASK_KINDS.get(task_name, DEFAULT), base)


def route_task(name: str, args: object = None, kwargs: object = None, options: object = None,
               task: object = None, **kw: object) -> dict[str, str]:
    """The CELERY_TASK_ROUTES router: apply_async, delay and beat route through it (an explicit queue= wins)."""
    return {"queue": queue_for(name)}
