"""`evalkit compare RUN RUN RUN ...`: a leaderboard of stored runs, chosen by id, by tag or
as a goldset's newest, on a real store with runs replayed against a loopback retriever."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, ClassVar

import pytest
from evalkit_process import EVALKIT
from gate_inputs import write_goldset_files
from loopback import running
from terminal import run_on_terminal, terminal_env
from test_dashboard_browser import SCREENSHOTS, _render, _serving, browser  # noqa: F401

from evalkit.cli import invoke

N_QUERIES = 60


class _Tunable(BaseHTTPRequestHandler):
    """Answers ``qN`` with its three relevant documents, except for the queries in ``lose``
    (only noise) and ``down`` (HTTP 503)."""

    lose: ClassVar[set[int]] = set()
    down: ClassVar[set[int]] = set()

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        query_id = str(body.get("query_id") or "")
        number = int(query_id[1:]) if query_id[1:].isdigit() else -1  # -1: the probe query
        if number in self.down:
            self.send_response(503)
            self.end_headers()
            return
        relevant = [] if number in self.lose else [f"rel{number}_{r}" for r in range(3)]
        docs = [*relevant, *(f"noise{number}_{i}" for i in range(10 - len(relevant)))]
        payload = json.dumps(
            {"results": [{"id": d, "score": 1.0 - i / 20} for i, d in enumerate(docs)]}
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:
        pass


def _run(capsys: pytest.CaptureFixture[str], url: str, *extra: str) -> str:
    args = ["run", "--goldset", "g", "--http-retriever", url, "--k", "10", "--format", "json"]
    invoke([*args, *extra])
    captured = capsys.readouterr()
    assert "run_id" in captured.out, captured.out + captured.err
    return str(json.loads(captured.out)["run_id"])


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, str]]]:
    """A home with three tagged runs of goldset ``g``: two perfect ones and one that loses
    every relevant document on a third of the queries (built once: tests copy it)."""
    folder = tmp_path_factory.mktemp("leaderboard")
    home = folder / "home"
    with pytest.MonkeyPatch.context() as patch, running(_Tunable) as server:
        patch.setenv("EVALKIT_HOME", str(home))
        patch.delenv("EVALKIT_CONFIG", raising=False)
        write_goldset_files(folder / "gs", N_QUERIES)
        assert invoke(["goldset", "import", str(folder / "gs"), "--name", "g"]) == 0
        url = f"{server.url}/search"
        _Tunable.lose, _Tunable.down = set(), set()
        first = _run_id(url, "--tag", "cmp", "--tag", "perfect")
        second = _run_id(url, "--tag", "cmp", "--label", "perfect again")
        _Tunable.lose = set(range(0, N_QUERIES, 3))
        worse = _run_id(url, "--tag", "cmp")
        _Tunable.lose = set()
        yield home, {"first": first, "second": second, "worse": worse, "url": url}


def _run_id(url: str, *extra: str) -> str:
    """Store a run with evalkit's own API of `evalkit run` and return its id (the module
    fixture has no capsys)."""
    from evalkit.cli._output import settings
    from evalkit.store import Store
    from evalkit.store.runs import list_runs

    args = ["run", "--goldset", "g", "--http-retriever", url, "--k", "10", "--format", "json"]
    assert invoke([*args, *extra]) == 0
    with Store.open(settings().resolved_store_path, read_only=True) as store:
        return list_runs(store, limit=1)[0].run_id


@pytest.fixture
def runs(
    built: tuple[Path, dict[str, str]], evalkit_home: Path, capsys: pytest.CaptureFixture[str]
) -> Iterator[dict[str, str]]:
    """This test's copy of the built home, served by the loopback retriever again."""
    shutil.copytree(built[0], evalkit_home)
    capsys.readouterr()
    with running(_Tunable) as server:
        yield {**built[1], "url": f"{server.url}/search"}
    _Tunable.lose, _Tunable.down = set(), set()


def _compare(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, Any, str]:
    code = invoke(["compare", *args, "--resamples", "2000"])
    captured = capsys.readouterr()
    try:
        data = json.loads(captured.out)
    except json.JSONDecodeError:
        data = captured.out
    return code, data, captured.err


