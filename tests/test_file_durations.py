"""The suite's per-file durations, which order the files so that the slowest start first."""

from __future__ import annotations

import json
from pathlib import Path

from file_durations import file_seconds

TESTS = Path(__file__).resolve().parent


def test_durations_lines_are_summed_per_file_slowest_first() -> None:
    lines = [
        "12.50s call     tests/test_b.py::test_one",
        "3.00s setup    tests/test_a.py::test_two[x-y]",
        "0.40s teardown tests/test_b.py::test_one",
        "4.10s call     tests/test_a.py::test_three",
        "2.00s call     tests/test_c.py::test_four",
        "(1 durations < 0.005s hidden.)",
    ]
    assert file_seconds(lines) == {"tests/test_b.py": 13, "tests/test_a.py": 7}
    assert list(file_seconds(lines, at_least=0)) == [
        "tests/test_b.py",
        "tests/test_a.py",
        "tests/test_c.py",
    ]


def test_every_timed_file_exists() -> None:
    """A renamed or removed test file would leave its duration behind, and its successor
    would start with the files of unknown duration."""
    recorded = json.loads((TESTS / "durations.json").read_text())
    assert recorded, "no durations recorded"
    assert [name for name in recorded if not (TESTS.parent / name).is_file()] == []
    assert list(recorded.values()) == sorted(recorded.values(), reverse=True)
