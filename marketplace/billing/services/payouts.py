"""Providers' side: Stripe Connect Express onboarding, account status from Stripe, transfers of their earnings
(usage minus the platform fee), retries of failed transfers, and reversals when a paid order is refunded."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from marketplace.billing import gateway
from marketplace.billing.conf import billing_settings
from marketplace.billing.dispatch import enqueue
from marketplace.billing.models import (
    EntryKind,
    OperationKind,
    OrderRefund,
    PaymentOperation,
    ProviderPayoutAccount,
    ProviderTransfer,
)
from marketplace.billing.money import to_cents
from marketplace.billing.services import ledger
from marketplace.billing.services.operations import OperationConflict, run_operation
from marketplace.errors import PermissionDeniedError, ValidationFailed

TransferStatus = ProviderTransfer.Status


# -- onboarding ------------------------------------------------------------------------------------

def provider_onboarding_link(*, user, return_url: str, refresh_url: str) -> tuple[ProviderPayoutAccount, dict]:
    """Create the provider's Express account once (`provider:<id>:account`) and a fresh hosted-onboarding link
    (`provider:<id>:account_link:<n>`). Only members of the provider may ask. The URLs are where Stripe sends
    the member back (the API checks the ones a client supplies)."""
    if not getattr(user, "is_provider_member", False):
        raise PermissionDeniedError("Only provider members can set up payouts.")
    provider = user.provider
    account = ProviderPayoutAccount.objects.filter(provider=provider).first()
    try:
        if account is None:
            key = f"provider:{provider.pk}:account"
            params = {"provider_id": provider.pk}  # the account is the provider's, whichever member asks first
            result = run_operation(key=key, kind=OperationKind.ACCOUNT, params=params,
                                   call=lambda: gateway.create_express_account(
                                       email=user.email or "", metadata={"provider_id": str(provider.pk)}, key=key))
            account, _ = ProviderPayoutAccount.objects.get_or_create(
                provider=provider, defaults={"stripe_account_id": result["id"]})
        params = {"account": account.stripe_account_id, "return_url": return_url, "refresh_url": refresh_url}
        # The key names the parameters too: two requests that count the same n (concurrently, or after one whose
        # row was rolled back) either ask for the same link, which Stripe replays, or use different keys.
        n = PaymentOperation.objects.filter(kind=OperationKind.ACCOUNT_LINK,
                                            key__startswith=f"provider:{provider.pk}:account_link:").count() + 1
        key = f"provider:{provider.pk}:account_link:{n}:{_digest(params)}"
        link = run_operation(key=key, kind=OperationKind.ACCOUNT_LINK, params=params,
                             call=lambda: gateway.create_account_link(account.stripe_account_id, return_url=return_url,
                                                                      refresh_url=refresh_url, key=key))
    except gateway.TransientGatewayError:
        from marketplace.billing.errors import PaymentProviderUnavailable

        raise PaymentProviderUnavailable("The payment provider did not answer; try again.") from None
    except gateway.RequestRejected as exc:  # e.g. a return_url Stripe refuses: the caller's input, not a crash
        raise ValidationFailed(f"Stripe refused the onboarding link: {exc.message}",
                               code="payment_provider_rejected") from None
    return account, link


def _digest(params: dict) -> str:
    return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:16]


def payout_account_sync(stripe_account: dict) -> ProviderPayoutAccount | None:
    """Copy charges_enabled / payouts_enabled / requirements from Stripe's current view of the account. When
    payouts become enabled, transfers that waited for onboarding are retried at once."""
    with transaction.atomic():
        account = ProviderPayoutAccount.objects.select_for_update().filter(
            stripe_account_id=stripe_account["id"]).first()
        if account is None:
            return None
        was_enabled = account.payouts_enabled
        account.charges_enabled = bool(stripe_account.get("charges_enabled"))
        account.payouts_enabled = bool(stripe_account.get("payouts_enabled"))
        account.details_submitted = bool(stripe_account.get("details_submitted"))
        account.requirements_due = list((stripe_account.get("requirements") or {}).get("currently_due") or [])
        account.synced_at = timezone.now()
        account.save()
        if account.payouts_enabled and not was_enabled:
            for pk in ProviderTransfer.objects.filter(provider_id=account.provider_id,
                                                      status=TransferStatus.FAILED).values_list("pk", flat=True):
                enqueue("execute_transfer", pk)
        return account


def payout_failure_record(stripe_account_id: str, payout: dict) -> ProviderPayoutAccount | None:
    """A payout from the provider's Stripe balance to their bank failed: keep it visible to operators."""
    account = ProviderPayoutAccount.objects.filter(stripe_account_id=stripe_account_id).first()
    if account is not None and payout.get("status") == "failed":
        account.last_payout_failure_code = (payout.get("failure_code") or "failed")[:64]
        account.last_payout_failure_at = timezone.now()
        account.save(update_fields=["last_payout_failure_code", "last_payout_failure_at"])
    return account


