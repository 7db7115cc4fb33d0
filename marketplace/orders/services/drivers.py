"""The driver an order's offer names, configured, and the JobSpec of the order's current attempt.

Configuration: BROKER_DRIVER_CONFIG (per driver name, e.g. simulated knobs or a namespace) and, for `agent`, the
provider's agent URL and secret from marketplace.agents. For `slurm`, the operator configures each HPC center's
cluster under "providers": {"slurm": {<shared options>, "providers": {<provider slug>: {<its cluster's options>}}}};
the provider's entry is merged over the shared options. Instances are cached per process and configuration.

Which driver a provider may give its offers (driver_refusal): any registered one, except `agent` (the provider
must have an enrolled agent) and `slurm` (an hpc_center with a cluster configured by the operator).
"""

from __future__ import annotations

import json
import math
import threading
from typing import Any

from marketplace.models import Offer
from marketplace.orders import config
from marketplace.orders.models import Order
from workers.drivers.base import Driver, JobSpec, JobStatus
from workers.drivers.registry import get_driver, registered_drivers

_cache: dict[str, Driver] = {}
_lock = threading.Lock()


def driver_config(name: str, provider_id: int, offer_id: int | None = None) -> dict[str, Any]:
    options = config.driver_config(name)
    if name == "agent":  # the provider's agent (the one that listed the offer first), URL and current secret
        from marketplace.agents.services import agent_driver_config

        options.update(agent_driver_config(provider_id, offer_id=offer_id))
    elif name == "slurm":  # the provider's own cluster over the shared options
        clusters = options.pop("providers", None) or {}
        if clusters:
            from marketplace.models import Provider

            slug = Provider.objects.filter(pk=provider_id).values_list("slug", flat=True).first()
            options.update(clusters.get(slug) or {})
    return options


def driver_refusal(provider, name: str) -> str | None:
    """Why the provider may not give its offers driver `name` (a field message), or None when it may."""
    names = registered_drivers()
    if name not in names:
        return f"unknown driver '{name}'; choose one of {', '.join(names)}"
    if name == "agent":
        from marketplace.agents.models import ProviderAgent

        if not ProviderAgent.objects.filter(provider_id=provider.pk, enabled=True).exists():
            return "the agent driver needs an enrolled agent: enroll one (POST /api/v1/agents/) and run it first"
    if name == "slurm":
        if provider.kind != "hpc_center":
            return f"the slurm driver is for HPC centers; this provider is a {provider.kind}"
        clusters = config.driver_config("slurm").get("providers") or {}
        if not isinstance(clusters, dict) or not isinstance(clusters.get(provider.slug), dict):
            return (f"no Slurm cluster is configured for provider '{provider.slug}'; ask the operator to add it "
                    "to BROKER_DRIVER_CONFIG (slurm.providers)")
    return None


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


def create_job(driver: Driver, spec: JobSpec, *, timeout_s: float) -> tuple[str, JobStatus | None]:
    """driver.create(spec): (job ref, its status when the driver gave it with the create, else None: ask status).
    A driver may offer create_and_status(spec) -> (ref, status): the status it would answer right after the create,
    without a second call (the simulated driver computes it from the job it stored)."""
    both = getattr(driver, "create_and_status", None)
    if both is not None:
        return both(spec, timeout_s=timeout_s)
    return driver.create(spec, timeout_s=timeout_s), None


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
