"""OpenTelemetry retrieval spans as traffic records, from OTLP/JSON or OTLP protobuf.

The mapping: docs/traffic.md, "The mapping". Query ids are ``<trace id>-<span id>``, so a
span sent twice is stored once. A span that cannot be read is rejected naming where it is,
never quoting values (they may be personal data redaction has not seen); the rest of the
request is kept.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec
import numpy as np
import pyarrow as pa

from evalkit.errors import InputError
from evalkit.store.traffic import commit_ingest_batch
from evalkit.traffic._records import MAX_TEXT_LENGTH, NOT_UTF8, RECORD_SCHEMA, dedup_text
from evalkit.traffic.redaction import Redaction

if TYPE_CHECKING:
    from evalkit.store.store import Store
    from evalkit.store.traffic import SourceState

__all__ = [
    "DOCUMENT_ID_KEYS",
    "GENERATION_OPERATIONS",
    "OtlpPayloadError",
    "PreparedSpans",
    "SpanBatch",
    "SpanIngest",
    "SpanMapping",
    "commit_spans",
    "prepare_spans",
    "store_spans",
]

GENERATION_OPERATIONS = frozenset({"chat", "text_completion", "generate_content"})
"""``gen_ai.operation.name`` values of generation spans whose answer is attached."""

DOCUMENT_ID_KEYS = ("id", "doc_id", "document_id", "source")
"""Keys of a document's metadata read as its id when it has no ``document.id``."""

_GENAI_OPERATION = "gen_ai.operation.name"
_GENAI_QUERY = "gen_ai.retrieval.query.text"
_GENAI_DOCUMENTS = "gen_ai.retrieval.documents"
_GENAI_DATA_SOURCE = "gen_ai.data_source.id"
_GENAI_TOP_K = "gen_ai.retrieval.top_k"
_GENAI_REQUEST_TOP_K = "gen_ai.request.top_k"
_STATUS_ERROR = 2  # opentelemetry.proto.trace.v1.Status.STATUS_CODE_ERROR
_GENAI_OUTPUT = "gen_ai.output.messages"
_GENAI_LEGACY_COMPLETION = "gen_ai.completion.0.content"
_OI_KIND = "openinference.span.kind"
_OI_INPUT = "input.value"
_OI_OUTPUT = "output.value"
_OI_DOCUMENTS = "retrieval.documents"
_OI_DOCUMENT = re.compile(r"retrieval\.documents\.(\d+)\.document\.(id|score|content|metadata)")
_OI_OUTPUT_MESSAGE = re.compile(
    r"llm\.output_messages\.(\d+)\.message\.(role|content|contents\.(\d+)\.message_content\.text)"
)
_TRACE_ID_BYTES = 16
_SPAN_ID_BYTES = 8
_NANOSECONDS_PER_MICROSECOND = 1000
_MAX_NANOSECONDS = 10**19  # year 2286: a larger value is not a Unix time in nanoseconds
_MIN_NANOSECONDS = 10**17  # 1973: a smaller value is a time in seconds or milliseconds


def _start_problem(start: int, name: str) -> str | None:
    """Why ``start`` is no span start time in Unix nanoseconds, or None when it is one."""
    if 0 < start < _MIN_NANOSECONDS:
        return (
            f"{name} must be a Unix time in nanoseconds, got {start}, which is in 1970 or "
            "1971 (seconds or milliseconds?)"
        )
    if not 0 < start < _MAX_NANOSECONDS:
        return f"{name} must be a Unix time in nanoseconds"
    return None


# What reading hostile JSON can raise beyond our own checks: a list where a number belongs
# (TypeError), digits int() refuses (ValueError), an integer too large for a float
# (OverflowError), nesting deeper than the interpreter's stack (RecursionError).
_UNREADABLE = (TypeError, ValueError, OverflowError, RecursionError)


class OtlpPayloadError(InputError):
    """A whole OTLP request (or file line) cannot be read: not JSON or protobuf, or not an
    ExportTraceServiceRequest."""


class _SpanError(ValueError):
    """One span cannot be read; the message names the attribute or field."""


