"""OpenTelemetry traffic into a real ``evalkit serve``: the SDK and its OTLP/HTTP exporter.

A small retrieval function is instrumented once with the GenAI attribute names (tenant
``acme``, on the resource) and once with the OpenInference names (tenant ``globex``, on the
span), over two days; some spans record no query text, and a generation span carries the
answer. The spans go to a real ``evalkit serve`` child process on loopback through the SDK's
``OTLPSpanExporter`` (protobuf, gzip and not), plus OTLP/JSON and malformed raw POSTs. The
service is killed with ``kill -9`` while spans are being exported and started again on the
same port; then every acknowledged span must be stored exactly once, and the traffic must
sample and replay with tenants kept apart, summarise its windows, and feed the drift checks.
"""

from __future__ import annotations

import gzip
import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from evalkit_process import fresh_env
from google.protobuf.json_format import MessageToJson
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from test_scheduler_support import (  # noqa: F401  (fixture)
    evalkit_command,
    free_port,
    popen_serve,
    serves_fixture,
    wait_until,
)
from test_traffic_tenant_isolation import DOCUMENTS, OWNER

from evalkit.config.judge import JudgeSettings, ScoringMethod
from evalkit.drift import top1_score_shift
from evalkit.embedding import Embedder, load_embedder
from evalkit.pipeline import (
    ReplaySetup,
    TrafficReplayRequest,
    check_drift_queries,
    replay_traffic_window,
)
from evalkit.records import Document
from evalkit.retrievers import ChromaRetriever, index_corpus, open_chroma_client
from evalkit.store import Store
from evalkit.store.answers import answer_scores_frame, list_scorings
from evalkit.store.runs import run_results
from evalkit.store.traffic import logged_answers, logged_top1_scores, traffic_volume
from evalkit.traffic import SampleSpec, parse_stratification, parse_window, sample_window

pytestmark = pytest.mark.slow

TOKEN = "otlp-test-token-0123456789"
STARTUP = 120.0
DAYS = ("2026-11-20", "2026-11-21")
# Each tenant asks about the other's topics too: unfiltered, they would see its documents.
QUESTIONS = [
    "how do I reset my password",
    "when is my invoice due",
    "how long does shipping take",
    "where can I track my parcel",
    "can I get a refund for a cancelled order",
    "how do I return a parcel",
]


@dataclass
class Home:
    root: Path
    env: dict[str, str]
    port: int

    @property
    def store(self) -> Path:
        return self.root / "home" / "evalkit.duckdb"

    @property
    def traces_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1/traces"


@dataclass
class Serve:
    process: subprocess.Popen[bytes]
    url: str
    log: Path


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return load_embedder()


def receiver_home(tmp_path: Path, otlp: str) -> Home:
    """A fresh store under ``tmp_path`` and an evalkit.toml whose OTLP receiver listens on a
    free port for ``TOKEN`` (in OTLP_TOKEN), with the ``otlp`` lines of its [otlp] table."""
    port = free_port()
    config = tmp_path / "evalkit.toml"
    config.write_text(
        f"""
[scheduler]
health_port = 0
shutdown_grace = "2s"

[otlp]
receiver = true
port = {port}
token_env = "OTLP_TOKEN"
{otlp}"""
    )
    env = fresh_env(tmp_path / "home", EVALKIT_CONFIG=str(config), OTLP_TOKEN=TOKEN)
    return Home(root=tmp_path, env=env, port=port)


@pytest.fixture
def home(tmp_path: Path, embedder: Embedder) -> Home:
    receiver = receiver_home(tmp_path, 'max_request_bytes = 262144\nredact = ["email"]\n')
    client = open_chroma_client(path=tmp_path / "home" / "chroma")
    documents = [
        Document(doc_id, text, metadata={"tenant": tenant})
        for tenant, docs in DOCUMENTS.items()
        for doc_id, text in docs
    ]
    index_corpus(client, documents, embedder, collection_name="kbase")
    return receiver


def start_serve(home: Home, serves: list[Serve]) -> Serve:
    launch_serve(home, serves)
    return wait_for_serve(home, serves[-1])


def launch_serve(home: Home, serves: list[Serve]) -> Serve:
    log = home.root / f"serve-{len(serves)}.log"
    process = popen_serve(log, home.env, home.root)
    serves.append(Serve(process, "", log))
    return serves[-1]


def wait_for_serve(home: Home, serve: Serve) -> Serve:
    process, log = serve.process, serve.log
    info = home.store.with_name(home.store.name + ".serve.json")

    def ready() -> bool:
        if process.poll() is not None:
            pytest.fail(f"evalkit serve exited with {process.returncode}:\n{log.read_text()}")
        try:
            data = json.loads(info.read_text())
        except (OSError, ValueError):
            return False
        return bool(data.get("pid") == process.pid)

    wait_until(ready, timeout=STARTUP, what="evalkit serve to start")
    data = json.loads(info.read_text())
    assert data["otlp_url"] == home.traces_url
    serve.url = data["url"]
    return serve


# -- the instrumented application ----------------------------------------------------------


