"""Runs jobs as local subprocesses: one process group per job, a time limit, logs in a file, exit code and usage.

Each job runs `/bin/sh -c <command>` in its own directory (work_dir/jobs/<ref>/) inside a tiny wrapper shell that
writes the exit code to a file, so an agent that restarts while a job runs can still learn how it ended. The job's
environment is the one given in the spec plus a minimal base (PATH, HOME, LANG); the agent's own environment
(which holds its secret) is not passed on. The job is the leader of a new session, so terminate and the time limit
signal the whole process group: SIGTERM, then SIGKILL after `kill_grace_s`; stragglers of a finished job are killed.
"""

from __future__ import annotations

import codecs
import contextlib
import hashlib
import json
import os
import signal
import subprocess
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workers.agent.store import AgentStore, JobRow, now

WRAPPER = 'sh -c "$1"; code=$?; printf "%s\\n" "$code" > "$2"; exit "$code"'
EXIT_FILE = "exit_code"
LOG_FILE = "output.log"
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"


class NoCapacity(Exception):
    pass


class IdempotencyConflict(Exception):
    pass


@dataclass(frozen=True, slots=True)
class LogRead:
    text: str
    next_offset: int
    complete: bool


def spec_hash(spec: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


class JobRunner:
    def __init__(self, store: AgentStore, work_dir: Path, *, slots: int, kill_grace_s: float = 5.0) -> None:
        self.store = store
        self.work_dir = work_dir
        self.slots = slots
        self.kill_grace_s = kill_grace_s
        self._lock = threading.RLock()
        self._procs: dict[str, subprocess.Popen] = {}  # kept referenced: Popen must not reap our children

    def job_dir(self, ref: str) -> Path:
        return self.work_dir / "jobs" / ref

    # -------------------------------------------------------------------------------------------- create
    def create(self, spec: dict[str, Any]) -> tuple[JobRow, bool]:
        """(job, created). The same key with the same spec returns the existing job; with another spec it is
        an IdempotencyConflict. NoCapacity when every slot is busy."""
        digest = spec_hash(spec)
        with self._lock:
            existing = self.store.job_by_key(spec["idempotency_key"])
            if existing is not None:
                if existing.spec_hash != digest:
                    raise IdempotencyConflict(spec["idempotency_key"])
                return existing, False
            if self.store.count_active() >= self.slots:
                raise NoCapacity()
            ref = f"job-{uuid.uuid4().hex[:16]}"
            self.store.insert_job(ref=ref, key=spec["idempotency_key"], spec_hash=digest, spec=spec, now=now())
            self._start(ref, spec)
        job = self.store.job(ref)
        assert job is not None
        return job, True

    def _env(self, ref: str, spec: dict[str, Any], job_dir: Path) -> dict[str, str]:
        env = {"PATH": os.environ.get("PATH", DEFAULT_PATH), "HOME": str(job_dir), "LANG": "C.UTF-8",
               "PYTHONUNBUFFERED": "1", "JOB_REF": ref, "JOB_TIME_LIMIT_S": str(spec["time_limit_s"])}
        if spec.get("order_id") is not None:
            env["BROKER_ORDER_ID"] = str(spec["order_id"])
        env.update(spec.get("env") or {})
        return env

    def _start(self, ref: str, spec: dict[str, Any]) -> None:
        job_dir = self.job_dir(ref)
        job_dir.mkdir(parents=True, exist_ok=True)
        try:
            with open(job_dir / LOG_FILE, "ab") as log:
                proc = subprocess.Popen(
                    ["/bin/sh", "-c", WRAPPER, "agent-job", spec["command"], str(job_dir / EXIT_FILE)],
                    cwd=job_dir, env=self._env(ref, spec, job_dir), stdin=subprocess.DEVNULL, stdout=log,
                    stderr=subprocess.STDOUT, start_new_session=True)
        except OSError as exc:
            self.store.finish_job(ref, state="failed", ended_at=now(), message=f"could not start the job: {exc}")
            return
        started = now()
        self._procs[ref] = proc
        self.store.update_job(ref, pid=proc.pid, state="running", started_at=started,
                              message="running")
        deadline = started + float(spec["time_limit_s"])
        threading.Thread(target=self._watch_child, args=(ref, proc, deadline), daemon=True,
                         name=f"watch-{ref}").start()

    # ---------------------------------------------------------------------------------------- watching
    def _time_limit_timer(self, ref: str, deadline: float) -> threading.Timer:
        timer = threading.Timer(max(0.0, deadline - now()), self.stop, args=(ref, "timeout"))
        timer.daemon = True
        timer.start()
        return timer

    def _watch_child(self, ref: str, proc: subprocess.Popen, deadline: float) -> None:
        timer = self._time_limit_timer(ref, deadline)
        try:
            _, status, rusage = os.wait4(proc.pid, 0)
            code: int | None = os.waitstatus_to_exitcode(status)
            proc.returncode = code
            cpu_s, rss = round(rusage.ru_utime + rusage.ru_stime, 3), rusage.ru_maxrss
        except ChildProcessError:
            code, cpu_s, rss = _read_exit_file(self.job_dir(ref)), None, None
        finally:
            timer.cancel()
        self._finish(ref, proc.pid, code, cpu_s=cpu_s, max_rss_kb=rss)
        self._procs.pop(ref, None)

    def _watch_adopted(self, ref: str, pid: int, deadline: float) -> None:
        """A job started by an earlier agent process: not our child, so poll for it and read its exit file."""
        timer = self._time_limit_timer(ref, deadline)
        stop = threading.Event()
        while _alive(pid) and not stop.wait(0.2):
            pass
        timer.cancel()
        self._finish(ref, pid, _read_exit_file(self.job_dir(ref)), cpu_s=None, max_rss_kb=None)

    def _finish(self, ref: str, pid: int, code: int | None, *, cpu_s: float | None, max_rss_kb: int | None) -> None:
        _kill_group(pid, signal.SIGKILL)  # anything the job left behind in its group
        job = self.store.job(ref)
        reason = job.stop_reason if job is not None else ""
        if reason == "terminate":
            state, message = "cancelled", "terminated on request"
        elif reason == "timeout":
            limit = job.spec.get("time_limit_s") if job is not None else "?"
            state, message = "timeout", f"killed at the time limit of {limit}s"
        elif code == 0:
            state, message = "succeeded", "exited with code 0"
        elif code is None:
            state, message = "lost", "the job ended while the agent was down; its exit code is unknown"
        else:
            state, message = "failed", (f"exited with code {code}" if code >= 0 else f"killed by signal {-code}")
        self.store.finish_job(ref, state=state, ended_at=now(), exit_code=code, cpu_s=cpu_s, max_rss_kb=max_rss_kb,
                              message=message)

    def recover(self) -> None:
        """After a restart: adopt jobs whose process still runs, settle those that ended meanwhile."""
        for job in self.store.active_jobs():
            if job.pid is None:
                self.store.finish_job(job.ref, state="failed", ended_at=now(),
                                      message="the agent stopped before the job started")
            else:
                deadline = (job.started_at or job.created_at) + float(job.spec["time_limit_s"])
                threading.Thread(target=self._watch_adopted, args=(job.ref, job.pid, deadline), daemon=True).start()

    # ------------------------------------------------------------------------------------------- stop
    def stop(self, ref: str, reason: str = "terminate") -> JobRow | None:
        """Signal the job's process group (SIGTERM, SIGKILL after the grace period). No-op when finished."""
        with self._lock:
            job = self.store.job(ref)
            if job is None or job.finished:
                return job
            if not job.stop_reason:
                self.store.update_job(ref, stop_reason=reason)
            if job.pid is None:
                self.store.finish_job(ref, state="cancelled", ended_at=now(), message="terminated before start")
                return self.store.job(ref)
            pid = job.pid
        _kill_group(pid, signal.SIGTERM)
        killer = threading.Timer(self.kill_grace_s, self._kill_if_active, args=(ref, pid))
        killer.daemon = True
        killer.start()
        return self.store.job(ref)

    def _kill_if_active(self, ref: str, pid: int) -> None:
        job = self.store.job(ref)
        if job is not None and not job.finished:
            _kill_group(pid, signal.SIGKILL)

    def terminate(self, ref: str, *, wait_s: float = 2.0) -> JobRow | None:
        job = self.stop(ref, "terminate")
        deadline = now() + wait_s
        while job is not None and not job.finished and now() < deadline:
            threading.Event().wait(0.02)
            job = self.store.job(ref)
        return job

    def shutdown(self) -> None:
        """Agent stopping: jobs keep running (a restarted agent adopts them)."""
        self._procs.clear()

    # -------------------------------------------------------------------------------------- logs, usage
    def read_logs(self, job: JobRow, offset: int, limit: int) -> LogRead:
        finished = job.finished  # read before the file size: a finished job's log no longer grows
        path = self.job_dir(job.ref) / LOG_FILE
        try:
            size = path.stat().st_size
            with open(path, "rb") as fh:
                fh.seek(min(offset, size))
                chunk = fh.read(limit)
        except FileNotFoundError:
            size, chunk = 0, b""
        start = min(offset, size)
        at_eof = start + len(chunk) >= size
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        text = decoder.decode(chunk, final=finished and at_eof)
        consumed = len(chunk) - len(decoder.getstate()[0])
        next_offset = start + consumed
        return LogRead(text=text, next_offset=next_offset, complete=finished and next_offset >= size)

    def usage(self, job: JobRow) -> dict[str, Any]:
        end = job.ended_at if job.ended_at is not None else now()
        elapsed = round(max(0.0, end - job.started_at), 3) if job.started_at is not None else 0.0
        cpu_s = job.cpu_s
        if cpu_s is None and not job.finished and job.pid is not None:
            cpu_s = _proc_cpu_s(job.pid)
        spec = job.spec
        return {"elapsed_s": elapsed, "cpu_s": cpu_s, "max_rss_kb": job.max_rss_kb, "exit_code": job.exit_code,
                "accelerator_s": round(elapsed * int(spec.get("nodes", 1)) * int(spec.get("accelerators_per_node", 0)),
                                       3)}


def _kill_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie waiting for its (new) parent to reap it has ended
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][:1] != "Z"
    except (OSError, IndexError):
        return True


def _read_exit_file(job_dir: Path) -> int | None:
    try:
        return int((job_dir / EXIT_FILE).read_text().strip())
    except (OSError, ValueError):
        return None


def _proc_cpu_s(pid: int) -> float | None:
    """utime + stime + waited-for children's, from /proc (Linux); None elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].split()
        ticks = sum(int(fields[i]) for i in (11, 12, 13, 14))
        return round(ticks / os.sysconf("SC_CLK_TCK"), 3)
    except (OSError, IndexError, ValueError):
        return None
