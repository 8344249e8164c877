"""The gate: a baseline against a candidate run or a live retriever."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Final

from evalkit.causes import Explanation, explain_comparison, index_growth
from evalkit.config import load_settings
from evalkit.errors import ConfigError, InputError, RetrieverError, StoreError
from evalkit.goldset.jsonl import QUERIES_FILE
from evalkit.goldset.model import Goldset
from evalkit.metrics.defaults import DefaultMeasures, default_measures_for
from evalkit.pipeline.compared_runs import comparison_judgments, resolve_run, score_reference
from evalkit.pipeline.goldset_run import run_goldset
from evalkit.pipeline.runs import RunOutcome, _session, default_measures
from evalkit.records.requests import GATE_DEFAULTS, GatePolicy, GoldsetRunRequest, measure_names
from evalkit.records.run_reference import RunReference, RunReferenceKind
from evalkit.retrievers.base import SupportsRetrieve
from evalkit.retrievers.factory import RetrieverOptions, build_retriever
from evalkit.stats.compare import ComparisonReport, RunFile, compare_scored
from evalkit.stats.decision import Decision, overall_decision
from evalkit.stats.latency_check import (
    LatencyCheck,
    RunLatencies,
    add_latency_case,
    check_latency,
    run_latencies,
)
from evalkit.stats.render import to_junit_xml, to_markdown
from evalkit.store import RunRecord, Store
from evalkit.store.access import WriterAccess
from evalkit.store.export import export_run
from evalkit.store.goldsets import load_stored_goldset
from evalkit.store.runs import get_run

if TYPE_CHECKING:
    from evalkit.config import Settings

GATE_EXIT_CODES: Final[Mapping[str, int]] = MappingProxyType(
    {"pass": 0, "regression": 1, "inconclusive": 4}
)
"""The exit code of ``evalkit gate`` for each decision (bad input exits 2, a retriever or
store failure 3: ``EvalkitError.exit_code``)."""

GATE_CANDIDATE_LABEL: Final = "gate candidate"
"""The label of the run a gate records when it replays a live candidate."""


@dataclass(frozen=True, slots=True)
class GateOutcome:
    """A gate's comparison, and the run it recorded when the candidate was a live retriever
    (None when the candidate was a stored run or a run file)."""

    report: ComparisonReport
    candidate_run: RunRecord | None = None
    seconds: float | None = None
    """How long the gate took, the candidate's replay included."""
    about: str | None = None
    """What the comparison is about, for JUnit's ``file``: the goldset's source, the qrels
    file, or the baseline run file."""
    explanation: Explanation | None = None
    """The probable causes of the difference (``explain_comparison``), when both runs are
    stored runs (a run export is imported as one); None when either is a TREC run file."""
    default_measures: DefaultMeasures | None = None
    """The default measures the live candidate's run was scored on besides the compared
    ones, with those adapted to its k (None without a live candidate)."""
    latency: LatencyCheck | None = None
    """The latency check, when the policy sets ``max_latency_increase`` (skipped, with the
    reason, for runs without latencies)."""

    @property
    def decision(self) -> Decision:
        """The overall verdict: ``regression``, ``inconclusive`` or ``pass``, of the quality
        comparison and the latency check together (the most severe wins)."""
        latency = self.latency.decision if self.latency is not None else None
        return overall_decision([self.report.decision, *([latency] if latency else [])])

    @property
    def exit_code(self) -> int:
        """What ``evalkit gate`` exits with for this verdict."""
        return GATE_EXIT_CODES[self.decision.value]

    @property
    def candidate_run_id(self) -> str | None:
        """The id of the live candidate's stored run, if one was replayed."""
        return self.candidate_run.run_id if self.candidate_run is not None else None


def replay_candidate(
    store: WriterAccess,
    goldset: Goldset,
    retriever: SupportsRetrieve | RetrieverOptions,
    *,
    settings: Settings,
    measures: Sequence[str] = (),
    k: int | None = None,
    label: str = GATE_CANDIDATE_LABEL,
    progress: Callable[[int, int], None] | None = None,
    allow_partial: bool = False,
) -> RunOutcome:
    """Replay ``goldset`` against a live candidate and store the run (``run_goldset``, no answers)
    on the default measures for ``k`` plus ``measures``. Raises RetrieverError unless every
    query was answered, or with ``allow_partial`` unless at least one was.
    """
    depth = settings.k if k is None else k
    wanted = list(dict.fromkeys([*default_measures(depth), *measure_names(measures)]))
    outcome = run_goldset(
        store,
        # The gate decides on retrieval metrics; judging answers would only add cost.
        GoldsetRunRequest.from_settings(
            settings, k=depth, measures=wanted, label=label, answers=False
        ),
        settings,
        retriever,
        goldset=goldset,
        build=partial(build_retriever, retriever, settings)
        if isinstance(retriever, RetrieverOptions)
        else None,
        progress=progress,
    )
    accepted = ("complete", "partial") if allow_partial else ("complete",)
    if outcome.run.status not in accepted:
        raise RetrieverError(
            f"the candidate run {outcome.run.run_id} is {outcome.run.status}: "
            f"{outcome.run.error}. The gate needs every query answered, and leaving a "
            "failed query out would hide the worst outcome: replay once the retriever "
            "answers them, or count each failed query as 0 (failed_as_zero)."
        )
    return dataclasses.replace(outcome, default_measures=default_measures_for(depth))


