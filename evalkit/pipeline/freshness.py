"""The freshness workflow (docs/freshness.md): ``check_freshness`` reads the source's changes
since the last check, tells which the index reflects, and stores the changes, their lags
and the check in one transaction; the store is not held while the index is read or probed.
"""

from __future__ import annotations

import functools
import secrets
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from evalkit.audit.freshness.lag import (
    CANDIDATE_COLUMNS,
    assess_found,
    assess_versions,
    lag_percentiles,
    newest_per_document,
    seconds_between,
    superseded_outcomes,
)
from evalkit.audit.freshness.probe import ProbeTarget, probe_until_found
from evalkit.audit.freshness.sources import read_changes
from evalkit.clock import utc_now
from evalkit.errors import ConfigError
from evalkit.pipeline.runs import closing_retriever
from evalkit.records.freshness import (
    FreshnessCheck,
    FreshnessRequest,
    PendingChange,
    ReflectedChange,
    human_seconds,
)
from evalkit.retrievers.base import SupportsRetrieve, description_of
from evalkit.retrievers.factory import RetrieverOptions, build_retriever
from evalkit.retrievers.versions import IndexVersions, open_index_versions, reads_index
from evalkit.store.access import WriterAccess
from evalkit.store.freshness import (
    changes_read_at,
    pending_changes,
    save_freshness_check,
    source_cursors,
    stored_changes,
)

if TYPE_CHECKING:
    from evalkit.config import Settings

__all__ = ["check_freshness", "check_named_index_freshness", "retriever_subject"]

_SUBJECT_FIELDS = ("collection", "table", "url", "path", "index")


def retriever_subject(retriever: SupportsRetrieve) -> str:
    """The default subject of a probed retriever: its kind and where it searches
    (``http:http://...``), from ``describe()``."""
    described = description_of(retriever)
    kind = str(described.get("kind") or type(retriever).__name__)
    where = next((described[name] for name in _SUBJECT_FIELDS if described.get(name)), None)
    return f"{kind}:{where}" if where else kind


def check_freshness(
    store: WriterAccess,
    request: FreshnessRequest,
    *,
    index: IndexVersions | None = None,
    retriever: SupportsRetrieve | None = None,
    stop: Callable[[], None] | None = None,
    clock: Callable[[], datetime] = utc_now,
) -> FreshnessCheck:
    """Check how fresh the index is against ``request``'s source, and store the check.

    ``index`` reads the versions the index stores, ``retriever`` probes it; ``stop`` may raise
    between probe rounds (nothing stored). Raises InputError for malformed source rows,
    ConfigError when method and input disagree, RetrieverError when nothing can be read.
    """
    method = _method(request, index=index, retriever=retriever)
    subject = request.subject or (
        index.name if index is not None else retriever_subject(_given(retriever))
    )
    timings: dict[str, float] = {}
    started = time.perf_counter()
    with store.writer("freshness") as opened:
        cursors = source_cursors(opened, subject)
        waiting = pending_changes(opened, subject)
        mark = time.perf_counter()
        read = read_changes(
            request,
            subject,
            cursors,
            passages=method == "probe",
            seen=lambda moment: changes_read_at(opened, subject, moment),
            now=clock(),
        )
        timings["read_source"] = time.perf_counter() - mark
        known = stored_changes(opened, subject, read.changes)
    new = _without(read.changes, known)
    unchecked = pd.Series(pd.NaT, index=new.index, dtype="datetime64[us]")
    parts = [waiting.loc[:, list(CANDIDATE_COLUMNS)], new.assign(last_checked_at=unchecked)]
    candidates = pd.concat([part for part in parts if not part.empty] or parts[-1:])
    candidates = candidates.reset_index(drop=True)
    candidates["updated_at"] = candidates["updated_at"].astype("datetime64[us]")
    candidates["last_checked_at"] = pd.to_datetime(candidates["last_checked_at"]).astype(
        "datetime64[us]"
    )
    newest, older = newest_per_document(candidates)
    notes = list(read.notes)
    index_seconds = probe_seconds = 0.0
    n_probes = 0
    if method == "index":
        mark = time.perf_counter()
        versions = _given(index).versions(newest["doc_id"].tolist())
        index_seconds = time.perf_counter() - mark
        checked_at = clock()
        mark = time.perf_counter()
        outcomes = assess_versions(newest, versions, checked_at=checked_at)
        timings["assess"] = time.perf_counter() - mark
    else:
        targets, unprobed = _targets(newest)
        if unprobed:
            notes.append(
                f"{unprobed} waiting changes were read by checks that did not probe, so they "
                "have no probe passage and stay unreflected here; check them with the method "
                "those checks used"
            )
        report = probe_until_found(
            _given(retriever),
            targets,
            k=request.k,
            timeout=request.probe_timeout,
            interval=request.probe_interval,
            clock=clock,
            stop=stop,
        )
        probe_seconds, n_probes = report.seconds, report.queries
        if report.failed:
            notes.append(
                f"{report.failed} probe queries failed (counted as not found): "
                + "; ".join(report.errors)
            )
        checked_at = clock()
        mark = time.perf_counter()
        outcomes = assess_found(newest, report.found)
        timings["assess"] = time.perf_counter() - mark
    mark = time.perf_counter()
    check = _summarise(
        request,
        subject=subject,
        method=method,
        index_kind=index.kind if index is not None else _kind(_given(retriever)),
        checked_at=checked_at,
        n_read=len(new),
        outcomes=outcomes,
        n_superseded=len(older),
        origins=dict(zip(newest["doc_id"], newest["origin"], strict=True)),
        notes=notes,
    )
    timings["summarise"] = time.perf_counter() - mark
    everything = pd.concat([outcomes, superseded_outcomes(older)], ignore_index=True)
    # Timed twice: the stored check up to its storing, the returned one with it.
    timed = functools.partial(
        _timed,
        check,
        started,
        index_seconds=index_seconds,
        probe_seconds=probe_seconds,
        n_probes=n_probes,
        timings=timings,
    )
    mark = time.perf_counter()
    with store.writer("freshness") as opened:
        save_freshness_check(
            opened, timed(), new_changes=new, outcomes=everything, cursors=read.cursors
        )
    stored_in = time.perf_counter() - mark
    timings.update(index=index_seconds, probe=probe_seconds, store=stored_in)
    return timed()


