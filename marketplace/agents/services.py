"""Provider agents: enrolment, secret rotation, signed-request authentication, registration of capacity, and the
driver configuration the order pipeline uses to reach an agent.

Signing scheme: workers/drivers/http.py (HMAC-SHA256 over method, path, timestamp, nonce, key id, body hash;
+/-300 s window; nonces stored with a unique constraint, so a replay inside the window is refused).
"""

from __future__ import annotations

import secrets as secrets_lib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from broker.env import env_int
from broker.hardware.vocabulary import default_vocabulary
from marketplace.agents.models import AgentNonce, ProviderAgent
from marketplace.errors import ConflictError, DomainError, NotFoundError, ValidationFailed
from marketplace.models import Accelerator, Offer, Provider, Region
from marketplace.services.catalog_version import catalog_bump, catalog_version
from workers.drivers.base import TerminalDriverError
from workers.drivers.http import MAX_SKEW_S, NONCE_TTL_S, SignatureError, verify_request

DEFAULT_GRACE_S = 3600
MAX_GRACE_S = 30 * 24 * 3600
MIN_SECRET_CHARS = 16
DRIVER_CONNECT_TIMEOUT_S = 5.0
STALE_AFTER_S = env_int("AGENT_STALE_AFTER_S", 180, minimum=10)  # agents re-register every 30 s by default


class AgentAuthFailed(DomainError):
    status_code = 401
    code = "bad_signature"


def new_secret() -> str:
    return secrets_lib.token_urlsafe(32)


# ------------------------------------------------------------------------------------------ enrolment
def agent_enroll(*, provider: Provider, name: str = "default", secret: str | None = None) -> tuple[ProviderAgent, str]:
    """Create the provider's agent record with a new (or the given) secret. An agent of that name that exists
    already is a 409 unless a secret is given, which then replaces its secret at once (no grace; local setups)."""
    if secret is not None and len(secret) < MIN_SECRET_CHARS:
        raise ValidationFailed("The secret is too short.",
                               fields={"secret": [f"at least {MIN_SECRET_CHARS} characters"]})
    with transaction.atomic():
        agent = ProviderAgent.objects.select_for_update().filter(provider=provider, name=name).first()
        if agent is None:
            agent = ProviderAgent.objects.create(provider=provider, name=name, secret=secret or new_secret())
        elif secret is None:
            raise ConflictError(f"Provider {provider.slug} already has an agent named '{name}'; rotate its secret.",
                                fields={"name": ["already enrolled"]})
        elif agent.secret != secret:
            agent.secret, agent.previous_secret, agent.previous_secret_expires_at = secret, "", None
            agent.secret_rotated_at = timezone.now()
            agent.save(update_fields=["secret", "previous_secret", "previous_secret_expires_at", "secret_rotated_at"])
    return agent, agent.secret


def agent_rotate_secret(*, agent_id: int, grace_s: int = DEFAULT_GRACE_S, new: str | None = None,
                        now: datetime | None = None) -> str:
    """A new secret; the old one stays valid for `grace_s` seconds (in both directions), then is refused."""
    if not 0 <= grace_s <= MAX_GRACE_S:
        raise ValidationFailed("The grace period is out of range.",
                               fields={"grace_seconds": [f"from 0 to {MAX_GRACE_S}"]})
    if new is not None and len(new) < MIN_SECRET_CHARS:
        raise ValidationFailed("The secret is too short.", fields={"secret": [f"at least {MIN_SECRET_CHARS} chars"]})
    now = now or timezone.now()
    with transaction.atomic():
        agent = ProviderAgent.objects.select_for_update().filter(pk=agent_id).first()
        if agent is None:
            raise NotFoundError(f"No agent {agent_id}.")
        agent.previous_secret = agent.secret
        agent.previous_secret_expires_at = now + timedelta(seconds=grace_s)
        agent.secret = new or new_secret()
        agent.secret_rotated_at = now
        agent.save(update_fields=["secret", "previous_secret", "previous_secret_expires_at", "secret_rotated_at"])
    return agent.secret


def valid_secrets(agent: ProviderAgent, now: datetime) -> list[str]:
    """Current secret first, then the previous one while its grace period lasts."""
    out = [agent.secret]
    if agent.previous_secret and agent.previous_secret_expires_at and now <= agent.previous_secret_expires_at:
        out.append(agent.previous_secret)
    return out


