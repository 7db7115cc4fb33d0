from __future__ import annotations

import uuid

import pytest
import redis

from broker.celery_routing import KINDS, queues_for
from tests.worker_process import redis_url_for_tests


@pytest.fixture
def redis_client(settings) -> redis.Redis:
    url = redis_url_for_tests()
    if url is None:
        pytest.skip(f"no Redis answers at REDIS_URL={settings.REDIS_URL}")
    return redis.Redis.from_url(url)


@pytest.fixture
def base_queue(settings, redis_client):
    """A private base queue for this test (its kind queues and heartbeat hash are deleted afterwards)."""
    from marketplace.ops import heartbeat

    base = f"test-ops-{uuid.uuid4().hex[:10]}"
    settings.CELERY_TASK_DEFAULT_QUEUE = base
    yield base
    names = queues_for(KINDS, base)
    redis_client.delete(heartbeat.key(base), *names, *(f"_kombu.binding.{q}" for q in names))
