"""An incident drill: the user's own jobs and rules, run against scratch copies of the Chroma
collections they name, through quiet cycles and then each incident in turn.

A cycle runs every job once, as ``evalkit jobs run --local`` does, then evaluates the rules
at the cycle's simulated day, as ``evalkit serve`` does between jobs. An incident is injected
into fresh copies (those of the quiet cycles set aside), followed for up to ``cycles`` cycles
until a rule fires, then restored (the set-aside copies put back) and followed until its
alerts resolve.
Everything the drill writes lands in its own store under ``<home>/drills/<id>/``; its alerts
go to no sink unless asked to (``deliver``). The live collections are only read.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import secrets
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evalkit.alerts import RedeliverySchedule, deliver_due, evaluate_rules
from evalkit.alerts.model import Alert, AlertStatus
from evalkit.alerts.rules import LatencyRegressionParams, PrecisionRegressionParams
from evalkit.alerts.sinks import build_sinks
from evalkit.causes.join import explain_runs
from evalkit.clock import utc_now
from evalkit.config import load_settings
from evalkit.config.sources import read_config_file
from evalkit.drill.config import (
    bm25_indexes_named,
    chroma_collections_by_server,
    pgvector_tables_named,
    pointed_at_copies,
    qdrant_collections_named,
    reads_change_tables,
    traffic_jobs,
)
from evalkit.drill.incidents import INCIDENTS, Embed, Injected, inject
from evalkit.drill.index import NotInjectableError
from evalkit.drill.proxy import SlowingProxy
from evalkit.drill.reports import REPORT_FILE, start_drill_folder
from evalkit.drill.scratch import ScratchCopies
from evalkit.drill.traffic import FOREIGN_QUERIES, DrillTraffic, TrafficQuery
from evalkit.embedding.lazy import LazyEmbedder
from evalkit.embedding.local import remembering_vectors
from evalkit.errors import ConfigError, EvalkitError
from evalkit.files import replace_text
from evalkit.scheduler.config import service_config
from evalkit.scheduler.job_kinds.evaluation import GoldsetReplayParams
from evalkit.scheduler.job_kinds.traffic import TrafficParams
from evalkit.scheduler.runner import JobRunner, NotStarted
from evalkit.store import Store
from evalkit.store.access import StoreAccess
from evalkit.store.audit import list_audit_findings
from evalkit.store.goldsets import list_goldsets, load_stored_goldset, save_goldset
from evalkit.store.runs import get_run
from evalkit.store.traffic.logged import recent_queries

if TYPE_CHECKING:
    from evalkit.config import Settings
    from evalkit.drill.bm25 import Bm25Copies
    from evalkit.drill.pgvector import PgvectorCopies
    from evalkit.drill.qdrant import QdrantCopies
    from evalkit.scheduler.config import ServiceConfig

__all__ = ["DrillReport", "DrillRequest", "IncidentResult", "run_drill"]

_log = logging.getLogger(__name__)

TRAFFIC_FILE = "traffic.jsonl"
"""In a drill's folder: the traffic log of its simulated days, which its traffic jobs read."""
CHANGES_FILE = "changes.jsonl"
"""In a drill's folder: the change table its freshness jobs read besides their own."""
CYCLE = timedelta(days=1)
"""The simulated time between two cycles, at which the rules are evaluated."""


