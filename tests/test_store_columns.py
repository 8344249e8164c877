"""A record's JSON-ready form and the column helpers the store reads and writes tables with."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from evalkit.records.jsonready import JsonReady, json_ready
from evalkit.store.columns import (
    column_names,
    json_text,
    json_value,
    masked,
    placeholders,
    qualified,
    record_of,
    twice,
    values_of,
)


@dataclass(frozen=True, slots=True)
class _Stored:
    name: str
    at: datetime
    ended: datetime | None
    clusters: tuple[tuple[str, ...], ...]
    checks: tuple[Mapping[str, Any], ...]
    details: Mapping[str, Any] = field(default_factory=dict)


def test_json_ready_gives_every_field_in_order_with_times_marked_utc() -> None:
    record = _Stored(
        name="a",
        at=datetime(2026, 11, 20, 8, 30),
        ended=None,
        clusters=(("d1", "d2"), ("d3",)),
        checks=({"name": "duplicates"},),
        details={"n": (1, 2)},
    )
    data = json_ready(record)
    assert list(data) == ["name", "at", "ended", "clusters", "checks", "details"]
    assert data["at"] == "2026-11-20T08:30:00Z"
    assert data["ended"] is None
    assert data["clusters"] == [["d1", "d2"], ["d3"]]
    assert data["checks"] == [{"name": "duplicates"}]
    assert type(data["checks"][0]) is dict
    # One level deep: what a mapping holds is left as it is.
    assert data["details"] == {"n": (1, 2)}
    plain = json_ready(record, omit=("details", "checks"), utc_mark="")
    assert list(plain) == ["name", "at", "ended", "clusters"]
    assert plain["at"] == "2026-11-20T08:30:00"


@dataclass(frozen=True, slots=True)
class _Ready(JsonReady):
    name: str
    at: datetime


def test_a_json_ready_record_gives_its_json_ready_form_and_keeps_its_slots() -> None:
    record = _Ready(name="a", at=datetime(2026, 11, 20, 8, 30))
    assert record.to_dict() == {"name": "a", "at": "2026-11-20T08:30:00Z"}
    assert not hasattr(record, "__dict__")


def test_column_lists_and_json_columns() -> None:
    columns = "a, b,\n c"
    assert column_names(columns) == ("a", "b", "c")
    assert qualified(columns, "t") == "t.a, t.b, t.c"
    assert placeholders(3) == "?, ?, ?"
    assert json_text({"b": 1, "a": datetime(2026, 1, 2)}) == '{"a": "2026-01-02 00:00:00", "b": 1}'
    assert json_value('{"a": 1}') == {"a": 1}
    assert json_value(None) == {}
    assert json_value("", empty=list) == []


def test_a_record_becomes_a_row_of_its_columns_and_back() -> None:
    record = _Stored(
        name="a",
        at=datetime(2026, 11, 20, 8, 30),
        ended=None,
        clusters=(),
        checks=(),
        details={"n": 1},
    )
    columns = "details, name, at"
    row = values_of(record, columns, details=json_text(record.details))
    assert row == ['{"n": 1}', "a", datetime(2026, 11, 20, 8, 30)]
    read = record_of(
        lambda **fields: _Stored(ended=None, clusters=(), checks=(), **fields),
        columns,
        row,
        details=json_value,
    )
    assert read == record


def test_optional_filters_take_each_value_twice_and_messages_are_masked() -> None:
    assert twice("g", None, ["a"]) == ["g", "g", None, None, ["a"], ["a"]]
    assert masked(None) is None
    assert masked("no secret here") == "no secret here"
