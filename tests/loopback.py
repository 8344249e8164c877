"""The threaded HTTP server of the tests' loopback endpoints (retrievers, webhooks, APIs)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class LoopbackHTTPServer(ThreadingHTTPServer):
    """A ``ThreadingHTTPServer`` whose listen backlog takes a burst of concurrent clients.

    socketserver's default backlog is 5: a replay with several workers in flight (a Ray
    actor pool: actors x concurrency) overflows it, and some network stacks answer the
    overflow with a reset, which a test without retries would count as a failed query.
    """

    daemon_threads = True
    request_queue_size = socket.SOMAXCONN


@contextmanager
def serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """Serve ``handler`` on a free loopback port for the block; yields its base URL
    (``http://127.0.0.1:PORT``), and stops the server, closing its socket, on leaving."""
    server = LoopbackHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
