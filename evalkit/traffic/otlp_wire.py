"""The OTLP/HTTP wire: the bodies of trace exports and of their answers, protobuf or JSON.

A request is an ``ExportTraceServiceRequest`` (``decode_protobuf``; OTLP/JSON is read by
``SpanBatch.add_json``); an accepted one is answered an ``ExportTraceServiceResponse``
(``export_response``), a refused one a ``google.rpc.Status`` (``status_body``), in the
request's encoding. The protobuf messages are written by protobuf (the ``otlp`` extra):
opentelemetry-proto's, and ``google.rpc.Status`` from a descriptor declared here, the
googleapis protos not being a dependency of the extra.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from evalkit.errors import ConfigError
from evalkit.extras import require
from evalkit.traffic.otlp import OtlpPayloadError, PreparedSpans

__all__ = [
    "INTERNAL",
    "INVALID_ARGUMENT",
    "JSON",
    "PROTOBUF",
    "UNAUTHENTICATED",
    "UNAVAILABLE",
    "decode_protobuf",
    "encode_export_response",
    "encode_status",
    "export_response",
    "protobuf_available",
    "status_body",
]

PROTOBUF = "application/x-protobuf"
"""The content type of OTLP protobuf."""

JSON = "application/json"
"""The content type of OTLP/JSON."""

# google.rpc.Code values of the answers.
INVALID_ARGUMENT = 3
INTERNAL = 13
UNAVAILABLE = 14
UNAUTHENTICATED = 16


def _trace_service() -> Any:
    # Imported on first use: protobuf comes with the `otlp` extra; OTLP/JSON needs none.
    return require(
        "opentelemetry.proto.collector.trace.v1.trace_service_pb2", "the OTLP protobuf receiver"
    )


def decode_protobuf(body: bytes) -> Any:
    """Decode an OTLP protobuf ExportTraceServiceRequest (needs ``opentelemetry-proto``, the
    ``otlp`` extra); OtlpPayloadError when the bytes are not one."""
    service = _trace_service()
    try:
        return service.ExportTraceServiceRequest.FromString(body)
    except Exception as error:
        # protobuf raises its DecodeError, or a RuntimeError from the upb backend.
        raise OtlpPayloadError(
            f"not an OTLP protobuf ExportTraceServiceRequest ({error})"
        ) from None


def encode_export_response(rejected: int, message: str) -> bytes:
    """A protobuf ExportTraceServiceResponse; ``partial_success`` when spans were rejected."""
    response = _trace_service().ExportTraceServiceResponse()
    if rejected:
        response.partial_success.rejected_spans = rejected
        response.partial_success.error_message = message
    body: bytes = response.SerializeToString()
    return body


def protobuf_available() -> bool:
    """Whether OTLP protobuf can be read and written here (the ``otlp`` extra)."""
    try:
        _trace_service()
    except ConfigError:
        return False
    return True


@functools.cache
def _status_class() -> Any:
    # google.rpc.Status { int32 code = 1; string message = 2; repeated Any details = 3; },
    # declared here: the googleapis protos are not a dependency of the `otlp` extra, and
    # details are never sent.
    _trace_service()
    purpose = "the OTLP protobuf receiver"
    descriptor_pb2 = require("google.protobuf.descriptor_pb2", purpose)
    descriptor_pool = require("google.protobuf.descriptor_pool", purpose)
    message_factory = require("google.protobuf.message_factory", purpose)
    field = descriptor_pb2.FieldDescriptorProto
    proto = descriptor_pb2.FileDescriptorProto(
        name="evalkit/google_rpc_status.proto", package="google.rpc", syntax="proto3"
    )
    proto.message_type.add(
        name="Status",
        field=[
            field(name="code", number=1, type=field.TYPE_INT32, label=field.LABEL_OPTIONAL),
            field(name="message", number=2, type=field.TYPE_STRING, label=field.LABEL_OPTIONAL),
        ],
    )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("google.rpc.Status"))


def encode_status(code: int, message: str) -> bytes:
    """A protobuf ``google.rpc.Status`` (the body of an OTLP/HTTP error answer); needs the
    ``otlp`` extra, as ``encode_export_response`` does."""
    body: bytes = _status_class()(code=code, message=message).SerializeToString()
    return body


def _partial_message(outcome: PreparedSpans) -> str:
    if not outcome.rejected:
        return ""
    shown = "; ".join(outcome.messages(5))
    return f"{outcome.rejected} span(s) could not be read: {shown}"


def export_response(outcome: PreparedSpans, reply_type: str) -> bytes:
    """The answer to an accepted request: an ExportTraceServiceResponse in ``reply_type``
    (``partial_success`` when spans could not be read, with the first reasons)."""
    message = _partial_message(outcome)
    if reply_type == JSON:
        partial = (
            {"partialSuccess": {"rejectedSpans": str(outcome.rejected), "errorMessage": message}}
            if outcome.rejected
            else {}
        )
        return json.dumps(partial).encode()
    return encode_export_response(outcome.rejected, message)


def status_body(code: int, message: str, reply_type: str) -> bytes:
    """The body of an error answer: a ``google.rpc.Status`` (``code`` a google.rpc.Code) in
    ``reply_type``."""
    if reply_type == JSON:
        return json.dumps({"code": code, "message": message}).encode()
    return encode_status(code, message)
