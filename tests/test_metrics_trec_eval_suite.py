"""TREC file readers, and evalkit against trec_eval's own conformance suite.

The conformance part reads ``../shared/data`` (trec_eval v10.0's test files and full-precision
pytrec_eval values for them and for BM25 runs on Vaswani and SciFact) and skips cleanly when
that folder is absent. trec_eval prints 4 decimals, so its values are matched within 5e-5;
pytrec_eval's full-precision values within 1e-9.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pandas as pd
import pytest

from evalkit.errors import InputError
from evalkit.metrics import Evaluator, Measure, parse_measures, read_qrels, read_run

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
TREC_TEST = SHARED / "trec_eval" / "test"
REFERENCE = SHARED / "reference_values"

CUTOFFS = (1, 2, 3, 5, 7, 10, 15, 20, 23, 30, 100, 200, 500, 1000, 2000)
SUPPORTED = parse_measures(
    [
        *(
            f"{name}@{k}"
            for name in ("precision", "recall", "ndcg", "map", "hit_rate")
            for k in CUTOFFS
        ),
        "ndcg",
        "map",
        "mrr",
        "r_precision",
    ]
)


def trec_eval_output(path: Path) -> dict[str, dict[str, float]]:
    """trec_eval's ``measure  query  value`` lines as {query or 'all': {measure: value}}."""
    values: dict[str, dict[str, float]] = defaultdict(dict)
    for line in path.read_text().splitlines():
        fields = line.split()
        if len(fields) != 3:
            continue
        measure, query, value = fields
        try:
            values[query][measure] = float(value)
        except ValueError:
            continue
    return values


def compare(
    result_per_query: pd.DataFrame,
    aggregate: dict[str, float],
    expected: dict[str, dict[str, float]],
    measures: tuple[Measure, ...],
    *,
    tolerance: float,
) -> int:
    """Assert every supported measure present in ``expected``; return how many were compared."""
    compared = 0
    for query, values in expected.items():
        for measure in measures:
            name = measure.trec_eval_name
            if name not in values:
                continue
            got = (
                aggregate[str(measure)]
                if query == "all"
                else result_per_query.loc[query, str(measure)]
            )
            assert got == pytest.approx(values[name], abs=tolerance), (query, str(measure))
            compared += 1
    return compared


needs_shared_data = pytest.mark.skipif(
    not TREC_TEST.is_dir(), reason="../shared/data (trec_eval test suite) is not available"
)


@pytest.mark.shared_data
@needs_shared_data
@pytest.mark.parametrize(
    ("qrels", "run", "expected", "threshold", "complete", "at_least"),
    [
        ("qrels.test", "results.test", "out.test.aq", 1, False, 150),
        ("qrels.test", "results.trunc", "out.test.aqc", 1, True, 150),
        ("qrels.rel_level", "results.test", "out.test.aql", 2, False, 150),
        ("qrels.test", "results.test", "out.test.meas_params", 1, False, 40),
        ("qrels.test", "results.test", "out.test", 1, False, 10),
        ("qrels.comment.test", "results.comment.test", "out.comment.test", 1, False, 10),
    ],
)
def test_matches_trec_eval_expected_output(
    qrels: str, run: str, expected: str, threshold: int, complete: bool, at_least: int
) -> None:
    evaluator = Evaluator(read_qrels(TREC_TEST / qrels), SUPPORTED, relevance_threshold=threshold)
    result = evaluator.evaluate(read_run(TREC_TEST / run), complete=complete)
    values = trec_eval_output(TREC_TEST / expected)
    if "num_q" in values.get("all", {}):
        assert result.n_queries == values["all"]["num_q"]
    compared = compare(result.per_query, result.aggregate, values, SUPPORTED, tolerance=5e-5)
    assert compared >= at_least