@pytest.mark.slow
def test_three_runs_are_ranked_with_corrected_pairs_letters_and_latency(
    runs: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    first, second, worse = runs["first"], runs["second"], runs["worse"]
    code, data, _ = _compare(
        capsys, first, second, worse, "-m", "ndcg@10", "-m", "recall@10", "--format", "json"
    )
    assert code == 0
    assert data["runs"] == [first, second, worse]
    assert data["n_queries"] == N_QUERIES
    assert data["correction"] == "holm"
    standings = {s["run"]: s for s in data["metrics"]["ndcg@10"]["standings"]}
    assert standings[first]["mean"] == pytest.approx(1.0)
    assert standings[worse]["mean"] == pytest.approx(2 / 3)
    assert standings[first]["letters"] == standings[second]["letters"] == "a"
    assert standings[worse]["letters"] == "b"
    assert standings[worse]["rank"] == 3
    pairs = {(p["first"], p["second"]): p for p in data["metrics"]["ndcg@10"]["pairs"]}
    assert not pairs[(first, second)]["significant"]
    assert pairs[(first, worse)]["significant"]
    assert pairs[(first, worse)]["p_adjusted"] >= pairs[(first, worse)]["p_value"]
    assert pairs[(first, worse)]["wins"] == N_QUERIES // 3
    for run in (first, second, worse):
        latency = data["latency"][run]
        assert 0 < latency["p50_ms"] <= latency["p95_ms"]
    stored = {entry["run_id"]: entry for entry in data["runs_stored"]}
    assert stored[second]["label"] == "perfect again"
    assert stored[first]["tags"] == ["cmp", "perfect"]

    code, table, _ = _compare(capsys, first, second, worse, "-m", "ndcg@10")
    assert code == 0
    assert "leaderboard of 3 runs over 60 queries" in table
    assert "perfect again" in table
    assert "pairs on ndcg@10" in table

    code, markdown, _ = _compare(capsys, first, second, worse, "--format", "markdown")
    assert code == 0
    assert markdown.startswith("## Leaderboard")
    code, latex, _ = _compare(capsys, first, second, worse, "--format", "latex")
    assert code == 0
    assert "\\begin{tabular}" in latex
    assert "Holm" in latex


@pytest.mark.parametrize("columns", [80, 120])
@pytest.mark.slow
def test_every_run_id_and_figure_is_whole_on_a_narrow_terminal(
    runs: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str], columns: int
) -> None:
    """On an 80-column terminal the leaderboard read `0…`, `sw…` and `[…` in every cell and
    its pairs `202…` for the second run: a block per run and a line per pair instead."""
    chosen = [runs["first"], runs["second"], runs["worse"]]
    args = [*chosen, "-m", "ndcg@10", "-m", "recall@10", "--resamples", "2000"]
    drawn = run_on_terminal(
        [*EVALKIT, "compare", *args], cwd=tmp_path, env=terminal_env(), columns=columns
    )
    assert drawn.returncode == 0, drawn.output
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", drawn.output).replace("\r", "")
    assert "…" not in text
    assert max(len(line.rstrip()) for line in text.splitlines()) <= columns
    code, data, _ = _compare(
        capsys, *chosen, "-m", "ndcg@10", "-m", "recall@10", "--format", "json"
    )
    assert code == 0
    for run in chosen:
        assert run in text
    assert "perfect again" in text
    for measure, metric in data["metrics"].items():
        assert f"pairs on {measure}" in text
        for standing in metric["standings"]:
            assert f"{standing['mean']:.4f} [{standing['ci_low']:.4f}, " in text
        for pair in metric["pairs"]:
            assert f"{abs(pair['delta']):.4f}" in text


