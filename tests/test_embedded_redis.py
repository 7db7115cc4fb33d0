"""broker/embedded_redis.py: a real redis-server on a unix socket that never outlives its holder process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


def _pid_alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return [int(x) for x in out.split()]


def _start(socket_path: Path) -> tuple[subprocess.Popen, int]:
    holder = subprocess.Popen([sys.executable, "-m", "broker.embedded_redis", "--socket", str(socket_path)],
                              cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 20
    for line in holder.stdout:
        if "ready on unix://" in line:
            break
        assert time.monotonic() < deadline, "embedded redis did not report ready"
    else:
        pytest.fail(f"embedded redis exited with {holder.wait()} before it was ready")
    children = _children(holder.pid)
    assert len(children) == 1, children
    return holder, children[0]


@pytest.fixture
def socket_path(tmp_path: Path) -> Path:
    # unix socket paths are limited to 107 bytes; pytest's tmp_path can be long
    short = Path("/tmp") / f"er-{os.getpid()}-{tmp_path.name[-20:]}"
    short.mkdir()
    yield short / "redis.sock"
    for item in short.iterdir():
        item.unlink()
    short.rmdir()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_serves_ping_and_stops_with_its_redis_server(socket_path: Path, signum: int) -> None:
    holder, server_pid = _start(socket_path)
    try:
        client = redis.Redis(unix_socket_path=str(socket_path))
        assert client.ping() is True
        client.set("k", "v")
        assert client.get("k") == b"v"
        assert client.config_get("save") == {"save": ""}
        assert client.config_get("appendonly") == {"appendonly": "no"}
        assert client.config_get("port") == {"port": "0"}
        client.close()
        holder.send_signal(signum)
        assert holder.wait(timeout=15) == 0
        assert "stopped (exit code 0)" in holder.stdout.read()
        assert not _pid_alive(server_pid)
        assert not socket_path.exists()
        assert list(socket_path.parent.iterdir()) == []  # it wrote nothing else
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()


def test_redis_server_dies_with_a_killed_holder(socket_path: Path) -> None:
    holder, server_pid = _start(socket_path)
    holder.kill()  # SIGKILL: no handler runs; the kernel's parent-death signal stops redis-server
    holder.wait()
    deadline = time.monotonic() + 10
    while _pid_alive(server_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _pid_alive(server_pid)


def test_refuses_a_socket_that_another_server_answers(socket_path: Path) -> None:
    holder, _ = _start(socket_path)
    try:
        second = subprocess.run([sys.executable, "-m", "broker.embedded_redis", "--socket", str(socket_path)],
                                cwd=ROOT, capture_output=True, text=True, timeout=30)
        assert second.returncode == 1
        assert second.stderr.strip() == (f"embedded_redis: a Redis server already answers on {socket_path}; "
                                         "stop it first")
        assert redis.Redis(unix_socket_path=str(socket_path)).ping() is True
    finally:
        holder.terminate()
        holder.wait(timeout=15)
