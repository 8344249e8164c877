"""The OTLP/HTTP receiver in this process on loopback, fed raw HTTP: hostile and unusual
requests (poison payloads, chunked bodies, short and truncated bodies, slow clients, many
at once) each get an answer and are counted."""

from __future__ import annotations

import gzip
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from google.rpc.status_pb2 import Status
from test_traffic_otlp import POISON_SPANS, genai_retrieval, request, span
from waiting import wait_until

from evalkit.config import Settings
from evalkit.config.otlp import OtlpSettings
from evalkit.traffic.otlp import SpanBatch
from evalkit.traffic.receiver import OtlpReceiver

JSON = "application/json"
MAX_BYTES = 1024 * 1024


def make_receiver(tmp_path: Path, **settings: object) -> OtlpReceiver:
    chosen = OtlpSettings(receiver=True, port=0, **settings)  # type: ignore[arg-type]
    return OtlpReceiver(
        Settings(home=tmp_path, store_path=tmp_path / "evalkit.duckdb", otlp=chosen), port=0
    )


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[OtlpReceiver]:
    started = make_receiver(tmp_path, max_request_bytes=MAX_BYTES)
    started.start()
    yield started
    started.stop(grace=1.0)


def post(receiver: OtlpReceiver, body: bytes, **headers: str) -> httpx.Response:
    return httpx.post(
        receiver.url, content=body, headers={"Content-Type": JSON, **headers}, timeout=30
    )


def raw_exchange(receiver: OtlpReceiver, data: bytes, *, timeout: float = 30.0) -> bytes:
    """Send ``data`` as it is and read the answer until the server closes or answers."""
    with socket.create_connection(("127.0.0.1", receiver.port), timeout=timeout) as conn:
        conn.sendall(data)
        conn.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
        return answer


