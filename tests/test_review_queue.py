"""The goldset review queue against a real DuckDB file: drafts and disagreements queued,
ordered, reviewed by people at once, their agreement, and publishing a goldset version that
an interrupted publish never half-writes."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import unicodedata
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from evalkit_process import fresh_env
from relevance_judge import GradingJudge, grading_judge
from sklearn.metrics import cohen_kappa_score
from test_traffic_promote import ANSWERS, RECORDS, TableRetriever

from evalkit.cli import invoke
from evalkit.config import JudgeSettings
from evalkit.errors import GoldsetError, InputError, StoreError
from evalkit.goldset import Goldset
from evalkit.goldset.model import unknown_documents
from evalkit.goldset.review import combine_reviews, lower_median, review_item_id
from evalkit.judging.assessor import RelevanceAssessor
from evalkit.judging.records import JudgePair
from evalkit.pipeline import (
    CorpusTexts,
    TrafficReplayRequest,
    ingest_draft,
    judge_pairs,
    publish_goldset,
    queue_disagreements,
    record_review,
    replay_traffic_window,
    review_item,
    review_queue,
    reviewer_agreement,
)
from evalkit.pipeline.review import review_priority
from evalkit.records import Judgment, Query, Span
from evalkit.records.requests import JUDGING_DEFAULTS
from evalkit.records.review import (
    DisagreementRequest,
    PublishRequest,
    ReviewOrigin,
    ReviewRecord,
    Verdict,
)
from evalkit.store import Store
from evalkit.store.access import StoreAccess
from evalkit.store.goldsets import list_goldsets, load_stored_goldset, save_goldset
from evalkit.store.review import (
    add_reviews,
    item_reviews,
    list_items,
    list_publications,
    published_item_ids,
)
from evalkit.traffic import SampleSpec, ingest_paths, parse_window, promote_window, sample_window

REPO_ROOT = Path(__file__).resolve().parents[1]


def write_lines(path: Path, records: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")


SOURCE = "The Tay Bridge was finished in 1878. It fell in a storm in 1879."


def write_generated_draft(folder: Path) -> Path:
    """A draft as `evalkit goldset generate` writes it: three questions of two kinds, graded
    suggestions with spans, the corpus of their chunks and a candidates line each."""
    folder.mkdir(parents=True)
    tags = ["generated", "generator:qgen-1", "prompt:p3"]
    write_lines(
        folder / "queries.jsonl",
        [
            {
                "id": "g1",
                "text": "When was the Tay Bridge finished?",
                "tags": [*tags, "kind:factoid"],
            },
            {
                "id": "g2",
                "text": "What brought the bridge down?",
                "tags": [*tags, "kind:paraphrase"],
            },
            {"id": "g3", "text": "How long did the bridge stand?", "tags": [*tags, "kind:multi"]},
        ],
    )
    first = {"source_id": "tay", "start": 0, "end": 36}
    write_lines(
        folder / "judgments.jsonl",
        [
            {"query_id": "g1", "doc_id": "tay-0", "relevance": 3, **first},
            {"query_id": "g2", "doc_id": "tay-1", "relevance": 2, "source_id": "tay",
             "text": "It fell in a storm in 1879."},
            {"query_id": "g3", "doc_id": "tay-0", "relevance": 2, **first},
            {"query_id": "g3", "doc_id": "tay-1", "relevance": None},
        ],
    )  # fmt: skip
    write_lines(
        folder / "corpus.jsonl",
        [
            {"id": "tay-0", "text": SOURCE[:36], "source_id": "tay", "start": 0, "end": 36},
            {"id": "tay-1", "text": SOURCE[37:], "source_id": "tay", "start": 37, "end": 64},
        ],
    )
    write_lines(
        folder / "candidates.jsonl",
        [
            {"query_id": "g1", "origin": "generated", "generator": "qgen-1", "prompt_version": "p3",
             "kind": "factoid", "source_ids": ["tay"], "priority": 0.2},
            {"query_id": "g2", "origin": "generated", "generator": "qgen-1", "prompt_version": "p3",
             "kind": "paraphrase", "source_ids": ["tay"], "priority": 0.9},
            {"query_id": "g3", "origin": "generated", "generator": "qgen-1", "prompt_version": "p3",
             "kind": "multi", "source_ids": ["tay"], "priority": 0.5},
        ],
    )  # fmt: skip
    return folder


def review(
    access: Any,
    item_id: str,
    reviewer: str,
    grades: dict[str, int],
    *,
    reject: bool = False,
    question: str | None = None,
) -> ReviewRecord:
    return record_review(
        access,
        item_id,
        reviewer=reviewer,
        verdict=Verdict.reject if reject else Verdict.accept,
        grades=grades,
        question=question,
    )


def items_by_query(store: Store, goldset: str) -> dict[str, str]:
    return {
        queued.item.query.id: queued.item.item_id for queued in list_items(store, goldset=goldset)
    }


# -- how reviews combine ----------------------------------------------------------------


def record(
    reviewer: str, verdict: Verdict, grades: dict[str, int], minute: int, **kw: Any
) -> ReviewRecord:
    at = datetime(2026, 11, 25, 12, 0) + timedelta(minutes=minute)
    return ReviewRecord("i", reviewer, verdict, grades, at, **kw)


def test_reviews_combine_by_majority_the_lower_median_and_each_reviewers_newest() -> None:
    assert lower_median([3, 1]) == 1
    assert lower_median([0, 3, 2]) == 2
    assert lower_median([1, 2, 3, 3]) == 2
    combined = combine_reviews(
        [
            record("ann", Verdict.reject, {}, 0),
            record("ann", Verdict.accept, {"d1": 3, "d2": 0}, 5, question="Edited?"),
            record("bob", Verdict.accept, {"d1": 1}, 1),
            record("cy", Verdict.reject, {"d1": 0}, 2),
        ]
    )
    # ann's later accept supersedes her reject: 2 accept, 1 reject. d1's grades of the
    # accepting reviewers are 3 and 1 (cy rejected): the lower median is 1.
    assert combined.verdict is Verdict.accept
    assert (combined.n_accept, combined.n_reject, combined.reviewers) == (
        2,
        1,
        ("ann", "bob", "cy"),
    )
    assert dict(combined.grades) == {"d1": 1, "d2": 0}
    assert combined.question == "Edited?"
    tie = combine_reviews(
        [record("ann", Verdict.accept, {"d1": 2}, 0), record("bob", Verdict.reject, {}, 1)]
    )
    assert tie.verdict is None
    assert combine_reviews([]).verdict is None


def test_priority_weighs_the_signal_and_the_traffic_volume() -> None:
    assert review_priority(1.0, 0) == pytest.approx(0.7)
    assert review_priority(None, 0) == pytest.approx(0.35)
    assert review_priority(0.0, 1000) == pytest.approx(0.3)
    assert review_priority(0.0, 10**6) == pytest.approx(0.3)
    assert review_priority(0.5, 1) == pytest.approx(
        0.35 + 0.3 * math.log(2) / math.log(1001), abs=1e-6
    )


# -- ingesting drafts ---------------------------------------------------------------------


def test_a_generated_draft_is_queued_with_its_suggestions_spans_and_provenance(
    tmp_path: Path,
) -> None:
    draft = write_generated_draft(tmp_path / "generated")
    with Store.open(tmp_path / "evalkit.duckdb") as store:
        outcome = ingest_draft(store, draft, goldset="tay")
        assert outcome.counts.to_dict() == {"added": 3, "updated": 0, "kept": 0}
        queue = review_queue(store, goldset="tay")
        # Priority 0.7 * the generator's (no traffic asked these): g2 0.63, g3 0.35, g1 0.14.
        assert [queued.item.query.id for queued in queue] == ["g2", "g3", "g1"]
        assert [queued.item.priority for queued in queue] == pytest.approx([0.63, 0.35, 0.14])
        g3 = queue[1]
        assert g3.status == "open"
        assert g3.item.origin is ReviewOrigin.generated
        assert g3.item.reason == "generated question (multi) by qgen-1"
        first, second = g3.item.documents
        assert (first.doc_id, first.suggested_grade, first.suggested_by) == (
            "tay-0",
            2,
            "generator:qgen-1",
        )
        assert first.span == Span("tay", 0, 36, None)
        assert first.text == SOURCE[:36]
        assert (second.doc_id, second.suggested_grade, second.suggested_by) == ("tay-1", None, None)
        assert queue[0].item.documents[0].span == Span(
            "tay", None, None, "It fell in a storm in 1879."
        )
        provenance = dict(g3.item.provenance)
        assert provenance["generator"] == "qgen-1"
        assert provenance["prompt_version"] == "p3"
        assert provenance["source_ids"] == "tay"
        assert provenance["draft"] == str(draft)
        assert "kind:multi" in g3.item.query.tags

        # Queued again: unreviewed open items are refreshed, a reviewed one is kept.
        review(store, g3.item.item_id, "ann", {"tay-0": 2})
        again = ingest_draft(store, draft, goldset="tay")
        assert again.counts.to_dict() == {"added": 0, "updated": 2, "kept": 1}
        assert set(again.item_ids) == {queued.item.item_id for queued in queue}
        assert len(list_items(store, goldset="tay")) == 3


def test_queries_sharing_a_text_are_items_of_their_own(tmp_path: Path) -> None:
    """Two queries asking the same question with other judgments (SciFact has four) are two
    items; one used to replace the other without a word. A text asked once keeps its id."""
    draft = tmp_path / "twice"
    draft.mkdir()
    write_lines(
        draft / "queries.jsonl",
        [
            {"id": "a", "text": "what is known about subject 1"},
            {"id": "b", "text": "what is known about subject 1"},
            {"id": "c", "text": "asked once"},
        ],
    )
    write_lines(
        draft / "judgments.jsonl",
        [
            {"query_id": "a", "doc_id": "A", "relevance": 0},
            {"query_id": "b", "doc_id": "B", "relevance": 3},
            {"query_id": "c", "doc_id": "C", "relevance": 1},
        ],
    )
    with Store.open(tmp_path / "evalkit.duckdb") as store:
        outcome = ingest_draft(store, draft, goldset="twice")
        assert outcome.counts.to_dict() == {"added": 3, "updated": 0, "kept": 0}
        queue = {queued.item.query.id: queued.item for queued in review_queue(store)}
        assert sorted(queue) == ["a", "b", "c"]
        assert [d.doc_id for d in queue["a"].documents] == ["A"]
        assert [d.doc_id for d in queue["b"].documents] == ["B"]
        assert queue["c"].item_id == review_item_id("twice", queue["c"].origin, "asked once")
        again = ingest_draft(store, draft, goldset="twice")
        assert again.counts.added == 0
        assert len(list_items(store, goldset="twice")) == 3


@pytest.mark.parametrize("tenant", [None, "acme"])
def test_a_query_whose_text_another_query_comes_to_share_keeps_its_item(
    tmp_path: Path, tenant: str | None
) -> None:
    """A query's item id hashes its query id only while another query asks the same text.
    Queued again once another one does (a later draft, or a publication that added a promoted
    query asking it), the query was queued a second time as a new item, and reviewers graded
    it twice."""
    draft = tmp_path / "draft"
    draft.mkdir()
    asked = {"text": "what is known about subject 1", "tenant": tenant}
    write_lines(draft / "queries.jsonl", [{"id": "a", **asked}])
    write_lines(draft / "judgments.jsonl", [{"query_id": "a", "doc_id": "A", "relevance": 1}])
    with Store.open(tmp_path / "evalkit.duckdb") as store:
        (first,) = ingest_draft(store, draft, goldset="g").item_ids
        write_lines(draft / "queries.jsonl", [{"id": "a", **asked}, {"id": "b", **asked}])
        write_lines(
            draft / "judgments.jsonl",
            [
                {"query_id": "a", "doc_id": "A", "relevance": 2},
                {"query_id": "b", "doc_id": "B", "relevance": 3},
            ],
        )
        again = ingest_draft(store, draft, goldset="g")
        assert again.counts.to_dict() == {"added": 1, "updated": 1, "kept": 0}
        queue = {queued.item.query.id: queued.item for queued in review_queue(store)}
        assert sorted(queue) == ["a", "b"]
        assert queue["a"].item_id == first == again.item_ids[0]
        assert queue["a"].documents[0].suggested_grade == 2
        # And back: once the text is asked once again, the query keeps the item it has.
        write_lines(draft / "queries.jsonl", [{"id": "a", **asked}])
        write_lines(draft / "judgments.jsonl", [{"query_id": "a", "doc_id": "A", "relevance": 3}])
        assert ingest_draft(store, draft, goldset="g").counts.added == 0
        assert len(list_items(store, goldset="g")) == 2


def promote_records(
    store: Store, log: Path, draft: Path, *, n: int, extra: list[dict[str, Any]] | None = None
) -> None:
    """Log the RECORDS of window 2026-11-21 (and ``extra`` lines), ingest, sample and replay
    them, and promote ``n`` of them to ``draft`` with their top 2 results."""
    lines = [
        {"query_id": query_id, "timestamp": "2026-11-21T08:00:00Z", "text": text,
         "tenant": tenant, "results": logged}
        for query_id, text, tenant, logged in RECORDS
    ]  # fmt: skip
    write_lines(log, lines + (extra or []))
    ingest_paths(store, [log])
    sample = sample_window(store, SampleSpec(window=parse_window("2026-11-21"), n=20, seed=0))
    replay_traffic_window(
        store, sample.sample_id, TableRetriever(ANSWERS), TrafficReplayRequest(k=2, answers=False)
    )
    promote_window(store, "2026-11-21", draft, n=n, top=2)


def test_a_promoted_traffic_draft_is_queued_with_the_retrievers_doubt_and_the_traffic_volume(
    tmp_path: Path,
) -> None:
    # "unsure" was asked four more times that day.
    again = [
        {"query_id": f"again{n}", "timestamp": "2026-11-21T09:00:00Z", "text": "unsure",
         "tenant": "a"}
        for n in range(4)
    ]  # fmt: skip
    draft = tmp_path / "draft"
    with Store.open(tmp_path / "evalkit.duckdb") as store:
        promote_records(store, tmp_path / "traffic.jsonl", draft, n=3, extra=again)
        candidates = {
            line["query_id"]: line
            for line in map(json.loads, (draft / "candidates.jsonl").read_text().splitlines())
        }
        outcome = ingest_draft(store, draft, goldset="support")
        assert outcome.counts.added == len(candidates)
        queue = review_queue(store, goldset="support")
    by_text = {queued.item.query.text: queued.item for queued in queue}
    unsure = by_text["unsure"]
    assert unsure.origin is ReviewOrigin.traffic
    assert unsure.query.tenant == "a"
    assert [d.doc_id for d in unsure.documents] == ["d5", "d6"]
    assert all(d.suggested_grade is None for d in unsure.documents)
    assert unsure.provenance["window"] == "2026-11-21"
    assert unsure.provenance["traffic_volume"] == "5"
    assert unsure.provenance["reasons"] == "low_confidence,high_churn"
    assert "asked 5 times in traffic" in unsure.reason
    for item in queue:
        candidate = candidates[item.item.query.id]
        volume = int(item.item.provenance["traffic_volume"])
        assert item.item.priority == pytest.approx(
            review_priority(candidate["priority"], volume), abs=1e-6
        )
    assert [q.item.priority for q in queue] == sorted(
        (q.item.priority for q in queue), reverse=True
    )
    assert all(d.text == "" for q in queue for d in q.item.documents)

    # The draft names documents by id only: with the corpus, reviewers read their texts.
    corpus = tmp_path / "corpus.jsonl"
    write_lines(corpus, [{"id": f"d{n}", "text": f"passage {n}"} for n in range(1, 9)])
    with Store.open(tmp_path / "evalkit.duckdb") as store:
        again = ingest_draft(store, draft, goldset="support", texts=CorpusTexts(corpus))
        assert again.counts.updated == len(candidates)  # unreviewed: refreshed with texts
        texts = {
            d.doc_id: d.text
            for q in review_queue(store, goldset="support")
            for d in q.item.documents
        }
    assert texts["d5"] == "passage 5"
    assert texts["d6"] == "passage 6"


def test_a_malformed_draft_is_refused_by_file_line_and_field_and_nothing_is_queued(
    evalkit_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    draft = write_generated_draft(tmp_path / "bad")
    judgments = (draft / "judgments.jsonl").read_text().splitlines()
    judgments[1] = json.dumps({"query_id": "g2", "doc_id": "tay-1", "relevance": 7})
    judgments[2] = json.dumps(
        {"query_id": "g3", "doc_id": "tay-0", "relevance": 2, "source_id": "tay", "start": 5}
    )
    (draft / "judgments.jsonl").write_text("\n".join(judgments) + "\n")
    candidates = (draft / "candidates.jsonl").read_text().splitlines()
    candidates[0] = json.dumps({"query_id": "g1", "priority": 1.5})
    candidates.append(json.dumps({"query_id": "g9"}))
    (draft / "candidates.jsonl").write_text("\n".join(candidates) + "\n")
    store_path = evalkit_home / "evalkit.duckdb"
    with Store.open(store_path) as store:
        with pytest.raises(GoldsetError) as raised:
            ingest_draft(store, draft, goldset="tay")
        assert list_items(store) == []
    found = {(Path(p.path or "").name, p.line, p.field) for p in raised.value.problems}
    assert found == {
        ("judgments.jsonl", 2, "relevance"),
        ("judgments.jsonl", 3, "end"),
        ("candidates.jsonl", 1, "priority"),
        ("candidates.jsonl", 4, "query_id"),
    }
    capsys.readouterr()
    assert invoke(["review", "add", str(draft), "--goldset", "tay", "-o", "json"]) == 2
    error = json.loads(capsys.readouterr().out)["error"]
    assert {(Path(p["path"]).name, p["line"], p["field"]) for p in error["problems"]} == found
    with Store.open(store_path) as store:
        assert list_items(store) == []


def test_a_goldset_name_publish_could_never_take_is_refused_before_anything_is_queued(
    evalkit_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    draft = write_generated_draft(tmp_path / "draft")
    assert invoke(["review", "add", str(draft), "--goldset", "../evil"]) == 2
    said = capsys.readouterr().err
    assert "is spelt as a path" in said
    assert "(--goldset)" in said
    corpus = tmp_path / "corpus.jsonl"
    write_lines(corpus, [{"id": "tay", "text": SOURCE}])
    out = tmp_path / "generated"
    generate = ["goldset", "generate", "--corpus", str(corpus), "--out", str(out)]
    assert invoke([*generate, "--queue", "a/b"]) == 2
    assert "(--queue)" in capsys.readouterr().err
    assert not out.exists()
    with Store.open(evalkit_home / "evalkit.duckdb") as store:
        assert list_items(store) == []


def test_review_add_reads_texts_from_corpus_or_collection_not_both(
    evalkit_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    draft = write_generated_draft(tmp_path / "draft")
    corpus = tmp_path / "corpus.jsonl"
    write_lines(corpus, [{"id": "tay-1", "text": "another passage"}])
    both = ["--corpus", str(corpus), "--collection", "docs"]
    assert invoke(["review", "add", str(draft), "--goldset", "tay", *both]) == 2
    assert "not both" in capsys.readouterr().err
    assert invoke(["review", "add", str(draft), "--goldset", "tay", "--corpus", str(corpus)]) == 0
    with Store.open(evalkit_home / "evalkit.duckdb") as store:
        texts = {d.doc_id: d.text for q in list_items(store) for d in q.item.documents}
    assert texts["tay-1"] == "It fell in a storm in 1879."  # the draft's own texts stay


def test_a_draft_query_id_that_is_another_query_of_the_goldset_is_refused(tmp_path: Path) -> None:
    draft = write_generated_draft(tmp_path / "draft")
    with Store.open(tmp_path / "evalkit.duckdb") as store:
        save_goldset(
            store, Goldset.build("tay", [Query("g2", "Something else?")], [Judgment("g2", "x", 1)])
        )
        with pytest.raises(GoldsetError) as raised:
            ingest_draft(store, draft, goldset="tay")
        assert list_items(store) == []
    (problem,) = raised.value.problems
    assert (Path(problem.path or "").name, problem.line, problem.field) == (
        "queries.jsonl",
        2,
        "id",
    )


def test_a_draft_is_queued_again_after_a_reviewer_reworded_one_of_its_questions(
    tmp_path: Path,
) -> None:
    """Publishing g1 reworded made re-queuing the same draft fail: 'query id g1 is already
    another query of goldset tay'."""
    draft = write_generated_draft(tmp_path / "draft")
    with Store.open(tmp_path / "evalkit.duckdb") as store:
        ingest_draft(store, draft, goldset="tay")
        ids = items_by_query(store, "tay")
        review(store, ids["g1"], "ann", {"tay-0": 3}, question="When did the Tay Bridge open?")
        assert publish_goldset(store, "tay").publication is not None

        again = ingest_draft(store, draft, goldset="tay")

        statuses = {q.item.query.id: q.status for q in list_items(store, goldset="tay")}
    assert (again.counts.added, again.counts.kept) == (0, 1)
    assert statuses == {"g1": "published", "g2": "open", "g3": "open"}


