"""Real loopback servers and helpers for the scheduler and alert tests, and their own tests.

- ``Receiver``: a webhook receiver that records every request, verifies its HMAC signature
  as a real receiver would, and can be told to fail (an HTTP status), to refuse every
  payload about one subject (a status and a JSON reason), or be stopped and started again
  on the same port;
- ``FakeRetriever``: an HTTP retriever endpoint whose answers are good (3 relevant
  documents in the top 10), bad (1) or held until released (to catch a job mid-run);
- ``serve_command``: the command line that runs ``evalkit serve`` in a child process.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
from loopback import running
from waiting import wait_until  # noqa: F401  (moved to waiting.py; still imported from here)

from evalkit.alerts.payload import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign, verify_signature
from evalkit.goldset.model import Goldset
from evalkit.records import Judgment, Query

SECRET = "whsec-test-0123456789abcdef"
N_QUERIES = 30


def evalkit_command(*args: str) -> list[str]:
    """The argv that runs ``evalkit ARGS`` in a child process."""
    return [sys.executable, "-m", "evalkit", *args]


def popen_serve(log: Path, env: dict[str, str], cwd: Path) -> subprocess.Popen[bytes]:
    """``evalkit serve --log-level info`` in a child process, its output appended to ``log``."""
    with log.open("ab") as sink:
        return subprocess.Popen(
            evalkit_command("serve", "--log-level", "info"),
            env=env,
            cwd=cwd,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )


def free_port() -> int:
    """A loopback TCP port nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# -- webhook receiver ---------------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    """One request the receiver got, and what it answered."""

    path: str
    headers: dict[str, str]
    body: bytes
    status: int
    signature_valid: bool

    @property
    def payload(self) -> dict[str, Any]:
        """The decoded JSON body."""
        data: dict[str, Any] = json.loads(self.body)
        return data


class Receiver:
    """A webhook receiver on loopback (see the module docstring)."""

    def __init__(self, *, secret: str | None = SECRET, port: int = 0) -> None:
        self.secret = secret
        self.fail_with: int | None = None
        self.retry_after: str | None = None
        self.refuse: dict[str, int] = {}
        """Subject -> the status answered to every payload about it, with a JSON reason."""
        self.requests: list[Received] = []
        self.lock = threading.Lock()
        self.port = port or free_port()
        self._serving = ExitStack()

    @property
    def url(self) -> str:
        """Where it listens."""
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> Receiver:
        """Listen (again) on the same port."""
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                headers = {key.lower(): value for key, value in self.headers.items()}
                valid = receiver.secret is not None and verify_signature(
                    body,
                    secret=receiver.secret,
                    timestamp=headers.get(TIMESTAMP_HEADER.lower()),
                    signature=headers.get(SIGNATURE_HEADER.lower()),
                )
                subject = json.loads(body).get("subject")
                refused = receiver.refuse.get(subject) if receiver.fail_with is None else None
                status = receiver.fail_with or refused or 200
                with receiver.lock:
                    receiver.requests.append(Received(self.path, headers, body, status, valid))
                answer = (
                    json.dumps({"error": f"no alerts about {subject}"}).encode()
                    if refused
                    else b"ok"
                )
                self.send_response(status)
                if receiver.fail_with and receiver.retry_after is not None:
                    self.send_header("Retry-After", receiver.retry_after)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._serving.enter_context(running(Handler, port=self.port))
        return self

    def stop(self) -> None:
        """Stop listening (connections are then refused)."""
        self._serving.close()

    def accepted(self) -> list[Received]:
        """Requests answered with a 2xx, in arrival order."""
        with self.lock:
            return [request for request in self.requests if 200 <= request.status < 300]

    def all(self) -> list[Received]:
        """Every request, in arrival order."""
        with self.lock:
            return list(self.requests)


@pytest.fixture(name="serves")
def serves_fixture() -> Iterator[list[Any]]:
    """Started ``evalkit serve`` children (each with its ``process``); any still running at
    the end of the test are killed."""
    started: list[Any] = []
    yield started
    for serve in started:
        if serve.process.poll() is None:
            serve.process.kill()
            serve.process.wait(timeout=30)