def test_the_expected_output_parser_reads_trec_eval_lines(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.write_text(
        "runid \tall\tSTANDARD\nP_5 \t301\t0.2000\nP_5 \tall\t0.1000\nrelstring \t301\t'01'\n"
    )
    assert trec_eval_output(out) == {"301": {"P_5": 0.2}, "all": {"P_5": 0.1}}


@pytest.mark.shared_data
@needs_shared_data
def test_comment_lines_in_qrels_are_skipped() -> None:
    plain = read_qrels(TREC_TEST / "qrels.test")
    commented = read_qrels(TREC_TEST / "qrels.test.with-comments")
    assert len(commented) == len(plain)
    assert "CR#93E-1860" in set(commented["doc_id"])


@pytest.mark.shared_data
@pytest.mark.skipif(not REFERENCE.is_dir(), reason="../shared/data/reference_values is absent")
@pytest.mark.parametrize(
    "pair", ["qrels.test__results.test", "qrels.comment.test__results.comment.test"]
)
def test_matches_pytrec_eval_full_precision(pair: str) -> None:
    reference = json.loads((REFERENCE / "pytrec_eval_reference.json").read_text())[pair]
    evaluator = Evaluator(read_qrels(TREC_TEST / reference["qrels"]), SUPPORTED)
    result = evaluator.evaluate(read_run(TREC_TEST / reference["run"]))
    assert result.n_queries == reference["n_queries_evaluated"]
    expected = {**reference["per_query"], "all": reference["mean_over_queries"]}
    assert compare(result.per_query, result.aggregate, expected, SUPPORTED, tolerance=1e-9) > 100


@pytest.mark.shared_data
@pytest.mark.skipif(not REFERENCE.is_dir(), reason="../shared/data/reference_values is absent")
def test_bm25_on_vaswani_matches_pytrec_eval() -> None:
    reference = json.loads((REFERENCE / "vaswani_bm25_top1000.pytrec_eval.json").read_text())
    qrels = read_qrels(SHARED / "vaswani_npl" / "tests" / "fixtures" / "vaswani_npl" / "qrels")
    result = Evaluator(qrels, SUPPORTED).evaluate(read_run(REFERENCE / "vaswani_bm25_top1000.run"))
    assert result.n_queries == reference["n_queries_evaluated"] == 93
    expected = {**reference["per_query"], "all": reference["mean_over_queries"]}
    assert compare(result.per_query, result.aggregate, expected, SUPPORTED, tolerance=1e-9) > 2000


@pytest.mark.shared_data
@pytest.mark.skipif(not REFERENCE.is_dir(), reason="../shared/data/reference_values is absent")
def test_bm25_on_scifact_matches_pytrec_eval_and_the_beir_paper() -> None:
    reference = json.loads((REFERENCE / "scifact_test_bm25_top100.pytrec_eval.json").read_text())
    qrels = pd.read_csv(SHARED / "beir_scifact" / "qrels" / "test.tsv", sep="\t", dtype=str).rename(
        columns={"query-id": "query_id", "corpus-id": "doc_id", "score": "relevance"}
    )
    result = Evaluator(qrels, SUPPORTED).evaluate(
        read_run(REFERENCE / "scifact_test_bm25_top100.run")
    )
    expected = {**reference["per_query"], "all": reference["mean_over_queries"]}
    assert compare(result.per_query, result.aggregate, expected, SUPPORTED, tolerance=1e-9) > 3000
    assert result.aggregate["ndcg@10"] == pytest.approx(0.665, abs=0.005)


# --- the readers ------------------------------------------------------------------------


def write(tmp_path: Path, text: str, name: str = "file.txt") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode())
    return path


@pytest.mark.parametrize(
    "text",
    [
        "301 0 d1 1\n301 0 d2 0\n007 0 d1 2\n",
        "301\t0\td1\t1\r\n301\t0\td2\t0\r\n007\t0\td1\t2\r\n",
        "  301   0\td1  1 \n\n# a comment\n301 0 d2\t0\n007 0 d1 2",
    ],
    ids=["spaces", "tabs-crlf", "irregular"],
)
def test_read_qrels_layouts(tmp_path: Path, text: str) -> None:
    frame = read_qrels(write(tmp_path, text))
    assert list(frame.columns) == ["query_id", "doc_id", "relevance"]
    assert frame.to_dict("list") == {
        "query_id": ["301", "301", "007"],
        "doc_id": ["d1", "d2", "d1"],
        "relevance": [1, 0, 2],
    }
    assert frame["relevance"].dtype == "int64"
    assert pd.api.types.is_string_dtype(frame["query_id"])


