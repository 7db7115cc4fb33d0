"""Stripe POSTs recorded as PaymentOperation rows under deterministic idempotency keys.

`run_operation` stores the row (key, kind, parameters) before calling Stripe. A retry of the same work finds
the row: a success is returned from the row without calling Stripe again; a pending row (the outcome is not
known: timeout, 5xx) repeats the identical request with the same key, which Stripe answers by replaying its
first result; a terminal failure is raised again. Call it outside any transaction so the row is committed
before the network call.
"""

from __future__ import annotations

from collections.abc import Callable

from django.db import IntegrityError, transaction
from django.db.models import F

from marketplace.billing.gateway import CardDeclined, GatewayError, RequestRejected, TransientGatewayError
from marketplace.billing.models import PaymentOperation


class OperationConflict(Exception):
    """The same idempotency key was used for different parameters: a bug in the key derivation."""


def _error_from_row(op: PaymentOperation) -> GatewayError:
    if op.error_kind == "card_declined":
        return CardDeclined(op.error_message, code=op.error_code or None,
                            decline_code=(op.result or {}).get("decline_code"))
    return RequestRejected(op.error_message, code=op.error_code or None)


def run_operation(*, key: str, kind: str, params: dict, call: Callable[[], dict]) -> dict:
    """`call` performs the Stripe request with idempotency key `key`; returns Stripe's object as a dict."""
    try:
        with transaction.atomic():
            op, _ = PaymentOperation.objects.get_or_create(key=key, defaults={"kind": kind, "params": params})
    except IntegrityError:
        op = PaymentOperation.objects.get(key=key)
    if op.params != params or op.kind != kind:
        raise OperationConflict(f"idempotency key {key} was first used for {op.kind} {op.params}, now {kind} {params}")
    if op.status == PaymentOperation.Status.SUCCEEDED:
        return op.result
    if op.status == PaymentOperation.Status.FAILED:
        raise _error_from_row(op)
    PaymentOperation.objects.filter(pk=op.pk).update(attempts=F("attempts") + 1)
    try:
        result = call()
    except TransientGatewayError as exc:
        PaymentOperation.objects.filter(pk=op.pk).update(error_kind="transient", error_code=exc.code or "",
                                                         error_message=exc.message[:500])
        raise
    except CardDeclined as exc:
        PaymentOperation.objects.filter(pk=op.pk).update(
            status=PaymentOperation.Status.FAILED, error_kind="card_declined", error_code=exc.code or "",
            error_message=exc.message[:500], result={"decline_code": exc.decline_code})
        raise
    except RequestRejected as exc:
        PaymentOperation.objects.filter(pk=op.pk).update(
            status=PaymentOperation.Status.FAILED, error_kind="rejected", error_code=exc.code or "",
            error_message=exc.message[:500])
        raise
    PaymentOperation.objects.filter(pk=op.pk).update(status=PaymentOperation.Status.SUCCEEDED,
                                                     stripe_id=str(result.get("id") or ""), result=result,
                                                     error_kind="", error_code="", error_message="")
    return result
