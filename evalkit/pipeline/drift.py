"""Drift workflows: embeddings, query windows, metric series, precision and a collection's
documents, each check stored (the query model's check is ``model_check``)."""

from __future__ import annotations

import glob
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from evalkit.drift import (
    AlertLevel,
    Cusum,
    PageHinkley,
    available_methods,
    cusum,
    make_detector,
    page_hinkley,
)
from evalkit.drift.traffic_precision import watch_traffic_precision
from evalkit.drift.watch import check_embeddings, load_embeddings, watch_precision
from evalkit.embedding.fingerprint import same_model
from evalkit.errors import ConfigError, InputError
from evalkit.records.drift import DriftCheck, DriftResult
from evalkit.records.requests import (
    DEFAULT_DOCUMENT_SAMPLE,
    DRIFT_TEST_DEFAULTS,
    METRIC_STREAM_MEASURE,
    METRIC_STREAM_METHOD,
    METRIC_STREAM_WARMUP,
    DriftTestSettings,
)
from evalkit.store import Store, utc_now
from evalkit.store.access import WriterAccess
from evalkit.store.drift import StoredDriftCheck, save_drift_check
from evalkit.store.runs import list_runs
from evalkit.store.traffic import latest_window_summary, list_window_summaries, window_embeddings

if TYPE_CHECKING:
    from evalkit.config import Settings


@dataclass(frozen=True, slots=True)
class DriftOutcome:
    """A drift check of a stream: the stored check, the test's result where a statistical
    test ran, and a note instead of a check when there was nothing to test yet.

    ``compared`` names what was compared (stream, subject, reference, current) when known.
    """

    check: StoredDriftCheck | None = None
    result: DriftResult | None = None
    note: str | None = None
    compared: Mapping[str, Any] = field(default_factory=dict)
    report: Path | None = None


def check_drift_embeddings(
    store: WriterAccess,
    reference: Path,
    current: Path,
    *,
    test: DriftTestSettings = DRIFT_TEST_DEFAULTS,
    stream: str = "queries",
    report_dir: Path | None = None,
) -> DriftOutcome:
    """Test two windows of embeddings (``.npy`` files) for drift as ``test`` says and store
    the check.

    The store is opened once both files have been read.
    """
    reference_array = load_embeddings(reference)
    current_array = load_embeddings(current)
    with store.writer("drift check") as writing:
        result, stored, report_path = check_embeddings(
            reference_array,
            current_array,
            test=test,
            stream=stream,
            reference_label=str(reference),
            current_label=str(current),
            store=writing,
            report_dir=report_dir,
        )
    return DriftOutcome(check=stored, result=result, report=report_path)


def query_drift_methods() -> tuple[str, ...]:
    """The methods ``check_drift_queries`` can test with (every registered detector)."""
    return available_methods()


def check_drift_settings(
    stream: str,
    method: str,
    *,
    alpha: float = DRIFT_TEST_DEFAULTS.alpha,
    seed: int = DRIFT_TEST_DEFAULTS.seed,
    warmup: int = METRIC_STREAM_WARMUP,
    options: Mapping[str, Any] | None = None,
) -> None:
    """Build the detector ``check_drift_queries`` (``stream = "queries"``) or
    ``check_drift_metric`` (``"metric"``) would build, and drop it: ConfigError naming a
    setting of ``options`` the method does not take or cannot use, before any data is read."""
    settings = dict(options or {})
    try:
        if stream == "metric":
            sequential = Cusum if method == "cusum" else PageHinkley
            sequential(warmup=warmup, **settings)
        else:
            make_detector(method, alpha=alpha, seed=seed, **settings)
    except TypeError as error:
        raise ConfigError(f"invalid settings for drift method {method!r}: {error}") from error


