"""HTTP load for the benchmarks: a fixed number of connections, each sending its next request as soon as the
last response is in (a closed loop), for a fixed duration, against a server on 127.0.0.1.

`wrk` (Debian package) is used when it is installed: it is C and costs the 2-core machine least. Otherwise
a small asyncio client does the same, one connection per request as gunicorn's sync workers close every
connection anyway. Both report requests/s, p50/p99 latency and errors (non-200 answers, socket errors).
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class LoadResult:
    tool: str
    requests: int
    seconds: float
    errors: int
    p50_ms: float
    p99_ms: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def run_load(url: str, *, headers: dict[str, str], connections: int, seconds: float,
             tool: str = "auto") -> LoadResult:
    if tool == "wrk" or (tool == "auto" and shutil.which("wrk")):
        return _run_wrk(url, headers=headers, connections=connections, seconds=seconds)
    return asyncio.run(_run_asyncio(url, headers=headers, connections=connections, seconds=seconds))


# --- wrk ----------------------------------------------------------------------------------------------------

_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(number) * _UNIT_MS[unit]


def _run_wrk(url: str, *, headers: dict[str, str], connections: int, seconds: float) -> LoadResult:
    args = ["wrk", "--threads", "2", "--connections", str(connections), "--duration", f"{seconds:g}s",
            "--timeout", "5s", "--latency"]
    for name, value in headers.items():
        args += ["--header", f"{name}: {value}"]
    out = subprocess.run([*args, url], capture_output=True, text=True, check=True,
                         timeout=seconds + 30).stdout
    total = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m),", out)
    requests, elapsed = int(total.group(1)), _ms(total.group(2) + total.group(3)) / 1000
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = (int(non_2xx.group(1)) if non_2xx else 0) + (sum(map(int, sockets.groups())) if sockets else 0)
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))
    return LoadResult("wrk", requests, elapsed, errors, p50, p99)


# --- asyncio fallback ---------------------------------------------------------------------------------------

def _percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(fraction * len(sorted_values)))]


async def _run_asyncio(url: str, *, headers: dict[str, str], connections: int, seconds: float) -> LoadResult:
    match = re.fullmatch(r"http://([^/:]+):(\d+)(/.*)", url)
    if match is None:
        raise ValueError(f"only http://host:port/path URLs are supported, not {url}")
    host, port, target = match.group(1), int(match.group(2)), match.group(3)
    lines = [f"GET {target} HTTP/1.1", f"Host: {host}:{port}", "Connection: close",
             *(f"{k}: {v}" for k, v in headers.items())]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode()
    latencies: list[float] = []
    errors = 0
    started = time.perf_counter()
    deadline = started + seconds

    async def one_connection() -> None:
        nonlocal errors
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            try:
                reader, writer = await asyncio.open_connection(host, port)
                writer.write(request)
                response = await asyncio.wait_for(reader.read(-1), timeout=5)
                writer.close()
            except (TimeoutError, OSError):
                errors += 1
                continue
            if response.startswith(b"HTTP/1.1 200 ") or response.startswith(b"HTTP/1.0 200 "):
                latencies.append(time.perf_counter() - t0)
            else:
                errors += 1

    await asyncio.gather(*(one_connection() for _ in range(connections)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return LoadResult("asyncio", len(latencies) + errors, elapsed, errors,
                      _percentile(latencies, 0.50) * 1000, _percentile(latencies, 0.99) * 1000)