class App:
    """A retrieval function instrumented with the SDK; spans are kept until exported."""

    def __init__(self, tenant: str, convention: str) -> None:
        self.tenant = tenant
        self.convention = convention
        self.finished = InMemorySpanExporter()
        resource = {"service.name": f"rag-{tenant}"}
        if convention == "genai":
            resource["tenant.id"] = tenant  # on the resource: one service per tenant
        self.provider = TracerProvider(resource=Resource.create(resource))
        self.provider.add_span_processor(SimpleSpanProcessor(self.finished))
        self.tracer = self.provider.get_tracer("rag-app")

    def retrieve(self, question: str, *, at: datetime, record_text: bool, answer: bool) -> None:
        ranked = sorted(DOCUMENTS[self.tenant], key=lambda doc: -_overlap(question, doc[1]))
        scores = [round(0.9 - 0.1 * rank, 3) for rank in range(len(ranked))]
        start = int(at.timestamp() * 1e9)
        with self.tracer.start_as_current_span("rag", start_time=start, end_on_exit=False) as root:
            span = self.tracer.start_span("retrieval kbase", start_time=start + 1_000)
            if self.convention == "genai":
                span.set_attribute("gen_ai.operation.name", "retrieval")
                span.set_attribute("gen_ai.data_source.id", "kbase")
                span.set_attribute("gen_ai.retrieval.top_k", len(ranked))
                if record_text:
                    span.set_attribute("gen_ai.retrieval.query.text", question)
                span.set_attribute(
                    "gen_ai.retrieval.documents",
                    json.dumps(
                        [
                            {"id": doc_id, "score": score, "content": text}
                            for (doc_id, text), score in zip(ranked, scores, strict=True)
                        ]
                    ),
                )
            else:
                span.set_attribute("openinference.span.kind", "RETRIEVER")
                span.set_attribute("tenant.id", self.tenant)
                if record_text:
                    span.set_attribute("input.value", question)
                for index, ((doc_id, text), score) in enumerate(zip(ranked, scores, strict=True)):
                    prefix = f"retrieval.documents.{index}.document"
                    span.set_attribute(f"{prefix}.id", doc_id)
                    span.set_attribute(f"{prefix}.score", score)
                    span.set_attribute(f"{prefix}.content", text)
            span.end(end_time=start + 9_000_000)
            if answer:
                generation = self.tracer.start_span("chat", start_time=start + 10_000_000)
                text = f"{ranked[0][1]} (write to help@example.com)"
                if self.convention == "genai":
                    generation.set_attribute("gen_ai.operation.name", "chat")
                    generation.set_attribute(
                        "gen_ai.output.messages",
                        json.dumps(
                            [{"role": "assistant", "parts": [{"type": "text", "content": text}]}]
                        ),
                    )
                else:
                    generation.set_attribute("openinference.span.kind", "LLM")
                    generation.set_attribute("output.value", text)
                generation.end(end_time=start + 40_000_000)
            root.end(end_time=start + 50_000_000)

    def spans(self) -> list[ReadableSpan]:
        return list(self.finished.get_finished_spans())


def _overlap(question: str, text: str) -> int:
    return len(set(question.lower().split()) & set(text.lower().split()))


def retrieval_id(span: ReadableSpan) -> str | None:
    attributes = span.attributes or {}
    is_retrieval = attributes.get("gen_ai.operation.name") == "retrieval" or (
        attributes.get("openinference.span.kind") == "RETRIEVER"
    )
    if not is_retrieval:
        return None
    return f"{span.context.trace_id:032x}-{span.context.span_id:016x}"


def exporter(home: Home, *, gzip_it: bool) -> OTLPSpanExporter:
    return OTLPSpanExporter(
        endpoint=home.traces_url,
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=5,
        compression=Compression.Gzip if gzip_it else Compression.NoCompression,
    )


def chunks(spans: Sequence[ReadableSpan], size: int) -> list[list[ReadableSpan]]:
    return [list(spans[i : i + size]) for i in range(0, len(spans), size)]


def raw_post(home: Home, body: bytes, content_type: str, **headers: str) -> httpx.Response:
    return httpx.post(
        home.traces_url,
        content=body,
        headers={"Content-Type": content_type, "Authorization": f"Bearer {TOKEN}", **headers},
        timeout=30,
    )


def metric(serve: Serve, name: str) -> float:
    for line in httpx.get(f"{serve.url}/metrics", timeout=10).text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in /metrics")


# -- the test -------------------------------------------------------------------------------


