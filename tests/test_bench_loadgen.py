"""bench/loadgen.py's mixed-stream client against a tiny local HTTP server, and the soak's cuts by time."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from bench.loadgen import Request, Sample, Stream, run_streams
from bench.soak_figures import thirds, timeline


def in_fresh_thread(coroutine):
    """asyncio.run in a thread of its own: the suite's Playwright tests leave an event loop running in this one."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    posted: list[bytes] = []

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        status = 200 if self.path == "/ok" else 500
        body = b"fine" if status == 200 else b"broken on purpose"
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:  # noqa: N802
        Handler.posted.append(self.rfile.read(int(self.headers["Content-Length"])))
        body = json.dumps({"id": len(Handler.posted)}).encode()
        self.send_response(201)
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Connection", "close")
        self.end_headers()
        half = len(body) // 2
        for chunk in (body[:half], body[half:]):
            self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        self.wfile.write(b"0\r\n\r\n")

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    Handler.posted = []
    yield httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


def test_streams_mix_kinds_keep_bodies_and_pace(server):
    streams = [
        Stream(lambda n: Request("get", "GET", "/ok", {}), connections=1),
        Stream(lambda n: Request("bad", "GET", "/bad", {}), connections=1, rate=5),
        Stream(lambda n: Request("post", "POST", "/create", {"Content-Type": "application/json"},
                                 json.dumps({"n": n}).encode(), keep_body=True), connections=2, rate=4),
    ]
    samples = in_fresh_thread(run_streams("127.0.0.1", server, streams, seconds=1.0))
    by_kind = {kind: [s for s in samples if s.kind == kind] for kind in ("get", "bad", "post")}

    assert all(s.status == 200 and s.ok and s.body == b"" for s in by_kind["get"])
    assert all(s.status == 500 and not s.ok and s.body == b"broken on purpose" for s in by_kind["bad"])
    assert all(s.status == 201 for s in by_kind["post"])
    # The chunked answer is decoded; every POST body arrived whole, with the stream's counter in it.
    assert sorted(json.loads(s.body)["id"] for s in by_kind["post"]) == list(range(1, len(by_kind["post"]) + 1))
    assert sorted(json.loads(b)["n"] for b in Handler.posted) == list(range(len(Handler.posted)))
    # Paced streams send at most rate x seconds (+ one per connection); the closed loop is not held back.
    assert 1 <= len(by_kind["bad"]) <= 5 + 1
    assert 1 <= len(by_kind["post"]) <= 4 + 2
    assert len(by_kind["get"]) > len(by_kind["bad"])


def test_refused_connection_is_an_error_sample(server):
    samples = in_fresh_thread(run_streams("127.0.0.1", 1, [Stream(lambda n: Request("x", "GET", "/", {}), 1, rate=5)],
                                      seconds=0.3))
    assert samples and all(s.status == 0 and not s.ok for s in samples)


def test_thirds_and_timeline_cut_by_answer_time():
    samples = [Sample("search", 0.0, 0.5, 200), Sample("search", 1.0, 0.1, 200), Sample("order", 2.5, 0.2, 201),
               Sample("order", 4.0, 0.5, 500), Sample("recommend", 5.5, 2.0, 200)]  # answered after the end
    parts = thirds(samples, 6.0)

    assert [p["all"]["requests"] for p in parts] == [2, 1, 2]
    assert parts[0]["search"]["per_s"] == 1.0 and parts[0]["order"]["requests"] == 0
    assert parts[1]["order"]["per_s"] == 0.5
    assert parts[2]["order"]["errors"] == 1 and parts[2]["recommend"]["per_s"] == 0.5
    assert timeline(samples, 6.0, buckets=3) == [1.0, 0.5, 0.5]
