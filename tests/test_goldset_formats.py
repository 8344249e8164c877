"""The format registry, load_goldset / validate_goldset dispatch, and the public surface."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import evalkit.goldset as goldset_package
from evalkit.errors import ConfigError, GoldsetError
from evalkit.goldset import (
    GOLDSET_FORMATS,
    load_beir_goldset,
    load_goldset,
    load_jsonl_goldset,
    load_trec_goldset,
    validate_goldset,
)

DATA = Path(__file__).parent / "data" / "goldset"


def test_public_surface() -> None:
    required = {
        "Goldset",
        "goldset_version",
        "load_goldset",
        "load_jsonl_goldset",
        "load_beir_goldset",
        "load_trec_goldset",
        "validate_goldset",
        "iter_corpus",
        "content_hash",
        "write_jsonl_goldset",
    }

    assert required <= set(goldset_package.__all__)
    assert sorted(goldset_package.__all__) == sorted(set(goldset_package.__all__))
    for name in goldset_package.__all__:
        assert getattr(goldset_package, name) is not None


def test_registry_names() -> None:
    assert list(GOLDSET_FORMATS) == ["jsonl", "beir", "trec"]
    assert all(entry.description for entry in GOLDSET_FORMATS.values())


def test_load_goldset_dispatches_to_each_loader() -> None:
    def silent(_: str) -> None:
        return None

    qrels, topics = DATA / "trec_tiny" / "qrels", DATA / "trec_tiny" / "topics.sgml"

    assert load_goldset(DATA / "jsonl_small") == load_jsonl_goldset(DATA / "jsonl_small")
    assert load_goldset(DATA / "beir_tiny", format="beir", split="train", name="t") == (
        load_beir_goldset(DATA / "beir_tiny", split="train", name="t")
    )
    assert load_goldset(qrels, format="trec", topics=str(topics), on_notice=silent) == (
        load_trec_goldset(qrels, topics, on_notice=silent)
    )


def test_unknown_format() -> None:
    with pytest.raises(ConfigError, match="use one of: jsonl, beir, trec"):
        load_goldset(DATA / "jsonl_small", format="csv")


def test_trec_needs_topics_and_only_trec_takes_them() -> None:
    with pytest.raises(ConfigError, match="topics"):
        load_goldset(DATA / "trec_tiny" / "qrels", format="trec")
    with pytest.raises(ConfigError, match="only used by the trec format"):
        load_goldset(DATA / "jsonl_small", topics=DATA / "trec_tiny" / "topics.tsv")


def test_validate_valid_goldsets() -> None:
    assert validate_goldset(DATA / "jsonl_small") == []
    assert validate_goldset(DATA / "beir_tiny", format="beir") == []
    assert (
        validate_goldset(
            DATA / "trec_tiny" / "qrels",
            format="trec",
            topics=DATA / "trec_tiny" / "topics.tsv",
            on_notice=lambda _: None,
        )
        == []
    )


def test_validate_returns_goldset_and_corpus_problems_with_locations(tmp_path: Path) -> None:
    folder = tmp_path / "demo"
    shutil.copytree(DATA / "jsonl_small", folder)
    with (folder / "judgments.jsonl").open("a", encoding="utf-8") as handle:
        handle.write('{"query_id": "q001", "doc_id": "d0009", "relevance": "high"}\n')
    with (folder / "corpus.jsonl").open("a", encoding="utf-8") as handle:
        handle.write('{"id": "d0001", "text": "repeated"}\n')

    problems = validate_goldset(folder)

    assert [(Path(str(p.path)).name, p.line, p.field) for p in problems] == [
        ("judgments.jsonl", 5, "relevance"),
        ("corpus.jsonl", 5, "id"),
    ]


def test_validate_agrees_with_load(tmp_path: Path) -> None:
    (tmp_path / "queries.jsonl").write_text('{"id": "q1", "text": ""}\n', encoding="utf-8")
    (tmp_path / "judgments.jsonl").write_text("[]\n", encoding="utf-8")

    problems = validate_goldset(tmp_path)
    with pytest.raises(GoldsetError) as caught:
        load_goldset(tmp_path)

    assert [str(p) for p in problems] == [str(p) for p in caught.value.problems]
    assert len(problems) == 2