def test_sdk_spans_survive_kill_9_once_each_and_replay_with_tenants_apart(
    home: Home, serves: list[Serve], embedder: Embedder
) -> None:
    apps = {"acme": App("acme", "genai"), "globex": App("globex", "openinference")}
    for day_index, day in enumerate(DAYS):
        base = datetime.fromisoformat(f"{day}T08:00:00+00:00")
        for round_ in range(10):
            for offset, question in enumerate(QUESTIONS):
                for tenant, app in apps.items():
                    moment = base + timedelta(minutes=round_ * 10 + offset)
                    app.retrieve(
                        question if round_ % 2 == 0 else f"{question} please",
                        at=moment,
                        record_text=(round_ + offset) % 7 != 3,
                        answer=round_ == day_index and tenant == "acme",
                    )
    spans = {tenant: app.spans() for tenant, app in apps.items()}
    all_retrievals = {rid for group in spans.values() for s in group if (rid := retrieval_id(s))}
    assert len(all_retrievals) == 2 * 10 * 6 * 2

    serve = start_serve(home, serves)
    acked: list[list[ReadableSpan]] = []
    failed: list[list[ReadableSpan]] = []

    # Phase 1: globex over protobuf, gzip-compressed, a chunk at a time.
    sender = exporter(home, gzip_it=True)
    for chunk in chunks(spans["globex"], 40):
        assert sender.export(chunk) is SpanExportResult.SUCCESS
        acked.append(chunk)

    # Malformed payloads are refused with 400 and the reason, and counted.
    not_json = raw_post(home, b"{not json", "application/json")
    assert not_json.status_code == 400
    assert "not valid JSON" in not_json.json()["message"]
    not_utf8 = b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"name":"\xff\xfe"}]}]}]}'
    not_text = raw_post(home, not_utf8, "application/json")
    assert not_text.status_code == 400  # never "send it again later": it will never be read
    assert "not valid UTF-8" in not_text.json()["message"]
    not_protobuf = raw_post(home, b"\xff\xff\xff\xff", "application/x-protobuf")
    assert not_protobuf.status_code == 400
    assert b"not an OTLP protobuf" in not_protobuf.content
    bad_gzip = raw_post(home, b"plain", "application/json", **{"Content-Encoding": "gzip"})
    assert bad_gzip.status_code == 400
    wrong_token = httpx.post(
        home.traces_url,
        content=b"{}",
        headers={"Content-Type": "application/json", "Authorization": "Bearer nope"},
        timeout=30,
    )
    assert wrong_token.status_code == 401
    too_large = raw_post(home, b"{" + b" " * 300_000 + b"}", "application/json")
    assert too_large.status_code == 413
    bomb = gzip.compress(b" " * 1_000_000)
    inflated = raw_post(home, bomb, "application/json", **{"Content-Encoding": "gzip"})
    assert inflated.status_code == 413
    assert metric(serve, 'evalkit_otlp_requests_total{result="malformed"}') == 4
    assert metric(serve, 'evalkit_otlp_requests_total{result="unauthorized"}') == 1
    assert metric(serve, 'evalkit_otlp_requests_total{result="too_large"}') == 2

    # A request with one unreadable span: partial success, the rest stored.
    one_bad = ExportTraceServiceResponse()
    request = encode_spans(spans["acme"][:6])
    broken = request.resource_spans[0].scope_spans[0].spans[0]
    broken.span_id = b"\x00" * 8
    partial = raw_post(home, request.SerializeToString(), "application/x-protobuf")
    assert partial.status_code == 200
    one_bad.ParseFromString(partial.content)
    assert one_bad.partial_success.rejected_spans == 1
    assert "span_id must be 8 bytes" in one_bad.partial_success.error_message
    assert metric(serve, "evalkit_otlp_spans_rejected_total") == 1

    # OTLP/JSON over HTTP: the same spans (protobuf JSON, base64 ids) are duplicates, and
    # the first six acme spans arrive in full.
    as_json = MessageToJson(encode_spans(spans["acme"][:6])).encode()
    answered = raw_post(home, as_json, "application/json")
    assert answered.status_code == 200
    assert answered.json() == {}
    acked.append(spans["acme"][:6])

    # Phase 2: acme over protobuf without compression; kill -9 while it is being sent.
    remaining = chunks(spans["acme"][6:], 12)
    plain = exporter(home, gzip_it=False)
    halfway = threading.Event()
    stop_sending = threading.Event()

    def send() -> None:
        for index, chunk in enumerate(remaining):
            if stop_sending.is_set():
                failed.extend(remaining[index:])
                return
            result = plain.export(chunk)
            (acked if result is SpanExportResult.SUCCESS else failed).append(chunk)
            if len(acked) >= 14:
                halfway.set()
            if result is not SpanExportResult.SUCCESS:
                stop_sending.set()

    thread = threading.Thread(target=send)
    thread.start()
    assert halfway.wait(120), "the exporter never got halfway"
    serve.process.send_signal(signal.SIGKILL)
    serve.process.wait(timeout=30)
    thread.join(120)
    assert failed, "the kill came too late: every chunk was acknowledged before it"
    acked_before_kill = {rid for chunk in acked for s in chunk if (rid := retrieval_id(s))}

    # Restart on the same port; the exporter sends what failed, and sends acknowledged
    # chunks again (as an exporter whose response was lost would).
    serve = start_serve(home, serves)
    again = exporter(home, gzip_it=False)
    for chunk in [*failed, acked[0], acked[-1]]:
        assert again.export(chunk) is SpanExportResult.SUCCESS
    wait_until(
        lambda: metric(serve, "evalkit_otlp_spans_duplicate_total") >= 1,
        what="the chunks sent again to be committed as duplicates",
    )
    assert serve.process.send_signal(signal.SIGTERM) is None
    assert serve.process.wait(timeout=60) == 0

    with Store.open(home.store) as store:
        counts = dict(store.fetch("SELECT query_id, count(*) FROM traffic_records GROUP BY ALL"))
        assert acked_before_kill <= set(counts)
        assert set(counts) == all_retrievals
        assert set(counts.values()) == {1}
        without_text = store.fetch("SELECT count(*) FROM traffic_records WHERE text IS NULL")
        assert (
            without_text[0][0]
            == sum(1 for _ in range(2) for r in range(10) for o in range(6) if (r + o) % 7 == 3) * 2
        )
        tenants = dict(store.fetch("SELECT tenant, count(*) FROM traffic_records GROUP BY ALL"))
        assert tenants == {"acme": 120, "globex": 120}
        assert store.fetch(
            "SELECT count(*) FROM traffic_records WHERE text LIKE '%@%' OR answer LIKE '%@%'"
        ) == [(0,)]
        volume = {
            start.date().isoformat(): rest
            for start, *rest in traffic_volume(store, granularity="day")
        }
        assert volume["2026-11-21"][0] == 120
        assert volume["2026-11-21"][3] > 0

        # Sample and replay each day, tenants kept apart by the Chroma where filter.
        summaries = []
        for day in DAYS:
            sample = sample_window(
                store,
                SampleSpec(
                    window=parse_window(day),
                    n=40,
                    seed=5,
                    stratify_by=parse_stratification("tenant"),
                    min_per_stratum=5,
                ),
            )
            sampled = store.fetch(
                "SELECT q.query_id, q.tenant, r.text FROM traffic_sample_queries q"
                " JOIN traffic_records r USING (query_id) WHERE q.sample_id = ?",
                [sample.sample_id],
            )
            assert {tenant for _, tenant, _ in sampled} == {"acme", "globex"}
            assert all(text is not None for _, _, text in sampled)
            with ChromaRetriever.embedded(
                home.root / "home" / "chroma", "kbase", embedder, where_key="tenant"
            ) as kb:
                outcome = replay_traffic_window(
                    store,
                    sample.sample_id,
                    kb,
                    TrafficReplayRequest(k=3, answers=False),
                    setup=ReplaySetup(embedder=embedder),
                )
            assert outcome.run.status == "complete"
            tenant_of = {query_id: tenant for query_id, tenant, _ in sampled}
            for query_id, _, doc_id, _ in run_results(store, outcome.run.run_id).itertuples(
                index=False
            ):
                assert OWNER[doc_id] == tenant_of[query_id]
            summary = outcome.summary
            assert summary.n_replayed == len(sampled)
            assert summary.n_compared == len(sampled)
            assert summary.churn is not None
            assert 0.0 <= summary.churn <= 1.0
            assert summary.logged_latency_p50 == pytest.approx(9.0, rel=0.01)
            assert summary.n_embeddings > 0
            summaries.append(summary)

        # The generation spans' answers are the logged answers the replay would score.
        with_answers = store.fetch(
            "SELECT query_id FROM traffic_records WHERE answer IS NOT NULL ORDER BY query_id"
        )
        answers = logged_answers(store, [row[0] for row in with_answers])
        assert answers
        assert all("<email>" in a.answer and a.contexts for a in answers)

        drift = check_drift_queries(store)
        assert drift.check is not None
        assert (drift.compared or {})["current"] == "2026-11-21"
        # Spans without text feed the logged-score comparison too.
        first, second = (parse_window(day) for day in DAYS)
        reference = logged_top1_scores(store, start=first.start, end=first.end)
        current = logged_top1_scores(store, start=second.start, end=second.end)
        assert len(reference) == len(current) == 120
        assert not top1_score_shift(reference, current).is_drift


