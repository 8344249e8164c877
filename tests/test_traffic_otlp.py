"""OpenTelemetry retrieval spans as traffic: the mapping of both conventions, OTLP/JSON and
protobuf (encoded by the real SDK), storage with answers from generation spans, spans
without query text, and ``evalkit traffic ingest --format otlp-json``."""

from __future__ import annotations

import base64
import json
import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from evalkit.cli import invoke
from evalkit.store import Store
from evalkit.store.traffic import logged_latency_quantiles, traffic_volume
from evalkit.traffic import SampleSpec, ingest_paths, parse_window, sample_window
from evalkit.traffic._records import MAX_TEXT_LENGTH
from evalkit.traffic.otlp import OtlpPayloadError, SpanBatch, SpanMapping, store_spans
from evalkit.traffic.otlp_wire import decode_protobuf
from evalkit.traffic.redaction import Redaction

TRACE = "5b8efff798038103d269b633813fc60c"
T0 = 1_795_000_000_000_000_000  # 2026-11-18T20:26:40Z in nanoseconds


# -- helpers ------------------------------------------------------------------------------


def value(item: object) -> dict[str, Any]:
    """An OTLP/JSON AnyValue."""
    if isinstance(item, bool):
        return {"boolValue": item}
    if isinstance(item, int):
        return {"intValue": str(item)}
    if isinstance(item, float):
        return {"doubleValue": item}
    if isinstance(item, list):
        return {"arrayValue": {"values": [value(x) for x in item]}}
    return {"stringValue": item}


def attributes(values: Mapping[str, object]) -> list[dict[str, Any]]:
    return [{"key": key, "value": value(item)} for key, item in values.items()]


def span(
    span_id: str,
    attrs: Mapping[str, object],
    *,
    trace_id: str = TRACE,
    start: int = T0,
    duration_ms: float = 12.5,
) -> dict[str, Any]:
    return {
        "traceId": trace_id,
        "spanId": span_id,
        "name": "op",
        "kind": 3,
        "startTimeUnixNano": str(start),
        "endTimeUnixNano": str(start + int(duration_ms * 1e6)),
        "attributes": attributes(attrs),
    }


def request(*spans: dict[str, Any], resource: Mapping[str, object] | None = None) -> bytes:
    return json.dumps(
        {
            "resourceSpans": [
                {
                    "resource": {"attributes": attributes(resource or {"service.name": "rag"})},
                    "scopeSpans": [{"scope": {"name": "app"}, "spans": list(spans)}],
                }
            ]
        }
    ).encode()


def genai_retrieval(
    span_id: str, text: str | None, docs: object, **extra: object
) -> dict[str, object]:
    attrs: dict[str, object] = {"gen_ai.operation.name": "retrieval", **extra}
    if text is not None:
        attrs["gen_ai.retrieval.query.text"] = text
    if docs is not None:
        attrs["gen_ai.retrieval.documents"] = docs if isinstance(docs, str) else json.dumps(docs)
    return attrs


def records(batch: SpanBatch) -> list[dict[str, Any]]:
    table, _ = batch.tables()
    return table.to_pylist()


# -- the mapping --------------------------------------------------------------------------


