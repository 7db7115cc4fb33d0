"""The pipeline steps the Celery tasks run: each re-reads the order, talks to its driver, and calls the transition
services. A step returns the next self-rescheduling poll (`Next`) or None; it never waits for the provider.
The meter runs are such a `Next` too when due within the sweep's interval; later ones are sent by the beat sweep
from the row's meter_due_at (meter_sweep.py). If a publish is lost, the reconciler re-drives the running order once
it looks stuck.

TransientDriverError propagates to the task, which retries it with backoff and, when retries are exhausted,
calls the step's `give_up_*`. Before the job runs, a TerminalDriverError (capacity gone, the provider refusing
the job or our signature) or a job that fails to come up fails the attempt at once (no retry) and fails over to
the next alternative; once running, a terminal error stops the order as failed with the error's code.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.utils import timezone

from marketplace.billing.services.order_hooks import billing_meter_order
from marketplace.billing.services.orders import UsageOutcome
from marketplace.orders import config
from marketplace.orders.models import Order
from marketplace.orders.services.drivers import create_job, driver_for_offer, driver_named, job_spec
from marketplace.orders.services.failover import order_failover
from marketplace.orders.services.lifecycle import TASK_METER, TASK_POLL, TASK_PROVISION, touch
from marketplace.orders.services.meter_sweep import meter_delay_s, run_seconds, sent_by_sweep
from marketplace.orders.services.metering import budget_reached, order_append_log, order_record_usage
from marketplace.orders.services.transitions import (
    order_begin_stop,
    order_claim_provisioning,
    order_finish,
    order_note_once,
    order_record_job,
)
from marketplace.orders.states import State
from workers.drivers.base import (
    Driver,
    DriverError,
    JobState,
    JobStatus,
    TerminalDriverError,
    TransientDriverError,
)

log = logging.getLogger(__name__)
FINAL_LOG_READS = 20
CREDIT_LOW = "credit low: the order stops when prepaid credit runs out"


@dataclass(frozen=True, slots=True)
class Next:
    task: str
    args: tuple
    countdown: float = 0.0


def _order(order_id: int) -> Order | None:
    return Order.objects.select_related("offer__accelerator").filter(pk=order_id).first()


# ------------------------------------------------------------------------------------------------ provision
def step_provision(order_id: int, attempt: int, *, task: str) -> Next | None:
    order = order_claim_provisioning(order_id, attempt, task=task)
    if order is None:
        return None
    if order.job_ref:  # created before a crash or redelivery: only watch it
        return Next(TASK_POLL, (order_id, attempt))
    offer = order.offer
    try:
        driver = driver_for_offer(offer)
        job_ref, status = create_job(driver, job_spec(order, offer), timeout_s=config.driver_timeout_s())
    except TerminalDriverError as exc:  # capacity gone, or refused: this attempt failed, try the next alternative
        order_failover(order_id, attempt, code=exc.code, reason=exc.message, task=task)
        return None
    return _after_status(order_id, attempt, driver, job_ref, task=task, known=order, status=status)


def give_up_provision(order_id: int, attempt: int, exc: DriverError, *, task: str) -> None:
    """Transient errors outlasted the retries: the provider is unreachable, try the next alternative."""
    order_failover(order_id, attempt, code="provider_unreachable", reason=exc.message, task=task)


def refused_provision(order_id: int, attempt: int, exc: TerminalDriverError, *, task: str) -> None:
    """A terminal error after the job was created (e.g. its first status): the attempt failed."""
    order_failover(order_id, attempt, code=exc.code, reason=exc.message, task=task)


# ------------------------------------------------------------------------------------------------ poll
def step_poll(order_id: int, attempt: int, *, task: str) -> Next | None:
    order = _order(order_id)
    if order is None or order.attempt != attempt or order.state != State.PROVISIONING:
        return None
    if not order.job_ref:
        return Next(TASK_PROVISION, (order_id, attempt))
    return _after_status(order_id, attempt, driver_for_offer(order.offer), order.job_ref, task=task, known=order)


def give_up_poll(order_id: int, attempt: int, exc: DriverError, *, task: str) -> None:
    order_failover(order_id, attempt, code="provider_unreachable", reason=exc.message, task=task)


def refused_poll(order_id: int, attempt: int, exc: TerminalDriverError, *, task: str) -> None:
    order_failover(order_id, attempt, code=exc.code, reason=exc.message, task=task)


def _after_status(order_id: int, attempt: int, driver: Driver, job_ref: str, *, task: str,
                  known: Order, status: JobStatus | None = None) -> Next | None:
    """Ask the job's status (unless the driver gave it with the create: `status`), then record the job (and
    running, in the same transaction) or wait or fail over. `known`: the order as this step read it
    (order_record_job moves it to running without reading it again)."""
    if status is None:
        status = driver.status(job_ref, timeout_s=config.driver_timeout_s())
    came_up = status.state not in (JobState.PENDING, JobState.LOST) and not (
        status.state in (JobState.FAILED, JobState.CANCELLED) and status.exit_code is None)
    outcome = order_record_job(order_id, attempt, job_ref, task=task, running=came_up, message=status.message,
                               known=known)
    if outcome == "orphan":  # the order moved on (e.g. cancelled) while the job was being created
        _terminate_quietly(driver, job_ref)
        return None
    if outcome == "running":  # metering starts: at once when the job already finished (a short command)
        return _meter_next(order_id, attempt, 0.0 if status.state.finished else meter_delay_s(known, 0.0))
    if came_up:
        return None
    if status.state != JobState.PENDING:  # it never came up: this attempt failed
        code = "job_lost" if status.state == JobState.LOST else "provision_failed"
        order_failover(order_id, attempt, code=code, reason=status.message or status.state.value, task=task)
        return None
    now = timezone.now()
    order = Order.objects.only("provisioning_at", "state").get(pk=order_id)
    if order.state != State.PROVISIONING:
        return None
    waited = (now - (order.provisioning_at or now)).total_seconds()
    if waited > config.provision_timeout_s():
        _terminate_quietly(driver, job_ref)
        order_failover(order_id, attempt, code="provision_timeout", reason=f"still pending after {waited:.0f} s",
                       task=task)
        return None
    touch(order_id, now)
    return Next(TASK_POLL, (order_id, attempt), config.poll_interval_s())


# ------------------------------------------------------------------------------------------------ meter
def _outcome(status: JobStatus) -> tuple[State, str, str]:
    """(final state, failure code, reason) for a job that finished on its own."""
    message = status.message or status.state.value
    if status.state == JobState.SUCCEEDED:
        return State.COMPLETED, "", f"job exited with code {status.exit_code or 0}"
    if status.state == JobState.TIMEOUT:
        return State.COMPLETED, "", f"job reached its time limit ({message})"
    if status.state == JobState.FAILED and status.exit_code is not None:
        return State.FAILED, "job_failed", f"job exited with code {status.exit_code}"
    if status.state == JobState.FAILED:
        return State.FAILED, "node_failed", message
    if status.state == JobState.CANCELLED:
        return State.FAILED, "terminated_by_provider", message
    return State.FAILED, "job_lost", message


def step_meter(order_id: int, attempt: int, *, task: str) -> Next | None:
    order = _order(order_id)
    if order is None or order.attempt != attempt or order.state != State.RUNNING:
        return None
    driver = driver_for_offer(order.offer)
    timeout = config.driver_timeout_s()
    status = driver.status(order.job_ref, timeout_s=timeout)
    _collect(order, driver, reads=FINAL_LOG_READS if status.state.finished else 1)
    usage = driver.usage(order.job_ref, timeout_s=timeout)
    order = order_record_usage(order_id, attempt, usage) or order
    if order.state != State.RUNNING:
        return None
    billed = billing_meter_order(order)
    if status.state.finished:
        outcome, code, reason = _outcome(status)
        order_begin_stop(order_id, outcome=outcome, code=code, reason=reason, attempt=attempt, task=task,
                         data={"exit_code": status.exit_code})
        return None
    duration_s = float(order.duration_hours) * 3600
    ran_s = run_seconds(order, usage.elapsed_s, timezone.now())
    if ran_s >= duration_s:
        order_begin_stop(order_id, outcome=State.COMPLETED, reason="duration reached", attempt=attempt, task=task,
                         data={"elapsed_s": round(ran_s, 3)})
        return None
    if budget_reached(order):
        order_begin_stop(order_id, outcome=State.COMPLETED, reason="budget cap reached", attempt=attempt,
                         task=task, data={"metered_usd": str(order.metered_usd)})
        return None
    if billed is not None and billed.action == "stop":
        order_begin_stop(order_id, outcome=State.FAILED, code=billed.reason, attempt=attempt, task=task,
                         reason=f"stopped by billing: {billed.reason.replace('_', ' ')}", data=_billing_data(billed))
        return None
    if billed is not None and billed.action == "warn":
        order_note_once(order_id, attempt, reason=CREDIT_LOW, task=task, data=_billing_data(billed))
    return _meter_next(order_id, attempt, meter_delay_s(order, ran_s))


def _meter_next(order_id: int, attempt: int, delay_s: float) -> Next | None:
    """The next meter run as a countdown message, or None when the sweep sends it (meter_sweep.py: the row's
    meter_due_at, set by the step that called this, says when)."""
    return None if sent_by_sweep(delay_s) else Next(TASK_METER, (order_id, attempt), delay_s)


def _billing_data(billed: UsageOutcome) -> dict:
    return {"billing": billed.action, "code": billed.reason, "charged_usd": str(billed.charged),
            "uncovered_usd": str(billed.uncovered),
            "remaining_credit_usd": None if billed.remaining_credit is None else str(billed.remaining_credit)}


def give_up_meter(order_id: int, attempt: int, exc: DriverError, *, task: str) -> None:
    order_begin_stop(order_id, outcome=State.FAILED, code="provider_unreachable", reason=exc.message,
                     attempt=attempt, task=task)


def refused_meter(order_id: int, attempt: int, exc: TerminalDriverError, *, task: str) -> None:
    order_begin_stop(order_id, outcome=State.FAILED, code=exc.code, reason=exc.message, attempt=attempt, task=task)


def _collect(order: Order, driver: Driver, *, reads: int) -> None:
    """Append the driver's new log output (up to `reads` chunks, until it says complete)."""
    offset = order.log_offset
    for _ in range(reads):
        chunk = driver.logs(order.job_ref, offset, timeout_s=config.driver_timeout_s())
        if not order_append_log(order.pk, order.attempt, offset, chunk):
            return
        offset = chunk.next_offset
        if chunk.complete or not chunk.text:
            return


