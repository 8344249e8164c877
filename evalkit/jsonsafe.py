"""JSON that means one thing: values ready for JSON (what ``json.dumps`` writes for NaN and
infinity is not JSON), and objects read without a key given twice (``json`` keeps the last
value silently; which one a writer meant is anyone's guess)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

__all__ = ["REPEATED_KEY", "finite_or_null", "noting_repeated_keys"]

REPEATED_KEY = "appears twice in one object; keep one"
"""What is said of a key given twice in one JSON object, after its name."""


def finite_or_null(value: object) -> object:
    """``value`` with every NaN or infinite float, however deeply nested, replaced by None.

    Dicts stay dicts; lists and tuples become lists.
    """
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: finite_or_null(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [finite_or_null(item) for item in value]
    return value


def noting_repeated_keys(
    repeated: list[str],
) -> Callable[[list[tuple[str, Any]]], dict[str, Any]]:
    """An ``object_pairs_hook`` for ``json`` that builds each object as ``json`` does and
    appends to ``repeated`` every key given twice in one object (at any depth), so that a
    reader can refuse the object rather than keep one of the values unsaid.

    One decoder serves a whole file: clear ``repeated`` before each document.
    """

    def build(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        record: dict[str, Any] = {}
        for key, value in pairs:
            if key in record:
                repeated.append(key)
            record[key] = value
        return record

    return build