# -- order, reviews, agreement ----------------------------------------------------------


def test_reviewed_items_sink_below_the_unreviewed_whatever_their_priority(tmp_path: Path) -> None:
    with Store.open(tmp_path / "evalkit.duckdb") as store:
        ingest_draft(store, write_generated_draft(tmp_path / "draft"), goldset="tay")
        ids = items_by_query(store, "tay")
        review(store, ids["g2"], "ann", {"tay-1": 3})
        order = [q.item.query.id for q in review_queue(store, goldset="tay", needed_reviews=1)]
        assert order == ["g3", "g1", "g2"]
        order = [q.item.query.id for q in review_queue(store, goldset="tay", needed_reviews=2)]
        assert order == ["g2", "g3", "g1"]
        assert [q.item.query.id for q in review_queue(store, goldset="tay", status="accepted")] == [
            "g2"
        ]
        with pytest.raises(InputError, match="unknown status"):
            review_queue(store, status="done")


def test_a_review_names_what_is_wrong_and_saves_nothing(tmp_path: Path) -> None:
    with Store.open(tmp_path / "evalkit.duckdb") as store:
        ingest_draft(store, write_generated_draft(tmp_path / "draft"), goldset="tay")
        g3 = items_by_query(store, "tay")["g3"]
        with pytest.raises(InputError, match="no document 'nope'"):
            review(store, g3, "ann", {"nope": 1})
        with pytest.raises(InputError, match="not one of 0, 1, 2, 3"):
            review(store, g3, "ann", {"tay-0": 4})
        with pytest.raises(InputError, match="at least one graded document"):
            review(store, g3, "ann", {})
        with pytest.raises(InputError, match="reviewer"):
            review(store, g3, "  ", {"tay-0": 1})
        assert item_reviews(store, goldset="tay") == {}


