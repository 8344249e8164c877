"""Redaction of traffic before anything is stored: patterns masked, whole fields dropped.

Patterns are regular expressions (RE2 syntax, applied by Arrow over a whole batch at once)
replaced by a placeholder in the query text, the answer and every context. Named patterns
live in ``REDACTION_PATTERNS``; ``Redaction.build`` also takes patterns of your own. Fields
in ``DROPPABLE_FIELDS`` can be dropped entirely (stored as null).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from evalkit.errors import ConfigError

__all__ = [
    "DROPPABLE_FIELDS",
    "REDACTION_PATTERNS",
    "Redaction",
    "RedactionPattern",
]


@dataclass(frozen=True, slots=True)
class RedactionPattern:
    """A regular expression (RE2 syntax) and the placeholder that replaces each match."""

    name: str
    regex: str
    replacement: str


REDACTION_PATTERNS: Mapping[str, RedactionPattern] = {
    pattern.name: pattern
    for pattern in (
        RedactionPattern(
            "email", r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}", "<email>"
        ),
        # Any run of digits, with the separators phone, card and account numbers use inside.
        RedactionPattern("number", r"\+?\d(?:[\d .()/-]*\d)?", "<number>"),
    )
}
"""Named redaction patterns."""

DROPPABLE_FIELDS: Mapping[str, tuple[str, ...]] = {
    "answer": ("answer",),
    "contexts": ("contexts",),
    "tags": ("tags",),
    "results": ("logged_doc_ids", "logged_scores"),
    "latency_ms": ("latency_ms",),
}
"""Log fields that may be dropped before storing, and the stored columns each one fills."""

_TEXT_COLUMNS = ("text", "answer")
_LIST_COLUMNS = ("contexts",)


@dataclass(frozen=True, slots=True)
class Redaction:
    """What to remove from traffic before it is stored.

    Build one with ``Redaction.build(patterns=["email", "number"], drop=["answer"])``.
    """

    patterns: tuple[RedactionPattern, ...] = ()
    drop: tuple[str, ...] = ()

    @classmethod
    def build(
        cls,
        *,
        patterns: Iterable[str] = (),
        custom: Iterable[str] = (),
        drop: Iterable[str] = (),
    ) -> Redaction:
        """Named ``patterns``, ``custom`` regular expressions (masked as ``<redacted>``) and
        fields to ``drop``; raises ConfigError for an unknown name or an invalid expression."""
        chosen: list[RedactionPattern] = []
        for name in patterns:
            pattern = REDACTION_PATTERNS.get(name)
            if pattern is None:
                raise ConfigError(
                    f"unknown redaction pattern '{name}'; use one of: "
                    f"{', '.join(REDACTION_PATTERNS)} or give your own regular expression"
                )
            chosen.append(pattern)
        for number, regex in enumerate(custom, start=1):
            _check_regex(regex)
            chosen.append(RedactionPattern(f"custom{number}", regex, "<redacted>"))
        dropped = tuple(drop)
        for field in dropped:
            if field not in DROPPABLE_FIELDS:
                raise ConfigError(
                    f"field '{field}' cannot be dropped; droppable fields: "
                    f"{', '.join(DROPPABLE_FIELDS)} (query_id, timestamp and text are required; "
                    "mask text with patterns instead; tenant is needed for tenant isolation)"
                )
        return cls(tuple(chosen), dropped)

    @property
    def active(self) -> bool:
        """True when this redaction changes anything."""
        return bool(self.patterns or self.drop)

    def describe(self) -> dict[str, list[str]]:
        """Pattern names and dropped fields, for reports (never the matched text)."""
        return {"patterns": [p.name for p in self.patterns], "drop": list(self.drop)}

    def apply(self, table: pa.Table) -> pa.Table:
        """``table`` (a batch of records) with the patterns masked and the fields dropped.

        Columns the table does not have are left alone (a table of generated answers has
        only ``answer`` and ``contexts`` of them).
        """
        if not self.active or table.num_rows == 0:
            return table
        for field in self.drop:
            for column in DROPPABLE_FIELDS[field]:
                index = table.schema.get_field_index(column)
                if index < 0:
                    continue
                table = table.set_column(
                    index,
                    table.schema.field(index),
                    pa.nulls(table.num_rows, table.schema.field(index).type),
                )
        if not self.patterns:
            return table
        for column in _TEXT_COLUMNS:
            index = table.schema.get_field_index(column)
            if index < 0:
                continue
            values = table.column(index).combine_chunks()
            table = table.set_column(index, table.schema.field(index), self._mask(values))
        for column in _LIST_COLUMNS:
            index = table.schema.get_field_index(column)
            if index < 0:
                continue
            lists = table.column(index).combine_chunks()
            masked = self._mask(pc.list_flatten(lists))
            rebuilt = pa.ListArray.from_arrays(lists.offsets, masked, mask=lists.is_null())
            table = table.set_column(index, table.schema.field(index), rebuilt)
        return table

    def _mask(self, values: pa.Array) -> pa.Array:
        # Each match becomes a private-use mark first, which no later pattern's letters or
        # digits can match, and the marks become placeholders at the end: masked as
        # ``<redacted>``, "mail" must not eat into an ``<email>`` put there before it.
        marks = [f"\ue000{chr(0xE100 + number)}\ue001" for number in range(len(self.patterns))]
        for pattern, mark in zip(self.patterns, marks, strict=True):
            values = pc.replace_substring_regex(values, pattern=pattern.regex, replacement=mark)
        for pattern, mark in zip(self.patterns, marks, strict=True):
            values = pc.replace_substring(values, pattern=mark, replacement=pattern.replacement)
        return values


def _check_regex(regex: str) -> None:
    try:
        pc.replace_substring_regex(pa.array(["probe"]), pattern=regex, replacement="")
    except pa.ArrowInvalid as error:
        raise ConfigError(
            f"redaction pattern {regex!r} is not a valid RE2 regular expression: {error}"
        ) from error
