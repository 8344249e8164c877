"""`evalkit goldset remap`: the rule's edge cases, a property against a brute-force reading of
the rule, the command end to end against a real DuckDB file, and the audit's span check on
a real Chroma collection."""

from __future__ import annotations

import json
import re
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evalkit.cli import invoke
from evalkit.errors import ConfigError
from evalkit.goldset.remap import (
    RemapStatus,
    locate_span,
    remap_judgments,
    same_text,
    source_texts,
)
from evalkit.records import Document, Judgment, Span
from evalkit.retrievers.chroma_client import open_chroma_client
from evalkit.store import Store
from evalkit.store.goldsets import list_goldsets, load_stored_goldset
from evalkit.store.remaps import list_remaps, remap_mappings

#         0         1         2         3         4         5
#         012345678901234567890123456789012345678901234567890123
SOURCE = "Tides follow the moon. The sun adds a bit. Waves break."
S1, S2, S3 = (0, 22), (23, 42), (43, 55)


def chunks(source_id: str, text: str, bounds: list[tuple[int, int]]) -> list[Document]:
    return [
        Document(f"{source_id}#{n}", text[start:end], source_id=source_id, start=start, end=end)
        for n, (start, end) in enumerate(bounds)
    ]


def by_chunk(judgments: tuple[Judgment, ...]) -> dict[tuple[str, str], int]:
    return {(j.query_id, j.doc_id): j.relevance for j in judgments}


def test_sentences_of_the_source_give_the_sentence_chunks() -> None:
    assert [SOURCE[slice(*b)] for b in (S1, S2, S3)] == [
        "Tides follow the moon.",
        "The sun adds a bit.",
        "Waves break.",
    ]


def test_a_chunk_inherits_the_highest_grade_of_the_spans_it_overlaps() -> None:
    new = chunks("s", SOURCE, [(0, 42), (43, 55)])
    judgments = [
        Judgment("q", "old1", 1, Span("s", *S1, "Tides follow the moon.")),
        Judgment("q", "old2", 3, Span("s", *S2, "The sun adds a bit.")),
        Judgment("q", "old3", 0, Span("s", *S3)),
    ]
    result = remap_judgments(judgments, new)
    assert by_chunk(result.judgments) == {("q", "s#0"): 3, ("q", "s#1"): 0}
    assert result.counts == {"mapped": 3, "stale": 0, "unmapped": 0}
    kept = {j.doc_id: j.span for j in result.judgments}
    assert kept["s#0"] == Span("s", *S2, "The sun adds a bit.")


def test_the_overlap_share_is_over_the_shorter_and_the_boundary_counts() -> None:
    # Span [0, 10) against chunk [5, 30): 5 shared of the shorter 10 = exactly 0.5.
    text = "abcdefghijklmnopqrstuvwxyz0123"
    new = chunks("s", text, [(0, 5), (5, 30)])
    judgment = [Judgment("q", "old", 2, Span("s", 0, 10))]
    at_half = remap_judgments(judgment, new, min_overlap=0.5)
    assert by_chunk(at_half.judgments) == {("q", "s#0"): 2, ("q", "s#1"): 2}
    assert [row.overlap for row in at_half.mappings] == [1.0, 0.5]
    above = remap_judgments(judgment, new, min_overlap=0.51)
    assert by_chunk(above.judgments) == {("q", "s#0"): 2}
    # A chunk wholly inside a long span is covered whole: share 1.
    long_span = [Judgment("q", "old", 1, Span("s", 0, 30))]
    assert len(remap_judgments(long_span, new, min_overlap=1.0).judgments) == 2


def test_min_overlap_outside_zero_to_one_is_refused() -> None:
    for bad in (0.0, -0.1, 1.5):
        with pytest.raises(ConfigError, match="min_overlap"):
            remap_judgments([], [], min_overlap=bad)


