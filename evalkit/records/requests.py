"""What a workflow is asked to do, with every default in one place: the CLI, the scheduler's
jobs and the pytest plugin build these records (defaults read from the ``*_DEFAULTS`` below,
never retyped) and the pipeline takes them whole, one record per workflow."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from evalkit.errors import ConfigError

if TYPE_CHECKING:
    from evalkit.config import Settings

__all__ = [
    "AGREEMENT_DEFAULTS",
    "COMPARE_DEFAULTS",
    "DEFAULT_CALIBRATION",
    "DEFAULT_DOCUMENT_SAMPLE",
    "DEFAULT_EMBEDDING_SAMPLE",
    "DEFAULT_GOLDSET_FORMAT",
    "DEFAULT_GOLDSET_SPLIT",
    "DEFAULT_LOW_CONFIDENCE",
    "DEFAULT_MIN_OVERLAP",
    "DEFAULT_MODEL_SAMPLE",
    "DEFAULT_RAY_ACTORS",
    "DEFAULT_TRAFFIC_SAMPLE",
    "DRIFT_TEST_DEFAULTS",
    "FUSION_DEFAULTS",
    "GATE_DEFAULTS",
    "GENERATION_DEFAULTS",
    "JUDGING_DEFAULTS",
    "LEADERBOARD_DEFAULTS",
    "PAIRED_TEST_DEFAULTS",
    "PRECISION_WATCH_DEFAULTS",
    "TRAFFIC_PRECISION_MIN_EFFECT",
    "TRAFFIC_PRECISION_MIN_JUDGED_SHARE",
    "TRAFFIC_REPLAY_DEFAULTS",
    "AgreementRequest",
    "DriftTestSettings",
    "FusionRequest",
    "GatePolicy",
    "GenerationRequest",
    "GoldsetRunRequest",
    "GoldsetSelection",
    "JudgingRequest",
    "LeaderboardRequest",
    "PairedTestSettings",
    "TrafficCycleRequest",
    "TrafficReplayRequest",
    "measure_names",
]

MAX_K: Final = 2_147_483_647
"""The deepest ``k`` a run can have: the store keeps depths and ranks as 32-bit integers."""


def validate_k(k: int) -> int:
    """Return ``k`` when it is a positive number of documents the store can keep (at most
    ``MAX_K``); raise ``ConfigError`` if not."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ConfigError(f"k must be a positive integer (documents per query), got {k!r}")
    if k > MAX_K:
        raise ConfigError(f"k must be at most {MAX_K} (documents per query), got {k}")
    return k


def measure_names(measures: str | Iterable[str]) -> tuple[str, ...]:
    """``measures`` as a tuple of names; one measure may be given as its name alone
    (``"ndcg@10"``), which is not split into its characters."""
    return (measures,) if isinstance(measures, str) else tuple(measures)


