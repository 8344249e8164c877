"""Turning the queries and qrels of an imported collection (BEIR, TREC) into a Goldset.

Real collections are imported as the field's tools read them: grades below 0 (trec_eval's
"judged non-relevant") become 0, a judgment repeated with the same grade is kept once, and
only the queries that have judgments are kept. Each such change is reported as a notice;
anything that cannot be read unambiguously is a problem.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from evalkit.errors import GoldsetError
from evalkit.goldset._reading import NoticeSink, ProblemLog, default_notice_sink
from evalkit.goldset._schema import MAX_GRADE
from evalkit.goldset.model import Goldset
from evalkit.records import Judgment, Query

__all__ = [
    "QrelsColumns",
    "QrelsRow",
    "SourceQuery",
    "assemble_imported",
    "check_writable_ids",
    "qrels_row",
]

_logger = logging.getLogger("evalkit.goldset")


# Plain ASCII decimal, as trec_eval and `evalkit score` read a grade: Python's int() would
# also take "1_0" (10, where trec_eval reads 1) and other scripts' digits ("２").
_GRADE = re.compile(r"[+-]?[0-9]+")


def qrels_row(
    problems: ProblemLog,
    path: Path,
    line: int,
    values: tuple[str, str, str],
    *,
    columns: QrelsColumns,
) -> QrelsRow | None:
    """The qrels row of a line's query id, doc id and grade (``values``) when the grade is
    plain decimal digits, as trec_eval reads them; otherwise None, with the problem recorded."""
    query_id, doc_id, grade = values
    relevance = None
    if _GRADE.fullmatch(grade):
        with contextlib.suppress(ValueError):  # more digits than Python converts
            relevance = int(grade)
    if relevance is None:
        problems.add(
            f"must be an integer grade, got {grade!r}", path=path, line=line, field=columns.grade
        )
        return None
    return QrelsRow(line=line, query_id=query_id, doc_id=doc_id, grade=relevance)


@dataclass(frozen=True, slots=True)
class SourceQuery:
    """A query read from a collection's topics or queries file, with its line.

    ``id_field`` is what the file calls the query id (for messages).
    """

    line: int
    query: Query
    id_field: str = "id"


@dataclass(frozen=True, slots=True)
class QrelsRow:
    """One judgment read from a qrels file, with its line; ``grade`` may still be negative."""

    line: int
    query_id: str
    doc_id: str
    grade: int


@dataclass(frozen=True, slots=True)
class QrelsColumns:
    """The names a qrels format gives its query, document and grade columns (for messages)."""

    query: str
    doc: str
    grade: str


def assemble_imported(
    *,
    name: str,
    source: Path,
    queries: Sequence[SourceQuery],
    queries_path: Path,
    rows: Sequence[QrelsRow],
    qrels_path: Path,
    columns: QrelsColumns,
    problems: ProblemLog,
    on_notice: NoticeSink | None,
) -> Goldset:
    """Check the queries and qrels against each other and build the goldset.

    Raises the ``GoldsetError`` of ``problems`` when anything (including what the caller
    recorded while reading) is wrong; notices go to ``on_notice`` only on success.
    """
    by_id: dict[str, SourceQuery] = {}
    repeated_queries: list[int] = []
    for item in queries:
        first = by_id.get(item.query.id)
        if first is None:
            by_id[item.query.id] = item
        elif first.query == item.query:
            # Query files joined from two splits repeat a query word for word; as a
            # judgment repeated with its grade, it says nothing new.
            repeated_queries.append(item.line)
        else:
            problems.add(
                f"duplicate query id '{item.query.id}' with another text (first on line "
                f"{first.line}); query ids must be unique",
                path=queries_path,
                line=item.line,
                field=item.id_field,
            )

    judgments: list[Judgment] = []
    first_lines: dict[tuple[str, str], tuple[int, int]] = {}
    negative_lines: list[int] = []
    repeated_lines: list[int] = []
    unknown: dict[str, list[int]] = {}
    for row in rows:
        if row.query_id not in by_id:
            unknown.setdefault(row.query_id, []).append(row.line)
            continue
        grade = row.grade
        if grade > MAX_GRADE:
            problems.add(
                f"must be an integer grade of at most {MAX_GRADE}, got {grade}",
                path=qrels_path,
                line=row.line,
                field=columns.grade,
            )
            continue
        if grade < 0:
            negative_lines.append(row.line)
            grade = 0
        pair = (row.query_id, row.doc_id)
        earlier = first_lines.get(pair)
        if earlier is None:
            first_lines[pair] = (row.line, grade)
            judgments.append(Judgment(query_id=row.query_id, doc_id=row.doc_id, relevance=grade))
        elif earlier[1] == grade:
            repeated_lines.append(row.line)
        else:
            problems.add(
                f"document '{row.doc_id}' is judged again for query '{row.query_id}' with "
                f"another grade ({grade}, line {earlier[0]} says {earlier[1]}); keep one",
                path=qrels_path,
                line=row.line,
                field=columns.grade,
            )
    # One problem per unknown query, not per line: qrels of another collection would
    # otherwise bury everything else under thousands of identical lines.
    # A queries file that could not be read at all makes every judged query "unknown".
    unpadded = {_unpadded(query_id): query_id for query_id in by_id} if unknown else {}
    for query_id, lines in unknown.items() if not problems.unread(queries_path) else ():
        more = f" (and {len(lines) - 1} more lines for it)" if len(lines) > 1 else ""
        padded = unpadded.get(_unpadded(query_id))
        fix = (
            f"it has '{padded}': ids are compared as written, so write them alike in both files"
            if padded is not None
            else "pass the queries/topics file that belongs to these qrels"
        )
        problems.add(
            f"judgment for query '{query_id}'{more}, which is not in {queries_path.name}; {fix}",
            path=qrels_path,
            line=lines[0],
            field=columns.query,
        )
    if not rows and not problems:
        problems.add("holds no judgments; check the file or the split", path=qrels_path)
    problems.raise_if_any("collection", path=source)

    judged = {judgment.query_id for judgment in judgments}
    kept = [item.query for item in by_id.values() if item.query.id in judged]
    notify = on_notice or default_notice_sink
    if len(kept) < len(by_id):
        unjudged = (
            f"{queries_path}: {len(by_id) - len(kept)} of its {len(by_id)} queries have no "
            f"judgment in {qrels_path.name} and were left out, as BEIR and trec_eval leave "
            "them out"
        )
        # Every BEIR split leaves queries out, so without a sink of the caller's this is
        # not worth a warning; with one (goldset import), the counts it reports add up.
        if on_notice is not None:
            on_notice(unjudged)
        else:
            _logger.info("%s", unjudged)
    if repeated_queries:
        one = len(repeated_queries) == 1
        notify(
            f"{queries_path}: {len(repeated_queries)} repeated "
            f"{'query' if one else 'queries'} with the same id and text (first on line "
            f"{repeated_queries[0]}) {'was' if one else 'were'} imported once"
        )
    if negative_lines:
        notify(
            f"{qrels_path}: {len(negative_lines)} judgment(s) graded below 0 (first on line "
            f"{negative_lines[0]}) were imported as 0, judged not relevant, as trec_eval "
            "treats them"
        )
    if repeated_lines:
        notify(
            f"{qrels_path}: {len(repeated_lines)} repeated judgment(s) with the same grade "
            f"(first on line {repeated_lines[0]}) were imported once"
        )
    return Goldset.build(name, kept, judgments, source=str(source))


def _unpadded(query_id: str) -> str:
    """A numeric id without its leading zeros (topics may say ``Number: 051`` where qrels say
    ``51``); other ids as they are."""
    return (query_id.lstrip("0") or "0") if query_id.isdigit() else query_id


def check_writable_ids(
    goldset: Goldset, layout: str, separators: str, *, why: str, comment: str = ""
) -> None:
    """Raise ``GoldsetError`` when an id of ``goldset`` cannot stand in a qrels line of
    ``layout``: it holds one of ``separators`` (``why`` says what they do there), or a query
    id starts with ``comment`` (the reader would skip its lines)."""
    named = [("query", query.id) for query in goldset.queries]
    named.extend(("document", judgment.doc_id) for judgment in goldset.judgments)
    bad = list(
        dict.fromkeys(
            (kind, value)
            for kind, value in named
            if any(character in value for character in separators)
            or (comment and kind == "query" and value.startswith(comment))
        )
    )
    if bad:
        shown = ", ".join(f"{kind} {value!r}" for kind, value in bad[:3])
        more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
        comment_note = f", or a query id starting with {comment!r}," if comment else ""
        raise GoldsetError(
            f"goldset '{goldset.name}' version {goldset.version} cannot be written as "
            f"{layout}: an id holding {why}{comment_note} would not read back as written "
            f"({shown}{more}); export it as jsonl, which holds any id"
        )