def test_text_that_moved_is_followed_and_changed_text_is_stale() -> None:
    edited = "Preface added. " + SOURCE.replace("Waves break.", "Waves crash.")
    shift = len("Preface added. ")
    new = chunks("s", edited, [(0, shift), (shift, shift + 42), (shift + 43, len(edited))])
    moved = Judgment("q", "a", 2, Span("s", *S1, "Tides follow the moon."))
    changed = Judgment("q", "b", 1, Span("s", *S3, "Waves break."))
    result = remap_judgments([moved, changed], new)
    rows = {row.old_doc_id: row for row in result.mappings}
    assert rows["a"].status is RemapStatus.mapped
    assert rows["a"].reason == "moved"
    assert rows["a"].new_doc_id == "s#1"
    assert result.judgments[0].span == Span("s", shift, shift + 22, "Tides follow the moon.")
    assert rows["b"].status is RemapStatus.stale
    assert rows["b"].new_doc_id is None
    assert "not found elsewhere" in (rows["b"].reason or "")


def test_whitespace_alone_does_not_make_a_span_stale() -> None:
    located = locate_span(Span("s", 0, 22, "Tides  follow\nthe moon."), SOURCE)
    assert (located.start, located.end, located.moved) == (0, 22, False)


def test_text_found_twice_is_stale_and_text_only_spans_are_searched() -> None:
    twice = "The sun. The sun."
    assert locate_span(Span("s", 0, 3, "sun"), twice).status is RemapStatus.stale
    assert "found 2 times" in (locate_span(Span("s", 0, 3, "sun"), twice).reason or "")
    found = locate_span(Span("s", None, None, "adds a bit"), SOURCE)
    assert (found.start, found.end, found.moved) == (31, 41, False)
    assert locate_span(Span("s", None, None, "absent"), SOURCE).status is RemapStatus.stale
    past = locate_span(Span("s", 50, 90), SOURCE)
    assert past.status is RemapStatus.stale
    assert "past the end" in (past.reason or "")


def test_a_source_gone_leaves_its_judgments_unmapped() -> None:
    new = chunks("other", SOURCE, [(0, 55)])
    result = remap_judgments([Judgment("q", "a", 1, Span("s", *S1))], new)
    assert result.judgments == ()
    assert [(r.status, r.reason) for r in result.mappings] == [
        (RemapStatus.unmapped, "source gone")
    ]


def test_chunk_id_only_judgments_go_through_the_old_corpus() -> None:
    old = [
        *chunks("s", SOURCE, [(0, 22), (23, 55)]),
        Document("nooffsets", "The sun adds a bit.", source_id="s"),
        Document("whole", "A whole document of its own."),
    ]
    new = [
        *chunks("s", SOURCE, [(0, 10), (10, 30), (30, 55)]),
        Document("whole#0", "A whole", source_id="whole", start=0, end=7),
        Document("whole#1", "document of its own.", source_id="whole", start=8, end=28),
    ]
    judgments = [
        Judgment("q", "s#0", 2),
        Judgment("q", "nooffsets", 1),
        Judgment("q", "missing", 1),
        Judgment("q", "whole", 1),
    ]
    result = remap_judgments(judgments, new, old_corpus=old)
    assert by_chunk(result.judgments) == {
        ("q", "s#0"): 2,
        ("q", "s#1"): 2,
        ("q", "whole#0"): 1,
        ("q", "whole#1"): 1,
    }
    rows = {(r.old_doc_id, r.new_doc_id): r for r in result.mappings}
    assert rows[("s#0", "s#0")].reason == "through the old corpus"
    assert "no offsets" in (rows[("nooffsets", None)].reason or "")
    assert "does not hold" in (rows[("missing", None)].reason or "")
    # "A whole" is 7 of the 28 characters: 7/7 of the chunk, so it counts too.
    assert rows[("whole", "whole#0")].overlap == 1.0
    without = remap_judgments(judgments[:1], new)
    assert without.mappings[0].status is RemapStatus.unmapped
    assert "no old corpus" in (without.mappings[0].reason or "")


def test_the_source_text_is_rebuilt_from_chunk_offsets() -> None:
    pieces = chunks("s", SOURCE, [(23, 42), (0, 22)])
    assert {source: str(text) for source, text in source_texts(pieces).items()} == {
        "s": SOURCE[:42]
    }
    whole = source_texts([Document("d", "whole text")], ["d", "e"])
    assert {source: str(text) for source, text in whole.items()} == {"d": "whole text"}


