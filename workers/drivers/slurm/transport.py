"""Running a bash script where Slurm's commands are: on this machine, or on a login host over ssh.

Each driver call is one script (its text on stdin, its arguments as positional parameters), so one call is one
round trip even over ssh. Every run has a timeout; on expiry the whole process group is killed and the call
raises TransientDriverError. The local environment is reduced to a few variables so the broker's own secrets
(database URL, API keys) never reach Slurm or the job.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

from workers.drivers.base import TransientDriverError

# Exit statuses the scripts use (sysexits.h): try again later / the input was wrong.
EX_TEMPFAIL = 75
EX_DATAERR = 65
SSH_FAILED = 255  # ssh's own status when it could not connect or authenticate

# What ssh and Slurm's commands need (agent socket, Kerberos ticket cache for sites that use it), nothing else.
PASSED_ENV = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "SLURM_CONF", "MUNGE_SOCKET", "SSH_AUTH_SOCK", "KRB5CCNAME")
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True, slots=True)
class Result:
    returncode: int
    stdout: bytes
    stderr: str

    @property
    def text(self) -> str:
        return self.stdout.decode("utf-8", errors="replace")


@dataclass(frozen=True, slots=True)
class Transport:
    """Where the scripts run. `login_host` None means here; else `ssh [ssh_options] login_host`."""

    login_host: str | None = None
    ssh_command: tuple[str, ...] = ("ssh",)
    ssh_options: tuple[str, ...] = ("-o", "BatchMode=yes", "-o", "ConnectTimeout=10")

    def argv(self, args: Sequence[str]) -> list[str]:
        if self.login_host is None:
            return ["bash", "-s", "--", *args]
        remote = " ".join(["bash", "-s", "--", *(shlex.quote(a) for a in args)])
        return [*self.ssh_command, *self.ssh_options, self.login_host, remote]

    @property
    def where(self) -> str:
        return self.login_host or "localhost"

    def run(self, script: str, args: Sequence[str], *, timeout_s: float) -> Result:
        env = {k: os.environ[k] for k in PASSED_ENV if k in os.environ}
        env.setdefault("PATH", DEFAULT_PATH)
        env["LC_ALL"] = "C"
        try:
            proc = subprocess.Popen(self.argv(args), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, env=env, start_new_session=True)
        except OSError as exc:
            raise TransientDriverError(f"cannot run {self.argv(args)[0]}: {exc}", code="slurm_unreachable") from exc
        try:
            out, err = proc.communicate(script.encode(), timeout=timeout_s)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            raise TransientDriverError(f"Slurm command on {self.where} timed out after {timeout_s:g}s",
                                       code="timeout") from None
        if self.login_host is not None and proc.returncode == SSH_FAILED:
            raise TransientDriverError(f"ssh to {self.login_host} failed: {_last_line(err)}",
                                       code="slurm_unreachable")
        return Result(proc.returncode, out, err.decode("utf-8", errors="replace"))


def _kill_group(proc: subprocess.Popen) -> None:
    """Kill the script and everything it started (sbatch, squeue, ...), then reap it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.communicate(timeout=5)


def _last_line(data: bytes) -> str:
    lines = data.decode("utf-8", errors="replace").strip().splitlines()
    return lines[-1] if lines else "no message"
