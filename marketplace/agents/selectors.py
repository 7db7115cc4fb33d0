"""Reads of provider agents."""

from __future__ import annotations

from django.db.models import QuerySet

from marketplace.agents.models import ProviderAgent
from marketplace.errors import NotFoundError, PermissionDeniedError
from marketplace.models import User


def agents_visible_to(user: User) -> QuerySet[ProviderAgent]:
    """Operators see every agent, provider members their provider's; customers none (403)."""
    qs = ProviderAgent.objects.select_related("provider").order_by("provider__slug", "name")
    if user.is_operator:
        return qs
    if user.is_provider_member:
        return qs.filter(provider_id=user.provider_id)
    raise PermissionDeniedError("Only provider members and operators manage agents.")


def agent_visible_to(user: User, agent_id: int) -> ProviderAgent:
    agent = agents_visible_to(user).filter(pk=agent_id).first()
    if agent is None:
        raise NotFoundError(f"No agent {agent_id}.")
    return agent