def check_drift_queries(
    store: Store,
    *,
    reference_window: str | None = None,
    test: DriftTestSettings = DRIFT_TEST_DEFAULTS,
    subject: str = "traffic",
    before_test: Callable[[], None] | None = None,
) -> DriftOutcome:
    """Test the newest replayed window's query embeddings against a reference window (default:
    the one before) as ``test`` says and store the check.

    Different embedding models store a ``model_mismatch`` finding; too little to compare stores
    nothing and notes why. ``before_test`` runs just before the test (a job's stop point).
    """
    summaries = list_window_summaries(store, limit=500)
    if not summaries:
        return DriftOutcome(note="no replayed traffic window yet")
    current = summaries[0]
    if reference_window is not None:
        reference = latest_window_summary(store, reference_window)
        if reference.window_label == current.window_label:
            # A window tested against itself always looks alike: its "ok" would be no
            # finding, and would resolve a drift alert that a newer window raised.
            return DriftOutcome(
                note=f"the reference window {reference.window_label} is the newest replayed "
                "window: no newer window to test against it yet"
            )
    else:
        older = [s for s in summaries if s.window_start < current.window_start]
        if not older:
            return DriftOutcome(note="only one replayed window so far")
        reference = older[0]
    compared: dict[str, Any] = {
        "stream": "queries",
        "subject": subject,
        "reference": reference.window_label,
        "current": current.window_label,
    }
    before, after = reference.embedded_with, current.embedded_with
    # Canary cosine, not the hash, tells one model from another: the same model's hash
    # differs between ONNX Runtime and torch. A window stored without its canaries, of
    # another hash, stays untested, as a drift test across two models would only alarm.
    if before is not None and after is not None and same_model(before, after) is not True:
        check = save_drift_check(
            store,
            DriftCheck(
                stream="queries",
                subject=subject,
                reference=reference.window_label,
                current=current.window_label,
                finding="model_mismatch",
                method="fingerprint",
                is_drift=False,
                statistic=before.canary_similarity(after),
                details={
                    "reference_model": reference.embedding_model,
                    "current_model": current.embedding_model,
                    "reference_fingerprint": before.canary_hash,
                    "current_fingerprint": after.canary_hash,
                    "lowest_canary_cosine": before.canary_similarity(after),
                },
            ),
        )
        return DriftOutcome(check=check, compared=compared)
    _, reference_vectors = window_embeddings(store, reference.run_id)
    _, current_vectors = window_embeddings(store, current.run_id)
    if len(reference_vectors) < 2 or len(current_vectors) < 2:
        return DriftOutcome(note="too few stored embeddings to test", compared=compared)
    if before_test is not None:
        before_test()
    result, stored, _ = check_embeddings(
        reference_vectors,
        current_vectors,
        test=test,
        stream="queries",
        subject=subject,
        reference_label=reference.window_label,
        current_label=current.window_label,
        store=store,
        details={"reference_run": reference.run_id, "current_run": current.run_id},
    )
    return DriftOutcome(check=stored, result=result, compared=compared)


def check_drift_metric(
    store: Store,
    goldset: str,
    *,
    measure: str = METRIC_STREAM_MEASURE,
    method: str = METRIC_STREAM_METHOD,
    label: str | None = None,
    warmup: int = METRIC_STREAM_WARMUP,
    options: Mapping[str, Any] | None = None,
    retriever: str | None = None,
) -> DriftOutcome:
    """Run a sequential detector (``page_hinkley`` or ``cusum``) over the series of a
    goldset measure's means in complete runs (only runs labelled ``label`` if given) of one
    retriever (``retriever``, as ``evalkit runs list`` names it; default: the newest run's),
    and store where the newest run stands. A series still inside its warm-up gives a note."""
    labelled = [
        run
        for run in list_runs(
            store, goldset=goldset, status="complete", limit=500, limit_per_retriever=True
        )
        if label is None or run.spec.label == label
    ]
    # Another retriever's runs are no point of this series: their means differ by design.
    followed = retriever
    if followed is None:
        followed = labelled[0].retriever_id if labelled else ""
    runs = [run for run in reversed(labelled) if run.retriever_id == followed]
    points = [(run, run.aggregates.get(measure)) for run in runs]
    series = [(run, float(value)) for run, value in points if value is not None]
    if len(series) <= warmup:
        others = sorted({run.retriever_id for run in labelled} - {followed})
        if not runs and others:
            # A misspelt retriever would otherwise read as a series still warming up.
            return DriftOutcome(
                note=f"no complete run of goldset {goldset!r} by {followed!r}; its runs are by "
                f"{', '.join(others)} (as `evalkit runs list` names them)"
            )
        return DriftOutcome(note=f"{len(series)} runs so far; the warm-up needs more")
    values = [value for _, value in series]
    detect = cusum if method == "cusum" else page_hinkley
    trace = detect(values, warmup=warmup, **dict(options or {}))
    last = trace.state(len(values) - 1)
    finding = {AlertLevel.OK: "ok", AlertLevel.WARNING: "warning", AlertLevel.ALERT: "drift"}
    check = save_drift_check(
        store,
        DriftCheck(
            stream="metric",
            subject=f"{goldset}:{measure}",
            finding=finding[last.level],
            method=method,
            is_drift=last.level is AlertLevel.ALERT,
            reference=series[0][0].run_id,
            current=series[-1][0].run_id,
            n_reference=warmup,
            n_current=len(values),
            statistic=last.statistic,
            effect_size=last.value - trace.baseline_mean,
            details={
                "baseline_mean": trace.baseline_mean,
                "baseline_sd": trace.baseline_sd,
                "latest": last.value,
                "retriever": followed,
                "change_point_run": (
                    series[last.change_point][0].run_id if last.change_point is not None else None
                ),
            },
        ),
    )
    return DriftOutcome(check=check)


