"""Helpers for the Slurm tests: poll a job, ask Slurm directly (independently of the driver)."""

from __future__ import annotations

import subprocess
import time

import pytest

JOBCOMP_FILE = "/var/log/slurm/jobcomp.log"  # JobCompLoc in scripts/slurm_up.sh


def wait_for_state(driver, ref: str, states, timeout: float = 60.0, interval: float = 0.3):
    """Poll status until it is one of `states`; returns the JobStatus (fails the test on timeout)."""
    deadline = time.monotonic() + timeout
    seen = []
    while True:
        status = driver.status(ref)
        if not seen or seen[-1] != status.state:
            seen.append(status.state)
        if status.state in states:
            return status
        if time.monotonic() > deadline:
            pytest.fail(f"job {ref} did not reach {states} within {timeout}s; states seen: {seen}")
        time.sleep(interval)


def scontrol_field(ref: str, key: str) -> str:
    out = subprocess.run(["scontrol", "show", "job", "-o", ref], capture_output=True, text=True, timeout=10)
    for word in out.stdout.split():
        if word.startswith(f"{key}="):
            return word.split("=", 1)[1]
    raise AssertionError(f"no {key} in scontrol output for job {ref}: {out.stdout or out.stderr}")


def jobs_named(name: str, states: str = "all") -> list[str]:
    """Ids of the jobs slurmctld holds with this name (in these squeue states)."""
    out = subprocess.run(["squeue", "-h", f"--states={states}", f"--name={name}", "-o", "%i"], capture_output=True,
                         text=True, timeout=10, check=True)
    return out.stdout.split()
