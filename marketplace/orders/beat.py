"""Celery beat entries of this app (plain data: settings imports it before apps load).

ORDERS_RECONCILE_INTERVAL_S (default 30): how often beat sends the reconciler; the fault tests shorten it."""

import os

SCHEDULE: dict[str, dict] = {
    # Re-drive stuck orders, expire reservations, relay the outbox (see marketplace/orders/services/reconciler.py).
    "orders-reconcile": {"task": "workers.tasks.orders.reconcile",
                         "schedule": float(os.environ.get("ORDERS_RECONCILE_INTERVAL_S") or 30.0),
                         "options": {"expires": 25}},
}
