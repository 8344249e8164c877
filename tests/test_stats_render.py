"""JUnit XML, Markdown and table rows rendered from real comparisons."""

from __future__ import annotations

import dataclasses
import unicodedata
import xml.etree.ElementTree as ET

import numpy as np
import pandas as pd
import pytest

from evalkit.stats import (
    TABLE_HEADERS,
    Comparison,
    PairedTestSettings,
    compare_runs,
    power_table,
    power_table_markdown,
    table_rows,
    to_junit_xml,
    to_markdown,
    worst_queries,
)


@pytest.fixture(scope="module")
def mixed() -> Comparison:
    """ndcg@10 regresses, recall@10 is unchanged, mrr is too noisy to tell."""
    rng = np.random.default_rng(0)
    n = 200
    ids = pd.Index([f"q|{i:03d}" for i in range(n)], name="query_id")
    baseline = pd.DataFrame(
        {
            "ndcg@10": rng.uniform(0.4, 1.0, n),
            "recall@10": rng.uniform(0.4, 1.0, n),
            "mrr": rng.uniform(0.0, 1.0, n),
        },
        index=ids,
    )
    candidate = baseline.copy()
    candidate.iloc[:40, 0] = 0.0
    candidate["mrr"] = rng.uniform(0.0, 1.0, n)
    extra = pd.DataFrame(baseline.iloc[:1].to_numpy(), columns=baseline.columns, index=["new"])
    return compare_runs(
        baseline.iloc[:-2],
        pd.concat([candidate, extra]),
        PairedTestSettings(min_effect=0.02, resamples=1000),
    )


def test_fixture_has_one_of_each_decision(mixed: Comparison) -> None:
    assert [m.decision.value for m in mixed.metrics] == ["regression", "pass", "inconclusive"]


def test_junit_xml_is_valid_with_failure_and_skipped(mixed: Comparison) -> None:
    root = ET.fromstring(to_junit_xml(mixed))
    assert root.tag == "testsuite"
    assert root.get("name") == "evalkit gate"
    assert (root.get("tests"), root.get("failures"), root.get("skipped")) == ("3", "1", "1")
    cases = {case.get("name"): case for case in root.iter("testcase")}
    assert list(cases) == ["ndcg@10", "recall@10", "mrr"]
    failure = cases["ndcg@10"].find("failure")
    assert failure is not None
    message = failure.get("message", "")
    ndcg = mixed.metric("ndcg@10")
    assert f"{ndcg.delta:+.4f}" in message
    assert f"[{ndcg.ci_low:+.4f}, {ndcg.ci_high:+.4f}]" in message
    assert "p_adj" in message
    assert cases["recall@10"].find("failure") is None
    assert cases["recall@10"].find("skipped") is None
    skipped = cases["mrr"].find("skipped")
    assert skipped is not None
    assert "inconclusive" in skipped.get("message", "")
    assert "shared queries" in skipped.get("message", "")
    properties = {p.get("name"): p.get("value") for p in root.iter("property")}
    assert properties["seed"] == "0"
    assert properties["n_shared"] == "198"
    assert properties["decision"] == "regression"
    suite_out = root.find("system-out")
    assert suite_out is not None
    assert "3 only in the candidate (new, q|198, q|199)" in (suite_out.text or "")


def test_junit_xml_escapes_awkward_measure_names() -> None:
    baseline = pd.DataFrame({'a<b&"c"': [0.1, 0.2, 0.3]})
    result = compare_runs(baseline, baseline - 0.5, PairedTestSettings(resamples=100))
    root = ET.fromstring(to_junit_xml(result))
    assert [case.get("name") for case in root.iter("testcase")] == ['a<b&"c"']