def head(path: str = "/v1/traces", **headers: str) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Type: {JSON}"]
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def chunked(body: bytes, size: int = 1000) -> bytes:
    parts = [body[i : i + size] for i in range(0, len(body), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in parts) + b"0\r\n\r\n"


def status_of(answer: bytes) -> int:
    assert answer.startswith(b"HTTP/1."), answer[:80]
    return int(answer.split(b" ", 2)[1])


def one_span(span_id: str = "00000000000000b1", text: str = "q") -> bytes:
    return request(span(span_id, genai_retrieval(span_id, text, None)))


# -- poison payloads ----------------------------------------------------------------------


@pytest.mark.parametrize("body", list(POISON_SPANS.values()), ids=list(POISON_SPANS))
def test_a_poison_span_is_answered_with_its_rejection_and_the_rest_spooled(
    receiver: OtlpReceiver, body: bytes
) -> None:
    answer = post(receiver, body)
    assert answer.status_code == 200
    assert answer.json()["partialSuccess"]["rejectedSpans"] == "1"
    assert receiver.counters.value("rejected") == 1


def test_a_failure_of_the_receiver_itself_is_answered_500_and_counted(
    receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(self: SpanBatch, raw: bytes, *, line: int | None = None) -> None:
        raise RecursionError("too deep")

    monkeypatch.setattr(SpanBatch, "add_json", explode)
    answer = post(receiver, one_span())
    assert answer.status_code == 500
    assert receiver.counters.value("internal_error") == 1
    assert post(receiver, one_span()).status_code == 500  # the server still answers


def test_json_nested_too_deeply_is_a_400_not_a_closed_socket(receiver: OtlpReceiver) -> None:
    answer = post(receiver, b"[" * 100_000 + b"]" * 100_000)
    assert answer.status_code == 400
    assert "nested too deeply" in answer.json()["message"]
    assert receiver.counters.value("malformed") == 1


# -- chunked bodies -----------------------------------------------------------------------


def spooled_spans(receiver: OtlpReceiver) -> int:
    return receiver.counters.value("received")


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip"])
def test_a_chunked_body_without_a_content_length_is_read(
    receiver: OtlpReceiver, compress: bool
) -> None:
    body = one_span()
    headers = {"Transfer-Encoding": "chunked"}
    if compress:
        body = gzip.compress(body)
        headers["Content-Encoding"] = "gzip"
    answer = raw_exchange(receiver, head(**headers) + chunked(body, size=100))
    assert status_of(answer) == 200, answer
    assert spooled_spans(receiver) == 1
    wait_until(lambda: receiver.counters.value("stored") == 1, what="the span stored")


def test_a_chunked_body_past_the_bound_is_refused_413(receiver: OtlpReceiver) -> None:
    body = b" " * (MAX_BYTES + 1) + one_span()
    answer = raw_exchange(receiver, head(Transfer_Encoding="chunked") + chunked(body, 65536))
    assert status_of(answer) == 413
    assert receiver.counters.value("too_large") == 1


def test_a_body_somewhat_too_large_is_read_so_the_client_sees_the_413(
    receiver: OtlpReceiver,
) -> None:
    """A client still sending when the connection closed never read the 413 (a broken
    pipe), and an exporter sends a request it sees fail again; the receiver reads a body a
    few times too large before answering."""
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", receiver.port, timeout=30)
    try:
        connection.request(
            "POST", "/v1/traces", body=b" " * (4 * MAX_BYTES), headers={"Content-Type": JSON}
        )
        answer = connection.getresponse()
        assert answer.status == 413
        assert b"exceeds" in answer.read()
    finally:
        connection.close()
    assert receiver.counters.value("too_large") == 1


@pytest.mark.parametrize(
    "encoded",
    [b"zz\r\nabc\r\n0\r\n\r\n", b"10\r\nabc", b"3\r\nabcXY0\r\n\r\n"],
    ids=["size not hex", "cut short", "no CRLF after the data"],
)
def test_a_malformed_chunked_body_is_refused_400(receiver: OtlpReceiver, encoded: bytes) -> None:
    answer = raw_exchange(receiver, head(Transfer_Encoding="chunked") + encoded)
    assert status_of(answer) == 400
    assert receiver.counters.value("malformed") == 1


def test_a_chunked_body_with_extensions_and_trailers_is_read(receiver: OtlpReceiver) -> None:
    body = one_span()
    framed = b"%x;name=value\r\n%s\r\n0\r\nX-Checksum: none\r\n\r\n" % (len(body), body)
    answer = raw_exchange(receiver, head(Transfer_Encoding="chunked") + framed)
    assert status_of(answer) == 200, answer
    assert spooled_spans(receiver) == 1


def test_an_error_answer_to_a_protobuf_request_is_a_google_rpc_status(
    receiver: OtlpReceiver,
) -> None:
    answer = post(receiver, b"\xff\xff\xff", **{"Content-Type": "application/x-protobuf"})
    assert answer.status_code == 400
    assert answer.headers["Content-Type"] == "application/x-protobuf"
    status = Status.FromString(answer.content)
    assert status.code == 3  # INVALID_ARGUMENT
    assert status.message.startswith("not an OTLP protobuf ExportTraceServiceRequest")


def test_a_body_with_neither_length_nor_chunks_is_refused_411(receiver: OtlpReceiver) -> None:
    answer = raw_exchange(receiver, head() + one_span())
    assert status_of(answer) == 411


# -- short, truncated, slow and many requests ---------------------------------------------


def test_a_body_shorter_than_its_content_length_is_refused_400(receiver: OtlpReceiver) -> None:
    body = one_span()
    answer = raw_exchange(receiver, head(Content_Length=str(len(body) + 100)) + body)
    assert status_of(answer) == 400
    assert b"cut short" in answer
    assert receiver.counters.value("malformed") == 1


def test_a_truncated_gzip_body_is_refused_400(receiver: OtlpReceiver) -> None:
    # Cut inside the deflate stream: what arrived inflates, but the stream never ends.
    compressed = gzip.compress(one_span() * 20)[:-30]
    answer = post(receiver, compressed, **{"Content-Encoding": "gzip"})
    assert answer.status_code == 400
    assert "cut short" in answer.json()["message"]
    assert receiver.counters.value("malformed") == 1


def stalled(receiver: OtlpReceiver) -> socket.socket:
    """A connection that sent its headers and half its body, then stalls."""
    body = one_span()
    conn = socket.create_connection(("127.0.0.1", receiver.port), timeout=30)
    conn.sendall(head(Content_Length=str(len(body))) + body[: len(body) // 2])
    return conn


def read_answer(conn: socket.socket) -> bytes:
    answer = b""
    while chunk := conn.recv(65536):
        answer += chunk
    return answer


def test_a_client_that_stalls_mid_body_is_dropped_after_the_timeout(tmp_path: Path) -> None:
    receiver = make_receiver(tmp_path, request_timeout=0.5, max_concurrent_requests=1)
    receiver.start()
    try:
        began = time.monotonic()
        with stalled(receiver) as conn:
            answer = read_answer(conn)
        assert status_of(answer) == 408
        assert time.monotonic() - began < 10
        assert receiver.counters.value("timeout") == 1
        # Its slot is free again.
        assert post(receiver, one_span()).status_code == 200
    finally:
        receiver.stop(grace=1.0)


def test_beyond_the_concurrency_bound_requests_get_503_with_retry_after(tmp_path: Path) -> None:
    receiver = make_receiver(tmp_path, max_concurrent_requests=1)
    receiver.start()
    try:
        with stalled(receiver) as conn:
            wait_until(lambda: receiver._decoding._value == 0, what="the slot taken")
            refused = post(receiver, one_span())
            assert refused.status_code == 503
            assert refused.headers["Retry-After"]
            assert receiver.counters.value("busy") == 1
            conn.sendall(one_span()[len(one_span()) // 2 :])
            conn.shutdown(socket.SHUT_WR)
            assert status_of(read_answer(conn)) == 200
        assert post(receiver, one_span("00000000000000b2")).status_code == 200
    finally:
        receiver.stop(grace=1.0)


def test_a_get_is_answered_405_with_allow_post_and_counted(receiver: OtlpReceiver) -> None:
    answer = httpx.get(receiver.url, timeout=30)
    assert answer.status_code == 405
    assert answer.headers["Allow"] == "POST"
    assert receiver.counters.value("method_not_allowed") == 1
    assert receiver.counters.value("not_found") == 0
