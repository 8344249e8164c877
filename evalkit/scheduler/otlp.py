"""The OTLP/HTTP receiver of ``evalkit serve``: ``POST /v1/traces`` into the traffic tables.

A listener of its own (``[otlp] host:port``, 4318 by default as for any OTLP/HTTP receiver),
beside the health endpoint, so exporters use the standard port and path, and the health
endpoint keeps its own address and access rules. Requests are
``application/x-protobuf`` or ``application/json`` ExportTraceServiceRequests, optionally
``gzip`` or ``deflate`` encoded; the retrieval spans become traffic records
(``evalkit.traffic.otlp``).

Durability: a request is answered 200 only after its records are committed to the store,
through the same ``StoreAccess`` (writer lock, then DuckDB's own) as the service's jobs. One
writer thread commits whatever requests are waiting in one store session, each in its own
transaction. When the store stays busy (a job holds it) for ``[otlp] store_wait`` seconds,
the request is answered 503 with ``Retry-After``, which OTLP exporters retry; a record's
query id comes from its trace and span ids, so a request sent again (after a 503, a time-out
or a restart) stores nothing twice, and a request whose answer never left (``kill -9``) was
either committed whole or not at all.

Answers: 200 with an ExportTraceServiceResponse (``partial_success`` counting the spans that
could not be read, with the first reasons); 400 with the reason for a payload that is not an
ExportTraceServiceRequest; 401 without the bearer token; 404 off ``/v1/traces``; 411 without
a Content-Length; 413 beyond ``[otlp] max_request_bytes`` (before or after decompression);
415 for another content type or encoding; 503 while the store is busy or the service stops.
Error bodies are a ``google.rpc.Status`` in the request's encoding.

``/metrics`` of the health endpoint carries the receiver's counters:

======================================  ===========================================
``evalkit_otlp_spans_received_total``   spans in accepted requests
``evalkit_otlp_spans_stored_total``     retrieval spans stored as new records
``evalkit_otlp_spans_duplicate_total``  retrieval spans already stored (sent again)
``evalkit_otlp_spans_without_text_total``  retrieval spans without query text
``evalkit_otlp_spans_rejected_total``   spans that could not be read (partial success)
``evalkit_otlp_spans_ignored_total``    spans neither retrieval nor generation
``evalkit_otlp_requests_total``         requests by ``result`` (accepted, malformed,
                                        unauthorized, not_found, length_required,
                                        too_large, unsupported, unavailable)
======================================  ===========================================
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import queue
import socket
import threading
import time
import zlib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from evalkit.config.otlp import OtlpSettings
from evalkit.errors import ConfigError, EvalkitError, StoreError
from evalkit.scheduler.health import is_loopback
from evalkit.scheduler.lock import StoreAccess
from evalkit.traffic.otlp import (
    OtlpPayloadError,
    SpanBatch,
    SpanIngest,
    SpanMapping,
    decode_protobuf,
    encode_export_response,
    store_spans,
)
from evalkit.traffic.redaction import Redaction

__all__ = ["TRACES_PATH", "OtlpReceiver", "ReceiverCounters"]

TRACES_PATH = "/v1/traces"
"""The OTLP/HTTP path of trace exports."""

SOURCE = "otlp"
"""The ``source`` of records received over OTLP/HTTP."""

_log = logging.getLogger("evalkit.otlp")
_PROTOBUF = "application/x-protobuf"
_JSON = "application/json"
_RETRY_AFTER_SECONDS = 2
_INVALID_ARGUMENT = 3  # google.rpc.Code
_UNAVAILABLE = 14
_UNAUTHENTICATED = 16
_RESULTS = (
    "accepted",
    "malformed",
    "unauthorized",
    "not_found",
    "length_required",
    "too_large",
    "unsupported",
    "unavailable",
)
_SPAN_COUNTERS = {
    "received": "Spans in accepted OTLP requests.",
    "stored": "Retrieval spans stored as new traffic records.",
    "duplicate": "Retrieval spans already stored (sent again).",
    "without_text": "Retrieval spans that recorded no query text.",
    "rejected": "Spans that could not be read (partial success).",
    "ignored": "Spans neither retrieval nor generation.",
}


class _TooLargeError(Exception):
    """The body is larger than the receiver accepts (413)."""


class _UnsupportedError(Exception):
    """A content type or encoding the receiver does not read (415)."""


class ReceiverCounters(Collector):
    """The receiver's counters, collected into the service's ``/metrics``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._spans: Counter[str] = Counter()
        self._requests: Counter[str] = Counter()

    def request(self, result: str) -> None:
        """Count one request by its result."""
        with self._lock:
            self._requests[result] += 1

    def spans(self, outcome: SpanIngest) -> None:
        """Count what became of the spans of one accepted request."""
        with self._lock:
            self._spans.update(
                received=outcome.spans,
                stored=outcome.stored,
                duplicate=outcome.duplicates,
                without_text=outcome.without_text,
                rejected=outcome.rejected,
                ignored=outcome.ignored,
            )

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
        return families


