"""evalkit's pytest plugin: gate retrieval quality from your own test suite.

The ``evalkit_gate`` fixture and marker (arguments: ``GateSpec``) run ``evalkit gate``'s
workflow (``pipeline.gate_against_baseline``), so decisions and reports are the same
(docs/ci.md, "pytest plugin"). Importing this module loads nothing heavy.
"""

from __future__ import annotations

import os
import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import pytest

from evalkit.errors import ConfigError, EvalkitError, NotFoundError
from evalkit.records.requests import (
    DEFAULT_GOLDSET_FORMAT,
    DEFAULT_GOLDSET_SPLIT,
    GATE_DEFAULTS,
    GatePolicy,
    measure_names,
)
from evalkit.records.run_reference import RunReference, RunReferenceKind

if TYPE_CHECKING:
    from evalkit.goldset import Goldset
    from evalkit.pipeline import GateOutcome
    from evalkit.retrievers.base import Retriever
    from evalkit.retrievers.factory import RetrieverOptions

__all__ = ["FIXTURE", "POLICIES", "EvalkitGate", "GateSpec"]

FIXTURE: Final = "evalkit_gate"
"""The name of the fixture and of the marker."""

POLICIES: Final = ("skip", "xfail", "fail", "pass")
"""What an inconclusive gate, or a first run without a baseline, does to the test."""

_OUTCOMES: Final = {"inconclusive": "an inconclusive gate", "first_run": "a gate's first run"}
_RUN_ID: Final = re.compile(r"^\d{8}T\d{0,6}(-[0-9a-f]*)?$")
_ERROR_KINDS: Final = {2: "bad input or usage", 3: "a retriever or store failure"}
_XML_DECLARATION: Final = '<?xml version="1.0" encoding="UTF-8"?>\n'
_VERDICT_COLOURS: Final = {"pass": "green", "regression": "red", "error": "red"}
_WORKER_OUTPUT: Final = "evalkit_gates"
"""The key of a pytest-xdist worker's output that carries its gates to the controller."""


@dataclass(frozen=True)
class GateSpec:
    """What a gate compares, and how: the arguments of the fixture's call and the marker.

    ``goldset``: goldset files or a stored name, told apart by ``pipeline.resolve_goldset``;
    ``baseline``: a TREC run file (written from the candidate when missing), a run export
    or a stored run id; ``retriever``: a ``--retriever`` spec, an HTTP URL,
    ``RetrieverOptions`` or a retriever object (None: ``collection`` / ``chroma_url`` /
    ``http_url``, else evalkit.toml's ``[retriever]``). The rest are ``evalkit gate``'s
    options with its defaults; ``junit`` to ``first_run`` override the session's. docs/ci.md.
    """

    goldset: str | os.PathLike[str] | None = None
    baseline: str | os.PathLike[str] | None = None
    retriever: object = None
    collection: str | None = None
    chroma_url: str | None = None
    http_url: str | None = None
    where_key: str | None = None
    options: Mapping[str, Any] | None = None
    measures: str | Sequence[str] = GATE_DEFAULTS.measures
    min_effect: float = GATE_DEFAULTS.min_effect
    alpha: float = GATE_DEFAULTS.alpha
    k: int | None = None
    resamples: int = GATE_DEFAULTS.resamples
    seed: int = GATE_DEFAULTS.seed
    worst: int = GATE_DEFAULTS.worst
    failed_as_zero: bool = GATE_DEFAULTS.failed_as_zero
    goldset_format: str = DEFAULT_GOLDSET_FORMAT
    goldset_name: str | None = None
    split: str = DEFAULT_GOLDSET_SPLIT
    topics: str | os.PathLike[str] | None = None
    junit: str | os.PathLike[str] | None = None
    markdown: str | os.PathLike[str] | None = None
    inconclusive: str | None = None
    first_run: str | None = None

    @property
    def measure_names(self) -> list[str]:
        """``measures`` as a list (one name may be given as a string)."""
        return list(measure_names(self.measures))

    @property
    def policy(self) -> GatePolicy:
        """The comparison this gate asks for."""
        return GatePolicy(
            measures=tuple(self.measure_names),
            alpha=self.alpha,
            min_effect=self.min_effect,
            resamples=self.resamples,
            seed=self.seed,
            worst=self.worst,
            failed_as_zero=self.failed_as_zero,
        )


