"""Celery beat entries of this app (plain data: settings imports it before apps load)."""

SCHEDULE: dict[str, dict] = {}
