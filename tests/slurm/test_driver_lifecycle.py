"""The slurm driver against the real local Slurm: run to completion, fail, cancel, time out; logs and usage."""

from __future__ import annotations

import re
import subprocess
import time

import pytest

from tests.slurm.helpers import scontrol_field, wait_for_state
from workers.drivers.base import JobState, TerminalDriverError
from workers.drivers.slurm.jobscript import job_name

pytestmark = pytest.mark.slow

FINISHED = (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED, JobState.TIMEOUT, JobState.LOST)


def read_all_logs(driver, ref: str) -> tuple[str, list]:
    chunks = []
    offset = 0
    for _ in range(1000):
        chunk = driver.logs(ref, offset)
        chunks.append(chunk)
        offset = chunk.next_offset
        if chunk.complete:
            break
    return "".join(c.text for c in chunks), chunks


def test_job_runs_to_completion_with_output_exit_code_and_usage(driver, make_spec, submitted, slurm_cluster):
    spec = make_spec('echo "start $SLURM_JOB_ID"\n'
                     'echo "gpus=$(echo "$CUDA_VISIBLE_DEVICES" | tr , "\\n" | wc -l) greeting=$GREETING"\n'
                     'sleep 4\necho done',
                     env={"GREETING": "hello 'quoted' $world"}, options={"gres_type": "fake"},
                     time_limit_s=600, vcpus=1, ram_gb=0.5)
    ref = driver.create(spec)
    submitted.append(ref)
    assert ref.isdigit()

    # What Slurm was asked to reserve, read back from Slurm itself.
    assert scontrol_field(ref, "JobName") == job_name(spec.idempotency_key)
    assert scontrol_field(ref, "Comment") == spec.idempotency_key
    assert scontrol_field(ref, "TimeLimit") == "00:10:00"
    assert scontrol_field(ref, "NumNodes") in ("1", "1-1")
    assert scontrol_field(ref, "TresPerNode") == "gres:gpu:fake:1"
    assert scontrol_field(ref, "MinMemoryNode") == "512M"
    assert scontrol_field(ref, "Requeue") == "0"

    running = wait_for_state(driver, ref, (JobState.RUNNING, *FINISHED))
    assert running.state is JobState.RUNNING
    assert running.exit_code is None
    deadline = time.monotonic() + 10
    early = driver.logs(ref, 0)
    while not early.text and time.monotonic() < deadline:  # the batch script may not have printed yet
        time.sleep(0.2)
        early = driver.logs(ref, 0)
    assert early.complete is False
    assert early.text.startswith(f"start {ref}\n")

    done = wait_for_state(driver, ref, FINISHED)
    assert (done.state, done.exit_code) == (JobState.SUCCEEDED, 0)
    text, chunks = read_all_logs(driver, ref)
    expected = f"start {ref}\ngpus=1 greeting=hello 'quoted' $world\ndone\n"
    assert text == expected
    assert chunks[-1].complete is True
    assert chunks[-1].next_offset == len(expected.encode())
    again = driver.logs(ref, chunks[-1].next_offset)
    assert (again.text, again.next_offset, again.complete) == ("", len(expected.encode()), True)

    usage = driver.usage(ref)
    if slurm_cluster["accounting"]:
        deadline = time.monotonic() + 20
        while usage.details["source"] != "sacct" and time.monotonic() < deadline:
            time.sleep(0.5)
            usage = driver.usage(ref)
        assert usage.details["source"] == "sacct"
        acct = subprocess.run(["sacct", "-X", "-n", "-P", "-j", ref, "-o", "ElapsedRaw,AllocTRES,ExitCode,State"],
                              capture_output=True, text=True, check=True).stdout.strip().split("|")
        assert usage.elapsed_s == float(acct[0])
        assert acct[2:] == ["0:0", "COMPLETED"]
        assert "gres/gpu=1" in acct[1].split(",")
    assert 4.0 <= usage.elapsed_s <= 30.0
    assert usage.accelerator_s == usage.elapsed_s * 1
    assert usage.exit_code == 0
    assert usage.details["state"] == "COMPLETED"
    assert usage.details["accelerators"] == 1
    assert usage.details["alloc_tres"]["gres/gpu"] == "1"
    assert usage.details["alloc_tres"]["cpu"] == "1"
    assert usage.details["nodes"] == 1


