"""Stored answer scores and the judge cache: round trips, SQL summaries, unmeasured rows."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import duckdb
import pytest

from evalkit.answers.cache import MemoryJudgeCache, judge_cache_key
from evalkit.answers.records import AnswerScores, MetricScore, summarise
from evalkit.errors import NotFoundError
from evalkit.store import Store
from evalkit.store.answers import (
    CachedJudgment,
    StoreJudgeCache,
    answer_score_rows,
    answer_scores_frame,
    answer_summaries,
    answer_summary_frame,
    get_scoring,
    list_scorings,
    save_answer_scores,
    unmeasured_frame,
)


def open_store(path: Path) -> Store:
    """A fresh store whose migrations have created the answer tables."""
    return Store.open(path)


def scores_of(rows: list[MetricScore], *, run_id: str | None = None) -> AnswerScores:
    return AnswerScores(
        scores=tuple(rows),
        summaries=summarise(rows),
        n_records=len({row.item_id for row in rows}),
        started_at=datetime(2026, 11, 21, 18, 35),
        finished_at=datetime(2026, 11, 21, 18, 36),
        run_id=run_id,
        source=None if run_id else "answers.jsonl",
        judge_calls=7,
        cache_hits=2,
    )


ROWS = [
    MetricScore(
        "q1", "faithfulness", "offline-embedding", 0.9, "m", "v1", n_claims=2, n_supported=2
    ),
    MetricScore(
        "q2", "faithfulness", "offline-embedding", 0.3, "m", "v1", n_claims=3, n_supported=1
    ),
    MetricScore(
        "q3", "faithfulness", "offline-embedding", None, "m", "v1", unmeasured_reason="no_claims"
    ),
    MetricScore(
        "q4",
        "faithfulness",
        "offline-embedding",
        None,
        "m",
        "v1",
        unmeasured_reason="empty_contexts",
    ),
    MetricScore("q1", "faithfulness", "ragas-llm", 1.0, "judge", "p1", n_repeats=3, spread=0.25),
    MetricScore(
        "q2",
        "faithfulness",
        "ragas-llm",
        None,
        "judge",
        "p1",
        unmeasured_reason="judge_timeout",
        detail="no reply in time (3 attempts)",
    ),
]


def test_summarise_by_hand() -> None:
    offline, llm = summarise(ROWS)
    assert (offline.metric, offline.method) == ("faithfulness", "offline-embedding")
    assert offline.mean == pytest.approx(0.6)
    assert (offline.n_measured, offline.n_unmeasured, offline.n_total) == (2, 2, 4)
    assert offline.unmeasured_by_reason == {"empty_contexts": 1, "no_claims": 1}
    assert (offline.judge_model, offline.prompt_version) == ("m", "v1")
    assert llm.mean == 1.0
    assert llm.unmeasured_by_reason == {"judge_timeout": 1}
    assert summarise([]) == ()


def test_metric_score_refuses_nan_and_reasonless_gaps() -> None:
    with pytest.raises(ValueError, match="unmeasured"):
        MetricScore("q", "faithfulness", "ragas-llm", float("nan"))
    with pytest.raises(ValueError, match="without a reason"):
        MetricScore("q", "faithfulness", "ragas-llm", None)


def test_scores_round_trip_and_summary_in_sql(tmp_path: Path) -> None:
    store = open_store(tmp_path / "evalkit.duckdb")
    scoring_id = save_answer_scores(store, scores_of(ROWS), settings={"method": "both"})
    assert scoring_id.startswith("ans-20261121T183500-")
    frame = answer_scores_frame(store, scoring_id)
    assert len(frame) == len(ROWS)
    timed_out = frame[(frame["item_id"] == "q2") & (frame["method"] == "ragas-llm")].iloc[0]
    assert timed_out["unmeasured_reason"] == "judge_timeout"
    assert timed_out["detail"] == "no reply in time (3 attempts)"
    summary = answer_summary_frame(store, scoring_id).set_index("method")
    assert summary.loc["offline-embedding", "mean"] == pytest.approx(0.6)
    assert summary.loc["offline-embedding", "n_measured"] == 2
    assert summary.loc["offline-embedding", "n_unmeasured"] == 2
    assert summary.loc["ragas-llm", "mean"] == pytest.approx(1.0)
    assert summary.loc["ragas-llm", "max_spread"] == pytest.approx(0.25)
    reasons = unmeasured_frame(store, scoring_id)
    assert reasons[["method", "unmeasured_reason", "n"]].values.tolist() == [
        ["offline-embedding", "empty_contexts", 1],
        ["offline-embedding", "no_claims", 1],
        ["ragas-llm", "judge_timeout", 1],
    ]
    # The SQL summaries agree with the in-memory ones, field for field.
    in_memory = [summary.to_dict() for summary in summarise(ROWS)]
    from_sql = answer_summaries(store, scoring_id)
    assert from_sql == sorted(in_memory, key=lambda s: (s["metric"], s["method"]))
    rows = answer_score_rows(store, scoring_id)
    assert sorted(rows, key=lambda r: (r["item_id"], r["method"])) == sorted(
        (row.to_dict() for row in ROWS), key=lambda r: (r["item_id"], r["method"])
    )
    scoring = get_scoring(store, scoring_id[:-2])
    assert (scoring.scoring_id, scoring.source, scoring.judge_calls) == (
        scoring_id,
        "answers.jsonl",
        7,
    )
    assert scoring.settings == {"method": "both"}
    store.close()


def test_all_unmeasured_gives_a_null_mean_not_nan(tmp_path: Path) -> None:
    store = open_store(tmp_path / "evalkit.duckdb")
    rows = [ROWS[2], ROWS[3]]
    scoring_id = save_answer_scores(store, scores_of(rows))
    [[mean, measured]] = store.fetch(
        "SELECT avg(value), count(value) FROM answer_scores WHERE scoring_id = ?", [scoring_id]
    )
    assert (mean, measured) == (None, 0)
    store.close()


def test_the_table_refuses_a_value_with_a_reason(tmp_path: Path) -> None:
    store = open_store(tmp_path / "evalkit.duckdb")
    with pytest.raises(duckdb.ConstraintException), store.transaction() as con:
        con.execute(
            "INSERT INTO answer_scores (scoring_id, item_id, metric, method, value,"
            " unmeasured_reason, n_repeats) VALUES ('s', 'q', 'faithfulness', 'x', 0.5,"
            " 'no_claims', 1)"
        )
    store.close()


def test_offline_v2_and_v3_scorings_are_never_one_series(tmp_path: Path) -> None:
    """The dashboard draws one line per method version: offline-v2 reads lower than
    offline-v3 on the same answers, so one line through both would show a jump that is
    only the version changing. A threshold is no version (it changes no value)."""
    from evalkit.dashboard.charts import answers_chart
    from evalkit.store.dashboard.answers import answer_series_frame

    def offline(value: float, version: str) -> MetricScore:
        return MetricScore("q1", "faithfulness", "offline-embedding", value, "m", version)

    store = open_store(tmp_path / "evalkit.duckdb")
    save_answer_scores(store, scores_of([offline(0.6, "offline-v2/threshold=0.5")]))
    save_answer_scores(store, scores_of([offline(0.6, "offline-v2/threshold=0.7")]))
    save_answer_scores(store, scores_of([offline(0.8, "offline-v3/threshold=0.5")]))
    series = answer_series_frame(store)
    store.close()
    assert sorted(series["method_version"]) == ["offline-v2", "offline-v2", "offline-v3"]
    lines = {
        trace.name: list(trace.y) for trace in answers_chart(series, metric="faithfulness").data
    }
    assert lines == {
        "offline-embedding offline-v2 / m": [0.6, 0.6],
        "offline-embedding offline-v3 / m": [0.8],
    }


def test_list_and_find_scorings(tmp_path: Path) -> None:
    store = open_store(tmp_path / "evalkit.duckdb")
    first = save_answer_scores(store, scores_of(ROWS[:1], run_id="run-a"))
    second = save_answer_scores(store, scores_of(ROWS[1:2]))
    assert {s.scoring_id for s in list_scorings(store)} == {first, second}
    assert [s.scoring_id for s in list_scorings(store, run_id="run-a")] == [first]
    with pytest.raises(NotFoundError, match="evalkit answers list"):
        get_scoring(store, "ans-nothing")
    with pytest.raises(NotFoundError, match="ambiguous"):
        get_scoring(store, "ans-")
    store.close()


def test_cache_key_covers_every_input() -> None:
    base = {
        "metric": "faithfulness",
        "judge_model": "m",
        "prompt_version": "p",
        "question": "q",
        "answer": "a",
        "contexts": ["c1", "c2"],
        "repeat": 0,
    }
    key = judge_cache_key(**base)  # type: ignore[arg-type]
    assert len(key) == 64
    assert judge_cache_key(**base) == key  # type: ignore[arg-type]
    for field, other in [
        ("metric", "answer_relevancy"),
        ("judge_model", "m2"),
        ("prompt_version", "p2"),
        ("question", "q2"),
        ("answer", "a2"),
        ("contexts", ["c2", "c1"]),
        ("repeat", 1),
    ]:
        assert judge_cache_key(**{**base, field: other}) != key, field  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["memory", "store"])
def test_judge_cache_keeps_the_first_output(kind: str, tmp_path: Path) -> None:
    store = open_store(tmp_path / "evalkit.duckdb") if kind == "store" else None
    cache = StoreJudgeCache(store) if store is not None else MemoryJudgeCache()
    first = CachedJudgment("faithfulness", "m", "p", 0.5, n_claims=2, n_supported=1)
    empty = CachedJudgment("faithfulness", "m", "p", None, unmeasured_reason="no_claims")
    cache.put_many([("k1", first), ("k2", empty)])
    cache.put_many([("k1", CachedJudgment("faithfulness", "m", "p", 0.9))])
    assert cache.get_many(["k1", "k2", "k3"]) == {"k1": first, "k2": empty}
    assert cache.get_many([]) == {}
    if store is not None:
        store.close()
