"""Drift checks on what evalkit watches, stored with their evidence.

``check_embeddings`` tests a window of query or document embeddings against a reference;
``check_query_model`` compares the query model with the index's fingerprint, a mismatch being
its own finding (``model_mismatch``), never mere drift, because retrieval across two
embedding spaces is silently wrong; ``watch_precision`` watches a goldset's run series.
docs/drift.md.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from evalkit.drift.base import make_detector
from evalkit.drift.sequential import AlertLevel, page_hinkley
from evalkit.embedding import ModelFingerprint
from evalkit.errors import ConfigError, InputError
from evalkit.metrics import parse_measure
from evalkit.records.audit import Reembedding
from evalkit.records.drift import DriftCheck, DriftResult
from evalkit.records.jsonready import JsonReady
from evalkit.records.requests import (
    DRIFT_TEST_DEFAULTS,
    PRECISION_WATCH_DEFAULTS,
    PRECISION_WATCH_MEASURE,
    DriftTestSettings,
    PairedTestSettings,
)
from evalkit.stats import Comparison, Decision, compare_stored_runs
from evalkit.store import utc_now
from evalkit.store.drift import save_drift_check
from evalkit.store.goldsets import require_goldset
from evalkit.store.retention import oldest_kept_run, pruned_at
from evalkit.store.runs import list_runs

if TYPE_CHECKING:
    from evalkit.embedding import TextEmbedder
    from evalkit.store import Store
    from evalkit.store.drift import StoredDriftCheck
    from evalkit.store.runs import RunRecord

__all__ = [
    "ModelCheck",
    "PrecisionCheck",
    "PrecisionWatch",
    "SeriesDrops",
    "SkippedSeries",
    "check_embeddings",
    "check_query_model",
    "load_embeddings",
    "watch_drops",
    "watch_precision",
    "write_evidently_report",
]

EVIDENTLY_MAX_ROWS = 2_000
"""Rows per window given to Evidently: its default embedding method trains a classifier
and renders every point, which is slow and heavy on large windows."""


def load_embeddings(path: Path | str) -> npt.NDArray[np.float32]:
    """Read an (n, dimension) array from a ``.npy`` file; raises InputError naming the file."""
    location = Path(path)
    if not location.is_file():
        raise InputError("no such file", path=str(location))
    with location.open("rb") as handle:
        head = handle.read(len(_NPY_MAGIC))
    if head != _NPY_MAGIC:
        what = "a .npz archive of arrays" if head.startswith(b"PK") else "not a .npy file"
        raise InputError(
            f"{what}: give one array saved with numpy.save (its file starts with numpy's header)",
            path=str(location),
        )
    try:
        array = np.load(location, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise InputError(f"not a readable .npy array: {error}", path=str(location)) from error
    real = np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)
    if array.ndim != 2 or not real:
        raise InputError(
            f"expected a 2-D array of real numbers (rows x dimensions), got shape "
            f"{array.shape} of {array.dtype}",
            path=str(location),
        )
    finite = array[np.isfinite(array)] if np.issubdtype(array.dtype, np.floating) else array
    if finite.size != array.size:
        bad = np.flatnonzero(~np.isfinite(array).all(axis=1))
        raise InputError(
            f"holds NaN or infinite values (first bad rows: {bad[:5].tolist()}); drop or "
            "re-embed those rows",
            path=str(location),
        )
    if finite.size and float(np.abs(finite).max()) > _FLOAT32_MAX:
        raise InputError(
            f"holds values beyond float32's range (±{_FLOAT32_MAX:.3g}), which embeddings "
            "never reach",
            path=str(location),
        )
    return np.ascontiguousarray(array, dtype=np.float32)


_NPY_MAGIC = b"\x93NUMPY"
_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "window"


def write_evidently_report(
    reference: npt.NDArray[np.float32],
    current: npt.NDArray[np.float32],
    path: Path,
    *,
    name: str = "embeddings",
    seed: int = 0,
) -> Path:
    """Write Evidently's embedding-drift and data-drift presets over the same windows as HTML.

    Windows larger than ``EVIDENTLY_MAX_ROWS`` are subsampled (seeded) for the report only;
    evalkit's own verdict is always computed on the full windows.
    """
    import pandas as pd
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import EmbeddingsDrift
    from evidently.presets import DataDriftPreset

    rng = np.random.default_rng(seed)

    def frame(array: npt.NDArray[np.float32]) -> pd.DataFrame:
        if len(array) > EVIDENTLY_MAX_ROWS:
            array = array[rng.choice(len(array), EVIDENTLY_MAX_ROWS, replace=False)]
        return pd.DataFrame(array, columns=columns)

    columns = [f"{name}_{index}" for index in range(reference.shape[1])]
    definition = DataDefinition(numerical_columns=columns, embeddings={name: columns})
    report = Report([EmbeddingsDrift(embeddings_name=name), DataDriftPreset(columns=columns)])
    snapshot = report.run(
        current_data=Dataset.from_pandas(frame(current), data_definition=definition),
        reference_data=Dataset.from_pandas(frame(reference), data_definition=definition),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    snapshot.save_html(str(path))
    return path


def check_embeddings(
    reference: npt.ArrayLike,
    current: npt.ArrayLike,
    *,
    test: DriftTestSettings = DRIFT_TEST_DEFAULTS,
    stream: str = "queries",
    subject: str | None = None,
    reference_label: str | None = None,
    current_label: str | None = None,
    store: Store | None = None,
    report_dir: Path | None = None,
    details: Mapping[str, Any] | None = None,
) -> tuple[DriftResult, StoredDriftCheck | None, Path | None]:
    """Test two embedding windows for drift as ``test`` says; store the check and write a
    report if asked.

    ``details`` (where the windows came from, say) are stored beside the test's own.
    """
    reference_array = np.asarray(reference, dtype=np.float32)
    current_array = np.asarray(current, dtype=np.float32)
    if reference_array.ndim != 2 or current_array.ndim != 2:
        raise InputError("embedding windows must be 2-D arrays (rows x dimensions)")
    if reference_array.shape[1] != current_array.shape[1]:
        raise InputError(
            f"the windows have different dimensions ({reference_array.shape[1]} vs "
            f"{current_array.shape[1]}): they come from different embedding models; "
            "run `evalkit drift model` instead"
        )
    detector = make_detector(test.method, alpha=test.alpha, seed=test.seed, **test.options)
    result = detector.fit(reference_array).test(current_array)
    report_path = None
    if report_dir is not None:
        label = _safe_name(f"{stream}-{subject or 'window'}-{utc_now():%Y%m%dT%H%M%S}")
        report_path = write_evidently_report(
            reference_array,
            current_array,
            report_dir / f"drift-{label}.html",
            name=_safe_name(stream),
            seed=test.seed,
        )
    stored = None
    if store is not None:
        stored = save_drift_check(
            store,
            DriftCheck.of_result(
                result,
                stream=stream,
                subject=subject,
                reference=reference_label,
                current=current_label,
                details=details,
                report_path=str(report_path) if report_path else None,
            ),
        )
    return result, stored, report_path


@dataclass(frozen=True, slots=True)
class ModelCheck:
    """Whether the query model embeds as the model the index was built with.

    ``finding``: ``ok``, ``model_mismatch`` or ``unknown``; ``canary_similarity`` the lowest
    cosine between the two models' canary embeddings; ``evidence`` what the finding rests on
    (docs/drift.md, "The model check"); ``check_id`` None when not stored.
    """

    finding: str
    index_model: ModelFingerprint | None
    query_model: ModelFingerprint
    canary_similarity: float | None
    message: str
    evidence: tuple[str, ...] = ()
    reembedding: Mapping[str, Any] | None = None
    check_id: str | None = None

    @property
    def is_mismatch(self) -> bool:
        """True when the two models differ."""
        return self.finding == "model_mismatch"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (fingerprints without their raw canary vectors)."""

        def brief(fingerprint: ModelFingerprint | None) -> dict[str, Any] | None:
            if fingerprint is None:
                return None
            return {
                "name": fingerprint.name,
                "dimension": fingerprint.dimension,
                "fingerprint": fingerprint.canary_hash,
            }

        return {
            "check_id": self.check_id,
            "finding": self.finding,
            "is_mismatch": self.is_mismatch,
            "index_model": brief(self.index_model),
            "query_model": brief(self.query_model),
            "canary_similarity": self.canary_similarity,
            "evidence": list(self.evidence),
            "reembedding": dict(self.reembedding) if self.reembedding is not None else None,
            "message": self.message,
        }


