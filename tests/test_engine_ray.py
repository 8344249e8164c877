"""The Ray engine on a real local Ray instance (the session's ``ray_cluster``): the same
stored figures as the local engine, a killed actor that never yields a complete-looking
run with rows missing, and shard loading that is all or nothing and never twice."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from demo_index import DEPTH, demo_goldset, minilm
from loopback import JSONHandler, serving
from overlap_retriever import overlap_retriever
from test_answers_judge import FakeJudge, judge_settings

from evalkit import __version__
from evalkit.config import JudgeSettings, Settings
from evalkit.engines import RayEngine
from evalkit.errors import ConfigError, StoreError
from evalkit.extras import MissingExtraError
from evalkit.goldset.model import Goldset
from evalkit.pipeline import RunOutcome, evaluate_goldset
from evalkit.records import Judgment, Query
from evalkit.records.requests import GoldsetRunRequest
from evalkit.retrievers import ChromaRetriever
from evalkit.retrievers.factory import RetrieverOptions, build_retriever
from evalkit.store import RunSpec, Store
from evalkit.store.answers import list_scorings
from evalkit.store.runs import create_run, get_run, query_metrics, run_queries, run_results
from evalkit.store.shards import load_run_shards, loaded_shards

pytestmark = [
    pytest.mark.slow,
    # Ray's own: Ray Data counts the inputs before the streaming repartition splits the
    # query table into one block per batch, and its DataContext names deprecated fields.
    pytest.mark.filterwarnings("ignore:The minimum number of concurrent actors:UserWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.data.context"),
]

MEASURES = ["ndcg@10", "recall@10", "precision@10", "mrr@10", "map@100", "r_precision"]


def _settings(tmp_path: Path, **values: Any) -> Settings:
    return Settings(home=tmp_path / "home", http_retries=0, http_timeout=60, **values)


def _replay_both(store: Store, retriever: Any, engine: RayEngine) -> tuple[RunOutcome, RunOutcome]:
    local = evaluate_goldset(
        store,
        demo_goldset(),
        retriever,
        GoldsetRunRequest(k=DEPTH, measures=tuple(MEASURES), answers=False),
    )
    on_ray = evaluate_goldset(
        store,
        demo_goldset(),
        retriever,
        GoldsetRunRequest(k=DEPTH, measures=tuple(MEASURES), answers=False),
        engine=engine,
    )
    return local, on_ray


def _assert_same_figures(store: Store, local: RunOutcome, on_ray: RunOutcome) -> None:
    assert on_ray.run.status == local.run.status
    assert on_ray.run.n_failed == local.run.n_failed
    assert on_ray.run.n_evaluated == local.run.n_evaluated
    assert dict(on_ray.run.aggregates) == dict(local.run.aggregates)
    pd.testing.assert_frame_equal(
        query_metrics(store, on_ray.run.run_id), query_metrics(store, local.run.run_id)
    )
    pd.testing.assert_frame_equal(
        run_results(store, on_ray.run.run_id), run_results(store, local.run.run_id)
    )
    errors = ["query_id", "error", "n_results", "n_duplicates"]
    pd.testing.assert_frame_equal(
        run_queries(store, on_ray.run.run_id)[errors], run_queries(store, local.run.run_id)[errors]
    )


def test_embedded_chroma_on_ray_stores_the_local_figures(
    ray_cluster: str, demo_reference: Any, tmp_path: Path
) -> None:
    settings = _settings(tmp_path, chroma_path=demo_reference.chroma_path)
    engine = RayEngine(RetrieverOptions(collection="demo"), settings, actors=2, batch_size=32)
    with (
        ChromaRetriever.embedded(demo_reference.chroma_path, "demo", minilm()) as retriever,
        Store.open(tmp_path / "runs.duckdb") as store,
    ):
        local, on_ray = _replay_both(store, retriever, engine)
        _assert_same_figures(store, local, on_ray)
        assert on_ray.run.status == "complete"
        assert on_ray.run.aggregates["ndcg@10"] == demo_reference.ndcg10
        assert len(loaded_shards(store, on_ray.run.run_id)) == 5  # 129 queries, 32 a batch
    assert not engine.shard_dir(on_ray.run.run_id).exists()


def test_http_retriever_on_ray_stores_the_local_figures_and_failures(
    ray_cluster: str, tmp_path: Path
) -> None:
    failing = frozenset({"q003", "q077"})
    with (
        overlap_retriever(fail=failing) as url,
        Store.open(tmp_path / "runs.duckdb") as store,
    ):
        settings = _settings(tmp_path)
        options = RetrieverOptions(http_url=url)
        engine = RayEngine(options, settings, actors=2, batch_size=20)
        retriever = build_retriever(options, settings)
        local, on_ray = _replay_both(store, retriever, engine)
        _assert_same_figures(store, local, on_ray)
        assert on_ray.run.status == "partial"
        assert on_ray.run.n_failed == 2
        failed = run_queries(store, on_ray.run.run_id).dropna(subset=["error"])
        assert set(failed["query_id"]) == failing
        assert on_ray.run.aggregates["ndcg@10"] == pytest.approx(
            local.run.aggregates["ndcg@10"], abs=0
        )


def _actor_pids() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if b"_ReplayActor" in command:
                pids.append(int(entry.name))
    return pids


def test_an_actor_killed_mid_run_never_leaves_a_complete_run_with_rows_missing(
    ray_cluster: str, tmp_path: Path
) -> None:
    goldset = demo_goldset()
    # The Ray run's retriever answers slowly, so the kill lands mid-run; the local reference
    # run asks the same retriever without the delay (same answers, no 13 s of waiting).
    with (
        overlap_retriever(delay=0.1) as url,
        overlap_retriever() as undelayed_url,
        Store.open(tmp_path / "runs.duckdb") as store,
    ):
        settings = _settings(tmp_path, http_concurrency=1)
        options = RetrieverOptions(http_url=url)
        engine = RayEngine(
            options, settings, actors=2, batch_size=8, shard_root=tmp_path / "shards"
        )
        retriever = build_retriever(options, settings)
        local = evaluate_goldset(
            store,
            goldset,
            build_retriever(RetrieverOptions(http_url=undelayed_url), settings),
            GoldsetRunRequest(k=DEPTH, measures=tuple(MEASURES), answers=False),
        )
        finished: dict[str, Any] = {}

        def replay() -> None:
            try:
                finished["outcome"] = evaluate_goldset(
                    store,
                    goldset,
                    retriever,
                    GoldsetRunRequest(k=DEPTH, measures=tuple(MEASURES), answers=False),
                    engine=engine,
                )
            except BaseException as error:
                finished["error"] = error
                raise

        worker = threading.Thread(target=replay)
        worker.start()
        # However slow the machine is to start the actors, the run lasts until a shard is
        # written: the kill waits for that, not for a fixed time.
        while not list((tmp_path / "shards").glob("*/*.parquet")):
            assert worker.is_alive(), f"the run ended before a shard was seen: {finished}"
            time.sleep(0.05)
        victims = _actor_pids()
        assert victims, "no actor process found"
        # Ray starts workers at niceness 15, where beside busy processes they crawled.
        assert {os.getpriority(os.PRIO_PROCESS, pid) for pid in victims} == {
            os.getpriority(os.PRIO_PROCESS, 0)
        }
        os.kill(victims[0], signal.SIGKILL)
        worker.join(timeout=240)
        assert not worker.is_alive()
        run = finished["outcome"].run
        stored = run_queries(store, run.run_id)
        assert len(stored) == len(goldset.queries)
        if run.status == "complete":
            _assert_same_figures(store, local, finished["outcome"])
        else:
            assert run.status == "partial"
            lost = stored.dropna(subset=["error"])
            assert not lost.empty
            assert lost["error"].str.startswith("lost: ").all()
            assert run.n_failed == len(lost)


def _spec() -> RunSpec:
    return RunSpec(
        kind="queries",
        retriever_kind="http",
        k=2,
        measures=("ndcg@10",),
        evalkit_version=__version__,
    )


def _shard(path: Path, query_ids: list[str], value: float = 0.5) -> Path:
    n = len(query_ids)
    table = pa.table(
        {
            "position": pa.array([int(query_id[1:]) - 1 for query_id in query_ids], pa.int64()),
            "query_id": query_ids,
            "latency_ms": [1.0] * n,
            "error": pa.array([None] * n, pa.string()),
            "n_results": pa.array([1] * n, pa.int32()),
            "n_duplicates": pa.array([0] * n, pa.int32()),
            "ranks": pa.array([[1]] * n, pa.list_(pa.int32())),
            "doc_ids": [["d1"]] * n,
            "scores": [[0.9]] * n,
            "ndcg@10": [value] * n,
        }
    )
    pq.write_table(table, path)
    return path


def _counts(store: Store, run_id: str) -> tuple[int, int, int]:
    return (
        len(run_queries(store, run_id)),
        len(run_results(store, run_id)),
        len(query_metrics(store, run_id)),
    )


def test_a_broken_shard_loads_nothing_and_the_run_stays_unfinished(tmp_path: Path) -> None:
    good = _shard(tmp_path / "a.parquet", ["q1", "q2"])
    broken = tmp_path / "b.parquet"
    broken.write_bytes(b"PAR1 this is not a parquet file")
    with Store.open(tmp_path / "runs.duckdb") as store:
        run_id = create_run(store, _spec())
        with pytest.raises(StoreError):
            load_run_shards(
                store, run_id, [good, broken], measures=["ndcg@10"], status="complete", n_total=3
            )
        assert _counts(store, run_id) == (0, 0, 0)
        assert get_run(store, run_id).status == "running"
        assert loaded_shards(store, run_id) == []


def test_shards_are_loaded_once_and_overlaps_count_once(tmp_path: Path) -> None:
    first = _shard(tmp_path / "a.parquet", ["q1", "q2"])
    retried = _shard(tmp_path / "b.parquet", ["q2", "q3"])
    with Store.open(tmp_path / "runs.duckdb") as store:
        run_id = create_run(store, _spec())
        loaded = load_run_shards(
            store, run_id, [first, retried], measures=["ndcg@10"], status="complete", n_total=3
        )
        assert loaded == 3
        assert _counts(store, run_id) == (3, 3, 3)
        run = get_run(store, run_id)
        assert (run.status, run.n_evaluated, run.aggregates["ndcg@10"]) == ("complete", 3, 0.5)
        assert loaded_shards(store, run_id) == ["a.parquet", "b.parquet"]
        with pytest.raises(StoreError, match="not running"):
            load_run_shards(
                store, run_id, [first], measures=["ndcg@10"], status="complete", n_total=3
            )
        assert _counts(store, run_id) == (3, 3, 3)


def _answer_shards(shard: Path, item_ids: list[str], *, calls: int, hits: int) -> None:
    """The answer shards of ``shard``: faithfulness measured for every item, and the ID-based
    context metrics unmeasured for want of a reference except where an id ends in 'r'."""
    from evalkit.engines import (
        ANSWER_ITEM_SCHEMA,
        ANSWER_SCORE_SCHEMA,
        COUNTS_KEY,
        JUDGED_SCHEMA,
        answer_shard,
    )

    rows: list[dict[str, Any]] = []
    for item_id in item_ids:
        rows.append(
            {
                "item_id": item_id,
                "metric": "faithfulness",
                "method": "ragas-llm",
                "judge_model": "j",
                "value": 0.5,
                "n_repeats": 1,
            }
        )
        for metric, referenced in (
            ("id_based_context_recall", item_id.endswith("r")),
            ("id_based_context_precision", False),
        ):
            rows.append(
                {
                    "item_id": item_id,
                    "metric": metric,
                    "method": "ragas-id-based",
                    "value": 1.0 if referenced else None,
                    "unmeasured_reason": None if referenced else "no_reference",
                    "n_repeats": 1,
                }
            )
    scores = pa.Table.from_pylist(rows, schema=ANSWER_SCORE_SCHEMA)
    answer_shard(shard, "scores").parent.mkdir(exist_ok=True)
    pq.write_table(
        scores.replace_schema_metadata({COUNTS_KEY: f"{calls} {hits}".encode()}),
        answer_shard(shard, "scores"),
    )
    items = [
        {"item_id": i, "question": f"{i}?", "answer": "a.", "contexts": ["c."], "context_ids": []}
        for i in item_ids
    ]
    pq.write_table(
        pa.Table.from_pylist(items, schema=ANSWER_ITEM_SCHEMA), answer_shard(shard, "items")
    )
    judged = [
        {
            "cache_key": f"key-{i}",
            "metric": "faithfulness",
            "judge_model": "j",
            "prompt_version": "p1",
            "value": 0.5,
        }
        for i in item_ids
    ]
    pq.write_table(
        pa.Table.from_pylist(judged, schema=JUDGED_SCHEMA), answer_shard(shard, "judged")
    )


def test_answer_shards_load_with_the_run_in_one_transaction(tmp_path: Path) -> None:
    from evalkit.engines import answer_shard
    from evalkit.store.shards import ShardAnswers

    answers = ShardAnswers(scoring_id="ans-1", started_at=datetime(2026, 11, 24), settings={})
    first = _shard(tmp_path / "a.parquet", ["q1", "q2"])
    retried = _shard(tmp_path / "b.parquet", ["q2", "q3"])
    plain = _shard(tmp_path / "c.parquet", ["q4"])  # a batch that generated no answer
    _answer_shards(first, ["q1r", "q2"], calls=4, hits=0)
    _answer_shards(retried, ["q2", "q3"], calls=2, hits=1)
    shards = [first, retried, plain]
    with Store.open(tmp_path / "runs.duckdb") as store:
        run_id = create_run(store, _spec())

        # A broken answer shard: neither the run's rows nor its answers are stored.
        def load() -> None:
            load_run_shards(
                store,
                run_id,
                shards,
                measures=["ndcg@10"],
                status="complete",
                n_total=4,
                answers=answers,
            )

        for kind in ("items", "scores"):
            good = answer_shard(retried, kind).read_bytes()
            answer_shard(retried, kind).write_bytes(b"PAR1 not parquet")
            with pytest.raises(StoreError, match="cannot"):
                load()
            assert get_run(store, run_id).status == "running"
            assert _counts(store, run_id) == (0, 0, 0)
            for table in ("answer_scorings", "answer_scores", "answer_items", "judge_cache"):
                assert store.fetch(f"SELECT count(*) FROM {table}")[0][0] == 0
            answer_shard(retried, kind).write_bytes(good)

        load()
        assert get_run(store, run_id).status == "complete"
        (scoring,) = list_scorings(store, run_id=run_id)
        # q2 is in two batches' answers (a retried batch): stored once.
        assert (scoring.scoring_id, scoring.n_records) == ("ans-1", 3)
        assert (scoring.judge_calls, scoring.cache_hits) == (6, 1)
        stored = store.fetch(
            "SELECT item_id, metric, unmeasured_reason FROM answer_scores ORDER BY ALL"
        )
        # Context recall had a reference for q1r, so it is kept for every answer, as a local
        # run keeps it; no answer had one for context precision, so it is dropped.
        assert stored == [
            ("q1r", "faithfulness", None),
            ("q1r", "id_based_context_recall", None),
            ("q2", "faithfulness", None),
            ("q2", "id_based_context_recall", "no_reference"),
            ("q3", "faithfulness", None),
            ("q3", "id_based_context_recall", "no_reference"),
        ]
        assert store.fetch("SELECT item_id FROM answer_items ORDER BY ALL") == [
            ("q1r",),
            ("q2",),
            ("q3",),
        ]
        assert store.fetch("SELECT count(*) FROM judge_cache")[0][0] == 3


def test_the_engine_without_ray_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(MissingExtraError) as caught:
        RayEngine(RetrieverOptions(http_url="http://127.0.0.1:9/search"), _settings(tmp_path))
    assert caught.value.extra == "ray"
    assert caught.value.exit_code == 2
    assert "evalkit-retrieval[ray]" in str(caught.value)


def test_qdrant_s_local_store_is_refused_before_anything_runs(tmp_path: Path) -> None:
    """Qdrant's local mode locks its folder for one client; every actor opens its own, so
    the run could only fail, with actors dying one after the other."""
    settings = _settings(tmp_path)
    local = settings.model_copy(
        update={
            "retriever": settings.retriever.model_copy(
                update={
                    "kind": "qdrant",
                    "qdrant": settings.retriever.qdrant.model_copy(
                        update={"path": tmp_path / "qdrant", "collection": "docs"}
                    ),
                }
            )
        }
    )
    with pytest.raises(ConfigError, match="cannot search Qdrant's local store"):
        RayEngine(RetrieverOptions(), local)
    RayEngine(RetrieverOptions(http_url="http://127.0.0.1:9/search"), local)  # another kind


def test_what_ray_writes_on_standard_output_goes_to_standard_error() -> None:
    """Ray's core reports failed tasks on file descriptor 1: a `--format json` command's
    standard output must hold its JSON alone."""
    probe = (
        "import os, sys\n"
        "from evalkit.engines.ray_actors import _stdout_on_stderr\n"
        "with _stdout_on_stderr():\n"
        "    os.write(1, b'(raylet) Task failed\\n')\n"
        "    print('printed inside')\n"
        "print('{\"json\": 1}')\n"
    )
    shown = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    assert shown.stdout == '{"json": 1}\n'
    assert "(raylet) Task failed" in shown.stderr
    assert "printed inside" in shown.stderr


def test_help_and_the_local_engine_do_not_import_ray() -> None:
    probe = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from evalkit.cli import app\n"
        "import evalkit.pipeline, evalkit.scheduler.jobs\n"
        "assert CliRunner().invoke(app, ['run', '--help']).exit_code == 0\n"
        "print('ray' in sys.modules)\n"
    )
    shown = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    assert shown.stdout.strip() == "False"


def test_a_job_chooses_the_engine_and_refuses_an_unknown_one(tmp_path: Path) -> None:
    from pydantic import ValidationError

    from evalkit.scheduler import JOB_KINDS

    model = JOB_KINDS["goldset_replay"].params
    settings = _settings(tmp_path)
    local = model.model_validate({"goldset": "demo", "http_retriever": "http://127.0.0.1:9/q"})
    assert local.run_request(settings, "nightly").engine == "local"  # type: ignore[attr-defined]
    on_ray = model.model_validate(
        {
            "goldset": "demo",
            "http_retriever": "http://127.0.0.1:9/q",
            "engine": "ray",
            "ray_address": "127.0.0.1:6379",
            "ray_actors": 4,
        }
    )
    # run_goldset builds its RayEngine from the request's engine fields and these options.
    request = on_ray.run_request(settings, "nightly")  # type: ignore[attr-defined]
    assert (request.engine, request.ray_address, request.ray_actors) == ("ray", "127.0.0.1:6379", 4)
    assert on_ray.options().http_url == "http://127.0.0.1:9/q"  # type: ignore[attr-defined]
    with pytest.raises(ValidationError, match="engine"):
        model.model_validate({"goldset": "demo", "engine": "spark"})


def test_queries_no_shard_holds_are_stored_as_lost_with_the_reason(tmp_path: Path) -> None:
    from evalkit.engines import number_query_table, write_query_table
    from evalkit.records import Judgment, Query
    from evalkit.store.shards import summarize_shards, write_lost_shard

    queries = [Query(id=f"q{i}", text=f"query {i}") for i in range(1, 5)]
    written = write_query_table(
        tmp_path / "queries.parquet", queries, [Judgment("q1", "d1", 1), Judgment("q3", "d1", 1)]
    )
    table = tmp_path / "numbered.parquet"
    assert number_query_table(written, table) == 4
    held = _shard(tmp_path / "a.parquet", ["q1", "q2"])
    lost = tmp_path / "lost.parquet"
    with Store.open(tmp_path / "runs.duckdb") as store:
        reason = "lost: the Ray engine stopped (ActorDiedError: gone)"
        assert write_lost_shard(store, table, [held], lost, error=reason, measures=["ndcg@10"]) == 2
        summary = summarize_shards(store, [held, lost], ["ndcg@10"])
        assert (summary.n_queries, summary.n_failed, summary.n_evaluated) == (4, 2, 2)
        run_id = create_run(store, _spec())
        load_run_shards(
            store,
            run_id,
            [held, lost],
            measures=["ndcg@10"],
            status="partial",
            n_total=2,
            error=f"2 of 4 queries failed; first: {summary.first_error}",
        )
        stored = run_queries(store, run_id).set_index("query_id")
        assert stored.loc[["q3", "q4"], "error"].tolist() == [reason, reason]
        assert stored.loc[["q1", "q2"], "error"].isna().all()
        run = get_run(store, run_id)
        assert (run.status, run.n_failed, run.n_evaluated) == ("partial", 2, 2)
        assert sorted(query_metrics(store, run_id).index) == ["q1", "q2"]
        assert write_lost_shard(store, table, [held, lost], tmp_path / "again.parquet",
                                error=reason, measures=["ndcg@10"]) == 0  # fmt: skip


def last_query_raises(goldset: Goldset, path: Path) -> Path:
    """A query table of ``goldset`` written to ``path`` whose last query's grades do not
    match its documents, so the batch holding it raises."""
    n = len(goldset.queries)
    table = pa.table(
        {
            "query_id": [query.id for query in goldset.queries],
            "text": [query.text for query in goldset.queries],
            "tenant": pa.array([None] * n, pa.string()),
            "judged_doc_ids": [["d1", "d2"]] * n,
            "judged_relevance": [[1, 0]] * (n - 1) + [[1]],
        }
    )
    pq.write_table(table, path)
    return path


def test_an_engine_that_stops_leaves_a_partial_run_naming_the_lost_queries(
    ray_cluster: str, tmp_path: Path
) -> None:
    from evalkit.pipeline import evaluate_query_table

    goldset = demo_goldset()
    path = last_query_raises(goldset, tmp_path / "queries.parquet")
    with overlap_retriever() as url, Store.open(tmp_path / "runs.duckdb") as store:
        engine = RayEngine(
            RetrieverOptions(http_url=url), _settings(tmp_path), actors=2, batch_size=16
        )
        run = evaluate_query_table(store, path, engine, k=DEPTH, measures=["ndcg@10"]).run
        stored = run_queries(store, run.run_id)
        assert len(stored) == len(goldset.queries)
        lost = stored.dropna(subset=["error"])
        assert goldset.queries[-1].id in set(lost["query_id"])
        assert lost["error"].str.startswith("lost: the Ray engine stopped").all()
        assert lost["error"].str.contains("ValueError").all()
        assert run.status in {"partial", "failed"}
        assert run.n_failed == len(lost)


def test_a_query_table_is_numbered_a_row_group_at_a_time_and_checked(tmp_path: Path) -> None:
    from evalkit.engines import (
        QUERY_TABLE_COLUMNS,
        REFERENCE_COLUMNS,
        number_query_table,
        write_query_table,
    )
    from evalkit.errors import InputError

    queries = [
        Query(id=f"q{i}", text=f"query {i}", reference_context_ids=(f"d{i}",)) for i in range(25)
    ]
    written = write_query_table(tmp_path / "queries.parquet", queries, row_group_size=10)
    numbered = tmp_path / "numbered.parquet"
    assert number_query_table(written, numbered) == 25
    table = pq.read_table(numbered)
    assert table.column_names == [*QUERY_TABLE_COLUMNS, *REFERENCE_COLUMNS, "position"]
    assert table.column("position").to_pylist() == list(range(25))
    assert table.column("query_id").to_pylist() == [query.id for query in queries]
    assert table.column("reference_context_ids").to_pylist() == [[f"d{i}"] for i in range(25)]
    # A table without the optional reference columns is numbered with them left null.
    plain = tmp_path / "plain.parquet"
    pq.write_table(pq.read_table(written, columns=list(QUERY_TABLE_COLUMNS)), plain)
    assert number_query_table(plain, tmp_path / "plain-numbered.parquet") == 25
    table = pq.read_table(tmp_path / "plain-numbered.parquet")
    assert table.column_names == [*QUERY_TABLE_COLUMNS, *REFERENCE_COLUMNS, "position"]
    assert table.column("reference_answer").null_count == 25
    no_text = tmp_path / "no-text.parquet"
    pq.write_table(pa.table({"query_id": ["q1"], "tenant": pa.array([None], pa.string())}), no_text)
    with pytest.raises(InputError, match=r"no-text\.parquet: not a query table: no column text"):
        number_query_table(no_text, tmp_path / "never.parquet")


# -- answers scored on the actor pool ------------------------------------------------------

_PASSAGES = (
    "The Sydney Harbour Bridge is a steel arch bridge in Sydney. It opened in 1932.",
    "The Golden Gate Bridge is a suspension bridge in San Francisco. It opened in 1937.",
    "Tower Bridge crosses the River Thames in London. It was completed in 1894.",
)
_MADE_UP = "It was designed by Gustave Eiffel in Lyon."


def _rag_response(number: int) -> dict[str, Any]:
    """What the loopback RAG endpoint answers to query ``number``: a mix of faithful,
    half-faithful and unsupported answers, answers without passages, and plain results."""
    first, second = number % 3, (number + 1) % 3
    results = [
        {"id": f"d{first}", "score": 0.9, "text": _PASSAGES[first]},
        {"id": f"d{second}", "score": 0.5, "text": _PASSAGES[second]},
    ]
    kind = number % 5
    if kind == 4:
        return {"results": [{"id": f"d{first}", "score": 0.9}]}
    if kind == 3:
        return {"results": [{"id": f"d{first}", "score": 0.9}], "answer": _PASSAGES[first]}
    answer = _PASSAGES[first].split(". ")[1] if kind == 0 else _PASSAGES[first]
    if kind == 2:
        answer = f"{answer} {_MADE_UP}"
    return {"results": results, "answer": answer}


@contextlib.contextmanager
def _rag_endpoint() -> Iterator[str]:
    """A RAG endpoint on loopback: ranked results, their passages and a generated answer."""

    class Handler(JSONHandler):
        def do_POST(self) -> None:
            query_id = str(self.read_json()["query_id"])
            number = int(query_id[1:]) if query_id[1:].isdigit() else 4  # the probe query
            self.send_json(_rag_response(number))

    with serving(Handler) as url:
        yield f"{url}/search"


def _rag_goldset(n: int = 30) -> Goldset:
    # Only the first queries have reference context ids: batches without any must still
    # store their answers' context rows (unmeasured, no_reference) as a local run does.
    queries = [
        Query(
            id=f"q{number:03d}",
            text=f"When did bridge {number % 3} open? (question {number})",
            reference_answer="In 1932." if number % 2 else None,
            reference_context_ids=(f"d{number % 3}",) if number < 4 else (),
        )
        for number in range(n)
    ]
    judgments = [Judgment(query.id, f"d{number % 3}", 1) for number, query in enumerate(queries)]
    return Goldset.build("bridges", queries, judgments)


def _answer_figures(store: Store, run_id: str) -> tuple[Any, pd.DataFrame, pd.DataFrame]:
    """A run's stored answer scoring (its counts and settings), scores and items, without
    the ids that differ from run to run."""
    (scoring,) = list_scorings(store, run_id=run_id)
    scores = store.fetch_frame(
        "SELECT * EXCLUDE (scoring_id, run_id) FROM answer_scores WHERE scoring_id = ?"
        " ORDER BY item_id, metric, method",
        [scoring.scoring_id],
    )
    items = store.fetch_frame(
        "SELECT * EXCLUDE (scoring_id, run_id) FROM answer_items WHERE scoring_id = ?"
        " ORDER BY item_id",
        [scoring.scoring_id],
    )
    counts = (scoring.n_records, scoring.judge_calls, scoring.cache_hits, dict(scoring.settings))
    return counts, scores, items


def test_answers_scored_on_ray_are_stored_as_a_local_run_stores_them(
    ray_cluster: str, tmp_path: Path
) -> None:
    goldset = _rag_goldset()
    offline = JudgeSettings(method="offline")
    with _rag_endpoint() as url, Store.open(tmp_path / "runs.duckdb") as store:
        settings = _settings(tmp_path)
        options = RetrieverOptions(http_url=url)
        engine = RayEngine(options, settings, actors=2, batch_size=7)
        retriever = build_retriever(options, settings)
        local = evaluate_goldset(
            store,
            goldset,
            retriever,
            GoldsetRunRequest(k=5, measures=("mrr",)),
            judge_settings=offline,
        )
        on_ray = evaluate_goldset(
            store,
            goldset,
            retriever,
            GoldsetRunRequest(k=5, measures=("mrr",)),
            judge_settings=offline,
            engine=engine,
        )
        assert local.answers is not None
        assert on_ray.answers is not None
        assert on_ray.answers.run_id == on_ray.run.run_id
        local_counts, local_scores, local_items = _answer_figures(store, local.run.run_id)
        ray_counts, ray_scores, ray_items = _answer_figures(store, on_ray.run.run_id)
        assert ray_counts == local_counts
        pd.testing.assert_frame_equal(ray_scores, local_scores)
        pd.testing.assert_frame_equal(ray_items, local_items)
        # What the figures hold: 24 of 30 queries generated an answer; those without
        # passages are unmeasured; the ID-based context metrics cover every answer.
        assert local_counts[0] == 24
        faithfulness = ray_scores[ray_scores["metric"] == "faithfulness"]
        assert (faithfulness["unmeasured_reason"] == "empty_contexts").sum() == 6
        assert faithfulness["value"].notna().sum() == 18
        assert set(ray_scores["metric"]) == {
            "faithfulness",
            "id_based_context_precision",
            "id_based_context_recall",
        }
        assert len(ray_scores[ray_scores["metric"] == "id_based_context_recall"]) == 24
        summaries = {(s.metric, s.method): s for s in on_ray.answers.summaries}
        for summary in local.answers.summaries:
            stored = summaries[(summary.metric, summary.method)]
            assert (stored.n_measured, stored.n_unmeasured) == (
                summary.n_measured,
                summary.n_unmeasured,
            )
            assert stored.mean == pytest.approx(summary.mean)
    assert not engine.shard_dir(on_ray.run.run_id).exists()


@dataclass
class _CountingJudge(FakeJudge):
    """The loopback judge, answering slowly enough for calls to overlap, and counting the
    calls in flight at once."""

    in_flight: int = 0
    most_in_flight: int = 0

    def reply(self, body: dict[str, object]) -> tuple[int, str]:
        with self.lock:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            time.sleep(0.05)
            return super().reply(body)
        finally:
            with self.lock:
                self.in_flight -= 1


@contextlib.contextmanager
def _counting_judge() -> Iterator[_CountingJudge]:
    state = _CountingJudge()

    class Handler(JSONHandler):
        def do_POST(self) -> None:
            status, payload = state.reply(self.read_json())
            self.send_body(payload.encode(), status)

    with serving(Handler) as url:
        state.url = f"{url}/v1"
        yield state


@pytest.mark.filterwarnings("ignore:FUNCTIONS is deprecated:DeprecationWarning")
def test_the_judge_on_ray_keeps_to_the_pools_concurrency_and_shares_the_cache(
    ray_cluster: str, tmp_path: Path
) -> None:
    goldset = _rag_goldset(20)
    with (
        _counting_judge() as judge,
        _rag_endpoint() as url,
        Store.open(tmp_path / "runs.duckdb") as store,
    ):
        settings = _settings(tmp_path)
        options = RetrieverOptions(http_url=url)
        engine = RayEngine(options, settings, actors=2, batch_size=5)
        retriever = build_retriever(options, settings)
        too_few = judge_settings(judge, concurrency=1)
        with pytest.raises(ConfigError, match=r"concurrency \(1\) is below .* 2 actors"):
            evaluate_goldset(
                store,
                goldset,
                retriever,
                GoldsetRunRequest(k=5),
                judge_settings=too_few,
                engine=engine,
            )
        assert store.fetch("SELECT count(*) FROM runs")[0][0] == 0
        assert judge.calls == 0

        # Two judge calls at a time for the pool: one per actor (each alone would make two).
        # A call may wait for a CPU on a loaded machine: the timeout is far above that, since
        # a timed-out call is sent again and counted twice.
        capped = judge_settings(judge, concurrency=2, timeout=120.0)
        on_ray = evaluate_goldset(
            store, goldset, retriever, GoldsetRunRequest(k=5), judge_settings=capped, engine=engine
        )
        assert on_ray.answers is not None
        # 16 answers, 4 without passages never reach the judge: 12 x 2 calls.
        assert on_ray.answers.judge_calls == judge.calls == 24
        assert 1 <= judge.most_in_flight <= 2
        # The judge outputs the actors obtained are in the store's cache: a local run of
        # the same answers asks the judge nothing, and stores the same scores.
        local = evaluate_goldset(
            store, goldset, retriever, GoldsetRunRequest(k=5), judge_settings=capped
        )
        assert local.answers is not None
        assert (local.answers.judge_calls, local.answers.cache_hits) == (0, 12)
        assert judge.calls == 24
        _, ray_scores, ray_items = _answer_figures(store, on_ray.run.run_id)
        _, local_scores, local_items = _answer_figures(store, local.run.run_id)
        pd.testing.assert_frame_equal(ray_scores, local_scores)
        pd.testing.assert_frame_equal(ray_items, local_items)
        # And a second run on Ray reads the cache's snapshot: nothing is asked again.
        again = evaluate_goldset(
            store, goldset, retriever, GoldsetRunRequest(k=5), judge_settings=capped, engine=engine
        )
        assert again.answers is not None
        assert (again.answers.judge_calls, again.answers.cache_hits) == (0, 12)
        assert judge.calls == 24


def test_the_ray_engine_replays_through_the_engine_protocol(
    ray_cluster: str, tmp_path: Path
) -> None:
    import pyarrow.compute as pc

    from evalkit.engines import Engine, ReplayQueries, ReplaySpec

    goldset = demo_goldset()
    with overlap_retriever(fail=frozenset({"q003"})) as url:
        # A query embedder in the options is left behind, whatever it holds: it once failed
        # the run with 'Could not serialize the put value', pickled before being dropped.
        options = RetrieverOptions(http_url=url, query_embedder=_Unpicklable())  # type: ignore[arg-type]
        engine: Engine = RayEngine(options, _settings(tmp_path), actors=2, batch_size=40)
        told: list[tuple[int, int]] = []
        report = engine.replay(
            ReplaySpec(run_id="r-protocol", k=DEPTH, measures=("ndcg@10",)),
            ReplayQueries(queries=goldset.queries, judgments=goldset.judgments),
            progress=lambda done, total: told.append((done, total)),
        )
    assert (report.engine, report.stopped) == ("ray", None)
    assert report.n_replayed == len(goldset.queries)
    assert told[-1] == (len(goldset.queries), len(goldset.queries))
    assert report.results == ()
    assert report.shard_dir is not None
    assert report.query_table is not None
    shards = pq.read_table(sorted(report.shard_dir.glob("*.parquet")))
    assert sorted(shards["query_id"].to_pylist()) == sorted(q.id for q in goldset.queries)
    failed = shards.filter(pc.is_valid(shards["error"]))["query_id"].to_pylist()
    assert failed == ["q003"]
    report.discard()
    assert not report.shard_dir.exists()
    assert not report.query_table.exists()


def test_the_ray_engine_reports_its_stop_and_keeps_its_shards(
    ray_cluster: str, tmp_path: Path
) -> None:
    from evalkit.engines import ReplayQueries, ReplaySpec

    goldset = demo_goldset()
    path = last_query_raises(goldset, tmp_path / "queries.parquet")
    with overlap_retriever() as url:
        engine = RayEngine(
            RetrieverOptions(http_url=url), _settings(tmp_path), actors=2, batch_size=16
        )
        report = engine.replay(
            ReplaySpec(run_id="r-stops", k=DEPTH, measures=("ndcg@10",)),
            ReplayQueries(table=path),
        )
    assert report.stopped is not None
    assert "ValueError" in str(report.stopped)
    assert report.n_replayed < len(goldset.queries)
    assert report.query_table == engine.query_table("r-stops")
    assert pq.read_table(report.query_table).num_rows == len(goldset.queries)
    assert path.exists()


# -- refused before a run is recorded; what a stopped run leaves ---------------------------


@pytest.mark.parametrize(
    ("address", "says"),
    [
        ("ray://head.example:10001", "is a Ray Client address, which the Ray engine cannot use"),
        ("not an address", "is not a Ray cluster address: give the address"),
        ("http://127.0.0.1:6390", "(an http:// address is the dashboard's, for `ray job submit`)"),
    ],
)
def test_a_ray_client_or_malformed_address_is_refused_before_anything_is_stored(
    evalkit_home: Path, capsys: pytest.CaptureFixture[str], address: str, says: str
) -> None:
    """Ray Data's actor pool fails under Ray Client (every query was lost, the run stored
    failed); a malformed address was a raw ValueError traceback, exit 1, a run stored."""
    import json

    from evalkit.cli import invoke

    code = invoke(
        [
            "run",
            "--goldset",
            str(Path(__file__).resolve().parents[1] / "goldsets" / "demo"),
            "--http-retriever",
            "http://127.0.0.1:9/search",
            "--engine",
            "ray",
            "--ray-address",
            address,
            "--format",
            "json",
        ]
    )
    captured = capsys.readouterr()
    assert code == 2
    error = json.loads(captured.out)["error"]
    assert (error["type"], error["exit_code"]) == ("ConfigError", 2)
    assert error["message"].startswith(f"--ray-address {address!r} ")
    assert says in error["message"]
    if address.startswith("ray://"):
        assert "`ray job submit --address http://HEAD:8265 -- evalkit run" in error["message"]
    assert not (evalkit_home / "evalkit.duckdb").exists()
    assert not (evalkit_home / "shards").exists()


def test_an_address_from_the_environment_or_a_job_is_checked_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pydantic import ValidationError

    from evalkit.scheduler import JOB_KINDS

    monkeypatch.setenv("RAY_ADDRESS", "ray://head.example:10001")
    with pytest.raises(ConfigError, match=r"^RAY_ADDRESS 'ray://head.example:10001' is a Ray"):
        RayEngine(RetrieverOptions(http_url="http://127.0.0.1:9/q"), _settings(tmp_path))
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")  # what a Ray Job's driver is given
    RayEngine(RetrieverOptions(http_url="http://127.0.0.1:9/q"), _settings(tmp_path))
    for address in ("auto", "head.example:6379", "[::1]:6379"):
        RayEngine(RetrieverOptions(), _settings(tmp_path), address=address)
    model = JOB_KINDS["goldset_replay"].params
    with pytest.raises(ValidationError, match=r"ray_address 'ray://h:10001' is a Ray Client"):
        model.model_validate({"goldset": "demo", "engine": "ray", "ray_address": "ray://h:10001"})


def test_an_unreachable_cluster_is_refused_at_once_and_no_run_is_stored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ray retries a cluster that does not answer for ever: the run hung."""
    import ray

    from evalkit.engines.ray import RayUnreachableError

    # As in a process not yet connected to Ray (this module's tests share one session).
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    settings = _settings(tmp_path)
    began = time.monotonic()
    with overlap_retriever() as url, Store.open(tmp_path / "runs.duckdb") as store:
        options = RetrieverOptions(http_url=url)
        engine = RayEngine(options, settings, address="127.0.0.1:1")
        with pytest.raises(RayUnreachableError) as caught:
            _demo_run(store, url, settings, engine)
        assert store.fetch("SELECT count(*) FROM runs")[0][0] == 0
    assert time.monotonic() - began < 30
    assert caught.value.exit_code == 3
    assert str(caught.value).startswith(
        "cannot connect to the Ray cluster at 127.0.0.1:1 (--ray-address): connection refused."
    )
    assert not (settings.home / "shards").exists()