def test_otlp_json_posts_acknowledged_then_killed_are_stored_by_the_next_start(
    home: Home, serves: list[Serve]
) -> None:
    app = App("acme", "genai")
    when = datetime(2026, 11, 22, 9, tzinfo=UTC)
    for index, question in enumerate(QUESTIONS):
        app.retrieve(question, at=when + timedelta(minutes=index), record_text=True, answer=False)
    serve = start_serve(home, serves)
    body = gzip.compress(MessageToJson(encode_spans(app.spans())).encode())
    answered = raw_post(home, body, "application/json", **{"Content-Encoding": "gzip"})
    assert answered.status_code == 200
    # Acknowledged means durable: a kill -9 right after the answer loses nothing.
    serve.process.send_signal(signal.SIGKILL)
    serve.process.wait(timeout=30)
    assert metric_missing_after_kill(serve)
    serve = start_serve(home, serves)
    stop(serve)
    with Store.open(home.store) as store:
        assert store.fetch("SELECT count(*), count(DISTINCT tenant) FROM traffic_records") == [
            (6, 1)
        ]
    assert spool_files(home) == []


def metric_missing_after_kill(serve: Serve) -> bool:
    try:
        httpx.get(f"{serve.url}/metrics", timeout=2)
    except httpx.TransportError:
        return True
    return False


