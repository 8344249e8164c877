"""Incident drills on BEIR SciFact in embedded Chroma, with the recommended monitoring of
docs/drills.md: what it catches, how soon, naming which cause, at what cost in false alarms,
and how long a user waits.

Set-up (not timed): the test split imported as goldset ``support`` and the 5,183 abstracts
indexed into collection ``support-kb`` with the bundled MiniLM, under --home (kept between
runs), and the evalkit.toml of docs/drills.md's "Recommended monitoring" block, read from the
page itself so that what is measured is what the page recommends.

Parts (``--parts``, all by default):

* ``copy``: the copy of the 5,183 vectors, texts and metadata into a scratch collection,
  against its named peer, reading them alone (``collection.get`` page by page, the floor of
  any copy), side by side in this process;
* ``drill``: ``evalkit drill`` with its defaults (3 quiet cycles, every incident at its
  default severity), the whole process as a user starts it, and where its time goes (the
  drill store's job runs by kind; the rest is start-up, copies and rules);
* ``severities``: one drill per incident and severity (--severities), 2 quiet cycles, 3
  cycles to catch it: the smallest severity caught within 1 and within 3 cycles, the cycles to
  detection and the rank ``explain`` gave the incident's cause, as a Markdown table;
* ``replay-only``: the same with the audit job and the rules reading audits left out:
  what quality monitoring alone catches;
* ``quiet``: one drill of --quiet-cycles (100) quiet cycles and no incident: false alarms
  per quiet cycle;
* ``npl-qdrant``: the second collection: Vaswani (NPL, 11,429 documents, 93 queries) in a
  local Qdrant collection, with ``QDRANT_CONFIG``: the severities and the quiet cycles again
  (ANN degradation left out: local Qdrant searches exactly); ``npl-qdrant-replay-only`` the
  severities without its audit job and the rules reading audits;
* ``scifact-pgvector``: SciFact's vectors in a pgvector table with an HNSW index, on a
  PostgreSQL started for the part, with the recommended monitoring pointed at it (the audit
  job's ``retriever = "pgvector"``): the severities of ``PGVECTOR_INCIDENTS`` and quiet
  cycles.

    .venv/bin/python benchmarks/drills.py [--home DIR] [--parts copy,drill,severities,...]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

ROOT = Path(__file__).resolve().parents[1]
SCIFACT = ROOT.parent / "shared" / "data" / "beir_scifact"
VASWANI = ROOT.parent / "shared" / "data" / "vaswani_npl" / "tests" / "fixtures" / "vaswani_npl"
QDRANT_CONFIG = """
[retriever]
kind = "qdrant"

[retriever.qdrant]
path = "{path}"
collection = "npl-kb"
id_payload_key = "doc_id"
text_payload_key = "text"

[[jobs]]
name = "nightly"
kind = "goldset_replay"
goldset = "npl"
k = 10
measures = ["ndcg@10", "recall@10"]
cron = "0 2 * * *"

[[alerts.rules]]
name = "ndcg-drop"
kind = "precision_regression"
goldset = "npl"
measures = ["ndcg@10"]
method = "page_hinkley"
warmup = 2

[[jobs]]
name = "health"
kind = "audit"
retriever = "qdrant"
goldset = "npl"
cron = "0 3 * * *"

[[alerts.rules]]
name = "index-health"
kind = "audit_findings"

[[alerts.rules]]
name = "wrong-model"
kind = "model_mismatch"

[[alerts.rules]]
name = "job-failed"
kind = "job_failure"
"""
"""The recommended monitoring on a Qdrant collection: the audit job reads it
(``retriever = "qdrant"``), and a job_failure rule sees the replay job refuse a collection
wholly of another model."""
PGVECTOR_TABLE = """
[retriever]
kind = "pgvector"

