"""The pytest plugin (``evalkit.pytest_plugin``): a user's own test suite gates its retriever
with the ``evalkit_gate`` fixture or marker, run by ``pytester`` in a project laid out like
a real one: a search module with a model-free factory, a goldset as JSONL, a baseline run
file, and test files that use the plugin as its users would."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from importlib.metadata import entry_points

import pytest

# Imported here so that the in-process pytest runs below find them loaded (pytester drops
# the modules a run imported when it ends; reloading these would cost seconds every time,
# and scipy.stats, which the gate loads on first use, could not be reloaded at all: numpy's
# C extensions load once per process). ``evalkit.pipeline`` keeps the names it loads lazily,
# so a workflow module a run loaded would outlive the run through that cache, beside fresh
# copies of the modules it imports (two ``RetrieverOptions`` classes): load the gate's here.
import scipy.stats  # noqa: F401
from gate_inputs import retriever_endpoint, write_goldset_files

import evalkit.pipeline
import evalkit.pipeline.gate
import evalkit.retrievers.http
import evalkit.store.access  # noqa: F401
from evalkit.cli import invoke
from evalkit.store import Store
from evalkit.store.runs import list_runs

pytest_plugins = ["pytester"]

N_QUERIES = 40
WORSE = range(0, N_QUERIES, 4)

SEARCH_MODULE = '''
"""The search service's evalkit hook: ranks each query's documents from a table."""

from evalkit.records import QueryResult
from evalkit.retrievers.base import ranked_docs


class Table:
    """Each query's three relevant documents first, then noise; ``lost`` queries get only
    noise, ``fail`` queries time out."""

    def __init__(self, lost=(), fail=()):
        self.lost = {f"q{n}" for n in lost}
        self.fail = {f"q{n}" for n in fail}

    def retrieve(self, queries, k):
        results = []
        for query in queries:
            if query.id in self.fail:
                results.append(QueryResult(query_id=query.id, docs=(), latency_ms=1.0,
                                           error="TimeoutError: shard 3 did not answer"))
                continue
            n = query.id[1:]
            relevant = [] if query.id in self.lost else [f"rel{n}_{r}" for r in range(3)]
            ids = (relevant + [f"noise{n}_{i}" for i in range(4)])[:k]
            scores = [1.0 - rank / 10 for rank in range(len(ids))]
            results.append(QueryResult(query_id=query.id, docs=ranked_docs(ids, scores),
                                       latency_ms=1.0))
        return results


def make(lost=(), fail=()):
    return Table(lost, fail)


def make_worse():
    return Table(lost=range(0, 40, 4))
'''

# Module-level defaults of every gate in a user's test file (the marker on a module).
DEFAULTS = (
    'pytestmark = pytest.mark.evalkit_gate(goldset="goldset", baseline="baseline.run", '
    "resamples=2000)"
)


def baseline_lines(n_queries: int) -> str:
    """What the good retriever returns, as a TREC run file (main's exported run)."""
    lines = []
    for q in range(n_queries):
        ids = [f"rel{q}_{r}" for r in range(3)] + [f"noise{q}_{i}" for i in range(4)]
        lines += [
            f"q{q} Q0 {doc} {rank + 1} {1.0 - rank / 10} main\n" for rank, doc in enumerate(ids)
        ]
    return "".join(lines)


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A user's repository: the search module, a goldset folder and main's baseline run."""
    monkeypatch.setenv("EVALKIT_HOME", str(pytester.path / "evalkit-home"))
    for name in ("EVALKIT_CONFIG", "EVALKIT_STORE_PATH", "EVALKIT_CHROMA_URL"):
        monkeypatch.delenv(name, raising=False)
    (pytester.path / "mysearch.py").write_text(SEARCH_MODULE)
    write_goldset_files(pytester.path / "goldset", N_QUERIES)
    (pytester.path / "baseline.run").write_text(baseline_lines(N_QUERIES))
    return pytester


def user_tests(pytester: pytest.Pytester, body: str, *, name: str = "test_retrieval") -> None:
    pytester.makepyfile(**{name: "import pytest\n\n" + DEFAULTS + "\n\n" + textwrap.dedent(body)})


def test_the_plugin_is_registered_under_pytest11() -> None:
    (point,) = [p for p in entry_points(group="pytest11") if p.name == "evalkit"]
    assert point.value == "evalkit.pytest_plugin", "reinstall evalkit: pip install -e ."


@pytest.mark.slow
def test_a_retriever_as_good_as_the_baseline_passes_however_it_is_named(
    project: pytest.Pytester,
) -> None:
    (project.path / "evalkit.toml").write_text('[retriever]\nfactory = "mysearch:make"\n')
    user_tests(
        project,
        """
        import mysearch


        def test_factory_spec(evalkit_gate):
            outcome = evalkit_gate(retriever="mysearch:make")
            assert outcome.decision == "pass"
            assert outcome.exit_code == 0
            metric = outcome.report.metric("ndcg@10")
            assert (metric.delta, metric.n) == (0.0, 40)
            assert outcome.candidate_run_id is not None


        def test_ready_object(evalkit_gate):
            assert evalkit_gate(retriever=mysearch.Table()).decision == "pass"


        def test_retriever_table_of_evalkit_toml(evalkit_gate):
            assert evalkit_gate(measures=["ndcg@10", "recall@10"]).decision == "pass"


        @pytest.mark.evalkit_gate(retriever="mysearch:make")
        def test_marker_alone():
            pass
        """,
    )
    result = project.runpytest_inprocess("-rA")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(
        [
            "*- evalkit gate -*",
            "PASS test_retrieval.py::test_factory_spec: "
            "ndcg@10 +0.0000 [[]+0.0000, +0.0000[]] p_adj 1.000",
            "PASS test_retrieval.py::test_marker_alone: ndcg@10 +0.0000*",
        ]
    )
    # Nothing leaked into the user's repository: the store is in the session's temp dir.
    assert not (project.path / ".evalkit").exists()
    assert not (project.path / "evalkit-home").exists()


def _without_run_times(junit: str) -> str:
    # Another renderer change may stamp the suite with its run time; the rest must agree.
    return re.sub(r' (time|timestamp)="[^"]*"', "", junit)


def _suites(junit: str) -> list[ET.Element]:
    """The ``<testsuite>`` elements of the plugin's ``<testsuites>``, totals checked."""
    root = ET.fromstring(junit)
    assert root.tag == "testsuites"
    suites = list(root)
    for total in ("tests", "failures", "errors", "skipped"):
        assert root.get(total) == str(sum(int(suite.get(total, "0")) for suite in suites))
    assert float(root.get("time", "nan")) == pytest.approx(
        sum(float(suite.get("time", "nan")) for suite in suites), abs=0.002
    )
    return suites


@pytest.mark.slow
def test_a_regression_fails_the_test_with_the_reports_of_evalkit_gate(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    user_tests(
        project,
        """
        def test_no_regression(evalkit_gate):
            evalkit_gate(retriever="mysearch:make_worse")
            raise AssertionError("a regression must stop the test")


        @pytest.mark.evalkit_gate(retriever="mysearch:make_worse", junit="marked/gate.xml")
        def test_marked():
            raise AssertionError("the marker's gate must run first")
        """,
    )
    result = project.runpytest_inprocess(
        "--evalkit-junit=out/gate.xml", "--evalkit-markdown=out/gate.md"
    )
    result.assert_outcomes(failed=2)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert "a regression must stop the test" not in result.stdout.str()
    assert "the marker's gate must run first" not in result.stdout.str()
    result.stdout.fnmatch_lines(
        [
            "*evalkit gate: REGRESSION on ndcg@10 (`evalkit gate` would exit 1)*",
            "baseline */baseline.run; candidate run *",
            "metric   baseline  candidate  Δ        95 % CI *p (adj.)*decision",
            "ndcg@10  1.0000    0.7500     -0.2500  [[]-0.*, -0.*[]]*regression",
            "Compared on all 40 queries; both runs have the same ones.",
            "worst-regressed queries on ndcg@10:",
            "  q0: 1.0000 -> 0.0000 (-1.0000); relevant docs lost: rel0_0, rel0_1, rel0_2",
            "  q12: 1.0000 -> 0.0000 (-1.0000)*",
            "reports: JUnit */out/gate.xml; Markdown */out/gate.md",
        ]
    )
    (suite,) = _suites((project.path / "out" / "gate.xml").read_text())
    assert suite.get("name") == "evalkit gate: test_retrieval.py::test_no_regression"
    (marked,) = _suites((project.path / "marked" / "gate.xml").read_text())
    assert marked.get("name") == "evalkit gate: test_retrieval.py::test_marked"
    # JUnit's `file` is the goldset's queries file, as the repository spells it.
    cases = list(suite.iter("testcase"))
    assert [element.get("file") for element in [suite, *cases]] == ["goldset/queries.jsonl"] * 2
    # Both tests' gates write their Markdown there, in the order they ran.
    markdown = (project.path / "out" / "gate.md").read_text()

    # The CLI on the same inputs writes the same bytes.
    monkeypatch.setattr(sys, "path", list(sys.path))
    try:
        assert invoke(["goldset", "import", "goldset", "--name", "g", "-o", "json"]) == 0
        code = invoke(
            [
                "gate",
                "--baseline",
                "baseline.run",
                "--goldset",
                "g",
                "--retriever",
                "mysearch:make_worse",
                "--resamples",
                "2000",
                "--junit",
                "cli/gate.xml",
                "--markdown",
                "cli/gate.md",
                "--format",
                "json",
            ]
        )
    finally:
        sys.modules.pop("mysearch", None)
    assert code == 1
    cli_markdown = (project.path / "cli" / "gate.md").read_text()
    assert markdown == "\n".join(
        f"{cli_markdown}\nTest: `test_retrieval.py::{test}`\n"
        for test in ("test_no_regression", "test_marked")
    )
    cli = ET.parse(project.path / "cli" / "gate.xml").getroot()
    # The suite is the CLI's but for its name and `file` (`evalkit gate` names the folder).
    for element in [suite, *suite.iter("testcase")]:
        element.set("file", cli.get("file", ""))
    suite.set("name", "evalkit gate")
    for element in (cli, suite):
        element.tail = None
        ET.indent(element)
    assert _without_run_times(ET.tostring(cli, encoding="unicode")) == (
        _without_run_times(ET.tostring(suite, encoding="unicode"))
    )
    assert suite.get("failures") == "1"
    assert "**Gate: REGRESSION**" in markdown
    assert "rel0\\_0" in markdown


@pytest.mark.slow
def test_a_run_export_is_a_baseline_as_for_evalkit_gate(
    project: pytest.Pytester, capsys: pytest.CaptureFixture[str]
) -> None:
    """ci.md recommends a run export as the CI baseline (it carries the provenance): the
    fixture takes one, as `evalkit gate --baseline` does, instead of refusing a folder."""
    run = ["run", "--goldset", "goldset", "--retriever", "mysearch:make", "--format", "json"]
    assert invoke(run) == 0, capsys.readouterr().err
    run_id = json.loads(capsys.readouterr().out)["run_id"]
    export = ["runs", "export", run_id, "--format", "parquet", "--output", "main-export"]
    assert invoke(export) == 0, capsys.readouterr().err
    user_tests(
        project,
        """
        def test_against_the_export(evalkit_gate):
            outcome = evalkit_gate(baseline="main-export", retriever="mysearch:make")
            assert outcome.decision == "pass"


        def test_a_regression_against_the_export(evalkit_gate):
            evalkit_gate(baseline="main-export", retriever="mysearch:make_worse")
        """,
    )
    result = project.runpytest_inprocess("-rA")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*REGRESSION test_retrieval.py::test_a_regression_against*"])


@pytest.mark.slow
def test_every_gate_writing_to_one_path_is_in_its_reports(project: pytest.Pytester) -> None:
    # The first gate regresses, the second passes: the reports must not end up saying pass.
    user_tests(
        project,
        """
        def test_a_worse_retriever(evalkit_gate):
            evalkit_gate(retriever="mysearch:make_worse")


        def test_the_same_retriever(evalkit_gate):
            evalkit_gate(retriever="mysearch:make", measures=["ndcg@10", "recall@10"])
        """,
    )
    result = project.runpytest_inprocess(
        "--evalkit-junit=out/gate.xml", "--evalkit-markdown=out/gate.md"
    )
    result.assert_outcomes(failed=1, passed=1)
    root = ET.parse(project.path / "out" / "gate.xml").getroot()
    worse, same = _suites(ET.tostring(root, encoding="unicode"))
    assert (root.get("tests"), root.get("failures"), root.get("skipped")) == ("3", "1", "0")
    assert worse.get("name") == "evalkit gate: test_retrieval.py::test_a_worse_retriever"
    assert (worse.get("tests"), worse.get("failures")) == ("1", "1")
    (failure,) = worse.iter("failure")
    assert failure.get("message", "").startswith("regression: ndcg@10: delta -0.2500")
    assert same.get("name") == "evalkit gate: test_retrieval.py::test_the_same_retriever"
    assert (same.get("tests"), same.get("failures")) == ("2", "0")
    markdown = (project.path / "out" / "gate.md").read_text()
    regression = markdown.index("**Gate: REGRESSION**")
    assert regression < markdown.index("Test: `test_retrieval.py::test_a_worse_retriever`")
    assert markdown.index("**Gate: PASS**") > regression
    assert markdown.endswith("Test: `test_retrieval.py::test_the_same_retriever`\n")


@pytest.mark.slow
def test_gates_run_by_xdist_workers_land_in_one_report(project: pytest.Pytester) -> None:
    """Under pytest-xdist each worker used to write the session's report paths with its own
    gates only: the last worker to finish overwrote the others', so a regression in one
    worker could leave a report that said pass, and the controller listed no gate at all."""
    user_tests(
        project,
        """
        def test_a_worse_retriever(evalkit_gate):
            evalkit_gate(retriever="mysearch:make_worse")
        """,
        name="test_worse",
    )
    user_tests(
        project,
        """
        def test_the_same_retriever(evalkit_gate):
            evalkit_gate(retriever="mysearch:make")
        """,
        name="test_same",
    )
    result = project.runpytest_subprocess(
        "-p",
        "no:cacheprovider",
        "-v",
        "-n",
        "2",
        "--dist",
        "loadfile",
        "--evalkit-junit=out/gate.xml",
        "--evalkit-markdown=out/gate.md",
        timeout=300,
    )
    result.assert_outcomes(failed=1, passed=1)
    # Each file ran in its own worker, yet both gates are in the controller's summary.
    workers = re.findall(r"\[(gw\d)\] .*(?:PASSED|FAILED) test_", result.stdout.str())
    assert len(set(workers)) == 2, result.stdout.str()
    result.stdout.fnmatch_lines_random(
        [
            "REGRESSION test_worse.py::test_a_worse_retriever: ndcg@10 -0.2500*",
            "PASS test_same.py::test_the_same_retriever: ndcg@10 +0.0000*",
        ]
    )
    suites = _suites((project.path / "out" / "gate.xml").read_text())
    assert sorted(suite.get("name", "") for suite in suites) == [
        "evalkit gate: test_same.py::test_the_same_retriever",
        "evalkit gate: test_worse.py::test_a_worse_retriever",
    ]
    markdown = (project.path / "out" / "gate.md").read_text()
    assert "**Gate: REGRESSION**" in markdown
    assert "**Gate: PASS**" in markdown
    assert "Test: `test_worse.py::test_a_worse_retriever`" in markdown
    assert "Test: `test_same.py::test_the_same_retriever`" in markdown


@pytest.mark.slow
def test_the_summary_colours_verdicts_only_where_pytest_colours(
    project: pytest.Pytester,
) -> None:
    user_tests(
        project,
        """
        def test_a_worse_retriever(evalkit_gate):
            evalkit_gate(retriever="mysearch:make_worse")


        def test_the_same_retriever(evalkit_gate):
            evalkit_gate(retriever="mysearch:make")
        """,
    )
    coloured = project.runpytest_inprocess("--color=yes").stdout.str()
    assert "\x1b[31m\x1b[1mREGRESSION\x1b[0m test_retrieval.py::test_a_worse_retriever" in (
        coloured
    )
    assert "\x1b[32m\x1b[1mPASS\x1b[0m test_retrieval.py::test_the_same_retriever" in coloured
    plain = project.runpytest_inprocess("--color=no")
    plain.stdout.fnmatch_lines(["REGRESSION test_retrieval.py::test_a_worse_retriever: *"])
    assert "\x1b[" not in plain.stdout.str()


def test_a_report_that_cannot_be_written_fails_the_session(project: pytest.Pytester) -> None:
    user_tests(
        project,
        """
        def test_the_same_retriever(evalkit_gate):
            evalkit_gate(retriever="mysearch:make")
        """,
    )
    (project.path / "out").write_text("a file where the report folder should be")
    result = project.runpytest_inprocess("--evalkit-junit=out/gate.xml")
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["evalkit: cannot write */out/gate.xml: *"])


INCONCLUSIVE = """
def test_gate(evalkit_gate):
    evalkit_gate(retriever="mysearch:make", options={"lost": [7]}{policy})
"""


@pytest.mark.parametrize(
    ("policy", "given", "outcome"),
    [
        ("skip", "default", "skipped"),
        ("xfail", "command line", "xfailed"),
        ("fail", "ini", "failed"),
        ("pass", "call", "passed"),
    ],
)
def test_an_inconclusive_gate_follows_its_policy(
    project: pytest.Pytester, policy: str, given: str, outcome: str
) -> None:
    args = ["-rA"]
    if given == "command line":
        args.append(f"--evalkit-inconclusive={policy}")
    if given == "ini":
        project.makeini(f"[pytest]\nevalkit_inconclusive = {policy}\n")
    call = f', inconclusive="{policy}"' if given == "call" else ""
    user_tests(project, INCONCLUSIVE.replace("{policy}", call))
    result = project.runpytest_inprocess(*args)
    result.assert_outcomes(**{outcome: 1})
    if policy != "pass":
        # One query of 40 lost everything: a drop of 0.025 that 40 queries cannot decide.
        result.stdout.fnmatch_lines(
            [
                "*evalkit gate: inconclusive (`evalkit gate` would exit 4): the data neither "
                "show a significant drop nor rule out one larger than 0.01: ndcg@10 delta "
                "-0.0250, CI [[]-0.*, *[]], p_adj 1, n 40 (queries needed to decide: ~*)*"
            ]
        )
    result.stdout.fnmatch_lines(["INCONCLUSIVE test_retrieval.py::test_gate: ndcg@10 -0.0250*"])


def test_a_policy_that_is_not_one_is_a_usage_error(project: pytest.Pytester) -> None:
    project.makeini("[pytest]\nevalkit_inconclusive = ignore\n")
    result = project.runpytest_inprocess()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*evalkit_inconclusive = 'ignore'*skip, xfail, fail, pass*"])


@pytest.mark.slow
def test_the_first_run_writes_the_baseline_and_says_so_then_gates_against_it(
    project: pytest.Pytester,
) -> None:
    user_tests(
        project,
        """
        def test_gate(evalkit_gate):
            evalkit_gate(retriever="mysearch:make", baseline="baselines/main.run")
        """,
    )
    first = project.runpytest_inprocess("-rs")
    first.assert_outcomes(skipped=1)
    first.stdout.fnmatch_lines(
        [
            "FIRST RUN test_retrieval.py::test_gate: no baseline yet*",
            "SKIPPED [[]1[]] test_retrieval.py:7: no baseline yet: stored the candidate as "
            "*/baselines/main.run (run *); commit that file: later runs are gated against "
            "it, and a CI job that does not find it (its checkout is new every time) never "
            "gates",
        ]
    )
    written = project.path / "baselines" / "main.run"
    assert written.read_text().count("\n") == N_QUERIES * 7
    assert written.read_text().splitlines()[0].startswith("q0 Q0 rel0_0 1 1.0 ")
    second = project.runpytest_inprocess()
    second.assert_outcomes(passed=1)
    # Under `fail`, a missing baseline fails the build (the file is then written all the same).
    written.unlink()
    third = project.runpytest_inprocess("--evalkit-first-run=fail")
    third.assert_outcomes(failed=1)
    assert written.is_file()


def test_a_marked_tests_skips_are_reported_at_the_test(project: pytest.Pytester) -> None:
    user_tests(
        project,
        """
        @pytest.mark.evalkit_gate(retriever="mysearch:make", baseline="baselines/main.run")
        def test_first_run():
            pass


        @pytest.mark.evalkit_gate(retriever="mysearch:make", options={"lost": [7]})
        def test_inconclusive():
            pass
        """,
    )
    result = project.runpytest_inprocess("-rs")
    result.assert_outcomes(skipped=2)
    result.stdout.fnmatch_lines(
        [
            "SKIPPED [[]1[]] test_retrieval.py:6: no baseline yet: stored the candidate as *",
            "SKIPPED [[]1[]] test_retrieval.py:11: evalkit gate: inconclusive *",
        ]
    )


def test_evalkit_errors_fail_the_test_with_what_to_fix(project: pytest.Pytester) -> None:
    bad = project.path / "broken"
    bad.mkdir()
    (bad / "queries.jsonl").write_text('{"id": "q0", "text": "question 0"}\n')
    (bad / "judgments.jsonl").write_text(
        '{"query_id": "q0", "doc_id": "d0", "relevance": 1}\n{"query_id": "q0"}\n'
    )
    user_tests(
        project,
        """
        def test_missing_goldset(evalkit_gate):
            evalkit_gate(goldset="goldsets/missing", retriever="mysearch:make")


        def test_broken_goldset(evalkit_gate):
            evalkit_gate(goldset="broken", retriever="mysearch:make")


        def test_unknown_goldset_name(evalkit_gate):
            evalkit_gate(goldset="demo", retriever="mysearch:make")


        def test_retriever_down(evalkit_gate):
            evalkit_gate(retriever="mysearch:make", options={"fail": [3]})


        def test_missing_factory(evalkit_gate):
            evalkit_gate(retriever="mysearch:nothing")


        def test_misspelt_option(evalkit_gate):
            evalkit_gate(retriever="mysearch:make", min_efect=0.02)
        """,
    )
    result = project.runpytest_inprocess()
    result.assert_outcomes(failed=6)
    result.stdout.fnmatch_lines(
        [
            "*evalkit gate could not decide (bad input or usage; `evalkit gate` would exit 2):",
            "goldset goldsets/missing: no such file or folder (*/goldsets/missing); give the "
            "path of a goldset folder or file*",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "*/broken: invalid goldset, 2 problems:",
            "  judgments.jsonl:2 field 'doc_id': is missing; every judgment needs it",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "no goldset named 'demo' in *evalkit.duckdb*",
            "(the gate's store is this session's temporary store: name another with "
            "evalkit_store / --evalkit-store*",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "*(a retriever or store failure; `evalkit gate` would exit 3):",
            "the candidate run * is partial: 1 of 40 queries failed; first: TimeoutError: "
            "shard 3 did not answer. The gate needs every query answered, and leaving a "
            "failed query out would hide the worst outcome: replay once the retriever answers "
            "them, or count each failed query as 0 (failed_as_zero).",
        ]
    )
    result.stdout.fnmatch_lines(["*module 'mysearch' has no attribute 'nothing'*"])
    result.stdout.fnmatch_lines(["*evalkit_gate: unknown option(s) min_efect; the options are*"])
    result.stdout.fnmatch_lines(["ERROR test_retrieval.py::test_retriever_down: the candidate*"])


@pytest.fixture
def endpoint() -> Iterator[str]:
    with retriever_endpoint() as url:
        yield url


@pytest.mark.slow
def test_a_built_in_kind_over_http_into_a_named_store(
    project: pytest.Pytester, endpoint: str
) -> None:
    store = project.path / "ci-store" / "gate.duckdb"
    user_tests(
        project,
        f"""
        def test_by_url(evalkit_gate):
            outcome = evalkit_gate(retriever="{endpoint}", k=10)
            assert outcome.decision == "pass"
            assert outcome.candidate_run.spec.retriever_kind == "http"


        def test_by_kind(evalkit_gate):
            assert evalkit_gate(http_url="{endpoint}", k=10).decision == "pass"
        """,
    )
    result = project.runpytest_inprocess(f"--evalkit-store={store}")
    result.assert_outcomes(passed=2)
    with Store.open(store, read_only=True) as opened:
        runs = list_runs(opened)
    assert sorted(run.spec.retriever_kind for run in runs) == ["http", "http"]
    assert {run.spec.label for run in runs} == {"gate candidate"}


def test_a_session_that_never_gates_is_left_as_it_was(project: pytest.Pytester) -> None:
    project.makepyfile(test_plain="def test_plain():\n    assert True\n")
    result = project.runpytest_inprocess()
    result.assert_outcomes(passed=1)
    assert "evalkit gate" not in result.stdout.str()


def test_no_evalkit_turns_the_plugin_off(project: pytest.Pytester) -> None:
    user_tests(
        project,
        """
        def test_gate(evalkit_gate):
            evalkit_gate(retriever="mysearch:make")
        """,
    )
    result = project.runpytest_inprocess("-p", "no:evalkit")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixture 'evalkit_gate' not found"])
    assert "evalkit gate" not in result.stdout.str()
    helped = project.runpytest_inprocess("-p", "no:evalkit", "--help")
    assert "--evalkit-store" not in helped.stdout.str()
    assert "--evalkit-store" in project.runpytest_inprocess("--help").stdout.str()


def test_importing_the_plugin_loads_nothing_heavy() -> None:
    heavy = ["pandas", "duckdb", "scipy", "numpy", "pydantic", "httpx", "torch", "chromadb"]
    code = f"import sys, evalkit.pytest_plugin\nprint(sorted(set({heavy!r}) & set(sys.modules)))\n"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.mark.slow
def test_a_fresh_pytest_process_loads_the_plugin_from_its_entry_point(
    project: pytest.Pytester,
) -> None:
    user_tests(
        project,
        """
        def test_gate(evalkit_gate):
            evalkit_gate(retriever="mysearch:make_worse")
        """,
    )
    result = project.runpytest_subprocess("-p", "no:cacheprovider", timeout=300)
    result.assert_outcomes(failed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*evalkit gate: REGRESSION on ndcg@10*"])
