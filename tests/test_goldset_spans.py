"""Span-anchored judgments and chunk offsets: the file format, the validator's errors (file,
line, field), the published schemas, the version hash and the store round trip."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from evalkit.errors import GoldsetError
from evalkit.goldset import (
    Goldset,
    iter_corpus,
    load_jsonl_goldset,
    validate_corpus,
    validate_goldset,
    write_jsonl_goldset,
)
from evalkit.goldset._schema import MAX_OFFSET
from evalkit.records import Document, Judgment, Query, Span
from evalkit.schemas import load_schema
from evalkit.store import Store
from evalkit.store.goldsets import load_stored_goldset, save_goldset

QUERIES = [{"id": "q1", "text": "what causes tides"}, {"id": "q2", "text": "moon phases"}]
SOURCE = "The moon pulls the oceans. Tides follow the moon. The sun adds a little."


def write_goldset(folder: Path, judgments: list[dict[str, Any]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in QUERIES))
    (folder / "judgments.jsonl").write_text("".join(json.dumps(j) + "\n" for j in judgments))
    return folder


def problems_of(folder: Path) -> list[tuple[str, int | None, str | None, str]]:
    return [(Path(p.path or "").name, p.line, p.field, p.detail) for p in validate_goldset(folder)]


def test_span_fields_load_into_the_judgment(tmp_path: Path) -> None:
    folder = write_goldset(
        tmp_path / "gs",
        [
            {"query_id": "q1", "doc_id": "c1", "relevance": 2, "source_id": "s1", "start": 0,
             "end": 26, "text": "The moon pulls the oceans."},
            {"query_id": "q1", "doc_id": "c2", "relevance": 1, "source_id": "s1",
             "text": "Tides follow the moon."},
            {"query_id": "q2", "doc_id": "c3", "relevance": 0, "source_id": "s2", "start": 4,
             "end": 9},
            {"query_id": "q2", "doc_id": "c4", "relevance": 1},
        ],
    )  # fmt: skip
    gold = load_jsonl_goldset(folder)
    spans = {j.doc_id: j.span for j in gold.judgments}
    assert spans == {
        "c1": Span("s1", 0, 26, "The moon pulls the oceans."),
        "c2": Span("s1", None, None, "Tides follow the moon."),
        "c3": Span("s2", 4, 9, None),
        "c4": None,
    }


@pytest.mark.parametrize(
    ("extra", "field", "message"),
    [
        ({"start": 0, "end": 4}, "source_id", "names its source"),
        ({"text": "moon"}, "source_id", "names its source"),
        ({"source_id": "s1"}, "source_id", "no span"),
        ({"source_id": "s1", "start": 3}, "end", "start and end together"),
        ({"source_id": "s1", "end": 3}, "start", "start and end together"),
        ({"source_id": "s1", "start": 5, "end": 5}, "end", "greater than start (5)"),
        ({"source_id": "s1", "start": 9, "end": 2}, "end", "greater than start (9)"),
        ({"source_id": "s1", "start": -1, "end": 2}, "start", "integer from 0 to"),
        ({"source_id": "s1", "start": 1.5, "end": 2}, "start", "integer from 0 to"),
        ({"source_id": "s1", "start": "0", "end": 2}, "start", "integer from 0 to"),
        (
            {"source_id": "s1", "start": 0, "end": MAX_OFFSET + 1},
            "end",
            f"an integer from 0 to {MAX_OFFSET}, got a number ({MAX_OFFSET + 1})",
        ),
        ({"source_id": "s1", "start": 0, "end": 1e300}, "end", "got a number (1e+300)"),
        ({"source_id": "s1", "text": "  "}, "text", "is empty"),
        ({"source_id": " s1", "text": "moon"}, "source_id", "whitespace"),
    ],
)
def test_a_malformed_span_is_named_by_file_line_and_field(
    tmp_path: Path, extra: dict[str, Any], field: str, message: str
) -> None:
    good = {"query_id": "q1", "doc_id": "c1", "relevance": 1}
    folder = write_goldset(tmp_path / "gs", [good, {"query_id": "q2", "doc_id": "c2",
                                                    "relevance": 1, **extra}])  # fmt: skip
    found = problems_of(folder)
    assert [(name, line, f) for name, line, f, _ in found] == [("judgments.jsonl", 2, field)]
    assert message in found[0][3]
    with pytest.raises(GoldsetError) as raised:
        load_jsonl_goldset(folder)
    assert f"judgments.jsonl:2 field '{field}':" in str(raised.value)


def test_a_misspelt_span_field_is_named_with_the_span_it_leaves_empty(tmp_path: Path) -> None:
    record = {"query_id": "q1", "doc_id": "c1", "relevance": 1, "source_id": "s1", "txt": "x"}
    found = problems_of(write_goldset(tmp_path / "gs", [record]))
    assert [(line, f) for _, line, f, _ in found] == [(1, "txt"), (1, "source_id")]
    assert "did you mean 'text'" in found[0][3]


def test_every_problem_of_a_span_line_is_listed_at_once(tmp_path: Path) -> None:
    folder = write_goldset(
        tmp_path / "gs",
        [{"query_id": "q1", "doc_id": "c1", "relevance": 1, "start": 4, "text": "x"}],
    )
    fields = sorted(f or "" for _, _, f, _ in problems_of(folder))
    assert fields == ["end", "source_id"]


def test_chunk_offsets_load_into_the_document_and_are_checked(tmp_path: Path) -> None:
    corpus = tmp_path / "chunks.jsonl"
    lines = [
        {"id": "s1#0", "text": "The moon pulls the oceans.", "source_id": "s1", "start": 0,
         "end": 26},
        {"id": "s1#1", "text": "Tides follow the moon.", "source_id": "s1"},
        {"id": "plain", "text": "no source"},
        {"id": "bad1", "text": "x", "start": 0, "end": 1},
        {"id": "bad2", "text": "x", "source_id": "s2", "start": 3, "end": 1},
        {"id": "bad3", "text": "x", "source_id": "s2", "end": 1},
        {"id": "bad4", "text": "x", "source_id": "s2", "start": 0, "end": 10**23},
    ]  # fmt: skip
    corpus.write_text("".join(json.dumps(line) + "\n" for line in lines))
    found = [(p.line, p.field) for p in validate_corpus(corpus)]
    assert found == [(4, "source_id"), (5, "end"), (6, "start"), (7, "end")]
    good = tmp_path / "good.jsonl"
    good.write_text("".join(json.dumps(line) + "\n" for line in lines[:3]))
    assert list(iter_corpus(good)) == [
        Document("s1#0", "The moon pulls the oceans.", source_id="s1", start=0, end=26),
        Document("s1#1", "Tides follow the moon.", source_id="s1"),
        Document("plain", "no source"),
    ]


SCHEMA_CASES: list[tuple[dict[str, Any], bool]] = [
    ({}, True),
    ({"source_id": "s1", "start": 0, "end": 4}, True),
    ({"source_id": "s1", "text": "moon"}, True),
    ({"source_id": "s1", "start": 0, "end": 4, "text": "moon"}, True),
    ({"source_id": None, "start": None, "text": None}, True),
    ({"start": 0, "end": 4}, False),
    ({"text": "moon"}, False),
    ({"source_id": "s1"}, False),
    ({"source_id": "s1", "start": 0}, False),
    ({"source_id": "s1", "end": 3, "start": None}, False),
    ({"source_id": "s1", "start": -2, "end": 3}, False),
    ({"source_id": "s1", "start": 0, "end": MAX_OFFSET}, True),
    ({"source_id": "s1", "start": 0, "end": MAX_OFFSET + 1}, False),
    ({"source_id": "s1", "text": ""}, False),
]


@pytest.mark.parametrize(("extra", "valid"), SCHEMA_CASES)
def test_the_judgment_schema_agrees_with_the_loader(
    tmp_path: Path, extra: dict[str, Any], valid: bool
) -> None:
    record = {"query_id": "q1", "doc_id": "c1", "relevance": 1, **extra}
    validator = jsonschema.Draft202012Validator(load_schema("goldset-judgment"))
    assert validator.is_valid(record) is valid
    folder = write_goldset(tmp_path / "gs", [record])
    assert (problems_of(folder) == []) is valid


@pytest.mark.parametrize(
    ("extra", "valid"),
    [
        ({"source_id": "s1", "start": 0, "end": 4}, True),
        ({"source_id": "s1"}, True),
        ({"start": 0, "end": 4}, False),
        ({"source_id": "s1", "start": 0}, False),
        ({"source_id": "s1", "start": 0, "end": 4, "text2": "x"}, False),
    ],
)
def test_the_corpus_schema_agrees_with_the_reader(
    tmp_path: Path, extra: dict[str, Any], valid: bool
) -> None:
    record = {"id": "c1", "text": "moon", **extra}
    validator = jsonschema.Draft202012Validator(load_schema("corpus-document"))
    assert validator.is_valid(record) is valid
    corpus = tmp_path / "c.jsonl"
    corpus.write_text(json.dumps(record) + "\n")
    assert (validate_corpus(corpus) == []) is valid


def test_start_before_end_is_the_loaders_rule_alone(tmp_path: Path) -> None:
    record = {"query_id": "q1", "doc_id": "c1", "relevance": 1, "source_id": "s", "start": 4,
              "end": 2}  # fmt: skip
    assert jsonschema.Draft202012Validator(load_schema("goldset-judgment")).is_valid(record)
    assert problems_of(write_goldset(tmp_path / "gs", [record]))


def spanned_goldset() -> Goldset:
    return Goldset.build(
        "tides",
        [Query("q1", "what causes tides"), Query("q2", "moon phases")],
        [
            Judgment("q1", "c1", 2, Span("s1", 0, 26, "The moon pulls the oceans.")),
            Judgment("q1", "c2", 0, Span("s1", None, None, "Tides follow the moon.")),
            Judgment("q2", "c3", 1, Span("s2", 4, 9)),
            Judgment("q2", "c4", 1),
        ],
    )


def test_versions_of_goldsets_without_spans_are_unchanged() -> None:
    plain = Goldset.build(
        "g", [Query("q1", "x")], [Judgment("q1", "d1", 2), Judgment("q1", "d0", 0)]
    )
    # The version this content had before spans existed (tests/test_goldset_version.py pins
    # the versions of its own goldsets the same way).
    assert plain.version == "eecf0c8959b1"


def test_a_span_moves_the_version_and_only_its_own_fields_count() -> None:
    base = spanned_goldset()
    without = Goldset.build(
        "tides", base.queries, [Judgment(j.query_id, j.doc_id, j.relevance) for j in base.judgments]
    )
    assert base.version != without.version
    for changed in (Span("s1", 0, 26, "The moon pulls the oceans!"), Span("s1", 1, 26, None),
                    Span("s9", 0, 26, "The moon pulls the oceans.")):  # fmt: skip
        judgments = (Judgment("q1", "c1", 2, changed), *base.judgments[1:])
        assert Goldset.build("tides", base.queries, judgments).version != base.version
    reordered = Goldset.build("tides", base.queries[::-1], base.judgments[::-1])
    assert reordered.version == base.version


def test_written_spans_load_back_to_the_same_version(tmp_path: Path) -> None:
    gold = spanned_goldset()
    _, judgments_file = write_jsonl_goldset(gold, tmp_path / "out")
    lines = [json.loads(line) for line in judgments_file.read_text().splitlines()]
    assert lines[1] == {"query_id": "q1", "doc_id": "c2", "relevance": 0, "source_id": "s1",
                        "text": "Tides follow the moon."}  # fmt: skip
    assert lines[3] == {"query_id": "q2", "doc_id": "c4", "relevance": 1}
    validator = jsonschema.Draft202012Validator(load_schema("goldset-judgment"))
    assert all(validator.is_valid(line) for line in lines)
    again = load_jsonl_goldset(tmp_path / "out", name="tides")
    assert again.version == gold.version
    assert again.judgments == gold.judgments


def test_the_store_round_trips_spans(tmp_path: Path) -> None:
    gold = spanned_goldset()
    path = tmp_path / "store.duckdb"
    with Store.open(path) as store:
        assert save_goldset(store, gold) is True
        assert save_goldset(store, gold) is False
    with Store.open(path, read_only=True) as store:
        loaded = load_stored_goldset(store, "tides")
        rows = store.fetch(
            "SELECT doc_id, source_id, span_start, span_end, span_text FROM judgments "
            "ORDER BY doc_id"
        )
    assert sorted(loaded.judgments, key=lambda j: j.doc_id) == sorted(
        gold.judgments, key=lambda j: j.doc_id
    )
    assert loaded.version == gold.version
    assert rows[3] == ("c4", None, None, None, None)
    assert rows[2] == ("c3", "s2", 4, 9, None)


def test_the_largest_offset_the_store_holds_is_stored(tmp_path: Path) -> None:
    judgment = {"query_id": "q1", "doc_id": "c1", "relevance": 1, "source_id": "s1",
                "start": MAX_OFFSET - 1, "end": MAX_OFFSET}  # fmt: skip
    gold = load_jsonl_goldset(write_goldset(tmp_path / "gs", [judgment]), name="far")
    with Store.open(tmp_path / "store.duckdb") as store:
        assert save_goldset(store, gold) is True
        assert load_stored_goldset(store, "far").judgments == gold.judgments
