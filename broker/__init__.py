"""Compute broker: Django project package and the pure-Python brokering engine.

Importing the Celery app here makes `@shared_task` bind to it when Django starts.
"""

from broker.celery import app as celery_app

__all__ = ("celery_app",)
