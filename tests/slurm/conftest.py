"""A real single-node Slurm for the driver tests: started with scripts/slurm_up.sh when it is not up.

When Slurm cannot be brought up (not root, no apt, install failure) the tests skip with the reason, printed to
the terminal; with BROKER_REQUIRE_SLURM=1 (CI) they fail instead.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.slurm.helpers import JOBCOMP_FILE

REPO = Path(__file__).resolve().parents[2]
SLURM_UP = REPO / "scripts" / "slurm_up.sh"
WORK_ROOT = Path("/var/tmp/broker-slurm-tests")


def slurm_answers() -> bool:
    if shutil.which("sinfo") is None:
        return False
    try:
        out = subprocess.run(["sinfo", "-h", "-n", "localhost", "-o", "%T"], capture_output=True, text=True,
                             timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and out.stdout.strip() in ("idle", "mixed", "allocated", "completing")


def accounting_on() -> bool:
    out = subprocess.run(["sacct", "-n", "-X", "-j", "1"], capture_output=True, text=True, timeout=10)
    return out.returncode == 0


@pytest.fixture(scope="session")
def slurm_cluster() -> dict:
    """Bring Slurm up (idempotent script) or skip/fail with the reason. Returns facts about the cluster."""
    reason = None
    started = time.monotonic()
    if not slurm_answers():
        if os.geteuid() != 0:
            reason = "Slurm is not running and starting it needs root (scripts/slurm_up.sh)"
        else:
            run = subprocess.run(["bash", str(SLURM_UP)], capture_output=True, text=True, timeout=600)
            if run.returncode != 0:
                reason = f"scripts/slurm_up.sh failed ({run.returncode}): {(run.stderr or run.stdout).strip()}"
            elif not slurm_answers():
                reason = "scripts/slurm_up.sh finished but sinfo does not show the node up"
    if reason:
        if os.environ.get("BROKER_REQUIRE_SLURM") == "1":
            pytest.fail(f"Slurm is required here (BROKER_REQUIRE_SLURM=1): {reason}")
        sys.__stderr__.write(f"\nSKIPPING the Slurm tests: {reason}\n")
        pytest.skip(reason)
    return {"setup_s": time.monotonic() - started, "accounting": accounting_on(), "gres_type": "fake",
            "gpus": _node_gpus()}


def _node_gpus() -> int:
    out = subprocess.run(["scontrol", "show", "node", "localhost"], capture_output=True, text=True, timeout=10)
    for word in out.stdout.split():
        if word.startswith("Gres=gpu:"):
            return int(word.rsplit(":", 1)[1].split("(")[0])
    return 0


@pytest.fixture(scope="session")
def work_dir(slurm_cluster) -> Path:
    path = WORK_ROOT / uuid.uuid4().hex[:12]
    path.mkdir(parents=True)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def submitted() -> list[str]:
    """Job ids the tests created; all cancelled at the end of the session (no-op for finished ones)."""
    refs: list[str] = []
    yield refs
    if refs:
        subprocess.run(["scancel", *refs], capture_output=True, timeout=30)


@pytest.fixture
def make_driver(slurm_cluster, work_dir):
    from workers.drivers.registry import get_driver

    def make(**config):
        config.setdefault("work_dir", str(work_dir))
        config.setdefault("jobcomp_file", JOBCOMP_FILE)
        return get_driver("slurm", **config)

    return make


@pytest.fixture
def driver(make_driver):
    return make_driver()


@pytest.fixture
def make_spec():
    from workers.drivers.base import JobSpec

    def make(command: str, **kw) -> JobSpec:
        kw.setdefault("order_id", 1)
        kw.setdefault("idempotency_key", f"order:1:attempt:1:{uuid.uuid4().hex[:8]}")
        kw.setdefault("offer_external_id", "slurm-debug")
        kw.setdefault("nodes", 1)
        kw.setdefault("accelerators_per_node", 1)
        kw.setdefault("accelerator", "H100 SXM")
        kw.setdefault("time_limit_s", 600)
        kw.setdefault("vcpus", 1)
        return JobSpec(command=command, **kw)

    return make



@pytest.fixture(scope="session")
def timeout_job(slurm_cluster, work_dir, submitted):
    """A job with a 30 s limit (Slurm rounds it up to one minute; it ends 60-90 s later). Submitted as soon as
    the first Slurm test starts so the wait overlaps the other tests; test_time_limit.py (last) checks it."""
    from workers.drivers.base import JobSpec
    from workers.drivers.registry import get_driver

    driver = get_driver("slurm", work_dir=str(work_dir))
    spec = JobSpec(order_id=9, idempotency_key=f"order:9:attempt:1:{time.time_ns()}", offer_external_id="x",
                   nodes=1, accelerators_per_node=0, accelerator="H100 SXM", vcpus=1, time_limit_s=30,
                   command="echo tick; sleep 600")
    ref = driver.create(spec)
    submitted.append(ref)
    return driver, ref, time.monotonic()


@pytest.fixture(autouse=True)
def _timeout_job_started_early(request):
    """Start the time-limit job with the first Slurm test (not for pure tests that need no cluster)."""
    if "slurm_cluster" in request.fixturenames or "driver" in request.fixturenames \
            or "make_driver" in request.fixturenames:
        request.getfixturevalue("timeout_job")


@pytest.fixture
def customer(customer, operator):
    """The shared customer, with an operator's credit line so orders can pay (no Stripe call until usage)."""
    from decimal import Decimal

    from marketplace.billing.services.customers import billing_set_overdraft

    billing_set_overdraft(operator=operator, customer=customer, limit=Decimal("100000.00"))
    return customer
