"""Import a BEIR dataset folder as a goldset.

A BEIR folder holds ``corpus.jsonl`` (``_id``, ``title``, ``text``), ``queries.jsonl``
(``_id``, ``text``, optional ``metadata``) and ``qrels/<split>.tsv`` (a ``query-id
corpus-id score`` header row, then tab-separated rows). As in BEIR itself, only the queries
judged in the chosen split are kept, in the order of ``queries.jsonl``.
"""

from __future__ import annotations

import json
from pathlib import Path

from evalkit.goldset._imported import (
    QrelsColumns,
    QrelsRow,
    SourceQuery,
    assemble_imported,
    check_writable_ids,
    qrels_row,
)
from evalkit.goldset._reading import (
    NoticeSink,
    ProblemLog,
    archive_not_folder,
    describe_value,
    iter_json_objects,
    iter_text_lines,
)
from evalkit.goldset._schema import check_identifier
from evalkit.goldset.model import Goldset
from evalkit.records import Query
from evalkit.records.requests import DEFAULT_GOLDSET_SPLIT

__all__ = [
    "BEIR_QRELS_COLUMNS",
    "beir_files",
    "load_beir_goldset",
    "read_beir_qrels",
    "read_beir_queries",
]

BEIR_QRELS_COLUMNS = QrelsColumns(query="query-id", doc="corpus-id", grade="score")


def load_beir_goldset(
    directory: Path | str,
    *,
    split: str = DEFAULT_GOLDSET_SPLIT,
    name: str | None = None,
    on_notice: NoticeSink | None = None,
) -> Goldset:
    """Load the queries and judgments of one split of a BEIR folder.

    ``name`` defaults to ``<folder>-<split>``. Grades below 0 become 0 and a repeated
    judgment with the same grade is kept once; each such change is reported to
    ``on_notice`` (default: a warning on the ``evalkit.goldset`` logger). Raises
    ``GoldsetError`` listing every problem (file, line, field) otherwise.
    """
    folder = Path(directory)
    problems = ProblemLog()
    if not folder.is_dir():
        # One problem for the folder, not one per file it would have held.
        if not folder.exists():
            what = "does not exist; check the path"
        else:
            what = archive_not_folder(folder) or (
                "is a file; the beir format reads a folder holding queries.jsonl and "
                "qrels/<split>.tsv"
            )
        problems.add(what, path=folder)
        problems.raise_if_any("collection", path=folder)
    queries_path = folder / "queries.jsonl"
    qrels_path = folder / "qrels" / f"{split}.tsv"
    queries = read_beir_queries(queries_path, problems=problems)
    if qrels_path.is_file() or not (folder / "qrels").is_dir():
        rows = read_beir_qrels(qrels_path, problems=problems)
    else:
        available = sorted(path.stem for path in (folder / "qrels").glob("*.tsv"))
        problems.add(
            f"has no qrels for split '{split}'; available splits: {', '.join(available) or 'none'}",
            path=qrels_path,
        )
        rows = []
    return assemble_imported(
        name=f"{folder.resolve().name}-{split}" if name is None else name,
        source=folder,
        queries=queries,
        queries_path=queries_path,
        rows=rows,
        qrels_path=qrels_path,
        columns=BEIR_QRELS_COLUMNS,
        problems=problems,
        on_notice=on_notice,
    )


def read_beir_queries(path: Path, *, problems: ProblemLog) -> list[SourceQuery]:
    """Read a BEIR ``queries.jsonl`` (``_id`` and ``text``; other fields are ignored)."""
    queries: list[SourceQuery] = []
    for line, record in iter_json_objects(path, problems):
        id_field = "_id" if "_id" in record or "id" not in record else "id"
        query_id = beir_identifier(
            record.get(id_field), problems, path=path, line=line, field=id_field
        )
        text = record.get("text")
        if not isinstance(text, str) or not text.strip():
            problems.add(
                f"must be the query text (a non-empty string), got {describe_value(text)}",
                path=path,
                line=line,
                field="text",
            )
            continue
        if query_id is not None:
            queries.append(
                SourceQuery(line=line, query=Query(id=query_id, text=text), id_field=id_field)
            )
    return queries


def read_beir_qrels(path: Path, *, problems: ProblemLog) -> list[QrelsRow]:
    """Read a BEIR qrels TSV; a header row (a score column without digits, such as
    ``score``) on the first line is skipped."""
    rows: list[QrelsRow] = []
    first = True
    for line, text in iter_text_lines(path, problems):
        columns = text.split("\t")
        if len(columns) != 3:
            columns = text.split()
        # A header names its columns; a first row whose score is a malformed number
        # ("1.5", "1_0") is data, and an error, not a header to skip.
        is_header = first and len(columns) == 3 and not any(c.isdigit() for c in columns[2])
        first = False
        if is_header:
            continue
        if len(columns) != 3:
            problems.add(
                f"expected 3 tab-separated columns 'query-id corpus-id score', got {len(columns)}",
                path=path,
                line=line,
            )
            continue
        query_id, doc_id, score = (column.strip() for column in columns)
        if not query_id or not doc_id:
            field = BEIR_QRELS_COLUMNS.query if not query_id else BEIR_QRELS_COLUMNS.doc
            problems.add("is empty", path=path, line=line, field=field)
            continue
        row = qrels_row(problems, path, line, (query_id, doc_id, score), columns=BEIR_QRELS_COLUMNS)
        if row is not None:
            rows.append(row)
    return rows


def beir_identifier(
    value: object, problems: ProblemLog, *, path: Path, line: int, field: str
) -> str | None:
    """A BEIR id as a string (integer ids are accepted as their decimal form), or None."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    problem = "is missing" if value is None else check_identifier(value)
    if problem is not None:
        problems.add(problem, path=path, line=line, field=field)
        return None
    return str(value)


def beir_files(goldset: Goldset, *, split: str = DEFAULT_GOLDSET_SPLIT) -> dict[str, str]:
    """``goldset`` in BEIR's layout, as the text of each file by its path in the folder:
    ``queries.jsonl`` (``{"_id", "text", "metadata": {}}`` for every query, in the
    goldset's order) and ``qrels/<split>.tsv`` (BEIR's header row, then one tab-separated
    judgment per line, in the goldset's order). No corpus: a goldset holds none.

    BEIR keeps ids, query texts and grades; ids holding a tab or a line break raise
    ``GoldsetError``, as no qrels line can hold them.
    """
    check_writable_ids(goldset, "beir", "\t\r\n", why="a tab or a line break")
    queries = "".join(
        json.dumps({"_id": query.id, "text": query.text, "metadata": {}}, ensure_ascii=False) + "\n"
        for query in goldset.queries
    )
    header = "\t".join((BEIR_QRELS_COLUMNS.query, BEIR_QRELS_COLUMNS.doc, BEIR_QRELS_COLUMNS.grade))
    rows = "".join(f"{j.query_id}\t{j.doc_id}\t{j.relevance}\n" for j in goldset.judgments)
    return {"queries.jsonl": queries, f"qrels/{split}.tsv": f"{header}\n{rows}"}