def _demo_run(store: Store, url: str, settings: Settings, engine: RayEngine) -> RunOutcome:
    """The demo goldset run against the HTTP retriever at ``url`` on ``engine``."""
    return evaluate_goldset(
        store,
        demo_goldset(),
        build_retriever(RetrieverOptions(http_url=url), settings),
        GoldsetRunRequest(k=DEPTH, answers=False),
        engine=engine,
    )


class _Unpicklable:
    """What cannot be sent to an actor: an object holding a lock (as an ONNX session does)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()


def test_an_option_the_actors_cannot_be_sent_is_named_before_a_run_is_stored(
    tmp_path: Path,
) -> None:
    """Ray failed the whole run with 'Could not serialize the put value <MapTransformer>',
    the real cause only on standard error."""
    settings = _settings(tmp_path)
    options = RetrieverOptions(
        retriever="plugins:make", factory_options={"k": 3, "guard": _Unpicklable()}
    )
    engine = RayEngine(options, settings)
    with overlap_retriever() as url, Store.open(tmp_path / "runs.duckdb") as store:
        with pytest.raises(ConfigError) as caught:
            _demo_run(store, url, settings, engine)
        assert store.fetch("SELECT count(*) FROM runs")[0][0] == 0
    assert str(caught.value).startswith(
        "the retriever option 'guard' (_Unpicklable) cannot be sent to the Ray engine's "
        "actors, which each build their own retriever from the options: TypeError: cannot "
        "pickle '_thread.lock' object."
    )


def test_a_run_stopped_before_any_shard_leaves_no_files_and_a_failed_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The query table (a copy of the query set) and an empty shard folder were left under
    HOME/shards by every run that failed or was interrupted, and nothing removed them."""
    from evalkit.engines import ray_actors

    def interrupted(*args: Any, **kwargs: Any) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(ray_actors, "replay_on_ray", interrupted)
    settings = _settings(tmp_path)
    with overlap_retriever() as url, Store.open(tmp_path / "runs.duckdb") as store:
        options = RetrieverOptions(http_url=url)
        engine = RayEngine(options, settings)
        with pytest.raises(KeyboardInterrupt):
            _demo_run(store, url, settings, engine)
        ((status, error),) = store.fetch("SELECT status, error FROM runs")
    assert (status, error) == ("failed", "interrupted: Ctrl-C")
    assert list((settings.home / "shards").iterdir()) == []


