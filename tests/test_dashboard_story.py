"""What the dashboard opens on when a regression lasts several runs: the comparison the
Overview reports (against the series' baseline), not the latest run against the run before
it, which shows no change."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from gate_inputs import write_goldset_files
from loopback import running
from test_leaderboard_cli import N_QUERIES, _Tunable

from evalkit.cli import invoke
from evalkit.dashboard.loaders.story import story
from evalkit.store import Store


@pytest.mark.slow
def test_a_regression_two_runs_old_opens_against_the_series_baseline(
    tmp_path: Path, evalkit_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_goldset_files(tmp_path / "gs", N_QUERIES)
    assert invoke(["goldset", "import", str(tmp_path / "gs"), "--name", "g"]) == 0
    ids = []
    with running(_Tunable) as server:
        url = f"{server.url}/search"
        for lose in (set(), set(range(0, N_QUERIES, 2)), set(range(0, N_QUERIES, 2))):
            _Tunable.lose = lose
            capsys.readouterr()
            args = ["run", "--goldset", "g", "--http-retriever", url, "--k", "10"]
            assert invoke([*args, "--format", "json"]) == 0
            ids.append(json.loads(capsys.readouterr().out)["run_id"])
    _Tunable.lose = set()
    first, dropped, latest = ids
    with Store.open(evalkit_home / "evalkit.duckdb", read_only=True) as store:
        told = story(store, measure="ndcg@10")
    assert told.status == "regression"
    assert told.candidate == latest
    assert told.series_baseline == first
    assert told.previous == dropped, "the run before, as `evalkit explain` compares"
    assert told.baseline == first, "the comparison behind the Overview's status"
