"""The HTTP JSON endpoint adapter, against a real HTTP server on loopback."""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import httpx
import pytest
from evalkit_in_process import invoke_evalkit
from evalkit_process import fresh_env
from loopback import JSONHandler, serving
from overlap_retriever import overlap_retriever

from evalkit.errors import ConfigError, RetrieverError
from evalkit.goldset.model import Goldset
from evalkit.pipeline import evaluate_goldset
from evalkit.records import Judgment, Query, QueryResult, ScoredDoc
from evalkit.records.requests import GoldsetRunRequest
from evalkit.retrievers import HttpRetriever, Retriever, check_retriever
from evalkit.retrievers.http import (
    HTTP_TOKEN_ENV,
    MalformedResponseError,
    ParsedResponse,
    _retry_after_seconds,
    parse_response,
    parse_results,
)
from evalkit.store import Store
from evalkit.store.runs import run_results

TOKEN = "s3cret-token-value"
CONCURRENCY = 4


class Endpoint:
    """What the test server saw, and the behaviour it plays per query id."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.hits: Counter[str] = Counter()
        self.bodies: list[dict[str, Any]] = []
        self.authorizations: set[str | None] = set()
        self.in_flight = 0
        self.max_in_flight = 0
        self.barrier = threading.Barrier(CONCURRENCY, timeout=10)

    def answer(self, body: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        query_id = str(body["query_id"])
        with self.lock:
            self.hits[query_id] += 1
            attempt = self.hits[query_id]
        ranked = {"results": [{"id": f"{query_id}-d{n}", "score": 1.0 - n / 10} for n in range(5)]}
        if query_id == "flaky" and attempt == 1:
            return 500, {}, b"temporarily broken"
        if query_id == "limited" and attempt == 1:
            return 429, {"Retry-After": "0"}, b"slow down"
        if query_id == "down":
            return 503, {}, f"echo {body.get('auth')}".encode()
        if query_id.startswith("cut-"):  # the token where the error's 200 characters end
            pad = "x" * int(query_id.removeprefix("cut-"))
            return 401, {}, f"{pad} echo {body.get('auth')}".encode()
        if query_id == "slow":
            time.sleep(2.5)
        if query_id == "garbage":
            return 200, {}, b"<html>not json</html>"
        if query_id == "bad-shape":
            return 200, {}, json.dumps({"hits": []}).encode()
        if query_id == "rejected":
            return 400, {}, b"query too long"
        if query_id == "unscored":
            return 200, {}, json.dumps({"results": [{"id": "a"}, {"id": "b"}, {"id": 7}]}).encode()
        if query_id == "tenant":
            return 200, {}, json.dumps({"results": [{"id": str(body["tenant"])}]}).encode()
        if query_id == "rag":
            generated = {
                "results": [
                    {"id": "p1", "score": 0.9, "text": "Passage one."},
                    {"id": "p2", "score": 0.8},
                    {"id": "p3", "score": 0.7, "text": "Passage three."},
                ],
                "answer": "Generated from passages one and three.",
            }
            return 200, {}, json.dumps(generated).encode()
        if query_id == "huge":  # ignores k: every document it has
            many = [{"id": f"d{n}", "score": 1.0} for n in range(2000)]
            return 200, {}, json.dumps({"results": many}).encode()
        if query_id == "bigint":  # valid JSON: a number of 400 digits
            return 200, {}, b'{"results": [{"id": "a", "score": 1' + b"0" * 400 + b"}]}"
        if query_id == "rag-bad":
            return 200, {}, json.dumps({"results": [{"id": "p1"}], "answer": 42}).encode()
        if query_id.startswith("parallel"):
            self.barrier.wait()
        return 200, {}, json.dumps(ranked).encode()


def make_handler(endpoint: Endpoint) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        counted = False  # this request is in endpoint.in_flight

        def do_POST(self) -> None:
            with endpoint.lock:
                endpoint.in_flight += 1
                endpoint.max_in_flight = max(endpoint.max_in_flight, endpoint.in_flight)
            self.counted = True
            try:
                if self.path == "/old":
                    self.reply(307, {"Location": "/search"}, b"")
                    return
                if self.path == "/deep":  # valid JSON nested past the decoder's stack
                    self.rfile.read(int(self.headers["Content-Length"]))
                    nested = b"[" * 100_000 + b"]" * 100_000
                    self.reply(200, {}, b'{"results": ' + nested + b"}")
                    return
                if self.path == "/moved":
                    moved = "https://search.example.com/v2?token=abc"
                    self.reply(301, {"Location": moved}, b"<a href=...>Moved</a>")
                    return
                if self.path != "/search":
                    self.reply(404, {}, b"no such endpoint")
                    return
                length = int(self.headers["Content-Length"])
                body = json.loads(self.rfile.read(length))
                authorization = self.headers.get("Authorization")
                with endpoint.lock:
                    endpoint.bodies.append(body)
                    endpoint.authorizations.add(authorization)
                body["auth"] = authorization
                self.reply(*endpoint.answer(body))
            finally:
                self.answered()

        def answered(self) -> None:
            # before the response is written: once the client has read it, it may send its
            # next request, on a new connection, ahead of this thread's return
            if self.counted:
                self.counted = False
                with endpoint.lock:
                    endpoint.in_flight -= 1

        def reply(self, status: int, headers: dict[str, str], payload: bytes) -> None:
            self.answered()
            try:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up waiting (the timeout test)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def endpoint() -> Iterator[tuple[str, Endpoint]]:
    state = Endpoint()
    with serving(make_handler(state)) as url:
        yield url, state


def make_retriever(url: str, **options: Any) -> HttpRetriever:
    settings: dict[str, Any] = {
        "timeout": 1.0,
        "retries": 2,
        "backoff": 0.01,
        "concurrency": CONCURRENCY,
    }
    settings.update(options)
    return HttpRetriever(f"{url}/search", **settings)


@pytest.mark.slow
def test_failures_are_recorded_per_query_and_the_rest_succeed(
    endpoint: tuple[str, Endpoint], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, state = endpoint
    monkeypatch.setenv(HTTP_TOKEN_ENV, TOKEN)
    ids = ["ok1", "flaky", "down", "slow", "garbage", "limited", "rejected", "ok2", "bad-shape"]
    queries = [Query(id=query_id, text=f"text of {query_id}") for query_id in ids]

    with make_retriever(url) as retriever:
        results = retriever.retrieve(queries, 3)
        description = retriever.describe()

    by_id = {result.query_id: result for result in results}
    assert [result.query_id for result in results] == ids
    for query_id in ("ok1", "ok2", "flaky", "limited"):
        result = by_id[query_id]
        assert result.ok, result.error
        assert result.docs == (
            ScoredDoc(f"{query_id}-d0", 1.0, 1),
            ScoredDoc(f"{query_id}-d1", 0.9, 2),
            ScoredDoc(f"{query_id}-d2", 0.8, 3),
        )
        assert result.latency_ms > 0
    for query_id in ("down", "slow", "garbage", "rejected", "bad-shape"):
        assert by_id[query_id].docs == ()
        assert by_id[query_id].error

    assert by_id["down"].error is not None
    assert by_id["down"].error.startswith("HTTP 503 Service Unavailable")
    assert "after 3 attempts" in by_id["down"].error
    assert TOKEN not in by_id["down"].error
    assert "echo ***" in by_id["down"].error
    assert "timed out after 1 s" in (by_id["slow"].error or "")
    assert "malformed response (HTTP 200)" in (by_id["garbage"].error or "")
    assert '{"results": [' in (by_id["bad-shape"].error or "")
    assert (by_id["rejected"].error or "").startswith("HTTP 400 Bad Request: query too long")

    # retried: 5xx, 429, timeouts; not retried: other 4xx and malformed answers
    assert state.hits == Counter(
        ok1=1, ok2=1, flaky=2, limited=2, down=3, slow=3, garbage=1, rejected=1, **{"bad-shape": 1}
    )
    assert state.authorizations == {f"Bearer {TOKEN}"}
    assert TOKEN not in json.dumps(description)
    assert description["headers"] == ["Authorization"]
    assert description["token_from_env"] is True
    assert description["kind"] == "http"


def test_an_echoed_token_cut_at_the_error_length_is_masked_whole(
    endpoint: tuple[str, Endpoint], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, _ = endpoint
    monkeypatch.setenv(HTTP_TOKEN_ENV, TOKEN)
    # The body's 200 characters end 1, 6 and 17 characters into the token.
    pads = [200 - len(" echo Bearer ") - n for n in (1, 6, 17)]
    queries = [Query(id=f"cut-{pad}", text="q") for pad in pads]
    with make_retriever(url, retries=0) as retriever:
        results = retriever.retrieve(queries, 3)
    for result in results:
        assert result.error is not None
        assert " echo *" in result.error, result.error
        assert TOKEN[:4] not in result.error, result.error


def test_request_shape_tenant_and_k(endpoint: tuple[str, Endpoint]) -> None:
    url, state = endpoint
    queries = [Query(id="tenant", text="who?", tenant="acme"), Query(id="ok", text="five")]
    with make_retriever(url, retries=0) as retriever:
        tenant, five = retriever.retrieve(queries, 2)

    assert tenant.docs == (ScoredDoc("acme", 1.0, 1),)
    assert len(five.docs) == 2
    assert sorted(state.bodies, key=lambda body: body["query_id"]) == [
        {"query": "five", "query_id": "ok", "k": 2, "tenant": None, "auth": None},
        {"query": "who?", "query_id": "tenant", "k": 2, "tenant": "acme", "auth": None},
    ]


def test_missing_scores_follow_the_order(endpoint: tuple[str, Endpoint]) -> None:
    url, _ = endpoint
    with make_retriever(url) as retriever:
        [result] = retriever.retrieve([Query(id="unscored", text="x")], 10)
    assert result.docs == (
        ScoredDoc("a", 1.0, 1),
        ScoredDoc("b", 0.5, 2),
        ScoredDoc("7", 1 / 3, 3),
    )


def test_a_score_too_large_for_a_float_fails_its_query_alone(
    endpoint: tuple[str, Endpoint],
) -> None:
    """An integer score of 400 digits raised OverflowError out of the replay, taking every
    query's results with it."""
    url, state = endpoint
    queries = [Query(id="bigint", text="x"), Query(id="ok", text="x")]
    with make_retriever(url) as retriever:
        big, ok = retriever.retrieve(queries, 10)
    assert big.error == (
        "malformed response (HTTP 200): results[0].score is not finite (an integer too large "
        "for a 64-bit float) (after 1 attempt)"
    )
    assert big.docs == ()
    assert state.hits["bigint"] == 1
    assert ok.ok
    assert [doc.doc_id for doc in ok.docs] == [f"ok-d{n}" for n in range(5)]