@pytest.mark.parametrize(
    "bogus",
    [
        # Longer, from the same start: the source reads as it there.
        Document("s#9", "xx. Waves break.", source_id="s", start=43, end=59),
        # Same offsets, other words, first by id.
        Document("a-bogus", "Waves crash.", source_id="s", start=43, end=55),
    ],
    ids=["longer", "same-offsets"],
)
def test_a_planted_overlapping_chunk_does_not_take_a_passage_it_does_not_hold(
    bogus: Document,
) -> None:
    """A chunk planted over s#2 with other text made the judged passage "move" into it (or
    go stale), the planted chunk took the grade, and only "moved 1" said anything."""
    new = [*chunks("s", SOURCE, [S1, S2, S3]), bogus]
    judgment = Judgment("q", "old", 2, Span("s", *S3, "Waves break."))
    result = remap_judgments([judgment], new)
    assert [(r.status, r.new_doc_id, r.reason) for r in result.mappings] == [
        (RemapStatus.mapped, "s#2", None)
    ]
    assert result.judgments == (Judgment("q", "s#2", 2, Span("s", *S3, "Waves break.")),)
    (conflict,) = result.conflicts
    assert {conflict.kept, conflict.other} == {"s#2", bogus.id}
    assert (conflict.source_id, conflict.start, conflict.end) == ("s", 43, 55)
    # Chunks that overlap with the same text are no conflict.
    overlapping = chunks("s", SOURCE, [(0, 30), (20, 55)])
    assert remap_judgments([judgment], overlapping).conflicts == ()


def test_a_source_far_past_its_text_costs_its_text_not_its_offsets() -> None:
    """The source was rebuilt as a list of one character per offset: a chunk at offset
    200,000,000 allocated 1.6 GB."""
    far = 200_000_000
    new = [
        Document("s#0", "Tides follow the moon.", source_id="s", start=0, end=22),
        Document("s#1", "Waves break.", source_id="s", start=far, end=far + 12),
    ]
    judgments = [
        Judgment("q", "a", 1, Span("s", far, far + 12, "Waves break.")),
        Judgment("q", "b", 2, Span("s", None, None, "follow the moon")),
    ]
    tracemalloc.start()
    try:
        result = remap_judgments(judgments, new)
        rebuilt = source_texts(new)["s"]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2_000_000
    assert by_chunk(result.judgments) == {("q", "s#1"): 1, ("q", "s#0"): 2}
    assert len(rebuilt) == far + 12
    assert rebuilt[far - 3 : far + 5] == " Waves"
    assert rebuilt.find("moon. Waves") == [(17, far + 5)]


@st.composite
def gapped_sources(draw: st.DrawFn) -> tuple[list[Document], str, Span]:
    """Chunks of a source with stretches no chunk covers, that source spelt out (those
    stretches as spaces), and a span into it."""
    pieces = draw(st.lists(st.tuples(st.integers(0, 6), st.text("ab ", min_size=1)), min_size=1))
    documents, spelt = [], ""
    for n, (gap, text) in enumerate(pieces):
        spelt += " " * gap
        documents.append(Document(f"c{n}", text, source_id="s", start=len(spelt),
                                  end=len(spelt) + len(text)))  # fmt: skip
        spelt += text
    start = draw(st.integers(0, len(spelt) + 2))
    end = draw(st.integers(start + 1, len(spelt) + 3))
    quoted = draw(st.one_of(st.none(), st.just(spelt[start:end]), st.text("ab ", min_size=1)))
    offsets = draw(st.booleans()) or quoted is None or not quoted.split()
    span = Span("s", start if offsets else None, end if offsets else None, quoted)
    return documents, spelt, span


def spelt_out_location(span: Span, source: str) -> tuple[int, int] | None:
    """Where the rule places ``span`` in ``source``, read literally on the whole string."""
    if span.start is not None and span.end is not None:
        if span.text is None:
            return (span.start, span.end) if span.end <= len(source) else None
        if same_text(source[span.start : span.end], span.text):
            return span.start, span.end
    assert span.text is not None
    pattern = r"\s+".join(re.escape(word) for word in span.text.split())
    found = [(m.start(), m.end()) for m in re.finditer(pattern, source)] if pattern else []
    return found[0] if len(found) == 1 else None


@settings(max_examples=300, deadline=None)
@given(gapped_sources())
def test_a_source_held_without_its_gaps_places_spans_as_the_spelt_out_text_does(
    case: tuple[list[Document], str, Span],
) -> None:
    documents, spelt, span = case
    rebuilt = source_texts(documents)["s"]
    assert len(rebuilt) == len(spelt)
    located = locate_span(span, rebuilt)
    placed = (located.start, located.end) if located.placed else None
    assert placed == spelt_out_location(span, spelt)
    assert same_text(
        rebuilt[span.start or 0 : span.end or 0], spelt[span.start or 0 : span.end or 0]
    )


