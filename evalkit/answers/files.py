"""Reading answer records from JSONL: ``{question, answer, contexts[, reference]}`` per line.

The fields (``id``, ``question``, ``answer``, ``contexts``, ``context_ids``, ``reference``,
``reference_contexts``, ``reference_context_ids``) and the ragas names accepted for them:
docs/answers.md, "Scoring a file". Unknown fields and a key given twice in one object are
refused; every problem is reported with its file, line and field, every bad line at once.
"""

from __future__ import annotations

import codecs
import json
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from evalkit.answers.records import AnswerRecord
from evalkit.errors import InputError
from evalkit.jsonsafe import REPEATED_KEY, TooDeepError, depth_checked, noting_repeated_keys

__all__ = ["ANSWER_FIELDS", "MAX_LISTED_PROBLEMS", "parse_answer_record", "read_answer_records"]

MAX_LISTED_PROBLEMS = 1000
"""Bad lines listed in the error (message and ``problems``); more are only counted."""

ANSWER_FIELDS: Mapping[str, tuple[str, ...]] = {
    "id": ("id", "query_id"),
    "question": ("question", "user_input"),
    "answer": ("answer", "response"),
    "contexts": ("contexts", "retrieved_contexts"),
    "context_ids": ("context_ids", "retrieved_context_ids"),
    "reference": ("reference", "ground_truth", "ground_truths"),
    "reference_contexts": ("reference_contexts",),
    "reference_context_ids": ("reference_context_ids",),
}
"""Each record field with the names it may have in a file (evalkit's first, then ragas')."""

_KNOWN = {name: field for field, names in ANSWER_FIELDS.items() for name in names}


def _text_list(value: object, field: str, *, path: str, line: int) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        raise InputError(
            "must be a list of strings, not a single string: wrap it in [ ]",
            path=path,
            line=line,
            field=field,
        )
    if not isinstance(value, list):
        raise InputError(
            f"must be a list of strings, got {type(value).__name__}",
            path=path,
            line=line,
            field=field,
        )
    items = []
    for index, item in enumerate(value):
        if isinstance(item, bool) or not isinstance(item, str | int | float):
            raise InputError(
                f"item {index} must be a string, got {type(item).__name__}",
                path=path,
                line=line,
                field=field,
            )
        items.append(str(item))
    return tuple(items)


def _text(value: object, field: str, *, path: str, line: int, required: bool) -> str | None:
    if value is None:
        if required:
            raise InputError("is required", path=path, line=line, field=field)
        return None
    if not isinstance(value, str):
        raise InputError(
            f"must be a string, got {type(value).__name__}", path=path, line=line, field=field
        )
    return value


def _reference(value: object, *, path: str, line: int) -> str | None:
    # Older ragas datasets (amnesty_qa among them) hold the reference as a list of answers.
    if isinstance(value, list):
        if len(value) != 1:
            raise InputError(
                f"a list of {len(value)} reference answers: give one (a string, or a list of "
                "one string)",
                path=path,
                line=line,
                field="reference",
            )
        value = value[0]
    return _text(value, "reference", path=path, line=line, required=False)


def parse_answer_record(data: Any, *, path: str = "<record>", line: int = 1) -> AnswerRecord:
    """One record from a decoded JSON object (see the module doc for the fields)."""
    if not isinstance(data, dict):
        raise InputError(
            f"each line must be a JSON object, got {type(data).__name__}", path=path, line=line
        )
    values: dict[str, Any] = {}
    for name, value in data.items():
        field = _KNOWN.get(name)
        if field is None:
            known = ", ".join(sorted(_KNOWN))
            raise InputError(
                f"unknown field; known fields: {known}", path=path, line=line, field=name
            )
        if field in values:
            raise InputError(
                f"given twice (as {' and '.join(ANSWER_FIELDS[field])})",
                path=path,
                line=line,
                field=field,
            )
        values[field] = value
    record_id = values.get("id", line)
    if isinstance(record_id, bool) or not isinstance(record_id, str | int):
        raise InputError("must be a string or an integer", path=path, line=line, field="id")
    question = _text(values.get("question"), "question", path=path, line=line, required=True)
    answer = _text(values.get("answer"), "answer", path=path, line=line, required=True)
    return AnswerRecord(
        id=str(record_id),
        question=question or "",
        answer=answer or "",
        contexts=_text_list(values.get("contexts"), "contexts", path=path, line=line),
        context_ids=_text_list(values.get("context_ids"), "context_ids", path=path, line=line),
        reference=_reference(values.get("reference"), path=path, line=line),
        reference_contexts=_text_list(
            values.get("reference_contexts"), "reference_contexts", path=path, line=line
        ),
        reference_context_ids=_text_list(
            values.get("reference_context_ids"), "reference_context_ids", path=path, line=line
        ),
    )


