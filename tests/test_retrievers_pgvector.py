"""pgvector on a real PostgreSQL server (127.0.0.1): the demo goldset embedded with the bundled
MiniLM into tables with an HNSW index, an IVFFlat index and none, searched by cosine, inner
product and L2, against embedded Chroma; tenants; failures; a server that stops mid-run."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import duckdb
import numpy as np
import numpy.typing as npt
import pandas as pd
import pytest
from demo_index import cached_minilm
from postgres_server import (  # noqa: F401
    PostgresServer,
    free_port,
    postgres_directory,
    postgres_server_fixture,
    start_postgres,
)

from evalkit.config import DistanceMetric, EmbedderKind, PgvectorSettings, SearchMode, Settings
from evalkit.embedding import CachingEmbedder
from evalkit.errors import CollectionNotFoundError, ConfigError, RetrieverError
from evalkit.goldset import Goldset, iter_corpus, load_goldset
from evalkit.metrics import Evaluator, parse_measures
from evalkit.pipeline import evaluate_goldset
from evalkit.records import Query, QueryResult
from evalkit.records.requests import GoldsetRunRequest
from evalkit.retrievers import ChromaRetriever, index_corpus, open_chroma_client
from evalkit.retrievers.factory import RetrieverOptions, build_retriever
from evalkit.retrievers.pgvector import PgvectorRetriever, shown_table_name, split_table_name
from evalkit.stats.latency_check import run_latencies
from evalkit.store import RunSpec, Store
from evalkit.store.runs import create_run, get_run, list_runs
from evalkit.traffic.replay import filters_by_tenant

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "goldsets" / "demo"
PASSWORD = "pg-Secret-4711"
METRIC_OPS = {"cosine": "cosine_ops", "inner_product": "ip_ops", "l2": "l2_ops"}
TABLES = {"hnsw": "demo_hnsw", "ivfflat": "demo_ivfflat", "exact": "kb.Demo Exact"}


@dataclass(frozen=True)
class Demo:
    server: PostgresServer
    goldset: Goldset
    embedder: CachingEmbedder
    doc_ids: list[str]
    tenants: dict[str, str]
    contents: dict[str, str]
    vectors: npt.NDArray[np.float32]
    chroma_ndcg: float

    def settings(self, table: str = "demo_hnsw", **changes: object) -> PgvectorSettings:
        base = PgvectorSettings(
            dsn=self.server.dsn,
            table=table,
            id_column="doc_id",
            embedding_column="embedding",
            text_column="content",
        )
        return base.model_copy(update=changes)


def ndcg_at_10(goldset: Goldset, results: Sequence[QueryResult]) -> float:
    rows = [(result.query_id, doc.doc_id, doc.score) for result in results for doc in result.docs]
    run = pd.DataFrame(rows, columns=["query_id", "doc_id", "score"])
    evaluator = Evaluator(list(goldset.judgments), parse_measures(["ndcg@10"]))
    return float(evaluator.evaluate(run, complete=True).aggregate["ndcg@10"])


def _vector(vector: npt.NDArray[np.float32]) -> str:
    return "[" + ",".join(repr(float(value)) for value in vector) + "]"


@pytest.fixture(scope="session")
def demo(postgres_server: PostgresServer, tmp_path_factory: pytest.TempPathFactory) -> Demo:
    """The demo corpus in embedded Chroma and in three PostgreSQL tables (HNSW, IVFFlat and
    no index, each with one index per metric), embedded once."""
    embedder = cached_minilm()
    goldset = load_goldset(DEMO, name="demo")
    documents = list(iter_corpus(DEMO / "corpus.jsonl"))
    vectors = embedder.embed([document.content for document in documents])
    chroma = open_chroma_client(path=tmp_path_factory.mktemp("chroma"))
    index_corpus(chroma, documents, embedder, collection_name="demo")
    with ChromaRetriever(chroma.get_collection("demo"), embedder) as retriever:
        chroma_ndcg = ndcg_at_10(goldset, retriever.retrieve(goldset.queries, 10))
    rows = [
        (document.id, str(document.metadata["tenant"]), document.content, _vector(vector))
        for document, vector in zip(documents, vectors, strict=True)
    ]
    with postgres_server.connect() as conn:
        conn.execute("CREATE SCHEMA kb")
        conn.execute(
            'CREATE TABLE kb."Demo Exact" (doc_id text PRIMARY KEY, tenant text NOT NULL,'
            " content text, embedding vector(384))"
        )
        with conn.cursor() as cursor, cursor.copy('COPY kb."Demo Exact" FROM STDIN') as copy:
            for row in rows:
                copy.write_row(row)
        for method, table in (("hnsw", "demo_hnsw"), ("ivfflat", "demo_ivfflat")):
            conn.execute(f'CREATE TABLE {table} AS SELECT * FROM kb."Demo Exact"')
            conn.execute(f"ALTER TABLE {table} ADD PRIMARY KEY (doc_id)")
            options = "WITH (lists = 8)" if method == "ivfflat" else ""
            for ops in METRIC_OPS.values():
                conn.execute(
                    f"CREATE INDEX {table}_{ops} ON {table}"
                    f" USING {method} (embedding vector_{ops}) {options}"
                )
        conn.execute("ANALYZE")
        # The demo tables are tiny, so the planner would scan them sequentially; with
        # sequential scans discouraged it uses an index whenever the query's shape allows
        # it, and that shape is what these tests check.
        conn.execute("ALTER DATABASE postgres SET enable_seqscan = off")
    return Demo(
        server=postgres_server,
        goldset=goldset,
        embedder=embedder,
        doc_ids=[document.id for document in documents],
        tenants={document.id: str(document.metadata["tenant"]) for document in documents},
        contents={document.id: document.content for document in documents},
        vectors=vectors,
        chroma_ndcg=chroma_ndcg,
    )


def index_scans(demo: Demo, index: str) -> int:
    with demo.server.connect() as conn:
        row = conn.execute(
            "SELECT idx_scan FROM pg_stat_user_indexes WHERE indexrelname = %s", (index,)
        ).fetchone()
    assert row is not None
    return int(row[0])


def wait_for_index_scans(demo: Demo, index: str, before: int) -> int:
    """idx_scan of ``index`` once the closed retriever's backend has flushed its statistics."""
    deadline = time.monotonic() + 5.0
    while True:
        scans = index_scans(demo, index)
        if scans > before or time.monotonic() > deadline:
            return scans
        time.sleep(0.1)