@st.composite
def remap_cases(draw: st.DrawFn) -> tuple[int, list[tuple[int, int]], list[Judgment], float]:
    length = draw(st.integers(10, 80))
    cuts = sorted(set(draw(st.lists(st.integers(1, length - 1), max_size=6))))
    bounds = list(zip([0, *cuts], [*cuts, length], strict=True))
    judgments = []
    for n in range(draw(st.integers(1, 6))):
        start = draw(st.integers(0, length - 1))
        end = draw(st.integers(start + 1, length))
        query = draw(st.sampled_from(["q1", "q2"]))
        judgments.append(Judgment(query, f"old{n}", draw(st.integers(0, 3)), Span("s", start, end)))
    share = draw(st.sampled_from([0.1, 0.25, 0.5, 0.75, 1.0]))
    return length, bounds, judgments, share


@settings(max_examples=150, deadline=None)
@given(remap_cases())
def test_remap_follows_the_rule_read_literally(
    case: tuple[int, list[tuple[int, int]], list[Judgment], float],
) -> None:
    length, bounds, judgments, share = case
    text = "".join(chr(97 + i % 26) for i in range(length))
    new = chunks("s", text, bounds) + chunks("unjudged", text, [(0, length)])
    result = remap_judgments(judgments, new, min_overlap=share)
    expected: dict[tuple[str, str], int] = {}
    for judgment in judgments:
        span = judgment.span
        assert span is not None
        assert span.start is not None
        assert span.end is not None
        for n, (start, end) in enumerate(bounds):
            shared = min(end, span.end) - max(start, span.start)
            shorter = min(end - start, span.end - span.start)
            if shared > 0 and shared / shorter >= share - 1e-12:
                key = (judgment.query_id, f"s#{n}")
                expected[key] = max(expected.get(key, -1), judgment.relevance)
    assert by_chunk(result.judgments) == expected
    assert not any(j.doc_id.startswith("unjudged") for j in result.judgments)


# -- the command, end to end -------------------------------------------------------------


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    return path


OTHER = "Kelp grows fast. It needs cold water."