[retriever.pgvector]
dsn = "{dsn}"
table = "support_kb"
id_column = "doc_id"
text_column = "content"
"""
PGVECTOR_INCIDENTS = ("model_mismatch", "ann_degradation")
"""What the engine changes on pgvector: the audit reads the table, not a Chroma collection,
and the ANN degradation rebuilds its HNSW index."""
EVALKIT = Path(sys.executable).with_name("evalkit")
SEVERITIES = {
    "deletion": (0.005, 0.01, 0.02, 0.05),
    "duplicates": (0.005, 0.01, 0.02, 0.05, 0.10),
    "stale_content": (0.005, 0.01, 0.02, 0.05),
    "model_mismatch": (0.01, 0.05, 0.2, 1.0),
    "chunking_drift": (0.005, 0.01, 0.02, 0.05),
    "ann_degradation": (0.25, 0.5, 0.75, 0.9),
}


def recommended_config() -> str:
    """The first TOML block under docs/drills.md's "Recommended monitoring" heading."""
    page = (ROOT / "docs" / "drills.md").read_text(encoding="utf-8")
    section = page.split("## Recommended monitoring", 1)[1]
    found = re.search(r"```toml\n(.*?)```", section, re.DOTALL)
    assert found, "docs/drills.md: no TOML block under 'Recommended monitoring'"
    return found.group(1)


def replay_only(config: str) -> str:
    """``config`` without its audit jobs and the rules that read audits: quality
    monitoring alone."""
    audit = ('kind = "audit"\n', 'kind = "audit_findings"\n', 'kind = "model_mismatch"\n')
    blocks = config.split("\n[[")
    kept = [block for block in blocks[1:] if not any(kind in block for kind in audit)]
    return "\n[[".join([blocks[0], *kept])


def evalkit(
    home: Path, *args: str, check: bool = True, config: str = "evalkit.toml"
) -> subprocess.CompletedProcess[str]:
    """One evalkit command as a whole process in ``home``, reading ``config`` there."""
    env = {**os.environ, "EVALKIT_HOME": str(home / ".evalkit")}
    env["EVALKIT_CONFIG"] = str(home / config)
    return subprocess.run(
        [str(EVALKIT), *args], cwd=home, env=env, check=check, capture_output=True, text=True
    )


def set_up(home: Path) -> None:
    """The goldset, the indexed corpus and the recommended evalkit.toml under ``home``."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "evalkit.toml").write_text(recommended_config(), encoding="utf-8")
    (home / "replay-only.toml").write_text(replay_only(recommended_config()), encoding="utf-8")
    if (home / ".evalkit" / "chroma").is_dir():
        return
    print("set-up (not timed): goldset import, indexing 5,183 abstracts with MiniLM")
    evalkit(home, "goldset", "import", "--format", "beir", str(SCIFACT), "--split", "test",
            "--name", "support")  # fmt: skip
    evalkit(home, "index", "--corpus", str(SCIFACT), "--collection", "support-kb")


def set_up_vaswani(home: Path) -> None:
    """Vaswani (NPL) as goldset ``npl`` and its 11,429 documents in a local Qdrant
    collection ``npl-kb`` (MiniLM vectors, UUID point ids, the doc id and text in the
    payload), with ``QDRANT_CONFIG`` as evalkit.toml, under ``home``."""
    import uuid

    from qdrant_client import QdrantClient, models

    from evalkit.retrievers.chroma_client import close_client, open_chroma_client

    home.mkdir(parents=True, exist_ok=True)
    qdrant = home / "qdrant"
    config = QDRANT_CONFIG.format(path=qdrant)
    (home / "evalkit.toml").write_text(config, encoding="utf-8")
    (home / "replay-only.toml").write_text(replay_only(config), encoding="utf-8")
    if qdrant.is_dir():
        return
    print("set-up (not timed): goldset import, 11,429 NPL documents embedded with MiniLM")
    (home / "index.toml").write_text("", encoding="utf-8")
    evalkit(home, "goldset", "import", "--format", "trec", str(VASWANI / "qrels"), "--topics",
            str(VASWANI / "query-text.trec"), "--name", "npl", config="index.toml")  # fmt: skip
    evalkit(home, "index", "--corpus", str(VASWANI / "corpus" / "doc-text.trec"),
            "--collection", "npl-kb", config="index.toml")  # fmt: skip
    chroma = open_chroma_client(path=home / ".evalkit" / "chroma")
    live = chroma.get_collection("npl-kb", embedding_function=None)
    got = live.get(include=["embeddings", "documents"], limit=live.count())
    close_client(chroma)
    client = QdrantClient(path=str(qdrant))
    client.create_collection(
        "npl-kb", vectors_config=models.VectorParams(size=384, distance=models.Distance.COSINE)
    )
    for start in range(0, len(got["ids"]), 1000):
        client.upsert(
            "npl-kb",
            points=[
                models.PointStruct(
                    id=str(uuid.uuid5(uuid.NAMESPACE_URL, doc_id)),
                    vector=[float(value) for value in vector],
                    payload={"doc_id": doc_id, "text": text},
                )
                for doc_id, vector, text in zip(
                    got["ids"][start : start + 1000],
                    got["embeddings"][start : start + 1000],
                    got["documents"][start : start + 1000],
                    strict=True,
                )
            ],
        )
    client.close()


def pgvector_config(dsn: str) -> str:
    """The recommended monitoring with its jobs reading the pgvector table of
    ``PGVECTOR_TABLE``, the audit job's included."""
    config = recommended_config().replace(
        'kind = "audit"\ncollection = "support-kb"\n', 'kind = "audit"\nretriever = "pgvector"\n'
    )
    return PGVECTOR_TABLE.format(dsn=dsn) + config.replace('collection = "support-kb"\n', "")


