"""The pipeline's wiring, called directly on a real DuckDB store and a loopback HTTP
retriever: the one run lifecycle (goldset and traffic runs), traffic replay with logged
answers, drift checks; and the scheduler's jobs and the CLI's commands storing the same
rows for the same input, since both only call the pipeline."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from test_causes import two_backends
from test_scheduler_support import (  # noqa: F401  (fixture)
    FakeRetriever,
    make_goldset,
    retriever_fixture,
)
from traffic_windows import day_window_summary
from waiting import wait_until

from evalkit.cli import invoke
from evalkit.config import Settings, load_settings
from evalkit.embedding.fingerprint import ModelFingerprint
from evalkit.pipeline import (
    TrafficReplayRequest,
    audit_collection,
    check_drift_metric,
    check_drift_queries,
    evaluate_goldset,
    newest_sample,
    replay_traffic_window,
    traffic_cycle,
)
from evalkit.pipeline.traffic_cycle import TrafficCycle, run_traffic_cycle
from evalkit.records.requests import GoldsetRunRequest, TrafficCycleRequest
from evalkit.retrievers.http import HttpRetriever
from evalkit.scheduler.job_kinds import traffic as traffic_job
from evalkit.store import RunSpec, Store
from evalkit.store.access import StoreAccess
from evalkit.store.answers import list_scorings
from evalkit.store.audit import get_audit, latest_measurements, list_audits
from evalkit.store.drift import list_drift_checks
from evalkit.store.goldsets import save_goldset
from evalkit.store.runs import (
    create_run,
    finish_run,
    get_run,
    list_runs,
    query_metrics,
    run_queries,
    run_results,
)
from evalkit.store.traffic import (
    StoredWindowSummary,
    latest_window_summary,
    list_window_summaries,
    save_traffic_replay,
)
from evalkit.traffic import SampleSpec, ingest_paths, parse_window, sample_window

DAY = "2026-11-21"
N_LOGGED = 8


class ClosingHttpRetriever(HttpRetriever):
    """The real HTTP retriever, counting how often it was closed."""

    def __init__(self, url: str) -> None:
        super().__init__(url, retries=0)
        self.closed = 0

    def close(self) -> None:
        self.closed += 1
        super().close()


@pytest.fixture
def settings(evalkit_home: Path) -> Settings:
    loaded = load_settings()
    Store.open(loaded.resolved_store_path).close()
    return loaded


@pytest.fixture
def store(settings: Settings) -> Iterator[Store]:
    with Store.open(settings.resolved_store_path) as opened:
        yield opened


def write_logs(directory: Path) -> Path:
    """A day of production traffic; the first two queries logged a generated answer."""
    directory.mkdir(parents=True, exist_ok=True)
    lines = []
    for index in range(N_LOGGED):
        record: dict[str, Any] = {
            "query_id": f"t{index}",
            "timestamp": f"{DAY}T{index:02d}:00:00Z",
            "text": f"question number {index}",
            "results": [f"t{index}-rel0", f"t{index}-x0"],
            "latency_ms": 10 + index,
        }
        if index < 2:
            passage = f"Passage {index} says the answer is {index}."
            record.update(answer=passage, contexts=[passage])
        lines.append(json.dumps(record))
    (directory / "app.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return directory


def draw_sample(store: Store, logs: Path) -> str:
    ingest_paths(store, [logs])
    return sample_window(store, SampleSpec(window=parse_window(DAY), n=N_LOGGED, seed=1)).sample_id


def stop_after_first_batch() -> Any:
    calls = {"n": 0}

    def progress(done: int, total: int | None) -> None:
        calls["n"] += 1
        if calls["n"] > 1:
            raise RuntimeError("stopped on purpose")

    return progress


# -- the run lifecycle --------------------------------------------------------------------


def test_traffic_replay_records_run_summary_and_logged_answers(
    store: Store, tmp_path: Path, retriever: FakeRetriever
) -> None:
    sample_id = draw_sample(store, write_logs(tmp_path / "logs"))
    http = ClosingHttpRetriever(retriever.url)
    outcome = replay_traffic_window(
        store,
        sample_id,
        http,
        TrafficReplayRequest(k=5, batch_size=3, answers=True),
        close_retriever=True,
    )
    assert http.closed == 1
    run = get_run(store, outcome.run.run_id)
    assert (run.spec.kind, run.status, run.n_failed) == ("traffic", "complete", 0)
    assert run.spec.label == f"traffic {DAY}"
    summary = latest_window_summary(store, DAY)
    assert summary.run_id == run.run_id
    assert summary.n_replayed == N_LOGGED
    # Every logged top-2 holds the replay's first document: the comparison ran on all.
    assert summary.n_compared == N_LOGGED
    results = run_results(store, run.run_id)
    assert len(results) == N_LOGGED * 5
    assert outcome.answers is not None
    assert outcome.answers.n_records == 2
    (scoring,) = list_scorings(store, run_id=run.run_id)
    assert scoring.scoring_id == outcome.answers.scoring_id


def test_traffic_replay_without_answers_scores_nothing(
    store: Store, tmp_path: Path, retriever: FakeRetriever
) -> None:
    sample_id = draw_sample(store, write_logs(tmp_path / "logs"))
    outcome = replay_traffic_window(
        store, sample_id, HttpRetriever(retriever.url), TrafficReplayRequest(k=5, answers=False)
    )
    assert outcome.answers is None
    assert list_scorings(store, run_id=outcome.run.run_id) == []


def test_a_crash_fails_a_traffic_run_with_its_error_and_closes_the_retriever(
    store: Store, tmp_path: Path, retriever: FakeRetriever
) -> None:
    sample_id = draw_sample(store, write_logs(tmp_path / "logs"))
    http = ClosingHttpRetriever(retriever.url)
    with pytest.raises(RuntimeError, match="stopped on purpose"):
        replay_traffic_window(
            store,
            sample_id,
            http,
            TrafficReplayRequest(k=5, batch_size=3, answers=False),
            progress=stop_after_first_batch(),
            close_retriever=True,
        )
    assert http.closed == 1
    (run,) = list_runs(store)
    assert (run.spec.kind, run.status) == ("traffic", "failed")
    assert run.error == "RuntimeError: stopped on purpose"
    # An open store stays open during a traffic replay: the batches replayed before the crash
    # were stored, the rest never sent.
    assert 0 < len(run_queries(store, run.run_id)) < N_LOGGED


def test_a_crash_fails_a_goldset_run_recorded_at_write_time(
    settings: Settings, retriever: FakeRetriever
) -> None:
    with Store.open(settings.resolved_store_path) as opened:
        save_goldset(opened, make_goldset())
    opens: list[str] = []

    class Opener:
        keeps_open = False

        def writer(self, purpose: str) -> Any:
            opens.append("open")
            return Store.open(settings.resolved_store_path)

    http = ClosingHttpRetriever(retriever.url)
    with pytest.raises(RuntimeError, match="stopped on purpose"):
        evaluate_goldset(
            Opener(),
            make_goldset(),
            http,
            GoldsetRunRequest(k=10, batch_size=5, answers=False),
            progress=stop_after_first_batch(),
            close_retriever=True,
        )
    assert http.closed == 1
    assert opens == ["open"], "the store is opened once, after the replay, to record the failure"
    with Store.open(settings.resolved_store_path, read_only=True) as reading:
        (run,) = list_runs(reading, goldset="gs")
        assert run.status == "failed"
        assert run.error == "RuntimeError: stopped on purpose"
        assert run_queries(reading, run.run_id).empty


def test_a_goldset_run_whose_every_query_failed_is_failed(
    store: Store, retriever: FakeRetriever
) -> None:
    url = retriever.url
    retriever.close()  # nothing listens any more: every query fails
    outcome = evaluate_goldset(
        store,
        make_goldset(4),
        HttpRetriever(url, retries=0, timeout=2),
        GoldsetRunRequest(k=10, answers=False),
    )
    assert outcome.run.status == "failed"
    assert outcome.run.n_failed == 4
    assert str(outcome.run.error).startswith("4 of 4 queries failed; first: ")
    assert outcome.run.aggregates == {}


# -- drift checks -------------------------------------------------------------------------


def test_metric_drift_check_stores_where_the_newest_run_stands(store: Store) -> None:
    spec = RunSpec(
        kind="goldset",
        retriever_kind="http",
        k=10,
        measures=("precision@10",),
        evalkit_version="t",
        goldset_name="gs",
        n_queries=30,
    )
    values = [0.30, 0.31, 0.29, 0.30, 0.30, 0.31, 0.20, 0.19, 0.20, 0.21]
    warming = check_drift_metric(store, "gs", warmup=6, method="cusum")
    assert warming.check is None
    assert warming.note == "0 runs so far; the warm-up needs more"
    for value in values:
        run_id = create_run(store, spec)
        finish_run(
            store,
            run_id,
            status="complete",
            per_query=None,
            aggregates={"precision@10": value},
            n_evaluated=30,
            n_total=30,
            n_failed=0,
        )
    outcome = check_drift_metric(store, "gs", warmup=6, method="cusum")
    assert outcome.check is not None
    assert outcome.check.finding == "drift"
    (stored,) = list_drift_checks(store, stream="metric")
    assert stored.check_id == outcome.check.check_id
    assert stored.subject == "gs:precision@10"


def test_query_drift_check_needs_two_replayed_windows(
    store: Store, tmp_path: Path, retriever: FakeRetriever
) -> None:
    assert check_drift_queries(store).note == "no replayed traffic window yet"
    sample_id = draw_sample(store, write_logs(tmp_path / "logs"))
    replay_traffic_window(
        store, sample_id, HttpRetriever(retriever.url), TrafficReplayRequest(k=5, answers=False)
    )
    assert check_drift_queries(store).note == "only one replayed window so far"
    assert list_drift_checks(store) == []


def embedded_window(
    store: Store, day: str, vectors: np.ndarray, model: ModelFingerprint, *, canaries: bool
) -> None:
    """A replayed window of ``day`` whose queries ``model`` embedded as ``vectors``, stored
    with the model's canary embeddings or, as windows replayed before they were kept, its
    hash only."""
    save_traffic_replay(
        store,
        summary=day_window_summary(
            f"r-{day}",
            day,
            embedding_model=model.name,
            embedding_dimension=model.dimension,
            embedding_fingerprint=model.canary_hash,
            embedding_canaries=model.canary_vectors if canaries else None,
            n_embeddings=len(vectors),
        ),
        per_query=pd.DataFrame(),
        embedding_ids=[f"{day}-{i}" for i in range(len(vectors))],
        embeddings=vectors.astype(np.float32),
    )


def test_windows_embedded_by_one_model_on_two_backends_are_tested_for_drift(
    store: Store,
) -> None:
    """A window embedded on ONNX Runtime after one embedded on torch was never tested for
    drift: the two canary hashes differ, and a model_mismatch was stored instead."""
    onnx, torch = two_backends()
    rng = np.random.default_rng(9)
    embedded_window(store, "2026-11-18", rng.normal(size=(60, 8)), torch, canaries=True)
    embedded_window(store, "2026-11-19", rng.normal(size=(60, 8)), onnx, canaries=True)
    outcome = check_drift_queries(store)
    assert outcome.check is not None
    assert outcome.check.finding == "ok"

    # A window stored with its hash only cannot tell: no drift test across two models.
    embedded_window(store, "2026-11-20", rng.normal(size=(60, 8)), torch, canaries=False)
    mismatch = check_drift_queries(store)
    assert mismatch.check is not None
    assert mismatch.check.finding == "model_mismatch"
    assert mismatch.check.statistic is None
    assert mismatch.check.details["reference_fingerprint"] == onnx.canary_hash
    assert mismatch.check.details["current_fingerprint"] == torch.canary_hash


# -- the scheduler and the CLI store the same rows ----------------------------------------


def run_rows(store: Store, run_id: str) -> dict[str, Any]:
    """What a run stored, without what differs between any two runs (ids, times, latency)."""
    run = get_run(store, run_id)
    spec = run.spec
    results = run_results(store, run_id)[["query_id", "doc_id", "score", "rank"]]
    queries = run_queries(store, run_id)[["query_id", "error"]]
    return {
        "spec": (
            spec.kind,
            spec.retriever_kind,
            spec.k,
            spec.measures,
            spec.goldset_name,
            spec.goldset_version,
            spec.label,
            spec.n_queries,
            spec.relevance_threshold,
        ),
        "status": (run.status, run.n_failed, run.error),
        "aggregates": dict(run.aggregates),
        "results": results.sort_values(["query_id", "rank"]).reset_index(drop=True),
        "queries": queries.sort_values("query_id").reset_index(drop=True),
        "per_query": query_metrics(store, run_id).sort_index(),
    }


def assert_same_rows(first: dict[str, Any], second: dict[str, Any]) -> None:
    for key in ("spec", "status", "aggregates"):
        assert first[key] == second[key], key
    for key in ("results", "queries", "per_query"):
        pd.testing.assert_frame_equal(first[key], second[key], obj=key)


def write_config(evalkit_home: Path, monkeypatch: pytest.MonkeyPatch, jobs: str) -> None:
    config = evalkit_home.parent / "evalkit.toml"
    config.write_text(jobs, encoding="utf-8")
    monkeypatch.setenv("EVALKIT_CONFIG", str(config))


def test_goldset_job_and_run_command_store_the_same_rows(
    settings: Settings,
    evalkit_home: Path,
    retriever: FakeRetriever,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with Store.open(settings.resolved_store_path) as opened:
        save_goldset(opened, make_goldset())
    write_config(
        evalkit_home,
        monkeypatch,
        f"""
