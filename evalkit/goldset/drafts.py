"""Reading a goldset *draft folder*: queries with suggested, not yet reviewed, judgments.

A goldset folder in which a judgment's ``relevance`` may be null or a suggested grade, plus
an optional ``candidates.jsonl`` saying why each query is there; written by ``evalkit
traffic promote`` and ``evalkit goldset generate``, ingested by ``evalkit review add``.
Fields: docs/goldsets.md, "Review queue". ``read_draft`` checks every line of every file and
raises one ``GoldsetError`` naming each problem's file, line and field, or returns the whole
draft.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from evalkit.goldset._reading import ProblemLog, describe_value, iter_json_objects
from evalkit.goldset._schema import (
    JUDGMENT_FIELDS,
    QUERY_FIELDS,
    FieldSpec,
    check_fields,
    check_identifier,
    check_identifier_list,
    grade_value,
)
from evalkit.goldset.corpus import iter_corpus, validate_corpus
from evalkit.goldset.jsonl import (
    CORPUS_FILE,
    JUDGMENTS_FILE,
    QUERIES_FILE,
    judgment_lines,
    query_from_record,
    span_of,
)
from evalkit.records import Query, Span
from evalkit.records.review import REVIEW_GRADES, ReviewDocument, ReviewOrigin

__all__ = ["CANDIDATES_FILE", "Draft", "DraftQuery", "read_draft"]

CANDIDATES_FILE = "candidates.jsonl"
"""Why each query of a draft is there (one object per query)."""

_DRAFT_ORIGINS = (ReviewOrigin.traffic, ReviewOrigin.generated)


@dataclass(frozen=True, slots=True)
class DraftQuery:
    """One query of a draft with the documents to grade, where it came from (``origin``,
    ``provenance``), the draft's own priority for it (0-1, None when the draft gives none)
    and the line of ``queries.jsonl`` it stands on."""

    query: Query
    origin: ReviewOrigin
    documents: tuple[ReviewDocument, ...]
    line: int
    priority: float | None = None
    reasons: tuple[str, ...] = ()
    provenance: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Draft:
    """A whole, valid draft folder."""

    directory: Path
    queries: tuple[DraftQuery, ...]

    @property
    def queries_file(self) -> Path:
        """The draft's ``queries.jsonl``."""
        return self.directory / QUERIES_FILE


def _check_suggested_grade(value: object) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"must be a grade 0-3 or null (not graded yet), got {describe_value(value)}"
    if value not in REVIEW_GRADES:
        return f"must be a grade 0-3 or null (not graded yet), got {describe_value(value)}"
    return None


def _check_text(value: object) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return f"must be a non-empty string, got {describe_value(value)}"
    return None


def _check_priority(value: object) -> str | None:
    wanted = "must be a number from 0 to 1"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"{wanted}, got {describe_value(value)}"
    if not math.isfinite(value) or not 0 <= value <= 1:
        return f"{wanted}, got {describe_value(value)}"
    return None


def _check_origin(value: object) -> str | None:
    if value not in {origin.value for origin in _DRAFT_ORIGINS}:
        return f'must be "traffic" or "generated", got {describe_value(value)}'
    return None


_DRAFT_JUDGMENT_FIELDS: Mapping[str, FieldSpec] = {
    **JUDGMENT_FIELDS,
    "relevance": FieldSpec(_check_suggested_grade),
}

_CANDIDATE_FIELDS: Mapping[str, FieldSpec] = {
    "query_id": FieldSpec(check_identifier, required=True),
    "origin": FieldSpec(_check_origin),
    "priority": FieldSpec(_check_priority),
    "reasons": FieldSpec(check_identifier_list),
    "generator": FieldSpec(_check_text),
    "prompt_version": FieldSpec(_check_text),
    "kind": FieldSpec(_check_text),
    "source_ids": FieldSpec(check_identifier_list),
}


@dataclass(slots=True)
class _Candidate:
    origin: ReviewOrigin | None
    priority: float | None
    reasons: tuple[str, ...]
    provenance: dict[str, str]


