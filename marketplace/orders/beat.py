"""Celery beat entries of this app (plain data: settings imports it before apps load).

ORDERS_RECONCILE_INTERVAL_S (default 30): how often beat sends the reconciler; the fault tests shorten it.
ORDERS_METER_SWEEP_S (default 5): how often beat sends meter_due (marketplace/orders/services/meter_sweep.py)."""

import os

SCHEDULE: dict[str, dict] = {
    # Re-drive stuck orders, expire reservations, relay the outbox (see marketplace/orders/services/reconciler.py).
    "orders-reconcile": {"task": "workers.tasks.orders.reconcile",
                         "schedule": float(os.environ.get("ORDERS_RECONCILE_INTERVAL_S") or 30.0),
                         "options": {"expires": 25}},
    # Send the meter runs of running orders that are due (see marketplace/orders/services/meter_sweep.py).
    "orders-meter-due": {"task": "workers.tasks.orders.meter_due",
                         "schedule": float(os.environ.get("ORDERS_METER_SWEEP_S") or 5.0),
                         "options": {"expires": 10}},
}
