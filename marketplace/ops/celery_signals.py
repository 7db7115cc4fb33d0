"""Celery signal receivers: task latency and outcomes (metrics), the order id in task logs, the worker heartbeat
and, with WORKER_METRICS_PORT, a metrics endpoint on a worker host. Connected once, from OpsConfig.ready()."""

from __future__ import annotations

import functools
import inspect
import logging
import time

from celery import signals

log = logging.getLogger(__name__)
_started: dict[str, tuple[float, object]] = {}  # task id -> (monotonic start, order-id context token)
_heart = None


def order_id_of(task, args: tuple | list | None, kwargs: dict | None) -> int | None:
    """The order a task works on: its `order_id` argument (by name or first position), when it has one."""
    if kwargs and "order_id" in kwargs:
        return kwargs["order_id"]
    params = _parameters(task)
    if "order_id" in params and args:
        index = params.index("order_id")
        return args[index] if index < len(args) else None
    return None


@functools.cache
def _parameters(task) -> tuple[str, ...]:
    try:
        return tuple(inspect.signature(task.run).parameters)
    except (TypeError, ValueError):
        return ()


def task_prerun(task_id=None, task=None, args=None, kwargs=None, **_):
    from marketplace.ops.context import order_id

    token = order_id.set(order_id_of(task, args, kwargs))
    _started[task_id] = (time.monotonic(), token)


def task_postrun(task_id=None, task=None, state=None, **_):
    from marketplace.ops.context import order_id
    from marketplace.ops.metrics import TASK_LATENCY, TASKS

    started = _started.pop(task_id, None)
    if started is None:
        return
    TASK_LATENCY.labels(task.name).observe(time.monotonic() - started[0])
    outcome = {"SUCCESS": "succeeded", "FAILURE": "failed", "RETRY": "retried"}.get(state, (state or "").lower())
    TASKS.labels(task.name, outcome).inc()
    try:
        order_id.reset(started[1])
    except ValueError:  # another context (threads): nothing to restore
        order_id.set(None)


def setup_logger(logger=None, **_):
    from django.conf import settings

    from marketplace.ops.context import attach

    attach(logger, settings.LOG_FORMAT)


def worker_ready(sender=None, **_):
    """In the worker's main process: start the heartbeat (and the worker-side metrics endpoint if configured)."""
    global _heart
    from django.conf import settings

    from marketplace.ops.heartbeat import Heart

    queues = sorted(sender.app.amqp.queues.consume_from)
    _heart = Heart(sender.hostname, queues, settings.WORKER_HEARTBEAT_INTERVAL_S)
    _heart.start()
    if settings.WORKER_METRICS_PORT:
        from prometheus_client import start_http_server

        start_http_server(settings.WORKER_METRICS_PORT, addr=settings.WORKER_METRICS_ADDR,
                          registry=worker_registry())
        log.info("worker metrics on http://%s:%s/metrics", settings.WORKER_METRICS_ADDR,
                 settings.WORKER_METRICS_PORT)


def worker_registry():
    import os

    from prometheus_client import REGISTRY, CollectorRegistry, multiprocess

    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return registry


def worker_shutdown(sender=None, **_):
    from marketplace.ops import heartbeat

    if _heart is not None:
        _heart.stop()
        try:
            heartbeat.forget(_heart.hostname)  # not ready at once, rather than after the stale delay
        except Exception as exc:  # noqa: BLE001 - Redis gone: the entry goes stale instead
            log.warning("worker heartbeat not removed: %s", exc)


def connect() -> None:
    signals.task_prerun.connect(task_prerun, weak=False, dispatch_uid="ops.task_prerun")
    signals.task_postrun.connect(task_postrun, weak=False, dispatch_uid="ops.task_postrun")
    signals.after_setup_logger.connect(setup_logger, weak=False, dispatch_uid="ops.setup_logger")
    signals.after_setup_task_logger.connect(setup_logger, weak=False, dispatch_uid="ops.setup_task_logger")
    signals.worker_ready.connect(worker_ready, weak=False, dispatch_uid="ops.worker_ready")
    signals.worker_shutdown.connect(worker_shutdown, weak=False, dispatch_uid="ops.worker_shutdown")