def test_a_genai_retrieval_span_from_the_sdk_becomes_one_record() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(
        resource=Resource.create({"tenant.id": "acme", "service.name": "rag"})
    )
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("retrieval kb") as current:
        current.set_attribute("gen_ai.operation.name", "retrieval")
        current.set_attribute("gen_ai.data_source.id", "kb")
        current.set_attribute("gen_ai.retrieval.top_k", 3)
        current.set_attribute("gen_ai.retrieval.query.text", "reset password")
        current.set_attribute(
            "gen_ai.retrieval.documents",
            json.dumps([{"id": "kb-2", "score": 0.8}, {"id": "kb-9", "score": 0.5}]),
        )
    with tracer.start_as_current_span("other") as other:
        other.set_attribute("tenant.id", "globex")
        other.set_attribute("openinference.span.kind", "RETRIEVER")
        other.set_attribute("retrieval.documents.0.document.id", 17)
    finished = exporter.get_finished_spans()
    batch = SpanBatch()
    batch.add_protobuf(decode_protobuf(encode_spans(finished).SerializeToString()))
    first, second = records(batch)
    sdk_span = finished[0]
    assert first["query_id"] == (
        f"{sdk_span.context.trace_id:032x}-{sdk_span.context.span_id:016x}"
    )
    assert first["trace_id"] == f"{sdk_span.context.trace_id:032x}"
    assert first["text"] == "reset password"
    assert first["dedup_text"] == "reset password"
    assert (first["logged_doc_ids"], first["logged_scores"]) == (["kb-2", "kb-9"], [0.8, 0.5])
    assert first["tenant"] == "acme"  # from the resource
    assert json.loads(first["tags"]) == {
        "convention": "genai",
        "data_source": "kb",
        "service": "rag",
        "top_k": "3",
    }
    assert sdk_span.start_time is not None
    assert sdk_span.end_time is not None
    assert first["latency_ms"] == pytest.approx((sdk_span.end_time - sdk_span.start_time) / 1e6)
    started = datetime.fromtimestamp(sdk_span.start_time // 1000 / 1e6, UTC)
    assert first["ts"] == started.replace(tzinfo=None)
    # The span's own attribute wins over the resource's; an integer document id is read.
    assert (second["tenant"], second["text"], second["logged_doc_ids"]) == (
        "globex",
        None,
        ["17"],
    )
    assert (batch.spans, batch.retrieval, batch.without_text, batch.problems) == (2, 2, 1, [])


def test_openinference_documents_keep_their_index_order_and_read_lenient_scores() -> None:
    attrs = {
        "openinference.span.kind": "RETRIEVER",
        "input.value": "  Where is my   PARCEL ",
        "retrieval.documents.10.document.id": "d10",
        "retrieval.documents.10.document.score": "0.25",
        "retrieval.documents.2.document.id": "d2",
        "retrieval.documents.2.document.score": 3,
        "retrieval.documents.2.document.content": "Track it online.",
        "retrieval.documents.0.document.id": "d0",
    }
    batch = SpanBatch()
    batch.add_json(request(span("00f067aa0ba902b7", attrs)))
    (record,) = records(batch)
    assert record["logged_doc_ids"] == ["d0", "d2", "d10"]
    assert record["logged_scores"] == [None, 3.0, 0.25]
    assert record["contexts"] == ["Track it online."]
    assert record["dedup_text"] == "where is my parcel"
    assert record["latency_ms"] == pytest.approx(12.5)
    assert json.loads(record["tags"]) == {"convention": "openinference", "service": "rag"}


def langchain_retriever(*metadata: dict[str, object]) -> dict[str, object]:
    """Attributes as LangChain's OpenInference instrumentor records a retriever: content
    and metadata (a JSON string) per document, no id, no score."""
    attrs: dict[str, object] = {
        "openinference.span.kind": "RETRIEVER",
        "input.value": "how do I reset my password",
        "output.value": "[...]",
    }
    for index, meta in enumerate(metadata):
        attrs[f"retrieval.documents.{index}.document.content"] = f"page {index}"
        attrs[f"retrieval.documents.{index}.document.metadata"] = json.dumps(meta)
    return attrs


def test_langchain_retriever_spans_take_their_ids_from_the_document_metadata() -> None:
    attrs = langchain_retriever(
        {"source": "kb/reset.md", "page": 3},
        {"doc_id": 42, "source": "kb/faq.md"},
    )
    batch = SpanBatch()
    batch.add_json(request(span("00f067aa0ba902b7", attrs)))
    (record,) = records(batch)
    assert record["logged_doc_ids"] == ["kb/reset.md", "42"]
    assert record["logged_scores"] == [None, None]
    assert record["contexts"] == ["page 0", "page 1"]

    by_page = SpanBatch(SpanMapping(document_id_keys=("page",)))
    by_page.add_json(request(span("00f067aa0ba902b7", attrs)))
    (record,) = records(by_page)
    assert record["logged_doc_ids"] is None  # the second document has no page: no ranking


def test_metadata_without_an_id_key_or_not_json_gives_no_ranking() -> None:
    attrs = langchain_retriever({"page": 1})
    attrs["retrieval.documents.1.document.metadata"] = "not json"
    batch = SpanBatch()
    batch.add_json(request(span("00f067aa0ba902b7", attrs)))
    (record,) = records(batch)
    assert (record["text"], record["logged_doc_ids"]) == ("how do I reset my password", None)
    assert batch.problems == []


def test_a_document_without_an_id_keeps_the_query_but_logs_no_ranking() -> None:
    docs = [{"id": "a", "score": 1.0}, {"content": "no id here", "score": 0.5}]
    batch = SpanBatch()
    batch.add_json(request(span("00f067aa0ba902b7", genai_retrieval("q", "question", docs))))
    (record,) = records(batch)
    assert (record["text"], record["logged_doc_ids"], record["logged_scores"]) == (
        "question",
        None,
        None,
    )
    assert record["contexts"] == ["no id here"]


def test_structured_documents_and_the_tenant_attribute_setting() -> None:
    attrs: dict[str, object] = {
        "gen_ai.operation.name": "retrieval",
        "gen_ai.retrieval.query.text": "q",
        "org": "initech",
    }
    structured = span("00f067aa0ba902b7", attrs)
    structured["attributes"].append(
        {
            "key": "gen_ai.retrieval.documents",
            "value": {
                "arrayValue": {
                    "values": [
                        {
                            "kvlistValue": {
                                "values": [
                                    {"key": "id", "value": {"stringValue": "x"}},
                                    {"key": "score", "value": {"intValue": 2}},
                                ]
                            }
                        }
                    ]
                }
            },
        }
    )
    batch = SpanBatch(SpanMapping(tenant_attribute="org"))
    batch.add_json(request(structured, resource={"tenant.id": "acme"}))
    (record,) = records(batch)
    assert (record["tenant"], record["logged_doc_ids"], record["logged_scores"]) == (
        "initech",
        ["x"],
        [2.0],
    )
    none = SpanBatch(SpanMapping(tenant_attribute=None))
    none.add_json(request(structured, resource={"tenant.id": "acme"}))
    assert records(none)[0]["tenant"] is None


def test_a_tenant_that_is_no_single_value_rejects_its_span_and_an_empty_one_falls_back() -> None:
    """A list was read as no tenant, and a query without a tenant is replayed against every
    tenant's documents; an empty tenant on the span hid the resource's."""
    listed = span("1111111111111111", genai_retrieval("", "q", None, **{"tenant.id": ["acme"]}))
    empty = span("2222222222222222", genai_retrieval("", "r", None, **{"tenant.id": ""}))
    numbered = span("3333333333333333", genai_retrieval("", "s", None, **{"tenant.id": 42}))
    batch = SpanBatch()
    batch.add_json(request(listed, empty, numbered, resource={"tenant.id": "globex"}), line=3)
    assert [(r["text"], r["tenant"]) for r in records(batch)] == [("r", "globex"), ("s", "42")]
    assert batch.problems == [
        (
            3,
            "resourceSpans[0].scopeSpans[0].spans[0]: attribute tenant.id (the tenant) must be "
            "a single value, got list",
        )
    ]


def test_otlp_json_is_read_leniently_snake_case_numbers_and_enum_names() -> None:
    # The status code is an enum: given by name, it is read (the span failed).
    body = {
        "resource_spans": [
            {
                "resource": {"attributes": []},
                "scope_spans": [
                    {
                        "spans": [
                            {
                                "trace_id": TRACE,
                                "span_id": "00f067aa0ba902b7",
                                "kind": "SPAN_KIND_CLIENT",
                                "status": {"code": "STATUS_CODE_ERROR"},
                                "start_time_unix_nano": T0,
                                "end_time_unix_nano": T0 + 2_000_000,
                                "attributes": [
                                    {
                                        "key": "gen_ai.operation.name",
                                        "value": {"string_value": "retrieval"},
                                    },
                                    {
                                        "key": "gen_ai.retrieval.top_k",
                                        "value": {"int_value": 5},
                                    },
                                ],
                            }
                        ]
                    }
                ],
            }
        ]
    }
    batch = SpanBatch()
    batch.add_json(json.dumps(body))
    (record,) = records(batch)
    assert record["latency_ms"] == pytest.approx(2.0)
    assert json.loads(record["tags"])["top_k"] == "5"
    assert json.loads(record["tags"])["status"] == "error"
    assert record["text"] is None
    assert batch.without_text == 1


@pytest.mark.parametrize(
    ("status", "failed"),
    [({"code": 2}, True), ({"code": "2"}, True), ({"code": 1}, False), (None, False)],
)
def test_a_failed_retrieval_span_is_stored_with_a_status_tag(
    status: dict[str, object] | None, failed: bool
) -> None:
    entry = span("00f067aa0ba902b7", genai_retrieval("", "q", None))
    if status is not None:
        entry["status"] = status
    batch = SpanBatch()
    batch.add_json(request(entry))
    (record,) = records(batch)
    assert (json.loads(record["tags"]).get("status") == "error") is failed


def test_a_failed_span_from_the_sdk_is_tagged_through_protobuf() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with provider.get_tracer("t").start_as_current_span("retrieval") as sdk_span:
        sdk_span.set_attribute("gen_ai.operation.name", "retrieval")
        sdk_span.set_status(StatusCode.ERROR)
    batch = SpanBatch()
    batch.add_protobuf(
        decode_protobuf(encode_spans(exporter.get_finished_spans()).SerializeToString())
    )
    (record,) = records(batch)
    assert json.loads(record["tags"])["status"] == "error"


def test_the_request_top_k_stands_in_for_the_retrieval_top_k() -> None:
    attrs = genai_retrieval("", "q", None, **{"gen_ai.request.top_k": 7})
    batch = SpanBatch()
    batch.add_json(request(span("00f067aa0ba902b7", attrs)))
    assert json.loads(records(batch)[0]["tags"])["top_k"] == "7"
    both = {**attrs, "gen_ai.retrieval.top_k": 4}
    batch = SpanBatch()
    batch.add_json(request(span("00f067aa0ba902b7", both)))
    assert json.loads(records(batch)[0]["tags"])["top_k"] == "4"


@settings(max_examples=50, deadline=None)
@given(
    trace=st.binary(min_size=16, max_size=16).filter(any),
    span_bytes=st.binary(min_size=8, max_size=8).filter(any),
)
def test_hex_and_base64_ids_name_the_same_span(trace: bytes, span_bytes: bytes) -> None:
    attrs = genai_retrieval("", "q", None)
    ids = set()
    for trace_id, span_id in (
        (trace.hex(), span_bytes.hex()),
        (trace.hex().upper(), span_bytes.hex().upper()),
        (base64.b64encode(trace).decode(), base64.b64encode(span_bytes).decode()),
    ):
        batch = SpanBatch()
        batch.add_json(request(span(span_id, attrs, trace_id=trace_id)))
        assert batch.problems == []
        ids.add(records(batch)[0]["query_id"])
    assert ids == {f"{trace.hex()}-{span_bytes.hex()}"}


@settings(max_examples=60, deadline=None)
@given(
    score=st.one_of(
        st.integers(min_value=-(10**6), max_value=10**6),
        st.floats(allow_nan=False, allow_infinity=False, width=32),
    ),
    as_text=st.booleans(),
)
def test_a_score_as_an_integer_a_double_or_numeric_text_is_stored_as_a_double(
    score: float, as_text: bool
) -> None:
    given_score: object = repr(score) if as_text else score
    batch = SpanBatch()
    docs = [{"id": "d", "score": given_score}]
    batch.add_json(request(span("00f067aa0ba902b7", genai_retrieval("", "q", docs))))
    assert batch.problems == []
    assert records(batch)[0]["logged_scores"] == [pytest.approx(float(score))]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda s: s.pop("traceId"), "traceId is missing"),
        (lambda s: s.update(spanId="00"), "spanId must be 8 bytes"),
        (lambda s: s.update(traceId="0" * 32), "traceId must not be all zeros"),
        (lambda s: s.update(startTimeUnixNano="soon"), "startTimeUnixNano must be an integer"),
        (lambda s: s.pop("startTimeUnixNano"), "startTimeUnixNano must be a Unix time"),
        (
            lambda s: s.update(startTimeUnixNano="1795305600"),
            "startTimeUnixNano must be a Unix time in nanoseconds, got 1795305600, which is in "
            "1970 or 1971 (seconds or milliseconds?)",
        ),
        (
            lambda s: s.update(startTimeUnixNano="1795305600000"),
            "got 1795305600000, which is in 1970",
        ),
        (
            lambda s: s["attributes"].append({"key": "x", "value": {"intValue": "1.5"}}),
            "attribute x: intValue must be an integer",
        ),
    ],
)
def test_a_span_that_cannot_be_read_is_rejected_and_the_rest_kept(
    mutate: Any, message: str
) -> None:
    bad = span("00f067aa0ba902b7", genai_retrieval("", "q", None))
    mutate(bad)
    good = span("1111111111111111", genai_retrieval("", "fine", None))
    batch = SpanBatch()
    batch.add_json(request(bad, good), line=7)
    assert [r["text"] for r in records(batch)] == ["fine"]
    ((line, problem),) = batch.problems
    assert line == 7
    assert problem.startswith("resourceSpans[0].scopeSpans[0].spans[0]: ")
    assert message in problem