def read_draft(directory: Path | str) -> Draft:
    """Read and check the draft folder ``directory``; raises ``GoldsetError`` listing every
    problem (file, line, field), so that nothing of a bad draft is used."""
    base = Path(directory)
    problems = ProblemLog()
    if not base.is_dir():
        problems.add("is not a folder; give the draft folder", path=base)
        problems.raise_if_any("draft", path=base)
    queries_path = base / QUERIES_FILE
    queries: list[tuple[int, Query]] = []
    lines: dict[str, int] = {}
    for line, record in iter_json_objects(queries_path, problems):
        bad = check_fields(
            record,
            QUERY_FIELDS,
            problems=problems,
            path=queries_path,
            line=line,
            record_name="query",
        )
        if "id" not in bad and str(record["id"]) in lines:
            bad.add("id")
            problems.add(
                f"duplicate query id '{record['id']}' (first on line {lines[str(record['id'])]})",
                path=queries_path,
                line=line,
                field="id",
            )
        if not bad:
            query = query_from_record(record)
            lines[query.id] = line
            queries.append((line, query))
    if not queries and not problems:
        problems.add("holds no queries; a draft needs at least one", path=queries_path)
    suggestions = _read_judgments(base / JUDGMENTS_FILE, lines, problems)
    texts = _corpus_texts(base / CORPUS_FILE, suggestions, problems)
    candidates = _read_candidates(base / CANDIDATES_FILE, lines, problems)
    drafted: list[DraftQuery] = []
    for line, query in queries:
        listed = suggestions.get(query.id)
        if listed is None:
            problems.add(
                f"query '{query.id}' has no document to grade in {JUDGMENTS_FILE}; add one "
                "or remove the query",
                path=queries_path,
                line=line,
                field="id",
            )
            continue
        if not listed:
            continue
        candidate = candidates.get(query.id) or _Candidate(None, None, (), {})
        origin = candidate.origin or (
            ReviewOrigin.generated if "generated" in query.tags else ReviewOrigin.traffic
        )
        suggested_by = _suggester(origin, candidate.provenance)
        documents = tuple(
            ReviewDocument(
                doc_id=doc_id,
                text=texts.get(doc_id) or (span.text if span and span.text else ""),
                suggested_grade=grade,
                suggested_by=None if grade is None else suggested_by,
                span=span,
            )
            for doc_id, grade, span in listed
        )
        provenance = {"draft": str(base), **candidate.provenance}
        window = next((tag[7:] for tag in query.tags if tag.startswith("window:")), None)
        if window is not None:
            provenance.setdefault("window", window)
        drafted.append(
            DraftQuery(
                query=query,
                origin=origin,
                documents=documents,
                line=line,
                priority=candidate.priority,
                reasons=candidate.reasons,
                provenance=provenance,
            )
        )
    problems.raise_if_any("draft", path=base)
    return Draft(directory=base, queries=tuple(drafted))


_Suggestion = tuple[str, int | None, Span | None]


def _read_judgments(
    path: Path, known: Mapping[str, int], problems: ProblemLog
) -> dict[str, list[_Suggestion]]:
    by_query: dict[str, list[_Suggestion]] = {}
    for record, bad in judgment_lines(
        path, _DRAFT_JUDGMENT_FIELDS, known_queries=known or None, problems=problems
    ):
        if "query_id" not in bad:
            # A query whose lines are all bad has its problems named already.
            by_query.setdefault(str(record["query_id"]), [])
        if bad:
            continue
        relevance = record.get("relevance")
        grade = None if relevance is None else grade_value(relevance)
        by_query.setdefault(str(record["query_id"]), []).append(
            (str(record["doc_id"]), grade, span_of(record))
        )
    return by_query


def _corpus_texts(
    path: Path, suggestions: Mapping[str, list[_Suggestion]], problems: ProblemLog
) -> dict[str, str]:
    if not path.exists():
        return {}
    found = validate_corpus(path, format="jsonl")
    for problem in found:
        problems.add(
            problem.detail, path=problem.path or path, line=problem.line, field=problem.field
        )
    if found:
        return {}
    wanted = {doc_id for listed in suggestions.values() for doc_id, _, _ in listed}
    return {
        document.id: document.content
        for document in iter_corpus(path, format="jsonl")
        if document.id in wanted
    }


def _read_candidates(
    path: Path, known: Mapping[str, int], problems: ProblemLog
) -> dict[str, _Candidate]:
    if not path.exists():
        return {}
    candidates: dict[str, _Candidate] = {}
    first: dict[str, int] = {}
    for line, record in iter_json_objects(path, problems):
        checked = {name: value for name, value in record.items() if name in _CANDIDATE_FIELDS}
        bad = check_fields(
            checked,
            _CANDIDATE_FIELDS,
            problems=problems,
            path=path,
            line=line,
            record_name="candidate",
        )
        if "query_id" not in bad:
            query_id = str(record["query_id"])
            if known and query_id not in known:
                bad.add("query_id")
                problems.add(
                    f"candidate for unknown query '{query_id}'; it must be a query of "
                    f"{QUERIES_FILE}",
                    path=path,
                    line=line,
                    field="query_id",
                )
            elif query_id in first:
                bad.add("query_id")
                problems.add(
                    f"second candidate line for query '{query_id}' (first on line "
                    f"{first[query_id]}); keep one",
                    path=path,
                    line=line,
                    field="query_id",
                )
            else:
                first[query_id] = line
        if bad:
            continue
        provenance: dict[str, str] = {}
        for name in ("generator", "prompt_version", "kind"):
            if record.get(name) is not None:
                provenance[name] = str(record[name])
        for name in ("source_ids", "reasons"):
            values = record.get(name)
            if isinstance(values, list) and values:
                provenance[name] = ",".join(str(value) for value in values)
        for name in ("top1_score", "rbo", "overlap_at_k"):
            value = record.get(name)
            if isinstance(value, int | float) and not isinstance(value, bool):
                provenance[name] = repr(value)
        origin = record.get("origin")
        priority = record.get("priority")
        reasons = record.get("reasons")
        candidates[str(record["query_id"])] = _Candidate(
            origin=None if origin is None else ReviewOrigin(str(origin)),
            priority=None if priority is None else float(str(priority)),
            reasons=tuple(str(reason) for reason in reasons) if isinstance(reasons, list) else (),
            provenance=provenance,
        )
    return candidates


def _suggester(origin: ReviewOrigin, provenance: Mapping[str, str]) -> str:
    if origin is ReviewOrigin.generated:
        generator = provenance.get("generator")
        return f"generator:{generator}" if generator else "generator"
    return "draft"
