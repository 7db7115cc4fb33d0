"""Periodic housekeeping of provider agents."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="workers.tasks.agents.unlist_stale_agent_offers", acks_late=True)
def unlist_stale_agent_offers() -> int:
    """Unlist offers of agents that stopped registering; their next registration lists them again."""
    from marketplace.agents.services import agents_unlist_stale

    return agents_unlist_stale()
