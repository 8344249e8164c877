"""Values ready for JSON: what ``json.dumps`` writes for NaN and infinity is not JSON."""

from __future__ import annotations

import math

__all__ = ["finite_or_null"]


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