def test_requests_run_concurrently_within_the_bound(endpoint: tuple[str, Endpoint]) -> None:
    url, state = endpoint
    queries = [Query(id=f"parallel{n}", text="x") for n in range(3 * CONCURRENCY)]
    with make_retriever(url, timeout=15.0) as retriever:
        results = retriever.retrieve(queries, 1)
    # the server holds every request until CONCURRENCY of them wait together
    assert all(result.ok for result in results), [result.error for result in results]
    assert state.max_in_flight == CONCURRENCY


def test_check_explains_what_is_wrong(endpoint: tuple[str, Endpoint]) -> None:
    url, _ = endpoint
    with make_retriever(url) as good:
        assert isinstance(good, Retriever)
        check_retriever(good)
        assert good.index_fingerprint() is None
        assert good.model_fingerprint() is None

    wrong_path = HttpRetriever(f"{url}/nowhere", retries=0)
    with pytest.raises(RetrieverError, match=r"HTTP 404.*check the path"):
        wrong_path.check()
    wrong_path.close()

    unreachable = HttpRetriever(closed_port_url(), retries=1, backoff=0.01, timeout=1.0)
    with pytest.raises(RetrieverError, match="the service is running"):
        unreachable.check()
    [result] = unreachable.retrieve([Query(id="q", text="x")], 5)
    assert result.error is not None
    assert result.error.startswith("request failed: ConnectError")
    assert "after 2 attempts" in result.error
    unreachable.close()