@dataclass(frozen=True, slots=True)
class SpanMapping:
    """How spans become records: which attribute holds the tenant (the span's own, else
    its resource's; None: no tenant), and which keys of a document's metadata give its id
    when it records none (the first found)."""

    tenant_attribute: str | None = "tenant.id"
    document_id_keys: tuple[str, ...] = DOCUMENT_ID_KEYS


@dataclass(slots=True)
class _Span:
    trace_id: str
    span_id: str
    start_ns: int
    end_ns: int
    attributes: dict[str, object]
    resource: Mapping[str, object]
    where: str
    error: bool = False


@dataclass(frozen=True, slots=True)
class _Document:
    doc_id: str | None
    score: float | None
    content: str | None


@dataclass(frozen=True, slots=True)
class SpanIngest:
    """What became of the spans of one request (or file pass).

    ``spans`` received; ``retrieval`` and ``generations`` among them; ``stored`` retrieval
    records new to the store and ``duplicates`` already there (or repeated); ``without_text``
    retrieval spans that recorded no query text (stored, never sampled for replay);
    ``ignored`` spans of other kinds; ``rejected`` spans that could not be read, with the
    first ``problems``.
    """

    spans: int = 0
    retrieval: int = 0
    generations: int = 0
    stored: int = 0
    duplicates: int = 0
    without_text: int = 0
    ignored: int = 0
    rejected: int = 0
    problems: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        data = {name: getattr(self, name) for name in self.__slots__}
        data["problems"] = list(self.problems)
        return data