def test_failing_job_is_failed_with_its_exit_code(driver, make_spec, submitted):
    ref = driver.create(make_spec('echo "about to fail" >&2; exit 3', accelerators_per_node=0))
    submitted.append(ref)
    done = wait_for_state(driver, ref, FINISHED)
    assert (done.state, done.exit_code) == (JobState.FAILED, 3)
    text, chunks = read_all_logs(driver, ref)
    assert text == "about to fail\n"
    assert chunks[-1].complete is True
    usage = driver.usage(ref)
    assert usage.exit_code == 3
    assert usage.accelerator_s == 0.0
    assert usage.details["state"] == "FAILED"


def test_terminate_cancels_a_running_job(driver, make_spec, submitted):
    ref = driver.create(make_spec("echo started; sleep 300"))
    submitted.append(ref)
    assert wait_for_state(driver, ref, (JobState.RUNNING, *FINISHED)).state is JobState.RUNNING
    wait_logs = time.monotonic() + 10
    while driver.logs(ref, 0).text != "started\n" and time.monotonic() < wait_logs:
        time.sleep(0.2)

    driver.terminate(ref)

    status = wait_for_state(driver, ref, FINISHED, timeout=30)
    assert status.state is JobState.CANCELLED
    assert scontrol_field(ref, "JobState") == "CANCELLED"
    driver.terminate(ref)  # terminating a finished job is a no-op
    text, chunks = read_all_logs(driver, ref)
    # slurmstepd appends its own line to the job's output when it kills the job; the batch shell may also report
    # its child's SIGTERM ("Terminated") when the signal reaches the shell before the step is killed.
    lines = text.splitlines(keepends=True)
    assert lines[0] == "started\n", text
    cancelled = [line for line in lines[1:] if re.fullmatch(
        rf"slurmstepd-localhost: error: \*\*\* JOB {ref} ON localhost CANCELLED AT "
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d \*\*\*\n", line)]
    assert len(cancelled) == 1, text
    assert [line for line in lines[1:] if line not in cancelled] in ([], ["Terminated\n"]), text
    assert chunks[-1].complete is True
    assert driver.usage(ref).details["state"] == "CANCELLED"


def test_terminate_a_pending_job_cancels_it_before_it_starts(driver, make_spec, submitted):
    ref = driver.create(make_spec("echo never", options={"hold": True}))
    submitted.append(ref)
    assert driver.status(ref).state is JobState.PENDING
    driver.terminate(ref)
    assert wait_for_state(driver, ref, FINISHED, timeout=20).state is JobState.CANCELLED
    assert driver.logs(ref, 0).text == ""
    assert driver.logs(ref, 0).complete is True


def test_logs_come_in_bounded_chunks_without_splitting_characters(make_driver, make_spec, submitted):
    driver = make_driver(max_log_bytes=7)
    ref = driver.create(make_spec("printf 'αβγδε\\nhello wörld\\n€€€\\n'", accelerators_per_node=0))
    submitted.append(ref)
    wait_for_state(driver, ref, FINISHED)
    text, chunks = read_all_logs(driver, ref)
    assert text == "αβγδε\nhello wörld\n€€€\n"
    assert all(len(c.text.encode()) <= 7 for c in chunks)
    assert all("\ufffd" not in c.text for c in chunks)
    assert [c.complete for c in chunks] == [False] * (len(chunks) - 1) + [True]
    assert chunks[-1].next_offset == len(text.encode())


def test_job_does_not_see_the_brokers_environment(driver, make_spec, submitted, monkeypatch):
    monkeypatch.setenv("BROKER_SECRET_PROBE", "s3cret")
    ref = driver.create(make_spec('echo "probe=${BROKER_SECRET_PROBE:-absent} mine=$MINE"',
                                  env={"MINE": "yes"}, accelerators_per_node=0))
    submitted.append(ref)
    wait_for_state(driver, ref, FINISHED)
    assert read_all_logs(driver, ref)[0] == "probe=absent mine=yes\n"


def test_unknown_job_is_lost_and_terminating_it_is_a_no_op(driver):
    status = driver.status("987654321")
    assert (status.state, status.exit_code, status.message) == (
        JobState.LOST, None, "Slurm does not know job 987654321")
    driver.terminate("987654321")
    with pytest.raises(TerminalDriverError) as err:
        driver.usage("987654321")
    assert err.value.code == "unknown_job"


def test_a_job_ref_that_is_not_a_job_id_is_refused_and_runs_nothing(driver, tmp_path):
    probe = tmp_path / "injected"
    for call in (driver.status, driver.terminate, driver.usage):
        with pytest.raises(TerminalDriverError) as err:
            call(f"1; touch {probe}")
        assert err.value.code == "bad_job_ref"
        assert "not a Slurm job id: '1; touch" in err.value.message
    assert not probe.exists()