def _vector_verdict(
    query_model: ModelFingerprint, reembedded: Reembedding | None, stored_dimension: int | None
) -> tuple[bool | None, str | None]:
    """What the stored vectors say: whether the query model made them (None: nothing to
    tell by) and the sentence saying why."""
    if stored_dimension is not None and stored_dimension != query_model.dimension:
        return False, (
            f"the collection stores {stored_dimension}-dimensional vectors but the query "
            f"model {query_model.name} makes {query_model.dimension}-dimensional ones"
        )
    if reembedded is None or not len(reembedded):
        return None, None
    summary = reembedded.summary()
    others, sampled = summary["other_model"], summary["sampled"]
    if others:
        return False, (
            f"{others} of {sampled} stored documents re-embedded from their text with "
            f"{query_model.name} do not reproduce their stored vectors (lowest cosine "
            f"{summary['lowest_cosine']:.4f} < {reembedded.min_cosine}): the vectors were made "
            "by another model, or moved into another space, whatever the collection records"
        )
    return True, None


def _evidence_words(
    index_model: ModelFingerprint | None,
    similarity: float | None,
    reembedded: Reembedding | None,
    stored_dimension: int | None,
) -> tuple[tuple[str, ...], str]:
    """The names of the evidence used, and one sentence listing it."""
    names: list[str] = []
    parts: list[str] = []
    if index_model is not None:
        names.append("canary_fingerprint")
        cosine = f", lowest canary cosine {similarity:.4f}" if similarity is not None else ""
        parts.append(f"the model fingerprint the collection records ({index_model.name}{cosine})")
    else:
        parts.append("no model fingerprint (the collection records none)")
    if stored_dimension is not None and reembedded is None:
        names.append("vector_dimension")
        parts.append(f"the stored vectors' dimension ({stored_dimension})")
    elif reembedded is not None and len(reembedded):
        names.append("reembedded_sample")
        summary = reembedded.summary()
        replaced = summary["content_replaced"]
        parts.append(
            f"{summary['sampled']} stored documents re-embedded from their text "
            f"({summary['sampled'] - summary['other_model'] - replaced} reproduce their "
            f"vectors, lowest cosine {summary['lowest_cosine']:.4f}"
            + (
                f"; {replaced} hold a text that is not their own, replaced content rather "
                "than another model: `evalkit audit --source CORPUS` lists them"
                if replaced
                else ""
            )
            + ")"
        )
    elif reembedded is not None:
        parts.append("no stored text to re-embed")
    return tuple(names), "Evidence: " + "; ".join(parts) + "."