@pytest.mark.parametrize("metric", ["cosine", "inner_product", "l2"])
@pytest.mark.parametrize("search", ["hnsw", "ivfflat", "exact"])
def test_same_ndcg_as_embedded_chroma_for_every_metric_and_index(
    demo: Demo, metric: str, search: str
) -> None:
    settings = demo.settings(
        TABLES[search],
        metric=DistanceMetric(metric),
        ivfflat_probes=8 if search == "ivfflat" else None,
    )
    index = f"{TABLES[search]}_{METRIC_OPS[metric]}"
    before = index_scans(demo, index) if search != "exact" else 0
    with PgvectorRetriever(settings, demo.embedder) as retriever:
        results = retriever.retrieve(demo.goldset.queries, 10)
        described = retriever.describe()
    assert all(result.ok for result in results)
    assert all(len(result.docs) == 10 for result in results)
    assert ndcg_at_10(demo.goldset, results) == pytest.approx(demo.chroma_ndcg, abs=0.01)
    if search == "exact":
        assert described["ann_indexes"] == []
    else:
        # The search went through the index built for this metric, not a sequential scan.
        assert described["ann_indexes"] == [index]
        # Its build options are recorded, so a rebuild with others shows as a change.
        options = ["lists=8"] if search == "ivfflat" else []
        assert described["ann_index_options"] == {index: options}
        assert wait_for_index_scans(demo, index, before) > before


@pytest.mark.parametrize("metric", ["cosine", "inner_product", "l2"])
def test_scores_are_higher_is_better_as_documented(demo: Demo, metric: str) -> None:
    query = demo.goldset.queries[0]
    settings = demo.settings(metric=DistanceMetric(metric), search=SearchMode.exact)
    with PgvectorRetriever(settings, demo.embedder) as retriever:
        [result] = retriever.retrieve([query], 5)
    vector = demo.embedder.embed([query.text])[0]
    by_id = dict(zip(demo.doc_ids, demo.vectors, strict=True))
    expected = {
        "cosine": lambda v: float(v @ vector),
        "inner_product": lambda v: float(v @ vector),
        "l2": lambda v: -float(np.linalg.norm(v - vector)),
    }[metric]
    scores = [doc.score for doc in result.docs]
    assert scores == sorted(scores, reverse=True)
    assert [doc.rank for doc in result.docs] == [1, 2, 3, 4, 5]
    for doc in result.docs:
        assert doc.score == pytest.approx(expected(by_id[doc.doc_id]), abs=1e-5)


def test_exact_search_uses_no_index(demo: Demo) -> None:
    index = "demo_hnsw_cosine_ops"
    before = index_scans(demo, index)
    settings = demo.settings(search=SearchMode.exact)
    with PgvectorRetriever(settings, demo.embedder) as retriever:
        results = retriever.retrieve(demo.goldset.queries[:20], 10)
    assert all(result.ok and len(result.docs) == 10 for result in results)
    time.sleep(1.2)  # longer than PostgreSQL's statistics flush interval
    assert index_scans(demo, index) == before


