"""Field rules of the JSONL goldset and corpus formats.

Each record type is a mapping of field name to a ``FieldSpec``: whether the field is
required, a check that returns what is wrong with a value (or ``None``), and the same rule
as a JSON Schema fragment, from which the published schemas of the records are built
(``query_json_schema`` and its siblings; ``evalkit.schemas`` publishes them). Unknown
fields are errors with a "did you mean" hint, so a typo such as ``referance_answer`` is not
silently dropped.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evalkit.goldset._reading import ProblemLog, describe_value

__all__ = [
    "DOCUMENT_FIELDS",
    "JUDGMENT_FIELDS",
    "MAX_GRADE",
    "MAX_OFFSET",
    "QUERY_FIELDS",
    "SPAN_FIELDS",
    "FieldSpec",
    "check_fields",
    "check_grade",
    "check_identifier",
    "check_identifier_list",
    "check_span_fields",
    "document_json_schema",
    "grade_value",
    "judgment_json_schema",
    "offset_value",
    "query_json_schema",
]

FieldCheck = Callable[[object], str | None]

MAX_GRADE = 2**31 - 1
"""The largest grade: the store keeps grades in a 32-bit INTEGER column."""

MAX_OFFSET = 2**63 - 1
"""The largest span offset (``start``, ``end``): the store keeps offsets in 64-bit BIGINT
columns."""


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One field of a record: is it required, what makes a value wrong, and that rule as
    a JSON Schema fragment (for a present, non-null value) with what the field holds."""

    check: FieldCheck
    required: bool = False
    json_schema: Mapping[str, Any] = field(default_factory=dict)


# White space as Python's str.strip() and str.isspace() see it (what the readers check),
# spelt out: "\s" means another set in ECMA-262 regular expressions (JavaScript validators
# count U+FEFF and not U+001C-U+001F or U+0085), so the schemas would disagree there.
_WHITE_SPACE = "\t-\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
# "No white space at either end" as a pattern that must not match: "$" in Python's re also
# matches before a final newline, so a positive "^...[^ ]$" would let "q1\n" through there.
_IDENTIFIER = {
    "type": "string",
    "minLength": 1,
    "not": {"pattern": f"^[{_WHITE_SPACE}]|[{_WHITE_SPACE}]$"},
}
_TEXT = {"type": "string", "pattern": f"[^{_WHITE_SPACE}]"}
_STRING_LIST = {"type": "array", "items": _IDENTIFIER}
_GRADE = {"type": "integer", "minimum": 0, "maximum": MAX_GRADE}
_OFFSET = {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET}
_METADATA = {
    "type": "object",
    "additionalProperties": {"type": ["string", "number", "boolean"]},
}


def check_identifier(value: object) -> str | None:
    """An id is a non-empty string without leading or trailing whitespace."""
    if not isinstance(value, str):
        is_number = isinstance(value, int) and not isinstance(value, bool)
        hint = f'; write "{value}"' if is_number else ""
        return f"must be a string, got {describe_value(value)}{hint}"
    if not value:
        return "is empty; give a non-empty id"
    if value != value.strip():
        return f"{describe_value(value)} has leading or trailing whitespace; remove it"
    return None


def _text_check(wanted: str, blank: str | None) -> FieldCheck:
    """A check that a value is ``wanted`` (a string), and not blank unless ``blank`` is None."""

    def check(value: object) -> str | None:
        if not isinstance(value, str):
            return f"must be {wanted}, got {describe_value(value)}"
        return blank if blank is not None and not value.strip() else None

    return check


_check_text = _text_check("a string", "is empty; give the text")
_check_optional_text = _text_check(
    "a string or null", "is empty; omit the field (or use null) when there is none"
)
_check_string = _text_check("a string or null", None)


def check_identifier_list(value: object) -> str | None:
    """A list of ids (``check_identifier`` for each), such as a query's tags."""
    if not isinstance(value, list):
        return f'must be a list of strings such as ["a", "b"], got {describe_value(value)}'
    for position, item in enumerate(value):
        problem = check_identifier(item)
        if problem is not None:
            return f"item {position} {problem}"
    return None


def check_grade(value: object) -> str | None:
    """A grade is an integer from 0 to ``MAX_GRADE``; an integral JSON number such as
    ``2.0`` counts as ``2``."""
    wanted = f"must be an integer grade from 0 to {MAX_GRADE} (0 = judged not relevant)"
    return _check_whole(value, MAX_GRADE, wanted)


def grade_value(value: object) -> int:
    """The integer grade of a value that passed ``check_grade``."""
    if isinstance(value, int | float):
        return int(value)
    raise TypeError(f"not a grade: {value!r}")


def _check_offset(value: object) -> str | None:
    wanted = f"must be a character offset, an integer from 0 to {MAX_OFFSET}"
    return _check_whole(value, MAX_OFFSET, wanted)