def provider_payouts_ready(provider_id: int) -> bool:
    """Whether the provider can be paid (the offer-listing gate outside demo mode)."""
    return ProviderPayoutAccount.objects.filter(provider_id=provider_id, payouts_enabled=True,
                                                charges_enabled=True).exists()


# -- transfers ---------------------------------------------------------------------------------------

def billing_execute_transfer(transfer_id: int) -> ProviderTransfer:
    """Pay a provider's share of one order. Failures are recorded on the row and retried by the beat task
    `retry_provider_transfers` with exponential backoff; after BILLING_TRANSFER_MAX_ATTEMPTS an operator must
    look (admin: Provider transfers, filter "Failed (retries exhausted)")."""
    transfer = ProviderTransfer.objects.select_related("charge").get(pk=transfer_id)
    if transfer.status not in (TransferStatus.PENDING, TransferStatus.FAILED):
        return transfer
    account = ProviderPayoutAccount.objects.filter(provider_id=transfer.provider_id).first()
    if account is None or not account.payouts_enabled:
        return _transfer_waits(transfer, "The provider has not finished Stripe onboarding (payouts disabled).")
    key = transfer.idempotency_key
    order_id = transfer.charge.order_id
    params = {"amount": to_cents(transfer.amount), "currency": transfer.currency,
              "destination": account.stripe_account_id}
    try:
        result = run_operation(key=key, kind=OperationKind.TRANSFER, params=params,
                               call=lambda: gateway.create_transfer(
                                   amount_cents=params["amount"], currency=transfer.currency,
                                   destination=account.stripe_account_id, transfer_group=f"order:{order_id}",
                                   metadata={"order_id": str(order_id), "provider_id": str(transfer.provider_id)},
                                   key=key))
    except gateway.TransientGatewayError as exc:
        return _transfer_failed(transfer, exc.message, new_key=False)
    except (gateway.RequestRejected, gateway.CardDeclined) as exc:
        return _transfer_failed(transfer, exc.message, new_key=True)
    except OperationConflict as exc:
        return _transfer_failed(transfer, str(exc), new_key=False, give_up=True)
    with transaction.atomic():
        transfer = ProviderTransfer.objects.select_for_update().select_related("charge").get(pk=transfer_id)
        if transfer.status == TransferStatus.PAID:
            return transfer
        base_key = f"transfer:{order_id}:{transfer.provider_id}"
        ledger.post_entry(key=base_key, kind=EntryKind.TRANSFER, order_id=order_id, memo=f"transfer {result['id']}",
                          lines=[(ledger.provider_payable_account(transfer.provider), transfer.amount),
                                 (ledger.platform_account("stripe_clearing", transfer.currency), -transfer.amount)])
        transfer.status = TransferStatus.PAID
        transfer.stripe_transfer_id = result["id"]
        transfer.paid_at = timezone.now()
        transfer.last_error = ""
        transfer.next_attempt_at = None
        transfer.save()
        for refund in OrderRefund.objects.filter(charge_id=transfer.charge_id, status=OrderRefund.Status.SUCCEEDED,
                                                 reversal_done=False, provider_share__gt=0):
            enqueue("reverse_transfer_for_refund", refund.pk)
        return transfer


def _transfer_waits(transfer: ProviderTransfer, message: str) -> ProviderTransfer:
    ProviderTransfer.objects.filter(pk=transfer.pk, status__in=[TransferStatus.PENDING, TransferStatus.FAILED]).update(
        status=TransferStatus.FAILED, last_error=message[:300], next_attempt_at=timezone.now() + timedelta(hours=1))
    transfer.refresh_from_db()
    return transfer


