"""The Celery wiring end to end: a real `celery -A broker worker` process, real Redis, the test database."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone

from tests.worker_process import CeleryWorker, database_url_of, redis_url_for_tests

# db_engine: the worker must see the test database on either engine (a file shared between processes on SQLite).
pytestmark = [pytest.mark.slow, pytest.mark.db_engine, pytest.mark.django_db(transaction=True)]

RESULT_TIMEOUT = 30


@pytest.fixture
def worker(transactional_db, tmp_path: Path):
    redis_url = redis_url_for_tests()
    if redis_url is None:
        from django.conf import settings

        pytest.skip(f"no Redis answers at REDIS_URL={settings.REDIS_URL} (CI runs one on 127.0.0.1:6379)")
    process = CeleryWorker(database_url=database_url_of(connection.settings_dict), redis_url=redis_url,
                           log_path=tmp_path / "worker.log")
    with process:
        yield process
    assert "Traceback" not in process.log(), process.log()


def test_worker_unlists_expired_offers(worker: CeleryWorker, provider_a, make_offer) -> None:
    from marketplace.models import Offer
    from workers.tasks.offers import unlist_expired_offers

    now = timezone.now()
    expired = make_offer(provider_a, name="expired", available_until=now - timedelta(hours=1))
    open_ended = make_offer(provider_a, name="open-ended", available_until=None)
    current = make_offer(provider_a, name="current", available_until=now + timedelta(hours=1))
    expired_draft = make_offer(provider_a, name="draft", status="draft",
                               available_until=now - timedelta(hours=1))
    before = {o.pk: o.updated_at for o in Offer.objects.all()}

    # .delay() with the queue made explicit, so that no other worker on this Redis can take the task.
    result = unlist_expired_offers.apply_async(queue=worker.queue)
    assert result.get(timeout=RESULT_TIMEOUT) == 1

    statuses = dict(Offer.objects.values_list("name", "status"))
    assert statuses == {"expired": "unlisted", "open-ended": "listed", "current": "listed", "draft": "draft"}
    after = {o.pk: o.updated_at for o in Offer.objects.all()}
    assert after[expired.pk] > before[expired.pk]
    for untouched in (open_ended, current, expired_draft):
        assert after[untouched.pk] == before[untouched.pk]
    assert worker.wait_for_log(f"Task workers.tasks.offers.unlist_expired_offers[{result.id}] succeeded")

    # Idempotent: a second run finds nothing to do and changes nothing.
    again = unlist_expired_offers.apply_async(queue=worker.queue)
    assert again.get(timeout=RESULT_TIMEOUT) == 0
    assert {o.pk: o.updated_at for o in Offer.objects.all()} == after


def test_worker_stops_cleanly_on_sigterm(worker: CeleryWorker) -> None:
    assert worker.process is not None and worker.process.poll() is None
    assert worker.stop() == 0
    assert "Warm shutdown" in worker.log() or "warm shutdown" in worker.log().lower()