[[jobs]]
name = "nightly"
kind = "goldset_replay"
goldset = "gs"
http_retriever = "{retriever.url}"
k = 10
""",
    )
    assert invoke(["jobs", "run", "nightly", "--local", "--format", "json"]) == 0
    capsys.readouterr()
    code = invoke(
        [
            "run",
            "--goldset",
            "gs",
            "--http-retriever",
            retriever.url,
            "--k",
            "10",
            "--label",
            "nightly",
            "--format",
            "json",
        ]
    )
    assert code == 0, capsys.readouterr().err
    with Store.open(settings.resolved_store_path, read_only=True) as reading:
        runs = list_runs(reading, goldset="gs")
        assert len(runs) == 2
        by_job, by_command = (run_rows(reading, run.run_id) for run in reversed(runs))
    assert by_job["status"] == ("complete", 0, None)
    assert by_job["aggregates"]["recall@10"] == 1.0
    assert_same_rows(by_job, by_command)


def test_traffic_job_and_replay_command_store_the_same_rows(
    settings: Settings,
    evalkit_home: Path,
    retriever: FakeRetriever,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    logs = write_logs(evalkit_home.parent / "logs")
    write_config(
        evalkit_home,
        monkeypatch,
        f"""
[[jobs]]
name = "traffic-daily"
kind = "traffic"
paths = [{json.dumps(str(logs))}]
window = "{DAY}"
n = {N_LOGGED}
seed = 1
http_retriever = "{retriever.url}"
k = 5
embed_sample = 0
answers = false
""",
    )
    assert invoke(["jobs", "run", "traffic-daily", "--local", "--format", "json"]) == 0
    capsys.readouterr()
    with Store.open(settings.resolved_store_path, read_only=True) as reading:
        sample_id = newest_sample(reading, DAY)
    code = invoke(
        [
            "traffic",
            "replay",
            "--sample",
            sample_id,
            "--http-retriever",
            retriever.url,
            "--k",
            "5",
            "--embed-sample",
            "0",
            "--no-answers",
            "--format",
            "json",
        ]
    )
    assert code == 0, capsys.readouterr().err
    with Store.open(settings.resolved_store_path, read_only=True) as reading:
        runs = [run for run in list_runs(reading) if run.spec.kind == "traffic"]
        assert len(runs) == 2
        by_job, by_command = (run_rows(reading, run.run_id) for run in reversed(runs))
        summaries = {
            summary.run_id: window_figures(summary)
            for summary in list_window_summaries(reading, window_label=DAY)
        }
    # The job labels its run with its name, the command with the window.
    assert by_job["spec"][6] == "traffic-daily"
    assert by_command["spec"][6] == f"traffic {DAY}"
    by_job["spec"] = by_job["spec"][:6] + by_job["spec"][7:]
    by_command["spec"] = by_command["spec"][:6] + by_command["spec"][7:]
    assert by_job["status"] == ("complete", 0, None)
    assert len(by_job["results"]) == N_LOGGED * 5
    assert_same_rows(by_job, by_command)
    job_summary, command_summary = (summaries[run.run_id] for run in reversed(runs))
    assert job_summary["n_compared"] == N_LOGGED
    assert job_summary == command_summary


@pytest.mark.slow
def test_traffic_job_and_replay_command_run_the_one_traffic_cycle(
    settings: Settings,
    evalkit_home: Path,
    retriever: FakeRetriever,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`evalkit traffic replay` and the `traffic` job each build a request and call
    `run_traffic_cycle`: the same request but for the sample and the run's label, and the
    same window figures and estimate stored."""
    calls: list[tuple[TrafficCycleRequest, SampleSpec | None]] = []

    def recording(*args: Any, **kwargs: Any) -> TrafficCycle:
        calls.append((args[1], kwargs.get("draw")))
        return run_traffic_cycle(*args, **kwargs)

    monkeypatch.setattr(traffic_cycle, "run_traffic_cycle", recording)
    monkeypatch.setattr(traffic_job, "run_traffic_cycle", recording)
    with Store.open(settings.resolved_store_path) as opened:
        save_goldset(opened, make_goldset())
    logs = write_logs(evalkit_home.parent / "logs")
    write_config(
        evalkit_home,
        monkeypatch,
        f"""
[[jobs]]
name = "traffic-daily"
kind = "traffic"
paths = [{json.dumps(str(logs))}]
window = "{DAY}"
n = {N_LOGGED}
seed = 1
http_retriever = "{retriever.url}"
k = 5
embed_sample = 0
answers = false
estimate = true
""",
    )
    calibrating = ["run", "--goldset", "gs", "--http-retriever", retriever.url, "--k", "5"]
    assert invoke(calibrating) == 0, capsys.readouterr().err
    capsys.readouterr()
    assert invoke(["jobs", "run", "traffic-daily", "--local", "--format", "json"]) == 0
    job = json.loads(capsys.readouterr().out)["summary"]
    replaying = ["traffic", "replay", "--window", DAY, "--http-retriever", retriever.url]
    replaying += ["--k", "5", "--embed-sample", "0", "--no-answers", "--estimate"]
    assert invoke([*replaying, "--format", "json"]) == 0
    command = json.loads(capsys.readouterr().out)

    (by_job, job_draw), (by_command, command_draw) = calls
    assert job_draw is not None
    assert job_draw.window.label == DAY
    assert command_draw is None
    assert by_command.window == DAY
    assert by_job.replay is not None
    assert by_job.replay.label == "traffic-daily"
    assert replace(by_job, replay=replace(by_job.replay, label=None), window=DAY) == by_command
    assert job["estimate"]["value"] is not None
    assert job["estimate"]["value"] == command["estimate"]["figure"]["value"]
    assert job["estimate"]["calibration_run"] == command["estimate"]["calibration_run"]
    with Store.open(settings.resolved_store_path, read_only=True) as reading:
        summaries = {
            summary.run_id: window_figures(summary)
            for summary in list_window_summaries(reading, window_label=DAY)
        }
    assert summaries[job["run_id"]] == summaries[command["run"]["run_id"]]


