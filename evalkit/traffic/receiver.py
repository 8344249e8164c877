"""The OTLP/HTTP receiver of ``evalkit serve``: ``POST /v1/traces`` into the traffic tables.

A listener of its own (``[otlp] host:port``), beside the health endpoint. A request is
answered 200 once its batch, mapped and redacted, is in the spool (``evalkit.traffic.spool``),
so a ``kill -9`` after the answer loses nothing and a job holding the store never makes the
receiver refuse traffic; the committer moves batches into the store when it is free. A full
or unwritable spool answers 503 with ``Retry-After``. Every request is answered (an
unforeseen payload is a 400, never a closed socket). Status codes and ``/metrics``:
docs/traffic.md, "Receiving spans".
"""

from __future__ import annotations

import hmac
import io
import logging
import os
import sys
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler
from typing import Any, cast
from urllib.parse import urlsplit

import h11
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from evalkit.config import Settings
from evalkit.config.otlp import OtlpSettings
from evalkit.errors import ConfigError
from evalkit.net import ServiceHTTPServer, http_url, is_loopback, listening
from evalkit.store.access import StoreAccess
from evalkit.traffic.committer import SpoolCommitter
from evalkit.traffic.otlp import (
    OtlpPayloadError,
    PreparedSpans,
    SpanBatch,
    SpanIngest,
    SpanMapping,
    prepare_spans,
)
from evalkit.traffic.otlp_wire import (
    INTERNAL,
    INVALID_ARGUMENT,
    JSON,
    PROTOBUF,
    UNAUTHENTICATED,
    UNAVAILABLE,
    decode_protobuf,
    export_response,
    protobuf_available,
    status_body,
)
from evalkit.traffic.redaction import Redaction
from evalkit.traffic.spool import (
    SPOOL_SUFFIX,
    Spool,
    SpoolFullError,
    SpoolStatus,
    SpoolWriteError,
    new_request_id,
)

__all__ = ["TRACES_PATH", "OtlpReceiver", "ReceiverCounters"]

TRACES_PATH = "/v1/traces"
"""The OTLP/HTTP path of trace exports."""

_log = logging.getLogger("evalkit.otlp")
_RETRY_AFTER_SECONDS = 2
_READ_SIZE = 64 * 1024
_DRAINED_BODY_FACTOR = 4
"""A body over ``max_request_bytes`` but at most this many times it is read and dropped
before the 413 (so the client reads the answer); a larger one is not read at all."""
# What a chunked body is framed as for h11: the request line and headers were read already.
_CHUNKED_HEAD = b"POST / HTTP/1.1\r\nHost: evalkit\r\nTransfer-Encoding: chunked\r\n\r\n"
_RESULTS = (
    "accepted",
    "malformed",
    "unauthorized",
    "not_found",
    "length_required",
    "too_large",
    "unsupported",
    "spool_full",
    "spool_error",
    "unavailable",
    "internal_error",
    "busy",
    "timeout",
    "method_not_allowed",
)
_SPAN_COUNTERS = {
    "received": "Spans in accepted OTLP requests.",
    "stored": "Retrieval spans stored as new traffic records.",
    "duplicate": "Retrieval spans already stored (sent again).",
    "without_text": "Retrieval spans that recorded no query text.",
    "rejected": "Spans that could not be read (partial success).",
    "ignored": "Spans neither retrieval nor generation.",
}


