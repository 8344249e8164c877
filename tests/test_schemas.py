"""The published JSON Schemas: current with the code, valid for the repository's real files
and for what evalkit itself writes and sends, and in agreement with evalkit's own readers
on what they accept and refuse."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, ClassVar

import pytest
from loopback import serving
from test_scheduler_support import Receiver, receiver_fixture  # noqa: F401  (fixture)

from evalkit.alerts import Alert, AlertStatus, WebhookSink
from evalkit.errors import ConfigError
from evalkit.goldset import Goldset, validate_corpus, validate_goldset, write_jsonl_goldset
from evalkit.records import AlertSeverity, Judgment, Query, ScoredDoc
from evalkit.retrievers import HttpRetriever
from evalkit.retrievers.http import MalformedResponseError, parse_response
from evalkit.schemas import SCHEMA_NAMES, load_schema, schema_file_name
from evalkit.schemas.generate import render
from evalkit.traffic import format_log_line, log_query
from evalkit.traffic._records import RecordBatchBuilder

jsonschema = pytest.importorskip("jsonschema")

REPO_ROOT = Path(__file__).resolve().parents[1]
DOCS = REPO_ROOT / "docs"
DEMO = REPO_ROOT / "goldsets" / "demo"
SMALL = REPO_ROOT / "tests" / "data" / "goldset" / "jsonl_small"


def validator(name: str) -> Any:
    return jsonschema.Draft202012Validator(load_schema(name))


def errors(name: str, instance: object) -> list[str]:
    return [error.message for error in validator(name).iter_errors(instance)]


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def json_blocks(doc: str, *, after: str) -> list[Any]:
    """The JSON of each ```json block of ``docs/<doc>`` that follows the first line holding
    ``after`` until the next heading: one value per line, or the whole block as one."""
    text = (DOCS / doc).read_text(encoding="utf-8")
    start = text.index(after)
    end = text.find("\n#", start)
    section = text[start : end if end != -1 else None]
    values = []
    for block in re.findall(r"```json\n(.*?)```", section, re.DOTALL):
        try:
            values.append(json.loads(block))
        except json.JSONDecodeError:
            values.extend(json.loads(line) for line in block.splitlines() if line.strip())
    return values


# -- the files -------------------------------------------------------------------------


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_the_published_file_is_what_the_code_generates(name: str) -> None:
    path = REPO_ROOT / "evalkit" / "schemas" / schema_file_name(name)
    assert path.read_text(encoding="utf-8") == render(name), (
        f"{path.name} is stale: run `python -m evalkit.schemas` and commit the files"
    )
    schema = load_schema(name)
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_every_schema_file_is_package_data_and_listed() -> None:
    config = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = config["tool"]["setuptools"]["package-data"]["evalkit"]
    package = REPO_ROOT / "evalkit"
    shipped = {path for pattern in patterns for path in package.glob(pattern)}
    on_disk = set((package / "schemas").glob("*.json"))
    assert on_disk <= shipped
    assert {path.name for path in on_disk} == {schema_file_name(n) for n in SCHEMA_NAMES}
    with pytest.raises(ConfigError, match="no schema 'alert'"):
        schema_file_name("alert")


def test_the_command_prints_a_schema_and_lists_them() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "evalkit", "schema", "alert-payload"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == load_schema("alert-payload")
    listed = subprocess.run(
        [sys.executable, "-m", "evalkit", "schema", "--format", "json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert [item["name"] for item in json.loads(listed.stdout)] == list(SCHEMA_NAMES)
    unknown = subprocess.run(
        [sys.executable, "-m", "evalkit", "schema", "alerts"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert unknown.returncode == 2
    assert "no schema 'alerts'" in unknown.stderr


# -- (a) real files in the repository ---------------------------------------------------


@pytest.mark.parametrize(
    ("name", "path"),
    [
        ("goldset-query", DEMO / "queries.jsonl"),
        ("goldset-judgment", DEMO / "judgments.jsonl"),
        ("corpus-document", DEMO / "corpus.jsonl"),
        ("goldset-query", SMALL / "queries.jsonl"),
        ("goldset-judgment", SMALL / "judgments.jsonl"),
        ("corpus-document", SMALL / "corpus.jsonl"),
    ],
    ids=lambda value: value if isinstance(value, str) else str(value.relative_to(REPO_ROOT)),
)
def test_goldset_files_of_the_repository_are_valid(name: str, path: Path) -> None:
    records = lines(path)
    assert records
    for number, record in enumerate(records, start=1):
        assert errors(name, record) == [], f"{path.name}:{number}"


@pytest.mark.parametrize(
    ("name", "doc", "after", "count"),
    [
        ("goldset-query", "goldsets.md", "`queries.jsonl`:", 2),
        ("goldset-judgment", "goldsets.md", "`judgments.jsonl`:", 3),
        ("corpus-document", "goldsets.md", "A JSONL corpus line:", 1),
        ("traffic-log-line", "traffic.md", "## The log format", 1),
        ("http-retriever-response", "retrievers.md", "The endpoint answers `200`", 1),
        ("http-retriever-response", "retrievers.md", "### Answers from a RAG endpoint", 1),
        ("alert-payload", "alerts.md", "### Payload", 1),
    ],
)
def test_the_examples_in_the_docs_are_valid(name: str, doc: str, after: str, count: int) -> None:
    examples = json_blocks(doc, after=after)
    assert len(examples) >= count
    for example in examples[:count]:
        assert errors(name, example) == [], example


def test_the_request_example_in_the_docs_is_valid() -> None:
    text = (DOCS / "retrievers.md").read_text(encoding="utf-8")
    block = re.search(r"```http\nPOST <url>\n.*?\n\n(\{.*?\})\n```", text, re.DOTALL)
    assert block is not None
    assert errors("http-retriever-request", json.loads(block.group(1))) == []


# -- (b) what evalkit writes and sends --------------------------------------------------


def test_log_lines_evalkit_writes_are_valid(tmp_path: Path) -> None:
    moment = datetime(2026, 11, 21, 18, 35, tzinfo=UTC)
    produced = [
        format_log_line(text="reset password")[1],
        format_log_line(
            text="reset password",
            query_id="7f3c9a",
            timestamp=moment,
            tenant="acme",
            tags={"locale": "fr"},
            results=[ScoredDoc("kb-12", 0.83, 1), ("kb-7", 0.79), {"doc_id": "kb-1"}, "kb-2"],
            answer="Open Settings...",
            contexts=["To reset..."],
            latency_ms=41.5,
        )[1],
    ]
    log = tmp_path / "app.jsonl"
    log_query(log, text="where is my invoice", tenant="globex", results=[], latency_ms=0)
    produced.extend(log.read_bytes().splitlines(keepends=True))
    for line in produced:
        assert errors("traffic-log-line", json.loads(line)) == [], line
        builder = RecordBatchBuilder()
        builder.add_line(line, 1)
        assert builder.problems == []


def test_goldset_files_evalkit_writes_are_valid(tmp_path: Path) -> None:
    gold = Goldset.build(
        "written",
        [
            Query("q1", "rotate a key", tenant="acme", tags=("security",)),
            Query("q2", "refund window", reference_answer="30 days", reference_context_ids=("d3",)),
        ],
        [Judgment("q1", "d1", 2), Judgment("q2", "d3", 0)],
    )
    queries, judgments = write_jsonl_goldset(gold, tmp_path / "gs")
    for record in lines(queries):
        assert errors("goldset-query", record) == []
    for record in lines(judgments):
        assert errors("goldset-judgment", record) == []


class _Capture(BaseHTTPRequestHandler):
    bodies: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _Capture.bodies.append(body)
        answer = {"results": [{"id": "d1", "score": 0.9}, {"id": 7, "score": 0.5}]}
        payload = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def endpoint() -> Iterator[str]:
    _Capture.bodies = []
    with serving(_Capture) as url:
        yield f"{url}/search"


def test_the_request_the_http_retriever_sends_is_valid(endpoint: str) -> None:
    queries = [Query("q1", "rotate a key", tenant="acme"), Query("q2", "refund window")]
    with HttpRetriever(endpoint, retries=0) as retriever:
        results = retriever.retrieve(queries, 5)
    assert all(result.ok for result in results)
    assert sorted(body["query_id"] for body in _Capture.bodies) == ["q1", "q2"]
    for body in _Capture.bodies:
        assert errors("http-retriever-request", body) == [], body
    assert {body["tenant"] for body in _Capture.bodies} == {"acme", None}


def test_the_alert_payload_a_webhook_receiver_gets_is_valid(receiver: Receiver) -> None:
    sink = WebhookSink(name="hook", url=receiver.url, sleep=lambda seconds: None)
    moment = datetime(2026, 11, 21, 2, 5, 12, 250_000)
    for status in AlertStatus:
        alert = Alert(
            alert_id=f"a-{status.value}",
            rule="precision-drop",
            kind="precision_regression",
            dedup_key="precision-drop:demo",
            subject="demo",
            status=status,
            severity=AlertSeverity.critical,
            title="precision@10 dropped",
            summary="precision@10 0.31 -> 0.27",
            evidence={"metric": "precision@10", "delta": float("nan"), "worst_queries": []},
            links={"candidate_run": "evalkit runs show 20261121T020000-abcdef"},
            fired_at=moment,
            created_at=moment,
        )
        assert sink.send(alert).ok
    received = [request.payload for request in receiver.all()]
    assert [payload["status"] for payload in received] == ["firing", "resolved"]
    for payload in received:
        assert errors("alert-payload", payload) == [], payload


# -- (c) what is refused ------------------------------------------------------------------

QUERY_LINES: list[tuple[dict[str, Any], bool]] = [
    ({"id": "q1", "text": "rotate"}, True),
    ({"id": "q1", "text": "rotate", "tenant": None, "tags": None}, True),
    ({"id": "q 1", "text": "inner spaces are fine", "tags": ["a b"]}, True),
    ({"id": "q1", "text": "rotate", "reference_context_ids": ["d1", "d2"]}, True),
    ({"id": 1, "text": "rotate"}, False),
    ({"id": "", "text": "rotate"}, False),
    ({"id": " q1", "text": "rotate"}, False),
    ({"id": "q1\n", "text": "rotate"}, False),
    ({"id": "q1", "text": "   "}, False),
    ({"id": "q1"}, False),
    ({"id": "q1", "text": None}, False),
    ({"id": "q1", "text": "rotate", "tenant": ""}, False),
    ({"id": "q1", "text": "rotate", "tags": "security"}, False),
    ({"id": "q1", "text": "rotate", "tags": ["ok", ""]}, False),
    ({"id": "q1", "text": "rotate", "referance_answer": "typo"}, False),
]
JUDGMENT_LINES: list[tuple[dict[str, Any], bool]] = [
    ({"query_id": "q1", "doc_id": "d1", "relevance": 2}, True),
    ({"query_id": "q1", "doc_id": "d1", "relevance": 0}, True),
    ({"query_id": "q1", "doc_id": "d1", "relevance": 2.0}, True),
    ({"query_id": "q1", "doc_id": "d1", "relevance": -1}, False),
    ({"query_id": "q1", "doc_id": "d1", "relevance": 1.5}, False),
    ({"query_id": "q1", "doc_id": "d1", "relevance": True}, False),
    ({"query_id": "q1", "doc_id": "d1", "relevance": "2"}, False),
    ({"query_id": "q1", "doc_id": 7, "relevance": 1}, False),
    ({"query_id": "q1", "relevance": 1}, False),
    ({"query_id": "q1", "doc_id": "d1", "relevance": 1, "iteration": 0}, False),
]
DOCUMENT_LINES: list[tuple[dict[str, Any], bool]] = [
    ({"id": "d1", "text": "body"}, True),
    ({"_id": "d1", "text": "body"}, True),
    ({"id": "d1", "title": "Title only", "text": ""}, True),
    ({"id": "d1", "text": "body", "title": None, "metadata": None}, True),
    ({"id": "d1", "text": "body", "metadata": {"a": "x", "n": 3, "f": 0.5, "b": False}}, True),
    ({"id": "d1", "_id": "d1", "text": "body"}, False),
    ({"text": "body"}, False),
    ({"id": "d1", "text": " ", "title": ""}, False),
    ({"id": "d1", "text": ""}, False),
    ({"id": "d1", "title": "no text field"}, False),
    ({"id": "d1", "text": "body", "metadata": {"nested": {"a": 1}}}, False),
    ({"id": "d1", "text": "body", "metadata": {"list": [1]}}, False),
    ({"id": "d1", "text": "body", "metadata": "section"}, False),
    ({"id": "d1", "text": 3}, False),
    ({"id": "d1", "text": "body", "url": "https://example.com"}, False),
]


def goldset_accepts(tmp_path: Path, *, query: dict[str, Any] | None = None, judgment=None) -> bool:
    folder = tmp_path / "gs"
    folder.mkdir(exist_ok=True)
    query = query or {"id": "q1", "text": "rotate"}
    judgment = judgment or {"query_id": "q1", "doc_id": "d1", "relevance": 1}
    (folder / "queries.jsonl").write_text(json.dumps(query) + "\n")
    (folder / "judgments.jsonl").write_text(json.dumps(judgment) + "\n")
    return validate_goldset(folder) == []


@pytest.mark.parametrize(("record", "valid"), QUERY_LINES, ids=json.dumps)
def test_query_lines_agree_with_the_loader(tmp_path: Path, record: dict, valid: bool) -> None:
    assert (errors("goldset-query", record) == []) is valid
    judgment = {"query_id": record["id"], "doc_id": "d1", "relevance": 1}
    if isinstance(record.get("id"), str) and record["id"]:
        assert goldset_accepts(tmp_path, query=record, judgment=judgment) is valid
    else:
        assert not goldset_accepts(tmp_path, query=record)


@pytest.mark.parametrize(("record", "valid"), JUDGMENT_LINES, ids=json.dumps)
def test_judgment_lines_agree_with_the_loader(tmp_path: Path, record: dict, valid: bool) -> None:
    assert (errors("goldset-judgment", record) == []) is valid
    assert goldset_accepts(tmp_path, judgment=record) is valid


@pytest.mark.parametrize(("record", "valid"), DOCUMENT_LINES, ids=json.dumps)
def test_corpus_lines_agree_with_the_reader(tmp_path: Path, record: dict, valid: bool) -> None:
    assert (errors("corpus-document", record) == []) is valid
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(json.dumps(record) + "\n")
    assert (validate_corpus(corpus) == []) is valid


def logged(**fields: Any) -> dict[str, Any]:
    """A log line: query id ``a``, asked at 18:35 UTC, text ``q``, with ``fields`` on top."""
    return {"query_id": "a", "timestamp": "2026-11-21T18:35:00Z", "text": "q", **fields}


LOG_LINES: list[tuple[dict[str, Any], bool]] = [
    (logged(), True),
    (logged(query_id=7, timestamp=1795000000.5, extra={"any": "thing"}), True),
    (logged(timestamp="2026-11-21", results=["d1", {"doc_id": "d2"}]), True),
    (logged(timestamp="2026-11-21T18:35:00+02:00", tags={"n": 1}), True),
    (logged(timestamp="2026-11-21T18:35:00", latency_ms=0), True),
    (logged(query_id=""), False),
    (logged(timestamp="yesterday"), False),
    (logged(timestamp=1795000000500), False),
    (logged(timestamp=-1), False),
    (logged(text=" "), False),
    ({"query_id": "a", "timestamp": "2026-11-21T18:35:00Z"}, False),
    (logged(latency_ms=-2), False),
    (logged(results=[""]), False),
    (logged(results=[{"score": 1}]), False),
    (logged(tags={"n": [1]}), False),
    (logged(contexts="one"), False),
    (logged(query_id=True), False),
]


@pytest.mark.parametrize(("record", "valid"), LOG_LINES, ids=json.dumps)
def test_log_lines_agree_with_ingest(record: dict, valid: bool) -> None:
    assert (errors("traffic-log-line", record) == []) is valid
    builder = RecordBatchBuilder()
    builder.add_line(json.dumps(record).encode(), 1)
    assert (builder.problems == []) is valid, builder.problems


RESPONSES: list[tuple[Any, bool]] = [
    ({"results": []}, True),
    ({"results": [{"id": "a", "score": 1}, {"id": 7, "score": 0.5}]}, True),
    ({"results": [{"id": "a"}, {"id": "b"}], "answer": None, "took_ms": 3}, True),
    ({"results": [{"id": "a", "text": "passage", "score": 0.1}], "answer": "x"}, True),
    ({"results": [{"id": "a", "text": None}]}, True),
    ([], False),
    ({"hits": []}, False),
    ({"results": {}}, False),
    ({"results": ["a"]}, False),
    ({"results": [{"id": None}]}, False),
    ({"results": [{"id": True}]}, False),
    ({"results": [{"id": "a", "score": "high"}]}, False),
    ({"results": [{"id": "a", "score": None}]}, False),
    ({"results": [{"id": "a", "score": 1}, {"id": "b"}]}, False),
    ({"results": [{"id": "a", "text": 3}]}, False),
    ({"results": [], "answer": 42}, False),
]


@pytest.mark.parametrize(("payload", "valid"), RESPONSES, ids=json.dumps)
def test_responses_agree_with_the_adapter(payload: Any, valid: bool) -> None:
    assert (errors("http-retriever-response", payload) == []) is valid
    try:
        parse_response(payload, 10)
    except MalformedResponseError:
        accepted = False
    else:
        accepted = True
    assert accepted is valid


def test_rising_scores_are_the_one_response_rule_only_the_adapter_checks() -> None:
    payload = {"results": [{"id": "a", "score": 0.1}, {"id": "b", "score": 0.9}]}
    assert errors("http-retriever-response", payload) == []
    with pytest.raises(MalformedResponseError, match="is higher than"):
        parse_response(payload, 10)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"status": "pending"}, "is not one of"),
        ({"severity": "info"}, "is not one of"),
        ({"schema": "evalkit.alert.v2"}, "is not one of"),
        ({"fired_at": "2026-11-21 02:05:12"}, "does not match"),
        ({"links": {"run": 3}}, "is not of type 'string'"),
        ({"evidence": []}, "is not of type 'object'"),
        ({"alert_id": None}, "is not of type 'string'"),
    ],
)
def test_alert_payloads_that_break_the_contract_are_refused(
    change: dict[str, Any], message: str
) -> None:
    example = json_blocks("alerts.md", after="### Payload")[0]
    assert errors("alert-payload", example) == []
    broken = {**example, **change}
    assert any(message in error for error in errors("alert-payload", broken))
    missing = dict(example)
    del missing["dedup_key"]
    assert any("'dedup_key' is a required property" in e for e in errors("alert-payload", missing))


@pytest.mark.parametrize(
    "body",
    [
        {"query": "q", "query_id": "q1", "k": 0, "tenant": None},
        {"query": "q", "query_id": "q1", "k": 10},
        {"query": "q", "query_id": 1, "k": 10, "tenant": None},
    ],
)
def test_requests_that_break_the_contract_are_refused(body: dict[str, Any]) -> None:
    assert errors("http-retriever-request", body)


def test_white_space_in_ids_is_python_s_in_every_regular_expression_dialect() -> None:
    """The id and text patterns name white space as str.strip() sees it, character by
    character, so a JavaScript validator (ECMA-262, where \\s means another set) accepts and
    refuses the ids evalkit's reader does."""
    schema = load_schema("goldset-query")
    text = json.dumps(schema)
    assert "\\\\s" not in text
    assert "\\\\S" not in text
    identifier = schema["properties"]["id"]["not"]["pattern"]
    edges = [chr(c) for c in (0x09, 0x1C, 0x1F, 0x20, 0x85, 0xA0, 0x2028, 0x3000, 0xFEFF, 0x200B)]
    for character in edges:
        for value in (f"{character}q1", f"q1{character}"):
            assert bool(re.search(identifier, value)) is character.isspace(), repr(value)
    node = shutil.which("node")
    if node is None:
        return
    script = (
        "const [p, ...vs] = JSON.parse(require('fs').readFileSync(0, 'utf8'));"
        "const r = new RegExp(p, 'u');"
        "process.stdout.write(JSON.stringify(vs.map(v => r.test(v))));"
    )
    values = [f"{c}q1" for c in edges] + [f"q1{c}" for c in edges]
    done = subprocess.run(
        [node, "-e", script],
        input=json.dumps([identifier, *values]),
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(done.stdout) == [bool(re.search(identifier, v)) for v in values]
