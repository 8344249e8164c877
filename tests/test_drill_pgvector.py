"""A drill on a pgvector table, on a real PostgreSQL server with pgvector (one per session,
``postgres_server``): the copy holds the live rows, columns and indexes, every incident
changes the copy as on Chroma (a document read as ``PgvectorRetriever`` reads it), the
restore puts back the very copy the quiet cycles searched, the live table is the same row for
row after a whole drill, and a copy whose drill was killed is swept by the next one and by
the retention job's sweep.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from demo_index import demo_documents, demo_goldset, demo_vectors
from postgres_server import PostgresServer, postgres_server_fixture  # noqa: F401
from test_drill_run import AUDITED, CONFIG, JOB_FAILURE_RULE, on_the_retriever_table
from test_retrievers_model_check import HashEmbedder

from evalkit.config import load_settings
from evalkit.drill import scratch
from evalkit.drill.incidents import INCIDENTS, inject
from evalkit.drill.pgvector import PgvectorCopies, copy_pgvector_table
from evalkit.drill.scratch import DRILL_PREFIX, sweep_drill_leftovers
from evalkit.errors import RetrieverError
from evalkit.scheduler.drill import DrillRequest, run_drill
from evalkit.store import Store
from evalkit.store.goldsets import save_goldset

pytestmark = pytest.mark.slow

RELEVANT = frozenset({"doc-00", "doc-04", "doc-08", "doc-12"})


def _rows(server: PostgresServer, table: str) -> list[tuple[Any, ...]]:
    """Every row of ``table`` (``schema.table`` or ``table``), in id order."""
    with server.connect() as conn:
        return conn.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()


def _drill_tables(server: PostgresServer) -> list[str]:
    with server.connect() as conn:
        found = conn.execute(
            "SELECT relname FROM pg_class WHERE relkind = 'r' AND starts_with(relname, %s)",
            [DRILL_PREFIX],
        ).fetchall()
    return sorted(row[0] for row in found)


@pytest.fixture
def small_table(
    postgres_server: PostgresServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> str:
    """``drills.small``: 16 documents of 60 words, a text id, an identity column, a topic
    column, a generated column and an HNSW index; an evalkit.toml whose
    [retriever.pgvector] names it."""
    embedder = HashEmbedder()
    texts = [" ".join(f"w{n}-{i}" for i in range(60)) for n in range(16)]
    with postgres_server.connect() as conn:
        conn.execute("CREATE SCHEMA IF NOT EXISTS drills")
        conn.execute("DROP TABLE IF EXISTS drills.small")
        conn.execute(
            "CREATE TABLE drills.small (doc_id text PRIMARY KEY,"
            " pk bigint GENERATED ALWAYS AS IDENTITY, topic text, content text,"
            " words tsvector GENERATED ALWAYS AS (to_tsvector('simple', content)) STORED,"
            f" embedding vector({embedder.dimension}))"
        )
        conn.execute("CREATE INDEX ON drills.small USING hnsw (embedding vector_cosine_ops)")
        for n, (text, vector) in enumerate(zip(texts, embedder.embed(texts), strict=True)):
            conn.execute(
                "INSERT INTO drills.small (doc_id, topic, content, embedding)"
                " VALUES (%s, %s, %s, %s::vector)",
                [f"doc-{n:02d}", f"t{n % 3}", text, str(vector.tolist())],
            )
    (tmp_path / "evalkit.toml").write_text(
        '[retriever]\nkind = "pgvector"\n\n[retriever.pgvector]\n'
        f'dsn = "{postgres_server.dsn}"\ntable = "drills.small"\nid_column = "doc_id"\n'
        'text_column = "content"\n',
        encoding="utf-8",
    )
    monkeypatch.setenv("EVALKIT_CONFIG", str(tmp_path / "evalkit.toml"))
    monkeypatch.setenv("EVALKIT_HOME", str(tmp_path / "home"))
    return "drills.small"


def test_each_incident_changes_a_pgvector_copy_and_never_the_live_table(
    postgres_server: PostgresServer, small_table: str, tmp_path: Path
) -> None:
    before = _rows(postgres_server, small_table)
    embedder = HashEmbedder()
    with PgvectorCopies(load_settings(), [small_table], "p1") as copies:
        copy = copies.names[small_table]
        assert copy == f"drills.{DRILL_PREFIX}p1-small"
        assert _rows(postgres_server, f'drills."{DRILL_PREFIX}p1-small"') == before

        def indexes() -> list[tuple[str, str]]:
            with postgres_server.connect() as conn:
                found = conn.execute(
                    "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s "
                    "ORDER BY indexname",
                    [f"{DRILL_PREFIX}p1-small"],
                ).fetchall()
            return [(str(name), str(made)) for name, made in found]

        quiet_indexes = indexes()
        assert sum("hnsw" in made for _, made in quiet_indexes) == 1, "the live HNSW index"

        def injected(incident: str, severity: float) -> tuple[Any, Any]:
            copies.hold()
            done = inject(
                copies.index(small_table),
                incident,
                severity,
                relevant=RELEVANT,
                seed=1,
                embed=embedder.embed,
            )
            return done, copies.index(small_table).contents()

        deleted, after = injected("deletion", 0.5)
        # A run records the table's indexes by name: the fresh copy's are the quiet one's.
        assert indexes() == quiet_indexes
        assert len(deleted.documents) == 2 + 6
        assert sorted(after.ids) == sorted({row[0] for row in before} - set(deleted.documents))
        copies.restore()
        assert indexes() == quiet_indexes

        duplicated, after = injected("duplicates", 0.25)
        texts = dict(zip(after.ids, after.documents, strict=True))
        for copy_id in duplicated.documents:
            assert texts[copy_id] == texts[copy_id.removesuffix("#drill-copy")]
        assert len(after.ids) == 16 + len(duplicated.documents)
        numbers = [metadata["pk"] for metadata in after.metadatas if metadata is not None]
        assert len(set(numbers)) == len(after.ids), "the identity numbers the new rows"
        copies.restore()

        stale, after = injected("stale_content", 0.25)
        topics = {row[0]: row[2] for row in before}
        for doc_id, text, metadata in zip(after.ids, after.documents, after.metadatas, strict=True):
            assert metadata is not None
            assert metadata["topic"] == topics[doc_id]
            assert text is not None
            assert text.startswith(f"w{int(doc_id[4:])}-0 ") == (doc_id not in stale.documents)
        copies.restore()

        chunked, after = injected("chunking_drift", 0.25)
        for doc_id in chunked.documents:
            assert doc_id not in after.ids
            assert f"{doc_id}#chunk-0" in after.ids
            assert f"{doc_id}#chunk-1" in after.ids
        copies.restore()

        copies.hold()
        degraded = inject(
            copies.index(small_table),
            "ann_degradation",
            0.75,
            rebuild=lambda hnsw: copies.rebuild(small_table, hnsw),
        )
        assert degraded.summary == (
            "HNSW index rebuilt with max_neighbors 16 -> 4, ef_construction 64 -> 16"
        )
        [(_, lowered)] = [(name, made) for name, made in indexes() if "hnsw" in made]
        assert "m='4'" in lowered
        assert "ef_construction='16'" in lowered
        assert _rows(postgres_server, f'drills."{DRILL_PREFIX}p1-small"') == before
        copies.restore()
        assert indexes() == quiet_indexes
        assert _rows(postgres_server, f'drills."{DRILL_PREFIX}p1-small"') == before
        assert _drill_tables(postgres_server) == [f"{DRILL_PREFIX}p1-small"]
        # Ingestion lag: the changes are written into the copy by the restore (catch-up).
        lag = INCIDENTS["ingestion_lag"]
        assert lag.catch_up is not None
        copies.hold()
        withheld = inject(
            copies.index(small_table),
            "ingestion_lag",
            6.0,
            relevant=RELEVANT,
            changes=tmp_path / "changes.jsonl",
        )
        copies.restore()
        lag.catch_up(copies.index(small_table), withheld)
        caught_up = copies.index(small_table).contents()
        by_id = dict(zip(caught_up.ids, caught_up.embeddings, strict=True))
        quiet = dict(zip([row[0] for row in before], [row[-1] for row in before], strict=True))
        assert set(by_id) == set(quiet)
        for doc_id, text in zip(caught_up.ids, caught_up.documents, strict=True):
            assert text is not None
            assert text.endswith(" (revised)") == (doc_id in withheld.withheld)
        vectors = {
            row[0]: row[-1] for row in _rows(postgres_server, f'drills."{DRILL_PREFIX}p1-small"')
        }
        assert vectors == quiet, "every vector kept"
    assert _drill_tables(postgres_server) == []
    assert _rows(postgres_server, small_table) == before


def test_a_pgvector_copy_left_by_a_killed_drill_is_swept(
    postgres_server: PostgresServer, small_table: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    killed = subprocess.Popen([sys.executable, "-c", "pass"])
    killed.wait(timeout=30)

    def left_by_killed_drill(drill_id: str) -> str:
        with postgres_server.connect() as conn, monkeypatch.context() as patched:
            patched.setattr(scratch, "owner", lambda: f"{socket.gethostname()}:{killed.pid}")
            return copy_pgvector_table(conn, small_table, drill_id)

    left = left_by_killed_drill("killed")
    assert sweep_drill_leftovers(load_settings()) == [left]
    left_by_killed_drill("killed-again")
    with PgvectorCopies(load_settings(), [small_table], "next"):
        assert _drill_tables(postgres_server) == [f"{DRILL_PREFIX}next-small"]
    assert _drill_tables(postgres_server) == []
    with postgres_server.connect() as conn, pytest.raises(RetrieverError, match="cannot copy"):
        copy_pgvector_table(conn, "drills.absent", "next")
    assert _drill_tables(postgres_server) == [], "a failed copy leaves nothing"


PGVECTOR_CONFIG = (
    """
