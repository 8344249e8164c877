"""Streaming corpora (JSONL, BEIR folder, TREC) and the document content hash."""

from __future__ import annotations

import gzip
import hashlib
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from evalkit.errors import ConfigError, GoldsetError
from evalkit.goldset import (
    content_hash,
    count_documents,
    detect_corpus_format,
    iter_corpus,
    validate_corpus,
)
from evalkit.records import Document

DATA = Path(__file__).parent / "data" / "goldset"
JSONL = DATA / "jsonl_small" / "corpus.jsonl"
BEIR = DATA / "beir_tiny"
TREC = DATA / "trec_tiny" / "docs.trec"


NO_CORPUS = (
    "holds no documents: neither corpus.jsonl (a BEIR corpus) nor a document file (.htm, .html, "
    ".markdown, .md, .rst, .txt; subfolders included) was found in it"
)


def test_jsonl_corpus() -> None:
    assert list(iter_corpus(JSONL)) == [
        Document(
            id="d0001",
            title="Rotating API keys",
            text="Open Settings, then Keys, and press Rotate.",
            metadata={"section": "security", "version": 3, "public": True},
        ),
        Document(id="d0002", title="API keys", text="API keys authenticate requests."),
        Document(
            id="d0003",
            text="Refunds are possible within 30 days of purchase.",
            metadata={"score": 0.5},
        ),
        Document(id="d0004", title="Data residency", text=""),
    ]


def test_beir_folder_is_read_as_beir_writes_it() -> None:
    documents = list(iter_corpus(BEIR))

    assert [document.id for document in documents] == ["1001", "1002", "1003", "1004"]
    assert documents[1].metadata == {"year": 2013, "authors": '["Hemila", "Chalker"]'}
    assert documents[3] == Document(id="1004", title="Physical activity", text="")


def test_trec_documents() -> None:
    assert list(iter_corpus(TREC)) == [
        Document(
            id="FT911-3",
            title="Turkish workers in Germany",
            text="Integration of foreign workers remains slow.",
        ),
        Document(id="FT911-7", text="Twin studies of behaviour and genes."),
    ]


def test_format_detection() -> None:
    assert detect_corpus_format(JSONL) == "jsonl"
    assert detect_corpus_format(BEIR) == "beir"
    assert detect_corpus_format(TREC) == "trec"


def test_count_documents(tmp_path: Path) -> None:
    spaced = tmp_path / "corpus.jsonl"
    spaced.write_bytes(JSONL.read_bytes().replace(b"\n", b"\r\n\r\n"))

    assert count_documents(JSONL) == 4
    assert count_documents(spaced) == 4
    assert count_documents(BEIR) == 4
    assert count_documents(TREC) == 2
    with pytest.raises(GoldsetError, match="does not exist"):
        count_documents(tmp_path / "missing.jsonl")


