"""Job kinds and the runner, in process: commands, cancellation, overlap, drift checks,
retention, a busy store, and the configuration of ``[[jobs]]``."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from test_scheduler_support import (  # noqa: F401  (fixture)
    FakeRetriever,
    make_goldset,
    retriever_fixture,
)
from traffic_windows import day_window_summary
from waiting import wait_until

from evalkit.config import Settings, load_settings, parse_settings
from evalkit.errors import ConfigError, StoreError
from evalkit.redaction import register_secrets
from evalkit.scheduler import JobListener, JobRunner, ServiceConfig, service_config
from evalkit.scheduler.jobs import JOB_KINDS
from evalkit.store import RunSpec, Store
from evalkit.store.access import FileLock, StoreAccess, store_sibling
from evalkit.store.drift import list_drift_checks
from evalkit.store.goldsets import save_goldset
from evalkit.store.jobs import list_job_runs, start_job_run
from evalkit.store.runs import create_run, finish_run, get_run, list_runs, run_results
from evalkit.store.traffic import save_traffic_replay


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


@pytest.fixture
def settings(evalkit_home: Path) -> Iterator[Settings]:
    loaded = load_settings()
    Store.open(loaded.resolved_store_path).close()
    return loaded


def configure(*jobs: dict[str, Any], alerts: dict[str, Any] | None = None) -> ServiceConfig:
    data: dict[str, Any] = {"jobs": list(jobs)}
    if alerts is not None:
        data["alerts"] = alerts
    return service_config(parse_settings(data, Path("evalkit.toml")))


def runner_for(config: ServiceConfig, settings: Settings, **options: Any) -> JobRunner:
    access = StoreAccess(settings.resolved_store_path, wait=10, program="test")
    return JobRunner(config, settings=settings, session=access, **options)


def test_command_jobs_succeed_fail_and_time_out(settings: Settings) -> None:
    config = configure(
        {"name": "ok", "kind": "command", "command": python("print('hello')")},
        {"name": "broken", "kind": "command", "command": python("import sys; sys.exit('nope')")},
        {
            "name": "slow",
            "kind": "command",
            "command": python("import time; time.sleep(30)"),
            "timeout": 0.5,
        },
    )
    runner = runner_for(config, settings)
    ok, broken, slow = (runner.run(name) for name in ("ok", "broken", "slow"))
    assert ok is not None
    assert ok.status == "succeeded"
    assert ok.summary["exit_code"] == 0
    assert broken is not None
    assert broken.status == "failed"
    assert broken.error is not None
    assert "exited with 1: nope" in broken.error
    assert slow is not None
    assert slow.status == "failed"
    assert "ran longer than 0.5 s" in str(slow.error)
    assert slow.seconds is not None
    assert slow.seconds < 10


def test_a_secret_where_the_kept_stderr_starts_is_masked_whole(settings: Settings) -> None:
    secret = "sk-JOBTAIL-8Ws2Qn5Vx7"
    register_secrets([secret])
    # The last 500 characters of stderr start 1, 6 and 20 characters before the key ends.
    lefts = (1, 6, len(secret) - 1)
    jobs = [
        {
            "name": f"leaky{left}",
            "kind": "command",
            "command": python(f"import sys; sys.exit('token {secret} ' + 'y' * {499 - left})"),
        }
        for left in lefts
    ]
    runner = runner_for(configure(*jobs), settings)
    for left in lefts:
        ran = runner.run(f"leaky{left}")
        assert ran is not None
        assert ran.error is not None
        tail = ran.error.split(" exited with 1: ", 1)[1]
        assert tail.endswith("y" * 400)
        assert secret[-left:] not in tail, tail


class Heard(JobListener):
    def __init__(self) -> None:
        self.overlaps = 0
        self.statuses: list[str] = []

    def overlapped(self, job: str) -> None:
        self.overlaps += 1

    def finished(self, job: str, run: Any) -> None:
        self.statuses.append(run.status)


@pytest.mark.slow
def test_a_running_job_is_never_started_twice(settings: Settings) -> None:
    config = configure(
        {"name": "sleepy", "kind": "command", "command": python("import time; time.sleep(1.5)")}
    )
    heard = Heard()
    runner = runner_for(config, settings, listener=heard)
    results: list[Any] = []
    first = threading.Thread(target=lambda: results.append(runner.run("sleepy")))
    first.start()
    wait_until(lambda: runner.is_running("sleepy"), timeout=30, what="the first run to start")
    assert runner.run("sleepy", trigger="manual") is None
    first.join()
    assert heard.overlaps == 1
    assert heard.statuses == ["succeeded"]
    with Store.open(settings.resolved_store_path, read_only=True) as store:
        assert len(list_job_runs(store, job="sleepy")) == 1


def test_cancelling_interrupts_a_command_and_a_goldset_replay(
    settings: Settings, retriever: FakeRetriever
) -> None:
    with Store.open(settings.resolved_store_path) as store:
        save_goldset(store, make_goldset())
    config = configure(
        {"name": "sleepy", "kind": "command", "command": python("import time; time.sleep(30)")},
        {
            "name": "replay",
            "kind": "goldset_replay",
            "goldset": "gs",
            "http_retriever": retriever.url,
            "k": 10,
        },
    )
    runner = runner_for(config, settings)
    threading.Timer(0.5, runner.cancel.set).start()
    command = runner.run("sleepy")
    assert command is not None
    assert command.status == "interrupted"
    replay = runner.run("replay")
    assert replay is not None
    assert replay.status == "interrupted"
    with Store.open(settings.resolved_store_path, read_only=True) as store:
        (run,) = list_runs(store, goldset="gs")
    assert run.status == "failed"
    # As docs/scheduler.md says, and as the recovery after kill -9 words it.
    assert run.error == "interrupted: evalkit serve is stopping (job replay)"
    # The job run lists the run it stored, interrupted or not.
    assert replay.run_ids == (run.run_id,)
    assert run.aggregates == {}, "no figures of an interrupted run look complete"


def nightly_replay(settings: Settings, retriever: FakeRetriever) -> ServiceConfig:
    with Store.open(settings.resolved_store_path) as store:
        save_goldset(store, make_goldset())
    return configure(
        {
            "name": "nightly",
            "kind": "goldset_replay",
            "goldset": "gs",
            "http_retriever": retriever.url,
            "k": 10,
        }
    )


def test_a_goldset_replay_job_leaves_the_store_to_others_during_its_replay(
    settings: Settings, retriever: FakeRetriever
) -> None:
    """A nightly replay held the store for its whole run: the dashboard showed cached
    figures, `evalkit runs list` and OTLP ingest waited, and the service's own alerts
    reached their sinks up to an hour late behind it. It now replays without the store and
    records its run afterwards in one short stretch, as `evalkit run` does."""
    path = settings.resolved_store_path
    runner = runner_for(nightly_replay(settings, retriever), settings)
    retriever.mode = "hold"
    ended: list[Any] = []
    job = threading.Thread(target=lambda: ended.append(runner.run("nightly")))
    job.start()
    try:
        wait_until(lambda: retriever.hits > 0, what="the job to be mid-replay")
        outbox = StoreAccess(path, wait=0.5, program="evalkit serve")
        with outbox.first("outbox: recording a delivery") as store:
            (running,) = list_job_runs(store, job="nightly")
        listed = subprocess.run(
            [sys.executable, "-m", "evalkit", "runs", "list", "--format", "json"],
            env={**os.environ, "EVALKIT_STORE_WAIT": "0.5"},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert job.is_alive(), "the job must still be replaying"
    finally:
        retriever.release.set()
        job.join(timeout=120)
    assert (running.status, running.run_ids) == ("running", ())
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == []
    (finished,) = ended
    assert finished.status == "succeeded"
    with Store.open(path, read_only=True) as store:
        (run,) = list_runs(store, goldset="gs")
        (job_run,) = list_job_runs(store, job="nightly")
    assert (run.status, run.n_queries, run.spec.label) == ("complete", 30, "nightly")
    assert run.aggregates["precision@10"] == pytest.approx(0.3)
    assert job_run.run_ids == (run.run_id,)
    assert finished.summary["run_id"] == run.run_id


def test_a_goldset_replay_job_run_lists_its_run_from_when_the_run_is_recorded(
    settings: Settings, retriever: FakeRetriever, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A job run that never gets to record its end (its process killed with kill -9 right
    after the run was recorded) still lists the run: the link is written with the run's
    row, not when the job run ends."""

    def killed(*args: object, **kwargs: object) -> None:
        raise StoreError("the process stopped here")

    runner = runner_for(nightly_replay(settings, retriever), settings)
    monkeypatch.setattr("evalkit.scheduler.runner.finish_job_run", killed)
    assert runner.run("nightly") is not None
    with Store.open(settings.resolved_store_path, read_only=True) as store:
        (run,) = list_runs(store, goldset="gs")
        (job_run,) = list_job_runs(store, job="nightly")
    assert run.status == "complete"
    assert (job_run.status, job_run.run_ids) == ("running", (run.run_id,))