def test_a_redirect_is_not_followed_and_names_the_url_to_use(
    endpoint: tuple[str, Endpoint],
) -> None:
    url, state = endpoint
    with HttpRetriever(f"{url}/old", retries=2) as temporary:
        with pytest.raises(RetrieverError) as raised:
            temporary.check()
        [result] = temporary.retrieve([Query(id="q", text="x")], 5)
    assert str(raised.value) == (
        f"HTTP retriever at {url}/old does not answer a probe query: HTTP 307 Temporary "
        f"Redirect: redirected to {url}/search; use that URL (redirects are not followed) "
        "(after 1 attempt)"
    )
    assert result.error == (
        f"HTTP 307 Temporary Redirect: redirected to {url}/search; use that URL (redirects "
        "are not followed) (after 1 attempt)"
    )
    assert not state.bodies  # nothing was sent on to the target
    with HttpRetriever(f"{url}/moved", retries=0) as permanent:
        [result] = permanent.retrieve([Query(id="q", text="x")], 5)
    assert result.error == (
        "HTTP 301 Moved Permanently: redirected to https://search.example.com/v2?token=***; "
        "use that URL (redirects are not followed) (after 1 attempt)"
    )


def test_a_deeply_nested_response_is_malformed_for_the_probe_and_every_query(
    endpoint: tuple[str, Endpoint],
) -> None:
    url, _ = endpoint
    with HttpRetriever(f"{url}/deep", retries=2) as deep:
        with pytest.raises(RetrieverError) as raised:
            deep.check()
        [result] = deep.retrieve([Query(id="q", text="x")], 5)
    failure = "malformed response (HTTP 200): nests arrays and objects too deeply to read"
    assert str(raised.value) == (
        f"HTTP retriever at {url}/deep does not answer a probe query: {failure} (after 1 "
        'attempt); the endpoint must answer {"results": [{"id": "<doc id>", "score": <number, '
        'optional>, "text": <string, optional>}, ...], "answer": <string, optional>}'
    )
    assert result.error == f"{failure} (after 1 attempt)"
    assert result.docs == ()


