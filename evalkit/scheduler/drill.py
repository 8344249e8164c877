"""An incident drill: the user's own jobs and rules, run against scratch copies of the Chroma
collections they name, through quiet cycles and then each incident in turn.

A cycle runs every job once, as ``evalkit jobs run --local`` does, then evaluates the rules
at the cycle's simulated day, as ``evalkit serve`` does between jobs. An incident is injected
into the copies, followed for up to ``cycles`` cycles until a rule fires, then restored (the
copies made afresh from the live collections) and followed until its alerts resolve.
Everything the drill writes lands in its own store under ``<home>/drills/<id>/``; its alerts
go to no sink. The live collections are only read.
"""

from __future__ import annotations

import functools
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from evalkit.alerts import evaluate_rules
from evalkit.alerts.model import Alert, AlertStatus
from evalkit.clock import utc_now
from evalkit.config import load_settings
from evalkit.config.sources import read_config_file
from evalkit.drill.config import collections_named, pointed_at_copies
from evalkit.drill.incidents import INCIDENTS, Injected, inject
from evalkit.drill.scratch import ScratchCopies
from evalkit.errors import ConfigError
from evalkit.scheduler.config import service_config
from evalkit.scheduler.job_kinds.evaluation import GoldsetReplayParams
from evalkit.scheduler.runner import JobRunner, NotStarted
from evalkit.store import Store
from evalkit.store.access import StoreAccess
from evalkit.store.goldsets import list_goldsets, load_stored_goldset, save_goldset

if TYPE_CHECKING:
    from evalkit.config import Settings
    from evalkit.scheduler.config import ServiceConfig

__all__ = ["DrillReport", "DrillRequest", "IncidentResult", "run_drill"]

CYCLE = timedelta(days=1)
"""The simulated time between two cycles, at which the rules are evaluated."""


@dataclass(frozen=True, slots=True)
class DrillRequest:
    """What to rehearse: ``incidents`` as (name, severity or None for its default), after
    ``quiet_cycles``, each followed for at most ``cycles``; ``seed`` fixes every choice."""

    incidents: tuple[tuple[str, float | None], ...]
    quiet_cycles: int = 3
    cycles: int = 3
    seed: int = 0
    drill_id: str = field(
        default_factory=lambda: f"{utc_now():%Y%m%dT%H%M%S}-{secrets.token_hex(2)}"
    )

    def __post_init__(self) -> None:
        unknown = [name for name, _ in self.incidents if name not in INCIDENTS]
        if unknown:
            raise ConfigError(
                f"unknown incident {unknown[0]!r}; the incidents are: {', '.join(INCIDENTS)}"
            )
        if self.quiet_cycles < 1 or self.cycles < 1:
            raise ConfigError("a drill needs at least one quiet cycle and one cycle per incident")


@dataclass(frozen=True, slots=True)
class IncidentResult:
    """One incident: what was injected, the first alert it raised (rule and cycle, 1 being
    the first after the injection; None: not detected within the drill's cycles), and how
    many cycles after the restore its alerts took to resolve (None: not within them)."""

    injected: Injected
    first_alert: tuple[str, int] | None
    alerts: tuple[str, ...]
    resolved_after: int | None

    @property
    def detected(self) -> bool:
        """Whether a rule fired within the drill's cycles."""
        return self.first_alert is not None


@dataclass(frozen=True, slots=True)
class DrillReport:
    """A drill's outcome: the copies it made, the alerts its quiet cycles raised (false
    alarms), and each incident's result."""

    drill_id: str
    copies: Mapping[str, str]
    store: str
    quiet_cycles: int
    false_alarms: tuple[str, ...]
    incidents: tuple[IncidentResult, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "drill_id": self.drill_id,
            "copies": dict(self.copies),
            "store": self.store,
            "quiet_cycles": self.quiet_cycles,
            "false_alarms": list(self.false_alarms),
            "incidents": [
                {
                    "incident": result.injected.incident,
                    "severity": result.injected.severity,
                    "injected": result.injected.summary,
                    "detected": result.detected,
                    "first_alert": None
                    if result.first_alert is None
                    else {"rule": result.first_alert[0], "cycle": result.first_alert[1]},
                    "alerts": list(result.alerts),
                    "resolved_after": result.resolved_after,
                }
                for result in self.incidents
            ],
            "exit_code": self.exit_code,
        }

    @property
    def exit_code(self) -> int:
        """1 when an incident went undetected, else 0 (so CI can hold monitoring to it)."""
        return 0 if all(result.detected for result in self.incidents) else 1