@dataclass(frozen=True, slots=True)
class _Gated:
    """One gate of the session, for the terminal summary."""

    nodeid: str
    verdict: str
    detail: str
    at: float = field(default_factory=time.time)


@dataclass(frozen=True, slots=True)
class _Compared:
    """A gate that compared, rendered for the session's JUnit and Markdown reports as
    ``evalkit gate --junit`` and ``--markdown`` render it."""

    nodeid: str
    junit_suite: str
    markdown: str
    at: float = field(default_factory=time.time)


@dataclass
class _Session:
    """What the plugin keeps for one pytest session: the reports are written when it ends,
    each path with every gate that asked for it."""

    temporary_store: Path | None = None
    gates: list[_Gated] = field(default_factory=list)
    junit: dict[Path, list[_Compared]] = field(default_factory=dict)
    markdown: dict[Path, list[_Compared]] = field(default_factory=dict)

    def to_wire(self) -> dict[str, Any]:
        """The gates as plain data, which pytest-xdist carries from a worker to the
        controller (``workeroutput``)."""
        return {
            "gates": [[g.nodeid, g.verdict, g.detail, g.at] for g in self.gates],
            **{
                kind: {
                    str(path): [[c.nodeid, c.junit_suite, c.markdown, c.at] for c in compared]
                    for path, compared in reports.items()
                }
                for kind, reports in (("junit", self.junit), ("markdown", self.markdown))
            },
        }

    def merge(self, wire: Mapping[str, Any]) -> None:
        """Add a worker's gates (``to_wire``), keeping every list in the order the gates
        ran, whichever worker ran them."""
        self.gates.extend(_Gated(*gated) for gated in wire.get("gates", ()))
        self.gates.sort(key=lambda gated: gated.at)
        for kind, reports in (("junit", self.junit), ("markdown", self.markdown)):
            for path, compared in wire.get(kind, {}).items():
                merged = reports.setdefault(Path(path), [])
                merged.extend(_Compared(*gate) for gate in compared)
                merged.sort(key=lambda gate: gate.at)


_SESSION = pytest.StashKey[_Session]()
_RUNS_GATE = pytest.StashKey[bool]()


def pytest_addoption(parser: pytest.Parser) -> None:
    """The plugin's command-line options and ini settings."""
    group = parser.getgroup("evalkit", "evalkit retrieval gate (the evalkit_gate fixture)")
    paths = {
        "store": "DuckDB file the gates store goldsets and candidate runs in "
        "(default: a new one in the session's temporary directory).",
        "junit": "Write the gates' JUnit XML here when the session ends: each gate's "
        "<testsuite> (as `evalkit gate --junit`) in one <testsuites>.",
        "markdown": "Write the gates' Markdown summaries here when the session ends "
        "(each as `evalkit gate --markdown`, in turn).",
    }
    for name, text in paths.items():
        group.addoption(f"--evalkit-{name}", dest=f"evalkit_{name}", metavar="PATH", help=text)
        parser.addini(f"evalkit_{name}", text)
    for name, what in _OUTCOMES.items():
        text = f"What {what} does to its test: {', '.join(POLICIES)} (default: skip)."
        group.addoption(
            f"--evalkit-{name.replace('_', '-')}",
            dest=f"evalkit_{name}",
            choices=POLICIES,
            help=text,
        )
        parser.addini(f"evalkit_{name}", text, default="skip")