def closed_port_url() -> str:
    """A loopback URL on which nothing listens."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/search"


@pytest.mark.parametrize(
    "options",
    [{"timeout": 0}, {"retries": -1}, {"concurrency": 0}, {"backoff": -0.1}],
)
def test_invalid_settings_are_refused(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        HttpRetriever("http://127.0.0.1:1/search", **options)


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("localhost:8080/search", "must be an http:// or https:// URL"),
        ("http://[::1", "Invalid IPv6 URL"),
        ("http://127.0.0.1:99999/search", "out of range"),
        ("http://user:pa55word@[::1/search", "Invalid IPv6 URL"),
        ("http:///search", "names no host"),
    ],
)
def test_url_must_be_an_http_url_with_a_host_and_a_port_that_can_be(url: str, said: str) -> None:
    """A URL urllib cannot take apart was a traceback (exit 1); it is a setting error."""
    with pytest.raises(ConfigError, match=said) as raised:
        HttpRetriever(url)
    assert "pa55word" not in str(raised.value)


def test_a_malformed_url_is_a_usage_error_with_its_json_error(
    evalkit_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from evalkit.cli import invoke

    goldset = tmp_path / "gs"
    goldset.mkdir()
    (goldset / "queries.jsonl").write_text('{"id": "q1", "text": "a question"}\n')
    (goldset / "judgments.jsonl").write_text('{"query_id": "q1", "doc_id": "d1", "relevance": 1}\n')
    assert invoke(["goldset", "import", str(goldset), "--name", "gs"]) == 0
    capsys.readouterr()
    argv = ["run", "--goldset", "gs", "--http-retriever", "http://[::1", "--format", "json"]
    assert invoke(argv) == 2
    error = json.loads(capsys.readouterr().out)["error"]
    assert "Invalid IPv6 URL" in error["message"]


def test_describe_hides_credentials_in_the_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(HTTP_TOKEN_ENV, raising=False)
    retriever = HttpRetriever(
        "https://user:pa55word@search.example.com:8443/v1/search",
        headers={"X-Api-Key": "key-123456"},
    )
    description = json.dumps(retriever.describe())
    assert "pa55word" not in description
    assert "key-123456" not in description
    assert retriever.describe()["url"] == "https://search.example.com:8443/v1/search"
    assert retriever.describe()["headers"] == ["X-Api-Key"]
    assert retriever.describe()["token_from_env"] is False


def test_credentials_in_the_url_and_a_token_in_the_environment_are_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(HTTP_TOKEN_ENV, TOKEN)
    url = "https://alice:pa55word@search.example.com/v1/search"
    with pytest.raises(ConfigError, match="choose one") as raised:
        HttpRetriever(url)
    assert HTTP_TOKEN_ENV in str(raised.value)
    assert "pa55word" not in str(raised.value)
    assert TOKEN not in str(raised.value)
    # Either alone is as before; a header of its own replaces the token, so it may stay.
    assert HttpRetriever(url, headers={"Authorization": "Basic x"}).describe()["url"]
    monkeypatch.delenv(HTTP_TOKEN_ENV)
    assert HttpRetriever(url).describe()["token_from_env"] is False


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ([], "expected a JSON object"),
        ({"results": {}}, "expected a JSON object"),
        ({"results": ["a"]}, r"results\[0\] is not an object"),
        ({"results": [{"id": None}]}, r"results\[0\]\.id must be a string"),
        ({"results": [{"id": True}]}, r"results\[0\]\.id must be a string"),
        ({"results": [{"id": "a", "score": "high"}]}, "must be a number"),
        ({"results": [{"id": "a", "score": float("nan")}]}, "not finite"),
        (
            {"results": [{"id": "a", "score": 10**400}]},
            r"^results\[0\]\.score is not finite \(an integer too large for a 64-bit float\)$",
        ),
        ({"results": [{"id": "a", "score": 1}, {"id": "b"}]}, "some results have a score"),
        ({"results": [{"id": ""}]}, r"results\[0\]\.id is empty"),
        ({"results": [{"id": "  "}]}, r"results\[0\]\.id is empty"),
        (
            {"results": [{"id": "a", "score": 0.1}, {"id": "b", "score": 0.9}]},
            r"results\[1\]\.score 0\.9 is higher than results\[0\]\.score 0\.1",
        ),
    ],
)
def test_parse_results_rejects_malformed_payloads(payload: Any, message: str) -> None:
    with pytest.raises(MalformedResponseError, match=message):
        parse_results(payload, 10)


def test_a_repeated_id_and_tied_scores_are_kept_for_replay_to_count_once() -> None:
    """A chunk-level endpoint names a document once per chunk; replay keeps the best-ranked
    entry and counts the rest, as for every retriever (docs/retrievers.md)."""
    docs = parse_results(
        {
            "results": [
                {"id": "a", "score": 0.9},
                {"id": "b", "score": 0.9},
                {"id": "a", "score": 0.2},
            ]
        },
        10,
    )
    assert [(d.doc_id, d.rank) for d in docs] == [("a", 1), ("b", 2), ("a", 3)]


def test_a_rag_endpoint_answer_and_passages_reach_the_result(
    endpoint: tuple[str, Endpoint],
) -> None:
    url, _ = endpoint
    queries = [Query(id="rag", text="q"), Query(id="ok", text="q"), Query(id="rag-bad", text="q")]
    with make_retriever(url, retries=0) as retriever:
        rag, plain, bad = retriever.retrieve(queries, 3)

    assert rag.ok
    assert [doc.doc_id for doc in rag.docs] == ["p1", "p2", "p3"]
    assert rag.answer == "Generated from passages one and three."
    assert rag.contexts == ("Passage one.", "Passage three.")
    assert rag.context_ids == ("p1", "p3")
    # A plain retriever's results carry no answer and no passages.
    assert (plain.answer, plain.contexts, plain.context_ids) == (None, (), ())
    assert bad.error is not None
    assert "answer must be a string" in bad.error
    assert bad.answer is None


def test_parse_response_reads_answer_and_passages_within_k() -> None:
    payload = {
        "results": [
            {"id": "a", "text": "alpha"},
            {"id": "b", "text": None},
            {"id": "c", "text": "gamma"},
        ],
        "answer": "",
    }
    assert parse_response(payload, 2) == ParsedResponse(
        docs=(ScoredDoc("a", 1.0, 1), ScoredDoc("b", 0.5, 2)),
        answer="",
        contexts=("alpha",),
        context_ids=("a",),
    )
    assert parse_response({"results": [], "answer": None}, 3) == ParsedResponse(docs=())
    with pytest.raises(MalformedResponseError, match=r"answer must be a string.*list"):
        parse_response({"results": [], "answer": ["x"]}, 3)
    with pytest.raises(MalformedResponseError, match=r"results\[1\]\.text must be a string"):
        parse_response({"results": [{"id": "a"}, {"id": "b", "text": 3}]}, 3)


def test_parse_results_keeps_order_and_cuts_at_k() -> None:
    payload = {
        "results": [{"id": "x", "score": 5}, {"id": "y", "score": 3}, {"id": "z", "score": 9}]
    }
    # Cut at k first: a rising score past the cut is never read.
    assert parse_results(payload, 2) == (ScoredDoc("x", 5.0, 1), ScoredDoc("y", 3.0, 2))
    assert parse_results({"results": []}, 5) == ()


def test_retry_after_accepts_seconds_and_dates() -> None:
    def response(value: str) -> httpx.Response:
        return httpx.Response(429, headers={"Retry-After": value})

    assert _retry_after_seconds(response("2.5")) == 2.5
    assert _retry_after_seconds(response("-3")) == 0.0
    later = datetime.now(UTC) + timedelta(seconds=120)
    assert _retry_after_seconds(response(format_datetime(later, usegmt=True))) == pytest.approx(
        120, abs=5
    )
    assert _retry_after_seconds(response("soon")) is None
    assert _retry_after_seconds(httpx.Response(503)) is None


def test_waits_grow_and_respect_the_cap() -> None:
    retriever = HttpRetriever("http://127.0.0.1:1/x", backoff=0.5, max_retry_wait=3.0)
    for attempt, base in enumerate([0.5, 1.0, 2.0]):
        wait = retriever._wait(attempt, None)
        assert base <= wait <= min(2 * base, 3.0)
    assert retriever._wait(5, None) == 3.0
    assert retriever._wait(0, 100.0) == 3.0
    assert retriever._wait(0, 0.25) == 0.25


def test_a_response_past_the_size_cap_fails_its_query_unread(
    endpoint: tuple[str, Endpoint], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An endpoint that ignores k and answers with everything it has is not read whole by
    every request in flight: past MAX_RESPONSE_BYTES the query fails, saying why."""
    from evalkit.retrievers import http

    monkeypatch.setattr(http, "MAX_RESPONSE_BYTES", 10_000)
    url, state = endpoint
    with make_retriever(url) as retriever:
        huge, fine = retriever.retrieve([Query("huge", "q"), Query("ok", "q")], 3)
    assert huge.error is not None
    assert "response larger than" in huge.error
    assert "answer with at most k results" in huge.error
    assert state.hits["huge"] == 1  # not retried: it would be as large again
    assert fine.ok


