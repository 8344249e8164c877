"""Refusals raised by the retrievers and engines name settings; the CLI shows its flags."""

from __future__ import annotations

from pathlib import Path

import pytest

from evalkit.cli._output import with_flags
from evalkit.config import JudgeSettings, QdrantSettings, Settings
from evalkit.engines import LocalEngine, ReplayQueries, ReplaySpec, write_query_table
from evalkit.engines.ray import actor_judge_settings
from evalkit.errors import ConfigError
from evalkit.records import Query, QueryResult
from evalkit.retrievers.factory import RetrieverOptions
from evalkit.retrievers.qdrant import collection_name
from evalkit.retrievers.versions import open_chroma_versions


class _Unused:
    def retrieve(self, queries: object, k: int) -> list[QueryResult]:
        raise AssertionError("a refused replay must not query the retriever")


def test_a_query_table_replayed_locally_names_the_engine_setting(tmp_path: Path) -> None:
    table = write_query_table(tmp_path / "queries.parquet", [Query(id="q0", text="kelp")])
    with pytest.raises(ConfigError) as raised:
        LocalEngine(_Unused()).replay(ReplaySpec(run_id="r1", k=2), ReplayQueries(table=table))
    assert 'replayed on Ray (engine = "ray"), not locally' in str(raised.value)
    assert "replayed on Ray (--engine ray), not locally" in with_flags(str(raised.value))


def test_too_few_judge_calls_for_the_actors_names_the_settings() -> None:
    with pytest.raises(ConfigError) as raised:
        actor_judge_settings(JudgeSettings(concurrency=2), 4)
    assert str(raised.value).endswith(
        "use fewer actors (`ray_actors`), or turn answer scoring off (`answers = false`)"
    )
    assert with_flags(str(raised.value)).endswith(
        "use fewer actors (--ray-actors), or turn answer scoring off (--no-answers)"
    )


def test_an_unnamed_collection_names_the_collection_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as qdrant:
        collection_name(QdrantSettings(), None)
    assert str(qdrant.value) == (
        "name the Qdrant collection: `collection` NAME or collection in [retriever.qdrant]"
    )
    assert with_flags(str(qdrant.value)) == (
        "name the Qdrant collection: --collection NAME or collection in [retriever.qdrant]"
    )
    with pytest.raises(ConfigError) as chroma:
        open_chroma_versions(RetrieverOptions(), Settings(home=tmp_path / "home"))
    assert with_flags(str(chroma.value)) == "name the Chroma collection: --collection NAME"
