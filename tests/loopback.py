"""The threaded HTTP server of the tests' loopback endpoints (retrievers, webhooks, APIs)."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class LoopbackHTTPServer(ThreadingHTTPServer):
    """A ``ThreadingHTTPServer`` whose listen backlog takes a burst of concurrent clients.

    socketserver's default backlog is 5: a replay with several workers in flight (a Ray
    actor pool: actors x concurrency) overflows it, and some network stacks answer the
    overflow with a reset, which a test without retries would count as a failed query.
    """

    daemon_threads = True
    request_queue_size = socket.SOMAXCONN

    @property
    def url(self) -> str:
        """The server's base URL, ``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.server_address[1]}"


@contextmanager
def running(
    handler: type[BaseHTTPRequestHandler], *, port: int = 0
) -> Iterator[LoopbackHTTPServer]:
    """Serve ``handler`` on loopback ``port`` (a free one by default) for the block; yields
    the server, and stops it, closing its socket, on leaving.

    The serving loop polls for shutdown every 50 ms rather than socketserver's 0.5 s, so
    leaving the block does not wait out a poll interval.
    """
    server = LoopbackHTTPServer(("127.0.0.1", port), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@contextmanager
def serving(handler: type[BaseHTTPRequestHandler], *, port: int = 0) -> Iterator[str]:
    """Serve ``handler`` on a free loopback port (or ``port``) for the block; yields its base
    URL (``http://127.0.0.1:PORT``), and stops the server, closing its socket, on leaving."""
    with running(handler, port=port) as server:
        yield server.url


class JSONHandler(BaseHTTPRequestHandler):
    """A quiet request handler that reads and answers JSON bodies."""

    def read_json(self) -> Any:
        """The request's JSON body."""
        return json.loads(self.rfile.read(int(self.headers["Content-Length"])))

    def send_body(
        self, data: bytes, status: int = 200, *, content_type: str = "application/json"
    ) -> None:
        """Answer ``status`` with ``data``, JSON text unless ``content_type`` says otherwise."""
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def send_json(self, payload: object, status: int = 200) -> None:
        """Answer ``status`` with ``payload`` as JSON."""
        self.send_body(json.dumps(payload).encode(), status)

    def log_message(self, format: str, *args: object) -> None:
        pass