def pytest_configure(config: pytest.Config) -> None:
    """Register the marker; refuse an ini policy that is not one of ``POLICIES``."""
    config.addinivalue_line(
        "markers",
        f"{FIXTURE}(goldset=..., baseline=..., retriever=..., **options): replay the goldset "
        "against the retriever and gate it against the baseline, as `evalkit gate` does "
        "(evalkit.pytest_plugin.GateSpec lists the options)",
    )
    for name in _OUTCOMES:
        _policy(config, name, None)
    config.stash[_SESSION] = _Session()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test function marked ``evalkit_gate`` itself (not through its module or class) that
    does not use the fixture runs the gate before its body."""
    for item in items:
        if not isinstance(item, pytest.Function) or FIXTURE in item.fixturenames:
            continue
        if any(mark.name == FIXTURE for mark in item.own_markers):
            item.fixturenames.append(FIXTURE)
            item.stash[_RUNS_GATE] = True


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> None:
    """Run the gate of a marked test before its body."""
    __tracebackhide__ = True
    if pyfuncitem.stash.get(_RUNS_GATE, False):
        gate = pyfuncitem.funcargs[FIXTURE]
        if callable(gate):
            try:
                gate()
            except pytest.skip.Exception as skipped:
                # Called from this hook, a skip would be reported at the last frame pytest
                # shows, inside pluggy; pytest's own skips from fixtures and marks set this
                # to name the test instead.
                skipped._use_item_location = True
                raise


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """One line per gate of the session; nothing when no test gated."""
    session = terminalreporter.config.stash.get(_SESSION, None)
    if session is None or not session.gates:
        return
    terminalreporter.write_sep("-", "evalkit gate")
    for gated in session.gates:
        # pytest colours only where it colours its own output (a terminal, or --color=yes).
        colour = _VERDICT_COLOURS.get(gated.verdict, "yellow")
        terminalreporter.write(gated.verdict.upper(), **{colour: True, "bold": True})
        terminalreporter.write_line(f" {gated.nodeid}: {gated.detail}")


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    """Under pytest-xdist, take in a finished worker's gates: the controller writes the
    reports and the summary of the whole session."""
    state = node.config.stash.get(_SESSION, None)
    wire = getattr(node, "workeroutput", {}).get(_WORKER_OUTPUT)
    if state is not None and wire is not None:
        state.merge(wire)


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Write each JUnit and Markdown path with every gate of the session that asked for it;
    a pytest-xdist worker hands its gates to the controller instead, so that gates run by
    different workers land in one report rather than overwrite each other's."""
    state = session.config.stash.get(_SESSION, None)
    if state is None:
        return
    worker_output = getattr(session.config, "workeroutput", None)
    if worker_output is not None:
        worker_output[_WORKER_OUTPUT] = state.to_wire()
        return
    reports = [(path, _junit_xml(compared)) for path, compared in state.junit.items()]
    reports += [(path, _markdown(compared)) for path, compared in state.markdown.items()]
    for path, text in reports:
        try:
            _write(path, text)
        except OSError as error:
            # A CI job must not pass on a gate report it could not write.
            reporter = session.config.pluginmanager.get_plugin("terminalreporter")
            if reporter is not None:
                reporter.write_line(f"evalkit: cannot write {path}: {error}", red=True)
            if session.exitstatus == pytest.ExitCode.OK:
                session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture
