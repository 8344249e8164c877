"""`evalkit explain`, and the probable causes `compare` and `gate` print, on a real store."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from test_causes import N, _audit, _run, _without, precision_check
from test_dashboard_seed import goldset, perfect, query_ids

from evalkit.cli import invoke
from evalkit.store import Store
from evalkit.store.goldsets import save_goldset

REMOVED = {f"{q}-b" for q in query_ids(N)[:7]}


@pytest.fixture
def runs(evalkit_home: Path) -> dict[str, str]:
    """A baseline, a candidate whose index lost seven relevant documents, and the audit."""
    evalkit_home.mkdir(parents=True, exist_ok=True)
    with Store.open(evalkit_home / "evalkit.duckdb") as store:
        gold = goldset(N)
        save_goldset(store, gold)
        baseline = _run(store, gold, {q: perfect(q) for q in query_ids(N)})
        candidate = _run(store, gold, _without(REMOVED), index="idx-2")
        audit = _audit(store, "orphaned_judgments", sorted(REMOVED))
        check = precision_check(store, baseline, candidate, "ndcg@10")
    return {"baseline": baseline, "candidate": candidate, "audit": audit, "check": check}


def test_explain_json_names_the_missing_documents_first(
    runs: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    code = invoke(["explain", runs["candidate"], "--format", "json"])
    data = json.loads(capsys.readouterr().out)
    assert code == 0
    assert data["baseline"] == runs["baseline"]
    assert data["decision"] == "regression"
    top = data["causes"][0]
    assert top["kind"] == "missing_from_index"
    assert top["score"] == pytest.approx(1.0)
    assert top["url"] == (
        f"index_health?collection=mini&audit={runs['audit']}&finding=orphaned_judgments"
    )
    assert {row["doc_id"] for row in top["evidence"]} == REMOVED


def test_explain_table_and_markdown_say_it_in_words(
    runs: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert invoke(["explain", runs["candidate"], "--baseline", runs["baseline"]]) == 0
    text = capsys.readouterr().out
    assert "probable causes" in text
    assert "missing from the index" in " ".join(text.split())
    assert invoke(["explain", "--drift-check", runs["check"], "--format", "markdown"]) == 0
    markdown = capsys.readouterr().out
    assert markdown.startswith("### Probable causes")
    first_row = next(line for line in markdown.splitlines() if line.startswith("| 1 |"))
    assert "`missing_from_index` | 100%" in first_row
    # No dashboard_url: the page is named, not linked; a relative link in a pull-request
    # comment or a job summary would lead to a page of the forge that does not exist.
    assert "](" not in markdown
    assert f"dashboard page `index_health?collection=mini&audit={runs['audit']}" in first_row


def test_explain_markdown_links_the_dashboard_under_its_url(
    runs: dict[str, str],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = tmp_path / "evalkit.toml"
    config.write_text('[alerts]\ndashboard_url = "https://evalkit.example.com/"\n')
    monkeypatch.setenv("EVALKIT_CONFIG", str(config))
    assert invoke(["explain", "--drift-check", runs["check"], "--format", "markdown"]) == 0
    markdown = capsys.readouterr().out
    first_row = next(line for line in markdown.splitlines() if line.startswith("| 1 |"))
    assert f"](https://evalkit.example.com/index_health?collection=mini&audit={runs['audit']}" in (
        first_row
    )


def test_explain_refuses_what_it_cannot_explain(
    runs: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert invoke(["explain", "nope"]) == 2
    assert invoke(["explain", runs["baseline"]]) == 2
    assert "--baseline" in capsys.readouterr().err
    assert invoke(["explain", runs["candidate"], "--alert", "a1"]) == 2
    assert invoke(["explain", "--alert", "nope", "--format", "json"]) == 2
    assert json.loads(capsys.readouterr().out)["error"]["type"] == "NotFoundError"


@pytest.mark.slow
def test_compare_and_gate_carry_the_causes(
    runs: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [runs["baseline"], runs["candidate"], "--resamples", "500"]
    assert invoke(["compare", *args, "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["probable_causes"]["causes"][0]["kind"] == "missing_from_index"
    assert invoke(["compare", *args]) == 0
    assert "missing from the index" in " ".join(capsys.readouterr().out.split())
    summary = tmp_path / "gate.md"
    code = invoke(
        [
            "gate",
            "--baseline",
            runs["baseline"],
            "--candidate",
            runs["candidate"],
            "--resamples",
            "500",
            "--markdown",
            str(summary),
            "--junit",
            str(tmp_path / "gate.xml"),
        ]
    )
    assert code == 1
    text = summary.read_text(encoding="utf-8")
    assert "### Probable causes" in text
    assert "`missing_from_index` | 100%" in text
    # A CI test report shows only the JUnit failures: they name the cause and its page.
    suite = ET.parse(tmp_path / "gate.xml").getroot()
    failures = [case.find("failure") for case in suite.iter("testcase")]
    reasons = [failure.text or "" for failure in failures if failure is not None]
    assert reasons
    for reason in reasons:
        assert "Probable causes: regression:" in reason
        assert "1. [missing_from_index] 100% of the loss:" in reason
        assert "see index_health?" in reason
    assert "[missing_from_index]" in (suite.findtext("system-out") or "")