def test_a_tenant_filter_returns_no_other_tenants_document(demo: Demo) -> None:
    queries = demo.goldset.queries
    assert {query.tenant for query in queries} == {"kestrel", "harbor"}
    k = 50
    with PgvectorRetriever(demo.settings(tenant_column="tenant"), demo.embedder) as retriever:
        filtered = retriever.retrieve(queries, k)
        assert filters_by_tenant(retriever.describe())
    with PgvectorRetriever(demo.settings(), demo.embedder) as retriever:
        unfiltered = retriever.retrieve(queries, k)
        assert not filters_by_tenant(retriever.describe())
    for query, result in zip(queries, filtered, strict=True):
        assert result.ok
        assert {demo.tenants[doc.doc_id] for doc in result.docs} == {query.tenant}
        # HNSW filters after the index scan; pgvector's iterative scan keeps it going until
        # k rows of the tenant are found, so a small tenant still gets k documents.
        assert len(result.docs) == k
    # Without the filter the same queries do see the other tenant: the check above can fail.
    assert any(
        demo.tenants[doc.doc_id] != query.tenant
        for query, result in zip(queries, unfiltered, strict=True)
        for doc in result.docs
    )


def test_where_key_overrides_the_tenant_column_and_queries_without_tenant_see_all(
    demo: Demo,
) -> None:
    queries = [
        Query(id="a", text="How many PTO days do I get?", tenant="harbor"),
        Query(id="b", text="How many PTO days do I get?"),
    ]
    settings = demo.settings(tenant_column="content")  # a wrong column, overridden below
    with PgvectorRetriever(settings, demo.embedder, where_key="tenant") as retriever:
        tenanted, everyone = retriever.retrieve(queries, 330)
    assert {demo.tenants[doc.doc_id] for doc in tenanted.docs} == {"harbor"}
    assert len(tenanted.docs) == sum(tenant == "harbor" for tenant in demo.tenants.values())
    assert {demo.tenants[doc.doc_id] for doc in everyone.docs} == {"harbor", "kestrel"}


def test_a_tenant_column_holds_one_value_per_row(demo: Demo) -> None:
    """An integer tenant column is compared with a query's tenant; the embedding column
    named as the tenant failed every query (InvalidTextRepresentation), and is refused."""
    with demo.server.connect() as conn:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS demo_int_tenant AS SELECT doc_id,"
            " CASE tenant WHEN 'harbor' THEN 1 ELSE 2 END AS tenant_no, content, embedding"
            ' FROM kb."Demo Exact"'
        )
    queries = [Query(id="a", text="How many PTO days do I get?", tenant="1")]
    settings = demo.settings(table="demo_int_tenant", tenant_column="tenant_no")
    with PgvectorRetriever(settings, demo.embedder) as retriever:
        (result,) = retriever.retrieve(queries, 330)
    assert result.error is None
    assert {demo.tenants[doc.doc_id] for doc in result.docs} == {"harbor"}
    with pytest.raises(ConfigError, match=r"tenant column 'embedding' .* is vector\(384\)"):
        PgvectorRetriever(demo.settings(), demo.embedder, where_key="embedding")


def test_a_tenant_column_the_table_lacks_is_refused_naming_the_option_it_came_from(
    demo: Demo,
) -> None:
    """A misspelt --where-key was exit 3, a retriever failure, and named tenant_column;
    Chroma and Qdrant refuse a tenant key no record holds as a mistake in the options."""
    columns = "content, doc_id, embedding, tenant"
    with pytest.raises(ConfigError) as refused:
        PgvectorRetriever(demo.settings(), demo.embedder, where_key="tenantx")
    assert str(refused.value) == (
        "table public.demo_hnsw has no column 'tenantx' (`where_key`) to hold each row's "
        f"tenant; its columns are: {columns}"
    )
    with pytest.raises(ConfigError) as configured:
        PgvectorRetriever(demo.settings(tenant_column="tenantx"), demo.embedder)
    assert str(configured.value) == (
        "table public.demo_hnsw has no column 'tenantx' (tenant_column in "
        f"[retriever.pgvector]) to hold each row's tenant; its columns are: {columns}"
    )
    with pytest.raises(RetrieverError, match=r"has no column 'docid' \(id_column\)"):
        PgvectorRetriever(demo.settings(id_column="docid"), demo.embedder)


def test_a_misspelt_where_key_exits_2_through_the_cli(demo: Demo, tmp_path: Path) -> None:
    (tmp_path / "evalkit.toml").write_text(
        textwrap.dedent(
            f"""\
            [retriever]
            kind = "pgvector"

            [retriever.pgvector]
            dsn = "{demo.server.dsn}"
            table = "demo_hnsw"
            id_column = "doc_id"
            embedding_column = "embedding"
            """
        ),
        encoding="utf-8",
    )
    env = evalkit_env(tmp_path)
    imported = evalkit(tmp_path, env, "goldset", "import", str(DEMO), "--name", "demo")
    assert imported.returncode == 0, imported.stderr
    run = ["run", "--goldset", "demo", "--k", "10", "--where-key", "tenantx"]
    refused = evalkit(tmp_path, env, *run)
    assert refused.returncode == 2, refused.stderr
    assert " ".join(refused.stderr.split()) == (
        "error: table public.demo_hnsw has no column 'tenantx' (--where-key) to hold each "
        "row's tenant; its columns are: content, doc_id, embedding, tenant"
    )


