"""The JSON-ready form of a record: its fields by name, as ``to_dict`` methods give them."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import Field, fields
from datetime import datetime
from typing import Any, ClassVar, Protocol, cast

__all__ = ["JsonReady", "json_ready"]


class _Dataclass(Protocol):
    """An instance of any dataclass."""

    __dataclass_fields__: ClassVar[dict[str, Field[Any]]]


def json_ready(
    record: _Dataclass, *, omit: Collection[str] = (), utc_mark: str = "Z"
) -> dict[str, Any]:
    """Every field of ``record`` but those in ``omit``, by name and in declaration order.

    Times (naive UTC) become ISO 8601 text followed by ``utc_mark`` (None stays None);
    mappings become dicts, one level deep; tuples and lists become lists, their items
    converted the same way (so a tuple of tuples becomes a list of lists).
    """
    return {
        item.name: _plain(getattr(record, item.name), utc_mark)
        for item in fields(record)
        if item.name not in omit
    }


class JsonReady:
    """Base of a dataclass record whose ``to_dict`` is ``json_ready`` of the record."""

    __slots__ = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: every field by name, times in ISO 8601 UTC."""
        return json_ready(cast(_Dataclass, self))


def _plain(value: object, utc_mark: str) -> object:
    if isinstance(value, datetime):
        return value.isoformat() + utc_mark
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, tuple | list):
        return [_plain(item, utc_mark) for item in value]
    return value