def test_a_span_whose_query_text_is_over_the_limit_is_rejected_and_the_rest_kept() -> None:
    long = span("00f067aa0ba902b7", genai_retrieval("", "x" * (MAX_TEXT_LENGTH + 1), None))
    good = span("1111111111111111", genai_retrieval("", "fine", None))
    batch = SpanBatch()
    batch.add_json(request(long, good), line=3)
    assert [r["text"] for r in records(batch)] == ["fine"]
    ((line, problem),) = batch.problems
    assert line == 3
    assert f"the query text is longer than {MAX_TEXT_LENGTH} characters" in problem


@pytest.mark.parametrize(
    ("docs", "message"),
    [
        ("[{'id': 'single quotes'}]", "attribute gen_ai.retrieval.documents is not valid JSON"),
        ('{"id": "a"}', "gen_ai.retrieval.documents must be a list of documents"),
        ('["a", 3]', "gen_ai.retrieval.documents[0] is not valid JSON"),
        ('[{"id": "a", "score": "high"}]', "[0].score: a score must be a number, got text"),
        ('[{"id": "a", "score": true}]', "[0].score: a score must be a number, got a boolean"),
        ('[{"id": "a", "score": NaN}]', "[0].score: a score must be a finite number"),
        ('[{"id": {"nested": 1}}]', "[0].id: a document id must be a string or an integer"),
    ],
)
def test_a_bad_documents_attribute_is_rejected_naming_the_attribute(
    docs: str, message: str
) -> None:
    batch = SpanBatch()
    batch.add_json(request(span("00f067aa0ba902b7", genai_retrieval("", "secret question", docs))))
    assert records(batch) == []
    ((_, problem),) = batch.problems
    assert message in problem
    assert "secret question" not in problem


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"not json", "not valid JSON"),
        (b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"name":"\xff"}]}]}]}', "not valid UTF-8"),
        (b"[1, 2]", "not an OTLP/JSON ExportTraceServiceRequest"),
        (b'{"spans": []}', "it has no resourceSpans"),
        (b'{"resourceSpans": {"a": 1}}', "resourceSpans must be a list"),
        (b'{"resourceSpans": [{"scopeSpans": [7]}]}', "scopeSpans[0] must be an object"),
    ],
)
def test_a_request_that_is_not_one_raises_a_payload_error(body: bytes, message: str) -> None:
    batch = SpanBatch()
    with pytest.raises(OtlpPayloadError, match=re.escape(message)) as raised:
        batch.add_json(body, line=3)
    assert raised.value.line == 3
    assert batch.spans == 0