class _Cycles:
    """Runs the drill's cycles and keeps its simulated clock."""

    def __init__(self, settings: Settings, config: ServiceConfig) -> None:
        self._config = config
        self._access = StoreAccess.from_settings(settings, program="evalkit drill", wait_as="job")
        self._runner = JobRunner(config, settings=settings, session=self._access)
        self._now = utc_now()

    def run(self) -> list[Alert]:
        """Every job once, then the rules at the next simulated day: the alerts raised."""
        for job in self._config.jobs:
            outcome = self._runner.attempt(job.name, trigger="manual")
            if isinstance(outcome, NotStarted):
                raise ConfigError(f"drill: job {job.name} did not start: {outcome.message}")
        self._now += CYCLE
        with self._access.writer("evalkit drill: alert rules") as store:
            evaluation = evaluate_rules(store, self._config.alerts, {}, now=self._now)
        return list(evaluation.alerts)


def _relevant_documents(store: Store) -> frozenset[str]:
    """The judged-relevant documents of every goldset in the drill's store."""
    relevant: set[str] = set()
    for info in list_goldsets(store):
        goldset = load_stored_goldset(store, info.name)
        relevant.update(j.doc_id for j in goldset.judgments if j.relevance > 0)
    return frozenset(relevant)


def run_drill(user: Settings, request: DrillRequest) -> DrillReport:
    """Rehearse ``request``'s incidents against the monitoring ``user`` configures."""
    path, tables = read_config_file()
    names = collections_named(tables)
    if not names:
        raise ConfigError(
            f"{path}: no [[jobs]] entry names a Chroma collection (collection = ...): a drill "
            "rehearses incidents on copies of the collections the jobs read"
        )
    drill_dir = user.home / "drills" / request.drill_id
    drill_dir.mkdir(parents=True, exist_ok=True)
    store_path = drill_dir / "evalkit.duckdb"
    with ScratchCopies(user, names, request.drill_id) as copies:
        settings = load_settings(
            rewrite_tables=functools.partial(
                pointed_at_copies, copies=copies.names, store_path=store_path
            )
        )
        config = service_config(settings)
        goldsets = {
            job.params.goldset for job in config.jobs if isinstance(job.params, GoldsetReplayParams)
        }
        with Store.open(user.resolved_store_path, read_only=True) as live_store:
            stored = [load_stored_goldset(live_store, name) for name in sorted(goldsets)]
        with Store.open(store_path) as store:
            for goldset in stored:
                save_goldset(store, goldset)
            relevant = _relevant_documents(store)
        cycles = _Cycles(settings, config)
        false_alarms = [
            alert.rule
            for _ in range(request.quiet_cycles)
            for alert in cycles.run()
            if alert.status is AlertStatus.firing
        ]
        results = [
            _rehearse(
                copies,
                cycles,
                incident=name,
                severity=severity,
                relevant=relevant,
                request=request,
            )
            for name, severity in request.incidents
        ]
        names_copied = dict(copies.names)
    return DrillReport(
        request.drill_id,
        names_copied,
        str(store_path),
        request.quiet_cycles,
        tuple(false_alarms),
        tuple(results),
    )


def _rehearse(
    copies: ScratchCopies,
    cycles: _Cycles,
    *,
    incident: str,
    severity: float | None,
    relevant: frozenset[str],
    request: DrillRequest,
) -> IncidentResult:
    injected = [
        inject(copies.collection(live), incident, severity, relevant=relevant, seed=request.seed)
        for live in copies.names
    ]
    first: tuple[str, int] | None = None
    firing: set[str] = set()
    for number in range(1, request.cycles + 1):
        raised = cycles.run()
        firing |= {a.rule for a in raised if a.status is AlertStatus.firing}
        firing -= {a.rule for a in raised if a.status is AlertStatus.resolved}
        if firing:
            first = (sorted(firing)[0], number)
            break
    alerts = tuple(sorted(firing))
    copies.restore()
    resolved_after: int | None = 0 if not firing else None
    for number in range(1, request.cycles + 1):
        if not firing:
            break
        raised = cycles.run()
        firing -= {a.rule for a in raised if a.status is AlertStatus.resolved}
        if not firing:
            resolved_after = number
    return IncidentResult(injected[0], first, alerts, resolved_after)
