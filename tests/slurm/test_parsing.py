"""Pure parts of the slurm driver: state table, Slurm's text formats (captured from Slurm 22.05), job scripts,
sbatch arguments, error classification. No cluster needed."""

from __future__ import annotations

import hashlib
from datetime import datetime

import pytest

from workers.drivers.base import CapacityGoneError, JobSpec, JobState, TerminalDriverError, TransientDriverError
from workers.drivers.slurm.config import JobOptions, SlurmConfig, validate_options
from workers.drivers.slurm.driver import Inspection, _whole_characters
from workers.drivers.slurm.errors import raise_for
from workers.drivers.slurm.jobscript import batch_script, job_name, sbatch_args, time_limit_minutes
from workers.drivers.slurm.parsing import (
    STATE_MAP,
    duration_s,
    exit_code,
    gpus_in_tres,
    map_state,
    parse_key_values,
    parse_tres,
    record_from_jobcomp,
    record_from_sacct,
    record_from_scontrol,
)
from workers.drivers.slurm.transport import Result, Transport

EXPECTED_STATES = {
    "PENDING": "pending", "CONFIGURING": "pending", "REQUEUED": "pending", "REQUEUE_HOLD": "pending",
    "REQUEUE_FED": "pending", "RESV_DEL_HOLD": "pending",
    "RUNNING": "running", "COMPLETING": "running", "SUSPENDED": "running", "STOPPED": "running",
    "SIGNALING": "running", "STAGE_OUT": "running", "RESIZING": "running",
    "COMPLETED": "succeeded",
    "FAILED": "failed", "NODE_FAIL": "failed", "BOOT_FAIL": "failed", "OUT_OF_MEMORY": "failed",
    "PREEMPTED": "failed", "SPECIAL_EXIT": "failed",
    "CANCELLED": "cancelled",
    "TIMEOUT": "timeout", "DEADLINE": "timeout",
    "REVOKED": "lost",
}


def test_state_table_is_exactly_the_expected_mapping():
    assert {k: v.value for k, v in STATE_MAP.items()} == EXPECTED_STATES


@pytest.mark.parametrize(("raw", "state"), [
    ("CANCELLED by 0", JobState.CANCELLED), ("COMPLETED", JobState.SUCCEEDED), ("running", JobState.RUNNING),
    ("CANCELLED+", JobState.CANCELLED), (" TIMEOUT ", JobState.TIMEOUT), ("NODE_FAIL", JobState.FAILED),
])
def test_state_words_as_the_commands_print_them(raw, state):
    assert map_state(raw) is state


def test_unknown_state_is_an_error():
    with pytest.raises(ValueError, match="unknown Slurm job state 'WEIRD'"):
        map_state("WEIRD")


@pytest.mark.parametrize(("raw", "code"), [("0:0", 0), ("3:0", 3), ("0:15", 143), ("0:9", 137), ("255:0", 255),
                                           ("", None), (None, None), ("garbage", None)])
def test_exit_codes(raw, code):
    assert exit_code(raw) == code


@pytest.mark.parametrize(("raw", "seconds"), [("00:00:05", 5.0), ("01:02:03", 3723.0), ("2-00:00:01", 172801.0),
                                              ("05:07", 307.0), ("0", 0.0)])
def test_durations(raw, seconds):
    assert duration_s(raw) == seconds


def test_tres_and_gpu_counts():
    tres = parse_tres("billing=1,cpu=2,gres/gpu=2,mem=100M,node=1")
    assert tres == {"billing": "1", "cpu": "2", "gres/gpu": "2", "mem": "100M", "node": "1"}
    assert gpus_in_tres(tres) == 2
    assert gpus_in_tres(parse_tres("cpu=1,gres/gpu:a100=4,gres/gpu:h100=2")) == 6
    assert gpus_in_tres(parse_tres("cpu=1,node=1")) == 0
    assert parse_tres("") == parse_tres("(null)") == {}