def test_replay_through_the_cli_matches_chroma_and_never_shows_the_password(
    demo: Demo, tmp_path: Path
) -> None:
    dsn = demo.server.dsn.replace("postgres@", f"postgres:{PASSWORD}@")
    (tmp_path / "evalkit.toml").write_text(
        textwrap.dedent(
            f"""\
            [retriever]
            kind = "pgvector"

            [retriever.pgvector]
            dsn = "{dsn}"
            table = "demo_hnsw"
            id_column = "doc_id"
            embedding_column = "embedding"
            text_column = "content"
            metric = "cosine"
            hnsw_ef_search = 64
            """
        ),
        encoding="utf-8",
    )
    env = evalkit_env(tmp_path)
    imported = evalkit(tmp_path, env, "goldset", "import", str(DEMO), "--name", "demo")
    assert imported.returncode == 0, imported.stderr
    done = evalkit(tmp_path, env, "run", "--goldset", "demo", "--k", "10", "--format", "json")
    assert done.returncode == 0, done.stderr
    assert PASSWORD not in done.stdout + done.stderr
    run = json.loads(done.stdout)
    assert run["status"] == "complete"
    assert run["aggregates"]["ndcg@10"] == pytest.approx(demo.chroma_ndcg, abs=0.01)
    with duckdb.connect(str(tmp_path / "home" / "evalkit.duckdb"), read_only=True) as store:
        stored = store.execute(
            "SELECT retriever_kind, retriever_config::VARCHAR, model_name, index_fingerprint"
            " FROM runs"
        ).fetchall()
    [(kind, config, model_name, fingerprint)] = stored
    assert kind == "pgvector"
    assert PASSWORD not in config
    assert json.loads(config)["table"] == "public.demo_hnsw"
    assert model_name == demo.embedder.name
    assert fingerprint


def evalkit_env(tmp_path: Path) -> dict[str, str]:
    env = {**os.environ, "EVALKIT_HOME": str(tmp_path / "home"), "PYTHONPATH": str(REPO)}
    env.pop("EVALKIT_CONFIG", None)
    return env


def evalkit(
    cwd: Path, env: dict[str, str], *args: str, prelude: str | None = None
) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "evalkit", *args]
    if prelude is not None:
        command = [
            sys.executable,
            "-c",
            f"{prelude}\nimport runpy; runpy.run_module('evalkit', run_name='__main__')",
            *args,
        ]
    return subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False
    )


def copy_demo_table(
    demo: Demo,
    conn: object,
    table: str,
    *,
    dimension: int = 384,
    vectors: npt.NDArray[np.float32] | None = None,
) -> None:
    """``table`` with the demo rows, or their ``vectors`` (``conn`` is a psycopg connection)."""
    execute = conn.execute  # type: ignore[attr-defined]
    execute(
        f"CREATE TABLE {table} (doc_id text PRIMARY KEY, tenant text, content text,"
        f" embedding vector({dimension}))"
    )
    with conn.cursor() as cursor, cursor.copy(f"COPY {table} FROM STDIN") as copy:  # type: ignore[attr-defined]
        stored = demo.vectors if vectors is None else vectors
        for doc_id, vector in zip(demo.doc_ids, stored, strict=True):
            row = (doc_id, demo.tenants[doc_id], demo.contents[doc_id], _vector(vector[:dimension]))
            copy.write_row(row)


def test_a_table_of_another_dimension_is_refused_up_front(demo: Demo) -> None:
    with demo.server.connect() as conn:
        copy_demo_table(demo, conn, "short_vectors", dimension=8)
    with pytest.raises(RetrieverError, match=r"8-dimensional vectors.*384-dimensional"):
        PgvectorRetriever(demo.settings("short_vectors"), demo.embedder)


