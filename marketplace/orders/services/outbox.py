"""Enqueue Celery work only after commit, without losing it when Redis is down.

`enqueue()` writes an OutboxMessage inside the caller's transaction and registers an on_commit hook that sends it
and deletes the row. If the send fails (Redis down), the row stays; the reconciler relays rows older than
ORDERS_OUTBOX_RELAY_AFTER_S. A message may therefore be sent twice (relay racing the hook): every task is
idempotent, so that is harmless; losing one is what the outbox prevents. Placement's provision message
(`send_after_commit`) writes its row only when the send fails: the order's state is the record, and the
reconciler's re-drive covers a crash before the send.
"""

from __future__ import annotations

import logging
import os
import threading
from datetime import datetime, timedelta
from functools import cache

from celery.utils import uuid
from django.conf import settings
from django.db import DatabaseError, router, transaction
from django.db.models import F
from django.utils import timezone

from marketplace.db_prepared import prepared_cursor
from marketplace.orders import config
from marketplace.orders.models import OutboxMessage

log = logging.getLogger(__name__)

# A short publish retry: with Redis down we want the row left for the reconciler, not a blocked request.
PUBLISH_RETRY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5}


def queue_name(task: str | None = None) -> str:
    """The queue a task goes to: its kind's queue (broker/celery_routing.py) under the base queue (CELERY_QUEUE env
    via settings; tests point it at their worker's queue). Without a task, the base queue."""
    from broker.celery_routing import queue_for

    return queue_for(task) if task else settings.CELERY_TASK_DEFAULT_QUEUE


def send_task(task: str, args: list | tuple, *, countdown: float = 0) -> None:
    """Publish now (no outbox): for self-rescheduling polls, whose loss the reconciler repairs.

    The message app.send_task(task, args, countdown=..., queue=<the task's queue>, ignore_result=True) sends, made
    and sent by the two steps send_task itself takes (app.amqp.create_task_message, app.amqp.send_task_message),
    without what it adds around them for features these tasks do not use: per-task options from the registry
    (none set), the router (the queue is given), a result-backend subscription (ignore_result: otherwise Celery
    subscribes to the task's result in Redis first, retrying 20 x 1 s while Redis is down, and the request that
    committed the order waits 20 s: tests/faults/test_redis_outage.py), the parent task's result trail. The queue
    is not declared on every publish: its exchange is direct, so Celery publishes to the anonymous exchange with
    the queue's name as routing key (a plain push to the queue; workers declare the queues they consume). Every
    order publishes twice (provision, the first meter run): this cut ~0.4 ms of CPU from each publish, ~40 %
    (tests/orders/test_outbox_publish.py checks the message against app.send_task's)."""
    from broker.celery import app

    args = list(args)
    parent = app.current_worker_task
    root_id = parent_id = None
    if parent is not None:  # as send_task: the task publishing it is its parent
        root_id, parent_id = parent.request.root_id or parent.request.id, parent.request.id
    registered = app._tasks.get(task)  # as send_task: a task this process knows gives its time limits
    hard, soft = (registered.time_limit, registered.soft_time_limit) if registered is not None else (None, None)
    message = app.amqp.create_task_message(
        uuid(), task, args, {}, countdown=countdown or None, reply_to=app.thread_oid, time_limit=hard,
        soft_time_limit=soft, create_sent_event=_sent_event(app), root_id=root_id, parent_id=parent_id,
        ignore_result=True, argsrepr=repr(args), kwargsrepr="{}")
    producer = _kept_producer(app)
    try:
        with producer.connection._reraise_as_library_errors():
            app.amqp.send_task_message(producer, task, message, queue=app.amqp.queues[queue_name(task)],
                                       declare=[], retry=True, retry_policy=PUBLISH_RETRY)
    except BaseException:
        _drop_kept_producer()  # the next publish starts from a new connection
        raise


_kept = threading.local()


def _kept_producer(app):
    """This thread's producer, kept between publishes (a broker connection of its own, made from the app's
    settings; a process forked from this one makes its own). Acquiring a producer from Celery's pool and releasing
    it around each publish (app.producer_or_acquire) cost ~50 us of the ~270 us a publish took."""
    kept = getattr(_kept, "producer", None)
    if kept is None or kept[0] != os.getpid():
        kept = _kept.producer = (os.getpid(), app.amqp.Producer(app.connection_for_write()))
    return kept[1]


def _drop_kept_producer() -> None:
    kept = getattr(_kept, "producer", None)
    _kept.producer = None
    if kept is not None and kept[0] == os.getpid():
        try:
            kept[1].connection.close()
        except Exception as exc:  # a broken connection: nothing more to release
            log.debug("outbox: closing the kept producer's connection: %s", exc)


@cache
def _sent_event(app) -> bool:
    return bool(app.conf.task_send_sent_event)