def test_a_streamed_body_stops_being_read_at_the_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    from evalkit.retrievers import http

    monkeypatch.setattr(http, "MAX_RESPONSE_BYTES", 10)
    read: list[int] = []

    def chunks() -> Iterator[bytes]:
        for n in range(100):
            read.append(n)
            yield b"12345"

    streamed = httpx.Response(200, content=chunks())
    assert "Content-Length" not in streamed.headers
    later = time.monotonic() + 60
    assert http._capped_body(streamed, later) is None
    assert len(read) == 3  # stopped at the third chunk, the first past 10 bytes
    assert http._capped_body(httpx.Response(200, content=b"[1, 2]"), later) == b"[1, 2]"


class _Trickling(BaseHTTPRequestHandler):
    """Sends its headers at once, then its body a byte every 50 ms (2 s for this body)."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        body = json.dumps({"results": [{"id": "d1", "score": 1.0}], "pad": "x" * 10}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            for byte in body:
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                time.sleep(0.05)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up, as it should

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_a_body_that_trickles_in_past_the_timeout_times_out() -> None:
    """httpx's timeout bounds each read: a body sent a byte at a time took 20 s a query
    under a 10 s timeout, and a slower one could hang a run for ever."""
    with serving(_Trickling) as url, make_retriever(url, timeout=0.5, retries=1) as retriever:
        (result,) = retriever.retrieve([Query("q1", "q")], 3)
    assert result.error is not None
    assert result.error.startswith("timed out after 0.5 s: the response was still arriving")
    assert result.error.endswith("(after 2 attempts)")


class _OwnIds(JSONHandler):
    """Answers every query with ids of its own (chunk ids), none of them the goldset's."""

    def do_POST(self) -> None:
        k = self.read_json()["k"]
        self.send_json(
            {"results": [{"id": f"chunk-{n:04d}", "score": 1 - n / 100} for n in range(k)]}
        )