# ----------------------------------------------------------------------------------------- authentication
def agent_authenticate(*, method: str, path: str, body: bytes, header: Callable[[str], str | None],
                       now: datetime | None = None) -> ProviderAgent:
    """The agent that signed this request, or AgentAuthFailed (401) with the reason as its code."""
    now = now or timezone.now()
    try:
        key_id = (header("X-Agent-Key-Id") or "").strip()
        slug, _, name = key_id.partition("/")
        agent = (ProviderAgent.objects.select_related("provider")
                 .filter(provider__slug=slug, name=name or "default", enabled=True).first()) if slug else None
        offered = valid_secrets(agent, now) if agent is not None else [new_secret()]  # same work for unknown keys
        verified = verify_request(header, method=method, path=path, body=body, secrets_=offered,
                                  now=now.timestamp(), max_skew_s=MAX_SKEW_S)
    except SignatureError as exc:
        raise AgentAuthFailed(exc.message, code=exc.code) from None
    if agent is None:
        raise AgentAuthFailed("Unknown agent key.", code="unknown_key")
    with transaction.atomic():
        AgentNonce.objects.filter(seen_at__lt=now - timedelta(seconds=NONCE_TTL_S)).delete()
        try:
            with transaction.atomic():
                AgentNonce.objects.create(agent=agent, nonce=verified.nonce, seen_at=now)
        except IntegrityError:
            raise AgentAuthFailed("This request was already received (nonce seen before).",
                                  code="replayed_nonce") from None
        used = "current" if verified.secret_index == 0 else "previous"
        if agent.last_secret_used != used:
            ProviderAgent.objects.filter(pk=agent.pk).update(last_secret_used=used)
            agent.last_secret_used = used
    return agent


# ------------------------------------------------------------------------------------------ registration
@dataclass(frozen=True, slots=True)
class Registered:
    agent: ProviderAgent
    offer: Offer | None
    offer_created: bool
    offer_changed: bool
    catalog_version: int


def agent_register(*, agent: ProviderAgent, data: Mapping[str, Any], now: datetime | None = None) -> Registered:
    """Record what the agent reported (URL, slots, machine) and create or update the offer it lists.

    Bumps the catalog version only when the offer was created or one of its fields changed, so a heartbeat
    that reports the same capacity leaves the engine's snapshot cache alone."""
    now = now or timezone.now()
    offer_values = _offer_values(data["offer"]) if data.get("offer") else None
    created = changed = False
    with transaction.atomic():
        agent = ProviderAgent.objects.select_for_update().select_related("provider").get(pk=agent.pk)
        offer = None
        if offer_values is not None:
            offer, created, changed = _upsert_offer(agent, offer_values)
            if agent.offer_unlisted_stale and offer.status == Offer.Status.UNLISTED:
                offer.status = Offer.Status.LISTED  # we unlisted it when the agent went quiet; it is back
                offer.save(update_fields=["status", "updated_at"])
                changed = True
            agent.offer_unlisted_stale = False
            if created or changed:
                catalog_bump()
        agent.base_url = data["base_url"]
        agent.slots = data["slots"]
        agent.active_jobs = data.get("active_jobs", 0)
        agent.machine = data.get("machine") or {}
        agent.last_seen = now
        agent.registrations = F("registrations") + 1
        if offer is not None:
            agent.offer = offer
        agent.save()
        agent.refresh_from_db(fields=["registrations"])
        version = catalog_version()
    return Registered(agent=agent, offer=offer, offer_created=created, offer_changed=changed,
                      catalog_version=version)