@pytest.fixture(name="receiver")
def receiver_fixture() -> Iterator[Receiver]:
    """A running webhook receiver, signing secret ``SECRET``."""
    server = Receiver().start()
    yield server
    server.stop()


# -- fake HTTP retriever ------------------------------------------------------------------


def relevant(query_id: str) -> list[str]:
    """The judged-relevant documents of a synthetic query."""
    return [f"{query_id}-rel{i}" for i in range(3)]


def ranking(query_id: str, mode: str) -> list[str]:
    """Ten ranked documents: three relevant ones first (good) or one relevant last (bad)."""
    fillers = [f"{query_id}-x{i}" for i in range(9)]
    if mode == "good":
        return relevant(query_id) + fillers[:7]
    return fillers + relevant(query_id)[:1]


class FakeRetriever:
    """An HTTP retriever endpoint on loopback; ``mode`` is good, bad or hold.

    Connectivity probes (query ``evalkit-check``) are answered at once and not counted.
    """

    def __init__(self) -> None:
        self.mode = "good"
        self.release = threading.Event()
        self.hits = 0
        self.lock = threading.Lock()
        retriever = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                probe = body["query_id"] == "evalkit-check"
                with retriever.lock:
                    retriever.hits += 0 if probe else 1
                    mode = "good" if probe else retriever.mode
                if mode == "hold":
                    retriever.release.wait(timeout=60)
                    mode = "good"
                docs = ranking(str(body["query_id"]), mode)
                payload = json.dumps(
                    {"results": [{"id": d, "score": 1.0 - i / 20} for i, d in enumerate(docs)]}
                ).encode()
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client process was killed while we held its request

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._serving = ExitStack()
        self.url = f"{self._serving.enter_context(running(Handler)).url}/search"

    def close(self) -> None:
        """Release held requests and stop."""
        self.release.set()
        self._serving.close()


@pytest.fixture(name="retriever")
def retriever_fixture() -> Iterator[FakeRetriever]:
    """A running fake HTTP retriever."""
    server = FakeRetriever()
    yield server
    server.close()


# -- store --------------------------------------------------------------------------------


def make_goldset(n: int = N_QUERIES, name: str = "gs") -> Goldset:
    """``n`` queries with three relevant documents each."""
    queries = [Query(id=f"q{i:02d}", text=f"question number {i}") for i in range(n)]
    judgments = [Judgment(q.id, doc, 1) for q in queries for doc in relevant(q.id)]
    return Goldset.build(name, queries, judgments, source="synthetic")


def store_text(path: Path) -> str:
    """Every value of every table of the store, as one text (to search for secrets)."""
    import duckdb

    con = duckdb.connect(str(path), read_only=True)
    try:
        tables = [
            row[0] for row in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()
        ]
        return "\n".join(
            repr(con.execute(f'SELECT * FROM "{table}"').fetchall()) for table in tables
        )
    finally:
        con.close()


# -- tests of the helpers themselves -------------------------------------------------------


def test_receiver_accepts_only_bodies_signed_with_its_secret(receiver: Receiver) -> None:
    import httpx

    body = b'{"status":"firing"}'
    now = int(time.time())
    good = {TIMESTAMP_HEADER: str(now), SIGNATURE_HEADER: sign(body, SECRET, now)}
    forged = {TIMESTAMP_HEADER: str(now), SIGNATURE_HEADER: sign(body, "another-secret", now)}
    stale = {TIMESTAMP_HEADER: str(now - 3600), SIGNATURE_HEADER: sign(body, SECRET, now - 3600)}
    for headers in (good, forged, stale, {}):
        httpx.post(receiver.url, content=body, headers=headers, timeout=5)
    httpx.post(receiver.url, content=body + b" ", headers=good, timeout=5)
    assert [r.signature_valid for r in receiver.all()] == [True, False, False, False, False]


def test_fake_retriever_rankings_differ_in_precision() -> None:
    good = ranking("q01", "good")
    bad = ranking("q01", "bad")
    assert len(good) == len(bad) == 10
    assert sum(d in relevant("q01") for d in good) == 3
    assert sum(d in relevant("q01") for d in bad) == 1