def _refuse_below(name: str, value: int | None, lowest: int, what: str) -> None:
    """Raise ``ConfigError`` unless ``value`` (None passes) is an integer of at least
    ``lowest``; ``what`` says what the setting counts."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < lowest:
        raise ConfigError(f"{name} must be an integer of at least {lowest} ({what}), got {value!r}")


MAX_SEED: Final = 2**63 - 1
"""The largest seed: seeds are stored with what they made, as 64-bit integers."""

DEFAULT_LOW_CONFIDENCE: Final = 0.4
"""Top-1 score below which a query counts as low-confidence (a cosine similarity; set it to
suit your retriever's score scale)."""

TRAFFIC_PRECISION_MEASURE: Final = "precision@10"
"""Measure a judged traffic series is watched on (``evalkit drift precision --traffic`` and
the ``traffic_precision_drop`` rule)."""

TRAFFIC_PRECISION_MIN_EFFECT: Final = 0.02
"""Smallest drop of a judged traffic figure that counts (``evalkit drift precision --traffic``
and the ``traffic_precision_drop`` rule)."""

TRAFFIC_PRECISION_MIN_JUDGED_SHARE: Final = 0.8
"""Traffic windows with less of their top-k labelled are left out of a judged series."""

PRECISION_WATCH_MEASURE: Final = "ndcg@10"
"""Measure a goldset's run series is watched on (``evalkit drift precision --goldset``)."""

METRIC_STREAM_MEASURE: Final = "precision@10"
"""Measure of the ``drift_check`` job's metric stream (a goldset measure's run means)."""

METRIC_STREAM_METHOD: Final = "page_hinkley"
"""Sequential detector of the metric stream: page_hinkley or cusum."""

METRIC_STREAM_WARMUP: Final = 5
"""Runs that set the metric stream's baseline before it can alarm."""

DEFAULT_EMBEDDING_SAMPLE: Final = 1000
"""Query embeddings kept per window for the embedding drift detectors."""

DEFAULT_GOLDSET_FORMAT: Final = "jsonl"
"""Format of goldset files (``evalkit goldset import``, a ``--goldset`` path, a sweep file,
the pytest plugin): jsonl, beir or trec."""

DEFAULT_GOLDSET_SPLIT: Final = "test"
"""The qrels split read from a BEIR folder (``qrels/<split>.tsv``)."""

DEFAULT_RAY_ACTORS: Final = 2
"""Ray actors replaying queries with the Ray engine (``--engine ray``, ``engine = "ray"``)."""

DEFAULT_MIN_OVERLAP: Final = 0.5
"""Share of the shorter of span and chunk that must overlap for the chunk to be judged
(``evalkit goldset remap``)."""

DEFAULT_CALIBRATION: Final = "isotonic"
"""How retriever scores are calibrated to P(relevant) for a label-free precision estimate
(``evalkit judge estimate``, a traffic replay's ``--estimate``): isotonic or logistic."""

DEFAULT_DOCUMENT_SAMPLE: Final = 2000
"""Stored document embeddings sampled from a collection for the document drift test."""

DEFAULT_MODEL_SAMPLE: Final = 64
"""Stored documents the model check re-embeds from their text (``evalkit drift model``, the
``drift_check`` job's model stream): a slice of 5 % written by another model is in such a
sample 96 times in 100, a whole index in every one."""

DEFAULT_TRAFFIC_SAMPLE: Final = 2000
"""Queries drawn from a traffic window into a replay sample (``evalkit traffic sample``,
the ``traffic`` job)."""

DEFAULT_MIN_PER_STRATUM: Final = 0
"""Queries a traffic sample takes at least from every stratum (or all the stratum has)."""

DEFAULT_PROMOTED_QUERIES: Final = 50
"""Queries of a replayed window written into a goldset draft (``evalkit traffic promote``)."""

DEFAULT_PROMOTED_TOP: Final = 10
"""Current top results listed per promoted query, for the reviewer to judge."""

DEFAULT_PROMOTED_MIN_PER_TENANT: Final = 1
"""Promoted queries every tenant gets at least (or all it has)."""


@dataclass(frozen=True, slots=True)
class GoldsetSelection:
    """Which goldset a command reads: ``name``, a stored goldset's name (its ``version``,
    None: the newest) or goldset files read now (``format`` jsonl, beir or trec; BEIR's
    qrels ``split``; TREC's ``topics`` file)."""

    name: str | None = None
    version: str | None = None
    format: str = DEFAULT_GOLDSET_FORMAT
    split: str = DEFAULT_GOLDSET_SPLIT
    topics: Path | None = None


@dataclass(frozen=True, slots=True)
class PairedTestSettings:
    """How two runs' per-query values are tested against each other (``compare_runs``).

    A difference is decided on its Holm-adjusted p-value against ``alpha`` and its size
    against ``min_effect`` (an absolute difference of the measure; ``decide``); ``resamples``
    bootstrap resamples and sign-flip permutations are drawn with ``seed``.
    """

    alpha: float = 0.05
    min_effect: float = 0.0
    resamples: int = 10_000
    seed: int = 0


PAIRED_TEST_DEFAULTS: Final = PairedTestSettings()
"""``compare_runs``'s defaults (it takes them from here): every significant difference
counts."""


@dataclass(frozen=True, slots=True)
class DriftTestSettings:
    """How two windows of embeddings are tested for drift (``evalkit.drift.make_detector``).

    ``method`` ``auto`` is MMD for small windows, moments for large; ``alpha`` is the
    false-alarm rate per check; ``options`` are detector settings (docs/drift.md)."""

    method: str = "auto"
    alpha: float = 0.05
    seed: int = 0
    options: Mapping[str, Any] = field(default_factory=dict)


DRIFT_TEST_DEFAULTS: Final = DriftTestSettings()
"""``evalkit drift embeddings|documents`` and the ``drift_check`` job."""


@dataclass(frozen=True, slots=True)
class GatePolicy:
    """How two runs are compared and when a difference counts as a regression (docs/gate.md).

    A drop fails when its adjusted p-value is below ``alpha`` *and* it is at least
    ``min_effect`` (absolute). Runs with failed queries are refused unless ``failed_as_zero``.
    With ``max_latency_increase`` (a share: 0.2 for +20 %) a rise of ``latency_quantile``
    beyond that and the noise is a regression too."""

    measures: tuple[str, ...] = ("ndcg@10",)
    alpha: float = 0.05
    min_effect: float = 0.01
    resamples: int = 10_000
    seed: int = 0
    worst: int = 10
    failed_as_zero: bool = False
    max_latency_increase: float | None = None
    latency_quantile: str = "p50"

    def __post_init__(self) -> None:
        object.__setattr__(self, "measures", measure_names(self.measures))

    @property
    def paired_test(self) -> PairedTestSettings:
        """The policy's settings of the paired test that compares the two runs."""
        return PairedTestSettings(
            alpha=self.alpha, min_effect=self.min_effect, resamples=self.resamples, seed=self.seed
        )


GATE_DEFAULTS: Final = GatePolicy()
"""``evalkit gate`` and the pytest plugin: a regression must be at least 0.01 to fail."""

COMPARE_DEFAULTS: Final = GatePolicy(min_effect=0.0)
"""``evalkit compare``: every significant difference is reported."""

PRECISION_WATCH_DEFAULTS: Final = GATE_DEFAULTS.paired_test
"""``evalkit drift precision``: the newest run against the baseline by the gate's paired
test."""


@dataclass(frozen=True, slots=True)
class LeaderboardRequest:
    """How many runs are ranked (``evalkit compare RUN RUN RUN ...``, a sweep).

    Every pair is tested with ``test`` (``randomization`` or ``t``) and a measure's p-values
    corrected with ``correction`` (``holm``, ``bonferroni``, ``tukey``, ``none``); runs with
    failed queries are refused unless ``failed_as_zero``."""

    measures: tuple[str, ...] = ("ndcg@10",)
    alpha: float = 0.05
    resamples: int = 10_000
    seed: int = 0
    test: str = "randomization"
    correction: str = "holm"
    failed_as_zero: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "measures", measure_names(self.measures))


