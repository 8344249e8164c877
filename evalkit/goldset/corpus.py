"""Streaming the documents of a corpus, and the content hash that tells when one changed.

Three layouts are read, detected from the path: a JSON Lines file (checked as strictly as a
goldset), a BEIR folder (read leniently, as BEIR writes it) and a TREC ``<DOC>`` file
(docs/goldsets.md, "Corpus files"). ``iter_corpus`` yields documents as it reads them and
raises a ``GoldsetError`` at the first malformed one; ``validate_corpus`` lists every problem.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from pathlib import Path

from evalkit.errors import InputError
from evalkit.files import COMPRESSED_SUFFIXES, compression_of
from evalkit.goldset._reading import (
    ProblemLog,
    compressed_file,
    iter_json_objects,
    iter_text_lines,
    missing_file,
)
from evalkit.goldset._schema import DOCUMENT_FIELDS, check_fields, check_span_fields, offset_value
from evalkit.goldset.beir import beir_identifier
from evalkit.records import Document
from evalkit.registry import lookup_named

__all__ = [
    "CORPUS_READERS",
    "RESERVED_METADATA_PREFIX",
    "content_hash",
    "count_documents",
    "detect_corpus_format",
    "iter_corpus",
    "iter_corpus_lines",
    "no_documents",
    "validate_corpus",
]

RESERVED_METADATA_PREFIX = "evalkit_"
"""Metadata keys evalkit keeps in an index for itself (title, content hash, fingerprints): a
corpus may not use them."""

CorpusReader = Callable[[Path, ProblemLog], Iterator[tuple[Document, int]]]
"""Reads one corpus layout: yields each valid document with its line, records problems."""

MetadataValue = str | int | float | bool

_DOC_START = re.compile(r"^\s*<DOC>", re.IGNORECASE)
_DOC_END = re.compile(r"</DOC>\s*$", re.IGNORECASE)
_TAG = re.compile(r"<[^>]+>")
_WHITESPACE = re.compile(r"\s+")


def content_hash(document: Document) -> str:
    """SHA-256 hex digest of a document's title, text and metadata (not its id).

    The serialisation is canonical (sorted keys, no whitespace, UTF-8), so the hash changes
    exactly when what is indexed changes: the index re-embeds a document only then.
    """
    payload = json.dumps(
        {"title": document.title, "text": document.text, "metadata": document.metadata},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def detect_corpus_format(path: Path | str) -> str:
    """``beir`` for a folder with ``corpus.jsonl``, ``files`` for any other folder, ``trec``
    for a file starting with ``<DOC>``, else ``jsonl``."""
    location = Path(path)
    if location.is_dir():
        # A compressed corpus.jsonl (BEIR downloads ship corpus.jsonl.gz) still makes the
        # folder BEIR's, so that reading it says what to decompress.
        names = ("corpus.jsonl", *(f"corpus.jsonl{suffix}" for suffix in COMPRESSED_SUFFIXES))
        return "beir" if any((location / name).is_file() for name in names) else "files"
    if location.is_file():
        with location.open("rb") as handle:
            head = handle.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
        if head[:5].upper() == b"<DOC>":
            return "trec"
    return "jsonl"


def iter_corpus(
    path: Path | str, *, format: str | None = None, check_duplicates: bool = True
) -> Iterator[Document]:
    """Yield the documents of a corpus one at a time, in file order.

    ``format`` is one of ``CORPUS_READERS`` (default: detected from ``path``). Memory stays
    flat whatever the corpus size, except for the set of ids seen when ``check_duplicates``
    is on (turn it off for corpora of tens of millions of documents known to be clean).
    Raises ``GoldsetError`` at the first malformed document or repeated id; the documents
    yielded before it were valid. Use ``validate_corpus`` to list every problem first.
    """
    for document, _ in iter_corpus_lines(path, format=format, check_duplicates=check_duplicates):
        yield document


def iter_corpus_lines(
    path: Path | str, *, format: str | None = None, check_duplicates: bool = True
) -> Iterator[tuple[Document, int]]:
    """``iter_corpus``, each document with the line of its file it was read from (1 for a
    document of the ``files`` layout), so that a problem found later can name it."""
    location = Path(path)
    subject = "corpus"
    problems = ProblemLog()
    if _is_stream(location):
        problems.add(_STREAM, path=location)
    problems.raise_if_any(subject, path=location)
    seen: set[str] = set()
    for document, line in _read_with_lines(location, format, problems):
        problems.raise_if_any(subject, path=location)
        if check_duplicates:
            if document.id in seen:
                problems.add(
                    f"document id '{document.id}' appears more than once; ids must be unique",
                    path=_corpus_file(location),
                    line=line,
                    field="id",
                )
                problems.raise_if_any(subject, path=location)
            seen.add(document.id)
        yield document, line
    problems.raise_if_any(subject, path=location)


def validate_corpus(path: Path | str, *, format: str | None = None) -> list[InputError]:
    """Read the whole corpus and return every problem (file, line, field); empty when valid."""
    location = Path(path)
    problems = ProblemLog()
    first_lines: dict[str, int] = {}
    count = 0
    for document, line in _read_with_lines(location, format, problems):
        count += 1
        if document.id in first_lines:
            problems.add(
                f"duplicate document id '{document.id}' (first on line "
                f"{first_lines[document.id]}); ids must be unique",
                path=_corpus_file(location),
                line=line,
                field="id",
            )
        else:
            first_lines[document.id] = line
    if not count and not problems:
        problems.add(no_documents(location, format=format), path=_corpus_file(location))
    return problems.problems


def no_documents(path: Path | str, *, format: str | None = None) -> str:
    """What to say of a corpus that yielded no document: for a folder read as files (it has
    no ``corpus.jsonl``), what was looked for, so that a folder given by mistake (a goldset's,
    without its corpus) is not mistaken for an empty corpus."""
    location = Path(path)
    if (format or detect_corpus_format(location)) != "files":
        return "holds no documents"
    suffixes = ", ".join(sorted(DOCUMENT_FILE_SUFFIXES))
    return (
        f"holds no documents: neither corpus.jsonl (a BEIR corpus) nor a document file "
        f"({suffixes}; subfolders included) was found in it"
    )


def count_documents(path: Path | str, *, format: str | None = None) -> int:
    """Count a corpus's documents quickly, without parsing them (for progress bars).

    Counts non-blank lines (``<DOC>`` lines for TREC), so a malformed corpus is counted, not
    checked. Raises ``GoldsetError`` when the file is missing.
    """
    location = Path(path)
    layout = format or detect_corpus_format(location)
    if layout == "files":
        return sum(1 for _ in _document_files(location))
    file = _corpus_file(location) if layout == "beir" else location
    problems = ProblemLog()
    if _is_stream(file):
        problems.add(_STREAM, path=file)
    elif not file.is_file():
        problems.add(missing_file(file), path=file)
    elif (compression := compression_of(file)) is not None:
        problems.add(compressed_file(file, compression), path=file)
    problems.raise_if_any("corpus", path=file)
    pattern = b"<doc>" if layout == "trec" else None
    count = 0
    with file.open("rb") as handle:
        for raw in handle:
            stripped = raw.strip()
            if pattern is None:
                count += bool(stripped)
            else:
                count += stripped[:5].lower() == pattern
    return count


_STREAM = (
    "is a pipe or a device, not a file: a corpus is read more than once (checked, then "
    "indexed), and a pipe only once; write it to a file first (e.g. zcat corpus.jsonl.gz > "
    "corpus.jsonl)"
)


def _is_stream(location: Path) -> bool:
    """Whether ``location`` exists but is neither a regular file nor a folder (a pipe, as
    ``<(zcat ...)`` gives, or a device): a second pass over it would find it empty, and an
    index pruned to what that pass read would lose every document."""
    return location.exists() and not location.is_file() and not location.is_dir()


def _read_with_lines(
    location: Path, format: str | None, problems: ProblemLog
) -> Iterator[tuple[Document, int]]:
    layout = format or detect_corpus_format(location)
    reader = lookup_named(CORPUS_READERS, layout, what="corpus format")
    return reader(location, problems)


def _corpus_file(location: Path) -> Path:
    return location / "corpus.jsonl" if location.is_dir() else location


def _read_jsonl(location: Path, problems: ProblemLog) -> Iterator[tuple[Document, int]]:
    for line, record in iter_json_objects(location, problems):
        if "_id" in record:
            if "id" in record:
                problems.add(
                    "both 'id' and '_id' are given; keep one", path=location, line=line, field="_id"
                )
                continue
            record["id"] = record.pop("_id")
        bad = check_fields(
            record,
            DOCUMENT_FIELDS,
            problems=problems,
            path=location,
            line=line,
            record_name="document",
        )
        check_span_fields(
            record, bad, problems=problems, path=location, line=line, quoted_text=False
        )
        if bad:
            continue
        document = _document(
            str(record["id"]), record.get("title"), record.get("text"), record.get("metadata")
        )
        if record.get("source_id") is not None:
            document = replace(
                document,
                source_id=str(record["source_id"]),
                start=offset_value(record.get("start")),
                end=offset_value(record.get("end")),
            )
        if _has_content(document, problems, path=location, line=line):
            yield document, line


def _read_beir(location: Path, problems: ProblemLog) -> Iterator[tuple[Document, int]]:
    path = _corpus_file(location)
    for line, record in iter_json_objects(path, problems):
        id_field = "_id" if "_id" in record or "id" not in record else "id"
        doc_id = beir_identifier(
            record.get(id_field), problems, path=path, line=line, field=id_field
        )
        title, text = record.get("title"), record.get("text")
        wrong = [
            name
            for name, value in (("title", title), ("text", text))
            if value is not None and not isinstance(value, str)
        ]
        for name in wrong:
            problems.add("must be a string", path=path, line=line, field=name)
        metadata = record.get("metadata")
        if metadata is not None and not isinstance(metadata, dict):
            problems.add("must be an object", path=path, line=line, field="metadata")
            continue
        if doc_id is None or wrong:
            continue
        document = _document(doc_id, title, text, _flatten_beir_metadata(metadata or {}))
        if _has_content(document, problems, path=path, line=line):
            yield document, line


def _read_trec(location: Path, problems: ProblemLog) -> Iterator[tuple[Document, int]]:
    body: list[str] | None = None
    start = 0
    for line, line_text in iter_text_lines(location, problems, keep_undecodable=True):
        text = line_text
        if body is None:
            if _DOC_START.match(text):
                body, start = [], line
                text = _DOC_START.sub("", text, count=1)
            else:
                problems.add("text outside a <DOC> ... </DOC> element", path=location, line=line)
                continue
        ended = _DOC_END.search(text)
        body.append(text[: ended.start()] if ended else text)
        if ended:
            document = _trec_document("\n".join(body), problems, path=location, line=start)
            if document is not None:
                yield document, start
            body = None
    if body is not None:
        problems.add("this <DOC> has no </DOC>", path=location, line=start)


def _trec_document(body: str, problems: ProblemLog, *, path: Path, line: int) -> Document | None:
    docno = re.search(r"<DOCNO>(.*?)</DOCNO>", body, re.IGNORECASE | re.DOTALL)
    if docno is None or not docno.group(1).strip():
        problems.add("document has no <DOCNO>", path=path, line=line, field="DOCNO")
        return None
    rest = body[: docno.start()] + body[docno.end() :]
    title = re.search(r"<(TITLE|HEADLINE)>(.*?)</\1>", rest, re.IGNORECASE | re.DOTALL)
    if title is not None:
        rest = rest[: title.start()] + rest[title.end() :]
    sections = re.findall(r"<TEXT>(.*?)</TEXT>", rest, re.IGNORECASE | re.DOTALL)
    text = " ".join(sections) if sections else rest
    document = Document(
        id=docno.group(1).strip(),
        text=_plain(text),
        title=_plain(title.group(2)) if title is not None else "",
    )
    return document if _has_content(document, problems, path=path, line=line) else None


def _plain(markup: str) -> str:
    return _WHITESPACE.sub(" ", _TAG.sub(" ", markup)).strip()


def _document(doc_id: str, title: object, text: object, metadata: object) -> Document:
    return Document(
        id=doc_id,
        text=text if isinstance(text, str) else "",
        title=title if isinstance(title, str) else "",
        metadata=dict(metadata) if isinstance(metadata, dict) else {},
    )


def _has_content(document: Document, problems: ProblemLog, *, path: Path, line: int) -> bool:
    """Whether ``document`` can be indexed: it has text or a title, and none of its metadata
    keys is one evalkit keeps for itself (each problem recorded at its line and field)."""
    usable = True
    for key in document.metadata:
        if key.startswith(RESERVED_METADATA_PREFIX):
            problems.add(
                f"document '{document.id}': metadata key '{key}' is reserved for evalkit (keys "
                f"starting with '{RESERVED_METADATA_PREFIX}'); rename it",
                path=path,
                line=line,
                field=f"metadata.{key}",
            )
            usable = False
    if document.text.strip() or document.title.strip():
        return usable
    problems.add(
        f"document '{document.id}' has neither text nor title; give one or leave it out",
        path=path,
        line=line,
        field="text",
    )
    return False


def _flatten_beir_metadata(metadata: Mapping[str, object]) -> dict[str, MetadataValue]:
    flat: dict[str, MetadataValue] = {}
    for key, value in metadata.items():
        if value is None:
            continue
        if isinstance(value, str | int | float | bool):
            flat[key] = value
        else:
            flat[key] = json.dumps(value, sort_keys=True, ensure_ascii=False)
    return flat


DOCUMENT_FILE_SUFFIXES = frozenset({".txt", ".md", ".markdown", ".rst", ".html", ".htm"})
"""Files read by the ``files`` layout: one document per text, Markdown or HTML file."""


def _document_files(location: Path) -> Iterator[Path]:
    return (
        file
        for file in sorted(location.rglob("*"))
        if file.is_file() and file.suffix.lower() in DOCUMENT_FILE_SUFFIXES
    )


def _read_files(location: Path, problems: ProblemLog) -> Iterator[tuple[Document, int]]:
    """A directory of files: the id is the path relative to the directory (``/``-separated),
    the text the file's content (HTML markup removed)."""
    for file in _document_files(location):
        relative = file.relative_to(location).as_posix()
        try:
            text = file.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as error:
            problems.add(f"cannot be read as UTF-8 text: {error}", path=file)
            continue
        if file.suffix.lower() in {".html", ".htm"}:
            text = _plain(text)
        if not text.strip():
            problems.add("is empty; a document needs text", path=file, line=1, field="text")
            continue
        yield Document(id=relative, text=text, metadata={"path": relative}), 1


CORPUS_READERS: Mapping[str, CorpusReader] = {
    "jsonl": _read_jsonl,
    "beir": _read_beir,
    "trec": _read_trec,
    "files": _read_files,
}
"""Corpus readers by format name; ``detect_corpus_format`` picks one from the path."""