@pytest.mark.slow
def test_a_run_that_returned_no_judged_document_warns_that_the_ids_may_differ(
    tmp_path: Path,
) -> None:
    """An endpoint naming documents by ids of its own scored 0 on every measure, stored
    complete with nothing to say why; the run now warns, naming an id of each side."""
    demo = str(Path(__file__).resolve().parent.parent / "goldsets" / "demo")

    def run(url: str) -> subprocess.CompletedProcess[str]:
        args = ("run", "--goldset", demo, "--http-retriever", url, "--k", "5", "-m", "ndcg@5")
        return invoke_evalkit(*args, "--format", "json", env=fresh_env(tmp_path / "home"))

    with serving(_OwnIds) as url:
        own = run(f"{url}/search")
    assert own.returncode == 0, own.stderr
    assert json.loads(own.stdout)["status"] == "complete"
    assert (
        "warning: not one of the 645 documents the retriever returned is judged in goldset "
        "demo (it returned ids such as 'chunk-0000'; the goldset judges ids such as 'd0001'), "
        "so every measure is 0."
    ) in " ".join(own.stderr.split())

    with overlap_retriever() as url:
        matching = run(url)
    assert matching.returncode == 0, matching.stderr
    assert "not one of the" not in matching.stderr


class _NotJson(JSONHandler):
    """A 204 with no body under /empty, ``{"results": null}`` under /null; a proxy's HTML
    page, status 200, anywhere else."""

    def do_POST(self) -> None:
        self.read_json()
        if self.path.startswith("/empty/"):
            self.send_response(204)
            self.end_headers()
            return
        if self.path.startswith("/null/"):
            self.send_json({"results": None})
            return
        self.send_body(b"<html><body>Sign in</body></html>", content_type="text/html")