def test_not_protobuf_raises_a_payload_error() -> None:
    with pytest.raises(OtlpPayloadError, match="not an OTLP protobuf"):
        decode_protobuf(b"\xff\xff\xff\xff")


def test_spans_of_other_kinds_are_counted_and_ignored() -> None:
    batch = SpanBatch()
    batch.add_json(
        request(
            span("1111111111111111", {"http.method": "GET"}),
            span("2222222222222222", {"gen_ai.operation.name": "embeddings"}),
            span("3333333333333333", {"openinference.span.kind": "chain"}),
        )
    )
    assert (batch.spans, batch.ignored, batch.retrieval, len(batch)) == (3, 3, 0, 0)


# -- storing ------------------------------------------------------------------------------


def generation(
    span_id: str, answer: str, *, start: int, openinference: bool = False
) -> dict[str, Any]:
    if openinference:
        attrs: dict[str, object] = {
            "openinference.span.kind": "LLM",
            "llm.output_messages.0.message.role": "assistant",
            "llm.output_messages.0.message.content": answer,
        }
    else:
        attrs = {
            "gen_ai.operation.name": "chat",
            "gen_ai.output.messages": json.dumps(
                [{"role": "assistant", "parts": [{"type": "text", "content": answer}]}]
            ),
        }
    return span(span_id, attrs, start=start)


