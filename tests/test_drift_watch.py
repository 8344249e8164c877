"""Drift checks as users run them: stored, via the CLI, on a real store and a real model."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from evalkit.cli import invoke
from evalkit.config import Settings
from evalkit.drift.watch import (
    MIN_WARMUP,
    check_query_model,
    load_embeddings,
    watch_drops,
    watch_precision,
)
from evalkit.embedding import ModelFingerprint, load_embedder
from evalkit.errors import ConfigError, InputError, NotFoundError
from evalkit.goldset.model import Goldset
from evalkit.pipeline import collection_vectors, evaluate_goldset
from evalkit.records import Judgment, Query, QueryResult, ScoredDoc
from evalkit.records.requests import PRECISION_WATCH_DEFAULTS, GoldsetRunRequest
from evalkit.store import Store
from evalkit.store.drift import list_drift_checks
from evalkit.store.goldsets import save_goldset
from evalkit.store.runs import list_runs

FEWER_RESAMPLES = replace(PRECISION_WATCH_DEFAULTS, resamples=2000)


def rotated(fingerprint: ModelFingerprint, seed: int = 3) -> ModelFingerprint:
    """The fingerprint of a model that embeds into a rotated space (another model)."""
    vectors = np.frombuffer(fingerprint.canary_vectors, dtype=np.float16).astype(np.float32)
    vectors = vectors.reshape(-1, fingerprint.dimension)
    rotation, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(384, 384)))
    moved = (vectors @ rotation).astype(np.float16)
    return ModelFingerprint("other-model", fingerprint.dimension, "0" * 16, moved.tobytes())


def test_model_check_separates_same_other_and_unknown_models(store: Store) -> None:
    embedder = load_embedder()
    same = check_query_model(embedder.fingerprint, embedder, subject="c", store=store)
    other = check_query_model(rotated(embedder.fingerprint), embedder, subject="c", store=store)
    unknown = check_query_model(None, embedder, subject="c")
    assert same.finding == "ok"
    assert same.canary_similarity == pytest.approx(1.0, abs=1e-3)
    assert other.finding == "model_mismatch"
    assert other.is_mismatch
    assert other.canary_similarity is not None
    assert other.canary_similarity < 0.5
    assert "silently wrong" in other.message
    assert unknown.finding == "unknown"
    stored = list_drift_checks(store, stream="model")
    assert [check.finding for check in stored] == ["model_mismatch", "ok"]
    assert stored[0].is_drift
    assert not stored[1].is_drift


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, Any]:
    code = invoke(list(args))
    out = capsys.readouterr().out
    return code, json.loads(out)


def test_drift_embeddings_cli_stores_checks_and_exits_1_on_drift(
    tmp_path: Path, evalkit_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = np.random.default_rng(0)
    reference = tmp_path / "ref.npy"
    same = tmp_path / "same.npy"
    shifted = tmp_path / "shifted.npy"
    np.save(reference, rng.normal(size=(150, 16)).astype(np.float32))
    np.save(same, rng.normal(size=(150, 16)).astype(np.float32))
    np.save(shifted, (rng.normal(size=(150, 16)) + 0.5).astype(np.float32))
    common = ["drift", "embeddings", "--reference", str(reference), "--format", "json"]
    code, quiet = run_cli(capsys, *common, "--current", str(same), "--method", "mmd")
    assert code == 0
    assert quiet["is_drift"] is False
    assert quiet["method"].startswith("mmd")
    code, loud = run_cli(capsys, *common, "--current", str(shifted), "--method", "mmd")
    assert code == 1
    assert loud["is_drift"] is True
    assert loud["p_value"] <= 0.05
    assert {"statistic", "effect_size", "p_value", "method"} <= set(loud)
    with Store.open(evalkit_home / "evalkit.duckdb", read_only=True) as store:
        checks = list_drift_checks(store, stream="queries")
    assert [check.is_drift for check in checks] == [True, False]
    assert checks[0].check_id == loud["check_id"]
    assert (loud["reference"], loud["current"]) == (checks[0].reference, checks[0].current)
    assert loud["current"] is not None
    assert loud["current"].endswith("shifted.npy")


def test_drift_embeddings_cli_rejects_a_bad_array_naming_the_file(
    tmp_path: Path, evalkit_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = tmp_path / "good.npy"
    np.save(good, np.zeros((10, 4), dtype=np.float32))
    flat = tmp_path / "flat.npy"
    np.save(flat, np.zeros(10, dtype=np.float32))
    code = invoke(["drift", "embeddings", "--reference", str(good), "--current", str(flat)])
    err = capsys.readouterr().err
    assert code == 2
    assert "flat.npy" in err
    assert "2-D" in err


@pytest.mark.slow
def test_evidently_report_is_written_beside_the_verdict(
    tmp_path: Path, evalkit_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = np.random.default_rng(1)
    reference = tmp_path / "ref.npy"
    current = tmp_path / "cur.npy"
    np.save(reference, rng.normal(size=(60, 8)).astype(np.float32))
    np.save(current, (rng.normal(size=(60, 8)) + 1.0).astype(np.float32))
    code, data = run_cli(
        capsys,
        "drift",
        "embeddings",
        "--reference",
        str(reference),
        "--current",
        str(current),
        "--report",
        "--format",
        "json",
    )
    assert code == 1
    report = Path(data["report"])
    assert report.is_file()
    html = report.read_text(encoding="utf-8")
    assert "Drift in embeddings 'queries'" in html
    assert "Drifted Columns" in html


class ScriptedRetriever:
    """Ranks the relevant document first for the first ``good`` calls, then loses it for
    ``lose_share`` of the queries."""

    def __init__(self, good_runs: int, lose_share: float) -> None:
        self.calls = 0
        self.good_runs = good_runs
        self.lose_share = lose_share

    def retrieve(self, queries: Sequence[Query], k: int) -> list[QueryResult]:
        results = []
        for index, query in enumerate(queries):
            number = int(query.id[1:])
            degraded = self.calls >= self.good_runs and number % 100 < self.lose_share * 100
            # A small per-run wobble keeps the series realistic without changing ranks much.
            first = "noise" if degraded else f"rel-{query.id}"
            docs = (ScoredDoc(first, 0.9, 1), ScoredDoc(f"other-{index}", 0.5, 2))
            results.append(QueryResult(query.id, docs, 1.0))
        return results

    def describe(self) -> dict[str, Any]:
        return {"kind": "scripted", "collection": "kb"}

    def index_fingerprint(self) -> str | None:
        return None

    def model_fingerprint(self) -> ModelFingerprint | None:
        return None


def series(store: Store, retriever: ScriptedRetriever, runs: int) -> None:
    queries = [Query(f"q{i}", f"question {i}") for i in range(200)]
    judgments = [Judgment(q.id, f"rel-{q.id}", 1) for q in queries]
    goldset = Goldset.build("kb", queries, judgments)
    for _ in range(runs):
        evaluate_goldset(
            store,
            goldset,
            retriever,
            GoldsetRunRequest(k=10, measures=("ndcg@10",), batch_size=200),
        )
        retriever.calls += 1


def test_precision_series_stays_quiet_while_stable(store: Store) -> None:
    series(store, ScriptedRetriever(good_runs=100, lose_share=0.3), runs=6)
    [check] = watch_precision(store, "kb", test=FEWER_RESAMPLES).checks
    assert check.finding == "ok"
    assert check.paired is not None
    assert check.paired.decision == "pass"
    assert len(check.series) == 6


def test_a_warning_is_not_drift_in_the_json_as_in_the_store_and_the_exit_code(
    store: Store,
) -> None:
    series(store, ScriptedRetriever(good_runs=100, lose_share=0.3), runs=3)
    [check] = watch_precision(store, "kb", test=FEWER_RESAMPLES).checks
    assert replace(check, finding="warning").to_dict()["is_drift"] is False
    assert replace(check, finding="drift").to_dict()["is_drift"] is True


def test_a_short_stable_series_is_not_drift_to_page_hinkley() -> None:
    """Four runs of one retriever, only its score noise changed (ndcg@10 sd 0.006): a
    warm-up of 2 runs took the spread of two points as the series' and alarmed. Page-Hinkley
    now learns from 5 runs before it judges; on 600 stable series per length it alarms at
    the newest run on at most 1 %."""
    seen = watch_drops(
        np.array([0.6451, 0.6440, 0.6519, 0.6311]), warmup=None, h_warning=5.0, h_alert=8.0
    )
    assert seen.levels[-1] == "ok"
    assert seen.warmup == MIN_WARMUP
    rng = np.random.default_rng(11)
    for length in (4, 5, 6, 8, 12):
        alarms = sum(
            watch_drops(
                0.6 + 0.02 * rng.standard_normal(length), warmup=None, h_warning=5.0, h_alert=8.0
            ).levels[-1]
            == "alert"
            for _ in range(600)
        )
        assert alarms <= 6, (length, alarms)


def test_precision_drop_is_found_by_both_detectors_and_stored(store: Store) -> None:
    series(store, ScriptedRetriever(good_runs=5, lose_share=0.3), runs=8)
    [check] = watch_precision(store, "kb", test=FEWER_RESAMPLES).checks
    assert check.finding == "drift"
    assert check.levels[-1] == "alert"
    assert check.paired is not None
    assert check.paired.decision == "regression"
    assert check.change_point == check.series[5][0]
    stored = list_drift_checks(store, stream="precision")
    assert stored[0].finding == "drift"
    assert stored[0].details["paired_decision"] == "regression"


class OtherRetriever(ScriptedRetriever):
    def describe(self) -> dict[str, Any]:
        return {"kind": "scripted", "collection": "other"}


def test_a_pinned_baseline_serves_its_own_series_and_must_be_a_run_of_the_goldset(
    store: Store,
) -> None:
    """Another retriever differs from the baseline by design, not by drift; a run of
    another goldset is no baseline of this one."""
    series(store, ScriptedRetriever(good_runs=100, lose_share=0.3), runs=3)
    series(store, OtherRetriever(good_runs=0, lose_share=0.5), runs=3)
    runs = list_runs(store, goldset="kb", limit=10)
    kb_first = next(run for run in reversed(runs) if run.spec.collection == "kb")
    other_first = next(run for run in reversed(runs) if run.spec.collection == "other")
    checks = watch_precision(store, "kb", baseline_run=kb_first.run_id, test=FEWER_RESAMPLES).checks
    baselines = {check.subject: check.baseline_run for check in checks}
    assert sorted(baselines.values()) == sorted([kb_first.run_id, other_first.run_id])
    assert all(check.finding == "ok" for check in checks)

    gold = Goldset.build("g2", [Query("q1", "question 1")], [Judgment("q1", "rel-q1", 1)])
    elsewhere = evaluate_goldset(
        store, gold, ScriptedRetriever(100, 0.0), GoldsetRunRequest(k=10, answers=False)
    ).run.run_id
    with pytest.raises(ConfigError, match=f"baseline {elsewhere} is no scored run of goldset"):
        watch_precision(store, "kb", baseline_run=elsewhere, test=FEWER_RESAMPLES)


class FailingRetriever(ScriptedRetriever):
    """A second retriever (collection ``down``) that fails a tenth of the queries."""

    def retrieve(self, queries: Sequence[Query], k: int) -> list[QueryResult]:
        return [
            QueryResult(r.query_id, (), 1.0, error="HTTP 503 Service Unavailable")
            if int(r.query_id[1:]) % 10 == 0
            else r
            for r in super().retrieve(queries, k)
        ]

    def describe(self) -> dict[str, Any]:
        return {"kind": "scripted", "collection": "down"}


def test_drift_precision_says_warming_up_and_lists_series_it_skipped(
    evalkit_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    evalkit_home.mkdir(parents=True, exist_ok=True)
    with Store.open(evalkit_home / "evalkit.duckdb") as store:
        series(store, ScriptedRetriever(good_runs=100, lose_share=0.3), runs=2)
        series(store, FailingRetriever(good_runs=100, lose_share=0.3), runs=2)
    code = invoke(["drift", "precision", "--goldset", "kb"])
    out = capsys.readouterr().out
    assert code == 0
    assert "(warming up (2 of 5 runs))" in out
    assert "│ ok" not in out
    assert "skipped scripted:down: all 2 runs are partial" in out
    assert "20 of 200 queries failed" in out

    code = invoke(["drift", "precision", "--goldset", "kb", "--last", "1"])
    out = capsys.readouterr().out
    assert code == 0
    assert out.count("│ warming up") == 1
    assert "1 earlier runs of the series not shown (--last 0 shows them)" in out

    code, data = run_cli(capsys, "drift", "precision", "--goldset", "kb", "--format", "json")
    assert code == 0
    [check] = data["checks"]
    assert check["status"] == "warming up (2 of 5 runs)"
    assert [point["level"] for point in check["series"]] == ["warming up", "warming up"]
    [skipped] = data["skipped"]
    assert (skipped["subject"], skipped["runs"]) == ("scripted:down", 2)
    assert skipped["reason"].startswith("all 2 runs are partial")


def test_drift_precision_names_the_stored_check_that_explain_takes(
    evalkit_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    evalkit_home.mkdir(parents=True, exist_ok=True)
    with Store.open(evalkit_home / "evalkit.duckdb") as store:
        series(store, ScriptedRetriever(good_runs=5, lose_share=0.3), runs=7)
    code, data = run_cli(capsys, "drift", "precision", "--goldset", "kb", "--format", "json")
    assert code == 1
    [check] = data["checks"]
    with Store.open(evalkit_home / "evalkit.duckdb", read_only=True) as store:
        newest = list_drift_checks(store, stream="precision")[0]
    assert check["check_id"] == newest.check_id

    code = invoke(["drift", "precision", "--goldset", "kb"])
    out = capsys.readouterr().out
    assert code == 1
    with Store.open(evalkit_home / "evalkit.duckdb", read_only=True) as store:
        newest = list_drift_checks(store, stream="precision")[0]
    assert (
        f"stored as drift check {newest.check_id}: `evalkit explain --drift-check "
        f"{newest.check_id}` names its probable causes" in " ".join(out.split())
    )


def _npz_as_npy(path: Path) -> None:
    np.savez(path.with_suffix(".npz"), a=np.ones((5, 4)))
    path.with_suffix(".npz").rename(path)


@pytest.mark.parametrize(
    ("write", "message"),
    [
        (_npz_as_npy, "a .npz archive of arrays: give one array saved with numpy.save"),
        (lambda path: path.write_text("hello"), "not a .npy file: give one array"),
        (lambda path: np.save(path, np.ones((5, 4)) * 1j), "2-D array of real numbers"),
        (lambda path: np.save(path, np.full((5, 4), 1e300)), "beyond float32's range"),
        (
            lambda path: np.save(path, np.where(np.eye(5, 4) > 0, np.nan, 1.0)[::-1]),
            re.escape("holds NaN or infinite values (first bad rows: [1, 2, 3, 4]); drop or"),
        ),
    ],
    ids=["npz", "text", "complex", "beyond-float32", "nan"],
)
def test_an_embeddings_file_that_is_no_real_npy_array_is_named_not_a_traceback(
    tmp_path: Path, write: Any, message: str
) -> None:
    path = tmp_path / "window.npy"
    write(path)
    with pytest.raises(InputError, match=message) as raised:
        load_embeddings(path)
    assert raised.value.path == str(path)


@pytest.mark.parametrize("sample", [-5, 0, 1])
def test_a_document_sample_too_small_to_test_is_refused_before_chroma_opens(
    tmp_path: Path, sample: int
) -> None:
    with pytest.raises(ConfigError, match="at least 2 documents"):
        collection_vectors(Settings(home=tmp_path), "demo", sample=sample)


def test_a_misspelt_measure_or_stream_is_named_as_such(
    store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(InputError, match="unknown measure 'bogus'"):
        watch_precision(store, "kb", measure="bogus")
    # A misspelt goldset read "no complete runs of goldset 'kbb'... run it first".
    save_goldset(store, Goldset.build("kb", [Query("q1", "a question")], [Judgment("q1", "d1", 1)]))
    with pytest.raises(NotFoundError, match=r"no goldset named 'kbb' .*\(stored: kb\)"):
        watch_precision(store, "kbb")
    with pytest.raises(ConfigError, match="no complete runs of goldset 'kb'"):
        watch_precision(store, "kb")
    vectors = tmp_path / "v.npy"
    np.save(vectors, np.ones((5, 4)))
    args = ["drift", "embeddings", "--reference", str(vectors), "--current", str(vectors)]
    assert invoke([*args, "--stream", "bogus"]) == 2
    assert "'bogus' is not one of 'queries', 'documents'" in capsys.readouterr().err
