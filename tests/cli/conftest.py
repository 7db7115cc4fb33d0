"""brokerctl against a live test server (pytest-django's live_server: real HTTP on 127.0.0.1) and, for orders,
a real Celery worker on a private queue with the simulated driver in a private Redis namespace."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner
from django.db import connection

from tests.worker_process import CeleryWorker, database_url_of, redis_url_for_tests

REPO = Path(__file__).resolve().parents[2]
FAST_PIPELINE_ENV = {"ORDERS_POLL_INTERVAL_S": "0.2", "ORDERS_METER_INTERVAL_S": "0.3",
                     "ORDERS_RETRY_BASE_S": "0.05", "ORDERS_RETRY_CAP_S": "0.2"}


@dataclass
class Run:
    exit_code: int
    stdout: str
    stderr: str


@pytest.fixture
def cli_home(tmp_path, monkeypatch) -> Path:
    """No BROKER_* from the outside; the config file lives in the test's tmp dir."""
    for name in ("BROKER_URL", "BROKER_TOKEN", "XDG_CONFIG_HOME"):
        monkeypatch.delenv(name, raising=False)
    path = tmp_path / "brokerctl" / "config.toml"
    monkeypatch.setenv("BROKERCTL_CONFIG", str(path))
    return path


@pytest.fixture
def brokerctl(live_server, cli_home):
    """brokerctl(*args, token=None) -> Run, in-process (click's runner) against the live server."""
    from broker.cli.main import cli

    def run(*args: str, token: str | None = None, url: str | None = None) -> Run:
        """url: None = the live server; "" = no BROKER_URL (the config file or the default decides)."""
        env = {"BROKER_URL": (url or None) if url is not None else live_server.url}
        if token:
            env["BROKER_TOKEN"] = token
        result = CliRunner().invoke(cli, list(args), env=env, prog_name="brokerctl")
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        return Run(result.exit_code, result.stdout, result.stderr)

    return run


@pytest.fixture
def brokerctl_process(live_server, cli_home):
    """The real thing: `python -m broker.cli ...` in a subprocess (entry point, exit status, stdout/stderr)."""

    def env(token: str | None) -> dict[str, str]:
        values = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO")}
        values.update({"BROKER_URL": live_server.url, "PYTHONUNBUFFERED": "1"})
        if token:
            values["BROKER_TOKEN"] = token
        return values

    def run(*args: str, token: str | None = None, timeout: float = 60) -> Run:
        proc = subprocess.run([sys.executable, "-m", "broker.cli", *args], cwd=REPO, env=env(token),
                              capture_output=True, text=True, timeout=timeout)
        return Run(proc.returncode, proc.stdout, proc.stderr)

    def start(*args: str, token: str | None = None) -> subprocess.Popen:
        """Started, not waited for (e.g. `orders logs --follow` while the test acts)."""
        return subprocess.Popen([sys.executable, "-m", "broker.cli", *args], cwd=REPO, env=env(token),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    run.start = start
    return run


@pytest.fixture
def token_for():
    from marketplace.services.tokens import token_create

    def make(user) -> str:
        return token_create(user=user, name="cli-test")[1]

    return make


@pytest.fixture
def market(transactional_db, make_provider, make_offer, region, h100):
    """Three listed H100 offers (8, 8 and 4 per node) and an A100 offer, from two providers."""
    from marketplace.models import Accelerator
    from marketplace.selectors.snapshot import clear_snapshot_cache

    clear_snapshot_cache()  # the engine's snapshot is cached per catalog version, which a DB flush resets

    a100 = Accelerator.objects.get(canonical_name="NVIDIA A100-SXM4-80GB")
    p1 = make_provider("Alpha Compute", slug="alpha")
    p2 = make_provider("Beta Cloud", slug="beta")
    return {
        "cheap8": make_offer(p1, name="h100x8-a", external_id="a-8", price_per_hour=Decimal("18.5000")),
        "dear8": make_offer(p2, name="h100x8-b", external_id="b-8", price_per_hour=Decimal("24.0000")),
        "four": make_offer(p2, name="h100x4", external_id="b-4", accelerator_count=4, vcpus=48, ram_gb=512,
                           price_per_hour=Decimal("10.0000")),
        "a100": make_offer(p1, name="a100x8", external_id="a-a100", accelerator=a100, accelerator_memory_gb=80,
                           price_per_hour=Decimal("12.0000")),
        "providers": (p1, p2),
    }


@pytest.fixture
def order_worker(transactional_db, settings, monkeypatch, tmp_path):
    """A real Celery worker on a private queue; the simulated driver (zero boot latency, 2 s runs) in a private
    Redis namespace, seen by the live server (same process) and the worker alike."""
    from workers.drivers.simulated import SimulatedDriver

    redis_url = redis_url_for_tests()
    if redis_url is None:
        pytest.skip(f"no Redis answers at REDIS_URL={settings.REDIS_URL} (CI runs one on 127.0.0.1:6379)")
    namespace = f"cli-test-{uuid.uuid4().hex[:10]}"
    sim = SimulatedDriver(redis_url=redis_url, namespace=namespace)
    sim.configure(boot_latency_s=0.0, run_duration_s=2.0)
    driver_config = json.dumps({"simulated": {"namespace": namespace}})
    monkeypatch.setenv("BROKER_DRIVER_CONFIG", driver_config)
    for name, value in FAST_PIPELINE_ENV.items():
        monkeypatch.setenv(name, value)
    queue = f"test-cli-{uuid.uuid4().hex[:10]}"
    settings.CELERY_TASK_DEFAULT_QUEUE = queue
    worker = CeleryWorker(database_url=database_url_of(connection.settings_dict), redis_url=redis_url,
                          log_path=tmp_path / "worker.log", queue=queue, concurrency=2)
    worker.env.update({"BROKER_DRIVER_CONFIG": driver_config, **FAST_PIPELINE_ENV})
    worker.start()
    yield sim
    worker.stop()
    sim.reset()
    import redis

    redis.Redis.from_url(redis_url).delete(queue)
    assert "Traceback" not in worker.log(), worker.log()[-5000:]


@pytest.fixture
def customer(customer, operator):
    """The shared customer, with an operator's credit line so orders can pay (no Stripe call until usage)."""
    from decimal import Decimal

    from marketplace.billing.services.customers import billing_set_overdraft

    billing_set_overdraft(operator=operator, customer=customer, limit=Decimal("100000.00"))
    return customer