LEADERBOARD_DEFAULTS: Final = LeaderboardRequest()
"""``evalkit compare`` with more than two runs, a sweep's leaderboard."""


@dataclass(frozen=True, slots=True)
class GoldsetRunRequest:
    """How a goldset is replayed and scored, and where it comes from.

    Empty ``measures`` are the default measures for ``k``; with ``answers`` the answers a
    RAG retriever generated are scored. ``goldset`` is a stored goldset's name (newest
    ``goldset_version`` by default) or, with ``goldset_files``, files read as
    ``goldset_format``; ``engine`` is local or ray."""

    k: int
    measures: tuple[str, ...] = ()
    relevance_threshold: int = 1
    batch_size: int = 64
    label: str | None = None
    answers: bool = True
    tags: tuple[str, ...] = ()
    goldset: str = ""
    goldset_version: str | None = None
    goldset_files: bool = True
    goldset_format: str = DEFAULT_GOLDSET_FORMAT
    goldset_split: str = DEFAULT_GOLDSET_SPLIT
    goldset_topics: Path | None = None
    engine: str = "local"
    ray_address: str | None = None
    ray_actors: int = DEFAULT_RAY_ACTORS

    def __post_init__(self) -> None:
        validate_k(self.k)
        _refuse_below("batch_size", self.batch_size, 1, "queries sent at a time")
        object.__setattr__(self, "measures", measure_names(self.measures))

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        k: int | None = None,
        measures: str | Sequence[str] | None = None,
        label: str | None = None,
        answers: bool = True,
        tags: Sequence[str] = (),
    ) -> GoldsetRunRequest:
        """The request of a run under ``settings``: its depth (``k``, default the settings'
        ``k``), relevance threshold and query batch size, with the run's own ``measures``,
        ``label``, ``answers`` and ``tags``."""
        return cls(
            k=settings.k if k is None else k,
            measures=measure_names(measures or ()),
            relevance_threshold=settings.relevance_threshold,
            batch_size=settings.query_batch_size,
            label=label,
            answers=answers,
            tags=tuple(sorted(set(tags))),
        )


