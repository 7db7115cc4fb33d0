"""Celery tasks of the order pipeline. Each takes ids, re-reads the order and runs one step of
marketplace/orders/services/pipeline.py; every step is idempotent (claims with conditional updates, provider
calls carry the key order:<id>:attempt:<n>), so a redelivered or re-driven message is harmless.

Transient driver errors are retried with exponential backoff and full jitter, capped (ORDERS_RETRY_*); when the
retries run out the step's give-up handler fails over or fails the order with a coded reason. Polls reschedule
themselves with a countdown instead of blocking a worker.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable

from celery import Task, shared_task

from marketplace.orders import config
from workers.drivers.base import TerminalDriverError, TransientDriverError

log = logging.getLogger(__name__)
OPTIONS = {"bind": True, "acks_late": True, "ignore_result": True, "max_retries": None}


def backoff_s(retries: int) -> float:
    """Full jitter: uniform in [0, min(cap, base x 2^retries)]."""
    return random.uniform(0, min(config.retry_cap_s(), config.retry_base_s() * (2 ** retries)))


def _run(task: Task, step: Callable[[], object], give_up: Callable[[TransientDriverError], None],
         refused: Callable[[TerminalDriverError], None], order_id: int) -> None:
    from marketplace.orders.services.outbox import send_task

    try:
        nxt = step()
    except TerminalDriverError as exc:
        log.warning("%s(order %s): terminal driver error %s: %s", task.name, order_id, exc.code, exc)
        refused(exc)
        return
    except TransientDriverError as exc:
        retries = task.request.retries
        if retries < config.retry_max():
            delay = backoff_s(retries)
            _note_retry(order_id, task.name, exc, retries + 1, delay)
            raise task.retry(exc=exc, countdown=delay) from exc
        log.warning("%s(order %s): giving up after %d retries: %s", task.name, order_id, retries, exc)
        give_up(exc)
        return
    if nxt is not None:
        send_task(nxt.task, nxt.args, countdown=nxt.countdown)


def _note_retry(order_id: int, task: str, exc: TransientDriverError, retry: int, delay: float) -> None:
    from django.db import transaction
    from django.utils import timezone

    from marketplace.orders.services.lifecycle import locked, note

    with transaction.atomic():
        order = locked(order_id)
        note(order, now=timezone.now(), reason=f"transient driver error, retry {retry}/{config.retry_max()} "
                                               f"in {delay:.1f} s: {exc.message}",
             task=task, data={"code": exc.code, "retry": retry})


@shared_task(name="workers.tasks.orders.provision", **OPTIONS)
def provision(self: Task, order_id: int, attempt: int) -> None:
    from marketplace.orders.services import pipeline

    _run(self, lambda: pipeline.step_provision(order_id, attempt, task=self.name),
         lambda exc: pipeline.give_up_provision(order_id, attempt, exc, task=self.name),
         lambda exc: pipeline.refused_provision(order_id, attempt, exc, task=self.name), order_id)


@shared_task(name="workers.tasks.orders.poll_status", **OPTIONS)
def poll_status(self: Task, order_id: int, attempt: int) -> None:
    from marketplace.orders.services import pipeline

    _run(self, lambda: pipeline.step_poll(order_id, attempt, task=self.name),
         lambda exc: pipeline.give_up_poll(order_id, attempt, exc, task=self.name),
         lambda exc: pipeline.refused_poll(order_id, attempt, exc, task=self.name), order_id)


@shared_task(name="workers.tasks.orders.meter", **OPTIONS)
def meter(self: Task, order_id: int, attempt: int) -> None:
    from marketplace.orders.services import pipeline

    _run(self, lambda: pipeline.step_meter(order_id, attempt, task=self.name),
         lambda exc: pipeline.give_up_meter(order_id, attempt, exc, task=self.name),
         lambda exc: pipeline.refused_meter(order_id, attempt, exc, task=self.name), order_id)


@shared_task(name="workers.tasks.orders.stop", **OPTIONS)
def stop(self: Task, order_id: int) -> None:
    from marketplace.orders.services import pipeline

    _run(self, lambda: pipeline.step_stop(order_id, task=self.name),
         lambda exc: pipeline.give_up_stop(order_id, exc, task=self.name),
         lambda exc: pipeline.give_up_stop(order_id, exc, task=self.name), order_id)


@shared_task(name="workers.tasks.orders.terminate_job", **OPTIONS)
def terminate_job(self: Task, order_id: int, offer_id: int, job_ref: str) -> None:
    """Best effort: terminate a job no attempt uses any more. Retried on transient errors, then dropped."""
    from marketplace.orders.services import pipeline

    try:
        pipeline.step_terminate(offer_id, job_ref)
    except TerminalDriverError as exc:
        log.warning("order %s: terminate of job %s refused: %s", order_id, job_ref, exc)
    except TransientDriverError as exc:
        if self.request.retries < config.retry_max():
            raise self.retry(exc=exc, countdown=backoff_s(self.request.retries)) from exc
        log.warning("order %s: could not terminate job %s: %s", order_id, job_ref, exc)


@shared_task(name="workers.tasks.orders.meter_due", acks_late=True, ignore_result=True)
def meter_due() -> int:
    """Beat, every ORDERS_METER_SWEEP_S: send the meter runs that are due (meter_sweep.py). Returns how many."""
    from marketplace.orders.services.meter_sweep import meter_due as sweep

    return sweep()


@shared_task(name="workers.tasks.orders.reconcile", acks_late=True, ignore_result=False)
def reconcile() -> dict | None:
    """Beat, every 30 s. Returns the report (None when another reconciler held the lease)."""
    from marketplace.orders.services.reconciler import reconcile as run

    report = run()
    return None if report is None else report.as_dict()
