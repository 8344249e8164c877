"""Decoding log lines a block at a time gives what decoding them one by one gives."""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evalkit.traffic import _lines
from evalkit.traffic._lines import LineBlock, add_json_lines
from evalkit.traffic._records import MAX_TEXT_LENGTH, RecordBatchBuilder, dedup_text, dedup_texts


def record(query_id: Any = "q1", **fields: Any) -> dict[str, Any]:
    return {"query_id": query_id, "timestamp": "2026-11-21T10:00:00Z", "text": "reset", **fields}


def encode(value: dict[str, Any]) -> bytes:
    return (json.dumps(value) + "\n").encode()


def one_by_one(lines: list[bytes], first_line: int = 1) -> RecordBatchBuilder:
    builder = RecordBatchBuilder()
    for index, raw in enumerate(lines):
        if raw.strip():
            builder.add_line(raw, first_line + index)
    return builder


def at_once(lines: list[bytes], first_line: int = 1) -> RecordBatchBuilder:
    builder = RecordBatchBuilder()
    add_json_lines(builder, lines, first_line)
    return builder


def assert_same(lines: list[bytes], first_line: int = 1) -> None:
    expected, got = one_by_one(lines, first_line), at_once(lines, first_line)
    assert got.to_table().to_pylist() == expected.to_table().to_pylist()
    assert got.problems == expected.problems
    assert len(got) == len(expected)