def test_a_grade_for_an_id_in_another_unicode_form_says_so() -> None:
    """NFC and NFD spell café alike on screen: the message shows the difference."""
    decomposed = unicodedata.normalize("NFD", "caf\u00e9")
    message = unknown_documents(["caf\u00e9", "nope"], ["doc A", decomposed])
    assert message == (
        "'caf\u00e9' (written 'caf\\xe9': the same letters as its document 'cafe\\u0301' in "
        "another Unicode form; ids are compared as written), 'nope'; its documents: doc A, "
        f"{decomposed}"
    )


SAVER = textwrap.dedent(
    """
    import sys
    import time
    from pathlib import Path
    from evalkit.pipeline import record_review
    from evalkit.records.review import Verdict
    from evalkit.store.access import StoreAccess

    store, item, reviewer, start, count = sys.argv[1:]
    access = StoreAccess(Path(store), wait=60, program="reviewer " + reviewer)
    while not Path(start).exists():
        time.sleep(0.01)
    for n in range(int(count)):
        grades = {"tay-0": n % 4}
        record_review(access, item, reviewer=reviewer, verdict=Verdict.accept, grades=grades)
    """
)


@pytest.mark.slow
def test_two_reviewers_saving_the_same_item_at_once_keep_both_reviews(tmp_path: Path) -> None:
    path = tmp_path / "evalkit.duckdb"
    with Store.open(path) as store:
        ingest_draft(store, write_generated_draft(tmp_path / "draft"), goldset="tay")
        item = items_by_query(store, "tay")["g1"]
    start = tmp_path / "go"
    saves = 6
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", SAVER, str(path), item, reviewer, str(start), str(saves)],
            env=fresh_env(),
            stderr=subprocess.PIPE,
            text=True,
        )
        for reviewer in ("ann", "bob")
    ]
    start.touch()
    for process in processes:
        _, err = process.communicate(timeout=120)
        assert process.returncode == 0, err

    # Two threads of one process (a dashboard serving two reviewers) through the same rules.
    barrier = threading.Barrier(2)
    failures: list[BaseException] = []

    def save(reviewer: str) -> None:
        access = StoreAccess(path, wait=60, program=f"thread {reviewer}")
        barrier.wait()
        try:
            for n in range(saves):
                review(access, item, reviewer, {"tay-0": n % 4})
        except BaseException as error:  # pragma: no cover - reported below
            failures.append(error)

    threads = [threading.Thread(target=save, args=(name,)) for name in ("cy", "dee")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert failures == []
    with Store.open(path, read_only=True) as store:
        reviews = item_reviews(store, item_ids=[item])[item]
        queued = list_items(store, goldset="tay")
    assert len(reviews) == 4 * saves
    assert {r.reviewer: sum(1 for x in reviews if x.reviewer == r.reviewer) for r in reviews} == {
        "ann": saves, "bob": saves, "cy": saves, "dee": saves,
    }  # fmt: skip
    assert next(q for q in queued if q.item.item_id == item).reviewers == (
        "ann",
        "bob",
        "cy",
        "dee",
    )
    assert next(q for q in queued if q.item.item_id == item).status == "accepted"


def test_a_review_save_holds_the_store_for_well_under_a_second(tmp_path: Path) -> None:
    path = tmp_path / "evalkit.duckdb"
    folder = tmp_path / "big"
    folder.mkdir()
    write_lines(
        folder / "queries.jsonl", [{"id": f"q{n}", "text": f"question {n}"} for n in range(500)]
    )
    write_lines(
        folder / "judgments.jsonl",
        [
            {"query_id": f"q{n}", "doc_id": f"d{n}-{k}", "relevance": None}
            for n in range(500)
            for k in range(5)
        ],
    )
    with Store.open(path) as store:
        ingest_draft(store, folder, goldset="big")
        item = items_by_query(store, "big")["q234"]
    access = StoreAccess(path, wait=10, program="dashboard")
    held = []
    for reviewer in ("ann", "bob", "cy"):
        started = time.monotonic()
        review(access, item, reviewer, {"d234-0": 2})
        held.append(time.monotonic() - started)
    assert max(held) < 1.0, held


def test_reviewer_agreement_is_cohens_kappa_per_pair(tmp_path: Path) -> None:
    folder = tmp_path / "draft"
    folder.mkdir()
    write_lines(
        folder / "queries.jsonl", [{"id": f"q{n}", "text": f"question {n}"} for n in range(6)]
    )
    write_lines(
        folder / "judgments.jsonl",
        [
            {"query_id": f"q{n}", "doc_id": f"d{k}", "relevance": None}
            for n in range(6)
            for k in range(2)
        ],
    )
    ann = [3, 2, 0, 1, 3, 0, 2, 2, 1, 0, 3, 1]
    bob = [3, 1, 0, 1, 2, 0, 2, 3, 0, 0, 3, 1]
    cy = [0, 1, 0, 1, 0, 0, 1, 1, 0, 0, 1, 1]
    with Store.open(tmp_path / "evalkit.duckdb") as store:
        ingest_draft(store, folder, goldset="g")
        ids = items_by_query(store, "g")
        for n in range(6):
            for name, grades in (("ann", ann), ("bob", bob), ("cy", cy)):
                review(store, ids[f"q{n}"], name, {"d0": grades[2 * n], "d1": grades[2 * n + 1]})
        # bob reviews q5 again: his newest review counts.
        review(store, ids["q5"], "bob", {"d0": 2, "d1": 1})
        results = {(r.reviewer_a, r.reviewer_b): r for r in reviewer_agreement(store, "g")}
    bob[10] = 2
    assert set(results) == {("ann", "bob"), ("ann", "cy"), ("bob", "cy")}
    expected = cohen_kappa_score(ann, bob, weights="linear", labels=[0, 1, 2, 3])
    pair = results[("ann", "bob")]
    assert (pair.n_items, pair.n_pairs, pair.scale) == (6, 12, "graded")
    assert pair.kappa == pytest.approx(expected)
    assert pair.low is not None
    assert pair.high is not None
    assert pair.low <= pair.kappa <= pair.high
    # cy grades only 0 and 1: kept graded against ann's 0-3, so kappa is symmetric.
    expected_cy = cohen_kappa_score(ann, cy, weights="linear", labels=[0, 1, 2, 3])
    assert results[("ann", "cy")].kappa == pytest.approx(expected_cy)
    assert pair.verdict_agreement == 1.0


def test_grades_a_rejection_was_saved_with_are_not_agreement(tmp_path: Path) -> None:
    """Imports saved rejections with the pre-annotated grades the reviewer started from;
    those grades entered the reviewers' kappa."""
    draft = write_generated_draft(tmp_path / "draft")
    with Store.open(tmp_path / "evalkit.duckdb") as store:
        ingest_draft(store, draft, goldset="tay")
        ids = items_by_query(store, "tay")
        review(store, ids["g1"], "ann", {"tay-0": 3})
        review(store, ids["g3"], "ann", {"tay-0": 2, "tay-1": 0})
        at = datetime(2026, 11, 25, 12, 0)
        add_reviews(
            store,
            [
                ReviewRecord(ids["g1"], "bob", Verdict.accept, {"tay-0": 3}, at),
                ReviewRecord(ids["g3"], "bob", Verdict.reject, {"tay-0": 0, "tay-1": 3}, at),
            ],
        )
        (pair,) = reviewer_agreement(store, "tay")
    assert (pair.n_items, pair.n_pairs, pair.verdict_agreement) == (2, 1, 0.5)


def test_an_accepted_item_with_no_grade_is_not_published(tmp_path: Path) -> None:
    """An accept with no grade (imports saved them) was published as a query with no
    judgment: a first version of a goldset with none at all."""
    draft = write_generated_draft(tmp_path / "draft")
    with Store.open(tmp_path / "evalkit.duckdb") as store:
        ingest_draft(store, draft, goldset="tay")
        ids = items_by_query(store, "tay")
        at = datetime(2026, 11, 25, 12, 0)
        add_reviews(store, [ReviewRecord(ids["g1"], "ann", Verdict.accept, {}, at)])
        outcome = publish_goldset(store, "tay")
        assert list_goldsets(store, "tay") == []
        (queued,) = [q for q in list_items(store, goldset="tay") if q.item.item_id == ids["g1"]]
    assert (outcome.publication, outcome.ungraded) == (None, (ids["g1"],))
    assert queued.status == "accepted"


# -- disagreements with an LLM assessor -------------------------------------------------


GOLD_QUERIES = [Query("q1", "what holds the bridge up"), Query("q2", "when did it fall")]
GOLD_JUDGMENTS = [Judgment("q1", "d1", 3), Judgment("q1", "d2", 0), Judgment("q2", "d3", 2)]
TEXTS = {"d1": "Piers hold the bridge up.", "d2": "A storm came.", "d3": "It fell in 1879."}


@pytest.fixture
def judged(tmp_path: Path) -> Iterator[Path]:
    """A store with a goldset and a loopback assessor's grades of its pairs in the judged
    pool: it disagrees on q1/d1 by 3 grades and on q2/d3 by 1."""
    path = tmp_path / "evalkit.duckdb"
    gold = Goldset.build("bridges", GOLD_QUERIES, GOLD_JUDGMENTS)
    texts = {query.id: query.text for query in GOLD_QUERIES}
    known = {
        (texts["q1"], TEXTS["d1"]): 0,
        (texts["q1"], TEXTS["d2"]): 0,
        (texts["q2"], TEXTS["d3"]): 1,
    }
    with grading_judge(GradingJudge(known)) as judge, Store.open(path) as store:
        save_goldset(store, gold)
        assessor = RelevanceAssessor(
            JudgeSettings(
                base_url=judge.url,
                model="grader-1",
                api_key_env="EVALKIT_TEST_NO_SUCH_KEY",
                retry_backoff=0.0,
                max_retries=1,
            )
        )
        pairs = [
            JudgePair(texts[j.query_id], j.doc_id, TEXTS[j.doc_id], j.query_id)
            for j in GOLD_JUDGMENTS
        ]
        outcome = judge_pairs(store, pairs, assessor, JUDGING_DEFAULTS)
        assert outcome.n_judged == 3
    return path


def test_assessor_disagreements_are_queued_by_their_size(judged: Path, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.jsonl"
    write_lines(corpus, [{"id": doc_id, "text": text} for doc_id, text in TEXTS.items()])
    with Store.open(judged) as store:
        wide = queue_disagreements(
            store, "bridges", DisagreementRequest(min_gap=2), texts=CorpusTexts(corpus)
        )
        assert wide.counts.added == 1
        (q1,) = review_queue(store, goldset="bridges")
        assert q1.item.origin is ReviewOrigin.disagreement
        assert q1.item.query.id == "q1"
        (d1,) = q1.item.documents
        assert (d1.doc_id, d1.suggested_grade, d1.suggested_by) == (
            "d1",
            0,
            q1.item.provenance["assessors"],
        )
        assert q1.item.provenance["human:d1"] == "3"
        assert d1.text == TEXTS["d1"]
        assert q1.item.priority == pytest.approx(0.7)
        assert "graded d1 0, the goldset 3" in q1.item.reason
        every = queue_disagreements(store, "bridges", DisagreementRequest())
        assert (every.counts.added, every.counts.updated) == (1, 1)
        queue = review_queue(store, goldset="bridges")
        assert [q.item.query.id for q in queue] == ["q1", "q2"]
        assert queue[1].item.priority == pytest.approx(0.7 / 3, abs=1e-6)
        none = queue_disagreements(
            store, "bridges", DisagreementRequest(assessors=("someone-else@v0",))
        )
        assert none.item_ids == ()


def test_a_disagreement_reviewed_and_published_replaces_the_judgment(judged: Path) -> None:
    with Store.open(judged) as store:
        before = load_stored_goldset(store, "bridges")
        queue_disagreements(store, "bridges", DisagreementRequest())
        ids = items_by_query(store, "bridges")
        review(store, ids["q1"], "ann", {"d1": 1})
        review(store, ids["q1"], "bob", {"d1": 2})
        review(store, ids["q2"], "ann", {}, reject=True)
        outcome = publish_goldset(store, "bridges", PublishRequest(min_reviews=2))
        after = load_stored_goldset(store, "bridges")
        statuses = {q.item.query.id: q.status for q in list_items(store, goldset="bridges")}
    assert outcome.publication is not None
    assert outcome.publication.previous_version == before.version
    assert after.version == outcome.publication.goldset_version != before.version
    assert {(j.query_id, j.doc_id): j.relevance for j in after.judgments} == {
        ("q1", "d1"): 1, ("q1", "d2"): 0, ("q2", "d3"): 2,
    }  # fmt: skip
    assert (outcome.publication.n_judgments_changed, outcome.publication.n_judgments_added) == (
        1,
        0,
    )
    assert statuses == {"q1": "published", "q2": "rejected"}


# -- publishing ---------------------------------------------------------------------------


def seed_reviewed_queue(store: Store, draft: Path) -> dict[str, str]:
    """The Tay goldset's first version (q1, and g1 asked already with another grade) and the
    generated draft queued and reviewed: g2 accepted by two with its question edited, g3
    accepted by one, g1 re-graded by two; plus a rejected item."""
    save_goldset(
        store,
        Goldset.build(
            "tay",
            [
                Query("q1", "Where is the Tay Bridge?"),
                Query("g1", "When was the Tay Bridge finished?"),
            ],
            [Judgment("q1", "tay-0", 1), Judgment("g1", "tay-0", 1), Judgment("g1", "tay-9", 2)],
        ),
    )
    ingest_draft(store, draft, goldset="tay")
    ids = items_by_query(store, "tay")
    review(store, ids["g2"], "ann", {"tay-1": 3}, question="What brought the Tay Bridge down?")
    review(store, ids["g2"], "bob", {"tay-1": 2})
    review(store, ids["g3"], "ann", {"tay-0": 2, "tay-1": 1})
    review(store, ids["g1"], "ann", {"tay-0": 3})
    review(store, ids["g1"], "bob", {"tay-0": 2})
    return ids


def test_publish_makes_a_new_version_merged_with_the_current_one(tmp_path: Path) -> None:
    draft = write_generated_draft(tmp_path / "draft")
    with Store.open(tmp_path / "evalkit.duckdb") as store:
        ids = seed_reviewed_queue(store, draft)
        first = load_stored_goldset(store, "tay")
        outcome = publish_goldset(store, "tay", PublishRequest(min_reviews=2))
        published = load_stored_goldset(store, "tay")
        still_first = load_stored_goldset(store, "tay", first.version)
        publications = list_publications(store, "tay")
        statuses = {q.item.query.id: q.status for q in list_items(store, goldset="tay")}
        in_version = published_item_ids(store, published.version)
        # g3 waited for a second reviewer; with one needed it goes into the next version.
        later = publish_goldset(store, "tay", PublishRequest(min_reviews=1))
        latest = load_stored_goldset(store, "tay")
    assert outcome.waiting == (ids["g3"],)
    publication = outcome.publication
    assert publication is not None
    assert outcome.created
    expected = Goldset.build(
        "tay",
        [
            Query("q1", "Where is the Tay Bridge?"),
            Query("g1", "When was the Tay Bridge finished?"),
            Query(
                "g2",
                "What brought the Tay Bridge down?",
                tags=("generated", "generator:qgen-1", "prompt:p3", "kind:paraphrase"),
            ),
        ],
        [
            Judgment("q1", "tay-0", 1),
            Judgment("g1", "tay-0", 2, Span("tay", 0, 36, None)),
            Judgment("g1", "tay-9", 2),
            Judgment("g2", "tay-1", 2, Span("tay", None, None, "It fell in a storm in 1879.")),
        ],
    )
    assert published.version == expected.version == publication.goldset_version
    assert set(published.judgments) == set(expected.judgments)
    assert [q.id for q in published.queries] == ["q1", "g1", "g2"]
    assert still_first.judgments == first.judgments
    assert (publication.previous_version, publication.n_items) == (first.version, 2)
    assert (publication.n_queries_added, publication.n_queries_edited) == (1, 0)
    assert (publication.n_judgments_added, publication.n_judgments_changed) == (1, 1)
    assert [p.goldset_version for p in publications] == [published.version]
    assert in_version == sorted([ids["g1"], ids["g2"]])
    assert statuses == {"g1": "published", "g2": "published", "g3": "accepted"}
    assert later.publication is not None
    assert later.publication.previous_version == published.version
    g3 = {(j.query_id, j.doc_id): j.relevance for j in latest.judgments if j.query_id == "g3"}
    assert g3 == {("g3", "tay-0"): 2, ("g3", "tay-1"): 1}
    with Store.open(tmp_path / "evalkit.duckdb") as store:
        nothing = publish_goldset(store, "tay")
    assert nothing.publication is None


def hand_draft(folder: Path, queries: list[tuple[str, str, str | None, list[str]]]) -> Path:
    """A promoted traffic draft written by hand: (id, text, tenant, documents to grade)."""
    folder.mkdir(parents=True)
    write_lines(
        folder / "queries.jsonl",
        [
            {"id": query_id, "text": text, "tenant": tenant, "tags": ["traffic"]}
            for query_id, text, tenant, _ in queries
        ],
    )
    write_lines(
        folder / "judgments.jsonl",
        [
            {"query_id": query_id, "doc_id": doc_id, "relevance": None}
            for query_id, _, _, documents in queries
            for doc_id in documents
        ],
    )
    return folder


def refused_publish(store: Store, goldset: str, min_reviews: int = 1) -> str:
    """The message of a publish of ``goldset`` that is refused, having stored nothing."""
    versions = [info.version for info in list_goldsets(store, goldset)]
    with pytest.raises(GoldsetError) as refused:
        publish_goldset(store, goldset, PublishRequest(min_reviews=min_reviews))
    assert [info.version for info in list_goldsets(store, goldset)] == versions
    return str(refused.value)


def test_a_promoted_query_the_goldset_asks_already_is_merged_not_added(tmp_path: Path) -> None:
    """Production asked "unsure" again, and tenant a's goldset asks "Unsure": published, the
    promoted query was a second copy of the question, counted twice in every mean with its
    judgments split between the two. Its grades go into the goldset's query instead."""
    draft = tmp_path / "draft"
    with Store.open(tmp_path / "evalkit.duckdb") as store:
        save_goldset(
            store,
            Goldset.build(
                "support",
                # Tenant b asks "sure thing": tenant a's is another question (other documents).
                [Query("s1", "Unsure", tenant="a"), Query("s2", "sure thing", tenant="b")],
                [Judgment("s1", "d5", 0), Judgment("s1", "d9", 2), Judgment("s2", "b1", 1)],
            ),
        )
        promote_records(store, tmp_path / "traffic.jsonl", draft, n=5)
        queued = ingest_draft(store, draft, goldset="support")
        ids = items_by_query(store, "support")
        review(store, ids["q3"], "ann", {"d5": 2, "d6": 1})
        review(store, ids["q1"], "ann", {"d1": 3})
        outcome = publish_goldset(store, "support")
        published = load_stored_goldset(store, "support")
        # Queued again, q3's item is published (merged) already: nothing to warn of.
        again = ingest_draft(store, draft, goldset="support")
    assert again.already_asked == ()
    assert [(q.id, q.text, q.tenant) for q in published.queries] == [
        ("s1", "Unsure", "a"),
        ("s2", "sure thing", "b"),
        ("q1", "sure thing", "a"),
    ]
    assert {(j.query_id, j.doc_id): j.relevance for j in published.judgments} == {
        ("s1", "d5"): 2,  # the reviewed grade replaces the goldset's, and says so below
        ("s1", "d6"): 1,
        ("s1", "d9"): 2,
        ("s2", "b1"): 1,
        ("q1", "d1"): 3,
    }
    assert queued.already_asked == (("q3", "s1"),)
    publication = outcome.publication
    assert publication is not None
    assert (publication.n_items, publication.n_queries_added) == (2, 1)
    assert (publication.n_judgments_added, publication.n_judgments_changed) == (2, 1)
    assert outcome.to_dict()["merged"] == [
        {
            "item_id": ids["q3"],
            "query_id": "q3",
            "into": "s1",
            "replaced": [{"doc_id": "d5", "before": 0, "after": 2}],
        }
    ]
    assert outcome.merged_summary() == (
        "1 reviewed query already in the goldset (same tenant, same text up to case and "
        "spacing), merged instead of added: q3 into s1; reviewed grades replaced the "
        "goldset's: s1 d5 0 -> 2"
    )


def test_items_asking_one_new_question_publish_one_query_or_name_their_conflict(
    tmp_path: Path,
) -> None:
    """Two windows promoted "Where is the Tay bridge?" with other spacing and case: two items,
    which published as two queries. They make one query now, with the grades of both; grades
    that disagree refuse the publish, naming both items and the document."""
    first = hand_draft(tmp_path / "nov21", [("w1", "Where is the Tay bridge?", None, ["tay-0"])])
    second = hand_draft(
        tmp_path / "nov22", [("w2", "where is the  TAY bridge? ", None, ["tay-0", "tay-1"])]
    )
    with Store.open(tmp_path / "evalkit.duckdb") as store:
        save_goldset(
            store,
            Goldset.build("tay", [Query("q1", "When did it fall?")], [Judgment("q1", "tay-1", 2)]),
        )
        ingest_draft(store, first, goldset="tay")
        ingest_draft(store, second, goldset="tay")
        ids = items_by_query(store, "tay")
        review(store, ids["w1"], "ann", {"tay-0": 3})
        review(store, ids["w2"], "bob", {"tay-0": 1, "tay-1": 0})
        refused = refused_publish(store, "tay")
        review(store, ids["w2"], "bob", {"tay-0": 3, "tay-1": 0})
        outcome = publish_goldset(store, "tay")
        published = load_stored_goldset(store, "tay")
    assert refused == (
        "cannot publish, 1 conflict(s):\n"
        f"  field 'grade': items {ids['w1']} (query 'w1') and {ids['w2']} (query 'w2') both "
        "publish into query 'w1' and grade document 'tay-0' 3 and 1; review one of them again "
        "with the other's grade, or reject one"
    )
    assert [(q.id, q.text) for q in published.queries] == [
        ("q1", "When did it fall?"),
        ("w1", "Where is the Tay bridge?"),
    ]
    assert {(j.query_id, j.doc_id): j.relevance for j in published.judgments} == {
        ("q1", "tay-1"): 2,
        ("w1", "tay-0"): 3,
        ("w1", "tay-1"): 0,
    }
    assert outcome.to_dict()["merged"] == [
        {"item_id": ids["w2"], "query_id": "w2", "into": "w1", "replaced": []}
    ]


def test_an_item_asking_what_several_goldset_queries_ask_is_refused(tmp_path: Path) -> None:
    """A goldset imported with a question asked twice (SciFact has four): which of the two a
    promoted copy's grades belong to is no guess to make."""
    draft = hand_draft(tmp_path / "draft", [("t1", "what is known about subject 1", None, ["C"])])
    with Store.open(tmp_path / "evalkit.duckdb") as store:
        save_goldset(
            store,
            Goldset.build(
                "twice",
                [
                    Query("a", "What is known about subject 1"),
                    Query("b", "What is known about subject 1"),
                ],
                [Judgment("a", "A", 1), Judgment("b", "B", 1)],
            ),
        )
        ingest_draft(store, draft, goldset="twice")
        item = items_by_query(store, "twice")["t1"]
        review(store, item, "ann", {"C": 2})
        refused = refused_publish(store, "twice")
    assert refused == (
        "cannot publish, 1 conflict(s):\n"
        f"  field 'query_id': item {item} (query 't1': 'what is known about subject 1') asks what "
        "queries 'a', 'b' of the goldset ask already; reject it (`evalkit review grade ITEM "
        "--reject`) and grade those queries' documents in an imported version"
    )


def test_a_goldset_query_reworded_into_another_querys_question_is_refused(
    tmp_path: Path,
) -> None:
    """A reviewer rewords g1 into what q1 asks: two copies of one question, which publish
    (adding and editing queries, never removing one) cannot merge."""
    draft = write_generated_draft(tmp_path / "draft")
    with Store.open(tmp_path / "evalkit.duckdb") as store:
        ids = seed_reviewed_queue(store, draft)
        review(store, ids["g1"], "bob", {"tay-0": 2}, question="where is the Tay bridge?")
        refused = refused_publish(store, "tay", min_reviews=2)
    assert refused == (
        "cannot publish, 1 conflict(s):\n"
        f"  field 'question': item {ids['g1']} rewords query 'g1' as 'where is the Tay "
        "bridge?', which query 'q1' asks already; review it again with another question, or "
        "reject it"
    )
    # Reworded into a question of its own, g1 takes the grades of a promoted copy of it.
    copy = hand_draft(
        tmp_path / "copy", [("t9", "WHAT made the Tay bridge fall?", None, ["tay-2"])]
    )
    with Store.open(tmp_path / "evalkit.duckdb") as store:
        ingest_draft(store, copy, goldset="tay")
        t9 = items_by_query(store, "tay")["t9"]
        review(store, t9, "ann", {"tay-2": 1})
        review(store, t9, "bob", {"tay-2": 1})
        review(store, ids["g1"], "bob", {"tay-0": 2}, question="What made the Tay bridge fall?")
        outcome = publish_goldset(store, "tay", PublishRequest(min_reviews=2))
        published = load_stored_goldset(store, "tay")
    assert [(q.id, q.text) for q in published.queries] == [
        ("q1", "Where is the Tay Bridge?"),
        ("g1", "What made the Tay bridge fall?"),
        ("g2", "What brought the Tay Bridge down?"),
    ]
    assert {
        (j.query_id, j.doc_id): j.relevance for j in published.judgments if j.query_id == "g1"
    } == {
        ("g1", "tay-0"): 2,
        ("g1", "tay-9"): 2,
        ("g1", "tay-2"): 1,
    }
    assert [(m.query_id, m.into) for m in outcome.merged] == [("t9", "g1")]


def test_review_add_and_publish_say_which_queries_the_goldset_asks_already(
    evalkit_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    draft = hand_draft(
        tmp_path / "draft",
        [("t1", "how do i reset my password", "acme", ["kb-1"]), ("t2", "new", "acme", ["kb-2"])],
    )
    with Store.open(evalkit_home / "evalkit.duckdb") as store:
        save_goldset(
            store,
            Goldset.build(
                "support",
                [Query("p1", "How do I reset my password", tenant="acme")],
                [Judgment("p1", "kb-1", 1)],
            ),
        )
    assert invoke(["review", "add", str(draft), "--goldset", "support"]) == 0
    assert " ".join(capsys.readouterr().err.split()) == (
        "1 draft query already in goldset support (same tenant, same text up to case and "
        "spacing): t1 (p1); once accepted, `evalkit goldset publish` merges their grades "
        "into those queries instead of adding them again"
    )
    with Store.open(evalkit_home / "evalkit.duckdb") as store:
        ids = items_by_query(store, "support")
        review(store, ids["t1"], "ann", {"kb-1": 3})
        review(store, ids["t2"], "ann", {"kb-2": 2})
    assert invoke(["goldset", "publish", "support"]) == 0
    said = " ".join(capsys.readouterr().out.split())
    assert said.endswith(
        "from 2 reviewed items: 1 queries added, 0 edited, 1 judgments added, 1 changed "
        "1 reviewed query already in the goldset (same tenant, same text up to case and "
        "spacing), merged instead of added: t1 into p1; reviewed grades replaced the "
        "goldset's: p1 kb-1 1 -> 3"
    )


PUBLISH_KILLED = textwrap.dedent(
    """
    import sys
    import time
    from evalkit.cli import main
    from evalkit.store.store import Store

    table = sys.argv[1]
    insert = Store.insert_frame

    def insert_then_stall(self, name, frame):
        insert(self, name, frame)
        if name == table:
            print("inside the publish transaction", flush=True)
            time.sleep(120)

    Store.insert_frame = insert_then_stall
    main(["goldset", "publish", "tay", "--min-reviews", "2"])
    """
)


@pytest.mark.parametrize(
    "stalled_after", ["goldset_queries", "judgments", "review_published_items"]
)
def test_a_publish_killed_mid_write_leaves_the_previous_version_current(
    tmp_path: Path, stalled_after: str
) -> None:
    home = tmp_path / "home"
    path = home / "evalkit.duckdb"
    draft = write_generated_draft(tmp_path / "draft")
    with Store.open(path) as store:
        seed_reviewed_queue(store, draft)
        first = load_stored_goldset(store, "tay")
    process = subprocess.Popen(
        [sys.executable, "-c", PUBLISH_KILLED, stalled_after],
        env=fresh_env(home),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line.strip() == "inside the publish transaction", process.communicate(timeout=30)
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL

    with Store.open(path) as store:
        assert [info.version for info in list_goldsets(store, "tay")] == [first.version]
        assert load_stored_goldset(store, "tay").judgments == first.judgments
        assert list_publications(store) == []
        assert store.fetch("SELECT count(*) FROM review_published_items") == [(0,)]
        assert store.fetch(
            "SELECT count(*) FROM goldset_queries WHERE goldset_version <> ?", [first.version]
        ) == [(0,)]
        assert {q.status for q in list_items(store, goldset="tay")} == {"accepted"}
        # Publishing again, uninterrupted, makes the version the killed publish did not.
        outcome = publish_goldset(store, "tay", PublishRequest(min_reviews=2))
        assert outcome.publication is not None
        assert load_stored_goldset(store, "tay").version == outcome.publication.goldset_version


def test_a_read_only_store_refuses_every_review_write(tmp_path: Path) -> None:
    path = tmp_path / "evalkit.duckdb"
    draft = write_generated_draft(tmp_path / "draft")
    with Store.open(path) as store:
        ingest_draft(store, draft, goldset="tay")
        item = items_by_query(store, "tay")["g1"]
        review(store, item, "ann", {"tay-0": 3})
    reading = StoreAccess(path, wait=5, program="dashboard --read-only").for_reading()
    with pytest.raises(StoreError, match="read-only"):
        review(reading, item, "bob", {"tay-0": 1})
    with pytest.raises(StoreError, match="read-only"):
        ingest_draft(reading, draft, goldset="tay")
    with pytest.raises(StoreError, match="read-only"):
        publish_goldset(reading, "tay")
    assert review_item(reading, item[:6]).queued.reviewers == ("ann",)
    with Store.open(path, read_only=True) as store:
        assert len(item_reviews(store, item_ids=[item])[item]) == 1
        assert list_goldsets(store, "tay") == []


# -- the CLI ------------------------------------------------------------------------------


@pytest.mark.slow
def test_the_review_commands_queue_grade_show_and_publish(
    evalkit_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    draft = write_generated_draft(tmp_path / "draft")

    def run_json(*args: str) -> Any:
        capsys.readouterr()
        assert invoke([*args, "-o", "json"]) == 0, capsys.readouterr().err
        return json.loads(capsys.readouterr().out)

    assert run_json("review", "add", str(draft), "--goldset", "tay")["added"] == 3
    listed = run_json("review", "list", "--goldset", "tay")
    assert [item["query"]["id"] for item in listed] == ["g2", "g3", "g1"]
    g2 = listed[0]["item_id"]
    saved = run_json("review", "grade", g2[:8], "--reviewer", "ann", "--grade", "tay-1=3")
    assert (saved["item_id"], saved["verdict"], saved["grades"]) == (g2, "accept", {"tay-1": 3})
    run_json(
        "review",
        "grade",
        g2,
        "--reviewer",
        "bob",
        "--grade",
        "tay-1=2",
        "--question",
        "Why did it fall?",
    )
    shown = run_json("review", "show", g2)
    assert [r["reviewer"] for r in shown["reviews"]] == ["ann", "bob"]
    assert shown["status"] == "accepted"
    assert shown["documents"][0]["span"]["text"] == "It fell in a storm in 1879."
    agreement = run_json("review", "agreement", "--goldset", "tay")
    assert agreement[0]["reviewers"] == ["ann", "bob"]
    published = run_json("goldset", "publish", "tay", "--min-reviews", "2")
    assert published["published"]
    assert published["publication"]["queries_added"] == 1
    capsys.readouterr()
    assert invoke(["review", "grade", g2, "--reviewer", "cy", "--grade", "tay-1=5"]) == 2
    assert "not one of 0, 1, 2, 3" in capsys.readouterr().err
    assert invoke(["review", "grade", g2, "--reviewer", "cy", "--grade", "tay-1"]) == 2
    assert invoke(["review", "show", "ffffffff"]) == 2
    assert invoke(["goldset", "publish", "no-such-goldset"]) == 2
    with Store.open(evalkit_home / "evalkit.duckdb", read_only=True) as store:
        assert load_stored_goldset(store, "tay").queries[0].text == "Why did it fall?"
