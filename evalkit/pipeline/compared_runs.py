"""What a comparison of runs is scored with, which the gate (two runs), the leaderboard (many)
and a sweep share: the runs the user named (``resolve_run``, ``score_reference``) and the
judgments (``comparison_judgments``)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import pandas as pd

from evalkit.errors import ConfigError, NotFoundError
from evalkit.goldset.model import Goldset
from evalkit.metrics import RepeatedPairError, read_qrels, read_run, repeat_in_file
from evalkit.metrics.ranking import repeated_judgment
from evalkit.records.run_reference import RunReference, RunReferenceKind
from evalkit.stats.compare import RunFile, ScoredRun, score_run
from evalkit.store import Store
from evalkit.store.export import import_run
from evalkit.store.goldsets import judgments_frame, load_stored_goldset
from evalkit.store.runs import get_run

__all__ = ["comparison_judgments", "resolve_run", "score_reference"]

# What a run id, or a prefix of one, looks like (``20261121T183500-3f9a1c``): such a reference
# that names no run, or several, keeps the store's own message.
_RUN_ID_PREFIX: Final = re.compile(r"[0-9]{1,8}(T[0-9]{0,6}(-[0-9a-f]{0,6})?)?")


def resolve_run(store: Store | None, reference: str | RunReference) -> str | RunFile:
    """The run ``reference`` names, as ``evalkit.stats.compare.score_run`` takes it: a TREC
    run file read (``RunFile``), or the id of a run ``store`` holds. A run export is
    imported into ``store`` first (``import_run``, idempotent) and named by its run id, so
    that it is compared as the stored run it was, with its provenance. A stored run's id is
    returned as the user gave it (a prefix stays one) once the store is known to hold it."""
    parsed = RunReference.parse(reference)
    if parsed.kind is RunReferenceKind.FILE:
        return RunFile(parsed.text, read_run(parsed.path))
    if parsed.kind is RunReferenceKind.EXPORT:
        if store is None:
            raise ConfigError(f"{parsed} is a run export: comparing it needs a store to import it")
        return import_run(store, parsed.path).run_id
    if store is None:
        raise ConfigError(
            f"{parsed.text!r} is neither a run file nor a stored run (there is no store yet)"
        )
    try:
        get_run(store, parsed.text)
    except NotFoundError as error:
        raise NotFoundError(_unknown_reference(store, parsed.text, error)) from error
    return parsed.text


def score_reference(
    store: Store | None,
    run: str | RunFile,
    measures: Sequence[str],
    *,
    judgments: pd.DataFrame | None = None,
    complete: bool = True,
) -> ScoredRun:
    """``score_run`` on a resolved run (``resolve_run``), a run file's repeated document
    named by the file and its lines."""
    try:
        return score_run(store, run, measures, judgments=judgments, complete=complete)
    except RepeatedPairError as error:
        if not isinstance(run, RunFile):
            raise
        # Found once the rows are indexed, after the file was read: named here, where the
        # file is known.
        raise repeat_in_file(error, run.reference) from error


def _unknown_reference(store: Store, reference: str, error: NotFoundError) -> str:
    """Why ``reference`` names no run: a mistyped path read as "no run 'x.run' in the
    store" sent users to `evalkit runs list` for what is a file they meant."""
    path = Path(reference)
    if path.is_dir():
        return (
            f"{reference} is a folder but not a run export (it holds no run.json; `evalkit runs "
            f"export RUN --format parquet --output DIR` writes one), nor a run in {store.path}"
        )
    if not _RUN_ID_PREFIX.fullmatch(reference):
        return (
            f"{reference!r} is not a run file or run export (there is no {path.absolute()}), "
            f"nor a run in {store.path}; list runs with `evalkit runs list`"
        )
    return str(error)


def comparison_judgments(
    store: Store | None, goldset: str | Goldset | None, qrels: Path | None
) -> pd.DataFrame | None:
    """The judgments runs are scored with: a TREC qrels file, or a goldset (a stored
    goldset's name, or a loaded ``Goldset``); None when neither is given (a stored run is
    then scored with its own goldset's judgments)."""
    if qrels is not None and goldset is not None:
        raise ConfigError("give qrels or goldset, not both")
    if qrels is not None:
        judgments = read_qrels(qrels)
        repeated = judgments[judgments.duplicated(["query_id", "doc_id"])]
        if not repeated.empty:
            # Found here, where the file is known, rather than when a run is scored on it.
            query_id, doc_id = str(repeated["query_id"].iloc[0]), str(repeated["doc_id"].iloc[0])
            raise repeat_in_file(repeated_judgment(query_id, doc_id), qrels)
        return judgments
    if isinstance(goldset, Goldset):
        return pd.DataFrame(
            {
                "query_id": [judgment.query_id for judgment in goldset.judgments],
                "doc_id": [judgment.doc_id for judgment in goldset.judgments],
                "relevance": [judgment.relevance for judgment in goldset.judgments],
            }
        )
    if goldset is not None:
        if store is None:
            raise ConfigError(f"no store to read goldset {goldset!r} from")
        return judgments_frame(store, load_stored_goldset(store, goldset).version)
    return None
