"""evalkit's own goldset format: a directory of JSON Lines files.

``queries.jsonl`` holds one query object per line, ``judgments.jsonl`` one graded judgment
per line, and ``corpus.jsonl`` (optional) the documents. ``docs/goldsets.md`` documents the
fields and every validation rule; ``load_jsonl_goldset`` applies them all and either returns
a whole ``Goldset`` or raises one ``GoldsetError`` listing every problem.
"""

from __future__ import annotations

import json
import os
from collections.abc import Container, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from evalkit.errors import ConfigError, GoldsetError, InputError
from evalkit.goldset._reading import ProblemLog, archive_not_folder, iter_json_objects
from evalkit.goldset._schema import (
    JUDGMENT_FIELDS,
    QUERY_FIELDS,
    FieldSpec,
    check_fields,
    check_span_fields,
    grade_value,
    offset_value,
)
from evalkit.goldset.model import Goldset
from evalkit.records import Judgment, Query, Span

__all__ = [
    "CORPUS_FILE",
    "JUDGMENTS_FILE",
    "QUERIES_FILE",
    "check_judgment_keys",
    "jsonl_files",
    "judgment_lines",
    "judgment_record",
    "load_jsonl_goldset",
    "query_from_record",
    "read_jsonl_goldset",
    "span_of",
    "write_jsonl_goldset",
]

QUERIES_FILE = "queries.jsonl"
JUDGMENTS_FILE = "judgments.jsonl"
CORPUS_FILE = "corpus.jsonl"


def load_jsonl_goldset(
    directory: Path | str | None = None,
    *,
    name: str | None = None,
    queries_path: Path | str | None = None,
    judgments_path: Path | str | None = None,
) -> Goldset:
    """Load and validate a JSONL goldset.

    Give the goldset ``directory`` (holding ``queries.jsonl`` and ``judgments.jsonl``), or
    the two files explicitly with ``queries_path`` and ``judgments_path`` (an explicit path
    wins over the directory's file). ``name`` defaults to the directory's name.

    Raises ``GoldsetError`` listing every problem (file, line, field) when anything is
    invalid; nothing is half-loaded.
    """
    queries_file, judgments_file, source = _resolve_paths(directory, queries_path, judgments_path)
    problems = ProblemLog()
    queries, judgments = read_jsonl_goldset(queries_file, judgments_file, problems=problems)
    problems.raise_if_any("goldset", path=source)
    return Goldset.build(
        _default_name(source) if name is None else name, queries, judgments, source=str(source)
    )


def read_jsonl_goldset(
    queries_path: Path, judgments_path: Path, *, problems: ProblemLog
) -> tuple[list[Query], list[Judgment]]:
    """Read both files, recording every problem in ``problems``; return the valid records.

    The records are only meaningful when ``problems`` stays empty.
    """
    queries, query_lines = _read_queries(queries_path, problems)
    known_queries = query_lines or None
    judgments = _read_judgments(judgments_path, known_queries, problems)
    return queries, judgments


def write_jsonl_goldset(
    goldset: Goldset, directory: Path | str, *, overwrite: bool = False
) -> tuple[Path, Path]:
    """Write ``goldset`` to ``directory`` in the canonical JSONL format.

    The files are checked by the loader before they replace anything, so what is written
    always loads back to the same version (the form: docs/goldsets.md, "Writing a goldset").
    Existing files are replaced only with ``overwrite=True``. Returns the paths of the
    queries and judgments files.
    """
    target = Path(directory)
    queries_file = target / QUERIES_FILE
    judgments_file = target / JUDGMENTS_FILE
    existing = [path for path in (queries_file, judgments_file) if path.exists()]
    if existing and not overwrite:
        raise InputError(
            "already exists; choose another directory or pass overwrite=True to replace it",
            path=str(existing[0]),
        )
    if not goldset.judgments:
        # Checked here: read back from the staged files, the error would name a temp file.
        raise GoldsetError(
            f"goldset '{goldset.name}' version {goldset.version} holds no judgments; a goldset "
            "needs at least one graded judgment, so it is not written",
            path=str(judgments_file),
        )
    target.mkdir(parents=True, exist_ok=True)
    suffix = f".tmp-{os.getpid()}"
    staged_queries = queries_file.with_name(queries_file.name + suffix)
    staged_judgments = judgments_file.with_name(judgments_file.name + suffix)
    try:
        _write_lines(staged_queries, (_query_record(query) for query in goldset.queries))
        _write_lines(staged_judgments, (judgment_record(j) for j in goldset.judgments))
        problems = ProblemLog()
        read_jsonl_goldset(staged_queries, staged_judgments, problems=problems)
        problems.raise_if_any(f"goldset '{goldset.name}' as it would be written", path=target)
        os.replace(staged_queries, queries_file)
        os.replace(staged_judgments, judgments_file)
    finally:
        staged_queries.unlink(missing_ok=True)
        staged_judgments.unlink(missing_ok=True)
    return queries_file, judgments_file