def refuse_line_by_line(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record the lines that go through the per-line path."""
    seen: list[int] = []
    original = RecordBatchBuilder.add_line

    def spy(self: RecordBatchBuilder, raw: bytes, line: int, **options: bool) -> None:
        seen.append(line)
        original(self, raw, line, **options)

    monkeypatch.setattr(RecordBatchBuilder, "add_line", spy)
    return seen


def test_valid_lines_are_decoded_as_a_block(monkeypatch: pytest.MonkeyPatch) -> None:
    lines = [
        encode(
            record(
                f"q{i}",
                tenant="acme" if i % 2 else "",
                results=[{"doc_id": f"d{i}", "score": 0.5}, {"doc_id": "d0"}],
                contexts=["c"],
                answer="a",
                latency_ms=i,
                tags={"locale": "fr", "beta": True} if i % 3 == 0 else None,
            )
        )
        for i in range(40)
    ]
    expected = one_by_one(lines, 10).to_table().to_pylist()
    per_line = refuse_line_by_line(monkeypatch)
    builder = at_once(lines, 10)
    assert per_line == []
    assert builder.to_table().to_pylist() == expected
    assert expected[0]["tags"] == '{"beta":"true","locale":"fr"}'
    assert expected[1]["tenant"] == "acme"
    assert expected[0]["tenant"] is None


def test_one_malformed_line_is_reported_and_the_rest_decoded_as_blocks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_lines, "_SMALLEST_BLOCK", 4)
    lines = [encode(record(f"q{i}")) for i in range(64)]
    lines[37] = b'{"query_id": "q37", "timestamp": \n'
    per_line = refuse_line_by_line(monkeypatch)
    builder = at_once(lines, 1)
    assert [line for line, _ in builder.problems] == [38]
    assert "not valid JSON" in builder.problems[0][1]
    assert builder.to_table().column("line").to_pylist() == [n for n in range(1, 65) if n != 38]
    # Halving narrows the bad line down to a block of at most four lines.
    assert 38 in per_line
    assert len(per_line) <= 4


def test_a_record_the_format_refuses_is_judged_by_the_per_line_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lines = [encode(record(f"q{i}")) for i in range(10)]
    lines[3] = encode(record("q3", text="   "))
    lines[6] = encode(record("q6", timestamp="2026-02-30T10:00:00Z"))
    per_line = refuse_line_by_line(monkeypatch)
    builder = at_once(lines, 1)
    assert per_line == [4, 7]
    assert [line for line, _ in builder.problems] == [4, 7]
    assert "text" in builder.problems[0][1]
    assert "timestamp" in builder.problems[1][1]
    assert len(builder) == 8


@pytest.mark.parametrize(
    "raw",
    [
        b'{"query_id": "q", "timestamp": "2026-11-21T10:00:00Z", "text": "t", "x": NaN}\n',
        b'{"query_id": "q", "timestamp": "2026-11-21T10:00:00Z", "text": "t", "x": -Inf}\n',
        b'{"query_id": "q", "timestamp": "2026-11-21T10:00:00Z", "text": "t"} {"query_id": "r",'
        b' "timestamp": "2026-11-21T10:00:00Z", "text": "t"}\n',
        b'{"query_id": "q", "timestamp": "2026-11-21T10:00:00Z", "text": "t", "x": "\xff"}\n',
        b'{"query_id": "q\xff", "timestamp": "2026-11-21T10:00:00Z", "text": "t"}\n',
        b'\xef\xbb\xbf{"query_id": "q", "timestamp": "2026-11-21T10:00:00Z", "text": "t"}\n',
        b'{"query_id": "q", "query_id": "r", "timestamp": "2026-11-21T10:00:00Z", "text": "t"}\n',
        b'  {"query_id": "q", "timestamp": "2026-11-21T10:00:00Z", "text": "t"}\r\n',
        b'{"query_id": "q", "timestamp": "2026-11-21T10:00:00Z", "text": "t", "t\\u0061gs": '
        b'{"a": 1}}\n',
        b'{"query_id": 7, "timestamp": 1763726400, "text": "t", "results": ["d1", "d2"]}\n',
        b'{"query_id": " q", "timestamp": 1763726400, "text": "t"}\n',
        b'{"query_id": "q\\u3000", "timestamp": 1763726400, "text": "t"}\n',
        b'{"query_id": "\\u00a0", "timestamp": 1763726400, "text": "t"}\n',
        b'{"query_id": "q\\u001c", "timestamp": 1763726400, "text": "t"}\n',
        b'{"query_id": "\\u65e5\\u672c", "timestamp": 1763726400, "text": "t"}\n',
        b'{"query_id": "q", "timestamp": "2026-11-21T10:00:00Z", "text": "t", "results": '
        b'[{"doc_id": ""}]}\n',
        b'{"query_id": "q", "timestamp": "2026-11-21T10:00:00Z", "text": "t", "contexts": '
        b"[null]}\n",
        b"\x0c\n",
        b"\x0c{}\n",
        b'{"query_id": "q", "timestamp": "9999-12-31T12:00:00Z", "text": "t"}\n',
        b'{"query_id": "q", "timestamp": "9999-12-31T23:30:00-01:00", "text": "t"}\n',
        b'{"query_id": "q", "timestamp": "0001-01-01T00:30:00+01:00", "text": "t"}\n',
        b'{"query_id": "q", "timestamp": "1969-12-31T23:59:59", "text": "t"}\n',
        b'{"query_id": "q", "timestamp": -5, "text": "t"}\n',
        b'{"query_id": "q", "timestamp": 1763726400, "text": "' + b"x" * 100_000 + b'"}\n',
        b'{"query_id": "q", "timestamp": 1763726400, "text": "' + b"x" * 100_001 + b'"}\n',
        b'{"query_id": "q", "timestamp": 1763726400, "text": "' + "é".encode() * 100_000 + b'"}\n',
    ],
)
def test_lines_arrow_reads_differently_from_json_are_judged_alike(raw: bytes) -> None:
    """Leniencies of Arrow's reader (NaN, two objects on a line, unchecked UTF-8, a BOM)
    and quirks of the format reach the same verdict as line by line."""
    lines = [encode(record("a")), raw, encode(record("b"))]
    assert_same(lines)
    assert_same([raw])


TIMESTAMP = b'"timestamp": "2026-11-20T10:00:00Z"'


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (
            b'{"query_id":"dd10",' + TIMESTAMP + b',"text":"q","tenant":"acme","tenant":"evil"}\n',
            "tenant",
        ),
        (b'{"query_id": "q", "query_id": "r", ' + TIMESTAMP + b', "text": "t"}\n', "query_id"),
        (b'{"query_id": "q", ' + TIMESTAMP + b', "text": "t", "text" : "u"}\n', "text"),
        (
            b'{"query_id": "q", ' + TIMESTAMP + b', "text": "t", "tenant": null, "tenant": "b"}\n',
            "tenant",
        ),
        (
            b'{"query_id": "q", '
            + TIMESTAMP
            + b', "text": "t", "ten\\u0061nt": "a", "tenant": "b"}\n',
            "tenant",
        ),
        (b'{"query_id": "q", ' + TIMESTAMP + b", " + TIMESTAMP + b', "text": "t"}', "timestamp"),
    ],
)
def test_a_field_given_twice_is_a_problem_of_its_line(raw: bytes, field: str) -> None:
    """Neither path keeps one of the two values: which one the writer meant is unknown."""
    lines = [encode(record(f"q{i}")) for i in range(600)]
    lines[300] = raw
    problem = (
        301,
        f"invalid record: `{field}` appears twice in one object; keep one - at `$.{field}`",
    )
    for builder in (one_by_one(lines), at_once(lines)):
        assert builder.problems == [problem]
        assert len(builder) == 599
    builder = RecordBatchBuilder()
    builder.add_line(raw.rstrip(b"\n"), 9)
    assert builder.problems == [(9, problem[1])]


def test_a_field_name_written_elsewhere_in_a_line_is_no_repeated_field() -> None:
    raw = encode(record("q", text='the "tenant" field', tags={"tenant": "x"}, tenant="acme"))
    lines = [encode(record(f"q{i}")) for i in range(20)] + [raw]
    for builder in (one_by_one(lines), at_once(lines)):
        assert builder.problems == []
        assert builder.to_table().column("tenant").to_pylist()[-1] == "acme"


@pytest.mark.parametrize("query_id", [" q1", "q1 ", "   ", "q1\u00a0", "\u3000q1", "q1\n"])
def test_a_query_id_padded_with_whitespace_is_a_problem_of_its_line(query_id: str) -> None:
    """A goldset id may not be padded either: promoted, such a query would make a goldset
    no import accepts, or be trimmed into another query's id."""
    builder = at_once([encode(record("q0")), encode(record(query_id))], 1)
    assert builder.problems == [
        (2, "invalid record: `query_id` has leading or trailing whitespace - at `$.query_id`")
    ]
    assert len(builder) == 1


@pytest.mark.parametrize(
    "timestamp",
    ["9999-12-31T12:00:00Z", "9999-12-31T23:30:00-01:00", "0001-01-01T00:30:00+01:00", -5.0],
)
def test_a_timestamp_out_of_the_years_windows_can_hold_is_a_problem_of_its_line(
    timestamp: str | float,
) -> None:
    """Stored, a year-9999 moment would leave no room for the window after it."""
    lines = [encode(record("a")), encode(record("b", timestamp=timestamp))]
    builder = at_once(lines, 1)
    assert [line for line, _ in builder.problems] == [2]
    assert "`timestamp`" in builder.problems[0][1]
    assert "1970" in builder.problems[0][1]
    assert len(builder) == 1


def test_a_query_text_longer_than_the_limit_is_a_problem_of_its_line() -> None:
    lines = [encode(record("a")), encode(record("b", text="x" * (MAX_TEXT_LENGTH + 1)))]
    builder = at_once(lines, 1)
    ((line, message),) = builder.problems
    assert line == 2
    assert f"`text` is longer than {MAX_TEXT_LENGTH} characters" in message


def test_a_byte_order_mark_is_named_as_what_makes_the_line_malformed() -> None:
    lines = [b"\xef\xbb\xbf" + encode(record("a")), encode(record("b"))]
    builder = at_once(lines, 1)
    ((line, message),) = builder.problems
    assert line == 1
    assert "starts with a UTF-8 byte order mark" in message


def test_dedup_texts_is_dedup_text_on_each() -> None:
    texts = ["  Hello\tWORLD\x1c x  ", "İstanbul  Ünï  ", None, "   ", "a\u3000b C", ""]
    assert dedup_texts(pa.array(texts, pa.string())).to_pylist() == [
        dedup_text(text or "") for text in texts
    ]


_WHITESPACE_AND_CASE = st.lists(
    st.one_of(
        st.sampled_from([" ", "  ", "\t", "\n", "\x0b", "\x0c", "\r", "\x1c", "\x1f", "\x85"]),
        st.sampled_from(["\xa0", "\u2003", "\u3000", "İ", "ß", "Σ", "é", "\x00", "\x7f"]),
        st.text(alphabet="aZqQ09-", min_size=1, max_size=4),
    ),
    max_size=8,
).map("".join)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.none(), _WHITESPACE_AND_CASE, st.text(max_size=8)), max_size=20))
def test_dedup_texts_folds_a_column_as_dedup_text_folds_each_text(texts: list[str | None]) -> None:
    """The column path (Arrow's kernels for single-spaced ASCII, ``dedup_text`` for the
    rest) gives what ``dedup_text`` gives, whatever the whitespace, case or script."""
    assert dedup_texts(pa.array(texts, pa.string())).to_pylist() == [
        dedup_text(text or "") for text in texts
    ]


