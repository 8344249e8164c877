"""TREC qrels and run files whose reading once depended on how they were spaced: a byte
order mark, Python's digit separators, grades beyond what the kernels hold."""

from __future__ import annotations

from pathlib import Path

import pytest

from evalkit.errors import InputError
from evalkit.metrics import Evaluator, read_qrels, read_run

BOM = b"\xef\xbb\xbf"


@pytest.mark.parametrize(
    "run_text",
    [
        b"1 Q0 a 1 1 t\n1 Q0 b 2 0.5 t\n2 Q0 c 1 1 t\n",  # Arrow's path
        b"1 Q0 a 1 1 t\n1 Q0 b 2 0.5 t\n2 Q0  c 1 1 t\n",  # one extra space: line by line
    ],
)
def test_a_byte_order_mark_is_dropped_however_the_file_is_spaced(
    tmp_path: Path, run_text: bytes
) -> None:
    """A BOM was dropped from a plainly spaced file and kept in query 1's id otherwise,
    so one space elsewhere changed the scores."""
    qrels, run = tmp_path / "qrels", tmp_path / "run"
    qrels.write_bytes(BOM + b"1 0 a 1\n1 0 b 1\n2 0 c 1\n")
    run.write_bytes(BOM + run_text)
    assert list(read_run(run)["query_id"]) == ["1", "1", "2"]
    assert list(read_qrels(qrels)["query_id"]) == ["1", "1", "2"]
    result = Evaluator(read_qrels(qrels), ["map"]).evaluate(read_run(run))
    assert result.per_query["map"].to_dict() == {"1": 1.0, "2": 1.0}


@pytest.mark.parametrize(
    ("kind", "text", "line", "field"),
    [
        ("run", b"1 Q0 a 1 1_0 t\n1 Q0 b 2 2 t\n", 1, "score"),
        ("run", b"1 Q0 a 1 1 t\n1\tQ0\tb\t2\t2_5\tt\n", 2, "score"),
        ("qrels", b"1 0 a 1\n1 0 b 1_0\n", 2, "relevance"),
        ("qrels", b"1\t0\ta\t1_0\n", 1, "relevance"),
    ],
)
def test_digit_separators_are_refused(
    tmp_path: Path, kind: str, text: bytes, line: int, field: str
) -> None:
    """Python reads ``1_0`` as 10, trec_eval as 1: neither is what the file meant."""
    path = tmp_path / kind
    path.write_bytes(text)
    reader = read_run if kind == "run" else read_qrels
    with pytest.raises(InputError) as caught:
        reader(path)
    assert (caught.value.line, caught.value.field) == (line, field)
    assert "_" in str(caught.value)


@pytest.mark.parametrize(
    "grades",
    [
        b"1 0 a 99999999999999999999\n1 0 b 1\n",  # beyond int64: was a traceback
        b"1 0 b 1\n1 0 a 3000000000\n",  # beyond int32 (Arrow's path): named "row 1"
        b"1 0 b 1\n1 0  a -2147483648\n",  # the kernels' unjudged marker
    ],
)
def test_a_grade_out_of_range_names_its_line_and_the_range(tmp_path: Path, grades: bytes) -> None:
    path = tmp_path / "qrels"
    path.write_bytes(grades)
    with pytest.raises(InputError) as caught:
        read_qrels(path)
    assert caught.value.field == "relevance"
    assert "from -2147483647 to 2147483647" in str(caught.value)
    assert caught.value.line == (1 if grades.startswith(b"1 0 a") else 2)


def test_the_widest_grades_are_read(tmp_path: Path) -> None:
    path = tmp_path / "qrels"
    path.write_bytes(b"1 0 a 2147483647\n1 0 b -2147483647\n")
    assert list(read_qrels(path)["relevance"]) == [2147483647, -2147483647]