def _resolve_paths(
    directory: Path | str | None,
    queries_path: Path | str | None,
    judgments_path: Path | str | None,
) -> tuple[Path, Path, Path]:
    if directory is None and (queries_path is None or judgments_path is None):
        raise ConfigError("give the goldset directory, or both queries_path and judgments_path")
    base = Path(directory) if directory is not None else None
    if base is not None and base.is_file():
        archive = archive_not_folder(base)
        if archive is not None:
            raise InputError(archive, path=str(base))
        raise InputError(
            f"is a file; the jsonl format reads a folder holding {QUERIES_FILE} and "
            f"{JUDGMENTS_FILE} (give {base.parent if base.name else base})",
            path=str(base),
        )
    queries_file = Path(queries_path) if queries_path is not None else _inside(base, QUERIES_FILE)
    judgments_file = (
        Path(judgments_path) if judgments_path is not None else _inside(base, JUDGMENTS_FILE)
    )
    return queries_file, judgments_file, base if base is not None else queries_file.parent


def _inside(base: Path | None, file_name: str) -> Path:
    if base is None:
        raise ConfigError(f"give the goldset directory or the path of {file_name}")
    return base / file_name


def _default_name(source: Path) -> str:
    return source.resolve().name or "goldset"


def _read_queries(path: Path, problems: ProblemLog) -> tuple[list[Query], dict[str, int]]:
    queries: list[Query] = []
    first_lines: dict[str, int] = {}
    for line, record in iter_json_objects(path, problems):
        bad = check_fields(
            record, QUERY_FIELDS, problems=problems, path=path, line=line, record_name="query"
        )
        if "id" not in bad:
            query_id = str(record["id"])
            if query_id in first_lines:
                bad.add("id")
                problems.add(
                    f"duplicate query id '{query_id}' (first on line {first_lines[query_id]}); "
                    "query ids must be unique",
                    path=path,
                    line=line,
                    field="id",
                )
            else:
                first_lines[query_id] = line
        if not bad:
            queries.append(query_from_record(record))
    if not first_lines and not problems:
        problems.add("holds no queries; a goldset needs at least one", path=path)
    return queries, first_lines


def check_judgment_keys(
    record: Mapping[str, Any],
    bad: set[str],
    *,
    known_queries: Container[str] | None,
    first_lines: dict[tuple[str, str], int],
    problems: ProblemLog,
    path: Path,
    line: int,
) -> None:
    """Check a judgment line's keys against the goldset: a query id not among
    ``known_queries`` (None: not checked) and a (query, document) pair judged on an earlier
    line (``first_lines``, filled as lines pass). Problems are added to ``problems`` and
    their fields to ``bad``."""
    if (
        known_queries is not None
        and "query_id" not in bad
        and record["query_id"] not in known_queries
    ):
        bad.add("query_id")
        problems.add(
            f"judgment for unknown query '{record['query_id']}'; add the query to "
            f"{QUERIES_FILE} or correct the id",
            path=path,
            line=line,
            field="query_id",
        )
    if bad & {"query_id", "doc_id"}:
        return
    pair = (str(record["query_id"]), str(record["doc_id"]))
    if pair in first_lines:
        bad.add("doc_id")
        problems.add(
            f"duplicate judgment of document '{pair[1]}' for query '{pair[0]}' "
            f"(first on line {first_lines[pair]}); keep one",
            path=path,
            line=line,
            field="doc_id",
        )
    else:
        first_lines[pair] = line


