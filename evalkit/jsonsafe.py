"""JSON that means one thing: values ready for JSON (what ``json.dumps`` writes for NaN and
infinity is not JSON), objects read without a key given twice (``json`` keeps the last
value silently; which one a writer meant is anyone's guess), and JSON nested too deeply to
read refused as malformed rather than crashing its reader."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = [
    "REPEATED_KEY",
    "TOO_DEEP",
    "TooDeepError",
    "depth_checked",
    "finite_or_null",
    "noting_repeated_keys",
]

REPEATED_KEY = "appears twice in one object; keep one"
"""What is said of a key given twice in one JSON object, after its name."""

TOO_DEEP = "nests arrays and objects too deeply to read"
"""What is said of JSON nested deeper than the interpreter's stack allows."""

_Source = TypeVar("_Source")
_Decoded = TypeVar("_Decoded")


class TooDeepError(ValueError):
    """JSON nests arrays and objects deeper than the interpreter's stack allows.

    A ``ValueError``, as every other malformed JSON is (``json.JSONDecodeError``,
    ``msgspec.DecodeError``), so that a reader's handling of bad input covers it.
    """


def depth_checked(decode: Callable[[_Source], _Decoded], data: _Source) -> _Decoded:
    """``decode(data)``, raising ``TooDeepError`` (message ``TOO_DEEP``) where JSON nested
    deeper than the interpreter's stack makes ``decode`` raise ``RecursionError``.

    ``json`` and msgspec recurse once per level, so a line of a few thousand ``[`` is
    valid JSON neither can read; each reader turns ``TooDeepError`` into its own error
    naming file and line.
    """
    try:
        return decode(data)
    except RecursionError:
        raise TooDeepError(TOO_DEEP) from None


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
