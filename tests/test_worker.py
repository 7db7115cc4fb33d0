"""The Celery wiring end to end: real `celery -A broker worker` and `beat` processes, real Redis, the test database."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone

from tests.worker_process import CeleryBeat, CeleryWorker, database_url_of, redis_url_for_tests

# transaction=True so the worker sees committed rows; serialized_rollback restores the reference data (regions,
# accelerators from the migrations) that the flush after each transactional test removes.
pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

RESULT_TIMEOUT = 30


@pytest.fixture
def redis_url(transactional_db) -> str:
    url = redis_url_for_tests()
    if url is None:
        from django.conf import settings

        pytest.skip(f"no Redis answers at REDIS_URL={settings.REDIS_URL} (CI runs one on 127.0.0.1:6379)")
    return url


@pytest.fixture
def worker(redis_url: str, tmp_path: Path):
    process = CeleryWorker(database_url=database_url_of(connection.settings_dict), redis_url=redis_url,
                           log_path=tmp_path / "worker.log")
    with process:
        yield process
    assert "Traceback" not in process.log(), process.log()


# db_engine: the worker must see the test database on either engine (a file shared between processes on SQLite).
@pytest.mark.db_engine
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


def test_beat_drives_the_worker_and_every_scheduled_task_exists(worker: CeleryWorker, redis_url: str,
                                                                  tmp_path: Path, provider_a, make_offer,
                                                                  monkeypatch) -> None:
    """A real `celery beat` sends the project's schedule; the worker knows every task it names, and the
    unlist-expired-offers entry (every OFFERS_UNLIST_INTERVAL_S, first run one interval after beat starts: 3 s
    here, 60 s by default) unlists an expired offer."""
    from django.conf import settings

    from marketplace.models import Offer

    scheduled = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert "workers.tasks.offers.unlist_expired_offers" in scheduled
    assert scheduled - worker.registered_tasks() == set()

    expired = make_offer(provider_a, name="expired", available_until=timezone.now() - timedelta(minutes=5))
    interval = 3
    monkeypatch.setenv("OFFERS_UNLIST_INTERVAL_S", str(interval))  # read by the beat process's settings
    beat = CeleryBeat(database_url=database_url_of(connection.settings_dict), redis_url=redis_url,
                      log_path=tmp_path / "beat.log", queue=worker.queue, schedule=tmp_path / "beat-schedule")
    with beat:
        assert beat.wait_for_log("Sending due task unlist-expired-offers", timeout=interval + 30), beat.log()
        done = worker.wait_for_pattern(r"Task workers\.tasks\.offers\.unlist_expired_offers\[[0-9a-f-]+\] "
                                       r"succeeded in [0-9.]+s: (\d+)", timeout=30)
        assert done is not None, worker.log()
        assert done.group(1) == "1"
    assert beat.process.returncode == 0
    expired.refresh_from_db()
    assert expired.status == Offer.Status.UNLISTED