def iso_timestamps() -> st.SearchStrategy[str]:
    """ISO 8601 texts: real date-times in the forms the format allows, and near misses."""
    fraction = st.one_of(st.just(""), st.integers(1, 9).map(lambda n: "." + "7" * n))
    zone = st.sampled_from(["", "Z", "+02:00", "-05:30", "+0100", "+01", " UTC"])
    real = st.builds(
        lambda moment, f, z, sep: moment.strftime(f"%Y-%m-%d{sep}%H:%M:%S") + f + z,
        st.datetimes(),
        fraction,
        zone,
        st.sampled_from(["T", "T", "T", " ", "t"]),
    )
    near = st.builds(
        lambda y, mo, d, h, mi, sec, f: f"{y:04d}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{sec:02d}{f}Z",
        st.integers(1, 9999),
        st.integers(0, 13),
        st.integers(0, 32),
        st.integers(0, 25),
        st.integers(0, 60),
        st.integers(0, 61),
        fraction,
    )
    dates = st.dates().map(lambda day: day.isoformat())
    return st.one_of(real, real, near, dates)


SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
)
TEXTS = st.text(
    alphabet=st.one_of(
        st.sampled_from(" \t\x1c\x1fAbc\u00e9\u0130\u3000"),
        st.characters(codec="utf-8", exclude_categories=("Cs",)),
    ),
    max_size=12,
)
DOC_IDS = st.text(min_size=1, max_size=4)
SCORES = st.one_of(st.floats(-1, 1), st.none(), st.integers(-2, 2))
# What the format accepts for each field.
VALID = {
    "query_id": st.one_of(st.text(min_size=1, max_size=6), st.integers(-(2**63), 2**63 - 1)),
    "timestamp": st.one_of(iso_timestamps(), st.floats(0, 1e11, exclude_max=True)),
    "text": TEXTS.filter(lambda text: text.strip() != ""),
    "tenant": st.one_of(st.sampled_from(["", "acme", "beta"]), st.none()),
    "tags": st.one_of(
        st.none(),
        st.dictionaries(st.text(max_size=3), st.one_of(st.booleans(), st.integers(), st.text())),
    ),
    "results": st.one_of(
        st.none(),
        st.lists(st.fixed_dictionaries({"doc_id": DOC_IDS}, optional={"score": SCORES})),
        st.lists(DOC_IDS),
    ),
    "answer": st.one_of(st.none(), st.text(max_size=5)),
    "contexts": st.one_of(st.none(), st.lists(st.text(max_size=4), max_size=3)),
    "latency_ms": st.one_of(st.none(), st.floats(0, 500), st.integers(0, 500)),
    "extra": SCALARS,
}
# And values it refuses (or that are of another type than usual).
ODD = {
    "query_id": st.one_of(st.just(""), st.integers(2**63, 2**65), st.floats(0, 9), st.none()),
    "timestamp": st.one_of(
        st.floats(-10, 0, exclude_max=True), st.integers(10**11, 10**13), st.text(max_size=6)
    ),
    "text": st.one_of(st.sampled_from(["", " ", "\t\x1c", "\u3000"]), st.none(), st.integers()),
    "tenant": st.integers(),
    "tags": st.one_of(
        st.dictionaries(st.text(max_size=3), SCALARS, min_size=1, max_size=3),
        st.lists(st.integers(), max_size=2),
    ),
    "results": st.lists(
        st.one_of(
            st.fixed_dictionaries({"doc_id": st.one_of(st.just(""), st.none(), st.integers())}),
            st.fixed_dictionaries({"doc_id": DOC_IDS, "score": st.text(max_size=2)}),
            st.none(),
            DOC_IDS,
            st.fixed_dictionaries({"doc_id": DOC_IDS}),
        ),
        min_size=1,
        max_size=3,
    ),
    "answer": st.integers(),
    "contexts": st.lists(st.one_of(st.text(max_size=4), st.none()), min_size=1),
    "latency_ms": st.one_of(st.floats(-5, 0, exclude_max=True), st.text()),
    "extra": st.just(None),
}


