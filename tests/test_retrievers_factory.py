"""RetrieverOptions and the registry of retriever kinds that build_retriever looks up."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from evalkit.config import Settings, load_settings
from evalkit.errors import ConfigError
from evalkit.records import Query, QueryResult
from evalkit.retrievers import (
    RETRIEVER_KINDS,
    RetrieverKind,
    RetrieverOptions,
    build_retriever,
    register_retriever_kind,
)


class _Echo:
    """A retriever that answers every query with no documents."""

    def __init__(self, options: RetrieverOptions) -> None:
        self.options = options

    def retrieve(self, queries: Sequence[Query], k: int) -> list[QueryResult]:
        return [QueryResult(query_id=query.query_id, docs=(), latency_ms=0.0) for query in queries]

    def describe(self) -> dict[str, str]:
        return {"kind": "echo"}


@pytest.fixture
def settings(tmp_path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("EVALKIT_HOME", str(tmp_path))
    return load_settings()


@pytest.mark.parametrize(
    ("options", "kind"),
    [
        (RetrieverOptions(collection="docs"), "chroma"),
        (RetrieverOptions(collection="docs", chroma_url="http://127.0.0.1:1"), "chroma"),
        (RetrieverOptions(http_url="http://127.0.0.1:1/search"), "http"),
        (RetrieverOptions(kind="echo"), "echo"),
    ],
)
def test_the_options_name_their_kind(
    options: RetrieverOptions, kind: str, settings: Settings
) -> None:
    assert options.resolved_kind(settings) == kind


def test_options_naming_two_retrievers_or_none_are_refused(settings: Settings) -> None:
    with pytest.raises(ConfigError, match="give one of"):
        RetrieverOptions(collection="docs", http_url="http://x/search").resolved_kind(settings)
    with pytest.raises(ConfigError, match="give one of"):
        RetrieverOptions(retriever="qdrant", http_url="http://x/search").resolved_kind(settings)
    with pytest.raises(ConfigError, match="name the retriever"):
        RetrieverOptions().resolved_kind(settings)


@pytest.mark.parametrize(
    ("spec", "kind"), [("pgvector", "pgvector"), ("mypackage.search:make_retriever", "factory")]
)
def test_retriever_names_a_kind_or_a_factory(spec: str, kind: str, settings: Settings) -> None:
    assert RetrieverOptions(retriever=spec).resolved_kind(settings) == kind
    # --collection stays a collection name the chosen kind may use (Qdrant's, say).
    assert RetrieverOptions(retriever=spec, collection="docs").resolved_kind(settings) == kind


def test_the_retriever_table_names_the_kind_when_the_options_do_not(settings: Settings) -> None:
    configured = settings.model_copy(
        update={"retriever": settings.retriever.model_copy(update={"kind": "qdrant"})}
    )
    assert RetrieverOptions().resolved_kind(configured) == "qdrant"
    assert RetrieverOptions(collection="docs").resolved_kind(configured) == "chroma"
    with_factory = settings.model_copy(
        update={"retriever": settings.retriever.model_copy(update={"factory": "m:f"})}
    )
    assert RetrieverOptions().resolved_kind(with_factory) == "factory"


def test_an_unknown_kind_names_the_known_ones(settings: Settings) -> None:
    with pytest.raises(ConfigError, match=r"unknown retriever kind 'nope'.*chroma, http"):
        build_retriever(RetrieverOptions(kind="nope"), settings)


def test_a_registered_kind_is_built_with_the_options(settings: Settings) -> None:
    register_retriever_kind(RetrieverKind("echo", lambda options, _settings: _Echo(options)))
    try:
        options = RetrieverOptions(kind="echo", where_key="tenant")
        retriever = build_retriever(options, settings)
        assert isinstance(retriever, _Echo)
        assert retriever.options is options
        with pytest.raises(ConfigError, match="registered already"):
            register_retriever_kind(RetrieverKind("echo", lambda o, s: _Echo(o)))
    finally:
        RETRIEVER_KINDS.pop("echo", None)


def test_where_key_is_refused_for_the_http_retriever(settings: Settings) -> None:
    """The endpoint gets each query's tenant and filters itself: a key was accepted and
    ignored, reading as a filter evalkit applied."""
    options = RetrieverOptions(http_url="http://127.0.0.1:9/search", where_key="tenant")
    with pytest.raises(ConfigError, match="sends each query's tenant to the endpoint"):
        build_retriever(options, settings)


def test_options_are_frozen() -> None:
    options = RetrieverOptions(collection="docs")
    with pytest.raises(AttributeError):
        options.collection = "other"  # type: ignore[misc]


def test_option_values_are_numbers_booleans_or_text_and_never_nan() -> None:
    """`--option n=nan` passed a float NaN, which the run recorded as null beside a
    retriever id reading NaN: "nan" and "inf" are words, as any other text."""
    from evalkit.cli._retriever import parse_options

    assert parse_options(["k1=1.5", "top=3", "exact=true", "index=dir", "n=nan", "w=-inf"]) == {
        "k1": 1.5,
        "top": 3,
        "exact": True,
        "index": "dir",
        "n": "nan",
        "w": "-inf",
    }
    assert parse_options(None) is None
    with pytest.raises(ConfigError, match="is given twice"):
        parse_options(["a=1", "a=2"])


def test_a_misspelt_kind_of_the_retriever_table_is_named_by_its_line_and_the_likely_one(
    evalkit_home: Path,
) -> None:
    """It named neither the file nor the line, nor the kind it was probably meant to be."""
    Path("evalkit.toml").write_text('k = 5\n\n[retriever]\nkind = "pgvectr"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        build_retriever(RetrieverOptions(), load_settings())
    message = str(caught.value)
    assert message.startswith(
        "evalkit.toml: [retriever]: line 4, field 'kind': unknown retriever kind 'pgvectr'; "
    )
    assert message.endswith("(docs/retrievers.md); did you mean 'pgvector'?")
    with pytest.raises(ConfigError) as caught:
        build_retriever(RetrieverOptions(kind="qdrnt"), load_settings())
    assert str(caught.value).startswith("unknown retriever kind 'qdrnt'; ")
    assert str(caught.value).endswith("did you mean 'qdrant'?")