@dataclass(frozen=True, slots=True)
class TrafficReplayRequest:
    """How a stored sample of production traffic is replayed (docs/traffic.md).

    ``compare_k`` (default ``k``) is the depth compared with production's logged results;
    up to ``embedding_sample_size`` queries are embedded for drift (0: none). With
    ``tenant_isolation`` a sample holding tenants is refused on a retriever that does not
    filter by tenant."""

    k: int = 10
    compare_k: int | None = None
    rbo_p: float = 0.9
    low_confidence_threshold: float = DEFAULT_LOW_CONFIDENCE
    tenant_isolation: bool = True
    embedding_sample_size: int = DEFAULT_EMBEDDING_SAMPLE
    answers: bool = True
    batch_size: int = 64
    label: str | None = None

    def __post_init__(self) -> None:
        validate_k(self.k)
        if self.compare_k is not None and not 1 <= self.compare_k <= self.k:
            raise ConfigError(f"compare_k must be between 1 and k={self.k}, got {self.compare_k}")
        if not math.isfinite(self.low_confidence_threshold):
            raise ConfigError(
                "the low-confidence threshold must be a finite score, got "
                f"{self.low_confidence_threshold}"
            )
        if self.embedding_sample_size < 0:
            raise ConfigError(
                f"the embedding sample size must be >= 0, got {self.embedding_sample_size}"
            )
        if not 0.0 < self.rbo_p < 1.0:
            raise ConfigError(f"rbo_p must be in (0, 1) (RBO's persistence), got {self.rbo_p}")
        _refuse_below("batch_size", self.batch_size, 1, "queries sent at a time")

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        k: int,
        tenant_isolation: bool,
        embedding_sample_size: int,
        answers: bool,
        compare_k: int | None = None,
        low_confidence: float | None = None,
        label: str | None = None,
    ) -> TrafficReplayRequest:
        """The request of a replay under ``settings`` (its query batch size), with the
        replay's own fields; ``low_confidence`` None is the default threshold."""
        return cls(
            k=k,
            compare_k=compare_k,
            low_confidence_threshold=(
                DEFAULT_LOW_CONFIDENCE if low_confidence is None else low_confidence
            ),
            tenant_isolation=tenant_isolation,
            embedding_sample_size=embedding_sample_size,
            answers=answers,
            batch_size=settings.query_batch_size,
            label=label,
        )


TRAFFIC_REPLAY_DEFAULTS: Final = TrafficReplayRequest()
"""``evalkit traffic replay`` and the ``traffic`` job."""


@dataclass(frozen=True, slots=True)
class JudgingRequest:
    """How pairs are judged by the relevance assessor (docs/judging.md).

    At most ``max_judgments`` pairs not yet in the judged pool are sent (None: no limit; the
    rest are counted and left for later); with ``dry_run`` nothing is sent, only planned."""

    max_judgments: int | None = None
    dry_run: bool = False
    k: int = 10

    def __post_init__(self) -> None:
        validate_k(self.k)
        _refuse_below("max_judgments", self.max_judgments, 0, "new pairs sent")


JUDGING_DEFAULTS: Final = JudgingRequest()
"""``evalkit judge`` and ``--judge-holes``."""


@dataclass(frozen=True, slots=True)
class TrafficCycleRequest:
    """One pass of the traffic cycle over a window's sample: replay (None: only drawn),
    then with ``judge`` label the top-k by the ``[judge]`` assessor, with ``estimate``
    estimate precision@k from calibrated scores. The sample is ``sample_id`` (an id or
    unique prefix), else the newest of ``window``, unless the cycle draws one itself. With
    ``slices`` the window is cut into slices and tested against the baseline last."""

    replay: TrafficReplayRequest | None = TRAFFIC_REPLAY_DEFAULTS
    sample_id: str | None = None
    window: str | None = None
    judge: bool = False
    max_judgments: int | None = JUDGING_DEFAULTS.max_judgments
    estimate: bool = False
    slices: bool = False

    def __post_init__(self) -> None:
        if self.sample_id is not None and self.window is not None:
            raise ConfigError("name the sample to replay by its id or by its window, not both")
        _refuse_below("max_judgments", self.max_judgments, 0, "new pairs sent")

    @property
    def judging(self) -> JudgingRequest:
        """How the replayed window is judged: its top ``k``, within ``max_judgments``."""
        k = TRAFFIC_REPLAY_DEFAULTS.k if self.replay is None else self.replay.k
        return JudgingRequest(k=k, max_judgments=self.max_judgments)