def test_a_body_that_is_not_json_says_what_it_was() -> None:
    """Both failed with "Expecting value: line 1 column 1 (char 0)", which says nothing of
    an empty answer or of an HTML page in place of the endpoint's JSON."""
    with serving(_NotJson) as url:
        with make_retriever(f"{url}/empty") as empty:
            (nothing,) = empty.retrieve([Query("q1", "q")], 3)
        with make_retriever(url) as html:
            (page,) = html.retrieve([Query("q1", "q")], 3)
    assert nothing.error == (
        'malformed response (HTTP 204): the body is empty; answer with a JSON object, {"results": '
        "[]} for no results (after 1 attempt)"
    )
    assert page.error == (
        "malformed response (HTTP 200): the body is not JSON (text/html): <html><body>Sign "
        "in</body></html> (after 1 attempt)"
    )
    assert not nothing.docs
    assert not page.docs


def test_the_probe_names_the_expected_shape_once() -> None:
    """A body of the wrong shape already says what was expected; the probe's hint repeated
    the whole shape after it."""
    with (
        serving(_NotJson) as url,
        make_retriever(f"{url}/null") as wrong,
        pytest.raises(RetrieverError, match="does not answer a probe query") as refused,
    ):
        wrong.check()
    assert str(refused.value).count('{"results": [{"id": "<doc id>"') == 1


CHUNKED = ["a", "a", "a", "b", "c", "d"]
"""A chunk-level ranking: document a's three chunks first, then b, c and d."""


class _Chunks(JSONHandler):
    """Answers every query with ``CHUNKED``, more than k, as an endpoint that ignores k."""

    def do_POST(self) -> None:
        self.read_json()
        self.send_json({"results": [{"id": d, "score": 1 - n / 10} for n, d in enumerate(CHUNKED)]})


class _ChunkHook:
    """The same ranking from a retriever of one's own that also returns more than k."""

    def retrieve(self, queries: Sequence[Query], k: int) -> list[QueryResult]:
        docs = tuple(ScoredDoc(d, 1 - n / 10, n + 1) for n, d in enumerate(CHUNKED))
        return [QueryResult(query.id, docs, 1.0) for query in queries]


def test_repeats_past_k_are_cut_as_the_endpoints_are(store: Store) -> None:
    """At k 3, the endpoint's first 3 entries (a, a, a) were kept, while the same ranking
    from a retriever of one's own had its repeats dropped first and then b and c, from
    positions 4 and 5, were scored as its top 3: two adapters, two figures for one ranking."""
    gold = Goldset.build("chunks", [Query("q1", "refunds")], [Judgment("q1", "b", 1)])
    request = GoldsetRunRequest(k=3, measures=("recall@3",))
    with serving(_Chunks) as url, make_retriever(url) as endpoint:
        served = evaluate_goldset(store, gold, endpoint, request).run
    own = evaluate_goldset(store, gold, _ChunkHook(), request).run
    for run in (served, own):
        assert run_results(store, run.run_id)["doc_id"].tolist() == ["a"]
        assert (run.aggregates["recall@3"], run.n_duplicates) == (0.0, 2)