def stop(serve: Serve) -> None:
    """SIGTERM, and a clean exit (the spool is committed on the way out)."""
    serve.process.send_signal(signal.SIGTERM)
    assert serve.process.wait(timeout=60) == 0


# -- the spool: a job holding the store never makes the receiver refuse spans -----------

HOLDER = """
import sys, time
from pathlib import Path
from evalkit.store.access import StoreAccess

access = StoreAccess(Path(sys.argv[1]), wait=120, program="test holder")
with access.writer("a long job"):
    print("held", flush=True)
    release = Path(sys.argv[2])
    while not release.exists():
        time.sleep(0.05)
"""


class StoreHolder:
    """Another process holding the store's writer lock (and the DuckDB file) until released."""

    def __init__(self, home: Home) -> None:
        self.release_file = home.root / f"release-{time.monotonic_ns()}"
        self.process = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(home.store), str(self.release_file)],
            env=home.env,
            stdout=subprocess.PIPE,
        )
        assert self.process.stdout is not None
        assert self.process.stdout.readline().strip() == b"held"
        self.since = time.monotonic()

    def release(self) -> None:
        self.release_file.touch()
        assert self.process.wait(timeout=30) == 0

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)


@pytest.fixture
def holders() -> Iterator[list[StoreHolder]]:
    started: list[StoreHolder] = []
    yield started
    for holder in started:
        holder.kill()


def hold_store(home: Home, holders: list[StoreHolder]) -> StoreHolder:
    holders.append(StoreHolder(home))
    return holders[-1]


def spool_files(home: Home) -> list[str]:
    spool = home.store.with_name(home.store.name + ".otlp-spool")
    return sorted(path.name for path in spool.iterdir()) if spool.exists() else []


def health(serve: Serve) -> dict[str, Any]:
    body: dict[str, Any] = httpx.get(f"{serve.url}/healthz", timeout=10).json()
    return body


def one_day_of_traffic(
    tenant: str, convention: str, day: str, *, answer: bool, rounds: int = 5
) -> App:
    app = App(tenant, convention)
    base = datetime.fromisoformat(f"{day}T08:00:00+00:00")
    for round_ in range(rounds):
        for offset, question in enumerate(QUESTIONS):
            app.retrieve(
                f"{question} {round_}",
                at=base + timedelta(minutes=round_ * 10 + offset),
                record_text=True,
                answer=answer and offset == 0,
            )
    return app


def retrievals(chunks_: Sequence[Sequence[ReadableSpan]]) -> set[str]:
    return {rid for chunk in chunks_ for s in chunk if (rid := retrieval_id(s))}


def stored_counts(home: Home) -> dict[str, int]:
    with Store.open(home.store, read_only=True) as store:
        return dict(store.fetch("SELECT query_id, count(*) FROM traffic_records GROUP BY ALL"))


def test_spans_are_acknowledged_while_a_job_holds_the_store_and_stored_once_it_is_free(
    home: Home, serves: list[Serve], holders: list[StoreHolder]
) -> None:
    spans = one_day_of_traffic("acme", "genai", "2026-11-23", answer=True).spans()
    serve = start_serve(home, serves)
    holder = hold_store(home, holders)
    sender = exporter(home, gzip_it=True)  # retries a 503 for its 5 s timeout, then drops
    sent = chunks(spans, 15)
    for chunk in sent:
        began = time.monotonic()
        assert sender.export(chunk) is SpanExportResult.SUCCESS
        assert time.monotonic() - began < 3.0, "a request waited for the store"
    # Held for longer than the exporter would have retried: nothing was refused.
    wait_until(
        lambda: metric(serve, "evalkit_otlp_spool_lag_seconds") >= 5.0,
        timeout=60,
        what="the spool to be held past the exporter's 5 s retry window",
    )
    assert metric(serve, "evalkit_otlp_spool_batches") == len(sent)
    assert metric(serve, "evalkit_otlp_spool_bytes") > 0
    assert metric(serve, "evalkit_otlp_spool_lag_seconds") >= 5.0
    assert metric(serve, "evalkit_otlp_spans_stored_total") == 0
    assert metric(serve, 'evalkit_otlp_requests_total{result="accepted"}') == len(sent)
    assert metric(serve, 'evalkit_otlp_requests_total{result="unavailable"}') == 0
    spool = health(serve)["otlp"]
    assert (spool["batches"], spool["last_commit"]) == (len(sent), None)
    assert len(spool_files(home)) == len(sent)

    holder.release()
    wait_until(
        lambda: metric(serve, "evalkit_otlp_spool_batches") == 0,
        timeout=60,
        what="the spool to be committed once the store is free",
    )
    assert metric(serve, "evalkit_otlp_spans_stored_total") == len(retrievals(sent))
    assert metric(serve, "evalkit_otlp_spool_committed_total") == len(sent)
    assert metric(serve, "evalkit_otlp_spool_lag_seconds") == 0
    assert health(serve)["otlp"]["last_commit"] is not None
    assert spool_files(home) == []
    stop(serve)
    counts = stored_counts(home)
    assert set(counts) == retrievals(sent)
    assert set(counts.values()) == {1}
    with Store.open(home.store, read_only=True) as store:
        answered = store.fetch("SELECT count(*) FROM traffic_records WHERE answer IS NOT NULL")
    assert answered == [(5,)]