def judgment_lines(
    path: Path,
    fields: Mapping[str, FieldSpec],
    *,
    known_queries: Container[str] | None,
    problems: ProblemLog,
) -> Iterator[tuple[dict[str, object], set[str]]]:
    """Each object of the judgments file at ``path`` with the names of its bad fields: the
    ones ``fields`` and the span fields refuse, and those ``check_judgment_keys`` finds
    (``known_queries``: None, not checked). Problems are added to ``problems``."""
    first_lines: dict[tuple[str, str], int] = {}
    for line, record in iter_json_objects(path, problems):
        bad = check_fields(
            record, fields, problems=problems, path=path, line=line, record_name="judgment"
        )
        check_span_fields(record, bad, problems=problems, path=path, line=line, quoted_text=True)
        check_judgment_keys(
            record,
            bad,
            known_queries=known_queries,
            first_lines=first_lines,
            problems=problems,
            path=path,
            line=line,
        )
        yield record, bad


def _read_judgments(
    path: Path, known_queries: dict[str, int] | None, problems: ProblemLog
) -> list[Judgment]:
    # With no query read at all every judgment would be "unknown": the queries file's own
    # problem says it once instead.
    judgments: list[Judgment] = []
    for record, bad in judgment_lines(
        path, JUDGMENT_FIELDS, known_queries=known_queries, problems=problems
    ):
        if not bad:
            judgments.append(
                Judgment(
                    query_id=str(record["query_id"]),
                    doc_id=str(record["doc_id"]),
                    relevance=grade_value(record["relevance"]),
                    span=span_of(record),
                )
            )
    if not judgments and not problems:
        problems.add("holds no judgments; a goldset needs at least one graded judgment", path=path)
    return judgments


def span_of(record: dict[str, object]) -> Span | None:
    """The span a checked judgment or chunk line names (None without ``source_id``)."""
    source_id = record.get("source_id")
    if source_id is None:
        return None
    start, end, text = record.get("start"), record.get("end"), record.get("text")
    return Span(
        source_id=str(source_id),
        start=offset_value(start),
        end=offset_value(end),
        text=None if text is None else str(text),
    )


def judgment_record(judgment: Judgment) -> dict[str, object]:
    """A judgment as one line of ``judgments.jsonl``: the span fields only when it has a span
    (and of those, only the ones set)."""
    record: dict[str, object] = {
        "query_id": judgment.query_id,
        "doc_id": judgment.doc_id,
        "relevance": judgment.relevance,
    }
    span = judgment.span
    if span is not None:
        record["source_id"] = span.source_id
        for name, value in (("start", span.start), ("end", span.end), ("text", span.text)):
            if value is not None:
                record[name] = value
    return record


def query_from_record(record: Mapping[str, object]) -> Query:
    """The ``Query`` of a validated ``queries.jsonl`` record."""
    return Query(
        id=str(record["id"]),
        text=str(record["text"]),
        tenant=_optional_str(record.get("tenant")),
        tags=_str_tuple(record.get("tags")),
        reference_answer=_optional_str(record.get("reference_answer")),
        reference_context_ids=_str_tuple(record.get("reference_context_ids")),
    )


def _optional_str(value: object) -> str | None:
    return None if value is None else str(value)


def _str_tuple(value: object) -> tuple[str, ...]:
    return tuple(str(item) for item in value) if isinstance(value, list) else ()


def _query_record(query: Query) -> dict[str, object]:
    record: dict[str, object] = {"id": query.id, "text": query.text}
    if query.tenant is not None:
        record["tenant"] = query.tenant
    if query.tags:
        record["tags"] = list(query.tags)
    if query.reference_answer is not None:
        record["reference_answer"] = query.reference_answer
    if query.reference_context_ids:
        record["reference_context_ids"] = list(query.reference_context_ids)
    return record


def _line(record: dict[str, object]) -> str:
    return json.dumps(record, ensure_ascii=False, separators=(", ", ": ")) + "\n"


def _write_lines(path: Path, records: Iterable[dict[str, object]]) -> None:
    with path.open("w", encoding="utf-8", newline="\n") as handle:
        for record in records:
            handle.write(_line(record))


def jsonl_files(goldset: Goldset) -> dict[str, str]:
    """``goldset`` in the canonical JSONL form of ``write_jsonl_goldset``, as the text of
    each file by its name (``queries.jsonl``, ``judgments.jsonl``)."""
    return {
        QUERIES_FILE: "".join(_line(_query_record(query)) for query in goldset.queries),
        JUDGMENTS_FILE: "".join(_line(judgment_record(j)) for j in goldset.judgments),
    }
