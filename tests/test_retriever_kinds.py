"""What evalkit knows of a retriever kind is what its registration declares: a kind
registered here shows up in the store's identity SQL, the sweep's accepted keys and the
settings they set, the Ray engine's refusals, the freshness check's index readers and the
retriever's build, with no list elsewhere to extend."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from evalkit.config import Settings
from evalkit.errors import ConfigError
from evalkit.pipeline.sweep.file import load_sweep
from evalkit.pipeline.sweep.points import check_sweep, point_settings
from evalkit.retrievers.factory import RetrieverOptions, build_retriever
from evalkit.retrievers.kinds import (
    COLLECTION,
    RETRIEVER_KINDS,
    Joined,
    RetrieverKind,
    built_in_kinds,
    register_retriever_kind,
)
from evalkit.retrievers.versions import open_index_versions, reads_index
from evalkit.store.run_identity import RETRIEVER_ID_SQL, retriever_id_sql

FAKE = "fakestore"
OPENED: list[tuple[RetrieverOptions, Settings]] = []


def build_fake(options: RetrieverOptions, settings: Settings) -> Any:
    """The fake kind's builder, named as ``module:function`` like a built-in's."""
    OPENED.append((options, settings))
    return "a fake retriever"


def open_fake_versions(options: RetrieverOptions, settings: Settings) -> Any:
    """The fake kind's index reader."""
    return ("versions of", options.collection)


def _not_on_ray(options: RetrieverOptions, settings: Settings) -> str | None:
    return f"the {FAKE} store cannot be opened by several processes"


@pytest.fixture
def fake_kind() -> Iterator[RetrieverKind]:
    kind = RetrieverKind(
        FAKE,
        f"{__name__}:build_fake",
        identity=((COLLECTION,), (Joined(":", ("host", "port")),)),
        search_settings={"probes": ("pgvector", "ivfflat_probes")},
        takes_options=True,
        takes_collection=True,
        lexical=True,
        on_ray=_not_on_ray,
        index_versions=f"{__name__}:open_fake_versions",
    )
    register_retriever_kind(kind)
    try:
        yield kind
    finally:
        RETRIEVER_KINDS.pop(FAKE, None)


def _retriever_id(sql: str, kind: str, collection: str, config: dict[str, Any]) -> str:
    with duckdb.connect() as connection:
        row = connection.execute(
            f"SELECT {sql} FROM (SELECT ? AS retriever_kind, ? AS collection,"
            " ?::JSON AS retriever_config)",
            [kind, collection, json.dumps(config)],
        ).fetchone()
    assert row is not None
    return str(row[0])


def test_the_identity_sql_reads_where_a_kind_declares_it_searches(
    fake_kind: RetrieverKind,
) -> None:
    config = {"host": "store.internal", "port": 7000, "url": "http://elsewhere"}
    assert _retriever_id(retriever_id_sql(), FAKE, "docs", config) == (
        f"{FAKE}:docs@store.internal:7000"
    )
    # A kind that declares nothing is told apart by its collection, else its URL or path.
    assert _retriever_id(retriever_id_sql(), "other", "", config) == "other:http://elsewhere"
    # The built-in kinds' declarations are in the SQL the store groups runs by.
    pgvector = {"table": "public.docs", "host": "db", "port": 5432, "dbname": "rag"}
    assert _retriever_id(RETRIEVER_ID_SQL, "pgvector", "", pgvector) == (
        "pgvector:public.docs@db:5432/rag"
    )