@dataclass(slots=True)
class _Pending:
    batch: SpanBatch
    done: threading.Event = field(default_factory=threading.Event)
    outcome: SpanIngest | None = None
    error: str | None = None


class _Writer:
    """One thread that commits the waiting requests' batches, one store session per round."""

    def __init__(self, access: StoreAccess, redaction: Redaction, stop: threading.Event) -> None:
        self._access = access
        self._redaction = redaction
        self._stop = stop
        self._queue: queue.Queue[_Pending | None] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="evalkit-otlp-writer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self, timeout: float) -> None:
        self._queue.put(None)
        self._thread.join(timeout)

    def submit(self, batch: SpanBatch, timeout: float) -> _Pending:
        pending = _Pending(batch)
        self._queue.put(pending)
        if not pending.done.wait(timeout):
            # Still queued or being committed: the client is told to retry; if it was
            # committed meanwhile, the retry finds every record stored already.
            pending.error = "the store did not take the spans in time"
        return pending

    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            round_ = [first]
            while True:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._queue.put(None)
                    break
                round_.append(more)
            self._commit(round_)

    def _commit(self, round_: list[_Pending]) -> None:
        spans = sum(pending.batch.spans for pending in round_)
        try:
            with self._access.writer(f"otlp: storing {spans} spans", stop=self._stop) as store:
                for pending in round_:
                    try:
                        pending.outcome = store_spans(
                            store, pending.batch, source=SOURCE, redaction=self._redaction
                        )
                    except StoreError as error:
                        pending.error = str(error)
                    pending.done.set()
        except EvalkitError as error:
            _log.warning("otlp: cannot store received spans now: %s", error)
            for pending in round_:
                if not pending.done.is_set():
                    pending.error = str(error)
        except Exception as error:
            _log.exception("otlp: unexpected failure storing received spans")
            for pending in round_:
                if not pending.done.is_set():
                    pending.error = f"internal error: {type(error).__name__}"
        finally:
            for pending in round_:
                pending.done.set()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    receiver: OtlpReceiver


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "evalkit-otlp"

    def do_POST(self) -> None:
        """``POST /v1/traces``."""
        self.server.receiver.handle(self)

    def do_GET(self) -> None:
        """Only POST is served; say where."""
        self.server.receiver.refuse(
            self, 405, "not_found", f"POST OTLP trace exports to {TRACES_PATH}", _JSON
        )

    def log_message(self, format: str, *args: Any) -> None:
        """Requests are logged at debug level only."""
        _log.debug("otlp http %s", format % args)