def test_a_model_of_the_same_dimension_is_told_apart_by_re_embedded_rows(demo: Demo) -> None:
    """Vectors from another embedding space of the same dimension (the demo's, rotated) pass
    a dimension check; re-embedding the stored text shows they are not the query model's."""
    rotation, _ = np.linalg.qr(np.random.default_rng(5).normal(size=(384, 384)))
    with demo.server.connect() as conn:
        copy_demo_table(demo, conn, "other_model", vectors=demo.vectors @ rotation)
    with pytest.raises(RetrieverError, match=r"not made by the query embedder") as refused:
        PgvectorRetriever(demo.settings("other_model"), demo.embedder)
    median = re.search(r"median cosine of (-?[0-9.]+)", str(refused.value))
    assert median is not None
    assert abs(float(median.group(1))) < 0.3

    # Without a text column there is nothing to re-embed: only the dimension is checked, and
    # the stored run says so.
    blind = PgvectorRetriever(demo.settings("other_model", text_column=None), demo.embedder)
    with blind:
        assert blind.describe()["model_check"] == {
            "method": "dimension only (set text_column to re-embed sampled rows)"
        }

    with PgvectorRetriever(demo.settings(), demo.embedder) as same:
        check = same.describe()["model_check"]
    assert check["method"] == "dimension and 16 re-embedded rows of text_column"
    assert check["result"]["sampled"] == 16
    assert check["result"]["median_cosine"] == pytest.approx(1.0, abs=1e-5)


def test_a_missing_table_or_column_is_named_with_what_exists(demo: Demo) -> None:
    with pytest.raises(
        CollectionNotFoundError, match=r"'nowhere' does not exist.*public.demo_hnsw"
    ):
        PgvectorRetriever(demo.settings("nowhere"), demo.embedder)
    with pytest.raises(RetrieverError, match=r"no column 'chunk_id' \(id_column\).*doc_id"):
        PgvectorRetriever(demo.settings(id_column="chunk_id"), demo.embedder)
    with pytest.raises(RetrieverError, match=r"'content' .* is text, not a pgvector column"):
        PgvectorRetriever(demo.settings(embedding_column="content"), demo.embedder)


def test_a_table_name_may_be_double_quoted_as_in_sql(demo: Demo) -> None:
    """``"RAG Data"."My-Chunks"`` was refused (the name was split at every dot), and a table
    whose name holds a dot could not be named at all."""
    with demo.server.connect() as conn:
        conn.execute('CREATE SCHEMA "RAG Data"')
        copy_demo_table(demo, conn, '"RAG Data"."My-Chunks"')
        copy_demo_table(demo, conn, '"RAG Data"."my.chunks"')
    named = {
        '"RAG Data"."My-Chunks"': "RAG Data.My-Chunks",
        "RAG Data.My-Chunks": "RAG Data.My-Chunks",
        '"RAG Data"."my.chunks"': 'RAG Data."my.chunks"',
        'RAG Data."my.chunks"': 'RAG Data."my.chunks"',
    }
    for table, shown in named.items():
        with PgvectorRetriever(demo.settings(table), demo.embedder) as retriever:
            assert retriever.describe()["table"] == shown
            [result] = retriever.retrieve([Query(id="q", text="How many PTO days?")], 3)
        assert result.ok
        assert len(result.docs) == 3
    with pytest.raises(
        CollectionNotFoundError, match=r"""table '"RAG Data"."my.chunk"' does not"""
    ):
        PgvectorRetriever(demo.settings('"RAG Data"."my.chunk"'), demo.embedder)
    with pytest.raises(ConfigError, match=r"\(a quoted name is not closed\); double-quote a name"):
        PgvectorRetriever(demo.settings('"RAG Data.my.chunks'), demo.embedder)
    with pytest.raises(ConfigError, match=r"\('x' after a quoted name\)"):
        PgvectorRetriever(demo.settings('"RAG Data"x'), demo.embedder)
    assert split_table_name('"a""b".c') == ('a"b', "c")
    assert shown_table_name('a"b', "c.d") == '"a""b"."c.d"'


def test_an_unreachable_server_fails_before_the_run(demo: Demo) -> None:
    dsn = f"postgresql://postgres:{PASSWORD}@127.0.0.1:{free_port()}/postgres"
    began = time.monotonic()
    with pytest.raises(RetrieverError, match="cannot connect to PostgreSQL") as raised:
        PgvectorRetriever(demo.settings(dsn=dsn, connect_timeout=2), demo.embedder)
    assert time.monotonic() - began < 5
    assert PASSWORD not in str(raised.value)


def test_settings_errors_are_config_errors(demo: Demo) -> None:
    with pytest.raises(ConfigError, match="needs a connection string"):
        PgvectorRetriever(demo.settings(dsn=None), demo.embedder)
    with pytest.raises(ConfigError, match=r"schema\.table"):
        PgvectorRetriever(demo.settings("a.b.c"), demo.embedder)
    with pytest.raises(ConfigError, match="not a valid libpq connection string"):
        PgvectorRetriever(demo.settings(dsn="host=127.0.0.1 port"), demo.embedder)
    settings = Settings()
    settings.retriever.pgvector = demo.settings()
    settings.embedder.kind = EmbedderKind.none
    with pytest.raises(ConfigError, match="evalkit must embed the queries"):
        build_retriever(RetrieverOptions(retriever="pgvector"), settings)


