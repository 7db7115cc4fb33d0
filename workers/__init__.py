"""Celery tasks and provider drivers."""