check_traffic_precision = watch_traffic_precision
"""Precision on production traffic: every assessor's series of judged traffic windows per
retriever, Page-Hinkley plus a window test of the newest window, each check stored
(``evalkit.drift.traffic_precision``)."""

check_drift_precision = watch_precision
"""The precision workflow is the watch itself (``evalkit.drift.watch.watch_precision``):
every retriever's complete runs on a goldset, sequential detection plus a paired test of
the latest run against the baseline, each check stored."""


def collection_vectors(
    settings: Settings,
    collection: str,
    *,
    chroma_url: str | None = None,
    sample: int = DEFAULT_DOCUMENT_SAMPLE,
    seed: int = DRIFT_TEST_DEFAULTS.seed,
    outside: npt.NDArray[np.float32] | None = None,
) -> npt.NDArray[np.float32]:
    """A seeded sample of up to ``sample`` (at least 2) stored embeddings of a Chroma
    collection; with ``outside``, of its embeddings other than those rows."""
    if isinstance(sample, bool) or not isinstance(sample, int) or sample < 2:
        raise ConfigError(
            f"the document sample must be at least 2 documents (one cannot be tested), got "
            f"{sample!r}"
        )
    # Chroma is a heavy optional dependency: loaded only when a collection is read.
    from evalkit.retrievers.chroma_client import configured_collection

    with configured_collection(settings, collection, chroma_url) as opened:
        return _sample_vectors(opened, sample, seed, outside)


def _sample_vectors(
    collection: Any, sample: int, seed: int, outside: npt.NDArray[np.float32] | None = None
) -> npt.NDArray[np.float32]:
    ids = collection.get(include=[])["ids"]
    rng = np.random.default_rng(seed)
    if outside is None:
        chosen = sorted(rng.choice(len(ids), min(sample, len(ids)), replace=False).tolist())
        return _fetch_vectors(collection, [ids[index] for index in chosen])
    # Documents are read in a seeded order until ``sample`` lie outside the reference: a
    # window sharing its rows with the reference would make the test blind to what changed.
    known = {np.ascontiguousarray(row, dtype=np.float32).tobytes() for row in outside}
    order = rng.permutation(len(ids)).tolist()
    kept: list[npt.NDArray[np.float32]] = []
    n_kept = 0
    for start in range(0, len(order), 1000):
        batch = _fetch_vectors(collection, [ids[index] for index in order[start : start + 1000]])
        new = batch[[row.tobytes() not in known for row in batch]]
        kept.append(new[: sample - n_kept])
        n_kept += len(kept[-1])
        if n_kept >= sample:
            break
    return np.concatenate(kept) if n_kept else np.zeros((0, 0), dtype=np.float32)


def _fetch_vectors(collection: Any, ids: list[str]) -> npt.NDArray[np.float32]:
    vectors = []
    for start in range(0, len(ids), 1000):
        got = collection.get(ids=ids[start : start + 1000], include=["embeddings"])
        vectors.append(np.asarray(got["embeddings"], dtype=np.float32))
    return np.concatenate(vectors) if vectors else np.zeros((0, 0), dtype=np.float32)