def set_up_pgvector(home: Path, scifact: Path, dsn: str) -> None:
    """The goldset and SciFact's stored vectors and texts (from the SciFact home's Chroma
    collection: no re-embedding) in table ``support_kb`` with an HNSW index (pgvector's
    defaults), and ``pgvector_config`` as evalkit.toml, under ``home``."""
    import psycopg

    home.mkdir(parents=True, exist_ok=True)
    (home / "evalkit.toml").write_text(pgvector_config(dsn), encoding="utf-8")
    (home / "replay-only.toml").write_text(replay_only(pgvector_config(dsn)), encoding="utf-8")
    if not (home / ".evalkit" / "evalkit.duckdb").exists():
        evalkit(home, "goldset", "import", "--format", "beir", str(SCIFACT), "--split", "test",
                "--name", "support")  # fmt: skip
    from evalkit.records import Document
    from evalkit.retrievers.chroma_client import TITLE_KEY, close_client, open_chroma_client

    chroma = open_chroma_client(path=scifact / ".evalkit" / "chroma")
    live = chroma.get_collection("support-kb", embedding_function=None)
    got = live.get(include=["embeddings", "documents", "metadatas"], limit=live.count())
    close_client(chroma)
    # The text column holds what was embedded (title and body), as a pipeline writing its
    # own table keeps it: a model check re-embeds it.
    texts = [
        Document(id=doc_id, text=text, title=str((metadata or {}).get(TITLE_KEY, ""))).content
        for doc_id, text, metadata in zip(
            got["ids"], got["documents"], got["metadatas"], strict=True
        )
    ]
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS support_kb")
        conn.execute(
            "CREATE TABLE support_kb (doc_id text PRIMARY KEY, content text, embedding vector(384))"
        )
        with conn.cursor() as cursor, cursor.copy("COPY support_kb FROM STDIN") as copy:
            for doc_id, text, vector in zip(got["ids"], texts, got["embeddings"], strict=True):
                copy.write_row((doc_id, text, str([float(value) for value in vector])))
        conn.execute("CREATE INDEX ON support_kb USING hnsw (embedding vector_cosine_ops)")
        conn.execute("ANALYZE support_kb")


def part_scifact_pgvector(home: Path, incidents: list[str], quiet_cycles: int) -> None:
    """The recommended monitoring on SciFact in pgvector, on a server started for the part."""
    sys.path.insert(0, str(ROOT / "tests"))
    from postgres_server import postgres_directory, start_postgres

    # SIGTERM ends the part through its finally: the server is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    directory = postgres_directory()
    server = start_postgres(directory / "pgdata")
    try:
        here = home / "scifact-pgvector"
        set_up_pgvector(here, home, server.dsn)
        part_severities(here, "evalkit.toml", incidents)
        part_quiet(here, quiet_cycles)
    finally:
        server.stop()


