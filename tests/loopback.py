"""The threaded HTTP server of the tests' loopback endpoints (retrievers, webhooks, APIs)."""

from __future__ import annotations

import socket
from http.server import ThreadingHTTPServer


class LoopbackHTTPServer(ThreadingHTTPServer):
    """A ``ThreadingHTTPServer`` whose listen backlog takes a burst of concurrent clients.

    socketserver's default backlog is 5: a replay with several workers in flight (a Ray
    actor pool: actors x concurrency) overflows it, and some network stacks answer the
    overflow with a reset, which a test without retries would count as a failed query.
    """

    daemon_threads = True
    request_queue_size = socket.SOMAXCONN