def _offer_values(offer: Mapping[str, Any]) -> dict[str, Any]:
    errors: dict[str, list[str]] = {}
    values: dict[str, Any] = {k: offer[k] for k in ("external_id", "name", "vcpus", "ram_gb", "disk_gb",
                                                      "price_per_hour", "nodes_available") if k in offer}
    values["accelerator_count"] = offer["count"]
    resolution = default_vocabulary().resolve(offer["accelerator"])
    accelerator = None
    if resolution.status == "exact":
        accelerator = Accelerator.objects.filter(canonical_name=resolution.canonical).first()
        if accelerator is None:
            errors["accelerator"] = [f"accelerator '{resolution.canonical}' is not in the catalog"]
    else:
        errors["accelerator"] = [resolution.message()]
    region = Region.objects.filter(key=offer.get("region") or "").first()
    if region is None:
        errors["region"] = [f"unknown region '{offer.get('region', '')}'" if offer.get("region")
                            else "required: the region key the machine is in"]
    memory = offer.get("memory_gb")
    if memory is None and accelerator is not None:
        memory = accelerator.memory_gb
        if not memory:
            errors["memory_gb"] = [f"required: the catalog has no memory size for {accelerator.canonical_name}"]
    if errors:
        raise ValidationFailed("The offer the agent registers is invalid.", fields={"offer": errors})
    values.update(accelerator=accelerator, region=region, accelerator_memory_gb=memory)
    values["price_per_hour"] = Decimal(values["price_per_hour"]).quantize(Decimal("0.0001"))
    return values


def _upsert_offer(agent: ProviderAgent, values: dict[str, Any]) -> tuple[Offer, bool, bool]:
    offer = (Offer.objects.select_for_update(no_key=True)  # reservations.lock_offers: why no_key
             .filter(provider=agent.provider, external_id=values["external_id"]).first())
    if offer is None:
        offer = Offer.objects.create(provider=agent.provider, status=Offer.Status.LISTED, driver="agent",
                                     source=Offer.Source.PROVIDER, **values)
        return offer, True, False
    values = {**values, "driver": "agent"}
    changed = [k for k, v in values.items() if getattr(offer, k) != v]
    if changed:
        for name in changed:
            setattr(offer, name, values[name])
        offer.save(update_fields=[*changed, "updated_at"])
    return offer, False, bool(changed)


def agents_unlist_stale(*, stale_after_s: float = STALE_AFTER_S, now: datetime | None = None) -> int:
    """Unlist the offers of agents that stopped reporting (no registration for `stale_after_s`), so that no new
    order goes to a machine nobody answers for. Their next registration lists the offer again. Idempotent;
    rows are locked in id order. Returns how many offers were unlisted."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=stale_after_s)
    unlisted = 0
    with transaction.atomic():
        stale = list(ProviderAgent.objects.select_for_update().order_by("id")
                     .filter(last_seen__lt=cutoff, offer__status=Offer.Status.LISTED))
        for agent in stale:
            unlisted += Offer.objects.filter(pk=agent.offer_id, status=Offer.Status.LISTED).update(
                status=Offer.Status.UNLISTED, updated_at=now)
            ProviderAgent.objects.filter(pk=agent.pk).update(offer_unlisted_stale=True)
        if unlisted:
            catalog_bump()
    return unlisted


# ----------------------------------------------------------------------------------- the order pipeline's
def agent_driver_config(provider_id: int, *, offer_id: int | None = None, agent_name: str | None = None
                        ) -> dict[str, Any]:
    """Keyword arguments for get_driver("agent", ...): the agent's base URL, key id, the secret to sign with and
    the fallback during a rotation, and the connect timeout. The agent that listed `offer_id` is preferred, then
    the most recently seen one. TerminalDriverError(agent_not_registered) when the provider has none."""
    agents = (ProviderAgent.objects.select_related("provider")
              .filter(provider_id=provider_id, enabled=True).exclude(base_url=""))
    if agent_name:
        agents = agents.filter(name=agent_name)
    candidates = list(agents.order_by(F("last_seen").desc(nulls_last=True), "id")[:20])
    if offer_id is not None:
        candidates.sort(key=lambda a: a.offer_id != offer_id)  # stable: keeps the recency order otherwise
    if not candidates:
        raise TerminalDriverError(f"provider {provider_id} has no registered agent", code="agent_not_registered")
    agent = candidates[0]
    usable = valid_secrets(agent, timezone.now())
    if agent.last_secret_used == "previous" and len(usable) == 2:
        usable.reverse()  # the agent still signs with the previous secret: speak its language first
    return {"base_url": agent.base_url, "key_id": agent.key_id, "secret": usable[0],
            "fallback_secrets": tuple(usable[1:]), "connect_timeout_s": DRIVER_CONNECT_TIMEOUT_S}
