"""The default measures follow k, and every surface says which ones k cannot compute.

``evalkit run --k 5`` stored only ``r_precision`` and said nothing: every default measure is
cut at 10 or 100. A run at k 5 is now scored on the same measures at 5 (``ndcg@5`` ...), and
stderr and the JSON output say which defaults were replaced by what.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from gate_inputs import retriever_endpoint, write_goldset_files

from evalkit.cli import invoke
from evalkit.errors import InputError
from evalkit.metrics.defaults import DEFAULT_MEASURES, default_measures_for, shallow_run_note
from evalkit.pipeline import default_measures

AT_FIVE = ("ndcg@5", "recall@5", "precision@5", "mrr@5", "map@5", "hit_rate@5", "r_precision")
CUT_DEEPER_THAN_FIVE = [name for name in DEFAULT_MEASURES if name != "r_precision"]


def test_defaults_deeper_than_k_are_taken_at_k() -> None:
    at_five = default_measures_for(5)
    assert at_five.measures == AT_FIVE
    assert list(at_five.adapted) == CUT_DEEPER_THAN_FIVE
    assert at_five.adapted["ndcg@10"] == "ndcg@5"
    assert at_five.adapted["recall@100"] == at_five.adapted["recall@10"] == "recall@5"
    assert default_measures(5) == list(AT_FIVE)

    at_twenty = default_measures_for(20)
    assert at_twenty.adapted == {"recall@100": "recall@20", "map@100": "map@20"}
    assert "ndcg@10" in at_twenty.measures
    assert "recall@20" in at_twenty.measures

    at_hundred = default_measures_for(100)
    assert at_hundred.measures == DEFAULT_MEASURES
    assert at_hundred.adapted == {}
    assert at_hundred.note is None
    assert default_measures_for(1000).measures == DEFAULT_MEASURES


def test_the_note_names_what_k_cannot_compute_and_what_replaced_it() -> None:
    note = default_measures_for(5).note
    assert note is not None
    assert note.startswith("k 5 is below the cutoff of the default measures ndcg@10, recall@10,")
    assert "cannot be computed from 5 documents per query" in note
    assert "(ndcg@5, recall@5, precision@5, mrr@5, map@5, hit_rate@5)" in note
    assert default_measures_for(5).to_dict()["adapted"]["map@100"] == "map@5"
    assert "1 document per query" in str(default_measures_for(1).note)
    with pytest.raises(InputError, match="k must be a positive integer"):
        default_measures_for(0)


@pytest.fixture
def endpoint(evalkit_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    write_goldset_files(tmp_path / "gs", 20)
    assert invoke(["goldset", "import", str(tmp_path / "gs"), "--name", "g"]) == 0
    capsys.readouterr()
    with retriever_endpoint() as url:
        yield url


@pytest.mark.slow
def test_run_at_k_5_stores_the_defaults_at_5_and_says_why(
    endpoint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    run = ["run", "--goldset", "g", "--http-retriever", endpoint, "--k", "5"]
    assert invoke([*run, "--format", "json"]) == 0
    captured = capsys.readouterr()
    data = json.loads(captured.out)
    assert data["measures"] == list(AT_FIVE)
    assert set(data["aggregates"]) == set(AT_FIVE)
    assert data["aggregates"]["ndcg@5"] == pytest.approx(1.0)
    assert data["default_measures"]["adapted"]["ndcg@10"] == "ndcg@5"
    assert data["default_measures"]["k"] == 5
    err = " ".join(captured.err.split())
    assert "note: k 5 is below the cutoff of the default measures ndcg@10," in err
    assert "cannot be computed from 5 documents per query" in err

    assert invoke(run) == 0
    captured = capsys.readouterr()
    assert "ndcg@5" in captured.out
    assert "below the cutoff of the default measures ndcg@10" in " ".join(captured.err.split())

    assert invoke([*run, "-m", "mrr", "--format", "json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["default_measures"] is None
    assert "below the cutoff" not in captured.err

    assert invoke([*run[:-1], "100", "--format", "json"]) == 0
    captured = capsys.readouterr()
    data = json.loads(captured.out)
    assert data["default_measures"]["adapted"] == {}
    assert data["measures"] == list(DEFAULT_MEASURES)
    assert "below the cutoff" not in captured.err


def test_a_named_measure_deeper_than_k_is_computed_and_the_run_says_what_it_means(
    endpoint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    run = ["run", "--goldset", "g", "--http-retriever", endpoint, "--k", "5"]
    assert invoke([*run, "-m", "ndcg@100", "-m", "recall@5", "-m", "map@20"]) == 0
    captured = capsys.readouterr()
    err = " ".join(captured.err.split())
    assert (
        "note: ndcg@100, map@20 are cut deeper than the 5 documents per query this run "
        "retrieves: past 5 nothing counts as retrieved, so compare them only with runs of "
        "k 5, or run with --k 100"
    ) in err
    assert "below the cutoff" not in err
    assert "ndcg@100" in captured.out
    assert invoke([*run, "-m", "ndcg@5"]) == 0
    assert "cut deeper" not in capsys.readouterr().err
    assert shallow_run_note(["ndcg@10"], 1) == (
        "ndcg@10 is cut deeper than the 1 document per query this run retrieves: past 1 "
        "nothing counts as retrieved, so compare it only with runs of k 1, or run with --k 10"
    )


@pytest.mark.slow
def test_gate_names_the_live_candidates_adapted_defaults(
    endpoint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert invoke(["run", "--goldset", "g", "--http-retriever", endpoint, "--format", "json"]) == 0
    baseline = json.loads(capsys.readouterr().out)["run_id"]
    gate = ["gate", "--baseline", baseline, "--goldset", "g", "--http-retriever", endpoint]
    code = invoke([*gate, "--k", "5", "-m", "ndcg@5", "--resamples", "500", "--format", "json"])
    captured = capsys.readouterr()
    assert code == 0
    data = json.loads(captured.out)
    assert data["default_measures"]["measures"] == list(AT_FIVE)
    assert data["default_measures"]["adapted"]["hit_rate@10"] == "hit_rate@5"
    err = " ".join(captured.err.split())
    assert "is also scored on the default measures: k 5 is below the cutoff" in err

    code = invoke(["compare", baseline, baseline, "--resamples", "200", "--format", "json"])
    assert code == 0
    assert "default_measures" in json.loads(capsys.readouterr().out)
