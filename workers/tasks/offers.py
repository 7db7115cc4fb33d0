"""Periodic housekeeping of offers."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="workers.tasks.offers.unlist_expired_offers", acks_late=True)
def unlist_expired_offers() -> int:
    """Unlist listed offers whose `available_until` has passed. Idempotent: a conditional update."""
    from marketplace.services.offers import offers_unlist_expired

    return offers_unlist_expired()