SCONTROL_PENDING = (
    "JobId=3 JobName=held UserId=root(0) GroupId=root(0) MCS_label=N/A Priority=0 Nice=0 Account=root QOS=normal "
    "JobState=PENDING Reason=JobHeldUser Dependency=(null) Requeue=1 Restarts=0 BatchFlag=1 Reboot=0 ExitCode=0:0 "
    "RunTime=00:00:00 TimeLimit=UNLIMITED TimeMin=N/A SubmitTime=2026-11-27T23:08:28 EligibleTime=Unknown "
    "AccrueTime=Unknown StartTime=Unknown EndTime=Unknown Deadline=N/A NumNodes=1 NumCPUs=1 "
    "TRES=cpu=1,mem=24105M,node=1,billing=1 Command=(null) WorkDir=/tmp/f slurm Comment=order:1 a b "
    "StdErr=/tmp/f-slurm/3.out StdIn=/dev/null StdOut=/tmp/f-slurm/3.out Power= ")
SCONTROL_FAILED = (
    "JobId=2 JobName=fail UserId=root(0) GroupId=root(0) MCS_label=N/A Priority=4294901758 Nice=0 Account=root "
    "QOS=normal JobState=FAILED Reason=NonZeroExitCode Dependency=(null) Requeue=1 Restarts=0 BatchFlag=1 Reboot=0 "
    "ExitCode=3:0 RunTime=00:00:07 TimeLimit=UNLIMITED TimeMin=N/A SubmitTime=2026-11-27T23:08:28 "
    "StartTime=2026-11-27T23:08:30 EndTime=2026-11-27T23:08:37 NumNodes=1 NumCPUs=1 "
    "TRES=cpu=1,node=1,billing=1,gres/gpu=1 WorkDir=/tmp/f-slurm")
SACCT_CANCELLED = ("8|CANCELLED by 0|0:15|41|billing=1,cpu=1,gres/gpu=1,node=1|1|2026-11-27T23:08:28|"
                   "2026-11-27T23:08:30|2026-11-27T23:09:11")
JOBCOMP_TIMEOUT = (
    "JobId=5 UserId=root(0) GroupId=root(0) Name=wrap JobState=TIMEOUT Partition=debug TimeLimit=1 "
    "StartTime=2026-11-27T23:08:57 EndTime=2026-11-27T23:10:24 NodeList=localhost NodeCnt=1 ProcCnt=1 "
    "WorkDir=/tmp/f-slurm ReservationName= Tres=cpu=1,mem=24105M,node=1,billing=1 Account=root QOS=normal WcKey= "
    "Cluster=broker SubmitTime=2026-11-27T23:08:57 EligibleTime=2026-11-27T23:08:57 DerivedExitCode=0:0 "
    "ExitCode=0:0 ")


def test_key_values_keep_values_with_spaces_whole():
    kv = parse_key_values(SCONTROL_PENDING)
    assert kv["WorkDir"] == "/tmp/f slurm"
    assert kv["Comment"] == "order:1 a b"
    assert kv["TRES"] == "cpu=1,mem=24105M,node=1,billing=1"
    assert kv["Power"] == ""


def test_scontrol_records():
    pending = record_from_scontrol(SCONTROL_PENDING)
    assert (pending.job_id, pending.source, pending.state, pending.reason, pending.exit_code) == (
        "3", "scontrol", "PENDING", "JobHeldUser", None)
    assert pending.submit == datetime(2026, 11, 27, 23, 8, 28)
    assert pending.start is None
    failed = record_from_scontrol(SCONTROL_FAILED)
    assert (failed.state, failed.exit_code, failed.elapsed_s, failed.nodes) == ("FAILED", 3, 7.0, 1)
    assert gpus_in_tres(failed.tres) == 1
    assert failed.job_state is JobState.FAILED


def test_sacct_record():
    rec = record_from_sacct(SACCT_CANCELLED)
    assert (rec.job_id, rec.source, rec.state, rec.exit_code, rec.elapsed_s, rec.nodes) == (
        "8", "sacct", "CANCELLED", 143, 41.0, 1)
    assert rec.end == datetime(2026, 11, 27, 23, 9, 11)
    with pytest.raises(ValueError, match="sacct printed 3 fields, expected 9"):
        record_from_sacct("1|COMPLETED|0:0")


def test_jobcomp_record():
    rec = record_from_jobcomp(JOBCOMP_TIMEOUT)
    assert (rec.job_id, rec.source, rec.state, rec.exit_code, rec.elapsed_s, rec.nodes) == (
        "5", "jobcomp", "TIMEOUT", 0, 87.0, 1)
    assert rec.job_state is JobState.TIMEOUT


