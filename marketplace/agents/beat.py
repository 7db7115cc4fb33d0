"""Celery beat entries of this app (plain data: settings imports it before apps load)."""

SCHEDULE: dict[str, dict] = {
    "unlist-stale-agent-offers": {"task": "workers.tasks.agents.unlist_stale_agent_offers", "schedule": 60.0},
}
