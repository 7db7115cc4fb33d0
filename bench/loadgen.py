"""HTTP load for the benchmarks: a fixed number of connections, each sending its next request as soon as the
last response is in (a closed loop), for a fixed duration, against a server on 127.0.0.1.

`wrk` (Debian package) is used when it is installed: it is C and costs the 2-core machine least. Otherwise
a small asyncio client does the same, one connection per request as gunicorn's sync workers close every
connection anyway. Both report requests/s, p50/p99 latency and errors (non-200 answers, socket errors).

`run_streams` is that asyncio client for a mix: several streams of requests (any method and body) at once, each
closed-loop or paced at a rate, returning one sample per request (kind, start, latency, status) for the caller
to cut by kind and by time (bench/soak_bench.py).
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import time
from collections.abc import Callable
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


# --- asyncio client -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Request:
    kind: str
    method: str
    target: str  # path and query
    headers: dict[str, str]
    body: bytes = b""
    keep_body: bool = False  # the sample keeps the response body (e.g. to read a created id); errors keep 300 bytes


@dataclass(frozen=True)
class Stream:
    """Requests from `make(n)` (n counts this stream's requests) over `connections` connections: each sends its
    next request when the last answer is in (closed loop), paced at `rate` requests/s over all the stream's
    connections when set (a connection late for its slot sends at once)."""
    make: Callable[[int], Request]
    connections: int
    rate: float | None = None


@dataclass(frozen=True)
class Sample:
    kind: str
    started: float  # seconds since the run started
    latency_s: float
    status: int  # the HTTP status; 0 = connection error or timeout
    body: bytes = b""

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def finished(self) -> float:
        return self.started + self.latency_s


def _percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(fraction * len(sorted_values)))]


def _decode(raw: bytes) -> tuple[int, bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    match = re.match(rb"HTTP/1\.[01] (\d{3})", head)
    if match is None:
        return 0, b""
    if re.search(rb"(?im)^transfer-encoding:\s*chunked", head):
        chunks, rest = [], body
        while rest:
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line.split(b";")[0] or b"0", 16)
            if size == 0:
                break
            chunks.append(rest[:size])
            rest = rest[size + 2:]
        body = b"".join(chunks)
    return int(match.group(1)), body


async def run_streams(host: str, port: int, streams: list[Stream], seconds: float, *,
                      timeout: float = 30.0) -> list[Sample]:
    """Drive every stream at once for `seconds`, one connection per request (gunicorn's sync workers close every
    connection anyway); returns a sample per request sent."""
    samples: list[Sample] = []
    started = time.perf_counter()
    deadline = started + seconds

    async def one_connection(stream: Stream, counter: list[int], index: int) -> None:
        interval = stream.connections / stream.rate if stream.rate else 0.0
        slot = started + index * interval / stream.connections
        while True:
            if interval:
                await asyncio.sleep(max(0.0, slot - time.perf_counter()))
                slot += interval
            if time.perf_counter() >= deadline:
                return
            request = stream.make(counter[0])
            counter[0] += 1
            lines = [f"{request.method} {request.target} HTTP/1.1", f"Host: {host}:{port}", "Connection: close",
                     *(f"{k}: {v}" for k, v in request.headers.items())]
            if request.body or request.method not in ("GET", "HEAD"):
                lines.append(f"Content-Length: {len(request.body)}")
            t0 = time.perf_counter()
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout=timeout)
                writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + request.body)
                raw = await asyncio.wait_for(reader.read(-1), timeout=timeout)
                writer.close()
                status, body = _decode(raw)
            except (TimeoutError, OSError):
                status, body = 0, b""
            kept = body if request.keep_body else b"" if 200 <= status < 300 else body[:300]
            samples.append(Sample(request.kind, t0 - started, time.perf_counter() - t0, status, kept))

    await asyncio.gather(*(one_connection(stream, counter, i)
                           for stream in streams for counter in [[0]] for i in range(stream.connections)))
    return samples


async def _run_asyncio(url: str, *, headers: dict[str, str], connections: int, seconds: float) -> LoadResult:
    match = re.fullmatch(r"http://([^/:]+):(\d+)(/.*)", url)
    if match is None:
        raise ValueError(f"only http://host:port/path URLs are supported, not {url}")
    host, port, target = match.group(1), int(match.group(2)), match.group(3)
    request = Request("get", "GET", target, headers)
    started = time.perf_counter()
    samples = await run_streams(host, port, [Stream(lambda n: request, connections)], seconds, timeout=5)
    elapsed = time.perf_counter() - started
    errors = sum(1 for s in samples if s.status != 200)
    latencies = sorted(s.latency_s for s in samples if s.status == 200)
    return LoadResult("asyncio", len(samples), elapsed, errors,
                      _percentile(latencies, 0.50) * 1000, _percentile(latencies, 0.99) * 1000)