def test_inspection_output_with_a_log_chunk_holding_newlines_and_tags():
    raw = (b"now 2026-11-27T23:10:00\nscontrol " + SCONTROL_FAILED.encode() + b"\nsacct-off\nlog 30\n"
           b"scontrol fake line\nlog 5\n\xce\xb1")
    ins = Inspection("2", raw)
    assert ins.now == datetime(2026, 11, 27, 23, 10)
    assert set(ins.records) == {"scontrol"}
    assert ins.accounting_off is True
    assert (ins.log_size, ins.log_bytes) == (30, b"scontrol fake line\nlog 5\n\xce\xb1")
    assert ins.live.state == "FAILED"


def test_unreadable_accounting_line_is_transient():
    with pytest.raises(TransientDriverError, match="unreadable sacct output for job 2"):
        Inspection("2", b"sacct 2|COMPLETED\n")


@pytest.mark.parametrize(("data", "kept"), [
    (b"abc", b"abc"), ("aβ".encode(), "aβ".encode()), ("aβ".encode()[:-1], b"a"),
    ("a€".encode()[:-1], b"a"), ("a€".encode()[:-2], b"a"), ("a😀".encode()[:-1], b"a"),
    ("a😀".encode(), "a😀".encode()), (b"", b""),
])
def test_incomplete_utf8_tail_is_held_back(data, kept):
    assert _whole_characters(data) == kept


def test_job_name_carries_the_key_readably_and_uniquely():
    digest = hashlib.sha256(b"order:42:attempt:1").hexdigest()[:12]
    assert job_name("order:42:attempt:1") == f"brk-order_42_attempt_1-{digest}"
    assert job_name("a b") != job_name("a_b")  # same readable part, different hash
    assert len(job_name("x" * 500)) == 4 + 60 + 1 + 12
    with pytest.raises(TerminalDriverError, match="no idempotency key"):
        job_name("")


@pytest.mark.parametrize(("seconds", "minutes"), [(1, 1), (60, 1), (61, 2), (3600, 60), (36000, 600)])
def test_time_limits_round_up_to_whole_minutes(seconds, minutes):
    assert time_limit_minutes(seconds) == minutes


def spec(**kw) -> JobSpec:
    base = {"order_id": 42, "idempotency_key": "order:42:attempt:1", "offer_external_id": "gpu-a100",
            "nodes": 2, "accelerators_per_node": 4, "accelerator": "A100 SXM 80GB", "command": "srun hostname",
            "time_limit_s": 36000, "vcpus": 32, "ram_gb": 250.5}
    base.update(kw)
    return JobSpec(**base)


def test_sbatch_arguments_reserve_what_was_bought():
    options = JobOptions(partition="gpu", account="acme", qos="high", gres_type="a100", exclusive=True)
    assert sbatch_args(spec(), options, work_dir="/scratch/broker", extra=("--reservation=broker",)) == [
        f"--job-name={job_name('order:42:attempt:1')}", "--comment=order:42:attempt:1",
        "--output=/scratch/broker/%j.out", "--chdir=/scratch/broker", "--export=NONE", "--no-requeue",
        "--nodes=2", "--ntasks-per-node=1", "--time=600", "--cpus-per-task=32", "--mem=256512M",
        "--gres=gpu:a100:4", "--partition=gpu", "--account=acme", "--qos=high", "--exclusive",
        "--reservation=broker",
    ]
    minimal = sbatch_args(spec(accelerators_per_node=0, vcpus=0, ram_gb=0), JobOptions(hold=True), work_dir="/w")
    assert minimal == [f"--job-name={job_name('order:42:attempt:1')}", "--comment=order:42:attempt:1",
                       "--output=/w/%j.out", "--chdir=/w", "--export=NONE", "--no-requeue", "--nodes=2",
                       "--ntasks-per-node=1", "--time=600", "--hold"]
    assert not any(a.startswith(("--gres", "--mem", "--cpus-per-task", "--partition")) for a in minimal)


def test_batch_script_exports_the_environment_safely():
    script = batch_script(spec(env={"B": "it's $HOME", "A": "1"}, image="ghcr.io/acme/train:1"))
    assert script == ("#!/bin/bash\n"
                      "# Submitted by the compute broker: order 42, key order_42_attempt_1\n"
                      "export A=1\n"
                      "export B='it'\"'\"'s $HOME'\n"
                      "export BROKER_IMAGE=ghcr.io/acme/train:1\n"
                      "srun hostname\n")


