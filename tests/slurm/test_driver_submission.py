"""Submitting against the real local Slurm: idempotent creates, pending too long, requests Slurm refuses."""

from __future__ import annotations

import re
import threading
import time
import uuid
from pathlib import Path

import pytest

from tests.slurm.helpers import jobs_named, scontrol_field, wait_for_state
from workers.drivers.base import CapacityGoneError, JobState, TerminalDriverError
from workers.drivers.slurm.jobscript import job_name

pytestmark = pytest.mark.slow


def test_same_idempotency_key_twice_submits_one_job(driver, make_spec, submitted, work_dir):
    spec = make_spec("sleep 20", accelerators_per_node=0)
    first = driver.create(spec)
    submitted.append(first)
    second = driver.create(spec)
    assert second == first
    assert jobs_named(job_name(spec.idempotency_key)) == [first]
    assert (Path(work_dir) / ".keys" / f"{job_name(spec.idempotency_key)}.job").read_text() == f"{first}\n"

    # Without the idempotency record (e.g. the submit script died right after sbatch), the job is found by name.
    (Path(work_dir) / ".keys" / f"{job_name(spec.idempotency_key)}.job").unlink()
    assert driver.create(spec) == first
    assert jobs_named(job_name(spec.idempotency_key)) == [first]
    driver.terminate(first)


def test_concurrent_creates_with_one_key_submit_one_job(make_driver, make_spec, submitted):
    spec = make_spec("sleep 20", accelerators_per_node=0)
    refs: list[str] = []
    errors: list[BaseException] = []

    def create() -> None:
        try:
            refs.append(make_driver().create(spec, timeout_s=30))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=create) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    submitted.extend(refs)
    assert errors == []
    assert len(refs) == 4 and len(set(refs)) == 1
    assert jobs_named(job_name(spec.idempotency_key)) == [refs[0]]
    make_driver().terminate(refs[0])


def test_different_keys_submit_different_jobs(driver, make_spec, submitted):
    run = uuid.uuid4().hex[:8]  # keys are unique per test run: Slurm remembers earlier runs' jobs
    a = driver.create(make_spec("true", idempotency_key=f"order:77:attempt:1:{run}", accelerators_per_node=0))
    b = driver.create(make_spec("true", idempotency_key=f"order:77:attempt:2:{run}", accelerators_per_node=0))
    submitted.extend([a, b])
    assert a != b
    assert scontrol_field(a, "Comment") == f"order:77:attempt:1:{run}"
    assert scontrol_field(b, "Comment") == f"order:77:attempt:2:{run}"


def test_job_pending_past_the_limit_is_capacity_gone_and_cancelled(make_driver, make_spec, submitted):
    driver = make_driver(pending_limit_s=2)
    ref = driver.create(make_spec("echo never", options={"hold": True}))
    submitted.append(ref)
    first = driver.status(ref)
    assert (first.state, first.exit_code, first.message) == (JobState.PENDING, None, "pending: JobHeldUser")
    time.sleep(3.2)
    with pytest.raises(CapacityGoneError) as err:
        driver.status(ref)
    assert err.value.code == "capacity_gone"
    assert err.value.message.startswith(f"job {ref} has been pending for ")
    assert err.value.message.endswith("s (limit 2s, reason JobHeldUser); cancelled it")
    assert scontrol_field(ref, "JobState") == "CANCELLED"
    assert driver.status(ref).state is JobState.CANCELLED


def test_job_pending_within_the_limit_stays_pending(make_driver, make_spec, submitted):
    driver = make_driver(pending_limit_s=600)
    ref = driver.create(make_spec("echo later", options={"begin": "now+1hour"}))
    submitted.append(ref)
    status = driver.status(ref)
    assert (status.state, status.message) == (JobState.PENDING, "pending: BeginTime")
    assert scontrol_field(ref, "JobState") == "PENDING"
    driver.terminate(ref)


