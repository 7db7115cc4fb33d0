"""Tunables of the order pipeline, read from the environment at call time (so a worker's env decides).

ORDERS_MAX_ATTEMPTS         provisioning attempts along the quote's alternatives (default 3)
ORDERS_RESERVATION_TTL_S    how long capacity stays held for an order that never leaves `reserved` (600)
ORDERS_STUCK_AFTER_S        an in-flight order untouched this long is re-driven by the reconciler (300)
ORDERS_MAX_REDRIVES         re-drives before the reconciler fails the order with code `stuck` (3)
ORDERS_POLL_INTERVAL_S      between status polls while provisioning (2)
ORDERS_METER_INTERVAL_S     between meter runs (logs, usage, status) while running (30)
ORDERS_METER_SWEEP_S        how often beat sends meter_due, which sends the meter runs that are due (5); a run due
                            sooner than this after the previous step is sent as a countdown message instead
ORDERS_PROVISION_TIMEOUT_S  a job still pending after this long counts as capacity gone -> failover (900)
ORDERS_RETRY_MAX            retries of a transient driver error in one step (5)
ORDERS_RETRY_BASE_S / ORDERS_RETRY_CAP_S  exponential backoff with full jitter: base * 2^n, capped (1 / 60)
ORDERS_DRIVER_TIMEOUT_S     timeout of each driver call (30)
ORDERS_OUTBOX_RELAY_AFTER_S the reconciler relays outbox rows older than this (on_commit sends the rest) (10)
ORDERS_RECONCILER_LEASE_S   a reconciler killed mid-run blocks the next one until its lease runs out (120)
BROKER_DRIVER_CONFIG        JSON {driver name: {option: value}} passed to get_driver (e.g. simulated knobs)
"""

from __future__ import annotations

import json
import os
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from broker.env import env_int


def _float(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"environment variable {name}={raw!r} is not a number") from None
    if value < 0:
        raise ImproperlyConfigured(f"environment variable {name}={value} must not be negative")
    return value


def max_attempts() -> int:
    return env_int("ORDERS_MAX_ATTEMPTS", 3, minimum=1)


def reservation_ttl_s() -> float:
    return _float("ORDERS_RESERVATION_TTL_S", 600.0)


def stuck_after_s() -> float:
    return _float("ORDERS_STUCK_AFTER_S", 300.0)


def max_redrives() -> int:
    return env_int("ORDERS_MAX_REDRIVES", 3, minimum=0)


def poll_interval_s() -> float:
    return _float("ORDERS_POLL_INTERVAL_S", 2.0)


def meter_interval_s() -> float:
    return _float("ORDERS_METER_INTERVAL_S", 30.0)


def meter_sweep_s() -> float:
    return _float("ORDERS_METER_SWEEP_S", 5.0)


def provision_timeout_s() -> float:
    return _float("ORDERS_PROVISION_TIMEOUT_S", 900.0)


def retry_max() -> int:
    return env_int("ORDERS_RETRY_MAX", 5, minimum=0)


def retry_base_s() -> float:
    return _float("ORDERS_RETRY_BASE_S", 1.0)


def retry_cap_s() -> float:
    return _float("ORDERS_RETRY_CAP_S", 60.0)


def driver_timeout_s() -> float:
    return _float("ORDERS_DRIVER_TIMEOUT_S", 30.0)


def outbox_relay_after_s() -> float:
    return _float("ORDERS_OUTBOX_RELAY_AFTER_S", 10.0)


def reconciler_lease_s() -> float:
    return _float("ORDERS_RECONCILER_LEASE_S", 120.0)


def driver_config(name: str) -> dict[str, Any]:
    raw = os.environ.get("BROKER_DRIVER_CONFIG", "").strip()
    if not raw:
        return {}
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ImproperlyConfigured(f"environment variable BROKER_DRIVER_CONFIG is not JSON: {exc}") from None
    if not isinstance(config, dict) or not all(isinstance(v, dict) for v in config.values()):
        raise ImproperlyConfigured("environment variable BROKER_DRIVER_CONFIG must be {driver: {option: value}}")
    return dict(config.get(name, {}))
