"""The login-host path and the fallbacks, against the real local Slurm.

`ssh` is replaced by a stand-in that runs the remote command here (so the quoting of every argument through a
remote shell is exercised for real); it can put fake Slurm commands first on PATH to simulate a hung or
unreachable controller, or a slurmctld that has forgotten a job.
"""

from __future__ import annotations

import os
import stat
import time
import uuid
from pathlib import Path

import pytest

from tests.slurm.helpers import scontrol_field, wait_for_state
from workers.drivers.base import JobState, TransientDriverError

pytestmark = pytest.mark.slow

FINISHED = tuple(s for s in JobState if s.finished)


def executable(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.fixture
def fake_ssh(tmp_path):
    """(ssh stand-in, its fake-bin directory). Host 'unreachable' fails like ssh does (exit 255)."""
    fakebin = tmp_path / "fakebin"
    fakebin.mkdir()
    ssh = executable(tmp_path / "ssh", f"""#!/bin/bash
while [ $# -gt 0 ]; do case "$1" in -o) shift 2 ;; -*) shift ;; *) break ;; esac; done
host=$1; shift
if [ "$host" = unreachable ]; then
  echo "ssh: connect to host unreachable port 22: Connection refused" >&2; exit 255
fi
export PATH="{fakebin}:$PATH"
exec bash -c "$*"
""")
    return ssh, fakebin


@pytest.fixture
def ssh_driver(make_driver, fake_ssh):
    ssh, _ = fake_ssh

    def make(**config):
        return make_driver(login_host=config.pop("login_host", "login.hpc.example"), ssh_command=[str(ssh)],
                           **config)

    return make


def test_a_job_through_the_login_host_keeps_every_argument_intact(ssh_driver, make_spec, submitted):
    driver = ssh_driver()
    command = """echo "it's $GREETING"; printf '%s\\n' "a  b" '$HOME' "`echo tick`" """
    spec = make_spec(command, env={"GREETING": "a \"quoted\" $value; rm -rf /"}, accelerators_per_node=0,
                     idempotency_key=f"order:5:attempt:1 with spaces; and 'quotes' {uuid.uuid4().hex}")
    ref = driver.create(spec)
    submitted.append(ref)
    assert driver.create(spec) == ref
    assert scontrol_field(ref, "Comment") == "order:5:attempt:1"  # scontrol shows the comment up to a space
    done = wait_for_state(driver, ref, FINISHED)
    assert (done.state, done.exit_code) == (JobState.SUCCEEDED, 0)
    chunk = driver.logs(ref, 0)
    assert chunk.text == 'it\'s a "quoted" $value; rm -rf /\na  b\n$HOME\ntick\n'
    assert chunk.complete is True


def test_unreachable_login_host_is_transient(ssh_driver, make_spec):
    driver = ssh_driver(login_host="unreachable")
    for call in (lambda: driver.create(make_spec("true")), lambda: driver.status("1"),
                 lambda: driver.logs("1", 0), lambda: driver.usage("1"), lambda: driver.terminate("1")):
        with pytest.raises(TransientDriverError) as err:
            call()
        assert err.value.code == "slurm_unreachable"
        assert err.value.message == ("ssh to unreachable failed: ssh: connect to host unreachable port 22: "
                                     "Connection refused")


def test_a_hung_slurm_command_times_out_and_is_killed(ssh_driver, fake_ssh, make_spec, tmp_path):
    _, fakebin = fake_ssh
    pids = tmp_path / "pids"
    for name in ("squeue", "scontrol", "scancel"):
        executable(fakebin / name, f"#!/bin/bash\necho $$ >> {pids}\nexec sleep 60\n")
    driver = ssh_driver()
    for call, timeout in ((driver.create, 1.0), (driver.status, 1.0), (driver.terminate, 1.0)):
        arg = make_spec("true") if call == driver.create else "1"
        started = time.monotonic()
        with pytest.raises(TransientDriverError) as err:
            call(arg, timeout_s=timeout)
        assert time.monotonic() - started < 4.0
        assert err.value.code == "timeout"
        assert err.value.message == "Slurm command on login.hpc.example timed out after 1s"
    hung = [int(p) for p in pids.read_text().split()]
    assert len(hung) == 3
    deadline = time.monotonic() + 5
    while any(running(pid) for pid in hung) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [pid for pid in hung if running(pid)] == []


def running(pid: int) -> bool:
    """The process exists and is not a zombie (killed orphans wait a moment for init to reap them)."""
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat_line.rsplit(")", 1)[1].split()[0] != "Z"


def test_controller_unreachable_is_transient(ssh_driver, fake_ssh):
    _, fakebin = fake_ssh
    executable(fakebin / "scontrol", "#!/bin/bash\necho 'slurm_load_jobs error: Unable to contact slurm "
                                     "controller (connect failure)' >&2\nexit 1\n")
    with pytest.raises(TransientDriverError) as err:
        ssh_driver().status("1")
    assert err.value.code == "slurm_unavailable"
    assert err.value.message == ("could not read job 1 on login.hpc.example: slurm_load_jobs error: Unable to "
                                 "contact slurm controller (connect failure)")


def test_without_accounting_usage_comes_from_slurmctld(make_driver, make_spec, submitted):
    driver = make_driver(accounting=False)
    ref = driver.create(make_spec("sleep 2; exit 4", accelerators_per_node=1))
    submitted.append(ref)
    done = wait_for_state(driver, ref, FINISHED)
    assert (done.state, done.exit_code) == (JobState.FAILED, 4)
    usage = driver.usage(ref)
    assert usage.details["source"] == "scontrol"
    run_time = scontrol_field(ref, "RunTime")
    hours, minutes, seconds = (int(x) for x in run_time.split(":"))
    assert usage.elapsed_s == hours * 3600 + minutes * 60 + seconds
    assert usage.elapsed_s >= 2
    assert usage.accelerator_s == usage.elapsed_s
    assert usage.exit_code == 4


def test_a_job_slurmctld_forgot_is_read_from_accounting_then_the_jobcomp_log(
        ssh_driver, fake_ssh, make_driver, make_spec, submitted, slurm_cluster):
    driver = make_driver()
    ref = driver.create(make_spec("echo out; exit 2", accelerators_per_node=0))
    submitted.append(ref)
    wait_for_state(driver, ref, FINISHED)
    _, fakebin = fake_ssh
    # slurmctld purges finished jobs after MinJobAge; simulate that.
    executable(fakebin / "scontrol", "#!/bin/bash\necho 'slurm_load_jobs error: Invalid job id specified' >&2\n"
                                     "exit 1\n")
    if slurm_cluster["accounting"]:
        deadline = time.monotonic() + 20
        while ssh_driver().usage(ref).details["source"] != "sacct" and time.monotonic() < deadline:
            time.sleep(0.5)
        from_accounting = ssh_driver().status(ref)
        assert (from_accounting.state, from_accounting.exit_code) == (JobState.FAILED, 2)
        assert ssh_driver().usage(ref).details["source"] == "sacct"

    no_accounting = ssh_driver(accounting=False)
    status = no_accounting.status(ref)
    assert (status.state, status.exit_code) == (JobState.FAILED, 2)
    usage = no_accounting.usage(ref)
    assert usage.details["source"] == "jobcomp"
    assert usage.details["state"] == "FAILED"
    assert usage.exit_code == 2
    assert no_accounting.logs(ref, 0).text == "out\n"
    assert no_accounting.logs(ref, 0).complete is True

    nothing = ssh_driver(accounting=False, jobcomp_file=None)
    assert nothing.status(ref).state is JobState.LOST


def test_broker_secrets_do_not_reach_the_slurm_commands(make_driver, monkeypatch, tmp_path, make_spec):
    monkeypatch.setenv("DATABASE_URL", "postgres://secret@db/broker")
    fakebin = tmp_path / "bin"
    fakebin.mkdir()
    seen = tmp_path / "env"
    executable(fakebin / "scontrol", f"#!/bin/bash\nenv > {seen}\necho 'Invalid job id specified' >&2\nexit 1\n")
    monkeypatch.setenv("PATH", f"{fakebin}:{os.environ['PATH']}")
    make_driver(accounting=False, jobcomp_file=None).status("1")
    names = {line.split("=", 1)[0] for line in seen.read_text().splitlines()}
    assert "DATABASE_URL" not in names
    assert "PATH" in names
