"""The driver an order's offer names, configured, and the JobSpec of the order's current attempt.

Configuration: BROKER_DRIVER_CONFIG (per driver name, e.g. simulated knobs or a namespace) and, for `agent`, the
provider's agent URL and secret from marketplace.agents. Instances are cached per process and configuration.
"""

from __future__ import annotations

import json
import math
import threading
from typing import Any

from marketplace.models import Offer
from marketplace.orders import config
from marketplace.orders.models import Order
from workers.drivers.base import Driver, JobSpec
from workers.drivers.registry import get_driver

_cache: dict[str, Driver] = {}
_lock = threading.Lock()


def driver_config(name: str, provider_id: int, offer_id: int | None = None) -> dict[str, Any]:
    options = config.driver_config(name)
    if name == "agent":  # the provider's agent (the one that listed the offer first), URL and current secret
        from marketplace.agents.services import agent_driver_config

        options.update(agent_driver_config(provider_id, offer_id=offer_id))
    return options


def driver_named(name: str, provider_id: int, offer_id: int | None = None) -> Driver:
    options = driver_config(name, provider_id, offer_id)
    key = json.dumps([name, options], sort_keys=True, default=str)
    with _lock:
        driver = _cache.get(key)
        if driver is None:
            driver = _cache[key] = get_driver(name, **options)
    return driver


def driver_for_offer(offer: Offer) -> Driver:
    return driver_named(offer.driver, offer.provider_id, offer.pk)


def offer_external_id(offer: Offer) -> str:
    """The id the driver knows the offer by (simulated per-offer knobs key on it)."""
    return offer.external_id or f"offer:{offer.pk}"


def job_spec(order: Order, offer: Offer) -> JobSpec:
    return JobSpec(order_id=order.pk, idempotency_key=order.idempotency_key_for_attempt,
                   offer_external_id=offer_external_id(offer), nodes=order.nodes,
                   accelerators_per_node=order.accelerator_count, accelerator=offer.accelerator.canonical_name,
                   command=order.command, image=order.image, env=dict(order.env),
                   time_limit_s=max(1, math.ceil(float(order.duration_hours) * 3600)), vcpus=offer.vcpus,
                   ram_gb=offer.ram_gb)
