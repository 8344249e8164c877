"""Measures as values with one canonical name, and the registry that defines them.

``parse_measure("nDCG@10")`` gives ``Measure("ndcg", 10)``, whose ``str()`` ``ndcg@10`` is
what the store, the CLI and the dashboard use (trec_eval and ir_measures spellings parse).
What evalkit knows of a measure it reads from its one entry in :data:`MEASURES`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from types import MappingProxyType

import numpy as np
from numpy.typing import NDArray

from evalkit.errors import MeasureError
from evalkit.metrics import kernels
from evalkit.metrics.kernels import RankedGrades

__all__ = [
    "MEASURES",
    "Cutoff",
    "Measure",
    "MeasureDefinition",
    "QueryEvidence",
    "parse_measure",
    "parse_measures",
]

Kernel = Callable[[RankedGrades, int | None], NDArray[np.float64]]


class Cutoff(Enum):
    """Whether a measure takes a rank cutoff (``@k``)."""

    REQUIRED = "required"
    OPTIONAL = "optional"
    NONE = "none"


@dataclass(frozen=True, slots=True)
class QueryEvidence:
    """Where one query's relevant documents landed, what a measure's ``explain`` reads.

    ``found``: the 1-based evaluated ranks of the retrieved relevant documents within
    ``cutoff``, in order; ``relevant_ranks``: those of all of them; ``grades_by_rank``: the
    grade at each rank; ``n_relevant``: every judged-relevant document of the query.
    """

    found: tuple[int, ...]
    relevant_ranks: tuple[int, ...]
    grades_by_rank: Mapping[int, int]
    n_relevant: int
    cutoff: int

    @property
    def where(self) -> str:
        """The ranks found, the first ten of them (``at ranks 2, 7``), or ``none``."""
        if not self.found:
            return "none"
        shown = ", ".join(str(rank) for rank in self.found[:10])
        return f"at ranks {shown}" + (" ..." if len(self.found) > 10 else "")


Explainer = Callable[[QueryEvidence], str]


@dataclass(frozen=True, slots=True)
class MeasureDefinition:
    """One registered measure.

    ``trec_eval_name`` is trec_eval's name without a cutoff (``map``), ``trec_eval_cut`` its
    prefix with one (``map_cut``), None where trec_eval has none; ``label`` a table header
    (``NDCG``); ``explain`` how one query's value comes about from a ``QueryEvidence``.
    """

    name: str
    kernel: Kernel
    cutoff: Cutoff
    description: str
    trec_eval_name: str | None
    trec_eval_cut: str | None
    label: str
    explain: Explainer
    aliases: tuple[str, ...] = ()

    @property
    def pattern(self) -> str:
        """How the name is written: ``ndcg``, ``ndcg@k`` or both."""
        return {
            Cutoff.REQUIRED: f"{self.name}@k",
            Cutoff.OPTIONAL: f"{self.name}[@k]",
            Cutoff.NONE: self.name,
        }[self.cutoff]


def _precision(ranked: RankedGrades, k: int | None) -> NDArray[np.float64]:
    return kernels.precision(ranked, k=_given(k))


def _recall(ranked: RankedGrades, k: int | None) -> NDArray[np.float64]:
    return kernels.recall(ranked, k=_given(k))


def _hit_rate(ranked: RankedGrades, k: int | None) -> NDArray[np.float64]:
    return kernels.hit_rate(ranked, k=_given(k))


def _r_precision(ranked: RankedGrades, k: int | None) -> NDArray[np.float64]:
    return kernels.r_precision(ranked)


def _ndcg_judged(ranked: RankedGrades, k: int | None) -> NDArray[np.float64]:
    return kernels.ndcg_judged(ranked, k=_given(k))


def _given(k: int | None) -> int:
    if k is None:
        raise MeasureError("this measure needs a cutoff")
    return k


def _explain_mrr(e: QueryEvidence) -> str:
    if not e.found:
        return f"no relevant document in the top {e.cutoff}: 0"
    return f"first relevant document at rank {e.found[0]}: 1/{e.found[0]}"


def _explain_r_precision(e: QueryEvidence) -> str:
    top = [rank for rank in e.relevant_ranks if rank <= e.n_relevant]
    return f"{len(top)} relevant documents in the top R = {e.n_relevant}, / {e.n_relevant}"


def _explain_map(e: QueryEvidence) -> str:
    precisions = [index / rank for index, rank in enumerate(e.found, start=1)]
    terms = " + ".join(f"{p:.3f}" for p in precisions[:6]) + (
        " + ..." if len(precisions) > 6 else ""
    )
    return (
        f"precision at each relevant rank in the top {e.cutoff} ({terms or '0'}), "
        f"summed and / {e.n_relevant} relevant"
    )


def _explain_ndcg(e: QueryEvidence) -> str:
    gains = [f"rank {rank} grade {e.grades_by_rank[rank]}" for rank in e.found[:6]]
    return (
        f"graded gains / log2(rank + 1) in the top {e.cutoff} ({', '.join(gains) or 'none'}),"
        " / the ideal ordering of the judged grades"
    )


def _explain_ndcg_judged(e: QueryEvidence) -> str:
    gains = [f"rank {rank} grade {e.grades_by_rank[rank]}" for rank in e.found[:6]]
    return (
        f"graded gains / log2(rank + 1) in the top {e.cutoff} ({', '.join(gains) or 'none'}),"
        f" / the ideal ordering of the grades judged in that top {e.cutoff} (not of every"
        " judgment, as ndcg)"
    )


_DEFINITIONS = (
    MeasureDefinition(
        "recall",
        _recall,
        Cutoff.REQUIRED,
        "relevant documents in the top k over all relevant judged documents",
        trec_eval_name=None,
        trec_eval_cut="recall",
        label="Recall",
        explain=lambda e: (
            f"{len(e.found)} of {e.n_relevant} relevant documents in the top {e.cutoff} ({e.where})"
        ),
        aliases=("r", "recall"),
    ),
    MeasureDefinition(
        "precision",
        _precision,
        Cutoff.REQUIRED,
        "relevant documents in the top k, divided by k",
        trec_eval_name=None,
        trec_eval_cut="P",
        label="P",
        explain=lambda e: (
            f"{len(e.found)} relevant documents in the top {e.cutoff} ({e.where}), / {e.cutoff}"
        ),
        aliases=("p", "prec"),
    ),
    MeasureDefinition(
        "ndcg",
        lambda ranked, k: kernels.ndcg(ranked, k=k),
        Cutoff.OPTIONAL,
        "normalised discounted cumulative gain, gain = grade, discount log2(rank + 1)",
        trec_eval_name="ndcg",
        trec_eval_cut="ndcg_cut",
        label="NDCG",
        explain=_explain_ndcg,
        aliases=("ndcg_cut",),
    ),
    MeasureDefinition(
        "ndcg_judged",
        _ndcg_judged,
        Cutoff.REQUIRED,
        "nDCG@k whose ideal ranking is the judged documents of the top k, not all judgments: "
        "a traffic window's nDCG, whose only labels are its top k; never one series with ndcg@k",
        trec_eval_name=None,
        trec_eval_cut=None,
        label="NDCG-judged",
        explain=_explain_ndcg_judged,
    ),
    MeasureDefinition(
        "mrr",
        lambda ranked, k: kernels.reciprocal_rank(ranked, k=k),
        Cutoff.OPTIONAL,
        "reciprocal rank of the first relevant document (no cutoff unless @k is given)",
        trec_eval_name="recip_rank",
        trec_eval_cut=None,
        label="MRR",
        explain=_explain_mrr,
        aliases=("recip_rank", "rr"),
    ),
    MeasureDefinition(
        "map",
        lambda ranked, k: kernels.average_precision(ranked, k=k),
        Cutoff.OPTIONAL,
        "average precision over all relevant judged documents",
        trec_eval_name="map",
        trec_eval_cut="map_cut",
        label="MAP",
        explain=_explain_map,
        aliases=("ap", "map_cut"),
    ),
    MeasureDefinition(
        "hit_rate",
        _hit_rate,
        Cutoff.REQUIRED,
        "1 when a relevant document is in the top k, else 0",
        trec_eval_name=None,
        trec_eval_cut="success",
        label="Hit Rate",
        explain=lambda e: (
            f"a relevant document in the top {e.cutoff}: {'yes' if e.found else 'no'}"
        ),
        aliases=("hit", "hits", "hitrate", "success"),
    ),
    MeasureDefinition(
        "r_precision",
        _r_precision,
        Cutoff.NONE,
        "precision at rank R, R = number of relevant judged documents",
        trec_eval_name="Rprec",
        trec_eval_cut=None,
        label="R-Prec",
        explain=_explain_r_precision,
        aliases=("rprec", "r-precision", "rp"),
    ),
)

MEASURES: Mapping[str, MeasureDefinition] = MappingProxyType(
    {definition.name: definition for definition in _DEFINITIONS}
)
"""Every measure evalkit computes, by canonical name."""

_ALIASES: Mapping[str, str] = MappingProxyType(
    {
        **{alias: d.name for d in _DEFINITIONS for alias in d.aliases},
        **{d.name: d.name for d in _DEFINITIONS},
    }
)
_CUTOFF_ONLY_ALIASES = frozenset({"ndcg_cut", "map_cut"})
_SYNTAX = re.compile(r"(?P<base>[a-z][a-z_\-]*?)(?:[@_.](?P<cutoff>\d+))?")


@dataclass(frozen=True, slots=True)
class Measure:
    """A measure with an optional rank cutoff; ``str()`` gives its canonical name.

    Build one with :func:`parse_measure` (``parse_measure("ndcg@10")``) or directly
    (``Measure("ndcg", 10)``). Invalid combinations raise :class:`MeasureError`.
    """

    name: str
    cutoff: int | None = None

    def __post_init__(self) -> None:
        definition = MEASURES.get(self.name)
        if definition is None:
            raise MeasureError(_unknown_message(repr(self.name)))
        if self.cutoff is not None and (
            isinstance(self.cutoff, bool) or not isinstance(self.cutoff, int) or self.cutoff < 1
        ):
            raise MeasureError(
                f"the cutoff of {self.name!r} must be a positive integer, got {self.cutoff!r}"
            )
        if definition.cutoff is Cutoff.REQUIRED and self.cutoff is None:
            raise MeasureError(f"measure {self.name!r} needs a cutoff, e.g. '{self.name}@10'")
        if definition.cutoff is Cutoff.NONE and self.cutoff is not None:
            raise MeasureError(f"measure {self.name!r} takes no cutoff; write '{self.name}'")

    def __str__(self) -> str:
        return self.name if self.cutoff is None else f"{self.name}@{self.cutoff}"

    @property
    def definition(self) -> MeasureDefinition:
        """The registry entry of this measure."""
        return MEASURES[self.name]

    @property
    def trec_eval_name(self) -> str | None:
        """trec_eval's name for this measure (``ndcg_cut_10``), ``None`` if it has none."""
        definition = self.definition
        if self.cutoff is None:
            return definition.trec_eval_name
        if definition.trec_eval_cut is None:
            return None
        return f"{definition.trec_eval_cut}_{self.cutoff}"

    def compute(self, ranked: RankedGrades) -> NDArray[np.float64]:
        """This measure for every query of ``ranked``."""
        return self.definition.kernel(ranked, self.cutoff)