@dataclass(frozen=True, slots=True)
class DrillRequest:
    """What to rehearse: ``incidents`` as (name, severity or None for its default), after
    ``quiet_cycles``, each followed for at most ``cycles`` and, once restored, for at most
    ``recovery_cycles`` until every alert resolves; ``seed`` fixes every choice. With
    ``deliver`` the drill's alerts also go to the configured sinks."""

    incidents: tuple[tuple[str, float | None], ...]
    quiet_cycles: int = 3
    cycles: int = 3
    recovery_cycles: int = 10
    deliver: bool = False
    seed: int = 0
    foreign_queries: tuple[str, ...] = ()
    """The other domain's queries of a query drift (none: ``FOREIGN_QUERIES``)."""
    corpus: Path | None = None
    """The corpus the BM25 indexes the jobs read were built from, their copies' source."""
    drill_id: str = field(
        default_factory=lambda: f"{utc_now():%Y%m%dT%H%M%S}-{secrets.token_hex(2)}"
    )

    @property
    def most_cycles(self) -> int:
        """The most cycles the drill can run: quiet, and each incident's and recovery's."""
        return self.quiet_cycles + len(self.incidents) * (self.cycles + self.recovery_cycles)

    def __post_init__(self) -> None:
        unknown = [name for name, _ in self.incidents if name not in INCIDENTS]
        if unknown:
            raise ConfigError(
                f"unknown incident {unknown[0]!r}; the incidents are: {', '.join(INCIDENTS)}"
            )
        for name, severity in self.incidents:
            INCIDENTS[name].severity_of(severity)
        if self.quiet_cycles < 1 or self.cycles < 1 or self.recovery_cycles < 1:
            raise ConfigError(
                "a drill needs at least one quiet cycle, and one cycle per incident and per "
                "recovery"
            )


_FED_BY: Mapping[str, str] = {
    "precision_regression": "goldset_replay",
    "latency_regression": "goldset_replay",
    "audit_findings": "audit",
    "model_mismatch": "audit",
    "embedding_drift": "drift_check",
    "freshness_lag": "freshness",
    "traffic_precision_drop": "traffic",
    "low_confidence_rate": "traffic",
    "job_failure": "goldset_replay",
}
"""The job kind whose results each alert rule kind reads (for the advice on a gap)."""


@dataclass(frozen=True, slots=True)
class IncidentResult:
    """One incident: what was injected (None: not covered, ``gap`` says what would cover
    it); the first alert it raised (rule and cycle, 1 being the first after the injection;
    None: not detected within the drill's cycles); the goldset figures before and after
    (``effect``: measure to (before, after)); where ``explain`` on the newest run ranked the
    incident's cause (``cause_rank``, None: not named) and what it ranked first; the findings
    of the audits made after the injection; and how many cycles after the restore its alerts
    took to resolve (None: not within them, ``still_firing`` naming the rules). ``carried``
    are the rules still firing from before the injection, which could not fire for it;
    ``failed_jobs`` the jobs that failed in its cycles, with their first error (a
    ``job_failure`` rule sees those)."""

    incident: str
    severity: float
    injected: Injected | None = None
    gap: str | None = None
    first_alert: tuple[str, int] | None = None
    alerts: tuple[str, ...] = ()
    effect: Mapping[str, tuple[float | None, float | None]] = field(default_factory=dict)
    top_cause: str | None = None
    cause_rank: int | None = None
    audit_findings: Mapping[str, int] = field(default_factory=dict)
    resolved_after: int | None = None
    still_firing: tuple[str, ...] = ()
    carried: tuple[str, ...] = ()
    failed_jobs: Mapping[str, str] = field(default_factory=dict)

    @property
    def detected(self) -> bool:
        """Whether a rule fired within the drill's cycles."""
        return self.first_alert is not None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "incident": self.incident,
            "severity": self.severity,
            "covered": self.gap is None,
            "gap": self.gap,
            "injected": None if self.injected is None else self.injected.summary,
            "detected": self.detected,
            "first_alert": None
            if self.first_alert is None
            else {"rule": self.first_alert[0], "cycle": self.first_alert[1]},
            "alerts": list(self.alerts),
            "effect": {
                measure: {"before": before, "after": after}
                for measure, (before, after) in self.effect.items()
            },
            "top_cause": self.top_cause,
            "cause_rank": self.cause_rank,
            "audit_findings": dict(self.audit_findings),
            "resolved_after": self.resolved_after,
            "still_firing": list(self.still_firing),
            "carried": list(self.carried),
            "failed_jobs": dict(self.failed_jobs),
        }


