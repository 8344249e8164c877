"""Structural checks on the demo golden set shipped in goldsets/demo.

The demo set is data, not code, so these tests guard its shape: counts, referential
integrity between judgments, queries and documents, the grading scale, tenants, and the
fields that the records in ``evalkit.records`` expect.
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest

from evalkit.records import Document, Judgment, Query

DEMO_DIR = Path(__file__).resolve().parents[1] / "goldsets" / "demo"
TENANTS = {"kestrel", "harbor"}
DIFFICULTY_TAGS = {
    "hard",
    "paraphrase",
    "symptom",
    "superseded",
    "cross-tenant",
    "several-relevant",
}


def _read_jsonl(name: str) -> list[dict[str, Any]]:
    path = DEMO_DIR / name
    rows = []
    for line_number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        row = json.loads(line)
        assert isinstance(row, dict), f"{name}:{line_number} is not a JSON object"
        rows.append(row)
    return rows


@pytest.fixture(scope="module")
def corpus() -> list[dict[str, Any]]:
    return _read_jsonl("corpus.jsonl")


@pytest.fixture(scope="module")
def queries() -> list[dict[str, Any]]:
    return _read_jsonl("queries.jsonl")


@pytest.fixture(scope="module")
def judgments() -> list[dict[str, Any]]:
    return _read_jsonl("judgments.jsonl")


@pytest.fixture(scope="module")
def grades_by_query(judgments: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    grades: dict[str, dict[str, int]] = defaultdict(dict)
    for row in judgments:
        grades[row["query_id"]][row["doc_id"]] = row["relevance"]
    return grades


def test_files_are_present() -> None:
    for name in ("corpus.jsonl", "queries.jsonl", "judgments.jsonl", "README.md"):
        assert (DEMO_DIR / name).is_file(), name


def test_counts(
    corpus: list[dict[str, Any]],
    queries: list[dict[str, Any]],
    judgments: list[dict[str, Any]],
) -> None:
    assert len(corpus) >= 320
    assert len(queries) >= 70
    assert len(judgments) / len(queries) >= 3


def test_ids_are_unique_and_well_formed(
    corpus: list[dict[str, Any]], queries: list[dict[str, Any]]
) -> None:
    doc_ids = [row["id"] for row in corpus]
    query_ids = [row["id"] for row in queries]
    assert len(set(doc_ids)) == len(doc_ids)
    assert len(set(query_ids)) == len(query_ids)
    assert all(re.fullmatch(r"d\d{4}", doc_id) for doc_id in doc_ids)
    assert all(re.fullmatch(r"q\d{3}", query_id) for query_id in query_ids)


def test_documents_have_text_of_realistic_length(corpus: list[dict[str, Any]]) -> None:
    for row in corpus:
        words = len(row["text"].split())
        assert 60 <= words <= 250, (row["id"], words)
        assert row["title"].strip(), row["id"]


def test_titles_are_unique(corpus: list[dict[str, Any]]) -> None:
    duplicated = [title for title, n in Counter(row["title"] for row in corpus).items() if n > 1]
    assert duplicated == []


def test_metadata_is_flat_with_known_tenant(corpus: list[dict[str, Any]]) -> None:
    for row in corpus:
        metadata = row["metadata"]
        assert all(isinstance(value, str | int) for value in metadata.values()), row["id"]
        assert metadata["tenant"] in TENANTS, row["id"]
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", metadata["updated"]), row["id"]
        assert metadata["status"] in {"current", "superseded"}, row["id"]
    tenant_counts = Counter(row["metadata"]["tenant"] for row in corpus)
    assert set(tenant_counts) == TENANTS
    assert min(tenant_counts.values()) >= 50


def test_superseded_documents_exist_and_are_graded_zero(
    corpus: list[dict[str, Any]], judgments: list[dict[str, Any]]
) -> None:
    superseded = {row["id"] for row in corpus if row["metadata"]["status"] == "superseded"}
    assert len(superseded) >= 5
    judged = [row for row in judgments if row["doc_id"] in superseded]
    assert judged, "superseded documents should be judged as tempting but wrong somewhere"
    assert {row["relevance"] for row in judged} <= {0, 1}


def test_judgments_refer_to_known_queries_and_documents(
    corpus: list[dict[str, Any]],
    queries: list[dict[str, Any]],
    judgments: list[dict[str, Any]],
) -> None:
    doc_ids = {row["id"] for row in corpus}
    query_ids = {row["id"] for row in queries}
    pairs = [(row["query_id"], row["doc_id"]) for row in judgments]
    assert len(set(pairs)) == len(pairs), "a query-document pair is judged twice"
    assert {query_id for query_id, _ in pairs} <= query_ids
    assert {doc_id for _, doc_id in pairs} <= doc_ids
    assert {query_id for query_id, _ in pairs} == query_ids, "every query must be judged"


def test_grades_are_integers_from_zero_to_three(judgments: list[dict[str, Any]]) -> None:
    for row in judgments:
        grade = row["relevance"]
        assert type(grade) is int, row
        assert 0 <= grade <= 3, row
    assert {row["relevance"] for row in judgments} == {0, 1, 2, 3}


def test_every_query_has_an_answer(grades_by_query: dict[str, dict[str, int]]) -> None:
    for query_id, grades in grades_by_query.items():
        assert max(grades.values()) == 3, query_id


def test_relevant_documents_belong_to_the_query_tenant(
    corpus: list[dict[str, Any]],
    queries: list[dict[str, Any]],
    grades_by_query: dict[str, dict[str, int]],
) -> None:
    tenant_of_doc = {row["id"]: row["metadata"]["tenant"] for row in corpus}
    for query in queries:
        assert query["tenant"] in TENANTS, query["id"]
        for doc_id, grade in grades_by_query[query["id"]].items():
            if grade >= 1:
                assert tenant_of_doc[doc_id] == query["tenant"], (query["id"], doc_id)


def test_query_mix(
    queries: list[dict[str, Any]], grades_by_query: dict[str, dict[str, int]]
) -> None:
    hard = [q for q in queries if "hard" in q["tags"]]
    several = [q for q in queries if sum(g >= 1 for g in grades_by_query[q["id"]].values()) >= 3]
    with_reference = [q for q in queries if "reference_answer" in q]
    assert len(hard) >= 15
    assert len(several) >= 20
    assert 8 <= len(with_reference) <= 15
    for query in several:
        assert "several-relevant" in query["tags"], query["id"]
    assert set().union(*(q["tags"] for q in queries)) >= DIFFICULTY_TAGS
    assert {q["tenant"] for q in queries} == TENANTS


def test_reference_contexts_are_judged_relevant(
    queries: list[dict[str, Any]], grades_by_query: dict[str, dict[str, int]]
) -> None:
    for query in queries:
        if "reference_answer" not in query:
            assert "reference_context_ids" not in query, query["id"]
            continue
        assert query["reference_answer"].strip(), query["id"]
        assert query["reference_context_ids"], query["id"]
        for doc_id in query["reference_context_ids"]:
            assert grades_by_query[query["id"]].get(doc_id, 0) >= 2, (query["id"], doc_id)


def test_rows_convert_to_records(
    corpus: list[dict[str, Any]],
    queries: list[dict[str, Any]],
    judgments: list[dict[str, Any]],
) -> None:
    documents = [
        Document(id=row["id"], text=row["text"], title=row["title"], metadata=row["metadata"])
        for row in corpus
    ]
    records = [
        Query(
            id=row["id"],
            text=row["text"],
            tenant=row.get("tenant"),
            tags=tuple(row.get("tags", ())),
            reference_answer=row.get("reference_answer"),
            reference_context_ids=tuple(row.get("reference_context_ids", ())),
        )
        for row in queries
    ]
    judged = [Judgment(row["query_id"], row["doc_id"], row["relevance"]) for row in judgments]
    assert documents[0].content.startswith(documents[0].title + "\n")
    assert len(records) == len(queries)
    assert len(judged) == len(judgments)