def check_named_index_freshness(
    store: WriterAccess,
    request: FreshnessRequest,
    options: RetrieverOptions,
    settings: Settings,
    *,
    stop: Callable[[], None] | None = None,
) -> FreshnessCheck:
    """``check_freshness`` of the index ``options`` name: the versions it stores are read
    when ``request.method`` reads the index (``index``, or ``auto`` on an index evalkit can
    read), else the retriever ``options`` build is probed (``stop`` as for
    ``check_freshness``); the index reader or the retriever is closed when the check ends."""
    if reads_index(request.method, options, settings):
        index = open_index_versions(options, settings)
        try:
            return check_freshness(store, request, index=index)
        finally:
            index.close()
    retriever = build_retriever(options, settings)
    with closing_retriever(retriever):
        return check_freshness(store, request, retriever=retriever, stop=stop)


def _given(value: Any) -> Any:
    if value is None:
        raise ConfigError("check_freshness: give the index to read or the retriever to probe")
    return value


def _method(
    request: FreshnessRequest, *, index: IndexVersions | None, retriever: SupportsRetrieve | None
) -> str:
    if (index is None) == (retriever is None):
        raise ConfigError(
            "check_freshness takes one of the index to read (index=) or the retriever to "
            "probe (retriever=)"
        )
    method = "index" if index is not None else "probe"
    if request.method not in ("auto", method):
        raise ConfigError(
            f"the freshness method {request.method!r} needs "
            + ("the retriever to probe" if request.method == "probe" else "an index to read")
        )
    return method


def _kind(retriever: SupportsRetrieve) -> str:
    return str(description_of(retriever).get("kind") or type(retriever).__name__)


def _without(changes: pd.DataFrame, known: pd.DataFrame) -> pd.DataFrame:
    """``changes`` less those already stored, and less repeats of one change: of two
    lines giving one document the same time, the later one (what the document became)."""
    changes = changes.drop_duplicates(["doc_id", "updated_at"], keep="last")
    if known.empty:
        return changes.reset_index(drop=True)
    keys = pd.MultiIndex.from_frame(changes.loc[:, ["doc_id", "updated_at"]])
    seen = pd.MultiIndex.from_arrays(
        [known["doc_id"].astype(object), known["updated_at"].astype("datetime64[us]")]
    )
    return changes[~keys.isin(seen)].reset_index(drop=True)


