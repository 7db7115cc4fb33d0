"""Celery tasks of billing. Each takes ids and runs one idempotent service of marketplace/billing/services.

Stripe calls that fail transiently (connection errors, timeouts, 429, 5xx after the SDK's own retries) are
retried with exponential backoff and jitter (capped); the next attempt repeats the same request under the same
idempotency key, so Stripe acts at most once. Refusals are recorded on the rows for operators. Transfers are
retried by the beat task `retry_provider_transfers` from their rows instead (their retry schedule is data).
"""

from __future__ import annotations

import logging

from celery import shared_task

from marketplace.billing.gateway import TransientGatewayError

logger = logging.getLogger(__name__)


def gone_is_done(func):
    """A task that takes an id re-reads its row; when the row is gone there is nothing left to do (a no-op
    logged as a warning, not a traceback and not a retry)."""
    import functools

    from django.core.exceptions import ObjectDoesNotExist

    from marketplace.errors import NotFoundError

    @functools.wraps(func)
    def run(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except (ObjectDoesNotExist, NotFoundError) as exc:
            logger.warning("%s%s: nothing to do: %s", func.__name__, args, exc)
            return None

    return run

RETRYING = {
    "acks_late": True,
    "ignore_result": True,
    "autoretry_for": (TransientGatewayError,),
    "retry_backoff": 2,
    "retry_backoff_max": 300,
    "retry_jitter": True,
    "max_retries": 12,
}
NAME = "workers.tasks.billing."


@shared_task(name=NAME + "process_stripe_event", **RETRYING)
@gone_is_done
def process_stripe_event(event_pk: int) -> None:
    from marketplace.billing.services.webhooks import billing_process_event

    billing_process_event(event_pk)


@shared_task(name=NAME + "capture_order_payment", **RETRYING)
@gone_is_done
def capture_order_payment(order_id: int) -> None:
    from marketplace.billing.services.settlement import billing_capture_order

    billing_capture_order(order_id)


@shared_task(name=NAME + "void_order_payment", **RETRYING)
@gone_is_done
def void_order_payment(order_id: int) -> None:
    from marketplace.billing.services.settlement import billing_void_order

    billing_void_order(order_id)


@shared_task(name=NAME + "execute_refund", **RETRYING)
@gone_is_done
def execute_refund(refund_id: int) -> None:
    from marketplace.billing.services.settlement import billing_execute_refund

    billing_execute_refund(refund_id)


@shared_task(name=NAME + "reverse_transfer_for_refund", **RETRYING)
@gone_is_done
def reverse_transfer_for_refund(refund_id: int) -> None:
    from marketplace.billing.services.payouts import billing_reverse_transfer_for_refund

    billing_reverse_transfer_for_refund(refund_id)


@shared_task(name=NAME + "execute_transfer", acks_late=True, ignore_result=True)
@gone_is_done
def execute_transfer(transfer_id: int) -> None:
    from marketplace.billing.services.payouts import billing_execute_transfer

    billing_execute_transfer(transfer_id)


@shared_task(name=NAME + "order_finished", **RETRYING)
@gone_is_done
def order_finished(order_id: int) -> None:
    """Enqueued by the order pipeline when an order reaches a final state: settle or refund it."""
    from marketplace.billing.services.order_hooks import billing_order_finished

    billing_order_finished(order_id)


@shared_task(name=NAME + "retry_provider_transfers", acks_late=True, ignore_result=True)
def retry_provider_transfers() -> int:
    from marketplace.billing.services.payouts import billing_execute_transfer, transfers_due

    due = transfers_due()
    for pk in due:
        billing_execute_transfer(pk)
    return len(due)


@shared_task(name=NAME + "reconcile", acks_late=True, ignore_result=True)
def reconcile() -> dict[str, int]:
    from marketplace.billing.services.reconcile import billing_reconcile

    return billing_reconcile()
