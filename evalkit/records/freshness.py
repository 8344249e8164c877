"""What a freshness check is asked (``FreshnessRequest``, filled from ``[freshness]`` by
``from_settings``) and what it finds (``FreshnessCheck``): the lags of changes reflected,
their percentiles, the changes waiting and the verdict.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from evalkit.errors import ConfigError
from evalkit.records.jsonready import JsonReady

if TYPE_CHECKING:
    from evalkit.config import Settings

__all__ = [
    "FRESHNESS_METHODS",
    "FreshnessCheck",
    "FreshnessFigures",
    "FreshnessRequest",
    "PendingChange",
    "ReflectedChange",
    "human_seconds",
]

FreshnessMethod = Literal["auto", "index", "probe"]

FRESHNESS_METHODS: tuple[str, ...] = ("auto", "index", "probe")
"""How a check tells that a change is reflected: ``index`` reads the versions the index
stores (Chroma, pgvector, Qdrant), ``probe`` queries the retriever with a passage of each
changed document, ``auto`` reads the index where evalkit can and probes otherwise."""


@dataclass(frozen=True, slots=True)
class FreshnessRequest:
    """What one freshness check is asked (docs/freshness.md): the source is ``changes``
    (change tables: JSON Lines, Parquet, or a DuckDB file's ``changes_table``) or ``corpus``
    (documents carrying ``updated_at_key``, or file modification times). Each ``subject``
    keeps its own read position; ``since`` is naive UTC; durations are in seconds."""

    changes: tuple[Path, ...] = ()
    corpus: Path | None = None
    changes_table: str = "changes"
    updated_at_key: str = "updated_at"
    subject: str | None = None
    method: FreshnessMethod = "auto"
    k: int = 10
    probe_timeout: float = 0.0
    probe_interval: float = 5.0
    slo_p95_lag: float = 3600.0
    max_unreflected_age: float = 6 * 3600.0
    since: datetime | None = None
    shown: int = 20

    def __post_init__(self) -> None:
        if bool(self.changes) == (self.corpus is not None):
            raise ConfigError(
                "name the source of the changes: change tables (`changes`) or a corpus "
                "(`corpus`), not both"
            )
        if self.method not in FRESHNESS_METHODS:
            raise ConfigError(
                f"unknown freshness method {self.method!r}; use one of: "
                f"{', '.join(FRESHNESS_METHODS)}"
            )
        if self.k < 1:
            raise ConfigError(f"the probe depth k must be at least 1, got {self.k}")
        for name in ("probe_timeout", "probe_interval", "slo_p95_lag", "max_unreflected_age"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} cannot be negative, got {getattr(self, name)}")
        if self.shown < 0:
            raise ConfigError(f"shown cannot be negative, got {self.shown}")

    @classmethod
    def from_settings(cls, settings: Settings, **given: Any) -> FreshnessRequest:
        """The request with the ``[freshness]`` table's values where ``given`` has None or
        nothing (the CLI's and a job's unset options)."""
        table = settings.freshness
        defaults: dict[str, Any] = {
            "k": table.probe_k,
            "probe_timeout": table.probe_timeout,
            "probe_interval": table.probe_interval,
            "slo_p95_lag": table.slo_p95_lag,
            "max_unreflected_age": table.max_unreflected_age,
            "updated_at_key": table.updated_at_key,
            "changes_table": table.changes_table,
        }
        values = {**defaults, **{name: value for name, value in given.items() if value is not None}}
        if "changes" in values:
            values["changes"] = tuple(Path(path) for path in values["changes"])
        if values.get("corpus") is not None:
            values["corpus"] = Path(values["corpus"])
        return cls(**values)

    @property
    def source(self) -> str:
        """The source as stored with each check: its kind and path(s)."""
        if self.corpus is not None:
            return f"corpus:{self.corpus}"
        return "changes:" + ",".join(str(path) for path in self.changes)


@dataclass(frozen=True, slots=True)
class _SourceChange(JsonReady):
    """A change made at the source: the document and when it was changed."""

    doc_id: str
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class ReflectedChange(_SourceChange):
    """A change a check found reflected, with its lag. ``reflected_by`` says how its time is
    known: ``index_time`` (exact), ``check`` (exact to within the check interval,
    ``reflected_after`` its lower end) or ``probe`` (to within the probe interval)."""

    reflected_at: datetime
    reflected_after: datetime
    reflected_by: str
    lag_seconds: float


@dataclass(frozen=True, slots=True)
class PendingChange(_SourceChange):
    """A change not reflected yet: ``state`` is ``stale`` (the index holds another version),
    ``missing`` (the index holds no document of that id) or ``not_found`` (a probe query did
    not return it)."""

    age_seconds: float
    state: str
    origin: str


@dataclass(frozen=True, slots=True)
class FreshnessFigures:
    """What a freshness check measured, as it ran and as it is stored (docs/freshness.md):
    lags in seconds (None when nothing was reflected); ``unreflected_share`` is
    ``n_pending / (n_pending + n_reflected)``; superseded changes are not measured;
    ``evalkit_seconds`` excludes the index reads and probes."""

    check_id: str
    subject: str
    checked_at: datetime
    method: str
    index_kind: str
    source: str
    n_read: int
    n_reflected: int
    n_pending: int
    n_superseded: int
    lag_p50: float | None
    lag_p95: float | None
    lag_max: float | None
    unreflected_share: float | None
    oldest_unreflected_seconds: float | None
    slo_p95_lag: float
    max_unreflected_age: float


@dataclass(frozen=True, slots=True)
class FreshnessCheck(FreshnessFigures):
    """One freshness check: what it read, what it found reflected and what still waits
    (the figures of ``FreshnessFigures``), with the changes behind them."""

    breaches: tuple[str, ...] = ()
    reflected: tuple[ReflectedChange, ...] = ()
    oldest: tuple[PendingChange, ...] = ()
    n_probes: int = 0
    probe_seconds: float = 0.0
    index_seconds: float = 0.0
    evalkit_seconds: float = 0.0
    notes: tuple[str, ...] = ()
    timings: Mapping[str, float] = field(default_factory=dict)

    @property
    def breached(self) -> bool:
        """Whether the check breached the objective (either half)."""
        return bool(self.breaches)

    def to_dict(self, *, reflected: int | None = None) -> dict[str, Any]:
        """JSON-ready form; ``reflected`` caps the changes listed (None: all)."""
        shown = self.reflected if reflected is None else self.reflected[:reflected]
        return {
            "check_id": self.check_id,
            "subject": self.subject,
            "checked_at": _iso(self.checked_at),
            "method": self.method,
            "index_kind": self.index_kind,
            "source": self.source,
            "n_read": self.n_read,
            "n_reflected": self.n_reflected,
            "n_pending": self.n_pending,
            "n_superseded": self.n_superseded,
            "lag_p50_seconds": self.lag_p50,
            "lag_p95_seconds": self.lag_p95,
            "lag_max_seconds": self.lag_max,
            "unreflected_share": self.unreflected_share,
            "oldest_unreflected_seconds": self.oldest_unreflected_seconds,
            "slo_p95_lag_seconds": self.slo_p95_lag,
            "max_unreflected_age_seconds": self.max_unreflected_age,
            "breached": self.breached,
            "breaches": list(self.breaches),
            "reflected": [change.to_dict() for change in shown],
            "oldest_unreflected": [change.to_dict() for change in self.oldest],
            "n_probes": self.n_probes,
            "probe_seconds": self.probe_seconds,
            "index_seconds": self.index_seconds,
            "evalkit_seconds": self.evalkit_seconds,
            "notes": list(self.notes),
            "timings": dict(self.timings),
        }


def human_seconds(seconds: float | None) -> str:
    """A lag or an age for people: ``12.3 s``, ``45.0 min``, ``11.1 h``, ``3.2 d``; ``-``
    for None."""
    if seconds is None:
        return "-"
    for unit, size, below in (("s", 1.0, 120.0), ("min", 60.0, 7200.0), ("h", 3600.0, 172800.0)):
        if seconds < below:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds / 86400.0:.1f} d"


def _iso(moment: datetime) -> str:
    return f"{moment.isoformat()}Z"
