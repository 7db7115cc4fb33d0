"""Misbehaving HTTP servers for the agent driver's fault tests: a fake agent answering what a test tells it, and a
server that accepts connections but never answers."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from workers.drivers.http import H_NONCE, sign_response

SECRET = "fault-secret-0123456789abcdef"  # what FakeAgent signs with, unless told otherwise

# -> (status, body, sign it?), or None when the responder wrote (part of) an answer itself
Responder = Callable[[BaseHTTPRequestHandler], tuple[int, bytes, bool] | None]


class FakeAgent:
    def __init__(self, respond: Responder, secret: str = SECRET) -> None:
        handler = self._handler(respond, secret)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @staticmethod
    def _handler(respond: Responder, secret: str) -> type[BaseHTTPRequestHandler]:
        class Handler(BaseHTTPRequestHandler):
            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                answer = respond(self)
                if answer is None:
                    self.close_connection = True
                    return
                status, body, signed = answer
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                if signed:
                    nonce = self.headers.get(H_NONCE, "")
                    for k, v in sign_response(secret=secret, status=status, request_nonce=nonce, body=body).items():
                        self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _any  # noqa: N815

            def log_message(self, *args) -> None:
                pass

        return Handler

    def __enter__(self) -> FakeAgent:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextmanager
def hanging_server(backlog: int = 32) -> Iterator[str]:
    """The URL of a server that accepts connections and reads, but never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(backlog)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        listener.close()