class _RefusedError(Exception):
    """A request refused before its payload is read: the HTTP ``status`` (408 a stalled
    body, 411 no length, 413 too large, 415 a content type or encoding not read) and the
    ``result`` it is counted under."""

    def __init__(self, status: int, result: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.result = result


def _too_large(message: str) -> _RefusedError:
    return _RefusedError(413, "too_large", message)


def _unsupported(message: str) -> _RefusedError:
    return _RefusedError(415, "unsupported", message)


def _length_required(message: str) -> _RefusedError:
    return _RefusedError(411, "length_required", message)


class ReceiverCounters(Collector):
    """The receiver's counters and its spool's figures, collected into ``/metrics``."""

    def __init__(self, spool_status: Callable[[], SpoolStatus] | None = None) -> None:
        self._lock = threading.Lock()
        self._spans: Counter[str] = Counter()
        self._requests: Counter[str] = Counter()
        self._committed = 0
        self._spool_status = spool_status

    def request(self, result: str) -> None:
        """Count one request by its result."""
        with self._lock:
            self._requests[result] += 1

    def accepted(self, prepared: PreparedSpans) -> None:
        """Count the spans of one accepted (spooled) request."""
        with self._lock:
            self._spans.update(
                received=prepared.spans,
                without_text=prepared.without_text,
                rejected=prepared.rejected,
                ignored=prepared.ignored,
            )

    def committed(self, outcome: SpanIngest) -> None:
        """Count what became of one committed batch's retrieval spans."""
        with self._lock:
            self._committed += 1
            self._spans.update(stored=outcome.stored, duplicate=outcome.duplicates)

    def value(self, name: str) -> int:
        """A span counter (``received``, ``stored``...) or a request result's count."""
        with self._lock:
            return self._spans[name] if name in _SPAN_COUNTERS else self._requests[name]

    def describe(self) -> list[Metric]:
        """Nothing up front: the figures are read at each scrape."""
        return []

    def collect(self) -> Iterable[Metric]:
        """The counters now."""
        with self._lock:
            spans = Counter(self._spans)
            requests = Counter(self._requests)
            committed = self._committed
        families: list[Metric] = []
        for name, help_text in _SPAN_COUNTERS.items():
            family = CounterMetricFamily(f"evalkit_otlp_spans_{name}", help_text)
            family.add_metric([], float(spans[name]))
            families.append(family)
        by_result = CounterMetricFamily(
            "evalkit_otlp_requests", "OTLP/HTTP requests by result.", labels=["result"]
        )
        for result in _RESULTS:
            by_result.add_metric([result], float(requests[result]))
        families.append(by_result)
        commits = CounterMetricFamily(
            "evalkit_otlp_spool_committed", "Spooled batches committed to the store."
        )
        commits.add_metric([], float(committed))
        families.append(commits)
        if self._spool_status is not None:
            status = self._spool_status()
            for name, value, help_text in (
                ("batches", status.batches, "Batches waiting in the spool for the store."),
                ("bytes", status.bytes, "Bytes waiting in the spool for the store."),
                ("max_bytes", status.max_bytes, "The spool's bound ([otlp] spool_max_bytes)."),
                ("lag_seconds", status.lag_seconds, "Age of the oldest spooled batch (0: none)."),
            ):
                gauge = GaugeMetricFamily(f"evalkit_otlp_spool_{name}", help_text)
                gauge.add_metric([], float(value))
                families.append(gauge)
            aside = CounterMetricFamily(
                "evalkit_otlp_spool_set_aside",
                "Spool files set aside: torn (a write cut short, removed), corrupt (kept), "
                "failed (refused by the store, kept).",
                labels=["reason"],
            )
            aside.add_metric(["torn"], float(status.torn))
            aside.add_metric(["corrupt"], float(status.corrupt))
            aside.add_metric(["failed"], float(status.failed))
            families.append(aside)
        return families


class _Server(ServiceHTTPServer):
    receiver: OtlpReceiver

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up (while its headers are read, or as the connection is
        flushed) is one warning line; anything else is logged with its traceback, on the
        service's log rather than bare stderr."""
        failure = sys.exc_info()[1]
        if isinstance(failure, _HANG_UPS):
            _log_hang_up(client_address, failure)
        else:
            _log.exception("otlp: unexpected failure on a connection from %s", client_address)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "evalkit-otlp"
    answered = False
    body_deadline = float("inf")

    def setup(self) -> None:
        """Bound every read of the connection: a stalled client cannot hold its thread."""
        super().setup()
        self.connection.settimeout(self.server.receiver.settings.request_timeout)

    def do_POST(self) -> None:
        """``POST /v1/traces``."""
        self.server.receiver.handle(self)

    def do_GET(self) -> None:
        """Only POST is served; say where."""
        self.server.receiver.refuse(
            self,
            405,
            "method_not_allowed",
            f"POST OTLP trace exports to {TRACES_PATH}",
            JSON,
            headers={"Allow": "POST"},
        )

    def log_message(self, format: str, *args: Any) -> None:
        """Requests are logged at debug level only."""
        _log.debug("otlp http %s", format % args)


class OtlpReceiver:
    """The OTLP/HTTP listener (see the module docstring); ``counters`` go to /metrics."""

    def __init__(
        self,
        settings: Settings,
        *,
        host: str | None = None,
        port: int | None = None,
    ) -> None:
        otlp = settings.otlp
        store_path = settings.resolved_store_path
        self.settings = otlp
        self.mapping = SpanMapping(
            tenant_attribute=otlp.tenant_attribute or None,
            document_id_keys=tuple(otlp.document_id_keys),
        )
        self._token = _token(otlp)
        self._redaction = Redaction.build(
            patterns=otlp.redact, custom=otlp.redact_pattern, drop=otlp.drop
        )
        self.spool = Spool(
            store_path.with_name(store_path.name + SPOOL_SUFFIX),
            max_bytes=otlp.spool_max_bytes,
        )
        self.counters = ReceiverCounters(self.spool.status)
        self._stopping = threading.Event()
        self._inflight = 0
        self._inflight_lock = threading.Condition()
        self._decoding = threading.BoundedSemaphore(otlp.max_concurrent_requests)
        access = StoreAccess.from_settings(
            settings, program="evalkit serve", wait_as="ingest", on_wait=_log.debug
        )
        self._committer = SpoolCommitter(
            self.spool, access, self.counters.committed, self._stopping
        )
        self.host = host or otlp.host
        chosen = otlp.port if port is None else port
        self._server = listening(
            _Server,
            self.host,
            chosen,
            _Handler,
            what="the OTLP receiver",
            settings=("[otlp] host", "[otlp] port"),
        )
        self._server.receiver = self
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="evalkit-otlp", daemon=True
        )
        if not is_loopback(self.host) and self._token is None:
            _log.warning(
                "the OTLP receiver listens on %s without a bearer token ([otlp] token_env): "
                "anyone who reaches it can write traffic",
                self.host,
            )

    @property
    def url(self) -> str:
        """``http://host:port/v1/traces``."""
        return http_url(self.host, self.port, TRACES_PATH)

    def start(self) -> None:
        """Recover the spool (its batches are committed first), then start receiving."""
        recovery = self.spool.recover()
        if recovery.torn:
            _log.warning(
                "otlp: removed %d spool file(s) whose write was cut short (never acknowledged): %s",
                len(recovery.torn),
                ", ".join(recovery.torn),
            )
        if recovery.batches:
            _log.info(
                "otlp: %d batch(es) (%d bytes) left in the spool %s are committed first",
                recovery.batches,
                recovery.bytes,
                self.spool.directory,
            )
        self._committer.start()
        self._thread.start()

    def stop(self, *, grace: float = 10.0) -> None:
        """Stop accepting requests, let those in flight finish and commit what the spool
        holds while the store can be had (up to ``grace`` seconds, then the batch under way
        is finished and the rest left for the next start). Safe after a ``start`` that
        failed: only what was started is stopped."""
        if self._thread.ident is not None:
            # shutdown() waits for serve_forever to acknowledge: it would wait forever.
            self._server.shutdown()
        deadline = time.monotonic() + grace
        with self._inflight_lock:
            while self._inflight and time.monotonic() < deadline:
                self._inflight_lock.wait(0.1)
        self._stopping.set()
        if self._committer.started:
            self._committer.close(grace=max(0.0, deadline - time.monotonic()) + 1.0)
        self._server.server_close()

    def status(self) -> dict[str, Any]:
        """The spool and the committer, for ``/healthz``."""
        return {
            "url": self.url,
            "spool": str(self.spool.directory),
            **self.spool.status().to_dict(),
            "last_commit": (
                None
                if self._committer.last_commit is None
                else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self._committer.last_commit))
            ),
            "commit_error": self._committer.last_error,
        }

    # -- one request ----------------------------------------------------------------------

    def handle(self, request: _Handler) -> None:
        """Answer one POST (runs on the request's own thread)."""
        with self._inflight_lock:
            self._inflight += 1
        try:
            self._handle(request)
        except _HANG_UPS as error:
            request.close_connection = True
            _log_hang_up(request.client_address, error)
        except OtlpPayloadError as error:
            # A payload no check foresaw: still an answer, so the exporter does not retry it.
            self._backstop(request, 400, "malformed", str(error), INVALID_ARGUMENT)
        except Exception as error:
            _log.exception("otlp: unexpected failure answering a request")
            message = f"internal error: {type(error).__name__}; send it again later"
            self._backstop(request, 500, "internal_error", message, INTERNAL)
        finally:
            with self._inflight_lock:
                self._inflight -= 1
                self._inflight_lock.notify_all()

    def _backstop(
        self, request: _Handler, status: int, result: str, message: str, code: int
    ) -> None:
        if request.answered:
            request.close_connection = True
            return
        request.close_connection = True
        self.refuse(request, status, result, message, JSON, code=code)

    def _handle(self, request: _Handler) -> None:
        content_type = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        # Without the `otlp` extra no protobuf can be written: errors are answered in JSON.
        protobuf = content_type == PROTOBUF and protobuf_available()
        reply_type = PROTOBUF if protobuf else JSON
        if urlsplit(request.path).path.rstrip("/") != TRACES_PATH:
            message = f"POST trace exports to {TRACES_PATH}"
            self.refuse(request, 404, "not_found", message, reply_type)
            return
        if self._token is not None and not _authorized(
            request.headers.get("Authorization", ""), self._token
        ):
            self.refuse(
                request,
                401,
                "unauthorized",
                "missing or wrong bearer token (Authorization: Bearer ...)",
                reply_type,
                code=UNAUTHENTICATED,
                headers={"WWW-Authenticate": 'Bearer realm="evalkit"'},
            )
            return
        if self._stopping.is_set():
            self._unavailable(request, "evalkit serve is stopping", reply_type)
            return
        if not self._decoding.acquire(blocking=False):
            # The body stays unread: the connection cannot carry another request.
            request.close_connection = True
            message = "too many requests are being received at once"
            self._unavailable(request, message, reply_type, result="busy")
            return
        try:
            self._receive(request, content_type, reply_type)
        finally:
            self._decoding.release()

    def _receive(self, request: _Handler, content_type: str, reply_type: str) -> None:
        try:
            batch = self._decode(self._body(request), content_type)
        except _RefusedError as refusal:
            self.refuse(request, refusal.status, refusal.result, str(refusal), reply_type)
            return
        except OtlpPayloadError as error:
            self.refuse(request, 400, "malformed", str(error), reply_type)
            return
        request_id = new_request_id()
        # The problems are stored with the request's id: a batch committed twice adds none.
        batch.problems = [(line, f"request {request_id}: {text}") for line, text in batch.problems]
        prepared = prepare_spans(batch, self._redaction)
        if prepared.records.num_rows or prepared.generations.num_rows or prepared.problems:
            try:
                self.spool.append(prepared, request_id=request_id)
            except SpoolFullError as error:
                self._unavailable(request, str(error), reply_type, result="spool_full")
                return
            except SpoolWriteError as error:
                self._unavailable(request, str(error), reply_type, result="spool_error")
                return
            self._committer.wake()
        self.counters.request("accepted")
        self.counters.accepted(prepared)
        _send(request, 200, export_response(prepared, reply_type), reply_type)

    def _decode(self, body: bytes, content_type: str) -> SpanBatch:
        """The spans of a request body of ``content_type``."""
        batch = SpanBatch(self.mapping)
        if content_type == PROTOBUF:
            try:
                request = decode_protobuf(body)
            except ConfigError as error:
                # The protobuf decoder needs the `otlp` extra; JSON works without it.
                raise _unsupported(str(error)) from None
            batch.add_protobuf(request)
        elif content_type == JSON:
            batch.add_json(body)
        else:
            raise _unsupported(f"Content-Type must be {PROTOBUF} or {JSON}")
        return batch

    def _body(self, request: _Handler) -> bytes:
        limit = self.settings.max_request_bytes
        request.body_deadline = time.monotonic() + self.settings.body_timeout
        transfer = request.headers.get("Transfer-Encoding")
        length_header = request.headers.get("Content-Length")
        if transfer is not None:
            # Node.js exporters send chunked bodies without a Content-Length.
            if transfer.strip().lower() != "chunked":
                request.close_connection = True
                raise _unsupported(
                    f"Transfer-Encoding {transfer!r} is not read; send chunked or a Content-Length"
                )
            return self._decoded(request, _read_chunked(request, limit), limit)
        if length_header is None:
            raise _length_required("a Content-Length or chunked Transfer-Encoding is required")
        try:
            length = int(length_header)
        except ValueError:
            raise _length_required("Content-Length must be a number of bytes") from None
        if length < 0:
            raise _length_required("Content-Length must be a number of bytes")
        if length > limit:
            request.close_connection = True
            if length <= _DRAINED_BODY_FACTOR * limit:
                # Read (and drop) a body a few times too large before answering: a client
                # still sending when the connection closes never reads the 413, sees a
                # transport error and sends the same request again.
                _discard(request, length)
            raise _too_large(f"the request body of {length} bytes exceeds {limit} bytes")
        body = _read(request, length)
        if len(body) != length:
            request.close_connection = True
            raise OtlpPayloadError(
                f"the request body is cut short: {len(body)} of {length} bytes arrived"
            )
        return self._decoded(request, body, limit)

    def _decoded(self, request: _Handler, body: bytes, limit: int) -> bytes:
        encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
        if encoding in ("", "identity"):
            return body
        if encoding == "gzip":
            return _inflate(body, zlib.MAX_WBITS | 16, limit)
        if encoding == "deflate":
            return _inflate(body, zlib.MAX_WBITS, limit)
        raise _unsupported(f"Content-Encoding {encoding!r} is not read; send gzip, deflate or none")

    def _unavailable(
        self, request: _Handler, reason: str, reply_type: str, *, result: str = "unavailable"
    ) -> None:
        self.refuse(
            request,
            503,
            result,
            f"{reason}; nothing of this request was stored, send it again",
            reply_type,
            code=UNAVAILABLE,
            headers={"Retry-After": str(_RETRY_AFTER_SECONDS)},
        )

    def refuse(
        self,
        request: _Handler,
        status: int,
        result: str,
        message: str,
        reply_type: str,
        *,
        code: int = INVALID_ARGUMENT,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Answer with an error status and a google.rpc.Status body; count it."""
        self.counters.request(result)
        if status >= 500:
            _log.warning("otlp: %d %s", status, message)
        else:
            _log.info("otlp: refused a request (%d): %s", status, message)
        _send(request, status, status_body(code, message, reply_type), reply_type, headers)


def _token(settings: OtlpSettings) -> str | None:
    if settings.token_env is None:
        return None
    value = os.environ.get(settings.token_env, "")
    if not value:
        raise ConfigError(
            f"[otlp] token_env names {settings.token_env}, which is not set: set it to the "
            "bearer token exporters send, or remove token_env"
        )
    return value


def _authorized(header: str, token: str) -> bool:
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), token.encode())


def _discard(request: _Handler, size: int) -> None:
    """Read ``size`` bytes of the body, keeping none (a refused body a client is sending)."""
    wanted = size
    while wanted > 0 and (chunk := _received(request, min(wanted, _READ_SIZE))):
        wanted -= len(chunk)


def _read(request: _Handler, size: int) -> bytes:
    """``size`` bytes of the body, fewer when the stream ends first (see ``_received``)."""
    parts: list[bytes] = []
    wanted = size
    while wanted > 0 and (chunk := _received(request, wanted)):
        parts.append(chunk)
        wanted -= len(chunk)
    return b"".join(parts)


def _received(request: _Handler, size: int) -> bytes:
    """What has arrived of the body, up to ``size`` bytes and at least one (none: the
    stream ended); a 408 refusal when the client pauses longer than ``request_timeout`` or
    the body is not all there by the request's ``body_deadline``.

    Each call takes at most one receive, so the deadline is checked between the bytes of a
    client that sends them one at a time.
    """
    settings = request.server.receiver.settings
    left = request.body_deadline - time.monotonic()
    if left <= 0:
        raise _body_timeout(request, settings.body_timeout)
    request.connection.settimeout(min(settings.request_timeout, left))
    # StreamRequestHandler's rfile is a BufferedReader (rbufsize -1): read1 is one receive.
    reader = cast(io.BufferedReader, request.rfile)
    try:
        return reader.read1(size)
    except TimeoutError:
        if time.monotonic() >= request.body_deadline:
            raise _body_timeout(request, settings.body_timeout) from None
        request.close_connection = True
        raise _RefusedError(
            408,
            "timeout",
            "the request body did not arrive within "
            f"{settings.request_timeout:g} s ([otlp] request_timeout)",
        ) from None


def _body_timeout(request: _Handler, seconds: float) -> _RefusedError:
    request.close_connection = True
    return _RefusedError(
        408,
        "timeout",
        f"the request body was not all sent within {seconds:g} s ([otlp] body_timeout); "
        "send it faster or in smaller batches",
    )


_HANG_UPS = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError)
"""What reading from or writing to a client that closed its connection raises."""


def _log_hang_up(client: object, error: BaseException) -> None:
    host = client[0] if isinstance(client, tuple) and client else client
    _log.warning(
        "otlp: a client (%s) hung up before its request was answered (%s)",
        host,
        type(error).__name__,
    )


def _read_chunked(request: _Handler, limit: int) -> bytes:
    """A chunked body, unframed by h11, refused (413) as soon as it grows past ``limit``."""
    framing = h11.Connection(h11.SERVER)
    framing.receive_data(_CHUNKED_HEAD)
    framing.next_event()
    parts: list[bytes] = []
    total = 0
    # Whatever goes wrong, the rest of the body is not read: the connection cannot be reused.
    request.close_connection = True
    while True:
        try:
            event = framing.next_event()
        except h11.RemoteProtocolError as error:
            raise OtlpPayloadError(
                f"the chunked body is cut short or malformed ({error})"
            ) from None
        if event is h11.NEED_DATA:
            framing.receive_data(_received(request, _READ_SIZE))
        elif isinstance(event, h11.Data):
            total += len(event.data)
            if total > limit:
                raise _too_large(f"the chunked request body exceeds {limit} bytes")
            parts.append(bytes(event.data))
        elif isinstance(event, h11.EndOfMessage):
            break
    # Bytes read past the body begin a request pipelined behind it: they are in h11's
    # buffer, not the connection's, so it closes after the answer and the client sends that
    # request again (RFC 9112, 9.3.2).
    request.close_connection = bool(framing.trailing_data[0])
    return b"".join(parts)


def _inflate(body: bytes, window: int, limit: int) -> bytes:
    inflater = zlib.decompressobj(window)
    try:
        data = inflater.decompress(body, limit + 1)
    except zlib.error as error:
        raise OtlpPayloadError(f"the body is not valid compressed data ({error})") from None
    if len(data) > limit or inflater.unconsumed_tail:
        raise _too_large(f"the decompressed request body exceeds {limit} bytes")
    if not inflater.eof:
        raise OtlpPayloadError("the compressed body is cut short (its stream does not end)")
    return data


def _send(
    request: _Handler,
    status: int,
    body: bytes,
    content_type: str,
    headers: dict[str, str] | None = None,
) -> None:
    request.answered = True
    request.send_response(status)
    request.send_header("Content-Type", content_type)
    request.send_header("Content-Length", str(len(body)))
    for name, value in (headers or {}).items():
        request.send_header(name, value)
    request.end_headers()
    request.wfile.write(body)