def _targets(newest: pd.DataFrame) -> tuple[list[ProbeTarget], int]:
    with_text = newest[newest["probe_text"].notna()]
    since = with_text["last_checked_at"].fillna(with_text["updated_at"])
    targets = [
        ProbeTarget(str(doc_id), str(text), moment.to_pydatetime())
        for doc_id, text, moment in zip(
            with_text["doc_id"], with_text["probe_text"], since, strict=True
        )
    ]
    return targets, len(newest) - len(with_text)


def _summarise(
    request: FreshnessRequest,
    *,
    subject: str,
    method: str,
    index_kind: str,
    checked_at: datetime,
    n_read: int,
    outcomes: pd.DataFrame,
    n_superseded: int,
    origins: dict[str, str],
    notes: list[str],
) -> FreshnessCheck:
    """The check's figures from its outcomes, and its verdict against the objective."""
    reflected = outcomes[outcomes["status"] == "reflected"].sort_values("lag_seconds")
    waiting = outcomes[outcomes["status"] == "pending"].sort_values("updated_at")
    p50, p95, longest = lag_percentiles(reflected["lag_seconds"].to_numpy(dtype=float))
    ages = seconds_between(
        np.full(len(waiting), np.datetime64(checked_at, "us")),
        waiting["updated_at"].to_numpy(dtype="datetime64[us]"),
    )
    oldest_age = float(ages.max()) if ages.size else None
    total = len(reflected) + len(waiting)
    shown = waiting.head(request.shown)
    breaches = []
    if p95 is not None and p95 > request.slo_p95_lag:
        breaches.append(
            f"p95 lag {human_seconds(p95)} is above the objective of "
            f"{human_seconds(request.slo_p95_lag)}"
        )
    if oldest_age is not None and oldest_age > request.max_unreflected_age:
        breaches.append(
            f"the oldest unreflected change has waited {human_seconds(oldest_age)}, "
            f"longer than {human_seconds(request.max_unreflected_age)}"
        )
    return FreshnessCheck(
        check_id=f"{checked_at:%Y%m%dT%H%M%S}-{secrets.token_hex(3)}",
        subject=subject,
        checked_at=checked_at,
        method=method,
        index_kind=index_kind,
        source=request.source,
        n_read=n_read,
        n_reflected=len(reflected),
        n_pending=len(waiting),
        n_superseded=n_superseded,
        lag_p50=p50,
        lag_p95=p95,
        lag_max=longest,
        unreflected_share=len(waiting) / total if total else None,
        oldest_unreflected_seconds=oldest_age,
        slo_p95_lag=request.slo_p95_lag,
        max_unreflected_age=request.max_unreflected_age,
        breaches=tuple(breaches),
        reflected=tuple(
            ReflectedChange(str(doc_id), updated, at, after, str(by), float(lag))
            for doc_id, updated, at, after, by, lag in zip(
                reflected["doc_id"],
                _moments(reflected["updated_at"]),
                _moments(reflected["reflected_at"]),
                _moments(reflected["reflected_after"]),
                reflected["reflected_by"],
                reflected["lag_seconds"],
                strict=True,
            )
        ),
        oldest=tuple(
            PendingChange(str(doc_id), updated, float(age), str(state), origins.get(doc_id, ""))
            for doc_id, updated, age, state in zip(
                shown["doc_id"],
                _moments(shown["updated_at"]),
                ages[: len(shown)],
                shown["state"],
                strict=True,
            )
        ),
        notes=tuple(notes),
    )


def _moments(column: pd.Series) -> list[datetime]:
    """A column of times as naive datetimes."""
    return list(column.to_numpy(dtype="datetime64[us]").tolist())


def _timed(
    check: FreshnessCheck,
    started: float,
    *,
    index_seconds: float,
    probe_seconds: float,
    n_probes: int,
    timings: dict[str, float],
) -> FreshnessCheck:
    own = max(0.0, time.perf_counter() - started - index_seconds - probe_seconds)
    return replace(
        check,
        index_seconds=index_seconds,
        probe_seconds=probe_seconds,
        n_probes=n_probes,
        evalkit_seconds=own,
        timings={name: round(value, 6) for name, value in timings.items()},
    )