DRILL_COLUMNS = ("incident", "severity", "caught", "alerts", "cause", "resolved", "injected")
"""The columns of a drill's table (``DrillReport.rows``)."""


@dataclass(frozen=True, slots=True)
class DrillReport:
    """A drill's outcome: the copies it made, the alerts its quiet cycles raised (false
    alarms), each incident's result, and the rules that could not be evaluated (the first
    error of each); ``delivered``: the notifications the sinks accepted (None: not
    delivered); ``notes``: what the drill could not rehearse as asked (a rule whose warm-up
    the quiet cycles do not cover)."""

    drill_id: str
    copies: Mapping[str, str]
    store: str
    quiet_cycles: int
    false_alarms: tuple[str, ...]
    incidents: tuple[IncidentResult, ...]
    rule_errors: Mapping[str, str] = field(default_factory=dict)
    delivered: int | None = None
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "drill_id": self.drill_id,
            "copies": dict(self.copies),
            "store": self.store,
            "quiet_cycles": self.quiet_cycles,
            "false_alarms": list(self.false_alarms),
            "incidents": [result.to_dict() for result in self.incidents],
            "rule_errors": dict(self.rule_errors),
            "delivered": self.delivered,
            "notes": list(self.notes),
            "exit_code": self.exit_code,
        }

    @property
    def folder(self) -> str:
        """The drill's folder: its store, report.json and report.md."""
        return str(Path(self.store).parent)

    def rows(self) -> list[list[str]]:
        """One row per incident under ``DRILL_COLUMNS``."""
        rows = []
        for result in self.incidents:
            if result.gap is not None:
                rows.append(
                    [result.incident, f"{result.severity:g}", "-", "-", "-", "-", result.gap]
                )
                continue
            cause = (
                "-"
                if result.top_cause is None
                else f"{result.top_cause} (expected cause "
                + ("not named)" if result.cause_rank is None else f"ranked {result.cause_rank})")
            )
            rows.append(
                [
                    result.incident,
                    f"{result.severity:g}",
                    "no" if result.first_alert is None else f"cycle {result.first_alert[1]}",
                    (", ".join(result.alerts) or "-")
                    + (f" ({', '.join(result.carried)} firing before)" if result.carried else ""),
                    cause,
                    f"after {result.resolved_after}"
                    if result.resolved_after is not None
                    else f"no: {', '.join(result.still_firing)} still firing",
                    "" if result.injected is None else result.injected.summary,
                ]
            )
        return rows

    def to_markdown(self) -> str:
        """The report as a Markdown section (for a CI job summary or a pull request)."""
        lines = [
            f"### Incident drill {self.drill_id}",
            "",
            f"{len(self.false_alarms)} false alarms in {self.quiet_cycles} quiet cycles"
            + (f" ({', '.join(sorted(set(self.false_alarms)))})" if self.false_alarms else "")
            + ".",
            "",
            "| " + " | ".join(DRILL_COLUMNS) + " |",
            "|" + "---|" * len(DRILL_COLUMNS),
        ]
        lines += [
            "| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |"
            for row in self.rows()
        ]
        lines += [
            f"- rule {rule} could not be evaluated: {error}"
            for rule, error in self.rule_errors.items()
        ]
        lines += [f"- note: {note}" for note in self.notes]
        for result in self.incidents:
            if result.effect:
                shown = ", ".join(
                    f"{measure} {_figure(before)} -> {_figure(after)}"
                    for measure, (before, after) in result.effect.items()
                )
                lines.append(f"- {result.incident}: {shown}")
            if result.audit_findings:
                found = ", ".join(
                    f"{kind} {count}" for kind, count in result.audit_findings.items()
                )
                lines.append(f"- {result.incident}: audit findings {found}")
            lines += [
                f"- {result.incident}: job {job} failed: {error}"
                for job, error in result.failed_jobs.items()
            ]
        return "\n".join(lines) + "\n"

    @property
    def exit_code(self) -> int:
        """1 when an incident went undetected or the configuration cannot see it, else 0
        (so CI can hold monitoring to it)."""
        return 0 if all(result.detected for result in self.incidents) else 1