def parse_measure(text: str | Measure) -> Measure:
    """Parse a measure name such as ``ndcg@10``, ``P_10`` or ``recip_rank``.

    Case does not matter; the result prints canonically (``str(parse_measure("P@10"))`` is
    ``precision@10``). Raises :class:`MeasureError` naming the measures that exist.
    """
    if isinstance(text, Measure):
        return text
    if not isinstance(text, str):
        raise MeasureError(f"a measure name must be a string, got {text!r}")
    normalised = text.strip().lower()
    match = _SYNTAX.fullmatch(normalised)
    if match is None or match["base"] not in _ALIASES:
        base, at, cutoff = normalised.partition("@")
        if at and base in _ALIASES:
            raise MeasureError(f"the cutoff in {text!r} must be a positive integer, got {cutoff!r}")
        raise MeasureError(_unknown_message(repr(text)))
    base, digits = match["base"], match["cutoff"]
    if base in _CUTOFF_ONLY_ALIASES and digits is None:
        raise MeasureError(f"{text!r} needs a cutoff, e.g. '{base}_10'")
    return Measure(_ALIASES[base], None if digits is None else int(digits))


def parse_measures(texts: str | Iterable[str | Measure]) -> tuple[Measure, ...]:
    """Parse several measure names (or one, given as its name alone); duplicates (``P@10``
    and ``precision@10``) are kept once."""
    names = [texts] if isinstance(texts, str) else texts
    return tuple(dict.fromkeys(parse_measure(text) for text in names))


def _unknown_message(name: str) -> str:
    known = ", ".join(d.pattern for d in _DEFINITIONS)
    return (
        f"unknown measure {name}; known measures: {known} "
        "(k a positive integer; trec_eval and ir_measures spellings such as P@10, P_10, "
        "recall_10, ndcg_cut_10, recip_rank, success_10, Rprec, map_cut_100 are accepted too)"
    )