def gate_against_baseline(
    store: WriterAccess | None,
    baseline: str | RunReference,
    candidate: str | RunReference | SupportsRetrieve | RetrieverOptions,
    *,
    policy: GatePolicy = GATE_DEFAULTS,
    goldset: str | Goldset | None = None,
    qrels: Path | None = None,
    settings: Settings | None = None,
    k: int | None = None,
    label: str = GATE_CANDIDATE_LABEL,
    progress: Callable[[int, int], None] | None = None,
) -> GateOutcome:
    """The gate's workflow (``evalkit gate``, ``evalkit compare``, the pytest plugin; docs/gate.md).

    ``baseline`` and a string/``RunReference`` ``candidate`` are run references; any other
    candidate is a live retriever replayed on ``goldset`` (``replay_candidate``) labelled
    ``label``. Both are scored with ``comparison_judgments``; ``store`` is held for the scoring
    only. The verdict is the more severe of ``compare_scored`` and ``check_latency`` (``policy``).
    """
    started = time.perf_counter()
    measures = policy.measures
    replayed: RunRecord | None = None
    defaults: DefaultMeasures | None = None
    gold: Goldset | None = goldset if isinstance(goldset, Goldset) else None
    baseline = RunReference.parse(baseline)
    with _session(store, "gate") as opened:
        judgments = comparison_judgments(opened, goldset, qrels)
        # A judged query the baseline's run file has no line for is taken as not asked (a
        # query added to the goldset since), never as a 0 the candidate would gain on.
        base = score_reference(
            opened, resolve_run(opened, baseline), measures, judgments=judgments, complete=False
        )
        reference: str | RunFile
        if isinstance(candidate, str | RunReference):
            reference = resolve_run(opened, candidate)
        elif goldset is None or opened is None:
            raise ConfigError("a live candidate needs `goldset` NAME to replay")
        else:
            gold = gold or load_stored_goldset(opened, str(goldset))
    if not isinstance(candidate, str | RunReference) and store is not None and gold is not None:
        # Replayed as `evalkit run` replays, the store given back meanwhile: writing each
        # batch into a store held open slowed every query (p50 1.7 ms against `evalkit
        # run`'s 1.0 ms), which a latency gate took for a regression of the candidate.
        live = replay_candidate(
            store,
            gold,
            candidate,
            settings=settings or load_settings(),
            measures=measures,
            k=k,
            label=label,
            progress=progress,
            allow_partial=policy.failed_as_zero,
        )
        replayed, defaults = live.run, live.default_measures
        reference = replayed.run_id
    with _session(store, "gate") as opened:
        cand = score_reference(opened, reference, measures, judgments=judgments)
        latencies = (
            (
                run_latencies(opened, base.reference, base.run_id),
                run_latencies(opened, cand.reference, cand.run_id),
            )
            if policy.max_latency_increase is not None
            else None
        )
    report = compare_scored(
        base,
        cand,
        measures,
        policy.paired_test,
        worst=policy.worst,
        failed_as_zero=policy.failed_as_zero,
    )
    latency = _latency_check(latencies, policy)
    explanation = None
    if base.run_id is not None and cand.run_id is not None:
        with _session(store, "gate") as opened:
            if opened is not None:
                explanation = explain_comparison(opened, report)
                latency = _latency_causes(opened, latency, base.run_id, cand.run_id)
    return GateOutcome(
        report=report,
        candidate_run=replayed,
        seconds=time.perf_counter() - started,
        about=_gate_subject(gold, qrels, baseline),
        explanation=explanation,
        default_measures=defaults,
        latency=latency,
    )


def _latency_check(
    latencies: tuple[RunLatencies, RunLatencies] | None, policy: GatePolicy
) -> LatencyCheck | None:
    """The policy's latency check of the two runs' latencies (None when it sets none)."""
    if latencies is None or policy.max_latency_increase is None:
        return None
    return check_latency(
        *latencies,
        quantile=policy.latency_quantile,
        max_increase=policy.max_latency_increase,
        resamples=policy.resamples,
        seed=policy.seed,
    )