# ------------------------------------------------------------------------------------------------ stop
def step_stop(order_id: int, *, task: str) -> Next | None:
    order = _order(order_id)
    if order is None or order.state != State.STOPPING:
        return None
    details: dict = {}
    if order.job_ref:
        driver = driver_for_offer(order.offer)
        driver.terminate(order.job_ref, timeout_s=config.driver_timeout_s())
        try:
            _collect(order, driver, reads=FINAL_LOG_READS)
            usage = driver.usage(order.job_ref, timeout_s=config.driver_timeout_s())
            order_record_usage(order_id, order.attempt, usage)
        except TerminalDriverError as exc:  # the provider forgot the job after terminating it: keep what we have
            details["final_read_error"] = exc.message
    order_finish(order_id, terminated_ref=order.job_ref, task=task, data=details)
    return None


def give_up_stop(order_id: int, exc: DriverError, *, task: str) -> None:
    """Terminate kept failing (or was refused): finish anyway, recording why; capacity is released."""
    order = _order(order_id)
    if order is not None and order.state == State.STOPPING:
        order_finish(order_id, terminated_ref=order.job_ref, task=task,
                     data={"terminate_error": f"{exc.code}: {exc.message}"})


# ------------------------------------------------------------------------------------------------ orphans
def step_terminate(offer_id: int, job_ref: str) -> None:
    """Best-effort terminate of a job no order uses any more (failed attempt, order failed by the reconciler)."""
    from marketplace.models import Offer

    offer = Offer.objects.filter(pk=offer_id).only("pk", "driver", "provider_id").first()
    if offer is not None:
        driver_named(offer.driver, offer.provider_id, offer.pk).terminate(job_ref, timeout_s=config.driver_timeout_s())


def _terminate_quietly(driver: Driver, job_ref: str) -> None:
    try:
        driver.terminate(job_ref, timeout_s=config.driver_timeout_s())
    except (TransientDriverError, TerminalDriverError) as exc:
        log.warning("could not terminate orphan job %s: %s", job_ref, exc)
