"""Celery beat entries of this app (plain data: settings imports it before apps load)."""

SCHEDULE: dict[str, dict] = {
    # Re-drive billing work whose message was lost, settle finished orders, stop running orders out of credit
    # (backstop of the pipeline's own call), catch up with Stripe events, re-read pending Connect accounts.
    "billing-reconcile": {"task": "workers.tasks.billing.reconcile", "schedule": 60.0},
    # Failed provider transfers whose backoff has elapsed.
    "billing-retry-transfers": {"task": "workers.tasks.billing.retry_provider_transfers", "schedule": 300.0},
}
