"""A retriever is its factory (or plug-in) and its options, not just its kind.

Real factory modules (model-free rankers over the demo goldset's judgments) are replayed by
the real CLI into a real DuckDB store: ``runs list``, the dashboard's series, the default
baseline of ``explain``, ``drift precision`` and the precision alert rule keep
``mymod:make``, ``mymod:make_worse``, ``plain:make`` and ``mymod:make`` with other options
apart, and ``explain`` / ``gate`` name a changed retriever as a probable cause.
"""

from __future__ import annotations

import json
import secrets
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from test_dashboard_pages import frame_with, open_page
from test_scheduler_jobs import configure, runner_for

from evalkit.alerts import alerts_config, build_sinks, evaluate_rules
from evalkit.causes import explain_runs
from evalkit.cli import invoke
from evalkit.config import load_settings, parse_settings
from evalkit.drift.watch import watch_precision
from evalkit.records.requests import PRECISION_WATCH_DEFAULTS, PairedTestSettings
from evalkit.store import Store
from evalkit.store.alerts import load_alert_states
from evalkit.store.dashboard.overview import series_frame
from evalkit.store.dashboard.quality import series_points_frame
from evalkit.store.drift import list_drift_checks
from evalkit.store.runs import RunRecord, get_run, list_runs

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "goldsets" / "demo"

# A search service's keyword ranker: it orders each query's judged-relevant documents by
# grade (no embedding model); ``make_worse`` and ``drop`` leave out the best documents of
# every even-numbered query.
RANKER = '''
"""A keyword search hook over the demo goldset's judgments."""

import json

from evalkit.records import QueryResult
from evalkit.retrievers.base import ranked_docs

JUDGMENTS = {judgments!r}


class Ranker:
    def __init__(self, drop):
        self.ranked = {{}}
        with open(JUDGMENTS, encoding="utf-8") as lines:
            for line in lines:
                judgment = json.loads(line)
                if judgment["relevance"] > 0:
                    self.ranked.setdefault(judgment["query_id"], []).append(
                        (judgment["relevance"], judgment["doc_id"])
                    )
        self.drop = drop

    def retrieve(self, queries, k):
        results = []
        for query in queries:
            graded = sorted(self.ranked.get(query.id, []), reverse=True)
            if int(query.id.lstrip("q")) % 2 == 0:
                graded = graded[self.drop:]
            graded = graded[:k]
            docs = ranked_docs([doc for _, doc in graded], [grade for grade, _ in graded])
            results.append(QueryResult(query_id=query.id, docs=docs, latency_ms=1.0))
        return results


def make(drop=0):
    return Ranker(drop)


def make_worse():
    return Ranker(2)
'''


@dataclass
class Project:
    """A directory with two factory modules, the demo goldset imported into its store."""

    cwd: Path
    home: Path
    mymod: str
    plain: str

    def run(self, spec: str, *, config: Path | None = None) -> dict[str, Any]:
        """``evalkit run`` of ``spec`` (and ``config``'s [retriever] options); its JSON."""
        return self.json(["run", "--goldset", "demo", "--retriever", spec], config=config)

    def json(
        self, args: Sequence[str], *, config: Path | None = None, expect: int = 0
    ) -> dict[str, Any]:
        with pytest.MonkeyPatch.context() as patch:
            if config is not None:
                patch.setenv("EVALKIT_CONFIG", str(config))
            code = invoke([*args, "--format", "json"])
        captured = self.capsys.readouterr()
        assert code == expect, captured.err
        data: dict[str, Any] = json.loads(captured.out)
        return data

    def options(self, **options: object) -> Path:
        """An evalkit.toml whose [retriever] table names mymod:make with ``options``."""
        # Not in the working directory, where every later command would read it.
        path = self.cwd / "options" / f"{secrets.token_hex(3)}.toml"
        path.parent.mkdir(exist_ok=True)
        pairs = ", ".join(f"{key} = {json.dumps(value)}" for key, value in options.items())
        path.write_text(
            textwrap.dedent(
                f"""
                [retriever]
                factory = "{self.mymod}:make"
                options = {{ {pairs} }}
                """
            )
        )
        return path

    @property
    def store_path(self) -> Path:
        return self.home / "evalkit.duckdb"

    capsys: pytest.CaptureFixture[str]


