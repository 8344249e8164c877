"""Promoting replayed traffic to a goldset draft, and importing the judged draft."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from evalkit.cli import invoke
from evalkit.embedding import ModelFingerprint
from evalkit.errors import ConfigError, InputError, NotFoundError
from evalkit.pipeline import TrafficReplayRequest, replay_traffic_window
from evalkit.records import Query, QueryResult, ScoredDoc
from evalkit.store import Store
from evalkit.store.goldsets import load_stored_goldset
from evalkit.traffic import (
    SampleSpec,
    choose_promotions,
    ingest_paths,
    parse_window,
    promote_window,
    promotion_priority,
    sample_window,
)


def test_priority_by_hand() -> None:
    # Low top-1 ranks: 0.9 -> 0, 0.3 -> 1, 0.5 -> 0.5. Low RBO ranks (two compared):
    # 0.2 -> 1, 1.0 -> 0. The first query has no RBO, so only its confidence counts.
    priority = promotion_priority(np.array([0.9, 0.3, 0.5]), np.array([np.nan, 0.2, 1.0]))
    np.testing.assert_allclose(priority, [0.0, 1.0, 0.25])


def test_priority_without_any_signal_is_zero() -> None:
    priority = promotion_priority(np.array([np.nan, np.nan]), np.array([np.nan, np.nan]))
    np.testing.assert_array_equal(priority, [0.0, 0.0])


def test_choice_is_stratified_then_by_priority() -> None:
    priority = np.array([0.9, 0.8, 0.1, 0.7, 0.2])
    strata = ["a", "a", "a", "b", "b"]
    # Quotas for sizes 3 and 2, n=3, at least 1 each: 1.8 / 1.2 -> 2 and 1.
    assert choose_promotions(priority, strata, 3, minimum=1).tolist() == [0, 1, 3]
    # With a floor of 2 the small tenant keeps two, whatever its priorities.
    assert choose_promotions(priority, strata, 3, minimum=2).tolist() == [0, 1, 3, 4]
    assert choose_promotions(priority, [None] * 5, 2).tolist() == [0, 1]


def test_ties_are_broken_by_the_seed() -> None:
    priority = np.zeros(30)
    strata: list[str | None] = [None] * 30
    first = choose_promotions(priority, strata, 5, seed=1).tolist()
    assert first == choose_promotions(priority, strata, 5, seed=1).tolist()
    assert first != choose_promotions(priority, strata, 5, seed=2).tolist()


class TableRetriever:
    """Answers each query text from a table; filters by tenant (claims a where_key)."""

    def __init__(self, answers: dict[str, list[tuple[str, float]]]) -> None:
        self.answers = answers

    def retrieve(self, queries: Sequence[Query], k: int) -> list[QueryResult]:
        return [
            QueryResult(
                query.id,
                tuple(
                    ScoredDoc(doc, score, rank)
                    for rank, (doc, score) in enumerate(self.answers[query.text][:k], start=1)
                ),
                2.0,
                error="boom" if query.text == "broken" else None,
            )
            for query in queries
        ]

    def describe(self) -> dict[str, Any]:
        return {"kind": "table", "where_key": "tenant"}

    def index_fingerprint(self) -> str | None:
        return None

    def model_fingerprint(self) -> ModelFingerprint | None:
        return None


RECORDS = [
    # tenant a: four queries of falling confidence; "sure" matches its logged results.
    ("q1", "sure thing", "a", ["d1", "d2"]),
    ("q2", "fairly sure", "a", None),
    ("q3", "unsure", "a", ["x1", "x2"]),
    ("q4", "lost", "a", None),
    # tenant b: one confident query; it must still get its minimum of one.
    ("q5", "b question", "b", ["b1"]),
    ("q6", "broken", "b", None),
    ("q7", "nothing found", "b", None),
]
ANSWERS = {
    "sure thing": [("d1", 0.95), ("d2", 0.9)],
    "fairly sure": [("d3", 0.7), ("d4", 0.6)],
    "unsure": [("d5", 0.35), ("d6", 0.3)],
    "lost": [("d7", 0.1)],
    "b question": [("b1", 0.9), ("b2", 0.5)],
    "broken": [],
    "nothing found": [],
}


@pytest.fixture
def replayed(evalkit_home: Path) -> Path:
    """A store under EVALKIT_HOME holding one replayed window, 2026-11-21."""
    log = evalkit_home.parent / "traffic.jsonl"
    log.write_text(
        "".join(
            json.dumps(
                {
                    "query_id": query_id,
                    "timestamp": "2026-11-21T08:00:00Z",
                    "text": text,
                    "tenant": tenant,
                    "results": logged,
                }
            )
            + "\n"
            for query_id, text, tenant, logged in RECORDS
        )
    )
    with Store.open(evalkit_home / "evalkit.duckdb") as opened:
        ingest_paths(opened, [log])
        sample = sample_window(opened, SampleSpec(window=parse_window("2026-11-21"), n=10, seed=0))
        replay_traffic_window(
            opened,
            sample.sample_id,
            TableRetriever(ANSWERS),
            TrafficReplayRequest(k=2, answers=False),
        )
    return evalkit_home / "evalkit.duckdb"


def read_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(text) for text in path.read_text().splitlines()]


def test_promote_writes_a_draft_that_imports_once_judged(
    replayed: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    draft = tmp_path / "draft"
    with Store.open(replayed) as store:
        written = promote_window(store, "2026-11-21", draft, n=3, top=2, min_per_stratum=1)
    # Failed (q6) and empty (q7) answers are never candidates: 5 remain. "lost" has one
    # result to judge, the others two.
    assert (written.n_available, written.n_promoted, written.n_judgments) == (5, 3, 5)
    queries = read_lines(draft / "queries.jsonl")
    # Tenant a gets 2 of 3 (4:1 sizes, floor 1). Priorities: "lost" (lowest top-1 of five,
    # nothing logged) 1.0; "unsure" (second lowest top-1, 0.75, and the lowest RBO, 1.0)
    # 0.875; tenant b's only candidate (top-1 rank 0.25, RBO rank 0.5) 0.375.
    assert [q["id"] for q in queries] == ["q4", "q3", "q5"]
    assert queries[1] == {
        "id": "q3",
        "text": "unsure",
        "tenant": "a",
        "tags": ["traffic", "window:2026-11-21"],
    }
    judgments = read_lines(draft / "judgments.jsonl")
    assert judgments[:3] == [
        {"query_id": "q4", "doc_id": "d7", "relevance": None},
        {"query_id": "q3", "doc_id": "d5", "relevance": None},
        {"query_id": "q3", "doc_id": "d6", "relevance": None},
    ]
    reasons = {c["query_id"]: c["reasons"] for c in read_lines(draft / "candidates.jsonl")}
    assert reasons == {"q3": ["low_confidence", "high_churn"], "q4": ["low_confidence"], "q5": []}
    assert "evalkit goldset import" in (draft / "README.md").read_text()

    capsys.readouterr()
    assert invoke(["goldset", "import", str(draft), "--name", "traffic-nov"]) == 2
    error = capsys.readouterr().err
    assert "judgments.jsonl:1 field 'relevance': is null; every judgment needs it" in error

    graded = [{**j, "relevance": 1 if j["doc_id"] in {"d5", "b1"} else 0} for j in judgments]
    (draft / "judgments.jsonl").write_text("".join(json.dumps(j) + "\n" for j in graded))
    assert invoke(["goldset", "import", str(draft), "--name", "traffic-nov"]) == 0
    with Store.open(replayed) as store:
        goldset = load_stored_goldset(store, "traffic-nov")
    assert [q.id for q in goldset.queries] == ["q4", "q3", "q5"]
    assert goldset.queries[2].tenant == "b"
    assert len(goldset.judgments) == 5


def test_promote_refuses_to_overwrite_and_unknown_windows(replayed: Path, tmp_path: Path) -> None:
    draft = tmp_path / "draft"
    with Store.open(replayed) as store:
        promote_window(store, "2026-11-21", draft, n=2)
        with pytest.raises(InputError, match="already holds a goldset draft"):
            promote_window(store, "2026-11-21", draft, n=2)
        again = promote_window(store, "2026-11-21", draft, n=1, overwrite=True)
        assert again.n_promoted == 2  # one plus tenant b's guaranteed one
        with pytest.raises(NotFoundError, match="never replayed"):
            promote_window(store, "2026-11-20", tmp_path / "other", n=2)
        with pytest.raises(NotFoundError, match="run nope is no replay of traffic window"):
            promote_window(store, "2026-11-21", tmp_path / "other", n=2, run_id="nope")
        with pytest.raises(ConfigError, match="at least 1"):
            promote_window(store, "2026-11-21", tmp_path / "other", n=0)


def test_promote_keeps_a_folder_readme_and_refuses_a_file_as_its_folder(
    replayed: Path, tmp_path: Path
) -> None:
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "README.md").write_text("my notes\n", encoding="utf-8")
    a_file = tmp_path / "a-file"
    a_file.write_text("x", encoding="utf-8")
    with Store.open(replayed) as store:
        with pytest.raises(InputError, match="already holds a goldset draft") as raised:
            promote_window(store, "2026-11-21", notes, n=2)
        assert raised.value.path == str(notes / "README.md")
        with pytest.raises(InputError, match="is a file; give the folder"):
            promote_window(store, "2026-11-21", a_file, n=2)
    assert (notes / "README.md").read_text(encoding="utf-8") == "my notes\n"
    assert sorted(path.name for path in notes.iterdir()) == ["README.md"]
    assert a_file.read_text(encoding="utf-8") == "x"