@st.composite
def log_lines(draw: st.DrawFn) -> bytes:
    """A log line: mostly well formed, often with a field missing or of a value the format
    refuses, now and then torn, doubled, blank or carrying what JSON does not allow."""
    optional = draw(
        st.sets(st.sampled_from(sorted(set(VALID) - {"query_id", "timestamp", "text"})))
    )
    names = {"query_id", "timestamp", "text"} | optional
    odd = (
        draw(st.sets(st.sampled_from(sorted(VALID)), max_size=2)) if draw(st.booleans()) else set()
    )
    missing = (
        draw(st.sampled_from(["query_id", "timestamp", "text"]))
        if draw(st.integers(0, 9)) == 0
        else None
    )
    value = {
        name: draw(ODD[name] if name in odd else VALID[name])
        for name in sorted(names | odd)
        if name != missing
    }
    encoded = json.dumps(value, ensure_ascii=draw(st.booleans()))
    mangle = draw(
        st.sampled_from(["none"] * 12 + ["torn", "twice", "blank", "nan", "crlf", "indent"])
    )
    if mangle == "torn":
        encoded = encoded[: draw(st.integers(0, len(encoded)))]
    elif mangle == "twice":
        encoded = encoded + " " + encoded
    elif mangle == "blank":
        encoded = draw(st.sampled_from(["", "   ", "\t"]))
    elif mangle == "nan":
        encoded = encoded[:-1] + ', "x": NaN}' if len(encoded) > 2 else encoded
    elif mangle == "crlf":
        encoded += "\r"
    elif mangle == "indent":
        encoded = "  " + encoded
    return (encoded + "\n").encode()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    lines=st.lists(log_lines(), min_size=1, max_size=24),
    first_line=st.integers(1, 10**6),
    smallest=st.sampled_from([1, 3, 256]),
)
@pytest.mark.slow
def test_block_and_line_by_line_decoding_agree(
    lines: list[bytes], first_line: int, smallest: int
) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_lines, "_SMALLEST_BLOCK", smallest)
        assert_same(lines, first_line)


