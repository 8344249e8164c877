"""Real collections load with their published counts (skipped without ../shared/data)."""

from __future__ import annotations

from pathlib import Path

import pytest

from evalkit.goldset import iter_corpus, load_goldset, validate_goldset

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
SCIFACT = SHARED / "beir_scifact"
VASWANI = SHARED / "vaswani_npl" / "tests" / "fixtures" / "vaswani_npl"
TREC_EVAL = SHARED / "trec_eval" / "test"

pytestmark = [
    pytest.mark.shared_data,
    pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data is not present"),
]


def test_scifact_test_split() -> None:
    goldset = load_goldset(SCIFACT, format="beir", split="test")

    assert len(goldset.queries) == 300
    assert len(goldset.judgments) == 339
    assert goldset.name == "beir_scifact-test"
    assert {j.query_id for j in goldset.judgments} == set(goldset.query_ids)
    assert goldset.queries[0].id == "1"
    assert goldset.queries[0].text == ("0-dimensional biomaterials show inductive properties.")


def test_scifact_validates_with_its_corpus() -> None:
    assert validate_goldset(SCIFACT, format="beir") == []


def test_scifact_corpus_streams_every_document() -> None:
    ids = [document.id for document in iter_corpus(SCIFACT)]

    assert len(ids) == 5183
    assert len(set(ids)) == 5183


def test_vaswani_trec_collection() -> None:
    notices: list[str] = []

    goldset = load_goldset(
        VASWANI / "qrels",
        format="trec",
        topics=VASWANI / "query-text.trec",
        on_notice=notices.append,
    )

    assert len(goldset.queries) == 93
    assert len(goldset.judgments) == 2083
    assert goldset.queries[0].text == (
        "MEASUREMENT OF DIELECTRIC CONSTANT OF LIQUIDS BY THE USE OF MICROWAVE TECHNIQUES"
    )
    assert notices == []


def test_vaswani_corpus_in_trec_form() -> None:
    documents = iter_corpus(VASWANI / "corpus" / "doc-text.trec")

    first = next(documents)
    assert first.id == "1"
    assert first.text.startswith("compact memories have flexible capacities")
    assert sum(1 for _ in documents) + 1 == 11429


def test_trec_eval_qrels_with_minus_one_grades(tmp_path: Path) -> None:
    qrels = TREC_EVAL / "qrels.rel_level"
    lines = qrels.read_text(encoding="utf-8").splitlines()
    grades = [int(line.split()[3]) for line in lines]
    topics = tmp_path / "topics.tsv"
    query_ids = sorted({line.split()[0] for line in lines})
    topics.write_text("".join(f"{q}\ttopic {q}\n" for q in query_ids), encoding="utf-8")
    notices: list[str] = []

    goldset = load_goldset(qrels, format="trec", topics=topics, on_notice=notices.append)

    assert goldset.query_ids == ("301", "302", "303")
    assert len(goldset.judgments) == 3681
    assert [j.relevance for j in goldset.judgments] == [max(grade, 0) for grade in grades]
    (notice,) = notices
    assert f"{grades.count(-1)} judgment(s) graded below 0" in notice
    assert grades.count(-1) > 0