def _figure(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


@dataclass(frozen=True, slots=True)
class _Cycle:
    """What one cycle raised, the goldset run each goldset_replay job made (by job), and
    the error of each job that did not succeed (by job)."""

    alerts: tuple[Alert, ...]
    runs: Mapping[str, str]
    failed: Mapping[str, str] = field(default_factory=dict)


class _Cycles:
    """Runs the drill's cycles and keeps its simulated clock."""

    def __init__(
        self,
        settings: Settings,
        config: ServiceConfig,
        *,
        deliver: bool,
        traffic: DrillTraffic | None = None,
    ) -> None:
        self._config = config
        self._settings = settings
        self._traffic = traffic
        self._access = StoreAccess.from_settings(settings, program="evalkit drill", wait_as="job")
        self._sinks = build_sinks(config.alerts) if deliver else {}
        self._policy = RedeliverySchedule.from_settings(config.alerts.settings)
        self.delivered = 0
        """Alert notifications the configured sinks accepted (``deliver`` only)."""
        self._runner = JobRunner(config, settings=settings, session=self._access)
        self._now = utc_now()
        self._pinned = False
        self.firing: set[str] = set()
        """The rules firing after the last cycle."""
        self.rule_errors: dict[str, str] = {}
        """Rules that could not be evaluated in some cycle, with the first error: they
        could not fire then."""

    def run(self) -> _Cycle:
        """Every job once, then the rules at the next simulated day."""
        runs: dict[str, str] = {}
        failed: dict[str, str] = {}
        if self._traffic is not None:
            self._runner = JobRunner(
                self._on_day(self._traffic.next_day()),
                settings=self._settings,
                session=self._access,
            )
        for job in self._config.jobs:
            outcome = self._runner.attempt(job.name, trigger="manual")
            if isinstance(outcome, NotStarted):
                raise ConfigError(f"drill: job {job.name} did not start: {outcome.message}")
            if outcome.status != "succeeded":
                failed[job.name] = outcome.error or outcome.status
            if isinstance(job.params, GoldsetReplayParams) and outcome.run_ids:
                runs[job.name] = outcome.run_ids[-1]
        if not self._pinned:
            self._pin_gate_baselines(runs)
            self._pinned = True
        self._now += CYCLE
        with self._access.writer("evalkit drill: alert rules") as store:
            evaluation = evaluate_rules(store, self._config.alerts, self._sinks, now=self._now)
        if self._sinks:
            sent = deliver_due(self._access.writer, self._sinks, self._policy, clock=self._clock)
            self.delivered += sent.delivered
        for rule, error in evaluation.errors.items():
            self.rule_errors.setdefault(rule, error)
        self.firing |= {a.rule for a in evaluation.alerts if a.status is AlertStatus.firing}
        self.firing -= {a.rule for a in evaluation.alerts if a.status is AlertStatus.resolved}
        return _Cycle(tuple(evaluation.alerts), runs, failed)

    def _clock(self) -> datetime:
        return self._now

    def _on_day(self, window: str) -> ServiceConfig:
        """The configuration with every traffic job pinned to the day ``window``."""
        jobs = tuple(
            replace(job, params=job.params.model_copy(update={"window": window}))
            if isinstance(job.params, TrafficParams)
            else job
            for job in self._config.jobs
        )
        return replace(self._config, jobs=jobs)

    def _pin_gate_baselines(self, first: Mapping[str, str]) -> None:
        """Point each gate rule at the first quiet cycle's run (``first``: by job) of its
        goldset (and label):
        the run it pins lives in the user's store, not the drill's, and the quiet copy is
        the drill's known-good index. A rule of a goldset no job replays keeps its pin (and
        its evaluation fails, as the report says)."""
        by_goldset: dict[tuple[str, str | None], str] = {}
        for job in self._config.jobs:
            if isinstance(job.params, GoldsetReplayParams) and job.name in first:
                label = job.params.label or job.name
                by_goldset.setdefault((job.params.goldset, label), first[job.name])
                by_goldset.setdefault((job.params.goldset, None), first[job.name])
        rules = []
        for rule in self._config.alerts.rules:
            params = rule.params
            run = (
                by_goldset.get((params.goldset, params.label))
                if isinstance(params, PrecisionRegressionParams) and params.method == "gate"
                else None
            )
            pinned = params.model_copy(update={"baseline_run": run}) if run else params
            rules.append(replace(rule, params=pinned))
        self._config = replace(
            self._config, alerts=replace(self._config.alerts, rules=tuple(rules))
        )

    def look(
        self, before: _Cycle, after: _Cycle, since: datetime, causes: tuple[str, ...]
    ) -> dict[str, Any]:
        """What the drill's store says of an incident: the first goldset job's figures in
        ``before`` and ``after``, ``explain``'s ranking of ``causes`` on its newest run, and
        the findings of the audits finished since ``since``."""
        found: dict[str, Any] = {}
        with self._access.writer("evalkit drill: the incident's evidence") as store:
            audits = list_audit_findings(store, since=since)
            found["audit_findings"] = dict(Counter(finding.kind for finding in audits))
            shared = [job for job in before.runs if job in after.runs]
            if not shared:
                return found
            base, cand = (
                get_run(store, before.runs[shared[0]]),
                get_run(store, after.runs[shared[0]]),
            )
            found["effect"] = {
                measure: (base.aggregates.get(measure), cand.aggregates.get(measure))
                for measure in cand.spec.measures
            }
            try:
                explanation = explain_runs(store, cand.run_id, baseline=base.run_id)
            except EvalkitError as error:
                _log.warning("drill: explain %s found nothing to explain: %s", cand.run_id, error)
                return found
        kinds = [cause.kind for cause in explanation.causes]
        found["top_cause"] = kinds[0] if kinds else None
        ranks = [kinds.index(kind) + 1 for kind in causes if kind in kinds]
        found["cause_rank"] = min(ranks) if ranks else None
        return found


_RECENT_TRAFFIC = 1000
"""Logged queries a simulated day of a drill's traffic repeats, the most recent."""


def _recent_traffic(store: Store) -> list[TrafficQuery]:
    """The most recent logged queries of ``store`` (at most ``_RECENT_TRAFFIC``)."""
    return [TrafficQuery(text, tenant) for text, tenant in recent_queries(store, _RECENT_TRAFFIC)]


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
    in_chroma = chroma_collections_by_server(tables, user.chroma_url)
    in_qdrant = qdrant_collections_named(tables)
    in_pgvector, in_bm25 = pgvector_tables_named(tables), bm25_indexes_named(tables)
    if not in_chroma and not in_qdrant and not in_pgvector and not in_bm25:
        raise ConfigError(
            f"{path}: no [[jobs]] entry reads a Chroma or Qdrant collection, a pgvector "
            "table or a BM25 index: a drill rehearses incidents on copies of the indexes "
            "the jobs read"
        )
    drill_dir = start_drill_folder(user.home, request.drill_id)
    store_path = drill_dir / "evalkit.duckdb"
    # The traffic jobs read the drill's log of simulated days, not yours (drill/traffic.py).
    traffic_log = drill_dir / TRAFFIC_FILE if traffic_jobs(tables) else None
    changes: Path | None = None
    if any(isinstance(job, Mapping) and reads_change_tables(job) for job in tables.get("jobs", [])):
        # Where an ingestion lag writes the source changes it withholds from the index.
        changes = drill_dir / CHANGES_FILE
        changes.touch()
    slowed = any(INCIDENTS[name].slows for name, _ in request.incidents)
    with contextlib.ExitStack() as stack:
        # Each cycle replays the same queries and audits the same stored texts: they are
        # embedded once for the whole drill (a third of a cycle's time on the demo goldset).
        stack.enter_context(remembering_vectors())
        copies: list[ScratchCopies | QdrantCopies | PgvectorCopies | Bm25Copies] = []
        for url, names in sorted(in_chroma.items(), key=lambda item: item[0] or ""):
            # A job's own Chroma server gets its copies there, under the same names.
            server = user if url is None else user.model_copy(update={"chroma_url": url})
            copies.append(stack.enter_context(ScratchCopies(server, names, request.drill_id)))
        if in_qdrant:
            # qdrant_client is an optional extra: only a drill of Qdrant collections needs it.
            from evalkit.drill.qdrant import QdrantCopies

            copies.append(stack.enter_context(QdrantCopies(user, in_qdrant, request.drill_id)))
        if in_pgvector:
            # psycopg is an optional extra: only a drill of a pgvector table needs it.
            from evalkit.drill.pgvector import PgvectorCopies

            copies.append(stack.enter_context(PgvectorCopies(user, in_pgvector, request.drill_id)))
        if in_bm25:
            # bm25s is an optional extra: only a drill of a BM25 index needs it.
            from evalkit.drill.bm25 import Bm25Copies

            copies.append(
                stack.enter_context(
                    Bm25Copies(in_bm25, request.corpus, drill_dir, request.drill_id)
                )
            )
        copied = {live: copy for made in copies for live, copy in made.names.items()}
        # A slowing incident is played by a proxy in front of each Chroma server the jobs read.
        servers = [url for url in in_chroma if url is not None]
        slowed_servers = ([user.chroma_url] if user.chroma_url else []) + servers
        proxies = (
            {url: stack.enter_context(SlowingProxy(url)) for url in slowed_servers}
            if slowed
            else {}
        )
        proxy = proxies.get(user.chroma_url) if user.chroma_url else None
        # The drill's store (and proxy) as arguments: they outrank EVALKIT_STORE_PATH and
        # EVALKIT_CHROMA_URL, which the file's tables do not (the drill's runs went to the
        # user's store).
        settings = load_settings(
            rewrite_tables=functools.partial(
                pointed_at_copies,
                copies=copied,
                changes=changes,
                traffic=traffic_log,
                # A job naming the settings' server itself is slowed with the others.
                chroma_urls={url.rstrip("/"): proxy.url for url, proxy in proxies.items()},
            ),
            store_path=store_path,
            chroma_url=None if proxy is None else proxy.url,
        )
        config = service_config(settings)
        goldsets = {
            job.params.goldset for job in config.jobs if isinstance(job.params, GoldsetReplayParams)
        }
        with Store.open(user.resolved_store_path, read_only=True) as live_store:
            stored = [load_stored_goldset(live_store, name) for name in sorted(goldsets)]
            logged = _recent_traffic(live_store) if traffic_log is not None else []
        with Store.open(store_path) as store:
            for goldset in stored:
                save_goldset(store, goldset)
            relevant = _relevant_documents(store)
        traffic = (
            None
            if traffic_log is None
            else DrillTraffic(
                traffic_log,
                logged
                or [TrafficQuery(q.text, q.tenant) for goldset in stored for q in goldset.queries],
                utc_now().date() - timedelta(days=request.most_cycles + 1),
                foreign=request.foreign_queries or FOREIGN_QUERIES,
                seed=request.seed,
            )
        )
        cycles = _Cycles(settings, config, deliver=request.deliver, traffic=traffic)
        watched = {rule.config.kind for rule in config.alerts.rules}
        quiet = [cycles.run() for _ in range(request.quiet_cycles)]
        false_alarms = [
            alert.rule
            for cycle in quiet
            for alert in cycle.alerts
            if alert.status is AlertStatus.firing
        ]
        results = []
        last = quiet[-1]
        # Loaded only when an incident embeds (chunking drift).
        embed = LazyEmbedder.from_settings(settings).embed
        for name, severity in request.incidents:
            incident = INCIDENTS[name]
            share = incident.severity_of(severity)
            if not watched.intersection(incident.seen_by):
                results.append(IncidentResult(name, share, gap=_gap(incident.seen_by)))
                continue
            if incident.slows and not proxies:
                results.append(IncidentResult(name, share, gap=_NOT_SLOWED))
                continue
            result, last = _rehearse(
                _Play(
                    tuple(copies),
                    tuple(proxies.values()),
                    relevant,
                    request.seed,
                    embed,
                    changes,
                    traffic,
                ),
                cycles,
                last,
                incident=name,
                severity=share,
                request=request,
            )
            results.append(result)
    report = DrillReport(
        request.drill_id,
        copied,
        str(store_path),
        request.quiet_cycles,
        tuple(false_alarms),
        tuple(results),
        dict(cycles.rule_errors),
        cycles.delivered if request.deliver else None,
        _warm_up_notes(config, request.quiet_cycles)
        + tuple(
            f"job {job} failed in the quiet cycles, so what it feeds was not rehearsed: {error}"
            for job, error in {
                job: error for cycle in reversed(quiet) for job, error in cycle.failed.items()
            }.items()
        ),
    )
    replace_text(drill_dir / REPORT_FILE, json.dumps(report.to_dict(), indent=2) + "\n")
    replace_text(drill_dir / "report.md", report.to_markdown())
    return report


def _warm_up_notes(config: ServiceConfig, quiet_cycles: int) -> tuple[str, ...]:
    """The sequential rules whose warm-up is longer than the quiet cycles: it takes in the
    first incident's runs, so they are slow to fire on it, or do not."""
    notes = []
    for rule in config.alerts.rules:
        params = rule.params
        sequential = isinstance(params, LatencyRegressionParams) or (
            isinstance(params, PrecisionRegressionParams) and params.method != "gate"
        )
        warmup = getattr(params, "warmup", 0)
        if sequential and warmup > quiet_cycles:
            notes.append(
                f"rule {rule.name} warms up over {warmup} runs, more than the drill's "
                f"{quiet_cycles} quiet cycles: its warm-up takes in the first incident's runs "
                f"(give --quiet-cycles {warmup} or more)"
            )
    return tuple(notes)


def _gap(seen_by: tuple[str, ...]) -> str:
    """What would let the configuration see an incident no configured rule can."""
    kinds = " or ".join(f"'{kind}'" for kind in seen_by)
    first = seen_by[0]
    return (
        f"not covered: no [[alerts.rules]] entry of kind {kinds}; e.g. a '{first}' rule over "
        f"a '{_FED_BY[first]}' job"
    )


_NOT_SLOWED = (
    "not injectable: the jobs read embedded Chroma, in process; a drill slows a Chroma server "
    "(chroma_url) through a proxy in front of it"
)


@dataclass(frozen=True, slots=True)
class _Play:
    """What an incident is played on: the copies, or the proxies in front of their servers."""

    copies: tuple[ScratchCopies | QdrantCopies | PgvectorCopies | Bm25Copies, ...]
    proxies: tuple[SlowingProxy, ...]
    relevant: frozenset[str]
    seed: int
    embed: Embed
    changes: Path | None
    traffic: DrillTraffic | None
    injected: dict[tuple[int, str], Injected] = field(default_factory=dict)
    """What the incident did to each copy (by copies and live name), for its restore."""

    def inject(self, incident: str, severity: float) -> Injected:
        """Play ``incident`` at ``severity``: into fresh copies (the quiet ones set aside),
        or through the proxies. ``NotInjectableError`` (the copies restored) when an engine
        cannot play it."""
        if INCIDENTS[incident].slows:
            assert self.proxies, "a slowing incident needs a proxy"
            for proxy in self.proxies:
                proxy.factor = severity
            servers = "server" if len(self.proxies) == 1 else f"{len(self.proxies)} servers"
            return Injected(
                incident, severity, (), f"every search of the Chroma {servers} {severity:g}x slower"
            )
        if INCIDENTS[incident].feeds_traffic:
            if self.traffic is None:
                raise NotInjectableError(
                    'not injectable: no traffic job (kind = "traffic"), whose simulated '
                    "days the drill's traffic fills"
                )
            self.traffic.share = severity
            return Injected(
                incident,
                severity,
                (),
                f"{severity:.0%} of each day's traffic from another domain",
            )
        self.injected.clear()
        for made in self.copies:
            made.hold()
        try:
            for number, made in enumerate(self.copies):
                for live in made.names:
                    with contextlib.closing(made.index(live)) as index:
                        self.injected[number, live] = inject(
                            index,
                            incident,
                            severity,
                            relevant=self.relevant,
                            seed=self.seed,
                            rebuild=functools.partial(made.rebuild, live),
                            embed=self.embed,
                            changes=self.changes,
                        )
        except NotInjectableError:
            self.restore(incident)
            raise
        except Exception as error:  # an engine refused a write: reported, the drill goes on
            self.restore(incident)
            raise NotInjectableError(
                f"not injected: {type(error).__name__}: {error} (the copies were restored)"
            ) from error
        return next(iter(self.injected.values()))

    def restore(self, incident: str) -> None:
        """Undo ``incident``: the proxies back to the servers' speed, or the quiet copies back."""
        if INCIDENTS[incident].slows:
            for proxy in self.proxies:
                proxy.factor = 1.0
            return
        if self.traffic is not None and INCIDENTS[incident].feeds_traffic:
            self.traffic.share = 0.0
            return
        catch_up = INCIDENTS[incident].catch_up
        for number, made in enumerate(self.copies):
            made.restore()
            for live in made.names:
                done = self.injected.get((number, live))
                if catch_up is not None and done is not None:
                    with contextlib.closing(made.index(live)) as index:
                        catch_up(index, done)


def _rehearse(
    play: _Play,
    cycles: _Cycles,
    before: _Cycle,
    *,
    incident: str,
    severity: float,
    request: DrillRequest,
) -> tuple[IncidentResult, _Cycle]:
    """Inject, follow until an alert fires (at most ``request.cycles``), read the evidence,
    restore and follow until the alerts resolve; the result and the last cycle run."""
    since = utc_now().replace(tzinfo=None)
    try:
        injected = play.inject(incident, severity)
    except NotInjectableError as error:
        return IncidentResult(incident, severity, gap=str(error)), before
    carried = frozenset(cycles.firing)
    first: tuple[str, int] | None = None
    cycle = before
    failed: dict[str, str] = {}
    for number in range(1, request.cycles + 1):
        cycle = cycles.run()
        failed = {**cycle.failed, **failed}
        raised = sorted(a.rule for a in cycle.alerts if a.status is AlertStatus.firing)
        if raised:
            first = (raised[0], number)
            break
    alerts = tuple(sorted(cycles.firing - carried))
    evidence = cycles.look(before, cycle, since, INCIDENTS[incident].causes)
    play.restore(incident)
    resolved_after: int | None = 0 if not cycles.firing else None
    for number in range(1, request.recovery_cycles + 1):
        if not cycles.firing:
            break
        cycle = cycles.run()
        if not cycles.firing:
            resolved_after = number
    result = IncidentResult(
        incident,
        severity,
        injected,
        first_alert=first,
        alerts=alerts,
        resolved_after=resolved_after,
        still_firing=tuple(sorted(cycles.firing)),
        carried=tuple(sorted(carried)),
        failed_jobs=failed,
        **evidence,
    )
    return result, cycle