def _lines(path: Path) -> Iterator[tuple[int, str | InputError]]:
    """Each line of the file with its number, as text, or the problem of a line that is not
    UTF-8 (named by its line and byte, which a decoder's position in its buffer is not)."""
    try:
        with path.open("rb") as handle:
            for number, raw in enumerate(handle, start=1):
                data = raw.removeprefix(codecs.BOM_UTF8) if number == 1 else raw
                try:
                    yield number, data.decode("utf-8")
                except UnicodeDecodeError as error:
                    yield (
                        number,
                        InputError(
                            f"is not valid UTF-8 (byte {error.start + 1} of the line); save the "
                            "file as UTF-8",
                            path=str(path),
                            line=number,
                        ),
                    )
    except FileNotFoundError as error:
        raise InputError("no such file", path=str(path)) from error


def read_answer_records(path: Path | str) -> list[AnswerRecord]:
    """Every record of a JSONL file; blank lines are skipped, ids must be unique. Every line is
    checked first: one InputError lists every bad line with its field (``problems``, up to
    ``MAX_LISTED_PROBLEMS``), so a file is fixed in one pass.
    """
    path = Path(path)
    records: list[AnswerRecord] = []
    problems: list[InputError] = []
    first_line: dict[str, int] = {}
    repeated: list[str] = []
    # One decoder per file: building a decoder per line costs as much as parsing the line.
    decoder = json.JSONDecoder(object_pairs_hook=noting_repeated_keys(repeated))
    for number, raw in _lines(path):
        if isinstance(raw, InputError):
            problems.append(raw)
            continue
        if not raw.strip():
            continue
        repeated.clear()
        try:
            record = _parse_line(raw, decoder, repeated, path=str(path), line=number)
        except InputError as problem:
            problems.append(problem)
            continue
        if record.id in first_line:
            problems.append(
                InputError(
                    f"duplicate id {record.id!r} (first on line {first_line[record.id]})",
                    path=str(path),
                    line=number,
                    field="id",
                )
            )
            continue
        first_line[record.id] = number
        records.append(record)
    if problems:
        raise _invalid_file(path, problems)
    if not records:
        raise InputError("holds no record (expected one JSON object per line)", path=str(path))
    return records


def _parse_line(
    raw: str, decoder: json.JSONDecoder, repeated: list[str], *, path: str, line: int
) -> AnswerRecord:
    """The record of one line; ``decoder`` notes the keys a line repeats in ``repeated``."""
    try:
        data = depth_checked(decoder.decode, raw)
    except json.JSONDecodeError as error:
        raise InputError(
            f"not valid JSON: {error.msg} (column {error.colno})", path=path, line=line
        ) from error
    except TooDeepError as error:
        raise InputError(f"not valid JSON: {error}", path=path, line=line) from None
    except ValueError:  # an integer of more digits than Python converts
        raise InputError(
            f"holds a number too long to read (over {sys.get_int_max_str_digits()} digits)",
            path=path,
            line=line,
        ) from None
    if repeated:
        raise InputError(REPEATED_KEY, path=path, line=line, field=repeated[0])
    return parse_answer_record(data, path=path, line=line)


def _invalid_file(path: Path, problems: list[InputError]) -> InputError:
    """One error for a file with bad lines: a count, then each bad line."""
    if len(problems) == 1:
        return problems[0]
    listed = problems[:MAX_LISTED_PROBLEMS]
    lines = [f"{len(problems)} bad lines; nothing was scored or stored:"]
    lines.extend(f"  {problem}" for problem in listed)
    if len(problems) > len(listed):
        lines.append(f"  ... and {len(problems) - len(listed)} more")
    lines.append("Fix them and score the file again.")
    return InputError("\n".join(lines), path=str(path), problems=listed)