def stored_rows(store: Store) -> dict[str, tuple[Any, ...]]:
    rows = store.fetch(
        "SELECT query_id, text, answer, contexts, tenant FROM traffic_records ORDER BY query_id"
    )
    return {row[0]: row[1:] for row in rows}


def test_answers_attach_to_their_trace_whichever_span_arrives_first(store: Store) -> None:
    docs = [{"id": "kb-1", "score": 0.9, "content": "Click Forgot password."}]
    retrieval = span("1111111111111111", genai_retrieval("", "reset", docs), start=T0)
    early = generation("2222222222222222", "too early", start=T0 - 1_000_000)
    answer = generation("3333333333333333", "Use the link.", start=T0 + 5_000_000)
    later = generation("4444444444444444", "a later turn", start=T0 + 9_000_000)

    first = SpanBatch()
    first.add_json(request(retrieval, early))
    assert store_spans(store, first, source="otlp").stored == 1
    assert stored_rows(store)[f"{TRACE}-1111111111111111"][1] is None
    second = SpanBatch()
    second.add_json(request(later, answer))
    store_spans(store, second, source="otlp")
    assert stored_rows(store)[f"{TRACE}-1111111111111111"][1:3] == (
        "Use the link.",
        ["Click Forgot password."],
    )

    # The other order: the generation (OpenInference) arrives before its retrieval span.
    other = "6e0c63257de34c926f9efcd03927272e"
    gen = generation("5555555555555555", "Five days.", start=T0 + 3_000_000, openinference=True)
    gen["traceId"] = other
    ahead = SpanBatch()
    ahead.add_json(request(gen))
    assert store_spans(store, ahead, source="otlp").stored == 0
    oi = span(
        "6666666666666666",
        {"openinference.span.kind": "RETRIEVER", "input.value": "shipping time"},
        trace_id=other,
        start=T0,
    )
    behind = SpanBatch()
    behind.add_json(request(oi))
    store_spans(store, behind, source="otlp")
    assert stored_rows(store)[f"{other}-6666666666666666"][:3] == (
        "shipping time",
        "Five days.",
        None,
    )
    # Sent again: nothing stored twice, nothing changed.
    again = SpanBatch()
    again.add_json(request(retrieval, early, later, answer))
    outcome = store_spans(store, again, source="otlp")
    assert (outcome.stored, outcome.duplicates, outcome.generations) == (0, 1, 3)
    assert store.fetch("SELECT count(*) FROM traffic_generations")[0][0] == 4
    assert len(stored_rows(store)) == 2


