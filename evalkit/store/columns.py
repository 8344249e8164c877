"""How records meet their tables: the names in a column list, the parameter markers of its
values, and the text a JSON column holds."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from evalkit.redaction import redact_known

__all__ = [
    "column_names",
    "json_text",
    "json_value",
    "masked",
    "placeholders",
    "qualified",
    "record_of",
    "twice",
    "values_of",
]

R = TypeVar("R")


def column_names(columns: str) -> tuple[str, ...]:
    """The names of the SQL column list ``columns`` (``"a, b, c"``), in order."""
    return tuple(name.strip() for name in columns.split(","))


def qualified(columns: str, alias: str) -> str:
    """The SQL column list ``columns`` with each name taken from the table ``alias``."""
    return ", ".join(f"{alias}.{name}" for name in column_names(columns))


def placeholders(count: int) -> str:
    """``count`` parameter markers for a ``VALUES`` list: ``?, ?, ?``."""
    return ", ".join("?" * count)


def twice(*values: object) -> list[object]:
    """Each of ``values`` twice, in order: the parameters of filters written
    ``(? IS NULL OR column = ?)``, which a None value leaves open."""
    return [value for value in values for _ in range(2)]


def json_text(value: object) -> str:
    """What a JSON column stores of ``value``: keys sorted (the same value, the same text),
    anything JSON has no type for (a time, a path) as its ``str``."""
    return json.dumps(value, sort_keys=True, default=str)


def json_value(text: str | None, *, empty: Callable[[], Any] = dict) -> Any:
    """A JSON column's value read back; an empty one (NULL or ``""``) reads as ``empty()``."""
    return json.loads(text) if text else empty()


def masked(text: str | None) -> str | None:
    """What a column stores of a message (an error, a detail): every registered secret masked."""
    return None if text is None else redact_known(text)


def values_of(record: object, columns: str, **given: object) -> list[object]:
    """The values a row of the SQL column list ``columns`` holds of ``record``: each column's
    field of the same name, or the value ``given`` for it."""
    return [
        given[name] if name in given else getattr(record, name) for name in column_names(columns)
    ]


def record_of(
    cls: Callable[..., R], columns: str, row: Sequence[Any], **read: Callable[[Any], Any]
) -> R:
    """The record ``cls`` of a ``row`` of the SQL column list ``columns``, each value passed as
    the field of its column's name, through ``read``'s function for that name if it has one."""
    values = dict(zip(column_names(columns), row, strict=True))
    return cls(
        **{name: read[name](value) if name in read else value for name, value in values.items()}
    )
