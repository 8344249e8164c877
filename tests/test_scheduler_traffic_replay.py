"""The ``traffic`` job end to end through ``evalkit jobs run``: ingest a log directory,
sample a window stratified by tenant, replay it against a real embedded Chroma collection
shared by two tenants, and store the run and the window summary.

The documents and queries are those of test_traffic_tenant_isolation: each tenant's
queries ask about the *other* tenant's topics, so a missing tenant filter shows up as a
leak (the control job below shows that it does).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from test_traffic_tenant_isolation import DOCUMENTS, OWNER, QUERIES

from evalkit.cli import invoke
from evalkit.config import load_settings
from evalkit.embedding import load_embedder
from evalkit.records import Document
from evalkit.retrievers import index_corpus, open_chroma_client
from evalkit.store import Store
from evalkit.store.jobs import list_job_runs
from evalkit.store.runs import get_run, run_results
from evalkit.store.traffic import latest_window_summary, window_embeddings

pytestmark = pytest.mark.slow

TENANT_OF = {query_id: tenant for query_id, tenant, _ in QUERIES}


@pytest.fixture
def store_path(evalkit_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Two tenants indexed into the embedded collection ``kbase``, a day of logs with one
    malformed line, and an evalkit.toml with the traffic job and a control without the
    tenant filter."""
    settings = load_settings()
    client = open_chroma_client(path=settings.resolved_chroma_path)
    documents = [
        Document(doc_id, text, metadata={"tenant": tenant})
        for tenant, docs in DOCUMENTS.items()
        for doc_id, text in docs
    ]
    index_corpus(client, documents, load_embedder(), collection_name="kbase")
    logs = evalkit_home.parent / "logs"
    logs.mkdir()
    lines = [
        json.dumps(
            {
                "query_id": query_id,
                "timestamp": f"2026-11-21T0{index}:00:00Z",
                "text": text,
                "tenant": tenant,
                "results": [DOCUMENTS[tenant][0][0]],
                "latency_ms": 10 + index,
                # The first query's application answered from the passage it was given.
                **(
                    {"answer": DOCUMENTS[tenant][0][1], "contexts": [DOCUMENTS[tenant][0][1]]}
                    if index == 0
                    else {}
                ),
            }
        )
        for index, (query_id, tenant, text) in enumerate(QUERIES)
    ]
    (logs / "app.jsonl").write_text(
        "\n".join(lines[:3]) + "\nnot json at all\n" + "\n".join(lines[3:]) + "\n"
    )
    config = evalkit_home.parent / "evalkit.toml"
    config.write_text(
        f"""
[scheduler]
lock_wait = "60s"

[[jobs]]
name = "traffic-hourly"
kind = "traffic"
cron = "5 * * * *"
paths = [{json.dumps(str(logs))}]
window = "2026-11-21"
n = 6
seed = 3
stratify_by = "tenant"
min_per_stratum = 3
collection = "kbase"
where_key = "tenant"
k = 3
embed_sample = 6
slices = true

[[jobs]]
name = "traffic-unfiltered"
kind = "traffic"
window = "2026-11-21"
n = 6
seed = 3
collection = "kbase"
tenant_isolation = false
k = 3
embed_sample = 0
""",
        encoding="utf-8",
    )
    monkeypatch.setenv("EVALKIT_CONFIG", str(config))
    Store.open(settings.resolved_store_path).close()
    return settings.resolved_store_path


def run_job(capsys: pytest.CaptureFixture[str], name: str) -> dict[str, Any]:
    capsys.readouterr()
    code = invoke(["jobs", "run", name, "--local", "--format", "json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    data = json.loads(captured.out)
    assert isinstance(data, dict)
    return data


def returned_docs(store: Store, run_id: str) -> dict[str, list[str]]:
    docs: dict[str, list[str]] = {}
    for query_id, _, doc_id, _ in run_results(store, run_id).itertuples(index=False):
        docs.setdefault(query_id, []).append(doc_id)
    return docs


def test_the_traffic_job_ingests_samples_and_replays_without_crossing_tenants(
    store_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    job_run = run_job(capsys, "traffic-hourly")
    assert (job_run["status"], job_run["kind"]) == ("succeeded", "traffic")
    summary = job_run["summary"]
    ingest = summary["ingest"]
    assert (ingest["records_added"], ingest["malformed"], ingest["files_read"]) == (6, 1, 1)
    (problem,) = ingest["problems"]
    assert problem.startswith(f"{store_path.parent.parent / 'logs' / 'app.jsonl'}:4: ")
    assert (summary["window"], summary["n_sampled"], summary["status"]) == (
        "2026-11-21",
        6,
        "complete",
    )
    run_id = summary["run_id"]
    assert job_run["run_ids"] == [run_id]
    # The one logged answer is scored (offline: no judge is configured) under the run.
    assert (summary["answers"]["n_records"], summary["answers"]["run_id"]) == (1, run_id)
    # Six queries are too few to fit topics on: the job says so and still succeeds.
    assert "topics cannot be fitted" in summary["slices"]["note"], summary["slices"]

    with Store.open(store_path, read_only=True) as store:
        (stored_job_run,) = list_job_runs(store, job="traffic-hourly")
        assert (stored_job_run.status, stored_job_run.run_ids) == ("succeeded", (run_id,))
        run = get_run(store, run_id)
        assert (run.status, run.spec.kind, run.spec.label) == (
            "complete",
            "traffic",
            "traffic-hourly",
        )
        window = latest_window_summary(store, "2026-11-21")
        assert (window.run_id, window.sample_id) == (run_id, summary["sample_id"])
        assert (window.volume, window.n_replayed, window.n_failed) == (6, 6, 0)
        assert window.n_embeddings == 6
        query_ids, vectors = window_embeddings(store, run_id)
        assert sorted(query_ids) == sorted(TENANT_OF)
        assert vectors.shape == (6, 384)
        docs = returned_docs(store, run_id)
    assert set(docs) == set(TENANT_OF)
    for query_id, doc_ids in docs.items():
        assert len(doc_ids) == 3
        assert {OWNER[doc_id] for doc_id in doc_ids} == {TENANT_OF[query_id]}, query_id

    # Control: the same sample replayed without the filter does cross tenants, so the
    # check above would have caught a leak.
    unfiltered = run_job(capsys, "traffic-unfiltered")
    assert unfiltered["status"] == "succeeded"
    assert "ingest" not in unfiltered["summary"]
    assert unfiltered["summary"]["answers"]["n_records"] == 1
    with Store.open(store_path, read_only=True) as store:
        leaked = returned_docs(store, unfiltered["summary"]["run_id"])
        assert store.fetch("SELECT count(*) FROM traffic_records")[0][0] == 6
    assert any(
        OWNER[doc_id] != TENANT_OF[query_id]
        for query_id, doc_ids in leaked.items()
        for doc_id in doc_ids
    )

    # Run again: the logs hold nothing new, so nothing is ingested twice.
    again = run_job(capsys, "traffic-hourly")["summary"]
    assert (again["ingest"]["records_added"], again["ingest"]["files"]) == (0, {"unchanged": 1})