def _latency_causes(
    store: Store, latency: LatencyCheck | None, baseline: str, candidate: str
) -> LatencyCheck | None:
    """``latency`` with the index's growth noted as a probable cause where the quantile rose
    and the index grew (``index_growth``)."""
    compared = latency.comparison if latency is not None else None
    if latency is None or compared is None or not compared.increase > 0:
        return latency
    grew = index_growth(get_run(store, baseline), get_run(store, candidate))
    if grew is None:
        return latency
    return dataclasses.replace(
        latency, notes=(*latency.notes, f"probable cause [index_grew]: {grew.statement}")
    )


def _below_working_directory(path: Path) -> str:
    """``path`` relative to the working directory when it lies below it: a goldset's source
    is stored absolute, and CI annotates the checkout's files by their relative paths."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _gate_subject(gold: Goldset | None, qrels: Path | None, baseline: RunReference) -> str | None:
    """The file a gate's verdict is about: the goldset's queries file (its source, when that
    is a file), else the qrels file, else the baseline run file (None when the baseline is a
    stored run id). CI reporters annotate files, not folders."""
    if gold is not None and gold.source:
        source = Path(gold.source)
        if source.is_dir() and (source / QUERIES_FILE).is_file():
            source = source / QUERIES_FILE
        return _below_working_directory(source)
    if qrels is not None:
        return str(qrels)
    named_file = baseline.kind is not RunReferenceKind.STORED and baseline.path.is_file()
    return baseline.text if named_file else None


def gate_reports(outcome: GateOutcome, *, dashboard_url: str | None = None) -> tuple[str, str]:
    """The gate's JUnit XML (``to_junit_xml``, with the gate's ``time`` and ``file``) and
    Markdown summary (``to_markdown``). Under a verdict other than pass both carry the
    probable causes, linked under ``dashboard_url`` (in the JUnit failures' text and the
    suite's output)."""
    report = outcome.report
    explained = outcome.explanation if report.decision is not Decision.PASS else None
    junit = to_junit_xml(
        report.comparison,
        time=outcome.seconds,
        file=outcome.about,
        details=explained.to_text(dashboard_url) if explained is not None else None,
    )
    summary = to_markdown(report.comparison, worst=report.worst_queries)
    if explained is not None:
        summary = summary.rstrip() + "\n\n" + explained.to_markdown(dashboard_url)
    if outcome.latency is not None:
        junit = add_latency_case(junit, outcome.latency)
        summary = _with_latency(summary, outcome)
    return junit, summary


def _with_latency(summary: str, outcome: GateOutcome) -> str:
    """The Markdown summary with the latency section, and, when the latency check changes
    the verdict, the overall verdict first and the quality verdict named as such."""
    latency = outcome.latency
    if latency is None:
        return summary
    quality = outcome.report.decision.value.upper()
    if outcome.decision is not outcome.report.decision:
        summary = summary.replace(
            f"**Gate: {quality}** -",
            f"**Gate: {outcome.decision.value.upper()}** - latency: {latency.summary()}.\n\n"
            f"Quality: **{quality}** -",
            1,
        )
    return summary.rstrip() + "\n\n" + latency.to_markdown()


def write_gate_reports(
    outcome: GateOutcome,
    *,
    junit: Path | None = None,
    markdown: Path | None = None,
    dashboard_url: str | None = None,
) -> None:
    """Write the gate's reports (``gate_reports``) where asked, creating their directories; a
    report that cannot be written raises InputError (a bad path) or StoreError (a full disk)
    naming the report and the verdict it would have carried.
    """
    junit_xml, summary = gate_reports(outcome, dashboard_url=dashboard_url)
    for kind, path, text in (("JUnit", junit, junit_xml), ("Markdown", markdown, summary)):
        if path is None:
            continue
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        except OSError as error:
            misplaced = (FileExistsError, IsADirectoryError, NotADirectoryError, PermissionError)
            refused = InputError if isinstance(error, misplaced) else StoreError
            raise refused(
                f"cannot write the gate's {kind} report {path}: "
                f"{error.strerror or error}{f' ({error.filename})' if error.filename else ''}. "
                f"The gate decided {outcome.decision.value} (exit {outcome.exit_code}); give "
                "a path where the report can be written"
            ) from error


def record_baseline(
    store: Store,
    goldset: str | Goldset,
    retriever: SupportsRetrieve | RetrieverOptions,
    path: Path,
    *,
    settings: Settings,
    measures: Sequence[str] = (),
    k: int | None = None,
    label: str = GATE_CANDIDATE_LABEL,
) -> RunOutcome:
    """A gate's first run, with no baseline yet: replay the live candidate on ``goldset`` (a
    stored goldset's name or a loaded ``Goldset``) with ``replay_candidate``, so only a
    complete run qualifies, and write its run as the TREC run file ``path``, the baseline of
    the gates that follow."""
    gold = goldset if isinstance(goldset, Goldset) else load_stored_goldset(store, goldset)
    outcome = replay_candidate(
        store, gold, retriever, settings=settings, measures=measures, k=k, label=label
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    export_run(store, outcome.run.run_id, format="trec", output=path, overwrite=True)
    return outcome
