"""The Celery app. Broker and result backend are configured from REDIS_URL in settings (CELERY_*)."""

import os

from celery import Celery
from celery.signals import task_postrun, task_prerun

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "broker.settings")

app = Celery("broker")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["workers"])


@task_prerun.connect
@task_postrun.connect
def close_old_connections(**kwargs: object) -> None:
    """Around every task, what Django does around every request: close a database connection that had an
    unrecoverable error or outlived CONN_MAX_AGE, and check the kept one before its next use (health check).

    Celery's Django fix-up would instead close the connection before and after every task (settings set
    CELERY_DB_REUSE_MAX so it does not): a new PostgreSQL session per task, whose start-up (a backend process,
    authentication, session settings) cost more CPU than the order tasks' own queries.
    """
    from django.db import close_old_connections as close

    close()
