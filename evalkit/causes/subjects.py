"""What a stored drift check or alert is about: the two runs whose comparison
``explain_runs`` explains for it."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Final

from evalkit.causes.join import explain_runs
from evalkit.causes.records import Explanation
from evalkit.errors import ConfigError
from evalkit.records.requests import PAIRED_TEST_DEFAULTS, PairedTestSettings
from evalkit.store.drift import get_drift_check
from evalkit.store.runs import list_runs

if TYPE_CHECKING:
    from evalkit.store import Store
    from evalkit.store.alerts import StoredAlert

__all__ = ["explain_alert", "explain_drift_check"]

_INDEX_STREAMS: Final = ("documents", "model")
"""Drift checks of one collection's index (their subject), not of a traffic stream."""


def explain_drift_check(
    store: Store, check_id: str, *, test: PairedTestSettings = PAIRED_TEST_DEFAULTS
) -> Explanation:
    """The probable causes behind a stored drift check (``explain_runs``, with ``test``).

    A precision or metric check names its runs; any other is resolved to the newest finished
    goldset run before it on its collection (a query check: any goldset run when none searched
    its subject) and that run's ``previous_run``. A documents or model check of a collection
    no run searched is a ``ConfigError``.
    """
    check = get_drift_check(store, check_id)
    if check.stream in ("precision", "metric"):
        if not (check.reference and check.current):
            raise ConfigError(
                f"{check.stream} check {check.check_id} names no baseline and current run: "
                "`evalkit drift precision` and the drift_check job record them"
            )
        # A metric check (the drift_check job's stream) is of "goldset:measure".
        measure = (
            check.details.get("measure")
            if check.stream == "precision"
            else (check.subject or "").rpartition(":")[2]
        )
        return _about(
            explain_runs(
                store,
                check.current,
                baseline=check.reference,
                measures=[str(measure)] if measure else None,
                test=test,
            ),
            drift_check=check.check_id,
        )
    # Only goldset runs have judgments to lose: a traffic window's replay (what a query check
    # compares) is a run too, but has no measure to explain.
    finished = [
        run
        for run in list_runs(store, limit=500)
        if run.status in ("complete", "partial")
        and run.started_at <= check.created_at
        and run.spec.goldset_name is not None
    ]
    near = [run for run in finished if run.spec.collection == check.subject]
    if not near and check.stream in _INDEX_STREAMS and check.subject:
        # A check of one collection's index says nothing of a run that searched another.
        raise ConfigError(
            f"drift check {check.check_id} is of collection {check.subject!r} "
            f"({check.stream}), and no finished goldset run searched it before the check: "
            f"`evalkit explain RUN` explains a run of it made since"
        )
    near = near or finished
    if not near:
        raise ConfigError(
            f"drift check {check.check_id} was made before any finished run: there is no "
            "regression to explain yet"
        )
    return _about(explain_runs(store, near[0].run_id, test=test), drift_check=check.check_id)


def explain_alert(
    store: Store, alert: StoredAlert, *, test: PairedTestSettings = PAIRED_TEST_DEFAULTS
) -> Explanation:
    """The probable causes behind a stored alert whose evidence names its runs
    (``candidate_run``, and ``baseline_run`` or else the candidate's ``previous_run``),
    compared with the paired ``test`` (``explain_runs``)."""
    evidence = alert.evidence
    candidate = evidence.get("candidate_run")
    if not isinstance(candidate, str):
        raise ConfigError(
            f"alert {alert.alert_id} ({alert.kind}) names no candidate run in its evidence: "
            "probable causes are joined for alerts about runs"
        )
    baseline = evidence.get("baseline_run")
    measure = evidence.get("metric")
    explanation = explain_runs(
        store,
        candidate,
        baseline=baseline if isinstance(baseline, str) else None,
        measures=[measure] if isinstance(measure, str) else None,
        test=test,
    )
    return _about(explanation, alert=alert.alert_id)


def _about(explanation: Explanation, **about: str) -> Explanation:
    return replace(explanation, about={**explanation.about, **about})
