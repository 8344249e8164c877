"""The ``[otlp]`` table: traffic from OpenTelemetry retrieval spans.

Received batches are spooled durably beside the store before they are acknowledged
(``evalkit.traffic.spool``); ``spool_max_bytes`` bounds the spool. The mapping settings
(``tenant_attribute``, ``document_id_keys``) apply to ``evalkit traffic ingest --format
otlp-json`` too; the redaction settings to the receiver only (the command has options).
Every setting: docs/configuration.md, "[otlp]".
"""

from __future__ import annotations

from pydantic import Field

from evalkit.config.types import ByteSize, Duration, SettingsTable

__all__ = ["OtlpSettings"]

DEFAULT_OTLP_PORT = 4318


class OtlpSettings(SettingsTable, frozen=True):
    """The OTLP/HTTP receiver of ``evalkit serve`` and how spans become traffic records."""

    receiver: bool = Field(
        default=False,
        description="Run the OTLP/HTTP receiver (POST /v1/traces) in `evalkit serve`.",
    )
    host: str = Field(
        default="127.0.0.1",
        description="Address the receiver listens on (loopback unless a token is required).",
    )
    port: int = Field(
        default=DEFAULT_OTLP_PORT,
        ge=0,
        le=65535,
        description="Port of the receiver (4318 is the OTLP/HTTP default; 0: any free port).",
    )
    token_env: str | None = Field(
        default=None,
        description="Environment variable holding the bearer token every request must send "
        "(Authorization: Bearer ...); unset: no token is asked for.",
    )
    max_request_bytes: ByteSize = Field(
        default=16 * 1024 * 1024,
        ge=1024,
        description="Largest request body accepted, compressed or not (larger: HTTP 413); "
        "bytes, or a size such as '16MiB'.",
    )
    request_timeout: Duration = Field(
        default=30.0,
        gt=0,
        description="How long a client may pause while sending a request's headers or body "
        "before the connection is dropped (a body cut short: HTTP 408).",
    )
    body_timeout: Duration = Field(
        default=60.0,
        gt=0,
        description="How long a client may take to send a whole request body, however "
        "steadily it sends; then it is answered HTTP 408 and its receive slot freed, so "
        "clients dripping bytes cannot hold max_concurrent_requests.",
    )
    max_concurrent_requests: int = Field(
        default=8,
        ge=1,
        description="Requests read and decoded at once; more are answered 503 with "
        "Retry-After (each may hold max_request_bytes and its decoded spans in memory).",
    )
    store_wait: Duration = Field(
        default=5.0,
        description="How long the spool's committer waits for the store on each attempt "
        "while a job writes it, before trying again (requests never wait: they are spooled).",
    )
    spool_max_bytes: ByteSize = Field(
        default=1024 * 1024 * 1024,
        ge=64 * 1024,
        description="Bound of the spool of received batches waiting for the store (bytes, or "
        "a size such as '1GiB'); beyond it requests are answered 503 with Retry-After.",
    )
    tenant_attribute: str | None = Field(
        default="tenant.id",
        description="Attribute holding the tenant: the span's own, else its resource's "
        "(empty: spans carry no tenant).",
    )
    document_id_keys: list[str] = Field(
        default_factory=lambda: ["id", "doc_id", "document_id", "source"],
        description="Keys of a document's metadata (a JSON object) read, the first found, as "
        "its id when the span records no document.id (LangChain's OpenInference spans).",
    )
    redact: list[str] = Field(
        default_factory=list,
        description="Named redaction patterns (email, number) applied to received spans.",
    )
    redact_pattern: list[str] = Field(
        default_factory=list,
        description="Regular expressions (RE2) masked in received spans.",
    )
    drop: list[str] = Field(
        default_factory=list,
        description="Fields of received spans not stored (answer, contexts, tags, results, "
        "latency_ms).",
    )