def test_describe_names_the_server_and_masks_the_password(demo: Demo) -> None:
    dsn = (
        f"host=127.0.0.1 port={demo.server.port} dbname=postgres user=postgres password={PASSWORD}"
    )
    settings = demo.settings("kb.Demo Exact", dsn=dsn, hnsw_ef_search=80)
    with PgvectorRetriever(settings, demo.embedder) as retriever:
        described = retriever.describe()
        fingerprint = retriever.model_fingerprint()
    assert PASSWORD not in json.dumps(described)
    assert described["kind"] == "pgvector"
    assert (described["host"], described["port"], described["dbname"]) == (
        "127.0.0.1",
        demo.server.port,
        "postgres",
    )
    assert described["table"] == "kb.Demo Exact"
    assert described["metric"] == "cosine"
    assert described["hnsw_ef_search"] == 80
    assert described["dimension"] == 384
    assert fingerprint == demo.embedder.fingerprint


def test_each_table_on_its_server_and_database_is_its_own_retriever(
    demo: Demo, tmp_path: Path
) -> None:
    """Every pgvector run was one retriever ``pgvector`` (collection ``-``), whatever the
    table, database or server: drift precision, explain's baseline and the alert rules mixed
    them. A run stored before the table was its collection keeps its series."""
    specs = {}
    for name in ("demo_hnsw", "demo_ivfflat"):
        with PgvectorRetriever(demo.settings(name), demo.embedder) as retriever:
            specs[name] = RunSpec.for_retriever(retriever, kind="goldset", k=10, n_queries=0)
    hnsw = specs["demo_hnsw"]
    assert hnsw.collection == "public.demo_hnsw"
    config = dict(hnsw.retriever_config)
    runs = {
        "hnsw": hnsw,
        "stored earlier": replace(hnsw, collection=None),
        "ivfflat": specs["demo_ivfflat"],
        "other database": replace(hnsw, retriever_config={**config, "dbname": "staging"}),
        "other server": replace(hnsw, retriever_config={**config, "host": "db2.internal"}),
    }
    with Store.open(tmp_path / "evalkit.duckdb") as store:
        ids = {
            name: get_run(store, create_run(store, spec)).retriever_id
            for name, spec in runs.items()
        }
        series = list_runs(store, limit=1, limit_per_retriever=True)
    port = demo.server.port
    assert ids == {
        "hnsw": f"pgvector:public.demo_hnsw@127.0.0.1:{port}/postgres",
        "stored earlier": f"pgvector:public.demo_hnsw@127.0.0.1:{port}/postgres",
        "ivfflat": f"pgvector:public.demo_ivfflat@127.0.0.1:{port}/postgres",
        "other database": f"pgvector:public.demo_hnsw@127.0.0.1:{port}/staging",
        "other server": f"pgvector:public.demo_hnsw@db2.internal:{port}/postgres",
    }
    assert len(series) == 4


def test_index_fingerprint_follows_the_rows_that_can_be_retrieved(demo: Demo) -> None:
    with demo.server.connect() as conn:
        copy_demo_table(demo, conn, "fingerprinted")
    with PgvectorRetriever(demo.settings("fingerprinted"), demo.embedder) as retriever:
        first = retriever.index_fingerprint()
        assert first is not None
        assert first == retriever.index_fingerprint()
        with demo.server.connect() as conn:
            conn.execute("UPDATE fingerprinted SET content = 'edited' WHERE doc_id = 'd0001'")
            assert retriever.index_fingerprint() == first  # the text is not searched
            conn.execute(
                "UPDATE fingerprinted SET embedding = (SELECT embedding FROM fingerprinted"
                " WHERE doc_id = 'd0002') WHERE doc_id = 'd0001'"
            )
            reembedded = retriever.index_fingerprint()
            assert reembedded != first
            conn.execute("DELETE FROM fingerprinted WHERE doc_id = 'd0003'")
            assert retriever.index_fingerprint() not in (first, reembedded)


def test_index_fingerprint_is_the_tables_whatever_the_run_filters_by(demo: Demo) -> None:
    """A run with --where-key recorded another fingerprint of an unchanged table than one
    without, and explain reported a rebuilt index (index_changed) that never happened."""
    with demo.server.connect() as conn:
        copy_demo_table(demo, conn, "filtered_fingerprint")
    fingerprints = set()
    for where_key in (None, "tenant", "content"):
        with PgvectorRetriever(
            demo.settings("filtered_fingerprint"), demo.embedder, where_key=where_key
        ) as retriever:
            fingerprints.add(retriever.index_fingerprint())
    assert len(fingerprints) == 1


