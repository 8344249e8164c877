"""A loopback proxy in front of a Chroma server, for the latency incident: each search is held
``factor - 1`` times as long as the server took for it, so the jobs see the same server
``factor`` times slower. Everything else passes as it is."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Final

import httpx

__all__ = ["SlowingProxy"]

_HOP_BY_HOP: Final = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "content-length", "host", "te", "upgrade"}
)
"""Headers of one connection, not of the request: the proxy sets its own."""
_SEARCH_SUFFIX: Final = "/query"
"""How the path of a Chroma search ends (``.../collections/{id}/query``)."""


class SlowingProxy:
    """Forwards to the Chroma server at ``upstream`` on a free loopback port (``url``);
    ``factor`` (1: as fast as the server) may change while it runs."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.factor = 1.0
        self._client = httpx.Client(timeout=60.0)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="evalkit-drill-proxy", daemon=True
        )

    @property
    def url(self) -> str:
        """Where the jobs reach the server through the proxy."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> SlowingProxy:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._client.close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Forward(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out as two writes: with Nagle's algorithm the body waits
            # for the client's delayed ACK, 40 ms a request, ten times a search's own time.
            disable_nagle_algorithm = True

            def forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {
                    name: value
                    for name, value in self.headers.items()
                    if name.lower() not in _HOP_BY_HOP
                }
                began = time.perf_counter()
                try:
                    answer = proxy._client.request(
                        self.command, proxy.upstream + self.path, content=body, headers=headers
                    )
                except httpx.HTTPError as error:
                    self.reply(502, {"Content-Type": "text/plain"}, str(error).encode())
                    return
                took = time.perf_counter() - began
                if proxy.factor > 1 and self.path.split("?")[0].endswith(_SEARCH_SUFFIX):
                    time.sleep((proxy.factor - 1) * took)
                kept = {
                    name: value
                    for name, value in answer.headers.items()
                    if name.lower() not in _HOP_BY_HOP and name.lower() != "content-encoding"
                }
                self.reply(answer.status_code, kept, answer.content)

            def reply(self, status: int, headers: dict[str, str], body: bytes) -> None:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                self.forward()

            def do_POST(self) -> None:
                self.forward()

            def do_PUT(self) -> None:
                self.forward()

            def do_PATCH(self) -> None:
                self.forward()

            def do_DELETE(self) -> None:
                self.forward()

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Forward