def test_iteration_is_lazy(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text('{"id": "a", "text": "fine"}\n{"id": "b", "text": 5}\n', encoding="utf-8")

    documents = iter_corpus(corpus)

    assert isinstance(documents, Iterator)
    assert next(documents).id == "a"
    with pytest.raises(GoldsetError) as caught:
        next(documents)
    (problem,) = caught.value.problems
    assert (problem.path, problem.line, problem.field) == (str(corpus), 2, "text")


def test_stream_stops_at_the_first_problem_having_yielded_only_valid_documents(
    tmp_path: Path,
) -> None:
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(
        '{"id": "a", "text": "one"}\n{"id": "b", "text": "two"}\n'
        'not json\n{"id": "c", "text": "x"}\n',
        encoding="utf-8",
    )
    seen: list[str] = []

    with pytest.raises(GoldsetError) as caught:
        seen.extend(document.id for document in iter_corpus(corpus))

    assert seen == ["a", "b"]
    assert [(p.line, p.field) for p in caught.value.problems] == [(3, None)]


def test_duplicate_ids_stop_the_stream_unless_unchecked(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text('{"id": "a", "text": "one"}\n\n{"_id": "a", "text": "two"}\n', "utf-8")

    with pytest.raises(GoldsetError) as caught:
        list(iter_corpus(corpus))

    assert [(p.line, p.field) for p in caught.value.problems] == [(3, "id")]
    assert [d.text for d in iter_corpus(corpus, check_duplicates=False)] == ["one", "two"]


def test_validate_corpus_lists_every_problem(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(
        '{"id": "a", "text": "fine"}\n'
        '{"id": "b", "text": "x", "metdata": {}}\n'
        '{"id": "c", "text": "x", "metadata": {"tags": ["a"]}}\n'
        '{"id": "d", "_id": "d", "text": "x"}\n'
        '{"id": "e", "title": "", "text": " "}\n'
        '{"id": "a", "text": "again"}\n'
        '{"id": "f", "text": "x", "metadata": {"w": NaN}}\n'
        '{"id": "g"}\n'
        '{"id": "h", "text": "x", "metadata": {"evalkit_title": "mine"}}\n',
        encoding="utf-8",
    )

    problems = validate_corpus(corpus)

    assert [(p.line, p.field) for p in problems] == [
        (2, "metdata"),
        (3, "metadata"),
        (4, "_id"),
        (5, "text"),
        (6, "id"),
        (7, "metadata"),
        (8, "text"),
        (9, "metadata.evalkit_title"),
    ]
    assert "did you mean 'metadata'?" in problems[0].detail
    assert "reserved for evalkit" in problems[-1].detail
    assert "first on line 1" in problems[4].detail


def test_validate_corpus_of_empty_and_missing_files(tmp_path: Path) -> None:
    empty = tmp_path / "corpus.jsonl"
    empty.write_text("\n", encoding="utf-8")

    assert [p.detail for p in validate_corpus(empty)] == ["holds no documents"]
    folder = tmp_path / "goldset"
    folder.mkdir()
    assert [str(p) for p in validate_corpus(folder)] == [f"{folder / 'corpus.jsonl'}: {NO_CORPUS}"]
    assert validate_corpus(JSONL) == []
    assert validate_corpus(BEIR) == []
    assert validate_corpus(TREC) == []
    (missing,) = validate_corpus(tmp_path / "nope.jsonl")
    assert "does not exist" in missing.detail


def test_trec_problems(tmp_path: Path) -> None:
    corpus = tmp_path / "docs.trec"
    corpus.write_text(
        "<DOC>\n<DOCNO>1</DOCNO>\nfine\n</DOC>\n"
        "stray text\n"
        "<DOC>\nno number\n</DOC>\n"
        "<DOC>\n<DOCNO>3</DOCNO>\n",
        encoding="utf-8",
    )

    problems = validate_corpus(corpus)

    assert [(p.line, p.field) for p in problems] == [(5, None), (6, "DOCNO"), (9, None)]


def test_a_trec_line_that_is_not_utf8_is_the_only_problem(tmp_path: Path) -> None:
    """Its <DOCNO> line was dropped before parsing, adding "document has no <DOCNO>"."""
    corpus = tmp_path / "docs.trec"
    corpus.write_bytes(
        b"<DOC>\n<DOCNO>d\xe91</DOCNO>\ntext one\n</DOC>\n<DOC>\n<DOCNO>d2</DOCNO>\ntwo\n</DOC>\n"
    )

    problems = validate_corpus(corpus)

    assert [(p.line, p.field) for p in problems] == [(2, None)]
    assert "not valid UTF-8" in problems[0].detail


def test_unknown_format_is_a_usage_error() -> None:
    with pytest.raises(ConfigError, match="jsonl, beir, trec"):
        list(iter_corpus(JSONL, format="parquet"))


def test_content_hash_pins_the_canonical_serialisation() -> None:
    document = Document(id="x", title="Größe", text="body", metadata={"b": 1, "a": True})
    canonical = '{"metadata":{"a":true,"b":1},"text":"body","title":"Größe"}'

    assert content_hash(document) == hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def test_content_hash_follows_content_not_id_or_key_order() -> None:
    base = Document(id="x", title="t", text="body", metadata={"a": 1, "b": "two"})
    same = [
        Document(id="other", title="t", text="body", metadata={"a": 1, "b": "two"}),
        Document(id="x", title="t", text="body", metadata={"b": "two", "a": 1}),
    ]
    different = [
        Document(id="x", title="T", text="body", metadata={"a": 1, "b": "two"}),
        Document(id="x", title="t", text="body ", metadata={"a": 1, "b": "two"}),
        Document(id="x", title="t", text="body", metadata={"a": True, "b": "two"}),
        Document(id="x", title="t", text="body", metadata={"a": 1.5, "b": "two"}),
        Document(id="x", title="t", text="body", metadata={"a": 1}),
        Document(id="x", title="", text="t\nbody", metadata={"a": 1, "b": "two"}),
    ]

    assert {content_hash(document) for document in same} == {content_hash(base)}
    hashes = {content_hash(document) for document in [base, *different]}
    assert len(hashes) == len(different) + 1
    assert all(len(value) == 64 for value in hashes)


def test_a_directory_of_files_is_a_corpus(tmp_path: Path) -> None:
    from evalkit.goldset import count_documents, detect_corpus_format, iter_corpus

    (tmp_path / "guides").mkdir()
    (tmp_path / "guides" / "vpn.md").write_text("# VPN\nConnect with the ZPA client.\n")
    (tmp_path / "about.html").write_text(
        "<html><body><p>Kestrel <b>Logistics</b></p></body></html>"
    )
    (tmp_path / "image.png").write_bytes(b"\x89PNG")
    assert detect_corpus_format(tmp_path) == "files"
    assert count_documents(tmp_path) == 2
    documents = {document.id: document for document in iter_corpus(tmp_path)}
    assert sorted(documents) == ["about.html", "guides/vpn.md"]
    assert "ZPA client" in documents["guides/vpn.md"].text
    assert "<b>" not in documents["about.html"].text
    assert "Logistics" in documents["about.html"].text
    assert documents["guides/vpn.md"].metadata == {"path": "guides/vpn.md"}


def test_a_gzip_corpus_is_one_problem_saying_to_decompress(tmp_path: Path) -> None:
    """Before, every line was "not valid UTF-8; save the file as UTF-8", and the BM25 index
    counted the compressed bytes' newlines as documents."""
    packed = tmp_path / "corpus.jsonl.gz"
    packed.write_bytes(gzip.compress(JSONL.read_bytes()))
    expected = (
        "holds gzip-compressed data, not text: evalkit reads uncompressed UTF-8 files, so "
        "decompress it first (gunzip -c corpus.jsonl.gz > corpus.jsonl) and give the result"
    )

    with pytest.raises(GoldsetError) as caught:
        list(iter_corpus(packed))
    (problem,) = caught.value.problems
    assert (problem.path, problem.line, problem.detail) == (str(packed), None, expected)
    assert [(p.line, p.detail) for p in validate_corpus(packed)] == [(None, expected)]
    with pytest.raises(GoldsetError, match="gzip-compressed"):
        count_documents(packed)


def test_a_beir_folder_with_its_corpus_gzipped_names_the_file(tmp_path: Path) -> None:
    """As downloaded from the Hugging Face hub; it was read as a folder of document files
    and said to hold none."""
    (tmp_path / "corpus.jsonl.gz").write_bytes(gzip.compress((BEIR / "corpus.jsonl").read_bytes()))

    assert detect_corpus_format(tmp_path) == "beir"
    with pytest.raises(GoldsetError) as caught:
        list(iter_corpus(tmp_path))
    assert caught.value.problems[0].detail.startswith(
        "does not exist, but corpus.jsonl.gz is beside it"
    )
    with pytest.raises(GoldsetError, match=re.escape("gunzip -c corpus.jsonl.gz > corpus.jsonl")):
        count_documents(tmp_path)


def test_a_corpus_from_a_pipe_is_refused_before_it_is_read(tmp_path: Path) -> None:
    """A corpus is read twice (checked, then indexed): a pipe would be empty the second
    time, and `evalkit index --prune` would then delete every indexed document."""
    fifo = tmp_path / "corpus.fifo"
    os.mkfifo(fifo)

    with pytest.raises(GoldsetError, match="is a pipe or a device, not a file"):
        list(iter_corpus(fifo))
    with pytest.raises(GoldsetError, match="is a pipe or a device, not a file"):
        count_documents(fifo)