def part_copy(home: Path, repeat: int) -> None:
    """The scratch copy against reading the collection alone."""
    from evalkit.drill.scratch import copy_collection
    from evalkit.retrievers.chroma_client import close_client, open_chroma_client

    client = open_chroma_client(path=home / ".evalkit" / "chroma")
    live = client.get_collection("support-kb", embedding_function=None)
    reads, copies = [], []
    for attempt in range(repeat):
        began = time.perf_counter()
        offset = 0
        while True:
            page = live.get(include=["embeddings", "documents", "metadatas"], limit=1000,
                            offset=offset)  # fmt: skip
            offset += len(page["ids"])
            if len(page["ids"]) < 1000:
                break
        reads.append(time.perf_counter() - began)
        copy = copy_collection(client, "support-kb", f"bench{attempt}")
        copies.append(copy.seconds)
        client.delete_collection(copy.name)
    close_client(client)
    read, made = min(reads), min(copies)
    print(f"copy: reading the {offset:,} documents alone (the peer)  {read:6.2f} s")
    print(f"copy: the drill's scratch copy of them                   {made:6.2f} s")
    print(f"copy / read: {made / read:.1f}x (best of {repeat})")


def drill(home: Path, *args: str, config: str = "evalkit.toml") -> tuple[dict[str, Any], float]:
    """``evalkit drill --format json`` with ``args``: its report and wall seconds."""
    began = time.perf_counter()
    done = evalkit(home, "drill", "--format", "json", *args, check=False, config=config)
    seconds = time.perf_counter() - began
    if done.returncode not in (0, 1):
        raise SystemExit(f"evalkit drill {' '.join(args)} failed:\n{done.stderr}")
    report: dict[str, Any] = json.loads(done.stdout)
    return report, seconds


def time_by_job_kind(store: str) -> dict[str, float]:
    """Seconds the drill's job runs took, by job kind."""
    import duckdb

    with duckdb.connect(store, read_only=True) as con:
        rows = con.execute(
            "SELECT kind, sum(epoch(finished_at) - epoch(started_at)) FROM job_runs GROUP BY kind"
        ).fetchall()
    return {str(kind): float(seconds) for kind, seconds in rows}


def part_drill(home: Path) -> None:
    """The default drill as a user runs it, and where its time goes."""
    report, seconds = drill(home)
    jobs = time_by_job_kind(report["store"])
    print(f"drill: evalkit drill with its defaults, whole process   {seconds:6.1f} s")
    for kind, spent in sorted(jobs.items()):
        print(f"drill:   {kind:<16} job runs                     {spent:6.1f} s")
    rest = seconds - sum(jobs.values())
    print(f"drill:   start-up, copies, rules and explain          {rest:6.1f} s")
    print(f"drill: {len(report['false_alarms'])} false alarms in {report['quiet_cycles']} "
          "quiet cycles")  # fmt: skip
    for result in report["incidents"]:
        caught = result["first_alert"]
        print(
            f"drill: {result['incident']:<15} {result['severity']:<5} caught "
            f"{'no' if caught is None else 'cycle ' + str(caught['cycle'])}, cause "
            f"{result['top_cause']} (own cause ranked {result['cause_rank']}), resolved after "
            f"{result['resolved_after']}"
        )