class SpanBatch:
    """Spans of one or more requests, mapped to traffic records and generation answers."""

    def __init__(self, mapping: SpanMapping | None = None) -> None:
        self.mapping = mapping or SpanMapping()
        self.spans = 0
        self.retrieval = 0
        self.generations_seen = 0
        self.without_text = 0
        self.ignored = 0
        self.problems: list[tuple[int | None, str]] = []
        self._seen: set[str] = set()
        self._records: dict[str, list[Any]] = {name: [] for name in RECORD_SCHEMA.names}
        self._records["trace_id"] = []
        self._records["span_id"] = []
        self._generations: dict[str, list[Any]] = {
            "trace_id": [],
            "span_id": [],
            "started_at": [],
            "answer": [],
            "contexts": [],
        }

    @property
    def n_records(self) -> int:
        """Retrieval records held (repeats of a span within the batch are held once)."""
        return len(self._records["query_id"])

    def __len__(self) -> int:
        return self.n_records + len(self._generations["trace_id"])

    def add_json(self, raw: bytes | str, *, line: int | None = None) -> None:
        """Add one OTLP/JSON ExportTraceServiceRequest; OtlpPayloadError when it is not one
        (a span that cannot be read is a problem of the batch instead)."""
        try:
            request = msgspec.json.decode(raw)
        except msgspec.DecodeError as error:
            raise OtlpPayloadError(f"not valid JSON ({error})", line=line) from None
        except UnicodeDecodeError:
            raise OtlpPayloadError(NOT_UTF8, line=line) from None
        except RecursionError:
            raise OtlpPayloadError("not valid JSON (nested too deeply)", line=line) from None
        self._add_spans(_json_spans(request, line), line)

    def add_protobuf(self, request: Any, *, line: int | None = None) -> None:
        """Add one decoded protobuf ExportTraceServiceRequest (see ``decode_protobuf``)."""
        self._add_spans(_protobuf_spans(request), line)

    def _add_spans(self, spans: Iterable[_Span | _SpanError], line: int | None) -> None:
        for span in spans:
            self.spans += 1
            if isinstance(span, _SpanError):
                self.problems.append((line, str(span)))
                continue
            try:
                self._add_span(span, line)
            except _SpanError as error:
                self.problems.append((line, f"{span.where}: {error}"))
            except _UNREADABLE as error:
                # A value of a shape no check foresaw: this span is rejected, not the request.
                problem = f"{span.where}: an attribute cannot be read ({type(error).__name__})"
                self.problems.append((line, problem))

    def _add_span(self, span: _Span, line: int | None) -> None:
        attributes = span.attributes
        for name in (_GENAI_OPERATION, _OI_KIND):
            value = attributes.get(name)
            if value is not None and not isinstance(value, str):
                raise _SpanError(
                    f"attribute {name} must be a string (what kind of span this is), got "
                    f"{type(value).__name__}"
                )
        operation = attributes.get(_GENAI_OPERATION)
        kind = attributes.get(_OI_KIND)
        kind = kind.upper() if isinstance(kind, str) else None
        if operation == "retrieval":
            self._add_retrieval(span, line, genai=True)
        elif kind == "RETRIEVER":
            self._add_retrieval(span, line, genai=False)
        elif operation in GENERATION_OPERATIONS or kind == "LLM":
            self._add_generation(span)
        else:
            self.ignored += 1

    def _add_retrieval(self, span: _Span, line: int | None, *, genai: bool) -> None:
        attributes = span.attributes
        text = _text(attributes.get(_GENAI_QUERY if genai else _OI_INPUT))
        if text is not None and len(text) > MAX_TEXT_LENGTH:
            raise _SpanError(
                f"the query text is longer than {MAX_TEXT_LENGTH} characters ({len(text)})"
            )
        tenant = self._tenant(span)
        keys = self.mapping.document_id_keys
        documents = (
            _genai_documents(attributes, keys)
            if genai
            else _openinference_documents(attributes, keys)
        )
        tags: dict[str, str] = {"convention": "genai" if genai else "openinference"}
        if genai:
            for name, keys in (
                ("data_source", (_GENAI_DATA_SOURCE,)),
                # Instrumentations that predate the retrieval attributes record the request's.
                ("top_k", (_GENAI_TOP_K, _GENAI_REQUEST_TOP_K)),
            ):
                for key in keys:
                    value = attributes.get(key)
                    if value is not None and not isinstance(value, (list, dict)):
                        tags[name] = str(value)
                        break
        if span.error:
            # A failed retrieval is stored (it counts in volume and latency) but told apart.
            tags["status"] = "error"
        service = span.resource.get("service.name")
        if isinstance(service, str) and service:
            tags["service"] = service
        query_id = f"{span.trace_id}-{span.span_id}"
        self.retrieval += 1
        if text is None:
            self.without_text += 1
        if query_id in self._seen:
            return
        self._seen.add(query_id)
        doc_ids: list[str] | None = None
        scores: list[float | None] | None = None
        if documents is not None and all(doc.doc_id is not None for doc in documents):
            doc_ids = [str(doc.doc_id) for doc in documents]
            scores = [doc.score for doc in documents]
        contents = _contents(documents)
        latency = (span.end_ns - span.start_ns) / 1e6 if span.end_ns >= span.start_ns else None
        columns = self._records
        columns["query_id"].append(query_id)
        columns["ts"].append(span.start_ns // _NANOSECONDS_PER_MICROSECOND)
        columns["text"].append(text)
        columns["tenant"].append(tenant)
        columns["tags"].append(json.dumps(tags, sort_keys=True, ensure_ascii=False))
        columns["logged_doc_ids"].append(doc_ids)
        columns["logged_scores"].append(scores)
        columns["answer"].append(None)
        columns["contexts"].append(contents)
        columns["latency_ms"].append(latency)
        columns["line"].append(line if line is not None else self.spans)
        columns["dedup_text"].append(None if text is None else dedup_text(text))
        columns["trace_id"].append(span.trace_id)
        columns["span_id"].append(span.span_id)

    def _add_generation(self, span: _Span) -> None:
        attributes = span.attributes
        answer = _genai_answer(attributes)
        if answer is None:
            answer = _openinference_answer(attributes)
        keys = self.mapping.document_id_keys
        documents = _genai_documents(attributes, keys)
        if documents is None:
            documents = _openinference_documents(attributes, keys)
        self.generations_seen += 1
        if answer is None:
            return
        columns = self._generations
        columns["trace_id"].append(span.trace_id)
        columns["span_id"].append(span.span_id)
        columns["started_at"].append(span.start_ns // _NANOSECONDS_PER_MICROSECOND)
        columns["answer"].append(answer)
        columns["contexts"].append(_contents(documents))

    def _tenant(self, span: _Span) -> str | None:
        """The span's tenant (its attribute, else its resource's); _SpanError for a value
        that is no single name: read as no tenant, the query would be replayed against
        every tenant's documents."""
        name = self.mapping.tenant_attribute
        if not name:
            return None
        for value in (span.attributes.get(name), span.resource.get(name)):
            if value is None or value == "":
                continue
            if isinstance(value, (list, dict, bytes)):
                raise _SpanError(
                    f"attribute {name} (the tenant) must be a single value, got "
                    f"{type(value).__name__}"
                )
            return str(value)
        return None

    def tables(self) -> tuple[pa.Table, pa.Table]:
        """The retrieval records (``RECORD_SCHEMA`` plus trace_id and span_id) and the
        generation answers (trace_id, span_id, started_at, answer, contexts)."""
        columns = self._records
        arrays = [
            pa.array(np.asarray(columns[name], dtype=np.int64), column.type)
            if name == "ts"
            else pa.array(columns[name], column.type)
            for name, column in zip(RECORD_SCHEMA.names, RECORD_SCHEMA, strict=True)
        ]
        schema = RECORD_SCHEMA.append(pa.field("trace_id", pa.string())).append(
            pa.field("span_id", pa.string())
        )
        records = pa.Table.from_arrays(
            [
                *arrays,
                pa.array(columns["trace_id"], pa.string()),
                pa.array(columns["span_id"], pa.string()),
            ],
            schema=schema,
        )
        generated = self._generations
        generations = pa.table(
            {
                "trace_id": pa.array(generated["trace_id"], pa.string()),
                "span_id": pa.array(generated["span_id"], pa.string()),
                "started_at": pa.array(
                    np.asarray(generated["started_at"], dtype=np.int64), pa.timestamp("us")
                ),
                "answer": pa.array(generated["answer"], pa.string()),
                "contexts": pa.array(generated["contexts"], pa.list_(pa.string())),
            }
        )
        return records, generations


@dataclass(frozen=True, slots=True)
class PreparedSpans:
    """A batch ready to store: its records and generation answers, redacted, with what the
    mapping found (``SpanIngest`` without the store's part).

    ``records`` has ``RECORD_SCHEMA`` plus trace_id and span_id; ``generations`` the columns
    trace_id, span_id, started_at, answer and contexts; ``problems`` the spans that could
    not be read, as ``(line or None, message)``.
    """

    records: pa.Table
    generations: pa.Table
    problems: tuple[tuple[int | None, str], ...]
    spans: int
    retrieval: int
    generations_seen: int
    without_text: int
    ignored: int

    @property
    def rejected(self) -> int:
        """Spans that could not be read."""
        return len(self.problems)

    def messages(self, limit: int = 20) -> tuple[str, ...]:
        """The first ``limit`` problems as text (with their line, for a file)."""
        return tuple(
            message if line is None else f"line {line}: {message}"
            for line, message in self.problems[:limit]
        )

    def outcome(self, stored: int = 0, *, max_problems: int = 20) -> SpanIngest:
        """What became of the spans once ``stored`` of the records were new to the store."""
        return SpanIngest(
            spans=self.spans,
            retrieval=self.retrieval,
            generations=self.generations_seen,
            stored=stored,
            duplicates=self.retrieval - stored,
            without_text=self.without_text,
            ignored=self.ignored,
            rejected=self.rejected,
            problems=self.messages(max_problems),
        )


def prepare_spans(batch: SpanBatch, redaction: Redaction | None = None) -> PreparedSpans:
    """The batch's records and answers, redacted: nothing unredacted leaves this function."""
    records, generations = batch.tables()
    chosen = redaction or Redaction()
    records = chosen.apply(records)
    generations = chosen.apply(generations)
    if chosen.patterns and records.num_rows:
        # Queries that differ only in what was masked are the same query once stored.
        texts = records.column("text").to_pylist()
        masked = [None if text is None else dedup_text(text) for text in texts]
        index = records.schema.get_field_index("dedup_text")
        records = records.set_column(index, "dedup_text", pa.array(masked, pa.string()))
    return PreparedSpans(
        records=records,
        generations=generations,
        problems=tuple(batch.problems),
        spans=batch.spans,
        retrieval=batch.retrieval,
        generations_seen=batch.generations_seen,
        without_text=batch.without_text,
        ignored=batch.ignored,
    )


def commit_spans(
    store: Store,
    prepared: PreparedSpans,
    *,
    source: str,
    state: SourceState | None = None,
    max_problems: int = 20,
) -> SpanIngest:
    """Store a prepared batch in one transaction (with the file's ``state``, for file
    ingest); returns what became of the spans. Committing the same batch again stores
    nothing new: records and answers are keyed by their trace and span ids."""
    stored = commit_ingest_batch(
        store,
        records=prepared.records,
        source=source,
        problems=prepared.problems,
        state=state,
        generations=prepared.generations,
    )
    return prepared.outcome(stored, max_problems=max_problems)


def store_spans(
    store: Store,
    batch: SpanBatch,
    *,
    source: str,
    redaction: Redaction | None = None,
    state: SourceState | None = None,
    max_problems: int = 20,
) -> SpanIngest:
    """Redact the batch's records and answers and store them in one transaction (with the
    file's ``state``, for file ingest); returns what became of the spans."""
    return commit_spans(
        store,
        prepare_spans(batch, redaction),
        source=source,
        state=state,
        max_problems=max_problems,
    )


# -- attribute values ---------------------------------------------------------------------


def _text(value: object) -> str | None:
    if value is None or isinstance(value, (list, dict, bytes)):
        return None
    text = str(value)
    return text if text.strip() else None


def _contents(documents: Sequence[_Document] | None) -> list[str] | None:
    if not documents:
        return None
    contents = [doc.content for doc in documents if doc.content]
    return contents or None


def _score(value: object, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise _SpanError(f"{where}: a score must be a number, got a boolean")
    if isinstance(value, (int, float)):
        try:
            number = float(value)
        except OverflowError:
            raise _SpanError(f"{where}: a score must be a finite number") from None
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            raise _SpanError(f"{where}: a score must be a number, got text") from None
    else:
        raise _SpanError(f"{where}: a score must be a number, got {type(value).__name__}")
    if not math.isfinite(number):
        raise _SpanError(f"{where}: a score must be a finite number")
    return number


def _doc_id(value: object, where: str) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise _SpanError(f"{where}: a document id must be a string or an integer")
    return str(value)


def _parsed_json(value: object, name: str) -> object:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            raise _SpanError(f"attribute {name} is not valid JSON") from None
    return value


def _genai_documents(
    attributes: Mapping[str, object], id_keys: Sequence[str]
) -> list[_Document] | None:
    raw = attributes.get(_GENAI_DOCUMENTS)
    if raw is None:
        return None
    value = _parsed_json(raw, _GENAI_DOCUMENTS)
    if not isinstance(value, list):
        raise _SpanError(f"attribute {_GENAI_DOCUMENTS} must be a list of documents")
    documents = []
    for index, item in enumerate(value):
        where = f"attribute {_GENAI_DOCUMENTS}[{index}]"
        entry = _parsed_json(item, where) if isinstance(item, str) else item
        if not isinstance(entry, dict):
            raise _SpanError(f"{where} must be an object with id and score")
        if isinstance(entry.get("document"), dict):
            entry = entry["document"]
        documents.append(_document(entry, where, id_keys))
    return documents


def _openinference_documents(
    attributes: Mapping[str, object], id_keys: Sequence[str]
) -> list[_Document] | None:
    listed = attributes.get(_OI_DOCUMENTS)
    found: dict[int, dict[str, object]] = {}
    if isinstance(listed, list):
        for index, item in enumerate(listed):
            entry = item.get("document", item) if isinstance(item, dict) else None
            if not isinstance(entry, dict):
                raise _SpanError(f"attribute {_OI_DOCUMENTS}[{index}] must be an object")
            found[index] = {key.removeprefix("document."): value for key, value in entry.items()}
    for key, value in attributes.items():
        if not key.startswith("retrieval.documents."):
            continue
        match = _OI_DOCUMENT.fullmatch(key)
        if match is not None:
            found.setdefault(int(match.group(1)), {})[match.group(2)] = value
    if not found:
        return None
    return [
        _document(found[index], f"attribute retrieval.documents.{index}.document", id_keys)
        for index in sorted(found)
    ]


def _document(entry: Mapping[str, object], where: str, id_keys: Sequence[str]) -> _Document:
    content = entry.get("content")
    doc_id = _doc_id(entry.get("id"), f"{where}.id")
    if doc_id is None:
        doc_id = _metadata_id(entry.get("metadata"), id_keys)
    return _Document(
        doc_id,
        _score(entry.get("score"), f"{where}.score"),
        content if isinstance(content, str) else None,
    )


def _metadata_id(metadata: object, id_keys: Sequence[str]) -> str | None:
    """The first of ``id_keys`` in a document's metadata (an object or a JSON string), as
    LangChain's OpenInference instrumentor records it (with no ``document.id``)."""
    if isinstance(metadata, str):
        try:
            metadata = json.loads(metadata)
        except _UNREADABLE:
            # Metadata is free-form: when it is not JSON the document just has no id.
            return None
    if not isinstance(metadata, dict):
        return None
    for key in id_keys:
        value = metadata.get(key)
        if isinstance(value, (str, int)) and not isinstance(value, bool) and value != "":
            return str(value)
    return None


def _message_text(message: object) -> str | None:
    """The text of one GenAI message: its text parts, or a plain ``content`` string."""
    if not isinstance(message, dict):
        return None
    content = message.get("content")
    if isinstance(content, str):
        return content
    parts = message.get("parts")
    if isinstance(parts, list):
        texts = [
            str(part["content"])
            for part in parts
            if isinstance(part, dict) and part.get("type", "text") == "text" and "content" in part
        ]
        if texts:
            return "\n".join(texts)
    return None


def _genai_answer(attributes: Mapping[str, object]) -> str | None:
    raw = attributes.get(_GENAI_OUTPUT)
    if raw is not None:
        messages = _parsed_json(raw, _GENAI_OUTPUT)
        if isinstance(messages, dict):
            messages = [messages]
        if not isinstance(messages, list):
            raise _SpanError(f"attribute {_GENAI_OUTPUT} must be a list of messages")
        decoded = [_parsed_json(m, _GENAI_OUTPUT) if isinstance(m, str) else m for m in messages]
        ordered = sorted(
            decoded, key=lambda m: not (isinstance(m, dict) and m.get("role") == "assistant")
        )
        for message in ordered:
            text = _message_text(message)
            if text is not None:
                return text
    legacy = attributes.get(_GENAI_LEGACY_COMPLETION)
    return legacy if isinstance(legacy, str) else None


def _openinference_answer(attributes: Mapping[str, object]) -> str | None:
    messages: dict[int, dict[str, str]] = {}
    for key, value in attributes.items():
        if not key.startswith("llm.output_messages.") or not isinstance(value, str):
            continue
        match = _OI_OUTPUT_MESSAGE.fullmatch(key)
        if match is None:
            continue
        entry = messages.setdefault(int(match.group(1)), {})
        if match.group(3) is not None:
            entry[f"part{int(match.group(3)):06d}"] = value
        else:
            entry[match.group(2)] = value
    for index in sorted(messages, key=lambda i: (messages[i].get("role") != "assistant", i)):
        entry = messages[index]
        if "content" in entry:
            return entry["content"]
        parts = [entry[key] for key in sorted(entry) if key.startswith("part")]
        if parts:
            return "\n".join(parts)
    output = attributes.get(_OI_OUTPUT)
    return output if isinstance(output, str) else None


# -- OTLP/JSON ------------------------------------------------------------------------------


def _field(data: Mapping[str, Any], camel: str, snake: str) -> Any:
    value = data.get(camel)
    return data.get(snake) if value is None else value


def _json_list(data: Mapping[str, Any], camel: str, snake: str, where: str) -> list[Any]:
    value = _field(data, camel, snake)
    if value is None:
        return []
    if not isinstance(value, list):
        raise OtlpPayloadError(f"{where}.{camel} must be a list")
    return value


def _json_spans(request: object, line: int | None) -> Iterator[_Span | _SpanError]:
    """Every span of one OTLP/JSON request; raises OtlpPayloadError for a broken envelope."""
    if not isinstance(request, dict):
        raise OtlpPayloadError(
            "not an OTLP/JSON ExportTraceServiceRequest (expected an object with resourceSpans)",
            line=line,
        )
    if not ({"resourceSpans", "resource_spans"} & request.keys()) and request:
        raise OtlpPayloadError(
            "not an OTLP/JSON ExportTraceServiceRequest: it has no resourceSpans", line=line
        )
    try:
        resource_spans = _json_list(request, "resourceSpans", "resource_spans", "$")
        spans: list[_Span | _SpanError] = []
        for r, entry in enumerate(resource_spans):
            where_resource = f"resourceSpans[{r}]"
            if not isinstance(entry, dict):
                raise OtlpPayloadError(f"{where_resource} must be an object")
            resource = entry.get("resource") or {}
            if not isinstance(resource, dict):
                raise OtlpPayloadError(f"{where_resource}.resource must be an object")
            resource_attributes = _json_attributes(resource.get("attributes"), where_resource)
            scopes = _json_list(entry, "scopeSpans", "scope_spans", where_resource)
            # Before OTLP 1.0 the same list was called instrumentationLibrarySpans.
            scopes += _json_list(
                entry,
                "instrumentationLibrarySpans",
                "instrumentation_library_spans",
                where_resource,
            )
            for s, scope in enumerate(scopes):
                where_scope = f"{where_resource}.scopeSpans[{s}]"
                if not isinstance(scope, dict):
                    raise OtlpPayloadError(f"{where_scope} must be an object")
                for n, span in enumerate(_json_list(scope, "spans", "spans", where_scope)):
                    spans.append(_json_span(span, resource_attributes, f"{where_scope}.spans[{n}]"))
    except OtlpPayloadError as error:
        if error.line is None and line is not None:
            raise OtlpPayloadError(str(error), line=line) from None
        raise
    except _SpanError as error:
        raise OtlpPayloadError(str(error), line=line) from None
    except _UNREADABLE as error:
        raise OtlpPayloadError(
            f"the resource attributes cannot be read ({type(error).__name__})", line=line
        ) from None
    return iter(spans)


def _json_span(span: object, resource: Mapping[str, object], where: str) -> _Span | _SpanError:
    if not isinstance(span, dict):
        return _SpanError(f"{where}: a span must be an object")
    try:
        trace_id = _json_id(_field(span, "traceId", "trace_id"), _TRACE_ID_BYTES, "traceId")
        span_id = _json_id(_field(span, "spanId", "span_id"), _SPAN_ID_BYTES, "spanId")
        start = _json_int(_field(span, "startTimeUnixNano", "start_time_unix_nano"), "start")
        end = _json_int(_field(span, "endTimeUnixNano", "end_time_unix_nano"), "end")
        problem = _start_problem(start, "startTimeUnixNano")
        if problem is not None:
            raise _SpanError(problem)
        attributes = _json_attributes(span.get("attributes"), where)
        failed = _json_status_error(span.get("status"))
    except _SpanError as error:
        return _SpanError(f"{where}: {error}")
    except _UNREADABLE as error:
        return _SpanError(f"{where}: the span cannot be read ({type(error).__name__})")
    return _Span(trace_id, span_id, start, end, attributes, resource, where, failed)


def _json_status_error(status: object) -> bool:
    """Whether a span's status is ERROR; its code may be a number or the enum's name."""
    if not isinstance(status, dict):
        return False
    code = status.get("code")
    if isinstance(code, str):
        return code.strip().upper() in ("STATUS_CODE_ERROR", "ERROR", str(_STATUS_ERROR))
    return isinstance(code, int) and not isinstance(code, bool) and code == _STATUS_ERROR


def _json_id(value: object, size: int, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise _SpanError(f"{name} is missing")
    if len(value) == 2 * size:
        try:
            raw = bytes.fromhex(value)
        except ValueError:
            raw = b""
    else:
        raw = b""
    if not raw:
        try:
            raw = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raw = b""
    if len(raw) != size:
        raise _SpanError(f"{name} must be {size} bytes, as {2 * size} hex digits (or base64)")
    if not any(raw):
        raise _SpanError(f"{name} must not be all zeros")
    return raw.hex()


def _json_int(value: object, name: str) -> int:
    if value is None:
        return 0
    if isinstance(value, bool):
        raise _SpanError(f"{name}TimeUnixNano must be an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    # str.isdigit() also accepts digits such as "²" that int() refuses.
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        return int(value)
    raise _SpanError(f"{name}TimeUnixNano must be an integer (or a string of digits)")


def _json_attributes(items: object, where: str) -> dict[str, object]:
    if items is None:
        return {}
    if not isinstance(items, list):
        raise _SpanError("attributes must be a list of {key, value}")
    attributes: dict[str, object] = {}
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("key"), str):
            raise _SpanError("attributes must be a list of {key, value}")
        key = item["key"]
        try:
            attributes[key] = _json_value(item.get("value"))
        except _SpanError as error:
            raise _SpanError(f"attribute {key}: {error}") from None
    return attributes


def _json_value(value: object) -> object:
    """An OTLP/JSON AnyValue as a Python value (kvlists as dicts, arrays as lists)."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _SpanError('a value must be an AnyValue object such as {"stringValue": ...}')
    if not value:
        return None
    ((kind, inner),) = list(value.items())[:1]
    if kind in ("stringValue", "string_value"):
        if not isinstance(inner, str):
            raise _SpanError("stringValue must be a string")
        return inner
    if kind in ("boolValue", "bool_value"):
        if not isinstance(inner, bool):
            raise _SpanError("boolValue must be true or false")
        return inner
    if kind in ("intValue", "int_value"):
        if isinstance(inner, bool) or not isinstance(inner, (int, str)):
            raise _SpanError("intValue must be an integer (or a string of digits)")
        try:
            return int(inner)
        except ValueError:
            raise _SpanError("intValue must be an integer (or a string of digits)") from None
    if kind in ("doubleValue", "double_value"):
        if isinstance(inner, bool) or not isinstance(inner, (int, float, str)):
            raise _SpanError("doubleValue must be a number")
        try:
            return float(inner)
        except (ValueError, OverflowError):
            raise _SpanError("doubleValue must be a number") from None
    if kind in ("arrayValue", "array_value"):
        values = inner.get("values") if isinstance(inner, dict) else None
        if values is not None and not isinstance(values, list):
            raise _SpanError("arrayValue.values must be a list")
        return [_json_value(item) for item in values or []]
    if kind in ("kvlistValue", "kvlist_value"):
        values = inner.get("values") if isinstance(inner, dict) else None
        if values is not None and not isinstance(values, list):
            raise _SpanError("kvlistValue.values must be a list")
        return _json_attributes(values or [], "kvlistValue")
    if kind in ("bytesValue", "bytes_value"):
        try:
            return base64.b64decode(str(inner), validate=True)
        except (binascii.Error, ValueError):
            raise _SpanError("bytesValue must be base64") from None
    raise _SpanError(f"unknown value kind {kind!r}")


# -- OTLP protobuf ------------------------------------------------------------------------


def _protobuf_spans(request: Any) -> Iterator[_Span | _SpanError]:
    for r, entry in enumerate(request.resource_spans):
        resource = _protobuf_attributes(entry.resource.attributes)
        for s, scope in enumerate(entry.scope_spans):
            for n, span in enumerate(scope.spans):
                where = f"resourceSpans[{r}].scopeSpans[{s}].spans[{n}]"
                yield _protobuf_span(span, resource, where)


def _protobuf_span(span: Any, resource: Mapping[str, object], where: str) -> _Span | _SpanError:
    trace_id: bytes = span.trace_id
    span_id: bytes = span.span_id
    if len(trace_id) != _TRACE_ID_BYTES or not any(trace_id):
        return _SpanError(f"{where}: trace_id must be {_TRACE_ID_BYTES} bytes, not all zeros")
    if len(span_id) != _SPAN_ID_BYTES or not any(span_id):
        return _SpanError(f"{where}: span_id must be {_SPAN_ID_BYTES} bytes, not all zeros")
    start = int(span.start_time_unix_nano)
    problem = _start_problem(start, "start_time_unix_nano")
    if problem is not None:
        return _SpanError(f"{where}: {problem}")
    return _Span(
        trace_id.hex(),
        span_id.hex(),
        start,
        int(span.end_time_unix_nano),
        _protobuf_attributes(span.attributes),
        resource,
        where,
        span.status.code == _STATUS_ERROR,
    )


def _protobuf_attributes(items: Iterable[Any]) -> dict[str, object]:
    return {item.key: _protobuf_value(item.value) for item in items}


def _protobuf_value(value: Any) -> object:
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [_protobuf_value(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return _protobuf_attributes(value.kvlist_value.values)
    return getattr(value, kind)