def check_query_model(
    index_model: ModelFingerprint | None,
    query_embedder: TextEmbedder,
    *,
    subject: str | None = None,
    store: Store | None = None,
    reembedded: Reembedding | None = None,
    stored_dimension: int | None = None,
) -> ModelCheck:
    """Compare the query model with the index's: the canary strings re-embedded against
    the fingerprint the index records and, when given, stored documents re-embedded from
    their text (``reembedded``, see ``evalkit.audit.model.reembed_stored``) or the stored
    vectors' dimension. Either kind of evidence that the models differ is a mismatch."""
    query_model = query_embedder.fingerprint
    similarity = index_model.canary_similarity(query_model) if index_model else None
    by_canary = index_model.matches(query_model) if index_model else None
    by_vectors, vector_problem = _vector_verdict(query_model, reembedded, stored_dimension)
    names, evidence = _evidence_words(index_model, similarity, reembedded, stored_dimension)
    if by_canary is False:
        assert index_model is not None  # a verdict needs a fingerprint
        finding = "model_mismatch"
        message = (
            f"the index was built with {index_model.name} ({index_model.dimension}d, "
            f"fingerprint {index_model.canary_hash}) but queries are embedded with "
            f"{query_model.name} ({query_model.dimension}d, fingerprint "
            f"{query_model.canary_hash}): retrieval across two embedding spaces is "
            "silently wrong; re-index with `evalkit index --rebuild` or configure the "
            "index's model"
        )
    elif by_vectors is False:
        finding = "model_mismatch"
        message = (
            f"{vector_problem}: retrieval across two embedding spaces is silently wrong; "
            "rebuild the collection with the query model (`evalkit index --rebuild`) or "
            "query it with the model that built it"
        )
    elif by_canary or by_vectors:
        finding = "ok"
        message = f"query model {query_model.name} embeds as the index's model"
    else:
        finding = "unknown"
        message = (
            "the index carries no model fingerprint (it was not built by evalkit index)"
            + (" and stores no text to re-embed" if reembedded is not None else "")
            + "; run `evalkit audit` to compare stored vectors with re-embedded ones"
        )
    check = ModelCheck(
        finding=finding,
        index_model=index_model,
        query_model=query_model,
        canary_similarity=similarity,
        message=f"{message}. {evidence}",
        evidence=names,
        reembedding=reembedded.summary() if reembedded is not None else None,
    )
    if store is not None:
        stored = save_drift_check(
            store,
            DriftCheck(
                stream="model",
                subject=subject,
                finding=check.finding,
                method="+".join(names) or "canary_fingerprint",
                is_drift=check.is_mismatch,
                reference=index_model.canary_hash if index_model else None,
                current=query_model.canary_hash,
                statistic=check.canary_similarity,
                n_current=len(reembedded) if reembedded is not None else None,
                details=check.to_dict(),
            ),
        )
        check = replace(check, check_id=stored.check_id)
    return check