def enqueue(task: str, args: list | tuple, *, countdown: float = 0) -> OutboxMessage:
    """Inside a transaction: record the work; it is published after commit (or relayed later)."""
    message = OutboxMessage.objects.create(task=task, args=list(args), countdown=countdown)
    publish_after_commit(message)
    return message


def send_after_commit(task: str, args: list | tuple) -> None:
    """Publish after commit with no outbox row unless publishing fails, for the provisioning of an order just
    placed: its state (`queued`) records the work. Publishing failed (Redis down): the row is written then, and
    relayed as enqueue()'s would be. The process gone between the commit and the publish: the reconciler re-drives
    the order (an in-flight order no step touched for ORDERS_STUCK_AFTER_S gets its step sent again) -- later than
    a relayed row would be, for a crash in that instant. Against enqueue(): one INSERT and one DELETE fewer per
    order placed (each a share of the request's database work and, the DELETE, a round trip of its own)."""
    args = list(args)
    transaction.on_commit(lambda: _send_or_keep(task, args))


def _send_or_keep(task: str, args: list) -> None:
    try:
        send_task(task, args)
    except Exception as exc:  # kombu/redis connection errors of every kind: keep a row for the reconciler
        log.warning("outbox: could not publish %s%s: %s; kept for the reconciler", task, tuple(args), exc)
        try:
            OutboxMessage.objects.create(task=task, args=args, attempts=1, last_error=str(exc)[:2000])
        except DatabaseError as db_exc:  # the reconciler re-drives the order from its state
            log.error("outbox: could not keep %s%s either: %s", task, tuple(args), db_exc)


def publish_after_commit(message: OutboxMessage) -> None:
    """A row the current transaction wrote (enqueue, or a statement that writes it with other rows): published
    and deleted after commit."""
    transaction.on_commit(lambda: relay_one(message))


def relay_one(message: OutboxMessage, now: datetime | None = None) -> bool:
    """Publish one message and delete its row. False (row kept, error noted) when publishing failed."""
    now = now or timezone.now()
    due = message.created_at + timedelta(seconds=message.countdown)
    try:
        send_task(message.task, message.args, countdown=max(0.0, (due - now).total_seconds()))
    except Exception as exc:  # kombu/redis connection errors of every kind: keep the row for the reconciler
        log.warning("outbox: could not publish %s%s: %s", message.task, tuple(message.args), exc)
        OutboxMessage.objects.filter(pk=message.pk).update(attempts=F("attempts") + 1, last_error=str(exc)[:2000])
        return False
    _forget(message.pk)
    return True


def _forget(message_id: int) -> None:
    """Delete a published row. Its durability does not matter (if a crash loses the DELETE, the row is published
    again and the task, being idempotent, does nothing new), so on PostgreSQL it does not wait for the WAL flush:
    outside a transaction, one statement that is its own transaction and turns synchronous_commit off for itself
    (set_config(..., is_local): the setting holds until that transaction's commit)."""
    connection = transaction.get_connection(router.db_for_write(OutboxMessage))  # (no queryset built: ~0.1 ms)
    if connection.vendor == "postgresql" and not connection.in_atomic_block:
        with prepared_cursor() as cursor:
            cursor.execute(_lazy_delete_sql(), [message_id])
        return
    rows = OutboxMessage.objects.filter(pk=message_id)
    rows._raw_delete(rows.db)  # one DELETE (no collector, no signals: nothing refers to the row)


@cache
def _lazy_delete_sql() -> str:
    return (f"WITH lazy AS (SELECT set_config('synchronous_commit', 'off', true) AS setting) "
            f'DELETE FROM "{OutboxMessage._meta.db_table}" WHERE "id" = %s AND EXISTS (SELECT 1 FROM lazy)')


def pending_order_ids(now: datetime | None = None, limit: int = 500) -> set[int]:
    """Orders (every message's first argument) with a row the next relay_pending() would publish."""
    cutoff = (now or timezone.now()) - timedelta(seconds=config.outbox_relay_after_s())
    rows = OutboxMessage.objects.filter(created_at__lte=cutoff).order_by("id").values_list("args", flat=True)[:limit]
    return {args[0] for args in rows if args}


def relay_pending(now: datetime | None = None, limit: int = 500,
                  sent_args: list[list] | None = None) -> tuple[int, int]:
    """Publish outbox rows older than the relay delay (the reconciler). Returns (sent, failed); the args of each
    message sent are appended to `sent_args` when given."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=config.outbox_relay_after_s())
    sent = failed = 0
    for message in OutboxMessage.objects.filter(created_at__lte=cutoff).order_by("id")[:limit]:
        if relay_one(message, now):
            sent += 1
            if sent_args is not None:
                sent_args.append(message.args)
        else:
            failed += 1
            break  # Redis is down: stop here, the next run retries
    return sent, failed