def _transfer_failed(transfer: ProviderTransfer, message: str, *, new_key: bool,
                     give_up: bool = False) -> ProviderTransfer:
    """Record a failed attempt. A refusal (Stripe executed and said no, e.g. insufficient balance) is saved
    under its key by Stripe, so the next attempt needs a new key; a transient failure keeps the key, because the
    transfer may have been made and only the answer lost."""
    conf = billing_settings()
    with transaction.atomic():
        transfer = ProviderTransfer.objects.select_for_update().get(pk=transfer.pk)
        if transfer.status not in (TransferStatus.PENDING, TransferStatus.FAILED):
            return transfer
        transfer.attempts += 1
        transfer.last_error = message[:300]
        if new_key:
            transfer.key_generation += 1
        if give_up or transfer.attempts >= conf.transfer_max_attempts:
            transfer.status = TransferStatus.NEEDS_OPERATOR
            transfer.next_attempt_at = None
        else:
            transfer.status = TransferStatus.FAILED
            delay = min(conf.transfer_retry_minutes * 2 ** (transfer.attempts - 1), 24 * 60)
            transfer.next_attempt_at = timezone.now() + timedelta(minutes=delay)
        transfer.save()
        return transfer


def billing_retry_transfer(*, operator, transfer_id: int) -> ProviderTransfer:
    """An operator re-queues a failed transfer (including one whose retries were exhausted)."""
    if not getattr(operator, "is_operator", False):
        raise PermissionDeniedError("Only operators can retry transfers.")
    with transaction.atomic():
        transfer = ProviderTransfer.objects.select_for_update().get(pk=transfer_id)
        if transfer.status in (TransferStatus.FAILED, TransferStatus.NEEDS_OPERATOR):
            transfer.status = TransferStatus.FAILED
            transfer.attempts = 0
            transfer.next_attempt_at = timezone.now()
            transfer.save()
            enqueue("execute_transfer", transfer.pk)
        return transfer


def transfers_due(now=None) -> list[int]:
    now = now or timezone.now()
    return list(ProviderTransfer.objects.filter(status=TransferStatus.FAILED, next_attempt_at__lte=now)
                .values_list("pk", flat=True)[:200])


def billing_reverse_transfer_for_refund(refund_id: int) -> OrderRefund:
    """Take the provider's share of a refund back from the transfer already paid (Stripe transfer reversal,
    key `transfer:<order>:<provider>:reversal:<refund n>`)."""
    refund = OrderRefund.objects.select_related("charge").get(pk=refund_id)
    transfer = getattr(refund.charge, "transfer", None)
    if (refund.reversal_done or refund.provider_share <= 0 or refund.status != OrderRefund.Status.SUCCEEDED
            or transfer is None or transfer.status != TransferStatus.PAID):
        return refund
    order_id = refund.charge.order_id
    key = f"transfer:{order_id}:{transfer.provider_id}:reversal:{refund.seq}"
    params = {"transfer": transfer.stripe_transfer_id, "amount": to_cents(refund.provider_share)}
    try:
        run_operation(key=key, kind=OperationKind.TRANSFER_REVERSAL, params=params,
                      call=lambda: gateway.reverse_transfer(transfer.stripe_transfer_id, amount_cents=params["amount"],
                                                            metadata={"order_id": str(order_id)}, key=key))
    except (gateway.RequestRejected, gateway.CardDeclined) as exc:
        message = f"Transfer reversal failed: {exc.message}"
        OrderRefund.objects.filter(pk=refund.pk).update(failure_message=message[:300])
        refund.refresh_from_db()
        return refund
    with transaction.atomic():
        refund = OrderRefund.objects.select_for_update().get(pk=refund_id)
        if refund.reversal_done:
            return refund
        ledger.post_entry(key=key, kind=EntryKind.TRANSFER_REVERSAL, order_id=order_id, memo=f"refund {refund.seq}",
                          lines=[(ledger.platform_account("stripe_clearing", transfer.currency), refund.provider_share),
                                 (ledger.provider_payable_account(transfer.provider), -refund.provider_share)])
        refund.reversal_done = True
        refund.save(update_fields=["reversal_done"])
        ProviderTransfer.objects.filter(pk=transfer.pk).update(
            reversed_amount=F("reversed_amount") + refund.provider_share)
        return refund
