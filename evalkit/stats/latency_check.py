"""The latency check of two runs: their replay latencies read from the store and compared
(``evalkit.stats.latency``), or why there is nothing to compare; and the check as the gate
shows it.

Only answered queries' latencies count (a failed query's time is how long it took to give
up). A TREC run file records none and an imported run was timed elsewhere, so neither is
compared; a run timed a batch at a time, or with fewer than two distinct values, is "not
measurable". Each case is skipped with a note saying why.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd

from evalkit.config.types import quantile_name
from evalkit.retrievers.base import BATCH_SHARE, latency_timing
from evalkit.stats.decision import Decision
from evalkit.stats.latency import (
    DEFAULT_CONFIDENCE,
    DEFAULT_RESAMPLES,
    LatencyComparison,
    compare_latency,
    percent,
    quantile_level,
)
from evalkit.store.runs import get_run, run_queries

if TYPE_CHECKING:
    from evalkit.store import Store

__all__ = ["LatencyCheck", "RunLatencies", "add_latency_case", "check_latency", "run_latencies"]


@dataclass(frozen=True, slots=True)
class RunLatencies:
    """One run's per-query replay latencies (milliseconds by query id), or why it has none
    to compare (``missing``, which says "not measurable" and why when the run has latencies
    that are no measurement of each query)."""

    reference: str
    run_id: str | None
    latencies: pd.Series | None = field(default=None, repr=False, compare=False)
    missing: str | None = None


def run_latencies(store: Store | None, reference: str, run_id: str | None) -> RunLatencies:
    """The latencies of the run ``reference`` names (``run_id`` when it is a stored run).

    Missing, with the reason, for a run file, an imported run, a run with no latency of an
    answered query, a run whose retriever did not time each query alone (``latency_timing``
    ``batch_share``: every query of a batch carries the batch's average) and a run whose
    latencies take fewer than two distinct values (a quantile's interval would be a point).
    """
    if run_id is None or store is None:
        return RunLatencies(reference, None, missing=f"{reference} is a run file: no latency")
    run = get_run(store, run_id)
    if run.imported_from is not None:
        return RunLatencies(
            reference,
            run.run_id,
            missing=f"run {run.run_id} was imported from {run.imported_from}: its latencies "
            "were measured elsewhere",
        )
    config = run.spec.retriever_config
    if latency_timing(config) == BATCH_SHARE:
        return RunLatencies(reference, run.run_id, missing=_batch_share(run.run_id, config))
    queries = run_queries(store, run.run_id)
    answered = queries[queries["error"].isna() & queries["latency_ms"].notna()]
    if answered.empty:
        return RunLatencies(
            reference,
            run.run_id,
            missing=f"run {run.run_id} records no latency of an answered query",
        )
    distinct = answered["latency_ms"].nunique()
    if distinct < 2:
        return RunLatencies(
            reference,
            run.run_id,
            missing=f"not measurable: the {len(answered):,} latencies of run {run.run_id} "
            f"take {distinct} distinct value: an interval of their quantile would be one "
            "point, and a point is no evidence",
        )
    latencies = pd.Series(
        answered["latency_ms"].to_numpy(dtype="float64"),
        index=pd.Index(answered["query_id"].astype(str), name="query_id"),
        name="latency_ms",
    )
    return RunLatencies(reference, run.run_id, latencies)


def _batch_share(run_id: str, config: Mapping[str, Any]) -> str:
    """Why a run's latencies cannot be compared: its retriever searched several queries in
    one request and gave each its share of the request's time, so every query of a batch
    carries one value, a quantile lands on a batch's average, and a batch that ran slower
    moves every query in it at once (an unchanged Chroma collection gated inconclusive,
    and an alert rule fired on 4 of 12 quiet days)."""
    batch_size = config.get("batch_size")
    size = f"{batch_size} at a time" if isinstance(batch_size, int) else "a batch at a time"
    advice = (
        "its LangChain retriever sends no start and end events to time a query by (its class "
        "replaces invoke or batch): time each query in the retriever, or replay its store "
        "through evalkit's own adapter"
        if config.get("kind") == "langchain"
        else "replay it: evalkit's Chroma, pgvector and Qdrant retrievers now time each query "
        "alone (latency_timing per_query)"
    )
    return (
        f"not measurable: run {run_id} timed its queries {size} (each query's latency is its "
        f"share of its batch's time, not its own), so they cannot be compared query by query; "
        f"{advice}"
    )


@dataclass(frozen=True, slots=True)
class LatencyCheck:
    """The latency verdict of a candidate against a baseline, or why it was skipped.

    ``comparison`` is None when ``skipped`` says why (a run file, an imported run, a run
    without latencies); ``notes`` carry what else is known (a probable cause: the index grew).
    """

    baseline: str
    candidate: str
    quantile: str
    max_increase: float
    comparison: LatencyComparison | None = None
    skipped: str | None = None
    notes: tuple[str, ...] = ()

    @property
    def decision(self) -> Decision | None:
        """The comparison's decision; None when the check was skipped."""
        return self.comparison.decision if self.comparison is not None else None

    def summary(self) -> str:
        """One line: the comparison's summary, or why the check was skipped."""
        if self.comparison is None:
            return f"latency check skipped: {self.skipped}"
        return self.comparison.summary()

    def lines(self) -> list[str]:
        """The summary, then the comparison's note and the check's notes."""
        note = self.comparison.note if self.comparison is not None else None
        return [self.summary(), *([f"note: {note}"] if note else []), *self.notes]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: settings, ``decision`` (null when skipped), ``skipped``, the
        comparison's figures and ``notes``."""
        return {
            "baseline": self.baseline,
            "candidate": self.candidate,
            "quantile": self.quantile,
            "max_increase": self.max_increase,
            "decision": self.decision.value if self.decision is not None else None,
            "skipped": self.skipped,
            "comparison": self.comparison.to_dict() if self.comparison is not None else None,
            "notes": list(self.notes),
        }

    def to_markdown(self) -> str:
        """A ``### Latency`` section for the gate's summary."""
        lines = ["### Latency", ""]
        compared = self.comparison
        if compared is None:
            lines.append(f"Skipped: {self.skipped}.")
        else:
            confidence = f"{round(compared.confidence * 100)} % CI"
            lines += [
                f"| quantile | baseline | candidate | increase | {confidence} | allowed "
                "| n (paired) | decision |",
                "|---|---:|---:|---:|---|---:|---:|---|",
                f"| {compared.quantile} | {compared.baseline_ms:.4g} ms | "
                f"{compared.candidate_ms:.4g} ms | {percent(compared.increase)} | "
                f"[{percent(compared.ci_low)}, {percent(compared.ci_high)}] | "
                f"{percent(compared.max_increase)} | {compared.n_paired:,} | "
                + (
                    f"**{compared.decision.value}**"
                    if compared.decision is not Decision.PASS
                    else compared.decision.value
                )
                + " |",
                "",
                f"Bootstrap of the {compared.quantile} ratio, paired by query "
                f"({compared.n_baseline_only:,} baseline-only and {compared.n_candidate_only:,} "
                f"candidate-only queries resampled apart), {compared.resamples:,} resamples, "
                f"seed {compared.seed}.",
            ]
        notes = [compared.note] if compared is not None and compared.note else []
        bullets = [f"- note: {note}" for note in notes] + [f"- {note}" for note in self.notes]
        lines += ["", *bullets] if bullets else []
        return "\n".join(lines).rstrip() + "\n"


def check_latency(
    baseline: RunLatencies,
    candidate: RunLatencies,
    *,
    quantile: str,
    max_increase: float,
    confidence: float = DEFAULT_CONFIDENCE,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> LatencyCheck:
    """Compare two runs' latencies (``compare_latency``, paired by query id), or skip with
    the reason when either run has none."""
    name = quantile_name(quantile_level(quantile))
    skipped = baseline.missing or candidate.missing
    if skipped is not None or baseline.latencies is None or candidate.latencies is None:
        return LatencyCheck(
            baseline.reference,
            candidate.reference,
            name,
            max_increase,
            skipped=skipped or "no latency",
        )
    return LatencyCheck(
        baseline.reference,
        candidate.reference,
        name,
        max_increase,
        comparison=compare_latency(
            baseline.latencies,
            candidate.latencies,
            quantile=name,
            max_increase=max_increase,
            confidence=confidence,
            resamples=resamples,
            seed=seed,
        ),
    )


def add_latency_case(junit_xml: str, check: LatencyCheck) -> str:
    """``junit_xml`` (``to_junit_xml``'s suite) with a ``latency <quantile>`` test case: a
    ``<failure>`` on a regression, ``<skipped>`` when inconclusive or not checked; the
    suite's counts follow."""
    suite = ET.fromstring(junit_xml)
    attributes = {"classname": "evalkit.gate", "name": f"latency {check.quantile}"}
    if "file" in suite.attrib:
        attributes["file"] = suite.attrib["file"]
    case = ET.Element("testcase", attributes)
    outputs = [index for index, child in enumerate(suite) if child.tag.startswith("system-")]
    suite.insert(outputs[0] if outputs else len(suite), case)
    text = "\n".join(check.lines())
    suite.set("tests", str(int(suite.get("tests", "0")) + 1))
    if check.decision is Decision.REGRESSION:
        failure = ET.SubElement(
            case, "failure", {"type": "latency regression", "message": check.summary()}
        )
        failure.text = text
        suite.set("failures", str(int(suite.get("failures", "0")) + 1))
    elif check.decision is not Decision.PASS:
        ET.SubElement(case, "skipped", {"message": check.summary()})
        suite.set("skipped", str(int(suite.get("skipped", "0")) + 1))
    ET.SubElement(case, "system-out").text = text
    ET.indent(suite)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suite, encoding="unicode") + "\n"
    )
