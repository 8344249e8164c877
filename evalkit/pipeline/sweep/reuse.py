"""Which points of a sweep have a run to reuse: a point's identity (``point_key``, its
``sweep-point:HASH`` tag) and whether a complete run's index fingerprint still matches the
index (``earlier_runs``), since the hash covers the settings, not what the index holds
(docs/sweeps.md, "Every point is a run").
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from evalkit.config import Settings
from evalkit.embedding import build_query_embedder
from evalkit.goldset.model import Goldset
from evalkit.pipeline.sweep.file import (
    DEFAULT_EMBEDDER,
    Sweep,
    SweepPoint,
)
from evalkit.pipeline.sweep.points import point_depth, point_options, point_settings
from evalkit.retrievers.base import description_of
from evalkit.retrievers.factory import RetrieverOptions, build_retriever
from evalkit.store import RunRecord
from evalkit.store.access import WriterAccess
from evalkit.store.run_identity import index_changed
from evalkit.store.runs import list_runs

__all__ = [
    "INDEX_CHANGED",
    "INDEX_UNREADABLE",
    "EarlierRuns",
    "PointRerun",
    "earlier_runs",
    "key_tag",
    "point_key",
]

INDEX_CHANGED = "index_changed"
"""Why a point with a complete run runs again: its index gives another fingerprint now (the
name ``evalkit explain`` gives the cause)."""
INDEX_UNREADABLE = "index_unreadable"
"""Why a point with a complete run runs again: its index gives no fingerprint now (the
collection is gone, the store is down), so it cannot be told to be the index the run
searched."""
_SAID = {
    INDEX_CHANGED: ("index changed since it ran", "index changed since they ran"),
    INDEX_UNREADABLE: (
        "index could not be read to check it",
        "index could not be read to check them",
    ),
}


@dataclass(frozen=True, slots=True)
class PointRerun:
    """A point's complete run that is not reused (``run_id``), and why (``reason``:
    ``INDEX_CHANGED`` or ``INDEX_UNREADABLE``)."""

    run_id: str
    reason: str

    def said(self, *, points: int = 1) -> str:
        """The reason in words, of one point or of ``points`` of them alike."""
        one, many = _SAID[self.reason]
        return one if points == 1 else many

    def to_dict(self) -> dict[str, str]:
        """JSON-ready form."""
        return {"run_id": self.run_id, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class EarlierRuns:
    """What the store holds for a sweep's points, by point number: the complete run each
    reuses (``reused``), and the points whose complete runs searched another index
    (``rerun``)."""

    reused: Mapping[int, RunRecord]
    rerun: Mapping[int, PointRerun]


def point_key(sweep: Sweep, goldset: Goldset, settings: Settings, point: SweepPoint) -> str:
    """A hash of everything that makes the point's figures, as the sweep file and the
    settings say (its latency too: a query's is its share of its batch's time); the index's
    contents are checked apart (``earlier_runs``)."""
    name = point.get("embedder")
    embedder = (
        sweep.embedders[name].model_dump(mode="json")
        if name is not None and name != DEFAULT_EMBEDDER
        else {**settings.embedder.model_dump(mode="json"), "model_path": settings.model_path}
    )
    identity = {
        "sweep": sweep.name,
        "goldset": goldset.name,
        "goldset_version": goldset.version,
        "measures": list(sweep.measures),
        "k": point_depth(point, sweep, settings),
        "relevance_threshold": settings.relevance_threshold,
        "query_batch_size": settings.query_batch_size,
        "retriever": sweep.retriever.model_dump(mode="json"),
        "retriever_settings": settings.retriever.model_dump(mode="json"),
        "chroma": settings.chroma_url or settings.resolved_chroma_path,
        "settings": [[key, value] for key, value in point.settings],
        "embedder": embedder,
    }
    text = json.dumps(identity, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def key_tag(key: str) -> str:
    """The tag of the runs of the point whose ``point_key`` is ``key``."""
    return f"sweep-point:{key}"


def earlier_runs(
    store: WriterAccess, sweep: Sweep, settings: Settings, keys: Sequence[str]
) -> EarlierRuns:
    """The complete run each point of ``sweep`` (``keys``: their ``point_key``, in order)
    reuses: the newest whose index is the point's index now, by the index fingerprints
    (``index_changed``), or the newest when it recorded no fingerprint. A point whose
    complete runs all searched another index, or whose index cannot be read now, is in
    ``rerun``. Each index is opened once, its query model not loaded."""
    with store.writer(f"sweep {sweep.name}") as opened:
        found = {
            number: runs
            for number, key in enumerate(keys, start=1)
            if (runs := list_runs(opened, tag=key_tag(key), status="complete"))
        }
    indexes: dict[str, _IndexNow] = {}
    reused: dict[int, RunRecord] = {}
    rerun: dict[int, PointRerun] = {}
    for number, runs in found.items():
        if runs[0].spec.index_fingerprint is None:
            reused[number] = runs[0]
            continue
        now = _index_now(sweep, settings, sweep.points[number - 1], indexes)
        same = next((run for run in runs if now.searched_by(run)), None)
        if same is not None:
            reused[number] = same
        else:
            reason = INDEX_CHANGED if now.fingerprint is not None else INDEX_UNREADABLE
            rerun[number] = PointRerun(runs[0].run_id, reason)
    return EarlierRuns(reused=reused, rerun=rerun)


@dataclass(frozen=True, slots=True)
class _IndexNow:
    """A point's index as it is now: its fingerprint (None: it cannot be read) and its
    retriever's description (what ``index_changed`` reads beside the fingerprint)."""

    fingerprint: str | None
    description: Mapping[str, Any]

    def searched_by(self, run: RunRecord) -> bool:
        """Whether ``run`` searched this index."""
        if self.fingerprint is None:
            return False
        now = dataclasses.replace(
            run.spec, index_fingerprint=self.fingerprint, retriever_config=self.description
        )
        return not index_changed(run.spec, now)


def _index_now(
    sweep: Sweep, settings: Settings, point: SweepPoint, indexes: dict[str, _IndexNow]
) -> _IndexNow:
    """The index ``point`` searches, opened as its run opens it but without its search
    settings and with its query model left unloaded; cached in ``indexes``."""
    at_point = point_settings(sweep, settings, point)
    # Chroma's ef_search is written into the collection (and the store reopened) for a run;
    # the fingerprint does not depend on it, so the check leaves the collection alone.
    chroma = at_point.retriever.chroma.model_copy(update={"ef_search": None})
    at_point = at_point.model_copy(
        update={"retriever": at_point.retriever.model_copy(update={"chroma": chroma})}
    )
    options = point_options(sweep, settings, point)
    key = json.dumps(
        [dataclasses.asdict(options), at_point.model_dump(mode="json")],
        sort_keys=True,
        default=str,
    )
    if key not in indexes:
        indexes[key] = _open_index(options, at_point)
    return indexes[key]


def _open_index(options: RetrieverOptions, settings: Settings) -> _IndexNow:
    try:
        with contextlib.ExitStack() as opened:
            embedder = build_query_embedder(settings)
            opened.callback(getattr(embedder, "close", lambda: None))
            retriever = build_retriever(
                dataclasses.replace(options, query_embedder=embedder, defer_model_check=True),
                settings,
            )
            opened.callback(getattr(retriever, "close", lambda: None))
            return _IndexNow(retriever.index_fingerprint(), description_of(retriever))
    # Whatever keeps the index from opening (a deleted collection, a store down, a setting
    # refused) is for the point's run to report, once it runs again.
    except Exception:
        return _IndexNow(None, {})