def test_the_leaderboard_page_names_each_fused_runs_method(
    runs: dict[str, str], evalkit_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The dashboard's Leaderboard described every fused run as `fusion k=10`, so an RRF
    fusion and a CombSUM one of the same runs could not be told apart there; `evalkit
    compare` names the method."""
    from evalkit.dashboard.loaders.leaderboard import leaderboard
    from evalkit.store import Store

    fused = {}
    for method in ("rrf", "combsum"):
        code = invoke(
            ["fuse", runs["first"], runs["worse"], "--method", method, "--format", "json"]
        )
        captured = capsys.readouterr()
        assert code == 0, captured.err
        fused[method] = json.loads(captured.out)["run_id"]
    chosen = [runs["first"], fused["rrf"], fused["combsum"]]
    with Store.open(evalkit_home / "evalkit.duckdb", read_only=True) as store:
        data = leaderboard(store, runs=chosen, measures=["ndcg@10"])
    what = dict(zip(data.standings["run"], data.standings["what"], strict=True))
    assert what[fused["rrf"]] == "fusion rrf k=10"
    assert what[fused["combsum"]] == "fusion combsum k=10"
    code, table, _ = _compare(capsys, *chosen)
    assert code == 0
    assert "fusion rrf k=10" in table
    assert "fusion combsum k=10" in table


@pytest.mark.slow
def test_runs_are_chosen_by_tag_or_as_a_goldsets_newest(
    runs: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    expected = [runs["first"], runs["second"], runs["worse"]]
    code, data, _ = _compare(capsys, "--tag", "cmp", "--format", "json")
    assert (code, data["runs"]) == (0, expected)
    code, data, _ = _compare(capsys, "--goldset", "g", "--last", "3", "--format", "json")
    assert (code, data["runs"]) == (0, expected)
    code, data, _ = _compare(capsys, "--tag", "perfect", "--format", "json")
    assert code == 2, "one tagged run is not a comparison"
    code, data, _ = _compare(capsys, "--tag", "cmp", "--last", "2", "--format", "json")
    # Two runs selected: the two-run comparison, exactly as `compare A B` prints it.
    assert code == 0
    assert data["baseline"] == runs["second"]
    assert data["candidate"] == runs["worse"]
    assert data["decision"] == "regression"


def test_two_runs_keep_the_two_run_comparison(
    runs: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, data, _ = _compare(capsys, runs["first"], runs["worse"], "--format", "json")
    assert code == 0
    assert set(data) >= {"baseline", "candidate", "decision", "metrics", "worst_queries"}
    assert data["metrics"]["ndcg@10"]["candidate_mean"] == pytest.approx(2 / 3)
    code, table, _ = _compare(capsys, runs["first"], runs["worse"])
    assert f"{runs['first']} -> {runs['worse']}" in table
    assert "decision: regression" in table


@pytest.mark.slow
def test_bad_selections_are_refused_with_exit_2(
    runs: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    first, second = runs["first"], runs["second"]
    for args, message in (
        ([first], "two or more runs"),
        ([], "name two or more runs"),
        (["--last", "3"], "--goldset NAME with --last N"),
        ([first, second, "--tag", "cmp"], "not both"),
        (["--goldset", "g", "--last", "1"], "at least 2"),
        ([first, second, first], "run named twice"),
        ([first, second, "nope-123"], "nope-123"),
    ):
        code, _, err = _compare(capsys, *args)
        assert code == 2, args
        assert message in err, (args, err)


@pytest.mark.slow
def test_a_run_with_failed_queries_is_refused_unless_counted_as_zero(
    runs: dict[str, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EVALKIT_HTTP_RETRIES", "0")
    _Tunable.down = {0, 1, 2, 3}
    partial = _run(capsys, runs["url"])
    _Tunable.down = set()
    code, _, err = _compare(capsys, runs["first"], runs["second"], partial)
    assert code == 3
    assert f"{partial}: 4" in err
    assert "--failed-as-zero" in err
    code, data, err = _compare(
        capsys, runs["first"], runs["second"], partial, "--failed-as-zero", "--format", "json"
    )
    assert code == 0
    assert data["failed_as_zero"] == {partial: 4}
    standings = {s["run"]: s for s in data["metrics"]["ndcg@10"]["standings"]}
    assert standings[partial]["mean"] == pytest.approx((N_QUERIES - 4) / N_QUERIES)
    assert f"4 queries failed in {partial} and were counted as 0" in err


@pytest.mark.slow
def test_runs_of_different_goldset_versions_are_refused(
    runs: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_goldset_files(tmp_path / "gs2", N_QUERIES - 10)
    assert invoke(["goldset", "import", str(tmp_path / "gs2"), "--name", "g"]) == 0
    capsys.readouterr()
    other = _run(capsys, runs["url"])
    code, _, err = _compare(capsys, runs["first"], runs["second"], other)
    assert code == 2
    assert "different goldset versions" in err

    # Scored on the smaller version, as the refusal suggests: the older runs' 10 queries it
    # no longer judges are said to be left out (they vanished, n_dropped 0).
    code, data, err = _compare(
        capsys, runs["first"], runs["second"], other, "--goldset", "g", "--format", "json"
    )
    assert code == 0
    assert (data["n_queries"], data["n_dropped"]) == (N_QUERIES - 10, 10)
    assert err.strip() == (
        "note: 10 queries are not in every run, or not judged in what the runs were scored "
        f"on, and were not compared ({runs['first']}: 10, {runs['second']}: 10)"
    )


def test_tags_are_shown_exported_and_imported_with_the_run(
    runs: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert invoke(["runs", "show", runs["first"], "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["tags"] == ["cmp", "perfect"]
    out = tmp_path / "export"
    assert (
        invoke(["runs", "export", runs["first"], "--format", "parquet", "--output", str(out)]) == 0
    )
    capsys.readouterr()
    exported = json.loads((out / "run.json").read_text())
    assert exported["tags"] == ["cmp", "perfect"]
    # `runs list --tag` finds a tag's runs (sweeps.md: a sweep's runs by sweep:NAME).
    assert invoke(["runs", "list", "--tag", "perfect", "--format", "json"]) == 0
    assert [run["run_id"] for run in json.loads(capsys.readouterr().out)] == [runs["first"]]
    assert invoke(["runs", "list", "--tag", "cmp", "--format", "json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 3
    assert invoke(["runs", "list", "--tag", "cmp"]) == 0
    assert "cmp, perfect" in capsys.readouterr().out


@pytest.mark.slow
def test_the_leaderboard_page_shows_the_clis_ranking_in_chromium(
    built: tuple[Path, dict[str, str]],
    tmp_path: Path,
    browser: Any,  # noqa: F811
) -> None:
    """The Leaderboard page opened on the tag: the CLI's means, groups and pairs, the chart
    of means with their intervals, and each run linked to Compare runs."""
    home, ids = built
    store = tmp_path / "evalkit.duckdb"
    shutil.copy(home / "evalkit.duckdb", store)
    with _serving(store, tmp_path / "dashboard.log") as url:
        shown = _render(
            browser,
            f"{url}/leaderboard?tag=cmp&measure=ndcg%4010",
            charts=2,
            expecting=["1.0000", "2 of 3"],
        )
        assert shown[0] == "1.0000"
        assert "2 of 3" in shown
        body = browser.find_element("tag name", "body").text
        assert f"Best on ndcg@10: {ids['first']}" in body
        assert f"evalkit compare {ids['first']} {ids['second']} {ids['worse']} -m ndcg@10" in body
        means = browser.execute_script(
            "return document.querySelectorAll('.js-plotly-plot')[0].data[0]"
        )
        assert list(means["x"]) == [ids["first"], ids["second"], ids["worse"]]
        assert means["y"] == pytest.approx([1.0, 1.0, 2 / 3])
        assert list(means["text"]) == ["a", "a", "b"]
        report = browser.execute_script(
            "return [...document.querySelectorAll('[data-testid=\"stExpander\"]')]"
            ".map(e => e.textContent).join('\\n')"
        )
        assert "## Leaderboard" not in report  # rendered, not shown as source
        assert "Leaderboard" in report
        assert "pairs significantly different" in report
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(SCREENSHOTS / "leaderboard.png"))


@pytest.mark.slow
def test_the_leaderboard_page_refuses_an_unknown_run_and_leaves_out_too_shallow_ones(
    built: tuple[Path, dict[str, str]],
    tmp_path: Path,
    browser: Any,  # noqa: F811
) -> None:
    """A link naming a run the store lacks says so (nothing ranked in its place); the
    default board leaves out a newest run too shallow for ndcg@10 instead of showing only
    the refusal."""
    from test_dashboard_browser import _settle
    from test_dashboard_seed import store_run

    from evalkit.store import Store
    from evalkit.store.goldsets import load_stored_goldset

    home, ids = built
    store = tmp_path / "evalkit.duckdb"
    shutil.copy(home / "evalkit.duckdb", store)
    with Store.open(store) as opened:
        gold = load_stored_goldset(opened, "g")
        shallow = store_run(
            opened,
            gold,
            {q.id: [f"rel{q.id[1:]}_0"] for q in gold.queries},
            retriever_kind="list",
            config={"kind": "list"},
            collection=None,
            model_fingerprint="m",
            index_fingerprint=None,
            k=5,
            measures=("ndcg@5",),
        )
    with _serving(store, tmp_path / "dashboard.log") as url:
        body = _settle(browser, f"{url}/leaderboard?goldset=g&runs={ids['first']},nope")
        assert "does not exist" in body
        assert "nope" in body
        assert not browser.find_elements("css selector", '[data-testid="stMetricValue"]')
        shown = _render(browser, f"{url}/leaderboard?goldset=g", charts=1, expecting=["1.0000"])
        assert shown[0] == "1.0000"
        body = browser.find_element("tag name", "body").text
        assert f"Left out of the newest runs: {shallow}" in body