@pytest.mark.slow
def test_traffic_replay_command_lets_another_writer_have_the_store_while_it_replays(
    settings: Settings, evalkit_home: Path, retriever: FakeRetriever
) -> None:
    """`evalkit traffic replay` held the store while every query went to the retriever, so
    `evalkit runs list`, any writer, the dashboard and `evalkit serve` waited for a slow
    endpoint; it now takes the store to read the sample and to record the replay, as
    `evalkit run` does."""
    with Store.open(settings.resolved_store_path) as store:
        sample_id = draw_sample(store, write_logs(evalkit_home.parent / "logs"))
    retriever.mode = "hold"
    replaying = subprocess.Popen(
        [
            *(sys.executable, "-m", "evalkit", "traffic", "replay", "--sample", sample_id),
            *("--http-retriever", retriever.url, "--k", "5", "--embed-sample", "0"),
            *("--no-answers", "--format", "json"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(
            lambda: retriever.hits > 0 or replaying.poll() is not None,
            timeout=120,
            what="the replay to send its first query",
        )
        assert replaying.poll() is None, replaying.communicate()
        access = StoreAccess(settings.resolved_store_path, wait=1, program="test")
        with access.writer("goldset import") as writing:
            assert save_goldset(writing, make_goldset())
    finally:
        retriever.release.set()
        out, err = replaying.communicate(timeout=120)
    assert replaying.returncode == 0, err
    with Store.open(settings.resolved_store_path, read_only=True) as reading:
        (run,) = list_runs(reading)
        (summary,) = list_window_summaries(reading, window_label=DAY)
        replayed = len(run_queries(reading, run.run_id))
    assert json.loads(out)["run"]["run_id"] == run.run_id == summary.run_id
    assert (run.status, replayed, summary.n_compared) == ("complete", N_LOGGED, N_LOGGED)


def window_figures(summary: StoredWindowSummary) -> dict[str, Any]:
    """A window summary without what differs between two replays (ids, times, latency)."""
    return {
        name: value
        for name, value in summary.to_dict().items()
        if name not in ("run_id", "computed_at") and not name.startswith("latency_")
    }


# -- audits -------------------------------------------------------------------------------


def test_audit_collection_stores_its_report_and_compares_with_the_previous_audit(
    store: Store, settings: Settings
) -> None:
    from test_audit_seeded import FACTS, _documents

    from evalkit.audit import AuditConfig
    from evalkit.embedding import load_embedder
    from evalkit.goldset.model import Goldset
    from evalkit.records import Judgment, Query
    from evalkit.retrievers.chroma_client import open_chroma_client
    from evalkit.retrievers.indexing import index_corpus

    embedder = load_embedder()
    documents = _documents(FACTS)
    client = open_chroma_client(path=settings.resolved_chroma_path)
    index_corpus(client, documents, embedder, collection_name="facts")
    queries = [Query(id="q-tower", text="How tall is the Eiffel Tower?")]
    judgments = [Judgment("q-tower", "eiffel", 1), Judgment("q-tower", "gone", 1)]
    save_goldset(store, Goldset.build("facts-gold", queries, judgments, source="synthetic"))
    config = AuditConfig(checks=("duplicates", "orphans", "coverage"), k=3)

    first = audit_collection(
        store, "facts", settings=settings, config=config, embedder=embedder, goldset="facts-gold"
    )
    assert first.stored is not None
    assert first.audit_id == first.stored.audit_id
    assert get_audit(store, first.stored.audit_id).goldset_name == "facts-gold"
    kinds = {finding.kind for finding in first.report.findings}
    assert "orphaned_judgments" in kinds, kinds
    assert latest_measurements(store, collection="facts") == dict(first.report.measurements)

    unsaved = audit_collection(
        store, "facts", settings=settings, config=config, embedder=embedder, save=False
    )
    assert unsaved.stored is None
    assert [audit.audit_id for audit in list_audits(store)] == [first.stored.audit_id]
