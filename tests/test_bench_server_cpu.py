"""bench/processes.py's CPU counter by command name (the orders bench's PostgreSQL / Redis CPU per order)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from bench.processes import command_cpu_s


def test_cpu_of_the_processes_named_is_counted_and_others_are_not():
    own = Path("/proc/self/comm").read_text().strip()
    before = command_cpu_s(own, "no-such-command")
    spin = subprocess.Popen([sys.executable, "-c", "import time\nend = time.process_time() + 0.6\n"
                             "while time.process_time() < end: pass\ntime.sleep(30)"])
    try:
        deadline = time.monotonic() + 20
        while command_cpu_s(own)[own] - before[own] < 0.5:  # the spinning child (same command name) is counted
            assert time.monotonic() < deadline, "the child's CPU was not counted"
            time.sleep(0.1)
    finally:
        spin.kill()
        spin.wait()
    assert command_cpu_s(own, "no-such-command")["no-such-command"] == before["no-such-command"] == 0.0
