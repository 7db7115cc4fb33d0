"""Enqueue billing's Celery tasks after the current transaction commits (by task name: no import of workers).

A publish that fails (Redis down) is logged and dropped: every piece of work billing enqueues is recorded in a
row first (charge settling, refund pending, event received, transfer failed/pending), and the reconciler
(beat `billing-reconcile`) re-enqueues rows left in those states.
"""

from __future__ import annotations

import logging

from django.db import transaction

log = logging.getLogger(__name__)
TASKS = "workers.tasks.billing"
PUBLISH_RETRY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5}


def send(task: str, *args: int | str, countdown: float | None = None) -> None:
    from broker.celery import app
    from broker.celery_routing import queue_for

    name = f"{TASKS}.{task}"
    try:
        app.send_task(name, args=list(args), countdown=countdown, queue=queue_for(name),
                      retry=True, retry_policy=PUBLISH_RETRY, ignore_result=True)
    except Exception as exc:  # noqa: BLE001 - any broker failure: the reconciler re-drives the row later
        log.warning("billing: could not publish %s%s (%s); the reconciler will re-drive it", name, args, exc)


def enqueue(task: str, *args: int | str, countdown: float | None = None) -> None:
    """Send `workers.tasks.billing.<task>(*args)` once the surrounding transaction commits (at once outside one)."""
    transaction.on_commit(lambda: send(task, *args, countdown=countdown))