@dataclass(frozen=True, slots=True)
class PrecisionCheck:
    """Precision over time for one goldset x retriever.

    ``series`` holds (run_id, started_at, value) of complete runs, oldest first; ``levels``
    the detector's level after each run (``warming up`` within ``warmup``); ``paired`` the
    latest run against the baseline (None with fewer than two runs); ``partial_runs`` the
    partial runs left out; ``check_id`` None when not stored. docs/drift.md.
    """

    goldset: str
    subject: str
    measure: str
    series: tuple[tuple[str, str, float], ...]
    levels: tuple[str, ...]
    change_point: str | None
    baseline_run: str | None
    paired: Comparison | None
    finding: str
    details: Mapping[str, Any] = field(default_factory=dict)
    warmup: int = 0
    partial_runs: int = 0
    check_id: str | None = None

    @property
    def warming_up(self) -> bool:
        """True while the sequential detector has seen no run past its warm-up."""
        return len(self.series) <= self.warmup

    def shown_levels(self) -> list[str]:
        """Per run: the detector's level, or ``warming up`` for runs inside the warm-up."""
        return [
            "warming up" if index < self.warmup else level
            for index, level in enumerate(self.levels)
        ]

    def status(self) -> str:
        """The finding as shown: ``warming up (n of N runs)`` instead of a bare ``ok``."""
        if self.finding == "ok" and self.warming_up:
            return f"warming up ({len(self.series)} of {self.warmup} runs)"
        return self.finding

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "check_id": self.check_id,
            "goldset": self.goldset,
            "subject": self.subject,
            "measure": self.measure,
            "finding": self.finding,
            "status": self.status(),
            "is_drift": self.finding == "drift",
            "warmup": self.warmup,
            "warming_up": self.warming_up,
            "partial_runs_left_out": self.partial_runs,
            "series": [
                {"run_id": run_id, "started_at": started, "value": value, "level": level}
                for (run_id, started, value), level in zip(
                    self.series, self.shown_levels(), strict=True
                )
            ],
            "change_point": self.change_point,
            "baseline_run": self.baseline_run,
            "paired": self.paired.to_dict() if self.paired else None,
            "details": dict(self.details),
        }


@dataclass(frozen=True, slots=True)
class SkippedSeries(JsonReady):
    """A retriever's series that ``watch_precision`` could not check, and why."""

    subject: str
    runs: int
    reason: str


@dataclass(frozen=True, slots=True)
class PrecisionWatch:
    """What ``watch_precision`` checked, and the series it skipped (never silently)."""

    checks: list[PrecisionCheck]
    skipped: list[SkippedSeries]