def test_spans_acknowledged_before_a_kill_9_while_the_store_is_held_are_stored_once(
    home: Home, serves: list[Serve], holders: list[StoreHolder]
) -> None:
    spans = one_day_of_traffic("globex", "openinference", "2026-11-24", answer=True).spans()
    serve = start_serve(home, serves)
    holder = hold_store(home, holders)
    sent = chunks(spans, 12)
    sender = exporter(home, gzip_it=False)
    for chunk in sent[:-1]:
        assert sender.export(chunk) is SpanExportResult.SUCCESS
    # One span that cannot be read: its problem is reported once, however often committed.
    request = encode_spans(sent[-1])
    request.resource_spans[0].scope_spans[0].spans[0].span_id = b"\x00" * 8
    partial = raw_post(home, request.SerializeToString(), "application/x-protobuf")
    assert partial.status_code == 200
    reply = ExportTraceServiceResponse()
    reply.ParseFromString(partial.content)
    assert reply.partial_success.rejected_spans == 1
    broken = retrieval_id(sent[-1][0])
    acked = retrievals(sent) - {broken}

    serve.process.send_signal(signal.SIGKILL)
    serve.process.wait(timeout=30)
    assert len([name for name in spool_files(home) if name.endswith(".batch")]) == len(sent)

    # Started again while the store is still held: the service cannot recover its runs
    # yet, but the receiver already takes spans (the exporter retries until it listens).
    serve = launch_serve(home, serves)
    late = one_day_of_traffic("globex", "openinference", "2026-11-25", answer=False).spans()
    patient = OTLPSpanExporter(
        endpoint=home.traces_url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=90
    )
    assert patient.export(late) is SpanExportResult.SUCCESS
    assert holder.process.poll() is None, "the store was let go too early"
    acked |= retrievals([late])
    holder.release()
    serve = wait_for_serve(home, serve)
    wait_until(
        lambda: metric(serve, "evalkit_otlp_spool_batches") == 0,
        timeout=60,
        what="the spool left by the killed process to be committed",
    )
    assert metric(serve, "evalkit_otlp_spans_stored_total") == len(acked)
    # An exporter whose answer was lost sends a chunk again: nothing is stored twice.
    assert exporter(home, gzip_it=False).export(sent[0]) is SpanExportResult.SUCCESS
    wait_until(
        lambda: metric(serve, "evalkit_otlp_spans_duplicate_total") == len(retrievals([sent[0]])),
        what="the chunk sent again to be committed as duplicates",
    )
    stop(serve)
    counts = stored_counts(home)
    assert set(counts) == acked
    assert set(counts.values()) == {1}
    with Store.open(home.store, read_only=True) as store:
        problems = store.fetch("SELECT message FROM traffic_ingest_problems")
        answers = store.fetch("SELECT count(*) FROM traffic_records WHERE answer IS NOT NULL")
    assert len(problems) == 1
    assert "span_id must be 8 bytes" in problems[0][0]
    assert answers == [(5,)]


def test_a_full_spool_answers_503_with_retry_after_and_loses_nothing(
    home: Home, serves: list[Serve], holders: list[StoreHolder]
) -> None:
    config = Path(home.env["EVALKIT_CONFIG"])
    config.write_text(config.read_text() + "spool_max_bytes = 65536\n")
    spans = one_day_of_traffic("acme", "genai", "2026-11-25", answer=False, rounds=40).spans()
    serve = start_serve(home, serves)
    holder = hold_store(home, holders)
    accepted: list[list[ReadableSpan]] = []
    refused: list[list[ReadableSpan]] = []
    for chunk in chunks(spans, 30):
        body = encode_spans(chunk).SerializeToString()
        answer = raw_post(home, body, "application/x-protobuf")
        if answer.status_code == 200:
            assert not refused, "accepted after a refusal while the store is still held"
            accepted.append(chunk)
            continue
        assert answer.status_code == 503
        assert answer.headers["Retry-After"].isdigit()
        assert b"spool_max_bytes" in answer.content
        refused.append(chunk)
    assert accepted, "the spool refused even the first request"
    assert refused, "the spool never filled: raise the traffic or lower the bound"
    assert metric(serve, 'evalkit_otlp_requests_total{result="spool_full"}') == len(refused)
    assert metric(serve, "evalkit_otlp_spool_bytes") <= 65536
    assert metric(serve, "evalkit_otlp_spool_max_bytes") == 65536

    holder.release()
    wait_until(
        lambda: metric(serve, "evalkit_otlp_spool_batches") == 0,
        timeout=60,
        what="the full spool to be committed",
    )
    # What was refused is sent again after Retry-After, as an exporter would.
    deadline = time.monotonic() + 120
    for chunk in refused:
        body = encode_spans(chunk).SerializeToString()
        while (answer := raw_post(home, body, "application/x-protobuf")).status_code == 503:
            assert time.monotonic() < deadline, "the spool stayed full with the store free"
            time.sleep(float(answer.headers["Retry-After"]))
        assert answer.status_code == 200
    stop(serve)
    counts = stored_counts(home)
    assert set(counts) == retrievals([*accepted, *refused]) == retrievals([spans])
    assert set(counts.values()) == {1}