def test_a_ray_run_is_recorded_running_under_its_lock_while_the_store_is_closed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ray terminates its driver when the cluster goes away: with the run row written only
    after the replay, nothing was stored and the run's shards belonged to no run."""
    from evalkit.engines import ray_actors
    from evalkit.store.access import StoreAccess
    from evalkit.store.runs import fail_running_runs, run_lock

    path = tmp_path / "runs.duckdb"
    seen: dict[str, Any] = {}

    def replay_meanwhile(table: Path, shard_dir: Path, engine: Any, spec: Any, **kw: Any) -> int:
        # Another writer opens the store during the replay, as `evalkit run` elsewhere would.
        with Store.open(path) as other:
            seen["failed"] = fail_running_runs(other, note="found by another writer")
            seen["status"] = get_run(other, spec.run_id).status
        seen["lock"] = run_lock(path, spec.run_id).path
        seen["held"] = run_lock(path, spec.run_id).is_held()
        raise SystemExit(1)  # the process ends without recording anything more

    monkeypatch.setattr(ray_actors, "replay_on_ray", replay_meanwhile)
    settings = _settings(tmp_path)
    access = StoreAccess(path, wait=10, program="evalkit")
    with overlap_retriever() as url:
        options = RetrieverOptions(http_url=url)
        retriever = build_retriever(options, settings)
        with pytest.raises(SystemExit):
            evaluate_goldset(
                access,
                demo_goldset(),
                retriever,
                GoldsetRunRequest(k=DEPTH, answers=False),
                engine=RayEngine(options, settings),
            )
    assert seen["failed"] == []
    assert seen["status"] == "running"
    assert seen["held"]
    assert not seen["lock"].exists()

    # A process that died while replaying: its run is left running, its lock released by
    # the kernel; the next writer marks it failed and removes the lock's file.
    with Store.open(path) as store:
        run_id = create_run(store, _spec())
        lock = run_lock(path, run_id)
        lock.acquire(purpose="replay", wait=0)
        assert fail_running_runs(store, note="x") == []
        lock.release()
        assert fail_running_runs(store, note="found by `evalkit run`") == [run_id]
        assert get_run(store, run_id).error == "interrupted: found by `evalkit run`"
        assert not lock.path.exists()