def test_a_sweep_accepts_and_sets_what_the_kind_declares(
    fake_kind: RetrieverKind, tmp_path: Path
) -> None:
    path = tmp_path / "sweep.toml"
    path.write_text(
        'name = "s"\ngoldset = "demo"\nmeasures = ["ndcg@10"]\n'
        f'[retriever]\nkind = "{FAKE}"\ncollection = "docs"\n'
        '[grid]\nprobes = [4, 8]\ncollection = ["docs", "more"]\n',
        encoding="utf-8",
    )
    sweep = load_sweep(path)
    settings = Settings(home=tmp_path / "home")
    assert check_sweep(sweep, settings) == FAKE
    probes = {
        point_settings(sweep, settings, p).retriever.pgvector.ivfflat_probes for p in sweep.points
    }
    assert probes == {4, 8}

    ef = tmp_path / "ef.toml"
    ef.write_text(
        'name = "s"\ngoldset = "demo"\nmeasures = ["ndcg@10"]\n'
        '[retriever]\nkind = "http"\nhttp_url = "http://127.0.0.1:9"\n[grid]\nprobes = [4]\n',
        encoding="utf-8",
    )
    with pytest.raises(
        ConfigError, match=f"has no probes evalkit can set \\(it can on {FAKE}, pgvector\\)"
    ):
        check_sweep(load_sweep(ef), settings)
    collection = tmp_path / "collection.toml"
    collection.write_text(
        'name = "s"\ngoldset = "demo"\nmeasures = ["ndcg@10"]\n'
        '[retriever]\nkind = "http"\nhttp_url = "http://127.0.0.1:9"\n'
        '[grid]\ncollection = ["a1", "b2"]\n',
        encoding="utf-8",
    )
    with pytest.raises(
        ConfigError, match=f"takes no collection \\(chroma, qdrant and {FAKE} do\\)"
    ):
        check_sweep(load_sweep(collection), settings)


def test_the_ray_engine_refuses_what_the_kind_declares(
    fake_kind: RetrieverKind, tmp_path: Path
) -> None:
    pytest.importorskip("ray")
    from evalkit.engines.ray import RayEngine

    with pytest.raises(ConfigError, match=f"the {FAKE} store cannot be opened by several"):
        RayEngine(RetrieverOptions(kind=FAKE, collection="docs"), Settings(home=tmp_path))


def test_the_kind_builds_and_reads_its_index_through_its_declaration(
    fake_kind: RetrieverKind, tmp_path: Path
) -> None:
    settings = Settings(home=tmp_path)
    options = RetrieverOptions(kind=FAKE, collection="docs")
    assert build_retriever(options, settings) == "a fake retriever"  # type: ignore[comparison-overlap]
    assert OPENED[-1] == (options, settings)
    assert reads_index("auto", options, settings)
    assert open_index_versions(options, settings) == ("versions of", "docs")  # type: ignore[comparison-overlap]
    http = RetrieverOptions(http_url="http://127.0.0.1:9")
    assert not reads_index("auto", http, settings)
    with pytest.raises(ConfigError, match=f"it reads Chroma, pgvector, Qdrant and {FAKE}\\)"):
        open_index_versions(http, settings)


def test_the_retriever_option_s_help_lists_the_registered_kinds() -> None:
    from typing import get_args

    from evalkit.cli._retriever import RetrieverSpec

    help_text = get_args(RetrieverSpec)[1].help
    assert f"Retriever kind ({', '.join(built_in_kinds())}, or a plug-in's)" in help_text
    assert built_in_kinds()[:5] == ["chroma", "http", "pgvector", "qdrant", "bm25"]


def test_options_and_a_lexical_index_are_told_as_the_kind_declares(
    fake_kind: RetrieverKind, tmp_path: Path
) -> None:
    from evalkit.cli.runs import documents_without_vectors

    options = RetrieverOptions(http_url="http://127.0.0.1:9", factory_options={"top": 3})
    with pytest.raises(ConfigError, match=f"take them \\(bm25, {FAKE}, module:factory, plug-ins"):
        build_retriever(options, Settings(home=tmp_path))
    size = {"documents": 10, "vectors": 0}
    assert documents_without_vectors({"retriever": FAKE, "index_size": size}) is None
    told = documents_without_vectors({"retriever": "chroma", "index_size": size})
    assert told is not None
    assert "cannot be retrieved" in told