# -- SIGTERM with a backlog the grace period cannot commit ---------------------------------

# Imported by `evalkit serve` as a [scheduler] plugin: each commit first spends a while inside
# DuckDB (as on a store of millions of records), and the receiver's grace is short, so a
# backlog of a few batches outlasts it with the committer in native code.
SLOW_COMMITS = """
import evalkit.scheduler.service as service
import evalkit.traffic.committer as committer

service._RECEIVER_GRACE = 0.2
_commit = committer.commit_spans


def _slow(store, prepared, **options):
    store.fetch("SELECT count(DISTINCT hash(i)) FROM range(3000000) t(i)")
    return _commit(store, prepared, **options)


committer.commit_spans = _slow
"""


def test_sigterm_with_a_backlog_past_the_grace_exits_0_and_the_next_start_stores_the_rest(
    tmp_path: Path, serves: list[Serve]
) -> None:
    home = receiver_home(tmp_path, "")
    (tmp_path / "slow_commits.py").write_text(SLOW_COMMITS)
    config = Path(home.env["EVALKIT_CONFIG"])
    plain = config.read_text()
    config.write_text(plain.replace("[scheduler]\n", '[scheduler]\nplugins = ["slow_commits"]\n'))
    home.env["PYTHONPATH"] = f"{tmp_path}:{home.env.get('PYTHONPATH', '')}"
    spans = one_day_of_traffic("acme", "genai", "2026-11-26", answer=False, rounds=20).spans()
    sent = chunks(spans, 6)
    serve = start_serve(home, serves)
    for chunk in sent:
        answer = raw_post(home, encode_spans(chunk).SerializeToString(), "application/x-protobuf")
        assert answer.status_code == 200
    assert metric(serve, "evalkit_otlp_spool_batches") >= 5, "the backlog drained too soon"

    serve.process.send_signal(signal.SIGTERM)
    assert serve.process.wait(timeout=60) == 0, serve.log.read_text()
    log = serve.log.read_text()
    assert "terminate called" not in log
    assert "FATAL" not in log
    assert "the next start commits them" in log
    left = [name for name in spool_files(home) if name.endswith(".batch")]
    assert left, "every batch was committed within the grace: the test proves nothing"

    config.write_text(plain)
    serve = start_serve(home, serves)
    wait_until(
        lambda: metric(serve, "evalkit_otlp_spool_batches") == 0,
        timeout=60,
        what="the batches left by the stop to be committed",
    )
    stop(serve)
    counts = stored_counts(home)
    assert set(counts) == retrievals(sent)
    assert set(counts.values()) == {1}


# -- answers of generation spans, scored as logged answers ---------------------------------

UNFAITHFUL = {
    "acme-password": "Passwords are reset only by a notarised letter to our Lisbon office.",
    "acme-invoice": "Invoices never expire and you may pay them whenever you like, in gold coins.",
    "acme-refund": "Cancelled orders are refunded as store credit that lapses after a week.",
    "globex-shipping": "Every parcel is delivered by drone within ten minutes, worldwide.",
    "globex-returns": "Returned parcels must be shipped to Antarctica at your own expense.",
    "globex-tracking": "Parcels cannot be tracked; call a random courier and ask them.",
}
TOPICS = {
    "acme-password": "how do I reset my password",
    "acme-invoice": "when is my invoice due",
    "acme-refund": "can I get a refund for a cancelled order",
    "globex-shipping": "how long does shipping take",
    "globex-returns": "how do I return a parcel",
    "globex-tracking": "where can I track my parcel",
}


@dataclass(frozen=True)
class Answered:
    query_id: str
    faithful: bool
    contexts: list[str]