@pytest.mark.parametrize(
    "text",
    [
        "1 Q0 d9 1 2.5 run\n1 Q0 d10 2 -1e-3 run\n",
        "1\tQ0\td9\t1\t2.5\trun\n1\tQ0\td10\t2\t-1e-3\trun\n",
        "1 Q0 d9 1 2.5 run extra junk\n#comment\n  1 Q0\t d10 2 -1e-3 run\n",
    ],
    ids=["spaces", "tabs", "extra-fields-and-comments"],
)
def test_read_run_layouts(tmp_path: Path, text: str) -> None:
    frame = read_run(write(tmp_path, text))
    assert list(frame.columns) == ["query_id", "doc_id", "score"]
    assert frame["query_id"].tolist() == ["1", "1"]
    assert frame["doc_id"].tolist() == ["d9", "d10"]
    assert frame["score"].tolist() == [2.5, -0.001]


def test_ids_keep_leading_zeros_and_unicode(tmp_path: Path) -> None:
    frame = read_run(write(tmp_path, "0001 Q0 0042 1 1 r\n0001 Q0 dé 2 0.5 r\n"))
    assert frame["query_id"].tolist() == ["0001", "0001"]
    assert frame["doc_id"].tolist() == ["0042", "dé"]


def test_empty_files_give_empty_frames(tmp_path: Path) -> None:
    assert read_qrels(write(tmp_path, "")).empty
    run = read_run(write(tmp_path, "\n# nothing\n", "run.txt"))
    assert run.empty
    assert list(run.columns) == ["query_id", "doc_id", "score"]


@pytest.mark.parametrize(
    ("reader", "text", "line", "field", "message"),
    [
        (read_qrels, "1 0 d1 1\n1 0 d2\n", 2, "relevance", "expected 4"),
        (read_qrels, "1 0 d1 1\n1 0 d2 1 extra\n", 2, "column 5", "exactly 4"),
        (read_qrels, "1 0 d1 1\n\n1 0 d2 1.5\n", 3, "relevance", "integer grade, got '1.5'"),
        (read_qrels, "1 0 d1 high\n", 1, "relevance", "integer grade"),
        (read_run, "1 Q0 d1 1 2.0 r\n1 Q0 d2 2 r\n", 2, "run_tag", "expected 6"),
        (read_run, "1 Q0 d1 1 2.0 r\n1 Q0 d2 2 abc r\n", 2, "score", "must be a number, got 'abc'"),
        (read_run, "1 Q0 d1 1 nan r\n", 1, "score", "must be a number"),
        (read_run, "1\tQ0\td1\t1\t2.0\tr\n1\tQ0\td2\t2\t\tr\n", 2, "run_tag", "expected 6"),
    ],
)
def test_malformed_lines_are_located(
    tmp_path: Path, reader: object, text: str, line: int, field: str, message: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(InputError, match=message) as caught:
        reader(path)  # type: ignore[operator]
    assert caught.value.path == str(path)
    assert caught.value.line == line
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{path}:{line} field '{field}': ")


def test_invalid_utf8_is_located(tmp_path: Path) -> None:
    path = tmp_path / "run.txt"
    path.write_bytes(b"1 Q0 d1 1 2.0 r\n1 Q0 d\xff 2 1.0 r\n")
    with pytest.raises(InputError, match="UTF-8") as caught:
        read_run(path)
    assert (caught.value.line, caught.value.field) == (2, "doc_id")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read the qrels file") as caught:
        read_qrels(tmp_path / "absent.txt")
    assert caught.value.path == str(tmp_path / "absent.txt")


def test_read_files_evaluate_end_to_end(tmp_path: Path) -> None:
    qrels = read_qrels(write(tmp_path, "q1 0 a 1\nq1 0 b 2\nq2 0 c 1\n", "qrels"))
    run = read_run(write(tmp_path, "q1 Q0 b 1 1.0 r\nq1 Q0 a 2 1.0 r\nq1 Q0 z 3 3.0 r\n", "run"))
    result = Evaluator(qrels, ["mrr", "precision@2"]).evaluate(run, complete=True)
    # q1 ranking: z (3.0), then the tie b, a by doc id descending
    assert result.per_query.loc["q1"].to_dict() == pytest.approx({"mrr": 0.5, "precision@2": 0.5})
    assert result.per_query.loc["q2"].to_dict() == {"mrr": 0.0, "precision@2": 0.0}