def test_spans_sent_again_among_new_ones_of_other_days_are_each_stored_once(
    tmp_path: Path,
) -> None:
    """The duplicate check of spans looks only among the records of a batch's time range
    (its cost must not grow with the store): a batch mixing spans sent again from days
    apart with new ones, and a span repeated within it, still stores each span once, here
    and after the store is opened again."""
    day = 86_400 * 10**9
    path = tmp_path / "evalkit.duckdb"

    def retrieval_at(n: int, days: int) -> dict[str, Any]:
        attrs = genai_retrieval("", f"question {n}", [{"id": "kb-1", "score": 0.5}])
        return span(f"{n + 100:016x}", attrs, start=T0 + days * day)

    with Store.open(path) as store:
        for days in (0, 3, 6):
            sent = SpanBatch()
            sent.add_json(request(*(retrieval_at(days * 10 + n, days) for n in range(3))))
            assert store_spans(store, sent, source="otlp").stored == 3
    with Store.open(path) as store:
        mixed = SpanBatch()
        mixed.add_json(
            request(
                retrieval_at(1, 0),
                retrieval_at(62, 6),
                retrieval_at(40, 4),
                retrieval_at(41, 4),
                retrieval_at(40, 4),
                retrieval_at(31, 3),
            )
        )
        outcome = store_spans(store, mixed, source="otlp")
        assert (outcome.stored, outcome.duplicates) == (2, 4)
        again = SpanBatch()
        again.add_json(request(retrieval_at(40, 4), retrieval_at(0, 0), retrieval_at(60, 6)))
        assert store_spans(store, again, source="otlp").stored == 0
        rows = store.fetch("SELECT query_id, count(*) FROM traffic_records GROUP BY ALL")
    assert sorted(dict(rows)) == [
        f"{TRACE}-{n + 100:016x}" for n in (0, 1, 2, 30, 31, 32, 40, 41, 60, 61, 62)
    ]
    assert {count for _, count in rows} == {1}


def test_redaction_applies_to_text_answers_and_contexts_before_storage(store: Store) -> None:
    docs = [{"id": "kb-1", "content": "mail ann@example.com"}]
    batch = SpanBatch()
    batch.add_json(
        request(
            span("1111111111111111", genai_retrieval("", "bob@example.com password", docs)),
            generation("2222222222222222", "wrote to bob@example.com", start=T0 + 10),
        )
    )
    store_spans(store, batch, source="otlp", redaction=Redaction.build(patterns=["email"]))
    text, answer, contexts, _ = stored_rows(store)[f"{TRACE}-1111111111111111"]
    assert (text, answer, contexts) == (
        "<email> password",
        "wrote to <email>",
        ["mail <email>"],
    )
    other = "6e0c63257de34c926f9efcd03927272e"
    retrieval = span("3333333333333333", genai_retrieval("", "q", docs), trace_id=other)
    answered = generation("4444444444444444", "an answer", start=T0 + 10)
    answered["traceId"] = other
    dropped = SpanBatch()
    dropped.add_json(request(retrieval, answered))
    store_spans(store, dropped, source="otlp", redaction=Redaction.build(drop=["answer"]))
    assert stored_rows(store)[f"{other}-3333333333333333"][1] is None
    assert store.fetch("SELECT count(*) FROM traffic_generations WHERE trace_id = ?", [other]) == [
        (0,)
    ]


