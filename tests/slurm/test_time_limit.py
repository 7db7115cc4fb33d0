"""A job that outlives its time limit ends TIMEOUT (runs last: the job was submitted when the Slurm tests began)."""

from __future__ import annotations

import re
import time

import pytest

from tests.slurm.helpers import scontrol_field, wait_for_state
from workers.drivers.base import JobState

pytestmark = pytest.mark.slow


def test_time_limit_ends_in_timeout(timeout_job):
    driver, ref, submitted_at = timeout_job
    assert scontrol_field(ref, "TimeLimit") == "00:01:00"  # 30 s rounded up to Slurm's whole minute
    status = wait_for_state(driver, ref, tuple(s for s in JobState if s.finished),
                            timeout=max(10.0, 170 - (time.monotonic() - submitted_at)), interval=1.0)
    assert status.state is JobState.TIMEOUT
    assert scontrol_field(ref, "JobState") == "TIMEOUT"
    assert re.fullmatch(rf"tick\nslurmstepd-localhost: error: \*\*\* JOB {ref} ON localhost CANCELLED AT "
                        r"\S+ DUE TO TIME LIMIT \*\*\*\n", driver.logs(ref, 0).text)
    assert driver.usage(ref).elapsed_s >= 60.0