def watch_precision(
    store: Store,
    goldset: str,
    *,
    measure: str = PRECISION_WATCH_MEASURE,
    subject: str | None = None,
    baseline_run: str | None = None,
    test: PairedTestSettings = PRECISION_WATCH_DEFAULTS,
    warmup: int | None = None,
    h_warning: float = 5.0,
    h_alert: float = 8.0,
    limit: int = 500,
    save: bool = True,
) -> PrecisionWatch:
    """Check every retriever evaluated on ``goldset`` (or only ``subject``) for a drop.

    Page-Hinkley over each retriever's (``RunRecord.retriever_id``) newest ``limit`` complete
    run means, and the latest run against ``baseline_run`` (default: the oldest that kept its
    per-query results) by the paired test ``test``. A retriever with no complete run is in
    ``skipped`` with the reason. docs/drift.md, "``evalkit drift precision``".
    """
    parse_measure(measure)  # a misspelt measure is named as such, not as "no runs with it"
    scored = [
        run
        for run in reversed(
            list_runs(store, goldset=goldset, limit=limit, limit_per_retriever=True)
        )
        if run.status in ("complete", "partial") and measure in run.aggregates
    ]
    every: dict[str, list[RunRecord]] = {}
    for run in scored:
        every.setdefault(run.retriever_id, []).append(run)
    if subject is not None:
        if subject not in every:
            raise ConfigError(
                f"no runs of goldset {goldset!r} for {subject!r}; known: {', '.join(every)}"
            )
        every = {subject: every[subject]}
    pinned_run = _pinned_baseline(every, baseline_run, goldset=goldset, measure=measure)
    groups = {key: [run for run in runs if run.status == "complete"] for key, runs in every.items()}
    skipped = [
        SkippedSeries(
            subject=key,
            runs=len(every[key]),
            reason=(
                f"all {len(every[key])} runs are partial (queries failed; newest "
                f"{every[key][-1].run_id}: {every[key][-1].error}): replay once the "
                "retriever answers every query"
            ),
        )
        for key, runs in groups.items()
        if not runs
    ]
    groups = {key: runs for key, runs in groups.items() if runs}
    # Retention may have deleted the per-query rows of a series' oldest runs: the default
    # baseline is its oldest run that still has them.
    pruned = pruned_at(store, [run.run_id for runs in groups.values() for run in runs])
    if not every:
        require_goldset(store, goldset)  # a misspelt goldset is named as such
    if not groups:
        raise ConfigError(
            f"no complete runs of goldset {goldset!r} with {measure}"
            + "".join(f"; {item.subject}: {item.reason}" for item in skipped)
            + f": run `evalkit run --goldset {goldset} ...` (or schedule it) first"
        )
    checks = []
    for key, series_runs in groups.items():
        values = np.array([float(run.aggregates[measure] or 0.0) for run in series_runs])
        drops = watch_drops(values, warmup=warmup, h_warning=h_warning, h_alert=h_alert)
        levels, warm = drops.levels, drops.warmup
        change_point = (
            None if drops.change_point is None else series_runs[drops.change_point].run_id
        )
        details: dict[str, Any] = dict(drops.details)
        # A pinned baseline is the baseline of its own retriever's series only: another
        # retriever's runs differ from it by design, not by drift.
        kept = [run for run in series_runs if run.run_id not in pruned] or series_runs
        pinned = (
            pinned_run.run_id
            if pinned_run is not None and pinned_run.retriever_id == key
            else oldest_kept_run(store, goldset=goldset, retriever_id=key, measure=measure)
            or kept[0].run_id
        )
        paired = None
        latest = series_runs[-1]
        if latest.run_id == pinned and len(series_runs) > 1:
            details["paired_skipped"] = (
                f"no paired test: the latest run {latest.run_id} is the only run of the "
                "series that still has its per-query results"
            )
        elif latest.run_id in pruned:
            # A retriever no longer run: retention pruned its newest run too. Its series
            # still shows; only the paired test has nothing to pair (the others carry on).
            details["paired_skipped"] = (
                f"no paired test: retention deleted the per-query results of the latest run "
                f"{latest.run_id}"
            )
        elif latest.run_id != pinned:
            report = compare_stored_runs(
                store, pinned, latest.run_id, [measure], test, worst=0, failed_as_zero=True
            )
            paired = report.comparison
        finding = drops.finding(
            regression=paired is not None and paired.decision is Decision.REGRESSION
        )
        check = PrecisionCheck(
            goldset=goldset,
            subject=key,
            measure=measure,
            series=tuple(
                (run.run_id, run.started_at.isoformat() + "Z", float(value))
                for run, value in zip(series_runs, values, strict=True)
            ),
            levels=tuple(levels),
            change_point=change_point,
            baseline_run=pinned,
            paired=paired,
            finding=finding,
            details=details,
            warmup=warm,
            partial_runs=len(every[key]) - len(series_runs),
        )
        if save:
            stored = _save_precision(store, check, alpha=test.alpha, seed=test.seed)
            check = replace(check, check_id=stored.check_id)
        checks.append(check)
    return PrecisionWatch(checks=checks, skipped=skipped)


