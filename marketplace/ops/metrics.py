"""Prometheus metrics (prometheus_client).

Event metrics, counted where they happen: HTTP requests (middleware), Celery tasks (celery_signals). With
PROMETHEUS_MULTIPROC_DIR set (production: one directory per host, emptied at boot), every gunicorn worker and
Celery pool process writes there and /metrics adds them up (prometheus_client multiprocess mode); a worker host
without a web server exposes its own with WORKER_METRICS_PORT. Without it, each process counts for itself.

State metrics, read when scraped (consistent whichever host serves the scrape): queue depth per kind queue
(LLEN) and unacknowledged messages, orders by state and the placed -> running histogram (database), workers'
heartbeat age (Redis)."""

from __future__ import annotations

import logging
import os
import time
from datetime import timedelta

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily

log = logging.getLogger(__name__)

HTTP_REQUESTS = Counter("broker_http_requests_total", "HTTP requests served, by view, method and status.",
                        ["view", "method", "status"])
HTTP_LATENCY = Histogram("broker_http_request_duration_seconds", "Time to serve an HTTP request, by view.",
                         ["view", "method"], buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
TASKS = Counter("broker_celery_tasks_total", "Celery tasks finished, by task and outcome "
                "(succeeded, failed, retried).", ["task", "outcome"])
TASK_LATENCY = Histogram("broker_celery_task_duration_seconds", "Run time of a Celery task, by task.", ["task"],
                         buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300))
PROVISIONING_BUCKETS_S = (5, 15, 30, 60, 120, 300, 600, 1800, 3600)


def registry() -> CollectorRegistry:
    """The registry /metrics renders: event metrics (all processes of this host in multiprocess mode) + state."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        reg = CollectorRegistry()
        multiprocess.MultiProcessCollector(reg)
    else:
        reg = CollectorRegistry()
        for collector in (HTTP_REQUESTS, HTTP_LATENCY, TASKS, TASK_LATENCY):
            reg.register(collector)
    reg.register(StateCollector())
    return reg


def render() -> bytes:
    return generate_latest(registry())


class StateCollector:
    """Gauges read at scrape time. A source that cannot be read is left out (and logged), not an error."""

    def collect(self):
        yield from _safe(self.queues)
        yield from _safe(self.orders)

    def queues(self):
        from broker.celery_routing import KINDS, kind_queue
        from marketplace.ops import heartbeat

        conn = heartbeat.client()
        depth = GaugeMetricFamily("broker_celery_queue_depth", "Messages waiting in a Celery queue (LLEN).",
                                  labels=["queue", "kind"])
        pipe = conn.pipeline()
        names = [(kind_queue(kind), kind) for kind in KINDS]
        for name, _ in names:
            pipe.llen(name)
        pipe.hlen("unacked")
        *lengths, unacked = pipe.execute()
        for (name, kind), length in zip(names, lengths, strict=True):
            depth.add_metric([name, kind], length)
        yield depth
        yield GaugeMetricFamily("broker_celery_unacked_messages", "Messages delivered to a worker, not yet "
                                "acknowledged (all queues of this Redis).", value=unacked)
        age = GaugeMetricFamily("broker_worker_heartbeat_age_seconds", "Seconds since a worker's last heartbeat.",
                                labels=["worker"])
        now = time.time()
        for name, at, _ in heartbeat.read(conn):
            age.add_metric([name], max(0.0, now - at))
        yield age

    def orders(self):
        from django.db.models import Count, DurationField, ExpressionWrapper, F, Q, Sum

        from marketplace.orders.models import Order
        from marketplace.orders.models.orders import State

        counts = dict(Order.objects.values_list("state").annotate(n=Count("id")).values_list("state", "n"))
        by_state = GaugeMetricFamily("broker_orders", "Orders by state.", labels=["state"])
        for state in State:
            by_state.add_metric([state.value], counts.get(state.value, 0))
        yield by_state

        took = ExpressionWrapper(F("running_at") - F("created_at"), output_field=DurationField())
        aggregates = {f"le_{i}": Count("id", filter=Q(took__lte=timedelta(seconds=b)))
                      for i, b in enumerate(PROVISIONING_BUCKETS_S)}
        row = Order.objects.filter(running_at__isnull=False).annotate(took=took).aggregate(
            total=Count("id"), took_sum=Sum("took"), **aggregates)
        total_s = row["took_sum"].total_seconds() if row["took_sum"] is not None else 0.0
        buckets = [(str(float(b)), row[f"le_{i}"]) for i, b in enumerate(PROVISIONING_BUCKETS_S)]
        yield HistogramMetricFamily("broker_order_provisioning_seconds", "Time from placement to running, of every "
                                    "order that has run (read from the database at scrape time).",
                                    buckets=[*buckets, ("+Inf", row["total"])], sum_value=total_s)


def _safe(source):
    try:
        yield from source()
    except Exception as exc:  # noqa: BLE001 - Redis or the database down: the other metrics still render
        log.warning("metrics: %s unavailable: %s", source.__name__, exc)