@dataclass(frozen=True, slots=True)
class AgreementRequest:
    """How an assessor's agreement with a goldset's human judgments is measured
    (docs/judging.md): weighted kappa on ``sample`` pairs, Kendall's tau over the newest
    ``max_runs`` complete runs (at least three) by precision@``k`` on ``tau_queries``
    queries. Nothing is stored unless ``min_judged_share`` of each part's pairs was judged."""

    sample: int = 200
    seed: int = 0
    assessor_threshold: int = 2
    confidence: float = 0.95
    resamples: int = 2000
    k: int = 10
    tau_queries: int = 50
    max_runs: int = 10
    min_judged_share: float = 0.8

    def __post_init__(self) -> None:
        validate_k(self.k)
        _refuse_below("sample", self.sample, 1, "human-judged pairs judged")
        _refuse_below("tau_queries", self.tau_queries, 1, "queries the runs are ranked on")
        _refuse_below("max_runs", self.max_runs, 0, "runs ranked for Kendall's tau")
        _refuse_below("resamples", self.resamples, 1, "bootstrap resamples")
        if isinstance(self.assessor_threshold, bool) or self.assessor_threshold not in range(4):
            raise ConfigError(
                f"assessor_threshold must be a grade from 0 to 3, got {self.assessor_threshold!r}"
            )
        if not 0.0 < self.confidence < 1.0:
            raise ConfigError(f"confidence must be in (0, 1), got {self.confidence}")
        if not 0.0 < self.min_judged_share <= 1.0:
            raise ConfigError(f"min_judged_share must be in (0, 1], got {self.min_judged_share}")


AGREEMENT_DEFAULTS: Final = AgreementRequest()
"""``evalkit judge agreement``."""


@dataclass(frozen=True, slots=True)
class GenerationRequest:
    """How a draft goldset is generated from a corpus (``evalkit goldset generate``;
    docs/goldsets.md): ``clusters`` None is about two questions a cluster, ``max_calls``
    None no limit; with ``dry_run`` nothing is sent or written."""

    n: int = 50
    mix: str = "factoid=0.5,paraphrase=0.3,multi=0.2"
    max_per_source: int = 2
    clusters: int | None = None
    max_overlap: float = 0.5
    dedup_threshold: float = 0.9
    max_calls: int | None = None
    dry_run: bool = False
    seed: int = 0
    overwrite: bool = False


GENERATION_DEFAULTS: Final = GenerationRequest()
"""``evalkit goldset generate``."""


@dataclass(frozen=True, slots=True)
class FusionRequest:
    """How stored runs of one goldset version are fused into a new run (``evalkit fuse``;
    docs/fusion.md). ``norm`` None is min-max; ``k`` None the deepest source run's; empty
    ``measures`` those the source runs share. With ``optimize`` the method's parameter or
    weights are fitted on a training split (``train_share`` or ``train_tag``) and the fused
    run holds the held-out queries only."""

    run_ids: tuple[str, ...]
    method: str = "rrf"
    norm: str | None = None
    params: Mapping[str, float] = field(default_factory=dict)
    weights: tuple[float, ...] | None = None
    k: int | None = None
    measures: tuple[str, ...] = ()
    optimize: bool = False
    optimize_measure: str = "ndcg@10"
    train_share: float = 0.5
    seed: int = 0
    train_tag: str | None = None
    label: str | None = None
    tags: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "measures", measure_names(self.measures))
        if isinstance(self.run_ids, str):
            # A fusion needs two runs at least: one string would be read as its letters.
            raise ConfigError(
                f"run_ids is one string ({self.run_ids!r}): give the runs to fuse as a list"
            )
        object.__setattr__(self, "run_ids", tuple(self.run_ids))


FUSION_DEFAULTS: Final = FusionRequest(run_ids=())
"""``evalkit fuse``."""