def test_options_layer_config_offer_and_job():
    config = SlurmConfig.from_kwargs({"partition": "cpu", "offers": {"gpu-a100": {"partition": "gpu",
                                                                                  "gres_type": "a100"}}})
    assert config.options_for("other", {}) == JobOptions(partition="cpu")
    assert config.options_for("gpu-a100", {}) == JobOptions(partition="gpu", gres_type="a100")
    assert config.options_for("gpu-a100", {"hold": True}) == JobOptions(partition="gpu", gres_type="a100",
                                                                         hold=True)


@pytest.mark.parametrize(("config", "message"), [
    ({"nope": 1}, "unknown Slurm driver setting(s) nope; valid: account, accounting, begin, constraint, "
                  "exclusive, gres_name, gres_type, hold, jobcomp_file, login_host, max_log_bytes, offers, "
                  "partition, pending_limit_s, qos, sbatch_args, ssh_command, ssh_options, work_dir"),
    ({"work_dir": "relative/dir"}, "Slurm driver setting work_dir: must be an absolute path"),
    ({"login_host": "-oProxyCommand=x"}, "Slurm driver setting login_host: must be a host name, user@host, or "
                                         "an ssh config alias"),
    ({"accounting": "maybe"}, 'Slurm driver setting accounting: must be "auto", true or false'),
    ({"pending_limit_s": -1}, "Slurm driver setting pending_limit_s: must be a number of seconds, 0 or more"),
    ({"sbatch_args": "--exclusive"}, "Slurm driver setting sbatch_args: must be a list of strings"),
    ({"partition": "x;y"}, "invalid Slurm job options in the driver configuration: partition: must be a Slurm "
                           "name: letters, digits, '_', '.', '-' (at most 64)"),
    ({"offers": {"o1": {"hold": "yes"}}}, "invalid Slurm job options in offers['o1']: hold: must be true or false"),
])
def test_bad_configuration_is_refused_with_the_key_named(config, message):
    with pytest.raises(TerminalDriverError) as err:
        SlurmConfig.from_kwargs(config)
    assert err.value.code in ("bad_config", "bad_options")
    assert err.value.message == message


def test_validate_options_for_an_offer_api():
    clean, errors = validate_options({"partition": "gpu", "gres_type": "a 100", "exclusive": True, "x": 1})
    assert clean == {"partition": "gpu", "exclusive": True}
    assert errors == {"gres_type": ["must be a Slurm name: letters, digits, '_', '.', '-' (at most 64)"],
                      "x": ["unknown Slurm option; valid: partition, account, qos, constraint, gres_name, "
                            "gres_type, exclusive, hold, begin"]}


@pytest.mark.parametrize(("code", "stderr", "error", "error_code"), [
    (1, "sbatch: error: Batch job submission failed: Requested node configuration is not available",
     CapacityGoneError, "capacity_gone"),
    (1, "sbatch: error: Batch job submission failed: Job violates accounting/QOS policy (job submit limit, "
        "user's size and/or time limits)", CapacityGoneError, "capacity_gone"),
    (1, "sbatch: error: Batch job submission failed: Unable to contact slurm controller (connect failure)",
     TransientDriverError, "slurm_unavailable"),
    (75, "another create with this idempotency key is still running", TransientDriverError, "slurm_unavailable"),
    (65, "not a Slurm job id: 'x'", TerminalDriverError, "bad_job_ref"),
    (1, "sbatch: error: Batch job submission failed: Invalid account or account/partition combination specified",
     TerminalDriverError, "rejected"),
    (127, "bash: sbatch: command not found", TerminalDriverError, "slurm_error"),
])
def test_failures_are_classified(code, stderr, error, error_code):
    with pytest.raises(error) as err:
        raise_for(Result(code, b"", stderr), action="submit the job", where="login1")
    assert type(err.value) is error
    assert err.value.code == error_code
    assert err.value.message == f"could not submit the job on login1: {stderr}"


def test_success_raises_nothing():
    raise_for(Result(0, b"submitted 1\n", ""), action="x", where="y")


def test_ssh_argv_quotes_every_argument_for_the_remote_shell():
    transport = Transport(login_host="alice@login1", ssh_options=("-o", "BatchMode=yes"))
    assert transport.argv(["a b", "it's", "$HOME"]) == [
        "ssh", "-o", "BatchMode=yes", "alice@login1", "bash -s -- 'a b' 'it'\"'\"'s' '$HOME'"]
    assert Transport().argv(["a b"]) == ["bash", "-s", "--", "a b"]
