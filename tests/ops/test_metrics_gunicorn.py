"""Production's web path: gunicorn with 2 workers in prometheus_client multiprocess mode (PROMETHEUS_MULTIPROC_DIR);
one scrape adds up the requests both workers served, with the state metrics alongside."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from django.db import connection

from tests.ops.test_metrics import samples
from tests.worker_process import ROOT, database_url_of

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_one_scrape_counts_the_requests_of_every_gunicorn_worker(tmp_path: Path, redis_client, settings) -> None:
    metrics_dir = tmp_path / "prom"
    metrics_dir.mkdir()
    port = free_port()
    env = {**os.environ, "DATABASE_URL": database_url_of(connection.settings_dict), "REDIS_URL": settings.REDIS_URL,
           "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir), "METRICS_TOKEN": "t0k", "BROKER_DEV": "1"}
    log = (tmp_path / "gunicorn.log").open("wb")
    web = subprocess.Popen([str(Path(sys.executable).parent / "gunicorn"), "broker.wsgi:application", "--bind",
                            f"127.0.0.1:{port}", "--workers", "2"], cwd=ROOT, env=env, stdout=log,
                           stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                requests.get(f"{url}/healthz", timeout=60)  # the first request loads the app: slow on a busy box
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline and web.poll() is None, (tmp_path / "gunicorn.log").read_text()
                time.sleep(0.2)
        with ThreadPoolExecutor(6) as pool:  # concurrent: while one sync worker is busy, the other accepts
            statuses = list(pool.map(lambda _: requests.get(f"{url}/healthz", timeout=60).status_code, range(30)))
        assert statuses == [200] * 30
        scrape = requests.get(f"{url}/metrics", headers={"Authorization": "Bearer t0k"}, timeout=30)
        assert scrape.status_code == 200
        got = samples(scrape.text)
        files = {path.name.split("_")[-1] for path in metrics_dir.glob("counter_*.db")}
        assert len(files) == 2, sorted(metrics_dir.iterdir())  # both workers served and counted
        assert got[("broker_http_requests_total", (("method", "GET"), ("status", "200"), ("view", "healthz")))] == 31
        assert ("broker_orders", (("state", "running"),)) in got  # state metrics in the same scrape
        assert ("broker_celery_queue_depth", (("kind", "billing"), ("queue", f"{settings.CELERY_TASK_DEFAULT_QUEUE}"
                                                                          ".billing"))) in got
    finally:
        web.terminate()
        web.wait(timeout=30)
        log.close()
