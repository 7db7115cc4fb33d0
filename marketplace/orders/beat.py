"""Celery beat entries of this app (plain data: settings imports it before apps load)."""

SCHEDULE: dict[str, dict] = {
    # Re-drive stuck orders, expire reservations, relay the outbox (see marketplace/orders/services/reconciler.py).
    "orders-reconcile": {"task": "workers.tasks.orders.reconcile", "schedule": 30.0,
                         "options": {"expires": 25}},
}
