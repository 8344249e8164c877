"""The goldset version is a content hash: layout changes keep it, content changes move it."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evalkit.goldset import Goldset, load_jsonl_goldset, write_jsonl_goldset
from evalkit.records import Judgment, Query

QUERIES: list[dict[str, object]] = [
    {"id": "q1", "text": "rotate a key", "tenant": "acme", "tags": ["a", "b"]},
    {"id": "q2", "text": "refund window", "reference_answer": "30 days"},
    {"id": "q3", "text": "data regions", "reference_context_ids": ["d4", "d2"]},
]
JUDGMENTS: list[dict[str, object]] = [
    {"query_id": "q1", "doc_id": "d1", "relevance": 2},
    {"query_id": "q1", "doc_id": "d2", "relevance": 0},
    {"query_id": "q2", "doc_id": "d3", "relevance": 1},
    {"query_id": "q3", "doc_id": "d4", "relevance": 3},
]


def version_of(
    directory: Path, queries: list[dict[str, object]], judgments: list[dict[str, object]]
) -> str:
    directory.mkdir(parents=True)
    (directory / "queries.jsonl").write_text(
        "".join(json.dumps(record) + "\n" for record in queries), encoding="utf-8"
    )
    (directory / "judgments.jsonl").write_text(
        "".join(json.dumps(record) + "\n" for record in judgments), encoding="utf-8"
    )
    return load_jsonl_goldset(directory).version


def test_key_order_whitespace_and_line_order_do_not_change_the_version(tmp_path: Path) -> None:
    baseline = version_of(tmp_path / "base", QUERIES, JUDGMENTS)
    shuffled = tmp_path / "shuffled"
    shuffled.mkdir()
    (shuffled / "queries.jsonl").write_text(
        "\n".join(
            "  "
            + json.dumps(dict(reversed(record.items())), indent=None, separators=(" ,  ", " : "))
            for record in reversed(QUERIES)
        )
        + "\n\n",
        encoding="utf-8",
    )
    (shuffled / "judgments.jsonl").write_text(
        "\r\n".join(
            json.dumps(dict(reversed(record.items()))) + "\t"
            for record in [JUDGMENTS[2], JUDGMENTS[0], JUDGMENTS[3], JUDGMENTS[1]]
        ),
        encoding="utf-8",
    )

    assert load_jsonl_goldset(shuffled).version == baseline


def test_null_and_absent_optional_fields_give_the_same_version(tmp_path: Path) -> None:
    with_nulls = [{**QUERIES[1], "tenant": None, "tags": None}, QUERIES[0], QUERIES[2]]

    assert version_of(tmp_path / "a", QUERIES, JUDGMENTS) == version_of(
        tmp_path / "b", with_nulls, JUDGMENTS
    )


def changed(
    records: list[dict[str, object]], index: int, **updates: object
) -> list[dict[str, object]]:
    copy = [dict(record) for record in records]
    copy[index].update(updates)
    return copy


def test_every_content_change_moves_the_version(tmp_path: Path) -> None:
    variants = {
        "base": (QUERIES, JUDGMENTS),
        "query text": (changed(QUERIES, 1, text="refund windows"), JUDGMENTS),
        "query text whitespace": (changed(QUERIES, 1, text="refund  window"), JUDGMENTS),
        "grade": (QUERIES, changed(JUDGMENTS, 0, relevance=1)),
        "doc id": (QUERIES, changed(JUDGMENTS, 2, doc_id="d33")),
        "query id": (
            changed(QUERIES, 2, id="q4"),
            changed(JUDGMENTS, 3, query_id="q4"),
        ),
        "tenant": (changed(QUERIES, 0, tenant="globex"), JUDGMENTS),
        "tag": (changed(QUERIES, 0, tags=["a"]), JUDGMENTS),
        "reference answer": (changed(QUERIES, 1, reference_answer="31 days"), JUDGMENTS),
        "reference context": (changed(QUERIES, 2, reference_context_ids=["d4"]), JUDGMENTS),
        "extra judgment": (
            QUERIES,
            [*JUDGMENTS, {"query_id": "q2", "doc_id": "d1", "relevance": 0}],
        ),
    }

    versions = {
        name: version_of(tmp_path / str(index), queries, judgments)
        for index, (name, (queries, judgments)) in enumerate(variants.items())
    }

    assert len(set(versions.values())) == len(versions), versions


identifiers = st.text(alphabet="abcdefghij0123456789-_", min_size=1, max_size=6)
texts = st.text(min_size=1, max_size=20).filter(lambda text: text.strip() != "")


@st.composite
def goldsets(draw: st.DrawFn) -> Goldset:
    query_ids = draw(st.lists(identifiers, min_size=1, max_size=6, unique=True))
    queries = [
        Query(
            id=query_id,
            text=draw(texts),
            tenant=draw(st.none() | identifiers),
            tags=tuple(draw(st.lists(identifiers, max_size=3))),
            reference_answer=draw(st.none() | texts),
            reference_context_ids=tuple(draw(st.lists(identifiers, max_size=3))),
        )
        for query_id in query_ids
    ]
    pairs = draw(
        st.lists(
            st.tuples(st.sampled_from(query_ids), identifiers),
            min_size=1,
            max_size=10,
            unique=True,
        )
    )
    judgments = [Judgment(q, d, draw(st.integers(0, 4))) for q, d in pairs]
    return Goldset.build("generated", queries, judgments)


@settings(max_examples=40, deadline=None)
@given(goldset=goldsets(), seed=st.integers(0, 2**16))
def test_written_goldsets_reload_to_the_same_version_in_any_line_order(
    tmp_path_factory: pytest.TempPathFactory, goldset: Goldset, seed: int
) -> None:
    directory = tmp_path_factory.mktemp("g")
    write_jsonl_goldset(goldset, directory)
    for name in ("queries.jsonl", "judgments.jsonl"):
        # Split on "\n" only: JSON strings may hold U+2028 and the like, which splitlines cuts.
        lines = (directory / name).read_text(encoding="utf-8").removesuffix("\n").split("\n")
        random.Random(seed).shuffle(lines)
        (directory / name).write_text("\n".join(lines) + "\n", encoding="utf-8")

    reloaded = load_jsonl_goldset(directory)

    assert reloaded.version == goldset.version
    assert set(reloaded.queries) == set(goldset.queries)
    assert set(reloaded.judgments) == set(goldset.judgments)
