"""Orders on a Slurm-backed offer, end to end: the API, a real Celery worker against real Redis, the slurm driver
and the real local Slurm. From quote to running to completed with the job's output through the API and usage
metered from Slurm's accounting; cancel of a running order cancels the Slurm job; a job that stays pending past
the limit is capacity gone and the order fails over to the next offer of the quote."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from decimal import ROUND_HALF_UP, Decimal

import pytest
from django.db import connection

from tests.slurm.helpers import JOBCOMP_FILE, scontrol_field
from tests.worker_process import CeleryWorker, database_url_of, redis_url_for_tests

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

FAST_PIPELINE_ENV = {"ORDERS_POLL_INTERVAL_S": "0.3", "ORDERS_METER_INTERVAL_S": "0.5",
                     "ORDERS_RETRY_BASE_S": "0.1", "ORDERS_RETRY_CAP_S": "0.5"}


@pytest.fixture
def hpc(make_provider, make_offer):
    """An HPC center selling its Slurm partition: one GPU node type (the local node's fake GPUs)."""
    from marketplace.selectors.snapshot import clear_snapshot_cache

    clear_snapshot_cache()
    center = make_provider("Test HPC Center", slug="test-hpc", kind="hpc_center")
    gpu = make_offer(center, name="debug partition, 1 GPU", external_id="hpc-gpu", driver="slurm",
                     accelerator_count=1, vcpus=1, ram_gb=0.5, price_per_hour=Decimal("3.6000"), nodes_available=2)
    held = make_offer(center, name="held partition, 1 GPU", external_id="hpc-held", driver="slurm",
                      accelerator_count=1, vcpus=1, ram_gb=0.5, price_per_hour=Decimal("1.8000"), nodes_available=1,
                      status="unlisted")
    return {"center": center, "gpu": gpu, "held": held}


@pytest.fixture
def slurm_worker(transactional_db, slurm_cluster, work_dir, settings, monkeypatch, tmp_path):
    redis_url = redis_url_for_tests()
    if redis_url is None:
        pytest.skip(f"no Redis answers at REDIS_URL={settings.REDIS_URL} (CI runs one on 127.0.0.1:6379)")
    driver_config = json.dumps({"slurm": {
        "work_dir": str(work_dir), "jobcomp_file": JOBCOMP_FILE, "pending_limit_s": 5,
        "offers": {"hpc-gpu": {"gres_type": "fake"}, "hpc-held": {"gres_type": "fake", "hold": True}}}})
    monkeypatch.setenv("BROKER_DRIVER_CONFIG", driver_config)
    queue = f"test-slurm-{uuid.uuid4().hex[:10]}"
    settings.CELERY_TASK_DEFAULT_QUEUE = queue
    worker = CeleryWorker(database_url=database_url_of(connection.settings_dict), redis_url=redis_url,
                          log_path=tmp_path / "worker.log", queue=queue, concurrency=2)
    worker.env.update({"BROKER_DRIVER_CONFIG": driver_config, **FAST_PIPELINE_ENV})
    worker.start()
    yield worker
    worker.stop()
    import redis

    redis.Redis.from_url(redis_url).delete(queue)
    assert "Traceback" not in worker.log(), worker.log()[-5000:]


def place(client, body: dict) -> dict:
    """Recommend (the request without its job), then order the quote with the job."""
    job = body.pop("job")
    answer = client.post("/api/v1/recommendations/", body, format="json")
    assert answer.status_code == 200, answer.json()
    quote = answer.json()["quote"]["id"]
    order = client.post("/api/v1/orders/", {"quote_id": quote, "job": job}, format="json",
                        HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4()))
    assert order.status_code == 201, order.json()
    return order.json()