def test_a_statement_timeout_fails_only_the_slow_queries(demo: Demo) -> None:
    with demo.server.connect() as conn:
        conn.execute(
            "CREATE VIEW slow_for_harbor AS SELECT * FROM demo_hnsw"
            " WHERE tenant <> 'harbor' OR pg_sleep(0.01) IS NOT NULL"
        )
    queries = [q for q in demo.goldset.queries if q.tenant == "harbor"][:2] + [
        q for q in demo.goldset.queries if q.tenant == "kestrel"
    ][:3]
    settings = demo.settings(
        "slow_for_harbor", tenant_column="tenant", search=SearchMode.exact, statement_timeout=0.3
    )
    with PgvectorRetriever(settings, demo.embedder) as retriever:
        results = retriever.retrieve(queries, 10)
        assert retriever.index_fingerprint() is None  # the whole view cannot be read in time
        after = retriever.retrieve(queries[2:], 10)  # the connection is still usable
    assert [result.query_id for result in results] == [query.id for query in queries]
    for result in results[:2]:
        assert not result.ok
        assert result.docs == ()
        assert result.error is not None
        assert "QueryCanceled" in result.error
        assert "statement timeout" in result.error
    assert all(result.ok and len(result.docs) == 10 for result in results[2:])
    assert all(result.ok for result in after)


def test_each_query_carries_the_time_of_its_own_search(demo: Demo, tmp_path: Path) -> None:
    """A batch of queries was one statement and each query got the batch's share of its
    time: the demo's 129 queries carried three latencies, which no quantile can be read from."""
    with Store.open(tmp_path / "evalkit.duckdb") as store:
        with PgvectorRetriever(demo.settings(), demo.embedder) as retriever:
            assert retriever.describe()["latency_timing"] == "per_query"
            run = evaluate_goldset(
                store, demo.goldset, retriever, GoldsetRunRequest(k=10, answers=False)
            ).run
        read = run_latencies(store, run.run_id, run.run_id)
    assert read.missing is None
    assert read.latencies is not None
    assert len(read.latencies) == len(demo.goldset.queries)
    assert read.latencies.nunique() > len(demo.goldset.queries) // 2


@pytest.fixture(scope="module")
def fragile(demo: Demo) -> Iterator[PostgresServer]:
    """A second server with the demo rows, for tests that stop it."""
    directory = postgres_directory()
    try:
        server = start_postgres(directory / "pgdata")
        with server.connect() as conn:
            copy_demo_table(demo, conn, "docs")
        yield server
        with contextlib.suppress(subprocess.CalledProcessError):  # stopped by a test
            server.stop("immediate")
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def test_a_stopped_server_fails_queries_and_a_restarted_one_is_reconnected(
    demo: Demo, fragile: PostgresServer
) -> None:
    settings = replace_dsn(demo.settings("docs"), fragile)
    queries = demo.goldset.queries[:5]
    with PgvectorRetriever(settings, demo.embedder) as retriever:
        assert all(result.ok for result in retriever.retrieve(queries, 10))
        fragile.stop("immediate")
        try:
            down = retriever.retrieve(queries, 10)
            assert [result.query_id for result in down] == [query.id for query in queries]
            for result in down:
                assert not result.ok
                assert result.error is not None
                assert "reconnecting failed" in result.error or "cannot connect" in result.error
            with pytest.raises(RetrieverError, match="cannot"):
                retriever.check()
        finally:
            fragile.start()
        retriever.check()
        assert all(result.ok for result in retriever.retrieve(queries, 10))


STOP_ON_SECOND_BATCH = """
import os, signal, socket, time
import evalkit.retrievers.pgvector as pgvector

_retrieve = pgvector.PgvectorRetriever.retrieve
_calls = []

def _stopping(self, queries, k):
    _calls.append(len(queries))
    if len(_calls) == 2:
        # PostgreSQL goes down between two batches, the way a crash looks to a client.
        pid = int(open(os.environ["TEST_PGDATA"] + "/postmaster.pid").readline())
        os.kill(pid, signal.SIGQUIT)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", int(os.environ["TEST_PGPORT"])), 0.2).close()
            except OSError:
                break
            time.sleep(0.05)
    return _retrieve(self, queries, k)

pgvector.PgvectorRetriever.retrieve = _stopping
"""


