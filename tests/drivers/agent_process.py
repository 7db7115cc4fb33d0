"""Run the real reference agent as a subprocess on 127.0.0.1 for tests (port 0: it reports the port it got)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LISTENING = re.compile(r"listening on (http://127\.0\.0\.1:(\d+))")


class AgentProcess:
    def __init__(self, *, work_dir: Path, secret: str, provider: str = "test-provider", slots: int = 2,
                 extra: list[str] | None = None, env: dict[str, str] | None = None, via_manage: bool = False,
                 log_path: Path | None = None) -> None:
        self.work_dir = work_dir
        self.secret = secret
        self.provider = provider
        self.key_id = f"{provider}/default"
        self.log_path = log_path or work_dir.parent / f"{work_dir.name}.log"
        launcher = [sys.executable, "manage.py", "provider_agent"] if via_manage else [sys.executable, "-m",
                                                                                       "workers.agent"]
        self.argv = [*launcher, "--port", "0", "--provider", provider, "--work-dir", str(work_dir),
                     "--slots", str(slots), "--kill-grace", "1", *(extra or [])]
        # The secret goes by environment, as the agent's docs recommend; tests check jobs cannot see it.
        self.env = {**os.environ, "AGENT_SECRET": secret, **(env or {})}
        self.process: subprocess.Popen | None = None
        self.url = ""

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def start(self, timeout: float = 60) -> AgentProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(self.argv, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = LISTENING.search(self.log()[offset:])
            if match:
                self.url = match.group(1)
                break
            if self.process.poll() is not None:
                raise RuntimeError(f"agent exited with {self.process.returncode}:\n{self.log()}")
            time.sleep(0.05)
        else:
            self.stop()
            raise RuntimeError(f"agent did not start within {timeout}s:\n{self.log()}")
        with urllib.request.urlopen(f"{self.url}/v1/health", timeout=5) as answer:
            assert answer.status == 200
        return self

    def stop(self) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(timeout=5)

    def __enter__(self) -> AgentProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def driver_config(self, **overrides) -> dict:
        return {"base_url": self.url, "key_id": self.key_id, "secret": self.secret, **overrides}


def pid_gone_within(pid: int, seconds: float = 5.0) -> bool:
    """The process ends within `seconds` (SIGTERM, then SIGKILL after a grace, takes a moment on a busy box)."""
    import time

    deadline = time.monotonic() + seconds
    while not pid_gone(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def pid_gone(pid: int) -> bool:
    """No such process, or a zombie (ended, waiting to be reaped by init)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][:1] == "Z"
    except (OSError, IndexError):
        return True


def kill_leftovers(work_dir: Path) -> None:
    """Kill the process groups of jobs a test left running: the pids the agent recorded, never by name."""
    import sqlite3

    db = work_dir / "agent.sqlite3"
    if not db.exists():
        return
    with sqlite3.connect(db) as conn:
        pids = [row[0] for row in conn.execute("SELECT pid FROM jobs WHERE pid IS NOT NULL")]
    for pid in pids:
        try:
            if not pid_gone(pid) and os.getpgid(pid) == pid:
                os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass
