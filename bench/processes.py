"""The processes a benchmark runs on 127.0.0.1 (gunicorn, Celery workers and beat, the fake Stripe), started the way
the Procfile starts them and stopped by pid; plus the small HTTP client and Redis checks they need."""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from broker.celery_routing import KINDS, queues_for

ROOT = Path(__file__).resolve().parent.parent
GUNICORN_WORKERS = 2
WORKER_PROCESSES = 2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(port: int, path: str, headers: dict[str, str]) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def redis_url(default: str = "redis://127.0.0.1:6379/14") -> str:
    """BENCH_REDIS_URL, else $REDIS_URL, else `default`; exits when nothing answers PING there."""
    import redis

    url = os.environ.get("BENCH_REDIS_URL") or os.environ.get("REDIS_URL") or default
    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except (redis.RedisError, OSError) as exc:
        raise SystemExit(f"bench: no Redis at {url} ({exc}); set BENCH_REDIS_URL") from None
    return url


def start_gunicorn(port: int, env: dict[str, str], probe: str, *, workers: int = GUNICORN_WORKERS,
                   log_path: Path | None = None) -> subprocess.Popen:
    """gunicorn with `workers` sync workers on 127.0.0.1:port, once `probe` answers 200."""
    log = log_path.open("wb") if log_path else None
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "broker.wsgi:application", "--bind", f"127.0.0.1:{port}",
         "--workers", str(workers), "--worker-class", "sync", "--log-level", "warning"],
        cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT if log else None)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"bench: gunicorn exited with code {process.returncode}")
        try:
            if get(port, probe, {})[0] == 200:
                return process
        except OSError:
            pass
        time.sleep(0.2)
    stop(process)
    raise SystemExit("bench: gunicorn did not answer within 30 s")


def start_celery(env: dict[str, str], args: list[str], log_path: Path) -> subprocess.Popen:
    """`celery -A broker <args>` in its own process group, logging to `log_path`."""
    log = log_path.open("wb")
    return subprocess.Popen([sys.executable, "-m", "celery", "-A", "broker", *args], cwd=ROOT, env=env,
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)


def start_worker(env: dict[str, str], queue: str, log_path: Path, *, kinds: Iterable[str] = KINDS,
                 concurrency: int = WORKER_PROCESSES, name: str = "worker", include: str | None = None
                 ) -> subprocess.Popen:
    """One `celery worker --concurrency N` consuming the queues of `kinds` (all by default) derived from the base
    `queue` (broker/celery_routing.py), as the Procfile's workers do."""
    args = ["worker", "--loglevel", "WARNING", "--concurrency", str(concurrency),
            "--queues", ",".join(queues_for(kinds, queue)), "--hostname", f"{name}-{queue}@%h",
            "--without-gossip", "--without-mingle", "--without-heartbeat"]
    return start_celery(env, [*args, "--include", include] if include else args, log_path)


def delete_queues(client, queue: str) -> None:
    """Remove the Redis lists and kombu bindings of the base queue's family (every kind)."""
    names = queues_for(KINDS, queue)
    client.delete(*names, *(f"_kombu.binding.{n}" for n in names), *(f"_kombu.binding_permanent.{n}" for n in names))


def stop(process: subprocess.Popen, timeout: float = 30) -> None:
    """SIGTERM, then SIGKILL (of its process group when it has its own) after `timeout` seconds."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            if os.getpgid(process.pid) == process.pid:
                os.killpg(process.pid, 9)
            else:
                process.kill()
            process.wait()


# --- memory -------------------------------------------------------------------------------------------------

TICKS = os.sysconf("SC_CLK_TCK")


def _stats() -> Iterator[tuple[int, str, list[str]]]:
    """(pid, command name, the fields after "pid (comm)") of every process, from /proc/<pid>/stat; counted from
    state = 0: ppid 1, utime 11, stime 12, cutime 13, cstime 14, rss 21."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            head, _, rest = (entry / "stat").read_text().rpartition(")")
        except OSError:
            continue
        if head:
            yield int(entry.name), head.partition("(")[2], rest.split()


def _processes() -> dict[int, tuple[int, int, float]]:
    """{pid: (parent pid, RSS kB, CPU seconds used)} of every process."""
    page_kb = os.sysconf("SC_PAGE_SIZE") // 1024
    return {pid: (int(fields[1]), int(fields[21]) * page_kb, (int(fields[11]) + int(fields[12])) / TICKS)
            for pid, _, fields in _stats()}


def tree_usage(*roots: int) -> list[tuple[float, float]]:
    """(resident MiB, CPU seconds used so far) of each root process with all its live descendants (Linux /proc);
    (0, 0) when it is gone."""
    table = _processes()
    children: dict[int, list[int]] = {}
    for pid, (parent, _, _) in table.items():
        children.setdefault(parent, []).append(pid)
    totals = []
    for root in roots:
        rss_kb, cpu_s, stack = 0, 0.0, [root] if root in table else []
        while stack:
            current = stack.pop()
            rss_kb += table[current][1]
            cpu_s += table[current][2]
            stack.extend(children.get(current, []))
        totals.append((rss_kb / 1024, cpu_s))
    return totals


def command_cpu_s(*names: str) -> dict[str, float]:
    """CPU seconds used so far by the live processes whose command name is one of `names`, and by the children they
    reaped, by name: e.g. the local PostgreSQL server (postmaster, backends, WAL writer, ...; the backend of a
    closed connection is reaped by the postmaster, which then carries its CPU) and Redis."""
    totals = dict.fromkeys(names, 0.0)
    for _, name, fields in _stats():
        if name in totals:
            totals[name] += sum(int(v) for v in fields[11:15]) / TICKS  # utime, stime, cutime, cstime
    return totals