@pytest.mark.parametrize(("spec_kw", "message"), [
    ({"accelerators_per_node": 3, "options": {"gres_type": "fake"}},
     "Requested node configuration is not available"),
    ({"options": {"partition": "nosuchpartition"}}, "Invalid partition name specified"),
])
def test_requests_the_partition_cannot_satisfy_are_capacity_gone(driver, make_spec, spec_kw, message):
    spec = make_spec("true", **spec_kw)
    with pytest.raises(CapacityGoneError) as err:
        driver.create(spec)
    assert err.value.code == "capacity_gone"
    assert err.value.message.startswith("could not submit the job on localhost: sbatch: error: ")
    assert err.value.message.endswith(f"sbatch: error: Batch job submission failed: {message}")
    # With accounting on, slurmctld keeps a FAILED record of the refused submission; nothing can run.
    assert jobs_named(job_name(spec.idempotency_key), states="PENDING,RUNNING,SUSPENDED,COMPLETED") == []


@pytest.mark.parametrize("spec_kw", [{"nodes": 2}, {"vcpus": 64}])
def test_job_that_can_never_start_is_capacity_gone_at_once(make_driver, make_spec, submitted, spec_kw):
    driver = make_driver(pending_limit_s=600)
    ref = driver.create(make_spec("true", **spec_kw))  # one node with 2 CPUs: Slurm queues these anyway
    submitted.append(ref)
    deadline = time.monotonic() + 15
    while scontrol_field(ref, "Reason") == "None" and time.monotonic() < deadline:
        time.sleep(0.3)  # the scheduler names the reason on its first pass over the job
    assert scontrol_field(ref, "Reason") in ("PartitionConfig", "PartitionNodeLimit")
    with pytest.raises(CapacityGoneError) as err:
        driver.status(ref)
    assert re.fullmatch(rf"job {ref} can never start \((PartitionConfig|PartitionNodeLimit)\); cancelled it",
                        err.value.message)
    assert scontrol_field(ref, "JobState") == "CANCELLED"


def test_the_node_has_the_gpus_the_tests_assume(slurm_cluster):
    assert slurm_cluster["gpus"] == 2


@pytest.mark.parametrize(("spec_kw", "message"), [
    ({"command": "  "}, "the job spec has no command"),
    ({"env": {"BAD-NAME": "x"}}, "environment variable name 'BAD-NAME' is not valid"),
    ({"nodes": 0}, "nodes must be at least 1, not 0"),
    ({"options": {"partition": "a b"}}, "invalid Slurm job options in the job's options: partition: must be a "
                                        "Slurm name: letters, digits, '_', '.', '-' (at most 64)"),
    ({"options": {"mystery": 1}}, "invalid Slurm job options in the job's options: mystery: unknown Slurm "
                                  "option; valid: partition, account, qos, constraint, gres_name, gres_type, "
                                  "exclusive, hold, begin"),
])
def test_bad_job_specs_are_refused_before_anything_is_submitted(driver, make_spec, spec_kw, message):
    spec = make_spec(spec_kw.pop("command", "true"), **spec_kw)
    with pytest.raises(TerminalDriverError) as err:
        driver.create(spec)
    assert not isinstance(err.value, CapacityGoneError)
    assert err.value.message == message
    assert jobs_named(job_name(spec.idempotency_key)) == []


def test_per_offer_options_from_the_driver_configuration(make_driver, make_spec, submitted):
    driver = make_driver(offers={"gpu-node": {"gres_type": "fake", "hold": True}})
    ref = driver.create(make_spec("true", offer_external_id="gpu-node"))
    submitted.append(ref)
    assert scontrol_field(ref, "TresPerNode") == "gres:gpu:fake:1"
    assert scontrol_field(ref, "Reason") == "JobHeldUser"
    driver.terminate(ref)
    assert wait_for_state(driver, ref, (JobState.CANCELLED,), timeout=20).state is JobState.CANCELLED