def test_records_without_text_count_for_volume_and_latency_but_are_never_sampled(
    store: Store,
) -> None:
    batch = SpanBatch()
    batch.add_json(
        request(
            span("1111111111111111", genai_retrieval("", "with text", None), duration_ms=10),
            span("2222222222222222", genai_retrieval("", None, [{"id": "a"}]), duration_ms=30),
            span("3333333333333333", genai_retrieval("", "   ", None), duration_ms=50),
        )
    )
    outcome = store_spans(store, batch, source="otlp")
    assert (outcome.stored, outcome.without_text) == (3, 2)
    window = parse_window("2026-11-18")
    _, records_in_window, _, logged, without_text = traffic_volume(store, granularity="day")[0]
    assert (records_in_window, logged, without_text) == (3, 1, 2)
    p50, _, _ = logged_latency_quantiles(store, start=window.start, end=window.end)
    assert p50 == pytest.approx(30.0)
    sample = sample_window(store, SampleSpec(window=window, n=10, seed=1))
    assert (sample.n_records, sample.n_distinct, sample.n_sampled) == (1, 1, 1)
    keys = store.fetch("SELECT count(DISTINCT query_key) FROM traffic_records")[0][0]
    assert keys == 3  # never grouped as one "empty" query


# -- files --------------------------------------------------------------------------------


def test_collector_files_are_ingested_incrementally_and_report_bad_lines(tmp_path: Path) -> None:
    path = tmp_path / "traces.json"
    lines = [
        request(span(f"{i + 1:016x}", genai_retrieval("", f"q{i}", None))).decode()
        for i in range(3)
    ]
    bad_span = span("00000000000000aa", genai_retrieval("", "x", '{"id": 1}'))
    path.write_text(f"{lines[0]}\n{{oops\n{request(bad_span).decode()}\n{lines[1]}\n")
    with Store.open(tmp_path / "evalkit.duckdb") as store:
        report = ingest_paths(store, [path], file_format="otlp-json")
        (entry,) = report.files
        assert (entry.kind, entry.status, entry.records_added, entry.malformed) == (
            "otlp-json",
            "new",
            2,
            2,
        )
        first, second = report.problems
        assert (first.path, first.line) == (str(path), 2)
        assert "not valid JSON" in first.message
        assert second.line == 3
        assert "spans[0]: attribute gen_ai.retrieval.documents must be a list" in second.message
        assert str(second).startswith(f"{path}:3: ")

        with path.open("a") as handle:
            handle.write(lines[2][:40])  # a line still being written
        resumed = ingest_paths(store, [path], file_format="otlp-json")
        assert (resumed.files[0].status, resumed.records_added) == ("resumed", 0)
        assert resumed.files[0].pending_bytes == 40
        with path.open("a") as handle:
            handle.write(lines[2][40:] + "\n")
        finished = ingest_paths(store, [path], file_format="otlp-json")
        assert (finished.records_added, finished.malformed) == (1, 0)
        again = ingest_paths(store, [path], file_format="otlp-json")
        assert again.files[0].status == "unchanged"
        assert store.fetch("SELECT count(*), min(source) FROM traffic_records")[0] == (3, str(path))
        stored_problems = store.fetch("SELECT line FROM traffic_ingest_problems ORDER BY line")
        assert [row[0] for row in stored_problems] == [2, 3]


def test_a_collector_file_first_read_as_jsonl_is_read_again_as_otlp_json(tmp_path: Path) -> None:
    """Forgetting --format once must not leave the spans unread for good."""
    path = tmp_path / "traces.json"
    path.write_text(
        "".join(
            request(span(f"{i + 1:016x}", genai_retrieval("", f"q{i}", None))).decode() + "\n"
            for i in range(3)
        )
    )
    with Store.open(tmp_path / "evalkit.duckdb") as store:
        as_jsonl = ingest_paths(store, [path], file_format="jsonl")
        assert (as_jsonl.records_added, as_jsonl.malformed) == (0, 3)
        as_otlp = ingest_paths(store, [path], file_format="otlp-json")
        (entry,) = as_otlp.files
        assert (entry.status, entry.records_added) == ("restarted", 3)
        assert entry.note == "read as jsonl before; read again from the start as otlp-json"
        assert ingest_paths(store, [path], file_format="otlp-json").files[0].status == "unchanged"
        assert store.fetch("SELECT count(*) FROM traffic_records") == [(3,)]