def test_postgres_stopping_mid_run_gives_a_partial_run_and_exit_3(
    demo: Demo, fragile: PostgresServer, tmp_path: Path
) -> None:
    (tmp_path / "evalkit.toml").write_text(
        textwrap.dedent(
            f"""\
            query_batch_size = 50

            [retriever]
            kind = "pgvector"

            [retriever.pgvector]
            dsn = "{fragile.dsn}"
            table = "docs"
            id_column = "doc_id"
            connect_timeout = 2
            """
        ),
        encoding="utf-8",
    )
    env = evalkit_env(tmp_path)
    env.update(TEST_PGDATA=str(fragile.pgdata), TEST_PGPORT=str(fragile.port))
    imported = evalkit(tmp_path, env, "goldset", "import", str(DEMO), "--name", "demo")
    assert imported.returncode == 0, imported.stderr
    try:
        done = evalkit(
            tmp_path,
            env,
            "run",
            "--goldset",
            "demo",
            "--k",
            "10",
            "--format",
            "json",
            prelude=STOP_ON_SECOND_BATCH,
        )
    finally:
        fragile.start()
    assert done.returncode == 3, done.stderr
    assert "Traceback" not in done.stderr
    run = json.loads(done.stdout)
    assert run["status"] == "partial"
    assert run["n_failed"] == len(demo.goldset.queries) - 50
    assert run["aggregates"]["ndcg@10"] > 0
    with duckdb.connect(str(tmp_path / "home" / "evalkit.duckdb"), read_only=True) as store:
        [(status, n_failed)] = store.execute("SELECT status, n_failed FROM runs").fetchall()
        errors = store.execute(
            "SELECT count(*) FILTER (WHERE error IS NULL), count(*) FILTER (WHERE error IS NOT"
            " NULL AND n_results = 0), any_value(error) FROM run_queries"
        ).fetchone()
    assert (status, n_failed) == ("partial", len(demo.goldset.queries) - 50)
    assert errors is not None
    assert errors[0] == 50
    assert errors[1] == len(demo.goldset.queries) - 50
    assert "pgvector" in errors[2] or "PostgreSQL" in errors[2]


def replace_dsn(settings: PgvectorSettings, server: PostgresServer) -> PgvectorSettings:
    return settings.model_copy(update={"dsn": server.dsn})


def test_without_psycopg_the_retriever_asks_for_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)
    monkeypatch.delitem(sys.modules, "evalkit.retrievers.pgvector", raising=False)
    settings = Settings()
    settings.retriever.pgvector = PgvectorSettings(dsn="postgresql://127.0.0.1/rag", table="t")
    with pytest.raises(ConfigError, match=r"pip install 'evalkit-retrieval\[pgvector\]'"):
        build_retriever(RetrieverOptions(retriever="pgvector"), settings)


@pytest.mark.parametrize("search", ["hnsw", "ivfflat"])
def test_k_beyond_the_index_candidate_list_still_gets_k_documents(demo: Demo, search: str) -> None:
    # HNSW finds hnsw.ef_search candidates (40 by default), IVFFlat scans ivfflat.probes lists
    # (1 by default, 1/8 of this table): fewer than k = 100 without iterative scans.
    queries = demo.goldset.queries[:10]
    with PgvectorRetriever(demo.settings(TABLES[search]), demo.embedder) as retriever:
        results = retriever.retrieve(queries, 100)
    assert [len(result.docs) for result in results] == [100] * len(queries)


def test_a_halfvec_column_is_searched_through_its_own_index(demo: Demo) -> None:
    with demo.server.connect() as conn:
        conn.execute(
            "CREATE TABLE demo_half AS SELECT doc_id, tenant, embedding::halfvec(384)"
            " AS embedding FROM demo_hnsw"
        )
        conn.execute(
            "CREATE INDEX demo_half_cosine ON demo_half USING hnsw (embedding halfvec_cosine_ops)"
        )
        conn.execute("ANALYZE demo_half")
    before = index_scans(demo, "demo_half_cosine")
    with PgvectorRetriever(
        demo.settings("demo_half", text_column=None), demo.embedder
    ) as retriever:
        results = retriever.retrieve(demo.goldset.queries, 10)
        assert retriever.describe()["ann_indexes"] == ["demo_half_cosine"]
        assert retriever.index_fingerprint() is not None
    assert ndcg_at_10(demo.goldset, results) == pytest.approx(demo.chroma_ndcg, abs=0.01)
    assert wait_for_index_scans(demo, "demo_half_cosine", before) > before


def test_a_column_declared_without_dimension_is_checked_on_a_stored_vector(demo: Demo) -> None:
    with demo.server.connect() as conn:
        conn.execute("CREATE TABLE undeclared (doc_id text, embedding vector)")
        conn.execute("INSERT INTO undeclared VALUES ('a', '[1,0,0]')")
    with pytest.raises(RetrieverError, match="3-dimensional vectors"):
        PgvectorRetriever(demo.settings("undeclared", text_column=None), demo.embedder)


def test_a_user_who_cannot_read_the_table_is_refused_up_front(demo: Demo) -> None:
    with demo.server.connect() as conn:
        conn.execute("CREATE ROLE outsider LOGIN")
    dsn = demo.server.dsn.replace("postgres@", "outsider@")
    with pytest.raises(RetrieverError, match=r"cannot read table public\.demo_hnsw.*permission"):
        PgvectorRetriever(demo.settings(dsn=dsn), demo.embedder)