def evalkit_gate(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> EvalkitGate:
    """Call it to gate your retriever against a baseline, as ``evalkit gate`` does.

    ``evalkit_gate(goldset=..., baseline=..., retriever=..., measures=[...], ...)``
    (``GateSpec`` lists the arguments; an ``evalkit_gate`` marker gives their defaults).
    A regression fails the test; an inconclusive gate and a first run without a baseline
    skip it (configurable); a pass returns the ``GateOutcome``.
    """
    return EvalkitGate(request.node, tmp_path_factory)


class EvalkitGate:
    """What the ``evalkit_gate`` fixture returns: call it to run one gate."""

    def __init__(self, node: pytest.Item, tmp_path_factory: pytest.TempPathFactory) -> None:
        self._node = node
        self._config = node.config
        self._tmp_path_factory = tmp_path_factory
        self._root = node.config.rootpath

    def __call__(self, **options: Any) -> GateOutcome | None:
        """Gate with ``options`` (over the markers' arguments; see ``GateSpec``).

        Returns the ``GateOutcome`` when the gate passes (or is inconclusive under the
        ``pass`` policy), None after a first run that wrote the baseline under ``pass``;
        otherwise fails, skips or xfails the test.
        """
        __tracebackhide__ = True
        spec = self._spec(options)
        for name in _OUTCOMES:
            if getattr(spec, name) not in (None, *POLICIES):
                pytest.fail(
                    f"{FIXTURE}: {name}={getattr(spec, name)!r} must be one of "
                    f"{', '.join(POLICIES)}",
                    pytrace=False,
                )
        inconclusive = _policy(self._config, "inconclusive", spec.inconclusive)
        first_run = _policy(self._config, "first_run", spec.first_run)
        store_path = self._store_path()
        try:
            return self._gate(spec, store_path, inconclusive=inconclusive, first_run=first_run)
        except EvalkitError as error:
            failure = self._failure(error, store_path)
        # Outside the handler, so that the test shows evalkit's message alone.
        pytest.fail(failure, pytrace=False)

    def _failure(self, error: EvalkitError, store_path: Path) -> str:
        """What a test says when evalkit could not run its gate."""
        self._record("error", (str(error).splitlines() or [type(error).__name__])[0])
        hint = ""
        if isinstance(error, NotFoundError) and store_path == self._session.temporary_store:
            hint = (
                "\n(the gate's store is this session's temporary store: name another with "
                "evalkit_store / --evalkit-store, or give goldset= the goldset's files)"
            )
        code = error.exit_code
        return (
            f"evalkit gate could not decide ({_ERROR_KINDS.get(code, 'an error')}; "
            f"`evalkit gate` would exit {code}):\n{error}{hint}"
        )

    @property
    def _session(self) -> _Session:
        return self._config.stash.setdefault(_SESSION, _Session())

    def _spec(self, options: Mapping[str, Any]) -> GateSpec:
        merged: dict[str, Any] = {}
        for marker in self._node.iter_markers(FIXTURE):
            if marker.args:
                pytest.fail(
                    f"@pytest.mark.{FIXTURE} takes keyword arguments only "
                    f"(goldset=..., baseline=...), not {marker.args!r}",
                    pytrace=False,
                )
            for name, value in marker.kwargs.items():
                merged.setdefault(name, value)
        merged.update(options)
        known = [spec_field.name for spec_field in fields(GateSpec)]
        unknown = sorted(set(merged) - set(known))
        if unknown:
            pytest.fail(
                f"{FIXTURE}: unknown option(s) {', '.join(unknown)}; the options are "
                f"{', '.join(known)}",
                pytrace=False,
            )
        return GateSpec(**merged)

    def _store_path(self) -> Path:
        given = _option_path(self._config, "store")
        if given is not None:
            given.parent.mkdir(parents=True, exist_ok=True)
            return given
        session = self._session
        if session.temporary_store is None:
            session.temporary_store = self._tmp_path_factory.mktemp("evalkit") / "evalkit.duckdb"
        return session.temporary_store

    def _path(self, value: str | os.PathLike[str]) -> Path:
        return self._root / Path(value)

    def _report_path(self, value: str | os.PathLike[str] | None, option: str) -> Path | None:
        return self._path(value) if value is not None else _option_path(self._config, option)

    def _gate(
        self, spec: GateSpec, store_path: Path, *, inconclusive: str, first_run: str
    ) -> GateOutcome | None:
        __tracebackhide__ = True
        # Deferred: gating loads pandas, DuckDB and scipy, and a retriever built from its
        # options may load chroma or torch; a session that never gates pays for none of it.
        from evalkit.config import load_settings
        from evalkit.goldset.jsonl import QUERIES_FILE
        from evalkit.pipeline import (
            gate_against_baseline,
            gate_reports,
            record_baseline,
            resolve_goldset,
        )
        from evalkit.retrievers.factory import RetrieverOptions
        from evalkit.retrievers.plugins import FactorySource, PluginRetriever, adapt_retriever
        from evalkit.stats.render import (
            TABLE_HEADERS,
            coverage_note,
            table_rows,
        )
        from evalkit.store.access import StoreAccess

        settings = load_settings(store_path=store_path)
        if spec.goldset is None:
            raise ConfigError(
                f"{FIXTURE} needs goldset=: a goldset folder or file (jsonl, beir or trec, as "
                "`evalkit goldset import` reads) or the name of a goldset in the store"
            )
        access = StoreAccess.from_settings(settings, program="pytest")
        goldset: str | Goldset = resolve_goldset(
            access.for_reading() if store_path.exists() else None,
            spec.goldset,
            root=self._root,
            format=spec.goldset_format,
            name=spec.goldset_name,
            split=spec.split,
            topics=self._path(spec.topics) if spec.topics is not None else None,
        )
        subject: str | None = None
        if not isinstance(goldset, str):
            # JUnit's `file` names a file of the repository, as it is spelt there: the
            # queries of a goldset folder (jsonl, beir), else the file given (trec's qrels).
            source = Path(goldset.source)
            subject = str(source / QUERIES_FILE if self._path(source).is_dir() else source)
        baseline, missing = self._baseline(spec)
        given = spec.retriever
        candidate: Retriever | RetrieverOptions
        if isinstance(given, RetrieverOptions):
            _alone(spec, "RetrieverOptions")
            candidate = given
        elif given is None or isinstance(given, str):
            candidate = RetrieverOptions(**_retriever_fields(spec))
        else:
            _alone(spec, "a retriever object")
            made = type(given)
            origin = FactorySource(
                module=made.__module__, attribute=made.__qualname__, kind="object"
            )
            adapted = adapt_retriever(given, origin, settings, where_key=spec.where_key)
            candidate = PluginRetriever(adapted, given, origin, {})
        purpose = f"pytest {self._node.nodeid}"
        if missing is not None:
            with access.writer(purpose) as store:
                recorded = record_baseline(
                    store,
                    goldset,
                    candidate,
                    missing,
                    settings=settings,
                    measures=spec.measure_names,
                    k=spec.k,
                )
            reason = (
                f"no baseline yet: stored the candidate as {missing} (run "
                f"{recorded.run.run_id}); commit that file: later runs are gated against it, "
                "and a CI job that does not find it (its checkout is new every time) never "
                "gates"
            )
            self._record("first run", reason)
            _apply(first_run, reason)
            return None
        outcome = gate_against_baseline(
            access.for_work(purpose),
            baseline,
            candidate,
            policy=spec.policy,
            goldset=goldset,
            settings=settings,
            k=spec.k,
        )
        if subject is not None:
            outcome = replace(outcome, about=subject)
        junit = self._report_path(spec.junit, "junit")
        markdown = self._report_path(spec.markdown, "markdown")
        junit_suite, summary = gate_reports(outcome, dashboard_url=settings.alerts.dashboard_url)
        compared = _Compared(self._node.nodeid, junit_suite=junit_suite, markdown=summary)
        for path, reports_at in ((junit, self._session.junit), (markdown, self._session.markdown)):
            if path is not None:
                reports_at.setdefault(path.resolve(), []).append(compared)
        reports = "; ".join(
            f"{kind} {path}" for kind, path in (("JUnit", junit), ("Markdown", markdown)) if path
        )
        comparison = outcome.report.comparison
        rows = table_rows(comparison)
        decision = outcome.decision.value
        figures = ", ".join(f"{row[0]} {row[3]} {row[4]} p_adj {row[5]}" for row in rows)
        self._record(decision, figures + (f"; {reports}" if reports else ""))
        if decision == "regression":
            interval = f"{comparison.confidence:.0%} CI".replace("%", " %")
            headers = (*TABLE_HEADERS[:4], interval, *TABLE_HEADERS[5:])
            message = _regression_message(
                outcome, [headers, *rows], coverage_note(comparison), str(baseline), reports
            )
            pytest.fail(message, pytrace=False)
        if decision == "inconclusive":
            _apply(inconclusive, _inconclusive_reason(outcome))
        return outcome

    def _baseline(self, spec: GateSpec) -> tuple[RunReference, Path | None]:
        """The baseline's reference, and the file to write a first run to (None: it exists,
        or it is a stored run)."""
        if spec.baseline is None:
            raise ConfigError(
                f"{FIXTURE} needs baseline=: a TREC run file (written from the candidate on "
                "the first run) or a stored run id"
            )
        path = self._path(spec.baseline)
        named = RunReference.parse(str(path))
        if named.kind is not RunReferenceKind.STORED:
            return named, None  # a run export is imported, as `evalkit gate` does
        if isinstance(spec.baseline, str) and _RUN_ID.match(spec.baseline):
            return RunReference.stored(spec.baseline), None
        if path.exists():
            raise ConfigError(
                f"baseline {path} is neither a TREC run file nor a run export "
                "(`evalkit runs export RUN --format parquet`)"
            )
        return RunReference(str(path), RunReferenceKind.FILE), path

    def _record(self, verdict: str, detail: str) -> None:
        self._node.user_properties.append(("evalkit_gate", verdict))
        self._session.gates.append(_Gated(self._node.nodeid, verdict, detail))


def _junit_xml(compared: Sequence[_Compared]) -> str:
    """One ``<testsuites>`` holding each gate's ``<testsuite>`` as ``to_junit_xml`` writes it
    for ``evalkit gate --junit``, named after its test, with the totals of them all."""
    suites = ET.Element("testsuites", {"name": "evalkit gate"})
    for gate in compared:
        suite = ET.fromstring(gate.junit_suite)
        suite.set("name", f"evalkit gate: {gate.nodeid}")
        suites.append(suite)
    for total in ("tests", "failures", "errors", "skipped"):
        suites.set(total, str(sum(int(suite.get(total, "0")) for suite in suites)))
    times = [float(time) for suite in suites if (time := suite.get("time")) is not None]
    if len(times) == len(suites):
        suites.set("time", f"{sum(times):.3f}")
    ET.indent(suites)
    return _XML_DECLARATION + ET.tostring(suites, encoding="unicode") + "\n"


def _markdown(compared: Sequence[_Compared]) -> str:
    """Each gate's Markdown as ``to_markdown`` writes it for ``evalkit gate --markdown``,
    followed by the test that ran it."""
    sections = []
    for gate in compared:
        nodeid = gate.nodeid.replace("`", "'")
        sections.append(gate.markdown + f"\nTest: `{nodeid}`\n")
    return "\n".join(sections)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def _option_path(config: pytest.Config, name: str) -> Path | None:
    """The path option ``name``: from the command line (relative to where pytest started),
    else from the ini file (relative to its directory)."""
    given = config.getoption(f"evalkit_{name}", None)
    if given:
        return config.invocation_params.dir / Path(given)
    configured = config.getini(f"evalkit_{name}")
    if not configured:
        return None
    base = config.inipath.parent if config.inipath is not None else config.rootpath
    return base / Path(str(configured))


def _policy(config: pytest.Config, name: str, given: str | None) -> str:
    """The policy for ``name`` (``inconclusive`` or ``first_run``): the call's, else the
    command line's, else the ini file's; UsageError when it is not one of ``POLICIES``."""
    chosen = given or config.getoption(f"evalkit_{name}", None) or config.getini(f"evalkit_{name}")
    if chosen not in POLICIES:
        raise pytest.UsageError(
            f"evalkit_{name} = {chosen!r}: what {_OUTCOMES[name]} does must be one of "
            f"{', '.join(POLICIES)}"
        )
    return str(chosen)


def _apply(policy: str, reason: str) -> None:
    __tracebackhide__ = True
    if policy == "skip":
        pytest.skip(reason)
    if policy == "xfail":
        pytest.xfail(reason)
    if policy == "fail":
        pytest.fail(reason, pytrace=False)


def _retriever_fields(spec: GateSpec) -> dict[str, Any]:
    """``RetrieverOptions`` fields for a retriever named by a spec string, a URL or none."""
    options: dict[str, Any] = {
        "retriever": spec.retriever,
        "collection": spec.collection,
        "chroma_url": spec.chroma_url,
        "http_url": spec.http_url,
        "where_key": spec.where_key,
        "factory_options": spec.options,
    }
    if isinstance(spec.retriever, str) and spec.retriever.startswith(("http://", "https://")):
        if spec.http_url:
            raise ConfigError("give the HTTP retriever's URL once: retriever= or http_url=")
        options.update(retriever=None, http_url=spec.retriever)
    return options


def _alone(spec: GateSpec, what: str) -> None:
    """Refuse other ways of naming the retriever beside a ``retriever=`` that names it."""
    extra = [
        name
        for name in ("collection", "chroma_url", "http_url", "options")
        if getattr(spec, name) is not None
    ]
    if extra:
        raise ConfigError(
            f"retriever= is {what}, which names the retriever already; drop {', '.join(extra)}"
        )


def _regression_message(
    outcome: GateOutcome,
    table: Sequence[Sequence[str]],
    coverage: str,
    baseline: str,
    reports: str,
) -> str:
    """What a failed test says: the verdict, the table (headers, then the cells
    ``table_rows`` formats), the coverage, the worst-regressed queries and where the reports
    went."""
    report = outcome.report
    comparison = report.comparison
    widths = [max(len(row[column]) for row in table) for column in range(len(table[0]))]
    regressed = [m.measure for m in comparison.metrics if m.decision.value == "regression"]
    lines = [
        f"evalkit gate: REGRESSION on {', '.join(regressed)} (`evalkit gate` would exit "
        f"{outcome.exit_code}): dropped significantly, by more than the minimum effect "
        f"{comparison.min_effect:g}",
        f"baseline {baseline}; candidate run {outcome.candidate_run_id or report.candidate}",
        "",
        *(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
            for row in table
        ),
        "",
        coverage,
    ]
    for measure in report.measures:
        drops = report.worst_for(measure)
        if not drops:
            continue
        lines += ["", f"worst-regressed queries on {measure}:"]
        for drop in drops:
            lost = f"; relevant docs lost: {', '.join(drop.lost_docs)}" if drop.lost_docs else ""
            lines.append(
                f"  {drop.query_id}: {drop.baseline:.4f} -> {drop.candidate:.4f} "
                f"({drop.delta:+.4f}){lost}"
            )
    if reports:
        lines += ["", f"reports: {reports}"]
    return "\n".join(lines)


def _inconclusive_reason(outcome: GateOutcome) -> str:
    """Why the gate could not decide, on one line (a skip or xfail reason)."""
    # Runs only after a gate, so this costs nothing; deferred as _gate's (chroma, torch).
    from evalkit.stats.render import queries_needed_text

    comparison = outcome.report.comparison
    parts = []
    for metric in comparison.metrics:
        if metric.decision.value != "inconclusive":
            continue
        needed = (
            "queries needed to decide: "
            + queries_needed_text(metric, min_effect=comparison.min_effect)
            if metric.queries_needed
            else metric.queries_needed_note
        )
        parts.append(
            f"{metric.measure} delta {metric.delta:+.4f}, CI [{metric.ci_low:+.4f}, "
            f"{metric.ci_high:+.4f}], p_adj {metric.p_adjusted:.3g}, n {metric.n}"
            + (f" ({needed})" if needed else "")
        )
    return (
        f"evalkit gate: inconclusive (`evalkit gate` would exit {outcome.exit_code}): the data "
        f"neither show a significant drop nor rule out one larger than "
        f"{comparison.min_effect:g}: " + "; ".join(parts)
    )