def wait_order(client, order_id: int, states: set[str], timeout: float = 90.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        order = client.get(f"/api/v1/orders/{order_id}/").json()
        if order["state"] in states:
            return order
        if time.monotonic() > deadline:
            events = client.get(f"/api/v1/orders/{order_id}/events/").json()
            raise AssertionError(f"order {order_id} is {order['state']}, not in {states}; events: {events}")
        time.sleep(0.3)


def sacct(ref: str, fields: str) -> list[str]:
    out = subprocess.run(["sacct", "-X", "-n", "-P", "-j", ref, "-o", fields], capture_output=True, text=True,
                         check=True, timeout=10)
    return out.stdout.strip().split("|")


def wait_sacct_final(ref: str, timeout: float = 20.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while True:
        row = sacct(ref, "State,ExitCode,ElapsedRaw,AllocTRES")
        if row[0] not in ("PENDING", "RUNNING", "") or time.monotonic() > deadline:
            return row
        time.sleep(0.3)


def test_order_runs_on_slurm_from_quote_to_completed_with_output_and_metered_usage(
        hpc, customer, client_for, slurm_worker, slurm_cluster):
    client = client_for(customer)
    job = {"command": 'echo "hello from Slurm job $SLURM_JOB_ID, $CUDA_VISIBLE_DEVICES gpu, run $RUN"\n'
                      "sleep 4\necho done",
           "env": {"RUN": "42"}, "duration_hours": "0.05"}
    order = place(client, {"resources": {"accelerator": "H100", "count": 1}, "duration_hours": 0.05,
                           "objective": "cost", "job": job})
    assert order["offer"] == {"id": hpc["gpu"].pk, "name": "debug partition, 1 GPU", "provider": "test-hpc",
                              "accelerator": "NVIDIA H100-SXM5-80GB", "region": "us-east-virginia", "driver": "slurm"}
    assert order["simulated"] is False

    running = wait_order(client, order["id"], {"running", "stopping", "completed", "failed"})
    assert running["state"] == "running", running
    ref = running["job_ref"]
    from marketplace.orders.models import Order

    key = Order.objects.get(pk=order["id"]).idempotency_key_for_attempt
    # What Slurm was asked for: the offer's resources and the order's duration, with the key on the job.
    assert scontrol_field(ref, "Comment") == key
    assert scontrol_field(ref, "JobState") in ("RUNNING", "COMPLETING", "COMPLETED")
    assert scontrol_field(ref, "TimeLimit") == "00:03:00"
    assert scontrol_field(ref, "TresPerNode") == "gres:gpu:fake:1"
    assert scontrol_field(ref, "MinMemoryNode") == "512M"
    assert scontrol_field(ref, "NumCPUs") == "1"

    done = wait_order(client, order["id"], {"completed", "failed", "cancelled"})
    assert (done["state"], done["failure"]) == ("completed", None)
    assert scontrol_field(ref, "JobState") == "COMPLETED"
    logs = client.get(f"/api/v1/orders/{order['id']}/logs/").json()
    assert logs == {"offset": 0, "next_offset": len(logs["text"]), "complete": True,
                    "text": f"hello from Slurm job {ref}, 0 gpu, run 42\ndone\n"}

    events = client.get(f"/api/v1/orders/{order['id']}/events/").json()
    events = events["results"] if isinstance(events, dict) else events
    assert [(e["from_state"], e["to_state"]) for e in events][-2:] == [("running", "stopping"),
                                                                       ("stopping", "completed")]
    assert events[-2]["reason"] == "job exited with code 0"

    # Usage as Slurm's accounting recorded it.
    if slurm_cluster["accounting"]:
        state, exit_code, elapsed, tres = wait_sacct_final(ref)
        assert (state, exit_code) == ("COMPLETED", "0:0")
        assert "gres/gpu=1" in tres.split(",")
    else:
        elapsed = scontrol_field(ref, "RunTime").split(":")[-1]
    final = Order.objects.get(pk=order["id"])
    assert final.metered_seconds == float(elapsed)
    assert 4 <= final.metered_seconds <= 30
    expected_usd = (Decimal("3.6000") * Decimal(f"{float(elapsed):.3f}") / 3600).quantize(
        Decimal("0.01"), rounding=ROUND_HALF_UP)
    assert final.metered_usd == expected_usd
    assert Decimal(done["metered_usd"]) == expected_usd


def test_cancelling_a_running_order_cancels_the_slurm_job(hpc, customer, client_for, slurm_worker):
    client = client_for(customer)
    order = place(client, {"resources": {"accelerator": "H100", "count": 1}, "duration_hours": 0.05,
                           "job": {"command": "echo started; sleep 600", "duration_hours": "0.05"}})
    running = wait_order(client, order["id"], {"running", "completed", "failed"})
    assert running["state"] == "running", running
    ref = running["job_ref"]
    deadline = time.monotonic() + 20
    while client.get(f"/api/v1/orders/{order['id']}/logs/").json()["text"] != "started\n":
        assert time.monotonic() < deadline, "the job's first line never reached the API"
        time.sleep(0.3)
    assert scontrol_field(ref, "JobState") == "RUNNING"

    answer = client.post(f"/api/v1/orders/{order['id']}/cancel/")
    assert answer.status_code == 200, answer.json()
    final = wait_order(client, order["id"], {"cancelled", "completed", "failed"})
    assert final["state"] == "cancelled"
    assert scontrol_field(ref, "JobState") == "CANCELLED"
    logs = client.get(f"/api/v1/orders/{order['id']}/logs/").json()
    assert logs["text"].startswith("started\n")
    assert f"*** JOB {ref} ON localhost CANCELLED AT " in logs["text"]


def test_a_job_pending_past_the_limit_fails_over_to_the_next_offer(hpc, customer, client_for, slurm_worker):
    """The cheaper offer's partition holds every job (never starts): after pending_limit_s the driver reports
    capacity gone, cancels the held job, and the order moves to the next alternative of its quote."""
    from marketplace.models import Offer
    from marketplace.orders.models import Order
    from marketplace.selectors.snapshot import clear_snapshot_cache

    Offer.objects.filter(pk=hpc["held"].pk).update(status="listed")
    clear_snapshot_cache()
    client = client_for(customer)
    order = place(client, {"resources": {"accelerator": "H100", "count": 1}, "duration_hours": 0.05,
                           "objective": "cost", "job": {"command": "echo second offer", "duration_hours": "0.05"}})
    assert order["offer"]["id"] == hpc["held"].pk
    first_key = Order.objects.get(pk=order["id"]).idempotency_key_for_attempt
    done = wait_order(client, order["id"], {"completed", "failed", "cancelled"}, timeout=120)
    assert done["state"] == "completed", done
    assert (done["offer"]["id"], done["attempt"]) == (hpc["gpu"].pk, 2)
    held_job = subprocess.run(["squeue", "-h", "--states=all", "-o", "%i|%T|%k"], capture_output=True, text=True,
                              check=True).stdout.splitlines()
    assert [line.split("|")[1] for line in held_job if line.split("|")[2] == first_key] == ["CANCELLED"]
    events = client.get(f"/api/v1/orders/{order['id']}/events/").json()
    events = events["results"] if isinstance(events, dict) else events
    reasons = " / ".join(e["reason"] for e in events)
    assert "has been pending for" in reasons and "limit 5s, reason JobHeldUser" in reasons
    assert client.get(f"/api/v1/orders/{order['id']}/logs/").json()["text"] == "second offer\n"