def test_a_goldset_replay_job_on_ray_leaves_the_store_free_and_lists_its_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The scheduled job held the store through the whole Ray replay. It now goes the way of
    `evalkit run`: the run's `running` row is written (listed by the job run at once) and
    the store closed before the replay; a replay that crashes is recorded failed after it."""
    from evalkit.config import parse_settings
    from evalkit.engines import ray_actors
    from evalkit.scheduler import JobRunner, service_config
    from evalkit.store.access import StoreAccess
    from evalkit.store.goldsets import save_goldset
    from evalkit.store.jobs import get_job_run, list_job_runs

    settings = _settings(tmp_path)
    path = settings.resolved_store_path
    with Store.open(path) as store:
        save_goldset(store, demo_goldset())
    seen: dict[str, Any] = {}

    def replay_meanwhile(table: Path, shard_dir: Path, engine: Any, spec: Any, **kw: Any) -> int:
        meanwhile = StoreAccess(path, wait=0.5, program="another writer")
        with meanwhile.writer("while the job replays") as other:
            (job_run,) = list_job_runs(other, job="nightly")
            seen["job_run"] = (job_run.status, job_run.run_ids)
            seen["run"] = (spec.run_id, get_run(other, spec.run_id).status)
        raise RuntimeError("the cluster went away")

    monkeypatch.setattr(ray_actors, "replay_on_ray", replay_meanwhile)
    with overlap_retriever() as url:
        job = {"name": "nightly", "kind": "goldset_replay", "goldset": demo_goldset().name}
        job |= {"http_retriever": url, "k": DEPTH, "engine": "ray"}
        config = service_config(parse_settings({"jobs": [job]}, tmp_path / "evalkit.toml"))
        access = StoreAccess(path, wait=10, program="test")
        ended = JobRunner(config, settings=settings, session=access).run("nightly")
    assert ended is not None
    run_id, status = seen["run"]
    assert status == "running"
    assert seen["job_run"] == ("running", (run_id,))
    assert (ended.status, ended.error) == ("failed", "RuntimeError: the cluster went away")
    with Store.open(path, read_only=True) as store:
        run = get_run(store, run_id)
        job_run = get_job_run(store, ended.job_run_id)
    assert (run.status, run.error) == ("failed", "RuntimeError: the cluster went away")
    assert job_run.run_ids == (run_id,)


def test_connecting_to_ray_keeps_the_process_s_signal_handlers(ray_cluster: str) -> None:
    """ray.init replaces the SIGTERM handler with one that exits 15 at once: `evalkit run`
    then exited 15 with Ray's stack dump, not 143 with its note, its run 'interrupted: 15'."""
    probe = (
        "import os, signal, sys\n"
        "from evalkit.engines.ray_actors import connected\n"
        "def handler(signum, frame):\n"
        "    os._exit(143)\n"
        "signal.signal(signal.SIGTERM, handler)\n"
        "with connected(sys.argv[1]):\n"
        "    assert signal.getsignal(signal.SIGTERM) is handler\n"
        "    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler\n"
        "    os.kill(os.getpid(), signal.SIGTERM)\n"
        "    signal.pause()\n"
    )
    shown = subprocess.run(
        [sys.executable, "-c", probe, ray_cluster],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "RAY_ADDRESS": ""},
    )
    assert shown.returncode == 143, shown.stderr