@pytest.fixture
def imported(evalkit_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """A goldset of whole documents ``s`` and ``k`` (its corpus beside it): two span
    judgments, one judgment by chunk id only, stored as ``tides``."""
    folder = tmp_path / "tides"
    write_jsonl(
        folder / "queries.jsonl",
        [{"id": "q1", "text": "what causes tides"}, {"id": "q2", "text": "kelp"}],
    )
    write_jsonl(
        folder / "judgments.jsonl",
        [
            {"query_id": "q1", "doc_id": "s", "relevance": 2, "source_id": "s", "start": 0,
             "end": 22, "text": "Tides follow the moon."},
            {"query_id": "q1", "doc_id": "s2", "relevance": 1, "source_id": "s", "start": 43,
             "end": 55, "text": "Waves break."},
            {"query_id": "q2", "doc_id": "k", "relevance": 1},
        ],
    )  # fmt: skip
    write_jsonl(
        folder / "corpus.jsonl",
        [{"id": "s", "text": SOURCE}, {"id": "k", "text": OTHER}],
    )
    assert invoke(["goldset", "import", str(folder), "--name", "tides"]) == 0
    capsys.readouterr()
    return tmp_path


def remap_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    code = invoke(["goldset", "remap", *args, "-o", "json"])
    out = capsys.readouterr().out
    return code, json.loads(out) if out.strip() else {}


def sentence_chunks(source_id: str, text: str) -> list[dict[str, Any]]:
    records, start = [], 0
    for n, sentence in enumerate(text.split(". ")):
        piece = sentence if sentence.endswith(".") else sentence + "."
        begin = text.index(piece, start)
        records.append(
            {"id": f"{source_id}#{n}", "text": piece, "source_id": source_id, "start": begin,
             "end": begin + len(piece)}
        )  # fmt: skip
        start = begin + len(piece)
    return records


def test_remap_writes_a_new_version_with_its_mapping(
    imported: Path, evalkit_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corpus = write_jsonl(
        imported / "chunks.jsonl", sentence_chunks("s", SOURCE) + sentence_chunks("k", OTHER)
    )
    code, report = remap_cli(capsys, "tides", "--corpus", str(corpus))
    assert code == 0, report
    assert report["counts"] == {"mapped": 3, "stale": 0, "unmapped": 0}
    assert report["old_corpus"] == str(imported / "tides" / "corpus.jsonl")
    assert report["stored"] is True
    with Store.open(evalkit_home / "evalkit.duckdb", read_only=True) as store:
        versions = list_goldsets(store, "tides")
        current = load_stored_goldset(store, "tides")
        rows = remap_mappings(store, report["version"], report["old_version"])
        (info,) = list_remaps(store)
    assert [v.version for v in versions] == [report["version"], report["old_version"]]
    assert {(j.query_id, j.doc_id, j.relevance) for j in current.judgments} == {
        ("q1", "s#0", 2),
        ("q1", "s#2", 1),
        ("q2", "k#0", 1),
        ("q2", "k#1", 1),
    }
    assert [(r.old_doc_id, r.new_doc_id, r.status.value) for r in rows] == [
        ("s", "s#0", "mapped"),
        ("s2", "s#2", "mapped"),
        ("k", "k#0", "mapped"),
        ("k", "k#1", "mapped"),
    ]
    assert (info.n_mapped, info.n_stale, info.n_unmapped, info.min_overlap) == (3, 0, 0, 0.5)
    # The remapped version, remapped onto the same chunks, is the same version again.
    code, again = remap_cli(capsys, "tides", "--corpus", str(corpus))
    assert code == 0
    assert again["old_version"] == report["version"]
    assert again["version"] == report["version"]
    assert again["stored"] is False  # nothing new: no remap of a version onto itself stored
    with Store.open(evalkit_home / "evalkit.duckdb", read_only=True) as store:
        assert len(list_remaps(store)) == 1
    assert invoke(["goldset", "remap", "tides", "--corpus", str(corpus)]) == 0
    assert "unchanged: every judgment maps onto the document it had" in capsys.readouterr().out


def test_a_remap_under_another_name_does_not_stop_the_same_remap_of_the_goldset(
    imported: Path, evalkit_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Remapping ``tides`` with --name tides-preview first made the same remap of tides say
    "already stored (same remap)" and store nothing: tides never got the new version."""
    corpus = write_jsonl(
        imported / "chunks.jsonl", sentence_chunks("s", SOURCE) + sentence_chunks("k", OTHER)
    )
    code, preview = remap_cli(capsys, "tides", "--corpus", str(corpus), "--name", "tides-pre")
    assert (code, preview["stored"]) == (0, True)
    code, report = remap_cli(capsys, "tides", "--corpus", str(corpus))
    assert code == 0, report
    assert (report["goldset"], report["version"]) == ("tides", preview["version"])
    assert report["stored"] is True
    assert report["was_current"] == report["old_version"]
    with Store.open(evalkit_home / "evalkit.duckdb", read_only=True) as store:
        assert load_stored_goldset(store, "tides").version == preview["version"]
        assert [v.version for v in list_goldsets(store, "tides")] == [
            preview["version"],
            preview["old_version"],
        ]
        # The mapping is the same remap's: stored once, by the remap that made it first.
        assert [info.goldset_name for info in list_remaps(store)] == ["tides-pre"]
    assert (
        invoke(["goldset", "remap", "tides", "--corpus", str(corpus), "--name", "tides-pre"]) == 0
    )
    assert " ".join(capsys.readouterr().out.split()).endswith(
        f"goldset tides-pre version {preview['version']}: 4 judgments of the new chunks, "
        "already stored (same remap)"
    )


@pytest.mark.slow
def test_remapping_back_onto_an_earlier_chunking_makes_that_version_current_again(
    evalkit_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sentences = write_jsonl(tmp_path / "sentences.jsonl", sentence_chunks("s", SOURCE))
    whole = write_jsonl(
        tmp_path / "whole.jsonl",
        [{"id": "s", "text": SOURCE, "source_id": "s", "start": 0, "end": len(SOURCE)}],
    )
    folder = tmp_path / "moon"
    write_jsonl(folder / "queries.jsonl", [{"id": "q1", "text": "what causes tides"}])
    write_jsonl(
        folder / "judgments.jsonl",
        [{"query_id": "q1", "doc_id": "s#0", "relevance": 2, "source_id": "s", "start": 0,
          "end": 22, "text": "Tides follow the moon."}],
    )  # fmt: skip
    assert invoke(["goldset", "import", str(folder), "--name", "moon", "-o", "json"]) == 0
    first = json.loads(capsys.readouterr().out)["version"]
    code, onto_whole = remap_cli(capsys, "moon", "--corpus", str(whole))
    assert (code, onto_whole["stored"]) == (0, True)
    assert invoke(["goldset", "remap", "moon", "--corpus", str(sentences)]) == 0
    assert " ".join(capsys.readouterr().out.split()).endswith(
        f"goldset moon version {first}: 1 judgments of the new chunks, already stored; now "
        f"current again (was {onto_whole['version']})"
    )
    with Store.open(evalkit_home / "evalkit.duckdb", read_only=True) as store:
        assert load_stored_goldset(store, "moon").version == first


def test_remap_reports_stale_and_gone_and_exits_1(
    imported: Path, evalkit_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    edited = SOURCE.replace("Waves break.", "Waves crash.")
    corpus = write_jsonl(imported / "chunks.jsonl", sentence_chunks("s", edited))
    code, report = remap_cli(capsys, "tides", "--corpus", str(corpus), "--name", "tides-v2")
    assert code == 1
    assert report["counts"] == {"mapped": 1, "stale": 1, "unmapped": 1}
    lost = {(item["doc_id"], item["status"]): item["reason"] for item in report["lost"]}
    assert lost[("k", "unmapped")] == "source gone"
    assert "not found elsewhere" in lost[("s2", "stale")]
    with Store.open(evalkit_home / "evalkit.duckdb", read_only=True) as store:
        assert [j.doc_id for j in load_stored_goldset(store, "tides-v2").judgments] == ["s#0"]
        assert load_stored_goldset(store, "tides").version == report["old_version"]
    code = invoke(["goldset", "remap", "tides", "--corpus", str(corpus), "--name", "t3"])
    out = capsys.readouterr().out
    assert code == 1
    assert "source gone" in out
    assert "1 mapped (0 moved), 1 stale, 1 unmapped" in out


def test_remap_that_maps_nothing_stores_nothing_and_exits_2(
    imported: Path, evalkit_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corpus = write_jsonl(imported / "chunks.jsonl", sentence_chunks("elsewhere", OTHER))
    code, report = remap_cli(capsys, "tides", "--corpus", str(corpus))
    assert code == 2
    assert report["version"] is None
    assert report["counts"]["unmapped"] == 3
    with Store.open(evalkit_home / "evalkit.duckdb", read_only=True) as store:
        assert len(list_goldsets(store, "tides")) == 1
        assert list_remaps(store) == []


def test_the_old_corpus_is_found_after_a_publish_and_from_another_directory(
    evalkit_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """Imported by a relative path, the source was stored as typed, and a publish replaced it
    with "review queue (N items)": a remap from another directory, or after a publish, found
    no old corpus and stored a version without the judgments that have no span."""
    folder = tmp_path / "tides"
    write_jsonl(folder / "queries.jsonl", [{"id": "q1", "text": "what causes tides"}])
    write_jsonl(folder / "judgments.jsonl", [{"query_id": "q1", "doc_id": "k", "relevance": 1}])
    write_jsonl(folder / "corpus.jsonl", [{"id": "s", "text": SOURCE}, {"id": "k", "text": OTHER}])
    draft = tmp_path / "draft"
    write_jsonl(draft / "queries.jsonl", [{"id": "q2", "text": "does the sun matter"}])
    write_jsonl(draft / "judgments.jsonl", [{"query_id": "q2", "doc_id": "s", "relevance": None}])
    monkeypatch.chdir(tmp_path)
    assert invoke(["goldset", "import", "tides", "--name", "tides"]) == 0
    assert invoke(["review", "add", "draft", "--goldset", "tides", "-o", "json"]) == 0
    capsys.readouterr()
    assert invoke(["review", "list", "--goldset", "tides", "-o", "json"]) == 0
    (item,) = json.loads(capsys.readouterr().out)
    assert invoke(["review", "grade", item["item_id"], "--reviewer", "ann", "--grade", "s=2"]) == 0
    assert invoke(["goldset", "publish", "tides"]) == 0
    corpus = write_jsonl(
        tmp_path / "chunks.jsonl", sentence_chunks("s", SOURCE) + sentence_chunks("k", OTHER)
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    capsys.readouterr()
    code, report = remap_cli(capsys, "tides", "--corpus", str(corpus))
    assert code == 0, report
    assert report["old_corpus"] == str(folder / "corpus.jsonl")
    assert report["counts"] == {"mapped": 2, "stale": 0, "unmapped": 0}


def test_a_remap_without_the_old_corpus_is_refused_and_stores_nothing(
    imported: Path, evalkit_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corpus = write_jsonl(
        imported / "chunks.jsonl", sentence_chunks("s", SOURCE) + sentence_chunks("k", OTHER)
    )
    (imported / "tides" / "corpus.jsonl").unlink()
    code = invoke(["goldset", "remap", "tides", "--corpus", str(corpus)])
    captured = capsys.readouterr()
    assert (code, captured.out) == (2, "")
    with Store.open(evalkit_home / "evalkit.duckdb", read_only=True) as store:
        (info,) = list_goldsets(store, "tides")
        assert list_remaps(store) == []
    assert " ".join(captured.err.split()) == (
        f"error: goldset tides version {info.version}: 1 of its 3 judgments have no span "
        "(first: query q2, document k) and are remapped through the corpus their doc ids "
        f"name, which was not found (corpus.jsonl beside '{imported / 'tides'}', which "
        f"version {info.version} was imported from); give it with --old-corpus PATH. "
        "Nothing was stored."
    )


def test_nothing_mapped_through_the_old_corpus_points_at_old_corpus(
    evalkit_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "kelp"
    write_jsonl(folder / "queries.jsonl", [{"id": "q1", "text": "kelp"}])
    write_jsonl(folder / "judgments.jsonl", [{"query_id": "q1", "doc_id": "k", "relevance": 1}])
    assert invoke(["goldset", "import", str(folder), "--name", "kelp"]) == 0
    other = write_jsonl(tmp_path / "other.jsonl", [{"id": "s", "text": SOURCE}])
    corpus = write_jsonl(tmp_path / "chunks.jsonl", sentence_chunks("k", OTHER))
    capsys.readouterr()
    code = invoke(["goldset", "remap", "kelp", "--corpus", str(corpus), "--old-corpus", str(other)])
    assert code == 2
    assert " ".join(capsys.readouterr().err.split()) == (
        "no judgment could be mapped onto the new corpus; nothing was stored. Check that the "
        f"old corpus ({other}) is the one the goldset's doc ids name, else give that one with "
        "--old-corpus PATH."
    )


def test_bad_input_exits_2(
    imported: Path, evalkit_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corpus = write_jsonl(imported / "chunks.jsonl", sentence_chunks("s", SOURCE))
    assert invoke(["goldset", "remap", "tides", "--corpus", str(corpus), "--min-overlap", "0"]) == 2
    assert invoke(["goldset", "remap", "nosuch", "--corpus", str(corpus)]) == 2
    broken = write_jsonl(imported / "broken.jsonl", [{"id": "x", "text": "t", "start": 1}])
    assert invoke(["goldset", "remap", "tides", "--corpus", str(broken)]) == 2
    err = capsys.readouterr().err
    assert "broken.jsonl:1" in err


def test_remap_reports_chunks_that_overlap_with_other_text(
    imported: Path, evalkit_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bogus = {"id": "s#9", "text": "xx. Waves break.", "source_id": "s", "start": 43, "end": 59}
    corpus = write_jsonl(
        imported / "chunks.jsonl",
        [*sentence_chunks("s", SOURCE), bogus, *sentence_chunks("k", OTHER)],
    )
    code, report = remap_cli(capsys, "tides", "--corpus", str(corpus))
    assert code == 0, report
    assert (report["counts"]["mapped"], report["moved"]) == (3, 0)
    assert report["conflicts"] == [
        {"source_id": "s", "chunk": "s#2", "overlaps": "s#9", "start": 43, "end": 55,
         "differs_at": 43}
    ]  # fmt: skip
    with Store.open(evalkit_home / "evalkit.duckdb", read_only=True) as store:
        judged = {j.doc_id for j in load_stored_goldset(store, "tides").judgments}
    assert judged == {"s#0", "s#2", "k#0", "k#1"}
    assert invoke(["goldset", "remap", "tides", "--corpus", str(corpus), "--name", "t2"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "1 chunks overlap another chunk of their source with other text" in out
    assert "s#2 │ s │ s#9 │ 43-55 │ 43" in out


@pytest.mark.parametrize(
    ("chunk", "message"),
    [
        (
            {"id": "s#2", "text": "Waves break.", "source_id": "s", "start": 43,
             "end": 200_000_000},
            "end 200000000 of chunk 's#2' lies past its text: from start 43, its 12 "
            "characters end at 55",
        ),
        (
            {"id": "s#2", "text": "Waves break. And more.", "source_id": "s", "start": 43,
             "end": 65},
            "end 65 of chunk 's#2' lies past the end of its source 's', whose whole text "
            "(line 1) has 55 characters",
        ),
    ],
    ids=["past-its-text", "past-its-source"],
)  # fmt: skip
@pytest.mark.slow
def test_chunk_offsets_no_text_backs_are_refused_before_anything_is_built(
    imported: Path,
    evalkit_home: Path,
    capsys: pytest.CaptureFixture[str],
    chunk: dict[str, Any],
    message: str,
) -> None:
    """A chunk with "end": 200000000 took 1.86 GB (a larger one a raw MemoryError, exit 1,
    which says "stored, some stale")."""
    corpus = write_jsonl(
        imported / "chunks.jsonl",
        [{"id": "s", "text": SOURCE}, *sentence_chunks("k", OTHER), chunk],
    )
    tracemalloc.start()
    try:
        code = invoke(["goldset", "remap", "tides", "--corpus", str(corpus)])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    err = " ".join(capsys.readouterr().err.split())
    assert code == 2, err
    assert peak < 50_000_000
    assert f"chunks.jsonl:4 field 'end': {message}" in err
    with Store.open(evalkit_home / "evalkit.duckdb", read_only=True) as store:
        assert len(list_goldsets(store, "tides")) == 1


# -- the audit's span check ---------------------------------------------------------------


def test_audit_flags_span_judgments_whose_source_text_changed(
    imported: Path, evalkit_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    client = open_chroma_client(path=evalkit_home / "chroma")
    collection = client.create_collection("tides", metadata={"hnsw:space": "cosine"})
    edited = SOURCE.replace("Waves break.", "Waves crash.")
    collection.add(
        ids=["s", "k"],
        embeddings=np.eye(2, 4, dtype=np.float32),
        documents=[edited, OTHER],
    )
    source = write_jsonl(
        imported / "now.jsonl",
        [{"id": "s", "text": "Intro. " + edited}, {"id": "k", "text": OTHER}],
    )

    def audit(*extra: str) -> dict[str, Any]:
        code = invoke(
            ["audit", "--collection", "tides", "--goldset", "tides", "--check", "spans",
             "--no-save", "--fail-on", "warning", "--format", "json", *extra]
        )  # fmt: skip
        data: dict[str, Any] = json.loads(capsys.readouterr().out)
        assert code == (1 if data["findings"] else 0)
        return data

    from_collection = audit()
    (finding,) = from_collection["findings"]
    assert finding["kind"] == "span_text_changed"
    assert finding["doc_ids"] == ["s2"]
    assert finding["details"]["judgments"][0]["now_reads"] == "Waves crash."
    from_source = audit("--source", str(source))
    (moved,) = from_source["findings"]
    assert sorted(moved["doc_ids"]) == ["s", "s2"]
    by_doc = {item["doc_id"]: item for item in moved["details"]["judgments"]}
    assert by_doc["s"]["found_at"] == [7, 29]
    gone = write_jsonl(imported / "gone.jsonl", [{"id": "k", "text": OTHER}])
    (missing,) = audit("--source", str(gone))["findings"]
    assert missing["kind"] == "span_source_missing"
    assert missing["count"] == 2
    unchanged = write_jsonl(imported / "same.jsonl", [{"id": "s", "text": SOURCE}])
    clean = audit("--source", str(unchanged))
    assert clean["findings"] == []
    (spans_check,) = [c for c in clean["checks"] if c["name"] == "spans"]
    assert spans_check["measurements"]["span_judgments"] == 2.0