@settings(max_examples=200, deadline=None)
@given(timestamps=st.lists(st.one_of(iso_timestamps(), st.floats(0, 1e11)), min_size=1))
def test_timestamps_agree_with_the_per_line_parse(timestamps: list[str | float]) -> None:
    assert_same([encode(record(f"q{i}", timestamp=t)) for i, t in enumerate(timestamps)])


@given(
    lines=st.lists(st.binary(max_size=12).map(lambda raw: raw.replace(b"\n", b"") + b"\n")),
    data=st.data(),
)
def test_a_line_block_reads_as_the_list_of_its_lines(lines: list[bytes], data: Any) -> None:
    block = LineBlock.of(lines)
    assert list(block) == lines
    assert len(block) == len(lines)
    assert block.nbytes == sum(map(len, lines))
    assert bytes(block.view()) == b"".join(lines)
    start = data.draw(st.integers(min_value=-len(lines) - 1, max_value=len(lines) + 1))
    stop = data.draw(st.integers(min_value=-len(lines) - 1, max_value=len(lines) + 1))
    part = block[start:stop]
    assert list(part) == lines[start:stop]
    assert bytes(part.view()) == b"".join(lines[start:stop])
    assert [part[i] for i in range(len(part))] == lines[start:stop]
    if lines:
        assert block[-1] == lines[-1]
    needle = data.draw(st.binary(min_size=1, max_size=3))
    assert part.contains(needle) == (needle in b"".join(lines[start:stop]))