HOLDER = (
    "import sys\n"
    "from pathlib import Path\n"
    "from evalkit.store.access import FileLock\n"
    "lock = FileLock(Path(sys.argv[1]), program='holder')\n"
    "assert lock.acquire(purpose='a long write', wait=60)\n"
    "print('holding', flush=True)\n"
    "sys.stdin.read()\n"
)


@pytest.mark.slow
def test_a_goldset_replay_that_cannot_record_its_run_fails_its_job_run_saying_so(
    settings: Settings, retriever: FakeRetriever
) -> None:
    """The store busy past the wait once the replay is done: the job run fails, naming the
    run that is not stored and the wait, rather than the replay vanishing."""
    path = settings.resolved_store_path
    config = nightly_replay(settings, retriever)
    holder: list[subprocess.Popen[str]] = []
    told: list[str] = []

    def waiting(message: str) -> None:
        told.append(message)
        if len(told) == 2:  # the job run's own recording: let it through
            holder[0].communicate(timeout=60)

    access = StoreAccess(path, wait=2, program="test", on_wait=waiting)
    runner = JobRunner(config, settings=settings, session=access)
    retriever.mode = "hold"
    ended: list[Any] = []
    job = threading.Thread(target=lambda: ended.append(runner.run("nightly")))
    job.start()
    try:
        wait_until(lambda: retriever.hits > 0, what="the job to be mid-replay")
        holder.append(
            subprocess.Popen(
                [sys.executable, "-c", HOLDER, str(store_sibling(path, ".writer.lock"))],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
        )
        assert holder[0].stdout is not None
        assert holder[0].stdout.readline() == "holding\n"
    finally:
        retriever.release.set()
        job.join(timeout=120)
        if holder[0].poll() is None:
            holder[0].kill()
    (failed,) = ended
    assert failed.status == "failed"
    error = str(failed.error)
    assert error.startswith("run ")
    assert " was replayed but its results could not be recorded, and are not stored: " in error
    assert f"waited 2 s for the store {path}" in error
    assert f"held now by pid {holder[0].pid} (holder: a long write)" in error
    with Store.open(path, read_only=True) as store:
        (job_run,) = list_job_runs(store, job="nightly")
        assert list_runs(store, goldset="gs") == []
    assert (job_run.status, job_run.error, job_run.run_ids) == ("failed", failed.error, ())


def test_a_job_that_cannot_get_the_store_is_recorded_later(settings: Settings) -> None:
    config = configure({"name": "ok", "kind": "command", "command": python("pass")})
    path = settings.resolved_store_path
    impatient = JobRunner(
        config,
        settings=settings,
        session=StoreAccess(path, wait=0.3, program="test"),
    )
    blocker = FileLock(path.with_name(path.name + ".writer.lock"), program="someone else")
    assert blocker.acquire(purpose="a long write", wait=0)
    try:
        assert impatient.run("ok") is None
    finally:
        blocker.release()
    later = impatient.run("ok")
    assert later is not None
    assert later.status == "succeeded"
    with Store.open(path, read_only=True) as store:
        runs = list_job_runs(store, job="ok")
    assert [run.status for run in runs] == ["succeeded", "failed"]
    assert str(runs[1].error).startswith("waited 0.3 s for the store ")
    # The blocker holds the lock in this process, the runner's: named by its work.
    assert "held now by this process's 'a long write' (someone else)" in str(runs[1].error)


def window(store: Store, run_id: str, day: str, vectors: np.ndarray, fingerprint: str) -> None:
    summary = day_window_summary(
        run_id,
        day,
        n_replayed=len(vectors),
        embedding_model="m",
        embedding_dimension=vectors.shape[1],
        embedding_fingerprint=fingerprint,
        n_embeddings=len(vectors),
    )
    save_traffic_replay(
        store,
        summary=summary,
        per_query=pd.DataFrame(),
        embedding_ids=[f"{run_id}-{i}" for i in range(len(vectors))],
        embeddings=vectors.astype(np.float32),
    )


def test_drift_check_job_tests_the_newest_window_against_the_previous(
    settings: Settings,
) -> None:
    rng = np.random.default_rng(7)
    with Store.open(settings.resolved_store_path) as store:
        window(store, "r1", "2026-11-18", rng.normal(size=(120, 8)), "fp-a")
        window(store, "r2", "2026-11-19", rng.normal(size=(120, 8)), "fp-a")
    config = configure(
        {
            "name": "drift",
            "kind": "drift_check",
            "method": "mean_cosine",
            "options": {"n_permutations": 200},
        },
    )
    runner = runner_for(config, settings)
    same = runner.run("drift")
    assert same is not None
    assert same.summary["finding"] == "ok"
    with Store.open(settings.resolved_store_path) as store:
        window(store, "r3", "2026-11-20", rng.normal(loc=1.5, size=(120, 8)), "fp-a")
    shifted = runner.run("drift")
    assert shifted is not None
    assert shifted.summary["finding"] == "drift"
    with Store.open(settings.resolved_store_path) as store:
        window(store, "r4", "2026-11-21", rng.normal(size=(120, 8)), "fp-b")
    mismatch = runner.run("drift")
    assert mismatch is not None
    assert mismatch.summary["finding"] == "model_mismatch"
    with Store.open(settings.resolved_store_path, read_only=True) as store:
        checks = list_drift_checks(store, stream="queries")
    assert [(c.reference, c.current, c.finding) for c in checks] == [
        ("2026-11-20", "2026-11-21", "model_mismatch"),
        ("2026-11-19", "2026-11-20", "drift"),
        ("2026-11-18", "2026-11-19", "ok"),
    ]
    assert checks[1].p_value is not None
    assert checks[1].p_value <= 0.05


def test_drift_check_job_with_the_newest_window_as_reference_stores_no_check(
    settings: Settings,
) -> None:
    rng = np.random.default_rng(7)
    with Store.open(settings.resolved_store_path) as store:
        window(store, "r1", "2026-11-18", rng.normal(size=(120, 8)), "fp-a")
        window(store, "r2", "2026-11-19", rng.normal(loc=1.5, size=(120, 8)), "fp-a")
    config = configure(
        {"name": "drift", "kind": "drift_check", "method": "mean_cosine"},
        {
            "name": "pinned",
            "kind": "drift_check",
            "reference_window": "2026-11-19",
            "method": "mean_cosine",
        },
    )
    runner = runner_for(config, settings)
    shifted = runner.run("drift")
    assert shifted is not None
    assert shifted.summary["finding"] == "drift"
    pinned = runner.run("pinned")
    assert pinned is not None
    assert pinned.status == "succeeded"
    assert pinned.summary == {
        "note": "the reference window 2026-11-19 is the newest replayed window: no newer "
        "window to test against it yet"
    }
    # The window was not tested against itself: the drift found stays the newest check.
    with Store.open(settings.resolved_store_path, read_only=True) as store:
        checks = list_drift_checks(store, stream="queries")
    assert [(c.reference, c.current, c.finding) for c in checks] == [
        ("2026-11-18", "2026-11-19", "drift")
    ]


def test_retention_prunes_per_query_rows_and_keeps_aggregates_and_baselines(
    settings: Settings, retriever: FakeRetriever
) -> None:
    from evalkit.answers import AnswerRecord
    from evalkit.answers.records import AnswerScores
    from evalkit.pipeline import evaluate_goldset
    from evalkit.records.requests import GoldsetRunRequest
    from evalkit.retrievers.http import HttpRetriever
    from evalkit.store import utc_now
    from evalkit.store.answers import save_answer_scores

    path = settings.resolved_store_path
    with Store.open(path) as store, HttpRetriever(retriever.url) as http:
        goldset = make_goldset(6)
        runs = [
            evaluate_goldset(store, goldset, http, GoldsetRunRequest(k=10)).run.run_id
            for _ in range(4)
        ]
        store.execute("UPDATE runs SET started_at = started_at - INTERVAL 100 DAY")
        for run_id in runs:
            now = utc_now()
            save_answer_scores(
                store,
                AnswerScores((), (), 1, now, now, run_id=run_id),
                records=[AnswerRecord(id="q0", question="q", answer="a", contexts=("c",))],
            )
    config = configure(
        {"name": "prune", "kind": "retention", "keep_days": "90d", "keep_latest": 1},
        alerts={
            "rules": [
                {
                    "name": "gate",
                    "kind": "precision_regression",
                    "goldset": "gs",
                    "baseline_run": runs[0],
                }
            ]
        },
    )
    result = runner_for(config, settings).run("prune")
    assert result is not None
    assert result.status == "succeeded"
    assert result.summary["runs_pruned"] == 2
    with Store.open(path, read_only=True) as store:
        for run_id, whole in zip(runs, [True, False, False, True], strict=True):
            assert (len(run_results(store, run_id)) > 0) is whole, run_id
            assert get_run(store, run_id).aggregates["precision@10"] == pytest.approx(0.3)
        pruned = store.fetch("SELECT run_id FROM pruned_runs ORDER BY run_id")
        answered = store.fetch(
            "SELECT s.run_id FROM answer_items i JOIN answer_scorings s USING (scoring_id)"
            " ORDER BY s.run_id"
        )
    assert [row[0] for row in pruned] == sorted(runs[1:3])
    assert [row[0] for row in answered] == sorted([runs[0], runs[3]])
    again = runner_for(config, settings).run("prune")
    assert again is not None
    assert again.summary["runs_pruned"] == 0


def test_retention_prunes_in_batches_and_records_each_run_s_own_rows(
    settings: Settings, retriever: FakeRetriever, monkeypatch: pytest.MonkeyPatch
) -> None:
    from evalkit.pipeline import evaluate_goldset
    from evalkit.records.requests import GoldsetRunRequest
    from evalkit.retrievers.http import HttpRetriever
    from evalkit.store import retention

    monkeypatch.setattr(retention, "_PRUNED_PER_TRANSACTION", 2)
    path = settings.resolved_store_path
    with Store.open(path) as store, HttpRetriever(retriever.url) as http:
        runs = [
            evaluate_goldset(store, make_goldset(n), http, GoldsetRunRequest(k=10)).run.run_id
            for n in (3, 4, 5, 6, 7)
        ]
        held = {
            run_id: sum(
                int(store.fetch(f"SELECT count(*) FROM {table} WHERE run_id = ?", [run_id])[0][0])
                for table in ("run_results", "run_queries", "query_metrics")
            )
            for run_id in runs
        }
        deleted = retention.prune_run_details(store, [*runs[:4], runs[0]])
        recorded = dict(store.fetch("SELECT run_id, rows_deleted FROM pruned_runs"))
        left = store.fetch("SELECT DISTINCT run_id FROM run_results")
    assert deleted == sum(held[run_id] for run_id in runs[:4])
    assert recorded == {run_id: held[run_id] for run_id in runs[:4]}
    assert len(set(held.values())) == len(runs)
    assert left == [(runs[4],)]


def test_retention_keeps_the_baseline_drift_precision_compares_with_by_default(
    settings: Settings, retriever: FakeRetriever
) -> None:
    """With no baseline pinned by a rule, retention pruned each series' oldest run, the
    default baseline of `evalkit drift precision`: the command then failed for the whole
    goldset, saying the runs "share no query id", as did `compare` with a pruned run."""
    from evalkit.drift.watch import watch_precision
    from evalkit.errors import ConfigError
    from evalkit.pipeline import evaluate_goldset
    from evalkit.records.requests import GoldsetRunRequest
    from evalkit.retrievers.http import HttpRetriever
    from evalkit.stats import compare_stored_runs
    from evalkit.store.retention import prune_run_details

    path = settings.resolved_store_path
    with Store.open(path) as store, HttpRetriever(retriever.url) as http:
        runs = [
            evaluate_goldset(store, make_goldset(6), http, GoldsetRunRequest(k=10)).run.run_id
            for _ in range(4)
        ]
        store.execute("UPDATE runs SET started_at = started_at - INTERVAL 100 DAY")
    config = configure({"name": "prune", "kind": "retention", "keep_latest": 1})
    result = runner_for(config, settings).run("prune")
    assert result is not None
    assert result.summary["runs_pruned"] == 2
    with Store.open(path) as store:
        kept = [run_id for run_id in runs if len(run_results(store, run_id))]
        assert kept == [runs[0], runs[3]]
        [check] = watch_precision(store, "gs", save=False).checks
        assert check.baseline_run == runs[0]
        assert check.paired is not None
        with pytest.raises(ConfigError, match=rf"run {runs[1]} has no per-query results any"):
            compare_stored_runs(store, runs[1], runs[3], ["precision@10"])
        # A store pruned before retention kept it: the oldest run that kept its results.
        prune_run_details(store, [runs[0]])
        [check] = watch_precision(store, "gs", save=False).checks
        assert check.baseline_run == runs[3]
        assert check.paired is None
        assert "the only run of the series that still has" in check.details["paired_skipped"]
        # A retriever no longer run loses its newest run's results too: its series stays,
        # without a paired test, and the other retrievers' checks are made.
        prune_run_details(store, [runs[3]])
        [check] = watch_precision(store, "gs", save=False).checks
        assert check.paired is None
        assert f"latest run {runs[3]}" in check.details["paired_skipped"]


def test_retention_deletes_traffic_older_than_traffic_keep_days(
    settings: Settings, tmp_path: Path
) -> None:
    """Logged queries, sampled copies of whole old windows and generation spans before the
    cutoff go; newer traffic, the samples' rows and a window straddling the cutoff stay."""
    import json
    from datetime import timedelta

    from evalkit.store import utc_now
    from evalkit.traffic import SampleSpec, ingest_paths, parse_window, sample_window

    now = utc_now()
    old_day = (now - timedelta(days=40)).date()
    straddling = now - timedelta(days=30)
    stamps = {
        "old": datetime(old_day.year, old_day.month, old_day.day, 12),
        "straddling-before": straddling - timedelta(hours=1),
        "straddling-after": straddling + timedelta(hours=1),
        "new": now - timedelta(days=1),
    }
    log = tmp_path / "queries.jsonl"
    log.write_text(
        "".join(
            json.dumps({"query_id": name, "timestamp": f"{ts.isoformat()}Z", "text": name}) + "\n"
            for name, ts in stamps.items()
        )
    )
    path = settings.resolved_store_path
    with Store.open(path) as store:
        assert ingest_paths(store, [log]).malformed == 0
        old_sample = sample_window(
            store, SampleSpec(window=parse_window(old_day.isoformat()), n=1, seed=1)
        ).sample_id
        start = stamps["straddling-before"]
        window = parse_window(
            f"{start:%Y-%m-%dT%H:%M:%S}/{start + timedelta(hours=2):%Y-%m-%dT%H:%M:%S}"
        )
        kept_sample = sample_window(store, SampleSpec(window=window, n=2, seed=1)).sample_id
        store.execute(
            "INSERT INTO traffic_generations VALUES ('t', 's', ?, 'old answer', NULL, 'otlp', ?)",
            [stamps["old"], now],
        )
    config = configure({"name": "prune", "kind": "retention", "traffic_keep_days": "30d"})
    result = runner_for(config, settings).run("prune")
    assert result is not None
    assert result.status == "succeeded", result.error
    assert result.summary["traffic_records_deleted"] == 2
    assert result.summary["traffic_sample_queries_deleted"] == 1
    assert result.summary["traffic_generations_deleted"] == 1
    with Store.open(path, read_only=True) as store:
        left = store.fetch("SELECT query_id FROM traffic_records ORDER BY query_id")
        samples = store.fetch("SELECT sample_id FROM traffic_samples ORDER BY sample_id")
        copies = store.fetch("SELECT DISTINCT sample_id FROM traffic_sample_queries")
        generations = store.fetch("SELECT count(*) FROM traffic_generations")
    assert [row[0] for row in left] == ["new", "straddling-after"]
    assert sorted(row[0] for row in samples) == sorted([old_sample, kept_sample])
    assert [row[0] for row in copies] == [kept_sample]
    assert generations == [(0,)]
    unset = runner_for(configure({"name": "prune", "kind": "retention"}), settings).run("prune")
    assert unset is not None
    assert "traffic_records_deleted" not in unset.summary


def test_retention_removes_what_killed_drills_left_and_keeps_finished_drills_reports(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    from test_retrievers_model_check import HashEmbedder

    from evalkit.drill import reports, scratch
    from evalkit.drill.reports import REPORT_FILE, start_drill_folder
    from evalkit.records import Document
    from evalkit.retrievers import index_corpus
    from evalkit.retrievers.chroma_client import close_client, open_chroma_client

    running = start_drill_folder(settings.home, "running")  # owned by this live process
    killed = subprocess.Popen([sys.executable, "-c", "pass"])
    killed.wait(timeout=30)
    with monkeypatch.context() as patched:
        for module in (reports, scratch):
            patched.setattr(module, "owner", lambda: f"{socket.gethostname()}:{killed.pid}")
        client = open_chroma_client(path=settings.resolved_chroma_path)
        index_corpus(client, [Document("d1", "one"), Document("d2", "two")], HashEmbedder(),
                     collection_name="live-kb")  # fmt: skip
        left = scratch.copy_collection(client, "live-kb", "killed").name
        close_client(client)
        finished = start_drill_folder(settings.home, "finished")
        (finished / REPORT_FILE).write_text("{}")
        half_done = start_drill_folder(settings.home, "killed")

    config = configure({"name": "prune", "kind": "retention"})
    result = runner_for(config, settings).run("prune")
    assert result is not None
    assert result.status == "succeeded", result.error
    assert result.summary["drill_leftovers_removed"] == [str(half_done), left]
    assert sorted(p.name for p in reports.drills_folder(settings.home).iterdir()) == [
        "finished",
        "running",
    ]
    assert running.is_dir()
    client = open_chroma_client(path=settings.resolved_chroma_path)
    assert [c.name for c in client.list_collections()] == ["live-kb"]
    close_client(client)

    # A Chroma server that is down: the pruning stands and the job says why it did not sweep.
    unreachable = settings.model_copy(update={"chroma_url": "http://127.0.0.1:9"})
    result = runner_for(config, unreachable).run("prune")
    assert result is not None
    assert result.status == "succeeded", result.error
    assert "cannot sweep drills' scratch copies: Chroma: " in result.summary["drill_sweep_error"]


def test_metric_drift_check_job(settings: Settings) -> None:
    spec = RunSpec(
        kind="goldset",
        retriever_kind="http",
        k=10,
        measures=("precision@10",),
        evalkit_version="t",
        goldset_name="gs",
        n_queries=30,
    )
    with Store.open(settings.resolved_store_path) as store:
        for value in [0.30, 0.31, 0.29, 0.30, 0.30, 0.31, 0.20, 0.19, 0.20, 0.21]:
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
    config = configure(
        {
            "name": "series",
            "kind": "drift_check",
            "stream": "metric",
            "goldset": "gs",
            "method": "cusum",
            "warmup": 6,
        },
    )
    result = runner_for(config, settings).run("series")
    assert result is not None
    assert result.summary["finding"] == "drift"
    # A retriever with no run of the goldset (misspelt) is named, not taken for a warm-up.
    misspelt = configure(
        {
            "name": "series",
            "kind": "drift_check",
            "stream": "metric",
            "goldset": "gs",
            "retriever": "htp",
        },
    )
    missed = runner_for(misspelt, settings).run("series")
    assert missed is not None
    assert missed.summary == {
        "note": "no complete run of goldset 'gs' by 'htp'; its runs are by http (as `evalkit "
        "runs list` names them)"
    }
    # Without a method the metric stream's own default runs, as `drift precision`'s does.
    default = configure(
        {"name": "series", "kind": "drift_check", "stream": "metric", "goldset": "gs"}
    )
    assert default.jobs[0].params.method == "page_hinkley"
    auto = configure(
        {
            "name": "series",
            "kind": "drift_check",
            "stream": "metric",
            "goldset": "gs",
            "method": "auto",
        }
    )
    assert auto.jobs[0].params.method == "page_hinkley"


def test_a_job_run_its_killed_process_left_running_is_interrupted_by_the_next_job(
    settings: Settings,
) -> None:
    """`jobs run --local` killed with -9 left its job run `running` for good: only `evalkit
    serve`'s start cleaned them, and the job_failure rule never saw it."""
    import socket
    import subprocess

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    with Store.open(settings.resolved_store_path) as store:
        left = start_job_run(
            store,
            job="prune",
            kind="retention",
            trigger="manual",
            scheduled_for=None,
            pid=gone.pid,
            host=socket.gethostname(),
        )
    config = configure({"name": "prune", "kind": "retention"})
    assert runner_for(config, settings).run("prune") is not None
    with Store.open(settings.resolved_store_path) as store:
        runs = {run.job_run_id: run for run in list_job_runs(store)}
    assert runs[left.job_run_id].status == "interrupted"
    assert runs[left.job_run_id].error == (
        "the process running it stopped before it finished (found by job prune)"
    )
    assert [run.status for run in runs.values()].count("succeeded") == 1


class Terminated(BaseException):
    """As the command line's SIGTERM exception: a BaseException named Terminated."""


@pytest.mark.parametrize(
    ("raised", "message", "error"),
    [
        (KeyboardInterrupt, "", "interrupted by the user (Ctrl-C)"),
        (Terminated, "SIGTERM", "interrupted: SIGTERM"),
        # DuckDB's form of either signal arriving while the job's query ran.
        (RuntimeError, "Query interrupted", "interrupted (Ctrl-C or SIGTERM)"),
    ],
)
def test_a_job_stopped_by_a_signal_is_recorded_interrupted_and_the_stop_goes_on(
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    raised: type[BaseException],
    message: str,
    error: str,
) -> None:
    """`evalkit jobs run NAME --local` under SIGTERM left its job run `running` for good,
    and Ctrl-C during retention's long DELETE recorded it `failed` with a traceback."""

    def stopped(context: object, params: object) -> None:
        # A new exception each time: one shared by the parameters would keep its traceback,
        # and the store its frames held, alive to the end of the session.
        raise raised(message)

    monkeypatch.setitem(JOB_KINDS, "retention", replace(JOB_KINDS["retention"], run=stopped))
    with pytest.raises(raised):
        runner_for(configure({"name": "prune", "kind": "retention"}), settings).run("prune")
    with Store.open(settings.resolved_store_path) as store:
        (job_run,) = list_job_runs(store)
    assert (job_run.status, job_run.error) == ("interrupted", error)


class _TerminatedMidReplay:
    """A retriever whose replay meets SIGTERM (the command line's Terminated) at once."""

    def retrieve(self, queries: Any, k: int) -> Any:
        raise Terminated("SIGTERM")

    def describe(self) -> dict[str, str]:
        return {"kind": "terminated"}

    def index_fingerprint(self) -> None:
        return None

    def model_fingerprint(self) -> None:
        return None


def test_sigterm_mid_replay_records_the_job_s_run_failed_as_evalkit_run_does(
    settings: Settings, retriever: FakeRetriever, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`evalkit jobs run NAME --local` under SIGTERM, the replay running without the store:
    the run is recorded failed in a short stretch, as `evalkit run`'s is, and listed by
    the interrupted job run; the stop goes on."""
    params = JOB_KINDS["goldset_replay"].params
    monkeypatch.setattr(params, "build", lambda self, settings: _TerminatedMidReplay())
    runner = runner_for(nightly_replay(settings, retriever), settings)
    with pytest.raises(Terminated):
        runner.run("nightly")
    with Store.open(settings.resolved_store_path, read_only=True) as store:
        (run,) = list_runs(store, goldset="gs")
        (job_run,) = list_job_runs(store, job="nightly")
    assert (run.status, run.error) == ("failed", "interrupted: SIGTERM")
    assert (job_run.status, job_run.error) == ("interrupted", "interrupted: SIGTERM")
    assert job_run.run_ids == (run.run_id,)


def test_sigterm_mid_replay_records_the_traffic_job_s_run_failed_as_traffic_replay_does(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The traffic job replays without the store too: SIGTERM mid-replay records its run
    failed in a short stretch, listed by the interrupted job run, with no window summary;
    the traffic it ingested and the sample it drew stay."""
    log = tmp_path / "traffic.jsonl"
    log.write_text(
        "".join(
            json.dumps({"query_id": f"t{i}", "timestamp": "2026-11-21T08:00:00Z", "text": f"q{i}"})
            + "\n"
            for i in range(3)
        ),
        encoding="utf-8",
    )
    params = JOB_KINDS["traffic"].params
    monkeypatch.setattr(params, "build", lambda self, settings: _TerminatedMidReplay())
    job = {
        "name": "window",
        "kind": "traffic",
        "paths": [str(log)],
        "window": "2026-11-21",
        "n": 3,
        "http_retriever": "http://127.0.0.1:9/search",
        "embed_sample": 0,
        "answers": False,
    }
    runner = runner_for(configure(job), settings)
    with pytest.raises(Terminated):
        runner.run("window")
    with Store.open(settings.resolved_store_path, read_only=True) as store:
        (run,) = list_runs(store, kind="traffic")
        (job_run,) = list_job_runs(store, job="window")
        samples = store.fetch("SELECT count(*) FROM traffic_samples")
        summaries = store.fetch("SELECT count(*) FROM traffic_window_summaries")
    assert (run.status, run.error) == ("failed", "interrupted: SIGTERM")
    assert (job_run.status, job_run.error) == ("interrupted", "interrupted: SIGTERM")
    assert job_run.run_ids == (run.run_id,)
    assert (samples, summaries) == ([(1,)], [(0,)])


@pytest.mark.parametrize(
    ("jobs", "scheduler", "message"),
    [
        (
            [
                {
                    "name": "a",
                    "kind": "command",
                    "command": ["x"],
                    "cron": "* * * * *",
                    "interval": 60,
                }
            ],
            {},
            "[[jobs]] #1 'a': field '(table)': Value error, give cron or",
        ),
        (
            [{"name": "a", "kind": "command", "command": ["x"], "cron": "61 * * * *"}],
            {},
            "[[jobs]] #1 'a': field 'cron': Value error, cron '61 * * * *' does not parse",
        ),
        (
            # A command killed as soon as it started: the job could never succeed.
            [{"name": "a", "kind": "command", "command": ["x"], "timeout": 0}],
            {},
            "[[jobs]] #1 'a' (kind command): field 'timeout': Input should be greater than 0",
        ),
        (
            # Crontab takes February 30th and never runs it.
            [{"name": "a", "kind": "command", "command": ["x"], "cron": "0 2 30 2 *"}],
            {},
            "[[jobs]] #1 'a': field 'cron': Value error, cron '0 2 30 2 *' never fires",
        ),
        (
            [{"name": "a", "kind": "command", "command": ["x"], "interval": 0.5}],
            {},
            "[[jobs]] #1 'a': field 'interval': Value error, interval must be at least 1s",
        ),
        ([{"name": "a", "kind": "reindex"}], {}, "[[jobs]] #1 'a': field 'kind': unknown kind"),
        (
            [{"name": "a", "kind": "drift_check", "method": "mmdd"}],
            {},
            "[[jobs]] #1 'a' (kind drift_check): field 'method': Value error, unknown drift "
            "method 'mmdd'; choose one of: auto, ",
        ),
        (
            [
                {
                    "name": "a",
                    "kind": "drift_check",
                    "stream": "metric",
                    "goldset": "g",
                    "method": "mmd",
                }
            ],
            {},
            "field 'method': Value error, stream 'metric' uses method page_hinkley or cusum",
        ),
        (
            [{"name": "a", "kind": "audit", "collection": "support", "checks": ["nope", "spans"]}],
            {},
            "[[jobs]] #1 'a' (kind audit): field 'checks': Value error, unknown audit checks "
            "['nope']",
        ),
        ([{"name": "a", "kind": "goldset_replay"}], {}, "field 'goldset': Field required"),
        (
            [{"name": "a", "kind": "command", "command": ["x"], "intervall": 5}],
            {},
            "field 'intervall'",
        ),
        (
            [{"name": name, "kind": "command", "command": ["x"]} for name in ("a", "b", "a")],
            {},
            "[[jobs]] #1 and #3: field 'name': the name 'a' is used twice",
        ),
        ([], {"timezone": "Mars/Olympus"}, "[scheduler]: field 'timezone'"),
        ([], {"plugins": ["no_such_module_xyz"]}, "field 'plugins': cannot import"),
        ([{"name": "bad name", "kind": "command", "command": ["x"]}], {}, "field 'name'"),
    ],
)
def test_job_configuration_errors(
    jobs: list[dict[str, Any]], scheduler: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        service_config(
            parse_settings({"jobs": jobs, "scheduler": scheduler}, Path("/srv/evalkit.toml"))
        )
    assert str(raised.value).startswith("/srv/evalkit.toml: ")
    assert message in str(raised.value)


def test_measures_of_jobs_are_read_as_their_canonical_names() -> None:
    """The names runs and checks store, so a job's series is found whatever the spelling."""
    config = configure(
        {
            "name": "nightly",
            "kind": "goldset_replay",
            "goldset": "demo",
            "collection": "demo",
            "measures": ["P@10", "nDCG_cut_10", "precision@10"],
        },
        {"name": "watch", "kind": "drift_check", "stream": "metric", "goldset": "demo"}
        | {"measure": "P_5", "reference_window": " 2026-11-21 "},
    )
    assert config.job("nightly").params.measures == ["precision@10", "ndcg@10"]  # type: ignore[attr-defined]
    watch = config.job("watch").params
    assert (watch.measure, watch.reference_window) == ("precision@5", "2026-11-21")  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ('raise RuntimeError("plugin exploded")', "RuntimeError('plugin exploded')"),
        ("x = = 1", "SyntaxError"),
    ],
)
def test_a_plugin_beside_evalkit_toml_is_imported_and_its_failure_named(
    tmp_path: Path, source: str, reason: str
) -> None:
    """Found where a `module:factory` retriever is; a failing one is a config error."""
    config = tmp_path / "evalkit.toml"
    config.write_text("", encoding="utf-8")
    module = f"plugin_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{module}_ok.py").write_text("LOADED = True\n", encoding="utf-8")
    (tmp_path / f"{module}_bad.py").write_text(source + "\n", encoding="utf-8")
    try:
        service_config(parse_settings({"scheduler": {"plugins": [f"{module}_ok"]}}, config))
        assert sys.modules[f"{module}_ok"].LOADED
        with pytest.raises(ConfigError) as raised:
            service_config(parse_settings({"scheduler": {"plugins": [f"{module}_bad"]}}, config))
        assert f"field 'plugins': cannot import '{module}_bad': " in str(raised.value)
        assert reason in str(raised.value)
    finally:
        for name in (f"{module}_ok", f"{module}_bad"):
            sys.modules.pop(name, None)
        sys.path[:] = [entry for entry in sys.path if entry != str(tmp_path.resolve())]


@pytest.mark.parametrize(
    ("weekdays", "fires"),
    [
        # After Thursday 2026-11-26 00:00 UTC: the next fire times, day of the month.
        ("0", [29, 6, 13]),  # Sunday, as crontab numbers it (APScheduler's 0 is Monday)
        ("7", [29, 6, 13]),  # Sunday too
        ("sun", [29, 6, 13]),
        ("1-5", [26, 27, 30, 1, 2, 3]),  # Monday to Friday
        ("mon-fri", [26, 27, 30, 1, 2, 3]),
        ("*/2", [26, 28, 29, 1, 3, 5]),  # sun, tue, thu, sat
        ("5-7", [27, 28, 29, 4]),  # fri, sat, sun
        ("1,3", [30, 2, 7]),
        ("sat-sun", [28, 29, 5]),
        ("*", [26, 27, 28]),
    ],
)
def test_cron_days_of_week_are_crontab_s(weekdays: str, fires: list[int]) -> None:
    """docs/scheduler.md promises crontab syntax: 0 and 7 are Sunday, 1-5 Monday to Friday."""
    from datetime import UTC

    config = configure(
        {"name": "weekly", "kind": "command", "command": ["x"], "cron": f"0 4 * * {weekdays}"}
    )
    job = config.jobs[0]
    now = datetime(2026, 11, 26, 0, 0, tzinfo=UTC)
    seen = []
    for _ in fires:
        fire = job.next_cron_time("UTC", now)
        assert fire is not None
        assert (fire.hour, fire.minute) == (4, 0)
        seen.append(fire.day)
        now = fire + timedelta(seconds=1)
    assert seen == fires
    # The service schedules with the same trigger as the listing shows.
    trigger = job.trigger("UTC")
    first = trigger.get_next_fire_time(None, datetime(2026, 11, 26, tzinfo=UTC))
    assert first.day == fires[0]


@pytest.mark.parametrize(
    ("cron", "zone", "after", "fires"),
    [
        # New York leaves summer time on 2026-11-01 at 02:00 EDT: 01:00-01:59 happens twice.
        ("30 1 * * *", "America/New_York", (10, 31, 12), ["11-01 05:30", "11-02 06:30"]),
        (
            "0 * * * *",  # a wildcard hour runs by real time, in both passes
            "America/New_York",
            (11, 1, 3, 30),
            ["11-01 04:00", "11-01 05:00", "11-01 06:00", "11-01 07:00"],
        ),
        (
            "*/30 1 * * *",  # a wildcard minute too
            "America/New_York",
            (10, 31, 12),
            ["11-01 05:00", "11-01 05:30", "11-01 06:00", "11-01 06:30", "11-02 06:00"],
        ),
        # Lord Howe Island goes back half an hour on 2026-04-05 at 02:00.
        ("45 1 * * *", "Australia/Lord_Howe", (4, 4), ["04-04 14:45", "04-05 15:15"]),
    ],
)
def test_a_job_at_a_fixed_time_runs_once_on_the_night_clocks_go_back(
    cron: str, zone: str, after: tuple[int, ...], fires: list[str]
) -> None:
    """As crontab: APScheduler alone fired a job at 01:30 in both passes of the repeated
    hour, a second nightly replay (and its alerts) on that day."""
    from datetime import UTC

    config = configure({"name": "a", "kind": "command", "command": ["x"], "cron": cron})
    trigger = config.jobs[0].trigger(zone)
    seen, previous, now = [], None, datetime(2026, *after, tzinfo=UTC)
    for _ in fires:
        fire = trigger.get_next_fire_time(previous, now)
        seen.append(f"{fire.astimezone(UTC):%m-%d %H:%M}")
        previous = now = fire
    assert seen == fires
    # Nor does a service started after the first pass catch the second up as missed.
    if cron == "30 1 * * *":
        missed = config.jobs[0].missed_time(
            zone,
            last=datetime(2026, 11, 1, 5, 30, tzinfo=UTC),
            now=datetime(2026, 11, 1, 6, 40, tzinfo=UTC),
            grace=3600,
        )
        assert missed is None


@pytest.mark.parametrize(
    ("schedule", "last", "now", "grace", "missed"),
    [
        # Every 15 minutes from 10:00: 10:45 was the last time due before 10:47.
        ({"interval": "15m"}, (11, 26, 10, 0), (11, 26, 10, 47), 300, (11, 26, 10, 45)),
        ({"interval": "15m"}, (11, 26, 10, 0), (11, 26, 10, 47), 60, None),
        ({"interval": "15m"}, (11, 26, 10, 0), (11, 26, 10, 14), 3600, None),
        # Sundays at 04:00 (Sunday 2026-11-29): a week's grace looks back past two days.
        ({"cron": "0 4 * * 0"}, (11, 22, 4, 0), (11, 29, 4, 3), 300, (11, 29, 4, 0)),
        ({"cron": "0 4 * * 0"}, (11, 22, 4, 0), (12, 1, 9, 0), 7 * 86400, (11, 29, 4, 0)),
        ({"cron": "0 4 * * 0"}, (11, 29, 4, 0), (12, 1, 9, 0), 7 * 86400, None),
        ({"cron": "0 4 * * 0"}, (11, 22, 4, 0), (12, 1, 9, 0), 86400, None),
        ({}, (11, 22, 4, 0), (12, 1, 9, 0), 86400, None),
    ],
)
def test_the_time_a_job_was_missed_is_the_latest_due_within_the_grace(
    schedule: dict[str, Any],
    last: tuple[int, ...],
    now: tuple[int, ...],
    grace: float,
    missed: tuple[int, ...] | None,
) -> None:
    from datetime import UTC

    config = configure({"name": "a", "kind": "command", "command": ["x"], **schedule})
    found = config.jobs[0].missed_time(
        "UTC",
        last=datetime(2026, *last, tzinfo=UTC),
        now=datetime(2026, *now, tzinfo=UTC),
        grace=grace,
    )
    assert found == (datetime(2026, *missed, tzinfo=UTC) if missed else None)


@pytest.mark.parametrize("weekdays", ["8", "fri-mon", "*/0", "funday", "1-"])
def test_bad_cron_days_of_week_are_refused(weekdays: str) -> None:
    with pytest.raises(ConfigError, match="does not parse"):
        configure({"name": "a", "kind": "command", "command": ["x"], "cron": f"0 4 * * {weekdays}"})


@pytest.mark.parametrize("cron", ["30 2 30 2 *", "0 4 31 4,6,9,11 *", "0 4 31 2 mon"])
def test_a_cron_schedule_that_never_fires_is_refused(cron: str) -> None:
    """Cron itself takes the 30th of February and never runs the job, without a word."""
    said = f"field 'cron': Value error, cron '{cron}' never fires"
    with pytest.raises(ConfigError, match=re.escape(said)):
        configure({"name": "a", "kind": "command", "command": ["x"], "cron": cron})


@pytest.mark.parametrize("cron", ["0 4 29 2 *", "0 4 13 * fri", "0 4 31 * *"])
def test_a_cron_schedule_of_rare_days_is_taken(cron: str) -> None:
    (job,) = configure({"name": "a", "kind": "command", "command": ["x"], "cron": cron}).jobs
    assert job.next_cron_time("UTC", datetime.now(UTC)) is not None


def test_schedules_are_described_and_next_cron_times_computed() -> None:
    config = configure(
        {"name": "nightly", "kind": "command", "command": ["x"], "cron": "30 2 * * *"},
        {"name": "often", "kind": "command", "command": ["x"], "interval": "15m"},
        {"name": "manual", "kind": "command", "command": ["x"]},
    )
    assert [job.schedule for job in config.jobs] == ["cron 30 2 * * *", "every 15m", "on demand"]
    from datetime import UTC

    now = datetime(2026, 11, 21, 3, 0, tzinfo=UTC)
    assert config.jobs[0].next_cron_time("UTC", now) == datetime(2026, 11, 22, 2, 30, tzinfo=UTC)
    assert config.jobs[1].next_cron_time("UTC", now) is None
    with pytest.raises(ConfigError, match=r"no job named 'nope' \(configured: nightly, often"):
        config.job("nope")


def test_a_field_checked_by_a_stage_is_refused_with_the_stages_message() -> None:
    """``checked_by``: the check runs when the job's fields are read, None passes, the
    value is kept as given, and the stage's ConfigError is the field's ValueError."""
    from typing import Annotated

    from pydantic import ValidationError

    from evalkit.scheduler.job_kinds.base import JobParams, checked_by

    seen: list[str] = []

    def check(value: str) -> None:
        seen.append(value)
        if value == "bad":
            raise ConfigError("'bad' is not a window label")

    class Params(JobParams):
        window: Annotated[str | None, checked_by(check)] = None

    assert Params(window="2026-11-21").window == "2026-11-21"
    assert Params().window is None
    with pytest.raises(ValidationError, match=r"window\n  Value error, 'bad' is not a window"):
        Params(window="bad")
    assert seen == ["2026-11-21", "bad"]
