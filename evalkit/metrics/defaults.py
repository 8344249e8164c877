"""The measures a run is scored on when none are named, at the depth it retrieves.

A default measure cut deeper than the run's ``k`` is taken at ``k`` instead (``ndcg@10`` at
``k`` 5 is ``ndcg@5``), once; ``DefaultMeasures`` records which defaults were replaced, so
every surface can say so rather than drop them silently.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from evalkit.errors import InputError
from evalkit.metrics.measures import parse_measures
from evalkit.records.jsonready import json_ready

__all__ = [
    "DEFAULT_MEASURES",
    "DefaultMeasures",
    "default_measures_for",
    "measures_at",
    "shallow_run_note",
]

DEFAULT_MEASURES: Final[tuple[str, ...]] = (
    "ndcg@10",
    "recall@10",
    "recall@100",
    "precision@10",
    "mrr@10",
    "map@100",
    "hit_rate@10",
    "r_precision",
)
"""The standard measures, as scored at a ``k`` of 100 or more."""


@dataclass(frozen=True, slots=True)
class DefaultMeasures:
    """The default measures of a run retrieving ``k`` documents per query.

    ``measures``: the canonical names it is scored on, in ``DEFAULT_MEASURES`` order.
    ``adapted``: each default cut deeper than ``k``, with the measure taken in its place
    (``{"ndcg@10": "ndcg@5", ...}``); empty when ``k`` reaches every cutoff.
    """

    k: int
    measures: tuple[str, ...]
    adapted: Mapping[str, str]

    @property
    def note(self) -> str | None:
        """One sentence saying which defaults ``k`` cannot compute and what replaced them;
        None when none was replaced."""
        if not self.adapted:
            return None
        replaced = sorted(set(self.adapted.values()), key=self.measures.index)
        documents = "document" if self.k == 1 else "documents"
        return (
            f"k {self.k} is below the cutoff of the default measures "
            f"{', '.join(self.adapted)}, which cannot be computed from {self.k} {documents} "
            f"per query; they are taken at {self.k} instead ({', '.join(replaced)}). Name "
            "measures with -m to choose others"
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: k, measures, adapted ({default: measured instead}) and note."""
        return {**json_ready(self), "note": self.note}


def default_measures_for(k: int) -> DefaultMeasures:
    """The default measures at ``k``: ``DEFAULT_MEASURES`` with every cutoff deeper than
    ``k`` brought to ``k`` (each resulting measure once)."""
    return measures_at(DEFAULT_MEASURES, k)


def measures_at(names: Sequence[str], k: int) -> DefaultMeasures:
    """``names`` with every cutoff deeper than ``k`` brought to ``k`` (each resulting
    measure once): what a run of depth ``k`` can score of them."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise InputError(f"k must be a positive integer, got {k!r}", field="k")
    measures: list[str] = []
    adapted: dict[str, str] = {}
    for measure in parse_measures(names):
        taken = measure
        if measure.cutoff is not None and measure.cutoff > k:
            taken = dataclasses.replace(measure, cutoff=k)
            adapted[str(measure)] = str(taken)
        if str(taken) not in measures:
            measures.append(str(taken))
    return DefaultMeasures(k=k, measures=tuple(measures), adapted=adapted)


def shallow_run_note(names: Sequence[str], k: int) -> str | None:
    """One sentence for measures a user named that are cut deeper than the ``k`` documents
    per query the run retrieves (``ndcg@100`` at ``k`` 10); None when every cutoff is within
    ``k``. They are computed as trec_eval does, the documents a run did not retrieve counting
    as not relevant, so they are not comparable with the same measure of a deeper run."""
    deep = [m for m in parse_measures(names) if m.cutoff is not None and m.cutoff > k]
    if not deep:
        return None
    named = ", ".join(str(m) for m in deep)
    documents = "document" if k == 1 else "documents"
    return (
        f"{named} {'is' if len(deep) == 1 else 'are'} cut deeper than the {k} {documents} per "
        f"query this run retrieves: past {k} nothing counts as retrieved, so compare "
        f"{'it' if len(deep) == 1 else 'them'} only with runs of k {k}, or run with "
        f"--k {max(m.cutoff or 0 for m in deep)}"
    )