def _check_whole(value: object, high: int, wanted: str) -> str | None:
    """``wanted`` and the value, unless it is a whole number from 0 to ``high``."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or (isinstance(value, float) and not value.is_integer())
        or not 0 <= value <= high
    ):
        return f"{wanted}, got {describe_value(value)}"
    return None


def offset_value(value: object) -> int | None:
    """The integer offset of a value that passed the offset check (None for null)."""
    if value is None:
        return None
    if isinstance(value, int | float):
        return int(value)
    raise TypeError(f"not an offset: {value!r}")


def _check_metadata(value: object) -> str | None:
    if not isinstance(value, dict):
        return f"must be an object of field -> value, got {describe_value(value)}"
    for key, item in value.items():
        if not isinstance(item, str | int | float | bool):
            return (
                f"value of '{key}' must be a string, number or boolean (metadata is flat), "
                f"got {describe_value(item)}"
            )
        if isinstance(item, float) and not math.isfinite(item):
            return f"value of '{key}' must be a finite number, got {item!r}"
    return None


QUERY_FIELDS: Mapping[str, FieldSpec] = {
    "id": FieldSpec(
        check_identifier,
        required=True,
        json_schema={**_IDENTIFIER, "description": "unique id of the query in the goldset"},
    ),
    "text": FieldSpec(
        _check_text,
        required=True,
        json_schema={**_TEXT, "description": "the query sent to the retriever"},
    ),
    "tenant": FieldSpec(
        _check_optional_text,
        json_schema={**_TEXT, "description": "tenant, for multi-tenant retrievers"},
    ),
    "tags": FieldSpec(
        check_identifier_list,
        json_schema={**_STRING_LIST, "description": "labels to slice results by"},
    ),
    "reference_answer": FieldSpec(
        _check_optional_text,
        json_schema={**_TEXT, "description": "the expected answer, for answer measures"},
    ),
    "reference_context_ids": FieldSpec(
        check_identifier_list,
        json_schema={
            **_STRING_LIST,
            "description": "ids of the documents the answer should be grounded in",
        },
    ),
}

_SOURCE_ID = FieldSpec(
    check_identifier,
    json_schema={
        **_IDENTIFIER,
        "description": "the source document (before chunking) the span or chunk stands in",
    },
)
_START = FieldSpec(
    _check_offset,
    json_schema={**_OFFSET, "description": "offset of the first character in the source's text"},
)
_END = FieldSpec(
    _check_offset,
    json_schema={
        **_OFFSET,
        "description": "offset after the last character in the source's text (exclusive)",
    },
)

SPAN_FIELDS: tuple[str, ...] = ("source_id", "start", "end", "text")
"""The span fields of a judgment line (a chunk line has all but ``text``)."""

JUDGMENT_FIELDS: Mapping[str, FieldSpec] = {
    "query_id": FieldSpec(
        check_identifier,
        required=True,
        json_schema={**_IDENTIFIER, "description": "the id of a query of the goldset"},
    ),
    "doc_id": FieldSpec(
        check_identifier,
        required=True,
        json_schema={**_IDENTIFIER, "description": "the document's id in the retriever's index"},
    ),
    "relevance": FieldSpec(
        check_grade,
        required=True,
        json_schema={**_GRADE, "description": "graded relevance; 0 = judged not relevant"},
    ),
    "source_id": _SOURCE_ID,
    "start": _START,
    "end": _END,
    "text": FieldSpec(
        _check_text,
        json_schema={**_TEXT, "description": "the judged passage, quoted from the source"},
    ),
}

DOCUMENT_FIELDS: Mapping[str, FieldSpec] = {
    "id": FieldSpec(
        check_identifier,
        required=True,
        json_schema={**_IDENTIFIER, "description": "unique id of the document in the corpus"},
    ),
    "title": FieldSpec(_check_string, json_schema={"type": "string"}),
    "text": FieldSpec(
        _check_string,
        required=True,
        json_schema={"type": "string", "description": "may be empty when title is not"},
    ),
    "metadata": FieldSpec(
        _check_metadata,
        json_schema={
            **_METADATA,
            "description": "flat object of string, number or boolean values",
        },
    ),
    "source_id": _SOURCE_ID,
    "start": _START,
    "end": _END,
}


def _record_json_schema(fields: Mapping[str, FieldSpec]) -> dict[str, Any]:
    """An object with exactly ``fields``; ``null`` counts as absent, so an optional
    field may be null and a required one may not."""
    properties = {}
    for name, spec in fields.items():
        rule = dict(spec.json_schema)
        if spec.required:
            properties[name] = rule
            continue
        described = {"description": rule.pop("description")} if "description" in rule else {}
        properties[name] = {**described, "anyOf": [rule, {"type": "null"}]}
    return {
        "type": "object",
        "properties": properties,
        "required": [name for name, spec in fields.items() if spec.required],
        "additionalProperties": False,
    }


def _present(name: str) -> dict[str, Any]:
    return {"required": [name], "properties": {name: {"not": {"type": "null"}}}}


def _span_rules(*, quoted_text: bool) -> list[dict[str, Any]]:
    """The span rules across fields that a schema can say (not ``start < end``)."""
    rules: list[dict[str, Any]] = [
        {"if": _present("start"), "then": {"allOf": [_present("source_id"), _present("end")]}},
        {"if": _present("end"), "then": {"allOf": [_present("source_id"), _present("start")]}},
    ]
    if quoted_text:
        rules.append({"if": _present("text"), "then": _present("source_id")})
        rules.append(
            {"if": _present("source_id"), "then": {"anyOf": [_present("start"), _present("text")]}}
        )
    return rules


def check_span_fields(
    record: Mapping[str, object],
    bad: set[str],
    *,
    problems: ProblemLog,
    path: Path,
    line: int,
    quoted_text: bool,
) -> None:
    """Record the span rules across fields that ``record`` breaks, adding the fields to ``bad``.

    ``source_id`` is required with any of ``start``/``end`` (and ``text`` when
    ``quoted_text``: a judgment line); ``start`` and ``end`` come together with
    ``start < end``; a judgment's ``source_id`` needs the offsets or the quoted text. Fields
    already in ``bad`` are not judged again.
    """

    def given(name: str) -> bool:
        return record.get(name) is not None

    def report(name: str, message: str) -> None:
        bad.add(name)
        problems.add(message, path=path, line=line, field=name)

    span_parts = ("start", "end", "text") if quoted_text else ("start", "end")
    named = [name for name in span_parts if given(name)]
    if named and not given("source_id") and "source_id" not in bad:
        report("source_id", f"is missing; a span ({', '.join(named)}) names its source document")
    if given("start") != given("end"):
        missing = "end" if given("start") else "start"
        report(missing, "is missing; give start and end together (end exclusive)")
    elif given("start") and not bad & {"start", "end"}:
        start, end = record["start"], record["end"]
        if isinstance(start, int | float) and isinstance(end, int | float) and start >= end:
            report("end", f"must be greater than start ({int(start)}); end is exclusive")
    if quoted_text and given("source_id") and not any(map(given, ("start", "end", "text"))):
        report(
            "source_id",
            "names a source but no span; give start and end, or the quoted text",
        )


def query_json_schema() -> dict[str, Any]:
    """JSON Schema of one line of ``queries.jsonl``.

    Rules across lines (unique ids) are the loader's alone.
    """
    return _record_json_schema(QUERY_FIELDS)


def judgment_json_schema() -> dict[str, Any]:
    """JSON Schema of one line of ``judgments.jsonl``.

    Rules across lines (a known query id, one judgment per query and document) and
    ``start < end`` are the loader's alone.
    """
    schema = _record_json_schema(JUDGMENT_FIELDS)
    schema["allOf"] = _span_rules(quoted_text=True)
    return schema


def document_json_schema() -> dict[str, Any]:
    """JSON Schema of one line of a JSONL corpus: the document fields, its id as ``id``
    or BEIR's ``_id`` (not both), a non-blank text or title, and a chunk's ``source_id``
    with its ``start``/``end`` (``start < end`` is the reader's alone)."""
    schema = _record_json_schema(DOCUMENT_FIELDS)
    properties = schema["properties"]
    properties["_id"] = {**properties["id"], "description": "BEIR's name for id"}
    schema["required"] = [name for name in schema["required"] if name != "id"]
    schema["oneOf"] = [{"required": ["id"]}, {"required": ["_id"]}]
    schema["anyOf"] = [
        {"properties": {"text": _TEXT}},
        {"properties": {"title": _TEXT}, "required": ["title"]},
    ]
    schema["allOf"] = _span_rules(quoted_text=False)
    return schema


def check_fields(
    record: Mapping[str, object],
    fields: Mapping[str, FieldSpec],
    *,
    problems: ProblemLog,
    path: Path,
    line: int,
    record_name: str,
) -> set[str]:
    """Record every problem with ``record``'s fields; return the names of the bad fields.

    A null value counts as absent: fine for an optional field, "missing" for a required one.
    """
    bad: set[str] = set()
    for key in record:
        if key not in fields:
            bad.add(key)
            problems.add(
                f"unknown field in a {record_name}{_suggest(key, fields)}",
                path=path,
                line=line,
                field=key,
            )
    for name, spec in fields.items():
        value = record.get(name)
        if value is None:
            if spec.required:
                bad.add(name)
                absent = "is null" if name in record else "is missing"
                problems.add(
                    f"{absent}; every {record_name} needs it", path=path, line=line, field=name
                )
            continue
        problem = spec.check(value)
        if problem is not None:
            bad.add(name)
            problems.add(problem, path=path, line=line, field=name)
    return bad


def _suggest(key: str, fields: Mapping[str, FieldSpec]) -> str:
    close = difflib.get_close_matches(key, list(fields), n=1, cutoff=0.6)
    if close:
        return f"; did you mean '{close[0]}'?"
    return f"; allowed fields: {', '.join(fields)}"
