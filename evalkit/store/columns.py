"""How records meet their tables: the names in a column list, the parameter markers of its
values, and the text a JSON column holds."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

__all__ = ["column_names", "json_text", "json_value", "placeholders", "qualified"]


def column_names(columns: str) -> tuple[str, ...]:
    """The names of the SQL column list ``columns`` (``"a, b, c"``), in order."""
    return tuple(name.strip() for name in columns.split(","))


def qualified(columns: str, alias: str) -> str:
    """The SQL column list ``columns`` with each name taken from the table ``alias``."""
    return ", ".join(f"{alias}.{name}" for name in column_names(columns))


def placeholders(count: int) -> str:
    """``count`` parameter markers for a ``VALUES`` list: ``?, ?, ?``."""
    return ", ".join("?" * count)


def json_text(value: object) -> str:
    """What a JSON column stores of ``value``: keys sorted (the same value, the same text),
    anything JSON has no type for (a time, a path) as its ``str``."""
    return json.dumps(value, sort_keys=True, default=str)


def json_value(text: str | None, *, empty: Callable[[], Any] = dict) -> Any:
    """A JSON column's value read back; an empty one (NULL or ``""``) reads as ``empty()``."""
    return json.loads(text) if text else empty()