class OtlpReceiver:
    """The OTLP/HTTP listener (see the module docstring); ``counters`` go to /metrics."""

    def __init__(
        self,
        settings: OtlpSettings,
        store_path: Path,
        *,
        host: str | None = None,
        port: int | None = None,
    ) -> None:
        self.settings = settings
        self.mapping = SpanMapping(tenant_attribute=settings.tenant_attribute or None)
        self._token = _token(settings)
        redaction = Redaction.build(
            patterns=settings.redact, custom=settings.redact_pattern, drop=settings.drop
        )
        self.counters = ReceiverCounters()
        self._stopping = threading.Event()
        self._inflight = 0
        self._inflight_lock = threading.Condition()
        access = StoreAccess(
            store_path, wait=settings.store_wait, program="evalkit serve", on_wait=_log.debug
        )
        self._writer = _Writer(access, redaction, self._stopping)
        self.host = host or settings.host
        chosen = settings.port if port is None else port
        server_class = _Server6 if ":" in self.host else _Server
        self._server = server_class((self.host, chosen), _Handler)
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
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{TRACES_PATH}"

    def start(self) -> None:
        """Start receiving."""
        self._writer.start()
        self._thread.start()

    def stop(self, *, grace: float = 10.0) -> None:
        """Stop accepting requests, let those in flight finish (up to ``grace`` seconds)."""
        self._server.shutdown()
        deadline = time.monotonic() + grace
        with self._inflight_lock:
            while self._inflight and time.monotonic() < deadline:
                self._inflight_lock.wait(0.1)
        self._stopping.set()
        self._writer.close(timeout=max(0.0, deadline - time.monotonic()) + 1.0)
        self._server.server_close()

    # -- one request ----------------------------------------------------------------------

    def handle(self, request: _Handler) -> None:
        """Answer one POST (runs on the request's own thread)."""
        with self._inflight_lock:
            self._inflight += 1
        try:
            self._handle(request)
        finally:
            with self._inflight_lock:
                self._inflight -= 1
                self._inflight_lock.notify_all()

    def _handle(self, request: _Handler) -> None:
        content_type = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        reply_type = _PROTOBUF if content_type == _PROTOBUF else _JSON
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
                code=_UNAUTHENTICATED,
                headers={"WWW-Authenticate": 'Bearer realm="evalkit"'},
            )
            return
        if self._stopping.is_set():
            self._unavailable(request, "evalkit serve is stopping", reply_type)
            return
        try:
            body = self._body(request)
        except _TooLargeError as error:
            self.refuse(request, 413, "too_large", str(error), reply_type)
            return
        except _UnsupportedError as error:
            self.refuse(request, 415, "unsupported", str(error), reply_type)
            return
        except ValueError as error:
            self.refuse(request, 411, "length_required", str(error), reply_type)
            return
        except OtlpPayloadError as error:
            self.refuse(request, 400, "malformed", str(error), reply_type)
            return
        batch = SpanBatch(self.mapping)
        try:
            if content_type == _PROTOBUF:
                batch.add_protobuf(decode_protobuf(body))
            elif content_type == _JSON:
                batch.add_json(body)
            else:
                self.refuse(
                    request,
                    415,
                    "unsupported",
                    f"Content-Type must be {_PROTOBUF} or {_JSON}",
                    _JSON,
                )
                return
        except OtlpPayloadError as error:
            self.refuse(request, 400, "malformed", str(error), reply_type)
            return
        except ConfigError as error:
            # The protobuf decoder needs the `otlp` extra; JSON works without it.
            self.refuse(request, 415, "unsupported", str(error), reply_type)
            return
        pending = self._writer.submit(batch, timeout=self.settings.store_wait + 30.0)
        if pending.outcome is None:
            self._unavailable(request, pending.error or "the store is busy", reply_type)
            return
        self.counters.request("accepted")
        self.counters.spans(pending.outcome)
        _send(request, 200, _export_response(pending.outcome, reply_type), reply_type)

    def _body(self, request: _Handler) -> bytes:
        limit = self.settings.max_request_bytes
        length_header = request.headers.get("Content-Length")
        if length_header is None:
            raise ValueError("a Content-Length is required (chunked bodies are not read)")
        try:
            length = int(length_header)
        except ValueError:
            raise ValueError("Content-Length must be a number of bytes") from None
        if length < 0:
            raise ValueError("Content-Length must be a number of bytes")
        if length > limit:
            request.close_connection = True
            raise _TooLargeError(f"the request body of {length} bytes exceeds {limit} bytes")
        body = request.rfile.read(length)
        encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
        if encoding in ("", "identity"):
            return body
        if encoding == "gzip":
            return _inflate(body, zlib.MAX_WBITS | 16, limit)
        if encoding == "deflate":
            return _inflate(body, zlib.MAX_WBITS, limit)
        raise _UnsupportedError(
            f"Content-Encoding {encoding!r} is not read; send gzip, deflate or none"
        )

    def _unavailable(self, request: _Handler, reason: str, reply_type: str) -> None:
        self.refuse(
            request,
            503,
            "unavailable",
            f"{reason}; nothing of this request was stored, send it again",
            reply_type,
            code=_UNAVAILABLE,
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
        code: int = _INVALID_ARGUMENT,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Answer with an error status and a google.rpc.Status body; count it."""
        self.counters.request(result)
        if status >= 500:
            _log.warning("otlp: %d %s", status, message)
        else:
            _log.info("otlp: refused a request (%d): %s", status, message)
        _send(request, status, _status_body(code, message, reply_type), reply_type, headers)


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


def _inflate(body: bytes, window: int, limit: int) -> bytes:
    inflater = zlib.decompressobj(window)
    try:
        data = inflater.decompress(body, limit + 1)
    except zlib.error as error:
        raise OtlpPayloadError(f"the body is not valid compressed data ({error})") from None
    if len(data) > limit or inflater.unconsumed_tail:
        raise _TooLargeError(f"the decompressed request body exceeds {limit} bytes")
    return data


def _send(
    request: _Handler,
    status: int,
    body: bytes,
    content_type: str,
    headers: dict[str, str] | None = None,
) -> None:
    request.send_response(status)
    request.send_header("Content-Type", content_type)
    request.send_header("Content-Length", str(len(body)))
    for name, value in (headers or {}).items():
        request.send_header(name, value)
    request.end_headers()
    request.wfile.write(body)


def _partial_message(outcome: SpanIngest) -> str:
    if not outcome.rejected:
        return ""
    shown = "; ".join(outcome.problems[:5])
    return f"{outcome.rejected} span(s) could not be read: {shown}"


def _export_response(outcome: SpanIngest, reply_type: str) -> bytes:
    message = _partial_message(outcome)
    if reply_type == _JSON:
        partial = (
            {"partialSuccess": {"rejectedSpans": str(outcome.rejected), "errorMessage": message}}
            if outcome.rejected
            else {}
        )
        return json.dumps(partial).encode()
    return encode_export_response(outcome.rejected, message)


def _status_body(code: int, message: str, reply_type: str) -> bytes:
    if reply_type == _JSON:
        return json.dumps({"code": code, "message": message}).encode()
    # google.rpc.Status {int32 code = 1; string message = 2;}, encoded by hand: the
    # googleapis protos are not a dependency of the receiver.
    text = message.encode()
    return b"\x08" + _varint(code) + b"\x12" + _varint(len(text)) + text


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)