def part_severities(home: Path, config: str, incidents: list[str]) -> None:
    """The smallest severity of each of ``incidents`` caught within 1 and 3 cycles, as
    Markdown, under ``config``."""
    print(f"severities under {config}:")
    outcomes: dict[str, list[tuple[float, int | None, int | None]]] = defaultdict(list)
    for incident in incidents:
        severities = SEVERITIES[incident]
        for severity in severities:
            report, seconds = drill(
                home, "--incident", f"{incident}:{severity}", "--quiet-cycles", "2",
                "--cycles", "3", "--recovery-cycles", "6", config=config,
            )  # fmt: skip
            [result] = report["incidents"]
            cycle = None if result["first_alert"] is None else result["first_alert"]["cycle"]
            outcomes[incident].append((severity, cycle, result["cause_rank"]))
            print(f"severities: {incident}:{severity} caught at cycle {cycle}, own cause "
                  f"ranked {result['cause_rank']} ({seconds:.0f} s)")  # fmt: skip
    print()
    print("| incident | smallest caught in 1 cycle | in 3 cycles | cycles to detection by "
          "severity | own cause's rank by severity |")  # fmt: skip
    print("|---|---|---|---|---|")
    for incident, rows in outcomes.items():
        within1, within3 = _caught_from(rows, 1), _caught_from(rows, 3)
        cycles = ", ".join(f"{s:g}: {'-' if c is None else c}" for s, c, _ in rows)
        ranks = ", ".join(f"{s:g}: {'-' if r is None else r}" for s, _, r in rows)
        print(f"| {incident} | {within1 if within1 is not None else 'none'} | "
              f"{within3 if within3 is not None else 'none'} | {cycles} | {ranks} |")  # fmt: skip


def _caught_from(rows: list[tuple[float, int | None, int | None]], cycles: int) -> float | None:
    """The smallest severity from which every larger one tried was caught within ``cycles``
    (which documents an incident hits matters: a larger share can go uncaught)."""
    smallest = None
    for severity, cycle, _ in sorted(rows, reverse=True):
        if cycle is None or cycle > cycles:
            break
        smallest = severity
    return smallest


def part_quiet(home: Path, cycles: int) -> None:
    """False alarms over ``cycles`` quiet cycles of an unchanged index."""
    # One incident caught at once and its recovery after the quiet cycles keeps the run
    # within the command's own rules (it needs an incident); only the quiet ones are counted.
    report, seconds = drill(
        home, "--incident", "model_mismatch", "--quiet-cycles", str(cycles), "--cycles", "1",
        "--recovery-cycles", "6",
    )  # fmt: skip
    alarms = report["false_alarms"]
    print(f"quiet: {len(alarms)} false alarms in {cycles} quiet cycles "
          f"({len(alarms) / cycles:.3f} per cycle; rules: {sorted(set(alarms)) or '-'}); "
          f"{seconds / 60:.1f} min")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--home", type=Path, default=ROOT / "reports" / "bench-drills")
    parser.add_argument("--parts", default="copy,drill,severities,replay-only,quiet")
    parser.add_argument("--quiet-cycles", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--incidents", default=",".join(SEVERITIES), help="the incidents of severities parts"
    )
    args = parser.parse_args()
    if not SCIFACT.is_dir():
        print(f"skipped: {SCIFACT} is not present")
        return 0
    home: Path = args.home.resolve()
    set_up(home)
    parts = set(args.parts.split(","))
    incidents = args.incidents.split(",")
    if "copy" in parts:
        part_copy(home, args.repeat)
    if "drill" in parts:
        part_drill(home)
    if "severities" in parts:
        part_severities(home, "evalkit.toml", incidents)
    if "replay-only" in parts:
        part_severities(home, "replay-only.toml", incidents)
    if "quiet" in parts:
        part_quiet(home, args.quiet_cycles)
    if "npl-qdrant" in parts:
        npl = home / "npl-qdrant"
        set_up_vaswani(npl)
        qdrant_incidents = [name for name in incidents if name != "ann_degradation"]
        part_severities(npl, "evalkit.toml", qdrant_incidents)
        part_quiet(npl, args.quiet_cycles)
    if "npl-qdrant-replay-only" in parts:
        npl = home / "npl-qdrant"
        set_up_vaswani(npl)
        qdrant_incidents = [name for name in incidents if name != "ann_degradation"]
        part_severities(npl, "replay-only.toml", qdrant_incidents)
    if "scifact-pgvector" in parts:
        pgvector_incidents = [name for name in incidents if name in PGVECTOR_INCIDENTS]
        part_scifact_pgvector(home, pgvector_incidents, args.quiet_cycles)
    print("load average (1, 5, 15 min): {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