def test_the_cli_ingests_otlp_json_with_json_output(
    evalkit_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = evalkit_home.parent / "traces.json"
    path.write_text(
        request(
            span("1111111111111111", genai_retrieval("", "q", None)),
            span("2222222222222222", genai_retrieval("", None, None)),
            span("3333333333333333", {"http.route": "/"}),
        ).decode()
        + "\n"
    )
    code = invoke(["traffic", "ingest", str(path), "--format", "otlp-json", "--format", "json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0
    assert (report["records_added"], report["files"][0]["kind"]) == (2, "otlp-json")
    note = report["files"][0]["note"]
    assert "1 retrieval span(s) recorded no query text" in note
    assert "1 span(s) neither retrieval nor generation were ignored" in note

    code = invoke(["traffic", "ingest", str(path), "--format", "jsonl", "--format", "otlp-json"])
    assert code == 2
    assert "at most one output format" in capsys.readouterr().err


def test_a_float_score_survives_storage_exactly(store: Store) -> None:
    batch = SpanBatch()
    docs = [{"id": "a", "score": math.pi}, {"id": "b", "score": -0.0}]
    batch.add_json(request(span("1111111111111111", genai_retrieval("", "q", docs))))
    store_spans(store, batch, source="otlp")
    assert store.fetch("SELECT logged_scores FROM traffic_records")[0][0] == [math.pi, -0.0]


# -- hostile payloads ---------------------------------------------------------------------


def _raw_span(span_id: str, raw_attributes: list[dict[str, Any]], **fields: object) -> bytes:
    spans = [
        {**span(span_id, genai_retrieval("", "q", None)), **fields},
    ]
    spans[0]["attributes"] = spans[0]["attributes"] + raw_attributes
    good = span("00000000000000f1", genai_retrieval("", "kept", None))
    body = json.loads(request(good))
    body["resourceSpans"][0]["scopeSpans"][0]["spans"] += spans
    return json.dumps(body).encode()


def _spliced(span_id: str, replacement: str) -> bytes:
    # json.dumps cannot write a 400-digit number as a double: splice it in.
    marker = "__spliced__"
    body = _raw_span(span_id, [{"key": "x", "value": marker}]).decode()
    return body.replace(json.dumps(marker), replacement).encode()


POISON_SPANS = {
    "array values not a list": _raw_span(
        "00000000000000a1", [{"key": "x", "value": {"arrayValue": {"values": 7}}}]
    ),
    "a superscript digit as a time": _raw_span(
        "00000000000000a2", [], startTimeUnixNano="1700000000000000000\u00b2"
    ),
    "a score too large for a float": _raw_span(
        "00000000000000a3",
        attributes({"gen_ai.retrieval.documents": '[{"id": "d", "score": 1' + "0" * 400 + "}]"}),
    ),
    "a double too large for a float": _spliced(
        "00000000000000a4", '{"doubleValue": 1' + "0" * 400 + "}"
    ),
    "documents nested too deeply": _raw_span(
        "00000000000000a5",
        attributes({"gen_ai.retrieval.documents": "[" * 100_000 + "]" * 100_000}),
    ),
}


@pytest.mark.parametrize("body", list(POISON_SPANS.values()), ids=list(POISON_SPANS))
def test_a_span_of_the_wrong_shape_is_rejected_and_the_rest_kept(body: bytes) -> None:
    batch = SpanBatch()
    batch.add_json(body)
    assert batch.spans == 2
    assert len(batch.problems) == 1
    assert "spans[1]" in batch.problems[0][1]
    assert [row["text"] for row in records(batch)] == ["kept"]


def test_a_span_kind_attribute_of_another_type_is_named() -> None:
    """An array for gen_ai.operation.name was rejected as 'an attribute cannot be read
    (TypeError)', naming none."""
    array = {"arrayValue": {"values": [{"stringValue": "retrieval"}]}}
    batch = SpanBatch()
    batch.add_json(
        _raw_span("00000000000000a6", [{"key": "gen_ai.operation.name", "value": array}])
    )
    (problem,) = [text for _, text in batch.problems]
    assert "attribute gen_ai.operation.name must be a string" in problem
    assert "got list" in problem


def test_a_request_nested_too_deeply_for_the_decoder_is_a_payload_error() -> None:
    with pytest.raises(OtlpPayloadError, match="nested too deeply"):
        SpanBatch().add_json(b"[" * 100_000 + b"]" * 100_000)


def test_a_poison_line_in_a_file_is_reported_and_the_other_lines_ingested(
    tmp_path: Path,
) -> None:
    path = tmp_path / "traces.json"
    good = [
        request(span(f"{i + 1:016x}", genai_retrieval("", f"q{i}", None))).decode()
        for i in range(2)
    ]
    poison = [body.decode() for body in POISON_SPANS.values()]
    path.write_text("\n".join([good[0], *poison, good[1]]) + "\n")
    with Store.open(tmp_path / "evalkit.duckdb") as store:
        report = ingest_paths(store, [path], file_format="otlp-json")
        # Each poison line also holds one good span ("kept", the same span each time).
        assert report.records_added == 3
        assert report.files[0].malformed == len(poison)
        assert [problem.line for problem in report.problems] == list(range(2, 2 + len(poison)))
        assert all(str(problem).startswith(f"{path}:") for problem in report.problems)