def answered_trace(
    app: App, doc_id: str, *, at: datetime, faithful: bool, contexts_on_generation: bool
) -> Answered:
    """One trace: a retrieval span ranking ``doc_id`` first (with the documents' contents),
    then a generation span answering from it (faithfully or not); with
    ``contexts_on_generation`` the generation span records the document it was given."""
    documents = DOCUMENTS[app.tenant]
    ranked = sorted(documents, key=lambda doc: doc[0] != doc_id)
    question = TOPICS[doc_id] if faithful else f"{TOPICS[doc_id]} please"
    answer = ranked[0][1] if faithful else UNFAITHFUL[doc_id]
    start = int(at.timestamp() * 1e9)
    genai = app.convention == "genai"
    with app.tracer.start_as_current_span("rag", start_time=start, end_on_exit=False) as root:
        span = app.tracer.start_span("retrieval kbase", start_time=start + 1_000)
        if genai:
            span.set_attribute("gen_ai.operation.name", "retrieval")
            span.set_attribute("gen_ai.retrieval.query.text", question)
            span.set_attribute(
                "gen_ai.retrieval.documents",
                json.dumps(
                    [
                        {"id": d, "score": 0.9 - rank / 10, "content": text}
                        for rank, (d, text) in enumerate(ranked)
                    ]
                ),
            )
        else:
            span.set_attribute("openinference.span.kind", "RETRIEVER")
            span.set_attribute("tenant.id", app.tenant)
            span.set_attribute("input.value", question)
            for rank, (d, text) in enumerate(ranked):
                span.set_attribute(f"retrieval.documents.{rank}.document.id", d)
                span.set_attribute(f"retrieval.documents.{rank}.document.score", 0.9 - rank / 10)
                span.set_attribute(f"retrieval.documents.{rank}.document.content", text)
        span.end(end_time=start + 9_000_000)
        generation = app.tracer.start_span("generate", start_time=start + 10_000_000)
        if genai:
            generation.set_attribute("gen_ai.operation.name", "chat")
            generation.set_attribute(
                "gen_ai.output.messages",
                json.dumps([{"role": "assistant", "parts": [{"type": "text", "content": answer}]}]),
            )
            if contexts_on_generation:
                generation.set_attribute(
                    "gen_ai.retrieval.documents",
                    json.dumps([{"id": ranked[0][0], "content": ranked[0][1]}]),
                )
        else:
            generation.set_attribute("openinference.span.kind", "LLM")
            generation.set_attribute("llm.output_messages.0.message.role", "assistant")
            generation.set_attribute("llm.output_messages.0.message.content", answer)
            if contexts_on_generation:
                generation.set_attribute("retrieval.documents.0.document.id", ranked[0][0])
                generation.set_attribute("retrieval.documents.0.document.content", ranked[0][1])
        generation.end(end_time=start + 40_000_000)
        root.end(end_time=start + 50_000_000)
    query_id = f"{span.get_span_context().trace_id:032x}-{span.get_span_context().span_id:016x}"
    given = [ranked[0][1]] if contexts_on_generation else [text for _, text in ranked]
    return Answered(query_id, faithful, given)


def test_answers_of_generation_spans_are_scored_as_logged_answers(
    home: Home, serves: list[Serve], embedder: Embedder
) -> None:
    apps = {"acme": App("acme", "genai"), "globex": App("globex", "openinference")}
    day = "2026-11-26"
    base = datetime.fromisoformat(f"{day}T08:00:00+00:00")
    traces: list[Answered] = []
    for tenant, app in apps.items():
        for index, (doc_id, _) in enumerate(DOCUMENTS[tenant]):
            for faithful in (True, False):
                traces.append(
                    answered_trace(
                        app,
                        doc_id,
                        at=base + timedelta(minutes=len(traces)),
                        faithful=faithful,
                        contexts_on_generation=index == 0,
                    )
                )
    serve = start_serve(home, serves)
    sender = exporter(home, gzip_it=True)
    # Traces split across requests, and globex's sent last request first: a generation span
    # often arrives before its retrieval span.
    for chunk in [*chunks(apps["acme"].spans(), 4), *reversed(chunks(apps["globex"].spans(), 4))]:
        assert sender.export(chunk) is SpanExportResult.SUCCESS
    stop(serve)

    with Store.open(home.store) as store:
        stored = {
            query_id: (answer, contexts)
            for query_id, answer, contexts in store.fetch(
                "SELECT query_id, answer, contexts FROM traffic_records"
            )
        }
        assert set(stored) == {trace.query_id for trace in traces}
        for trace in traces:
            answer, contexts = stored[trace.query_id]
            assert answer is not None
            assert contexts == trace.contexts

        sample = sample_window(store, SampleSpec(window=parse_window(day), n=100, seed=3))
        assert sample.n_sampled == len(traces)
        with ChromaRetriever.embedded(
            home.root / "home" / "chroma", "kbase", embedder, where_key="tenant"
        ) as kb:
            outcome = replay_traffic_window(
                store,
                sample.sample_id,
                kb,
                TrafficReplayRequest(k=3, answers=True),
                setup=ReplaySetup(judge_settings=JudgeSettings(method=ScoringMethod.offline)),
            )
        assert outcome.answers is not None
        assert outcome.answers.scoring_id is not None
        assert outcome.answers.n_records == len(traces)
        (scoring,) = list_scorings(store, run_id=outcome.run.run_id)
        scores = answer_scores_frame(store, scoring.scoring_id)
    faithfulness = scores[scores["metric"] == "faithfulness"]
    assert set(faithfulness["method"]) == {"offline-embedding"}
    value = dict(zip(faithfulness["item_id"], faithfulness["value"], strict=True))
    assert set(value) == {trace.query_id for trace in traces}
    assert all(v is not None and 0.0 <= v <= 1.0 for v in value.values())
    pairs = [
        (value[faithful.query_id], value[unfaithful.query_id])
        for faithful, unfaithful in zip(traces[::2], traces[1::2], strict=True)
    ]
    for faithful_score, unfaithful_score in pairs:
        assert faithful_score >= unfaithful_score + 0.5