[retriever]
kind = "pgvector"

[retriever.pgvector]
dsn = "{dsn}"
table = "drill_demo"
id_column = "doc_id"
text_column = "content"
"""
    + on_the_retriever_table(CONFIG)
    + JOB_FAILURE_RULE
    # The audit job and rules of the Chroma drill, the job reading the table instead.
    + AUDITED.replace('collection = "demo-kb"\n', 'retriever = "pgvector"\n')
)


def test_a_drill_of_a_pgvector_table_catches_its_incidents_and_leaves_it_unchanged(
    postgres_server: PostgresServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The demo corpus with MiniLM vectors in a pgvector table with an HNSW index, audited
    by an audit job: a deletion is caught on its first cycle; 5 % of the rows' vectors in
    another space, which the replay job's model check (16 rows) lets through, is caught by
    the audit on its first cycle and named first by explain; the whole table in another
    space makes the replay job refuse it, which the job_failure rule catches; the live table
    is the same row for row."""
    with postgres_server.connect() as conn:
        conn.execute("DROP TABLE IF EXISTS drill_demo")
        conn.execute(
            "CREATE TABLE drill_demo (doc_id text PRIMARY KEY, content text, embedding vector(384))"
        )
        with conn.cursor() as cursor, cursor.copy("COPY drill_demo FROM STDIN") as copy:
            for document, vector in zip(demo_documents(), demo_vectors(), strict=True):
                copy.write_row((document.id, document.content, str(vector.tolist())))
        conn.execute("CREATE INDEX ON drill_demo USING hnsw (embedding vector_cosine_ops)")
    config = tmp_path / "evalkit.toml"
    config.write_text(PGVECTOR_CONFIG.format(dsn=postgres_server.dsn), encoding="utf-8")
    monkeypatch.setenv("EVALKIT_CONFIG", str(config))
    monkeypatch.setenv("EVALKIT_HOME", str(tmp_path / "home"))
    user = load_settings()
    with Store.open(user.resolved_store_path) as live_store:
        save_goldset(live_store, demo_goldset())
    before = _rows(postgres_server, "drill_demo")

    report = run_drill(
        user,
        DrillRequest(
            incidents=(("deletion", 0.34), ("model_mismatch", 0.05), ("model_mismatch", None)),
            quiet_cycles=2,
            cycles=2,
            recovery_cycles=6,
            drill_id="pg",
        ),
    )

    assert report.copies == {"drill_demo": f"{DRILL_PREFIX}pg-drill_demo"}
    assert report.false_alarms == ()
    deletion, mixed, mismatch = report.incidents
    assert deletion.first_alert is not None
    assert deletion.first_alert[0] in {"ndcg-drop", "index-health"}, report.to_markdown()
    assert deletion.first_alert[1] == 1, report.to_markdown()
    before_ndcg, after_ndcg = deletion.effect["ndcg@10"]
    assert before_ndcg is not None
    assert after_ndcg is not None
    assert after_ndcg < before_ndcg
    assert deletion.resolved_after is not None, deletion
    assert mixed.first_alert == ("wrong-model", 1), report.to_markdown()
    assert mixed.cause_rank == 1, mixed
    assert mixed.audit_findings["vectors_from_another_model"] >= 1, mixed
    assert "nightly" not in mixed.failed_jobs
    assert mismatch.carried == ()
    assert mismatch.first_alert is not None
    assert mismatch.first_alert[0] in {"wrong-model", "job-failed"}, report.to_markdown()
    assert mismatch.first_alert[1] == 1, report.to_markdown()
    assert "nightly" in mismatch.failed_jobs
    assert report.exit_code == 0
    assert _drill_tables(postgres_server) == []
    assert _rows(postgres_server, "drill_demo") == before