@pytest.fixture
def project(evalkit_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Project:
    suffix = secrets.token_hex(3)
    mymod, plain = f"mymod_{suffix}", f"plain_{suffix}"
    source = RANKER.format(judgments=str(DEMO / "judgments.jsonl"))
    for module in (mymod, plain):
        (tmp_path / f"{module}.py").write_text(source)
    assert invoke(["goldset", "import", str(DEMO), "--name", "demo", "-o", "json"]) == 0
    capsys.readouterr()
    return Project(cwd=tmp_path, home=evalkit_home, mymod=mymod, plain=plain, capsys=capsys)


@pytest.mark.slow
def test_runs_list_and_dashboard_series_keep_factories_and_options_apart(
    project: Project,
) -> None:
    good = project.run(f"{project.mymod}:make")["run_id"]
    worse = project.run(f"{project.mymod}:make_worse")["run_id"]
    plain = project.run(f"{project.plain}:make")["run_id"]
    dropped = project.run(f"{project.mymod}:make", config=project.options(drop=1))["run_id"]

    listed = {run["run_id"]: run for run in project.json(["runs", "list"])}
    expected = {
        good: f"{project.mymod}:make",
        worse: f"{project.mymod}:make_worse",
        plain: f"{project.plain}:make",
        dropped: f'{project.mymod}:make {{"drop":1}}',
    }
    assert {run_id: listed[run_id]["retriever_id"] for run_id in expected} == expected
    # "retriever" stays the kind, as exports record it.
    assert {listed[run_id]["retriever"] for run_id in expected} == {"factory"}

    assert invoke(["runs", "list"]) == 0
    table = project.capsys.readouterr().out
    for name in expected.values():
        assert name.split(" ")[0] in table

    with Store.open(project.store_path, read_only=True) as store:
        series = series_frame(store).set_index("retriever")
        points = series_points_frame(store, goldset="demo", measure="ndcg@10")
    assert set(series.index) == set(expected.values())
    assert (series["n_runs"] == 1).all()
    assert series.loc[expected[worse], "latest_run"] == worse
    # Each run is the first of its own series: nothing "changed since the previous run".
    assert points.groupby("retriever").size().to_dict() == dict.fromkeys(expected.values(), 1)


@pytest.mark.slow
def test_the_dashboard_overview_shows_one_series_per_factory(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    for spec in (f"{project.mymod}:make", f"{project.mymod}:make_worse", f"{project.plain}:make"):
        project.run(spec)
    monkeypatch.setenv("EVALKIT_STORE_PATH", str(project.store_path))
    app = open_page("overview")
    series = set(frame_with(app, "compare")["series"])
    assert series == {
        f"demo x {project.mymod}:make",
        f"demo x {project.mymod}:make_worse",
        f"demo x {project.plain}:make",
    }


@pytest.mark.slow
def test_default_baselines_are_runs_of_the_same_factory_and_options(
    project: Project,
) -> None:
    first = project.run(f"{project.mymod}:make")["run_id"]
    project.run(f"{project.plain}:make")
    project.run(f"{project.mymod}:make_worse")
    project.run(f"{project.mymod}:make", config=project.options(drop=1))
    second = project.run(f"{project.mymod}:make")["run_id"]

    explained = project.json(["explain", second])
    assert explained["baseline"] == first

    # Only one run of mymod:make_worse: there is no earlier run of it to compare with.
    with Store.open(project.store_path, read_only=True) as store:
        worse = next(
            run.run_id for run in _runs(store) if run.retriever_id == f"{project.mymod}:make_worse"
        )
    done = invoke(["explain", worse])
    assert done == 2
    assert "no earlier finished run of the same goldset and retriever" in (
        project.capsys.readouterr().err
    )


@pytest.mark.slow
def test_drift_precision_and_the_alert_rule_follow_one_retriever(project: Project) -> None:
    baseline = project.run(f"{project.mymod}:make")["run_id"]
    project.run(f"{project.mymod}:make")
    worse = project.run(f"{project.mymod}:make_worse")["run_id"]
    newest_of_make = project.run(f"{project.mymod}:make")["run_id"]
    with Store.open(project.store_path) as store:
        watched = watch_precision(
            store, "demo", test=replace(PRECISION_WATCH_DEFAULTS, resamples=200), save=False
        )
        subjects = {check.subject: check for check in watched.checks}
        assert set(subjects) | {s.subject for s in watched.skipped} == {
            f"{project.mymod}:make",
            f"{project.mymod}:make_worse",
        }
        # The make series compares its newest run with its own first one: no drop.
        assert subjects[f"{project.mymod}:make"].series[-1][0] == newest_of_make
        assert subjects[f"{project.mymod}:make"].baseline_run == baseline

        rules: list[dict[str, Any]] = [
            {
                "name": "gate",
                "kind": "precision_regression",
                "goldset": "demo",
                "method": "gate",
                "baseline_run": baseline,
                "measures": ["ndcg@10"],
                "resamples": 200,
            },
            {
                "name": "trend",
                "kind": "precision_regression",
                "goldset": "demo",
                "method": "page_hinkley",
                "warmup": 2,
                "measures": ["ndcg@10"],
            },
        ]
        config = alerts_config(
            parse_settings({"alerts": {"rules": rules}}, project.cwd / "evalkit.toml")
        )
        evaluation = evaluate_rules(store, config, build_sinks(config))
        assert not evaluation.errors
        # The gate rule compares the pinned baseline with the newest run of ITS retriever,
        # which did not drop; make_worse's run is another retriever's.
        assert [a for a in evaluation.alerts if a.rule == "gate"] == []
        state = {row[0]: row[1] for row in _states(store, "gate")}
        assert list(state.values()) == [newest_of_make]
        # The sequential series are per retriever: make's three runs are one series, and
        # make_worse's single run is no part of it (too short a series of its own).
        trend = {row[0] for row in _states(store, "trend")}
        assert trend == {f"demo|{project.mymod}:make:ndcg@10"}
    assert worse not in state.values()


@pytest.mark.slow
def test_the_metric_drift_job_follows_one_retriever(project: Project) -> None:
    for _ in range(6):
        project.run(f"{project.mymod}:make")
    worse = project.run(f"{project.mymod}:make_worse")["run_id"]
    config = configure(
        {
            "name": "newest",
            "kind": "drift_check",
            "stream": "metric",
            "goldset": "demo",
            "method": "page_hinkley",
        },
        {
            "name": "make",
            "kind": "drift_check",
            "stream": "metric",
            "goldset": "demo",
            "method": "page_hinkley",
            "retriever": f"{project.mymod}:make",
        },
    )
    runner = runner_for(config, load_settings())
    newest = runner.run("newest")
    # The newest run is make_worse's first: its series has not warmed up; make's 1.0s are
    # no baseline for it.
    assert newest is not None
    assert newest.status == "succeeded"
    assert newest.summary["note"] == "1 runs so far; the warm-up needs more"
    steady = runner.run("make")
    assert steady is not None
    assert steady.summary["finding"] == "ok"
    with Store.open(project.store_path, read_only=True) as store:
        (check,) = list_drift_checks(store, stream="metric")
    assert worse not in (check.reference, check.current)
    assert check.details["retriever"] == f"{project.mymod}:make"


@pytest.mark.slow
def test_explain_and_gate_name_a_changed_retriever(project: Project) -> None:
    baseline = project.run(f"{project.mymod}:make")["run_id"]
    worse = project.run(f"{project.mymod}:make_worse")["run_id"]

    explained = project.json(["explain", worse, "--baseline", baseline])
    assert explained["decision"] == "regression"
    kinds = [cause["kind"] for cause in explained["causes"]]
    assert kinds[0] == "retriever_changed"
    cause = explained["causes"][0]
    assert cause["measured"] is False
    assert cause["score"] == pytest.approx(1.0)
    assert f"factory {project.mymod}:make -> {project.mymod}:make_worse" in cause["statement"]
    assert {row["field"] for row in cause["evidence"]} == {"factory"}

    gated = project.json(
        [
            "gate",
            "--baseline",
            baseline,
            "--goldset",
            "demo",
            "--retriever",
            f"{project.mymod}:make_worse",
            "--resamples",
            "200",
        ],
        expect=1,
    )
    causes = gated["probable_causes"]["causes"]
    assert causes[0]["kind"] == "retriever_changed"
    assert invoke(["explain", worse, "--baseline", baseline]) == 0
    text = " ".join(project.capsys.readouterr().out.split())
    assert "none found in the store" not in text
    assert "retriever_changed" in text
    assert "evalkit audit" not in text


def test_explain_suggests_no_audit_that_cannot_run(project: Project) -> None:
    baseline = project.run(f"{project.mymod}:make")["run_id"]
    worse = project.run(f"{project.mymod}:make_worse")["run_id"]
    explained = project.json(["explain", worse, "--baseline", baseline])
    assert explained["lost_documents"] > 0
    # An audit reads a Chroma collection's vectors and exits 2 without --collection; the
    # factory's keyword ranker has none, so no `evalkit audit` is suggested at all.
    assert not any("evalkit audit" in note for note in explained["notes"])


def test_changed_options_are_a_changed_retriever(project: Project) -> None:
    baseline = project.run(f"{project.mymod}:make")["run_id"]
    dropped = project.run(f"{project.mymod}:make", config=project.options(drop=2))["run_id"]
    with Store.open(project.store_path, read_only=True) as store:
        explanation = explain_runs(
            store, dropped, baseline=baseline, test=PairedTestSettings(resamples=200)
        )
    (cause,) = [c for c in explanation.causes if c.kind == "retriever_changed"]
    assert 'options {} -> {"drop": 2}' in cause.statement
    assert [dict(row) for row in cause.evidence] == [
        {"field": "options", "baseline": {}, "candidate": {"drop": 2}}
    ]


def test_a_retriever_that_embeds_nothing_is_not_said_to_embed(project: Project) -> None:
    run = project.run(f"{project.mymod}:make")["run_id"]
    assert invoke(["runs", "show", run]) == 0
    text = " ".join(project.capsys.readouterr().out.split())
    assert "the retriever encodes queries itself, or does not embed" in text
    assert "embeds queries itself" not in text


def _runs(store: Store) -> list[RunRecord]:
    return list_runs(store, goldset="demo")


def _states(store: Store, rule: str) -> list[tuple[str, str]]:
    return [
        (state.subject, str(state.evidence.get("candidate_run")))
        for state in load_alert_states(store, rule=rule).values()
    ]


def test_get_run_names_the_retriever(project: Project) -> None:
    run_id = project.run(f"{project.plain}:make")["run_id"]
    with Store.open(project.store_path, read_only=True) as store:
        assert get_run(store, run_id).retriever_id == f"{project.plain}:make"