def test_markdown_has_table_verdict_coverage_and_worst_queries(mixed: Comparison) -> None:
    worst = worst_queries(mixed, "ndcg@10", n=3)
    worst = (dataclasses.replace(worst[0], lost_docs=("doc|1", "doc2")), *worst[1:])
    text = to_markdown(mixed, worst=worst)
    lines = text.splitlines()
    assert "| metric | baseline | candidate | Δ | 95 % CI | p (adj.) | decision |" in lines
    assert any(line.startswith("**Gate: REGRESSION**") for line in lines)
    ndcg = mixed.metric("ndcg@10")
    row = next(line for line in lines if line.startswith("| ndcg@10 |"))
    assert f"{ndcg.baseline_mean:.4f}" in row
    assert f"{ndcg.delta:+.4f}" in row
    assert "**regression**" in row
    assert "198 queries both runs share" in text
    assert "3 only in the candidate (new, q\\|198, q\\|199)" in text
    assert "#### Largest drops in ndcg@10" in text
    assert "doc\\|1, doc2" in text
    assert f"| q\\|{worst[0].query_id[2:]} | " in text
    assert "mrr:" in text
    assert "shared queries" in text
    emoji = [c for c in text if unicodedata.category(c) == "So"]
    assert emoji == []
    table_lines = [line for line in lines if line.startswith("| ")]
    assert {line.count(" | ") for line in table_lines[:4]} == {len(TABLE_HEADERS) - 1}


def test_a_line_break_in_a_query_id_stays_inside_its_markdown_table_row() -> None:
    """Written raw, the newline of the id "q1\\nq2" split its row of the PR comment's table in
    two, the second half reading as a row of query q2."""
    ids = ["q1\nq2", "q2", "q3\r\nq4", "q5\u2028q6"]
    baseline = pd.DataFrame({"ndcg@10": [0.9, 0.8, 0.7, 0.6]}, index=ids)
    candidate = baseline.assign(**{"ndcg@10": [0.0, 0.7, 0.5, 0.3]})
    comparison = compare_runs(baseline, candidate, PairedTestSettings(resamples=100))
    text = to_markdown(comparison, worst=worst_queries(comparison, "ndcg@10", n=4))
    drops = text[text.index("#### Largest drops in ndcg@10") :].splitlines()[2:]
    assert [row.split(" | ")[0] for row in drops] == [
        "| query",
        "|---|---:|---:|---:|",
        "| q1\\nq2",
        "| q5\\u2028q6",
        "| q3\\r\\nq4",
        "| q2",
    ]


def test_markdown_for_identical_runs_passes_without_worst_section() -> None:
    values = pd.DataFrame({"ndcg@10": [0.5, 0.7, 0.9]}, index=["a", "b", "c"])
    text = to_markdown(compare_runs(values, values, PairedTestSettings(resamples=100)))
    assert "**Gate: PASS**" in text
    assert "Compared on all 3 queries" in text
    assert "Largest drops" not in text


def test_table_rows_are_formatted_cells_in_header_order(mixed: Comparison) -> None:
    rows = table_rows(mixed)
    assert len(rows) == 3
    assert all(len(row) == len(TABLE_HEADERS) for row in rows)
    measure, baseline, _, delta, interval, p_value, decision = rows[0]
    metric = mixed.metrics[0]
    assert (measure, decision) == ("ndcg@10", "regression")
    assert float(baseline) == pytest.approx(metric.baseline_mean, abs=5e-5)
    assert float(delta) == pytest.approx(metric.delta, abs=5e-5)
    assert interval.startswith("[")
    assert interval.endswith("]")
    assert float(p_value) == pytest.approx(metric.p_adjusted, rel=0.06)


def test_power_table_markdown() -> None:
    text = power_table_markdown(power_table({"measured": 0.28}, effects=(0.01, 0.05)))
    lines = text.splitlines()
    assert lines[0] == "| per-query differences | sd | drop 0.01 | drop 0.05 |"
    assert lines[2].startswith("| measured | 0.280 | ")


def test_junit_xml_carries_time_and_file_when_given(mixed: Comparison) -> None:
    root = ET.fromstring(to_junit_xml(mixed, time=4.5, file="goldsets/support"))
    assert (root.get("time"), root.get("file")) == ("4.500", "goldsets/support")
    cases = list(root.iter("testcase"))
    assert [case.get("time") for case in cases] == ["1.500"] * 3
    assert sum(float(case.get("time", "nan")) for case in cases) == pytest.approx(4.5)
    assert {case.get("file") for case in cases} == {"goldsets/support"}
    # Without them the attributes are left out, not written as 0 or empty.
    plain = ET.fromstring(to_junit_xml(mixed))
    assert all(
        element.get("time") is None and element.get("file") is None
        for element in [plain, *plain.iter("testcase")]
    )


def test_junit_xml_refuses_a_negative_or_infinite_time(mixed: Comparison) -> None:
    for bad in (-1.0, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="finite number of seconds"):
            to_junit_xml(mixed, time=bad)
