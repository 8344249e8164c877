"""What every rule kind shares: the context an evaluator gets, the kind record, the registry
``RULE_KINDS``, the base of the parameter models, the stored-verdict shortcut, and the goldset
runs the run-watching kinds read."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from pydantic import BaseModel, ConfigDict

from evalkit.alerts.model import Signal
from evalkit.records import AlertSeverity
from evalkit.registry import register_named
from evalkit.store.runs import list_runs

if TYPE_CHECKING:
    from evalkit.store.alerts import StoredAlertState
    from evalkit.store.runs import RunRecord
    from evalkit.store.store import Store

__all__ = [
    "RULE_KINDS",
    "RuleContext",
    "RuleKind",
    "RuleParams",
    "close_unwatched",
    "describe_params",
    "goldset_runs",
    "iso",
    "register_rule_kind",
    "stored_verdict",
]


@dataclass(frozen=True, slots=True)
class RuleContext:
    """What an evaluator gets besides its parameters.

    ``previous`` holds the stored state of this rule's keys by subject, so an evaluator can
    report a subject that no longer has findings as cleared. ``jobs`` names the jobs of the
    configuration file, None when it has none (it evaluates the jobs another file runs).
    """

    store: Store
    now: datetime
    rule: str
    previous: Mapping[str, StoredAlertState]
    dashboard_url: str | None = None
    jobs: frozenset[str] | None = None

    def dashboard(self, page: str, **query: str) -> dict[str, str]:
        """A dashboard link (as ``{"dashboard": url}``) when a dashboard URL is configured."""
        if not self.dashboard_url:
            return {}
        return {"dashboard": f"{self.dashboard_url.rstrip('/')}/{page}?{urlencode(query)}"}


@dataclass(frozen=True, slots=True)
class RuleKind:
    """A rule kind: its configuration model and evaluator."""

    name: str
    params: type[BaseModel]
    evaluate: Callable[[RuleContext, Any], list[Signal]]
    description: str


RULE_KINDS: dict[str, RuleKind] = {}
"""Rule kinds by name (see the module docstring)."""


def register_rule_kind(kind: RuleKind) -> None:
    """Make a rule kind available to ``[[alerts.rules]]`` (a name is registered once)."""
    register_named(RULE_KINDS, kind, what="rule kind")


class RuleParams(BaseModel):
    """Base of the ``[[alerts.rules]]`` parameter models: unknown fields are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def goldset_runs(
    store: Store,
    goldset: str | None,
    *,
    label: str | None,
    limit: int,
    statuses: tuple[str, ...] = ("complete",),
    retriever: str | None = None,
) -> list[RunRecord]:
    """The goldset runs a rule watches, newest first: of ``goldset``, in one of
    ``statuses``, with ``label`` and of one ``retriever`` (``RunRecord.retriever_id``) when
    given; at most ``limit`` of each retriever.

    The filters are part of the query: taking the newest runs of the goldset first and
    filtering them after would lose the watched runs behind a sweep of other labels or
    retrievers, and the rule would see nothing to compare.
    """
    return list_runs(
        store,
        goldset=goldset,
        status=statuses,
        kind="goldset",
        label=label,
        retriever=retriever,
        limit=limit,
        limit_per_retriever=True,
    )


def iso(moment: datetime | None) -> str | None:
    """``moment`` (naive UTC) as ISO 8601 with a ``Z``, or None."""
    return f"{moment.isoformat()}Z" if moment is not None else None


def close_unwatched(ctx: RuleContext, watches: Callable[[str], bool], why: str) -> list[Signal]:
    """Signals that close the open keys of this rule whose subject ``watches`` rejects: the
    rule's configuration changed (``why``), so nothing would ever evaluate, or resolve,
    them again."""
    return [
        Signal(
            subject=subject,
            active=False,
            title=f"{subject}: no longer watched by this rule",
            summary=f"Closed without evaluation: {why}.",
            evidence={"closed": f"{subject} is no longer watched: {why}"},
        )
        for subject, state in sorted(ctx.previous.items())
        if (state.active or state.notified_status == "firing") and not watches(subject)
    ]


def stored_verdict(ctx: RuleContext, subject: str, inputs: Mapping[str, Any]) -> Signal | None:
    """The stored verdict of ``subject`` when it was reached from the same ``inputs``.

    Paired comparisons cost a bootstrap; a restarted service (or a rule evaluated again
    before anything new was stored) reads the verdict it stored instead of recomputing it.
    """
    state = ctx.previous.get(subject)
    if state is None or not state.title:
        return None
    if any(state.evidence.get(name) != value for name, value in inputs.items()):
        return None
    return Signal(
        subject=subject,
        active=state.active,
        title=state.title,
        summary=state.summary,
        severity=AlertSeverity(state.severity) if state.severity else None,
        evidence=dict(state.evidence),
        links=dict(state.links),
    )


def describe_params(params: BaseModel) -> dict[str, Any]:
    """A rule's parameters as JSON-able values (for listings)."""
    return dict(json.loads(params.model_dump_json()))