def _pinned_baseline(
    every: Mapping[str, list[RunRecord]], baseline_run: str | None, *, goldset: str, measure: str
) -> RunRecord | None:
    """The run ``baseline_run`` (an id or its prefix) names among the scored runs of
    ``goldset``, or None when none is pinned; ConfigError when it names none or several."""
    if baseline_run is None:
        return None
    found = {
        run.run_id: run
        for runs in every.values()
        for run in runs
        if run.run_id == baseline_run or run.run_id.startswith(baseline_run)
    }
    if len(found) != 1:
        problem = "names several runs" if found else "is no scored run"
        raise ConfigError(
            f"baseline {baseline_run} {problem} of goldset {goldset!r} with {measure}"
            + (f" ({', '.join(sorted(found))})" if found else "; `evalkit runs list` lists them")
        )
    return next(iter(found.values()))


MIN_WARMUP = 5
"""The fewest runs whose spread Page-Hinkley learns before it judges: from 2 runs the spread
is a guess (11 % of stable series alarmed by their 20th run, against 0.5 % from 5; measured
in docs/drift.md). Until then only the calibrated paired test finds drift."""


@dataclass(frozen=True, slots=True)
class SeriesDrops:
    """Page-Hinkley over a series of means, watching for a drop: the level after each point,
    the index where the newest change began (None when the level is ok), the warm-up used,
    and the detector's figures (empty with fewer than three points, which it cannot judge)."""

    levels: tuple[str, ...]
    change_point: int | None
    warmup: int
    details: Mapping[str, Any]

    def finding(self, *, regression: bool) -> str:
        """``drift`` when the newest level is ``alert`` or a test of the newest point against
        the baseline found a ``regression``, ``warning`` when the newest level is
        ``warning``, else ``ok``."""
        if self.levels[-1] == "alert" or regression:
            return "drift"
        if self.levels[-1] == "warning":
            return "warning"
        return "ok"


def watch_drops(
    values: npt.NDArray[np.float64],
    *,
    warmup: int | None,
    h_warning: float,
    h_alert: float,
) -> SeriesDrops:
    """Page-Hinkley for drops over ``values`` (oldest first), with a warm-up of ``warmup``
    points (default: half the series, ``MIN_WARMUP`` to 10), as the goldset and the traffic
    precision watches run it."""
    warm = warmup or max(MIN_WARMUP, min(10, len(values) // 2))
    if len(values) < 3 or len(values) <= warm:
        return SeriesDrops(("ok",) * len(values), None, warm, {})
    trace = page_hinkley(
        values, warmup=warm, h_warning=h_warning, h_alert=h_alert, direction="drop"
    )
    last = trace.state(len(values) - 1)
    changed = last.change_point is not None and last.level is not AlertLevel.OK
    return SeriesDrops(
        levels=tuple(str(level) for level in trace.levels),
        change_point=last.change_point if changed else None,
        warmup=warm,
        details={
            "method": trace.method,
            "warmup": warm,
            "baseline_mean": trace.baseline_mean,
            "baseline_sd": trace.baseline_sd,
            "statistic": float(trace.statistic[-1]),
        },
    )


def _save_precision(
    store: Store, check: PrecisionCheck, *, alpha: float, seed: int
) -> StoredDriftCheck:
    paired = check.paired
    metric = paired.metric(check.measure) if paired else None
    return save_drift_check(
        store,
        DriftCheck(
            stream="precision",
            subject=f"{check.goldset}|{check.subject}",
            finding=check.finding,
            method="page_hinkley+paired",
            is_drift=check.finding == "drift",
            reference=check.baseline_run,
            current=check.series[-1][0],
            n_reference=len(check.series),
            n_current=metric.n if metric else None,
            statistic=check.details.get("statistic"),
            p_value=metric.p_adjusted if metric else None,
            threshold=alpha,
            effect_size=metric.delta if metric else None,
            seed=seed,
            details={
                "measure": check.measure,
                "levels": list(check.levels),
                "change_point": check.change_point,
                "paired_decision": paired.decision.value if paired else None,
                **dict(check.details),
            },
        ),
    )