def save_documents_reference(
    settings: Settings,
    collection: str,
    *,
    chroma_url: str | None = None,
    sample: int = DEFAULT_DOCUMENT_SAMPLE,
    seed: int = DRIFT_TEST_DEFAULTS.seed,
) -> tuple[Path, int]:
    """Save a reference snapshot of a collection's embeddings under ``home/snapshots``
    for ``check_drift_documents``; its path and the number of vectors saved."""
    vectors = collection_vectors(
        settings, collection, chroma_url=chroma_url, sample=sample, seed=seed
    )
    if len(vectors) < 2:
        raise ConfigError(
            f"collection {collection!r} holds {len(vectors)} embedded documents; a reference "
            "snapshot needs at least 2 (index the corpus first)"
        )
    snapshots = settings.home / "snapshots"
    snapshots.mkdir(parents=True, exist_ok=True)
    path = snapshots / f"{collection}-{utc_now():%Y%m%dT%H%M%S}.npy"
    np.save(path, vectors)
    return path, len(vectors)


def check_drift_documents(
    store: WriterAccess,
    settings: Settings,
    collection: str,
    *,
    chroma_url: str | None = None,
    reference: Path | None = None,
    sample: int = DEFAULT_DOCUMENT_SAMPLE,
    test: DriftTestSettings = DRIFT_TEST_DEFAULTS,
    report_dir: Path | None = None,
    first_reference: bool = False,
) -> DriftOutcome:
    """Test a sample of a collection's embeddings against a reference snapshot (default the
    newest) as ``test`` says and store the check; with ``first_reference`` and none yet, save
    one. The sample avoids the reference's rows where it can; the store opens after reading.
    """
    if reference is None and first_reference and not _snapshots(settings, collection):
        path, n_vectors = save_documents_reference(
            settings, collection, chroma_url=chroma_url, sample=sample, seed=test.seed
        )
        return DriftOutcome(
            note=f"no reference snapshot of {collection} yet: saved one of {n_vectors} "
            f"vectors ({path}); the next check tests against it",
            compared={"stream": "documents", "subject": collection, "reference": str(path)},
        )
    if reference is None:
        reference = newest_snapshot(settings, collection)
    reference_vectors = load_embeddings(reference)
    if len(reference_vectors) < 2:
        raise InputError(
            f"holds {len(reference_vectors)} vectors, too few to test against; save a new "
            f"reference with `evalkit drift documents --collection {collection} "
            "--save-reference`",
            path=str(reference),
        )
    vectors = collection_vectors(
        settings,
        collection,
        chroma_url=chroma_url,
        sample=sample,
        seed=test.seed,
        outside=reference_vectors,
    )
    if len(vectors) < 2:
        vectors = collection_vectors(
            settings, collection, chroma_url=chroma_url, sample=sample, seed=test.seed
        )
    if len(vectors) < 2:
        raise ConfigError(
            f"collection {collection!r} holds {len(vectors)} embedded documents; a drift "
            "check needs at least 2 (index the corpus first)"
        )
    with store.writer("drift check") as writing:
        result, stored, report_path = check_embeddings(
            reference_vectors,
            vectors,
            test=test,
            stream="documents",
            subject=collection,
            reference_label=str(reference),
            current_label=f"{collection} now",
            store=writing,
            report_dir=report_dir,
        )
    compared = {
        "stream": "documents",
        "subject": collection,
        "reference": str(reference),
        "current": f"{collection} now",
    }
    return DriftOutcome(check=stored, result=result, report=report_path, compared=compared)


def _snapshots(settings: Settings, collection: str) -> list[Path]:
    """The reference snapshots of ``collection`` saved under ``home/snapshots``, oldest first
    (not those of another collection whose name it starts: ``docs`` and ``docs-v2``)."""
    stamp = re.compile(re.escape(collection) + r"-\d{8}T\d{6}\.npy")
    return sorted(
        path
        for path in (settings.home / "snapshots").glob(f"{glob.escape(collection)}-*.npy")
        if stamp.fullmatch(path.name)
    )


def newest_snapshot(settings: Settings, collection: str) -> Path:
    """The newest reference snapshot ``save_documents_reference`` saved of ``collection``
    (not of another collection whose name it starts: ``docs`` and ``docs-v2``)."""
    saved = _snapshots(settings, collection)
    if not saved:
        raise ConfigError(
            f"no reference snapshot of {collection}: save one first with "
            f"`evalkit drift documents --collection {collection} --save-reference`"
        )
    return saved[-1]
