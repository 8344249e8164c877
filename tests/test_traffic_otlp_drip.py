"""A real ``evalkit serve`` receiver against clients that drip their bodies or hang up.

Eight connections with the right token announce a 100,000-byte body and send a byte every
0.3 s: never pausing as long as ``[otlp] request_timeout``, they would hold every receive
slot for as long as they liked. ``[otlp] body_timeout`` bounds the whole body: once it
passes they are answered 408 and their slots freed, so the SDK's exporter gets through
while they still drip. A client that hangs up mid-body is one warning line in the log.
"""

from __future__ import annotations

import signal
import socket
import struct
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from opentelemetry.sdk.trace.export import SpanExportResult
from test_scheduler_support import (  # noqa: F401  (fixture)
    popen_serve,
    serves_fixture,
    wait_until,
)
from test_traffic_otlp_serve import TOKEN, App, Home, Serve, exporter, receiver_home, wait_for_serve

pytestmark = pytest.mark.slow

DRIPPERS = 8
BODY_TIMEOUT = 2.0
DRIP_EVERY = 0.3


@pytest.fixture
def home(tmp_path: Path) -> Home:
    return receiver_home(
        tmp_path,
        'request_timeout = "10s"\n'
        f'body_timeout = "{BODY_TIMEOUT:g}s"\n'
        f"max_concurrent_requests = {DRIPPERS}\n",
    )


def headers(length: int) -> bytes:
    return (
        "POST /v1/traces HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {TOKEN}\r\nContent-Length: {length}\r\n\r\n"
    ).encode()


class Dripper:
    """A connection sending its announced 100,000 bytes one byte at a time."""

    def __init__(self, port: int) -> None:
        self.conn = socket.create_connection(("127.0.0.1", port), timeout=60)
        self.conn.sendall(headers(100_000) + b"{")
        self.answer = b""
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._drip, daemon=True)
        self.thread.start()

    def _drip(self) -> None:
        try:
            while not self.stop.wait(DRIP_EVERY):
                self.conn.sendall(b" ")
        except OSError:
            pass  # the receiver answered and closed the connection

    def read_answer(self) -> bytes:
        while chunk := self.conn.recv(65536):
            self.answer += chunk
        return self.answer

    def close(self) -> None:
        self.stop.set()
        self.conn.close()


def hang_up_mid_body(port: int) -> None:
    """Announce a body, send part of it, and reset the connection."""
    conn = socket.create_connection(("127.0.0.1", port), timeout=30)
    conn.sendall(headers(5000) + b'{"resourceSpans": [')
    time.sleep(0.3)
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


def test_drippers_are_answered_408_at_the_deadline_and_exporters_get_through(
    home: Home, serves: list[Serve]
) -> None:
    popen = popen_serve(home.root / "serve.log", home.env, home.root)
    serve = wait_for_serve(home, Serve(popen, "", home.root / "serve.log"))
    serves.append(serve)
    app = App("acme", "genai")
    app.retrieve("how do I reset my password", at=datetime.now(UTC), record_text=True, answer=False)

    began = time.monotonic()
    drippers = [Dripper(home.port) for _ in range(DRIPPERS)]
    try:
        # Every slot is taken: a request now is refused as busy.
        def refused_busy() -> bool:
            answer = httpx.post(
                home.traces_url,
                content=b"{}",
                headers={"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"},
                timeout=10,
            )
            return answer.status_code == 503

        wait_until(refused_busy, timeout=BODY_TIMEOUT, what="the drippers to hold every slot")

        # The SDK exporter retries 503s; the slots free at the deadline, while they drip on.
        result = exporter(home, gzip_it=False).export(app.spans())
        assert result is SpanExportResult.SUCCESS
        assert time.monotonic() - began < BODY_TIMEOUT + 8
        for dripper in drippers:
            answer = dripper.read_answer()
            assert answer.startswith(b"HTTP/1.0 408") or answer.startswith(b"HTTP/1.1 408")
            assert b"body_timeout" in answer
    finally:
        for dripper in drippers:
            dripper.close()

    hang_up_mid_body(home.port)
    served = httpx.get(f"{serve.url}/metrics", timeout=10).text
    assert f'evalkit_otlp_requests_total{{result="timeout"}} {DRIPPERS}.0' in served
    wait_until(lambda: "hung up" in serve.log.read_text(), timeout=30, what="the hang-up logged")
    serve.process.send_signal(signal.SIGTERM)
    assert serve.process.wait(timeout=90) == 0

    log = serve.log.read_text()
    assert "Traceback" not in log
    assert " ERROR " not in log
    hung_up = [line for line in log.splitlines() if "hung up" in line]
    assert len(hung_up) == 1, log
    assert " WARNING " in hung_up[0]
