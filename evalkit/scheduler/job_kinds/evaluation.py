"""Job kinds that evaluate: replay a goldset (``goldset_replay``), score answers
(``answers``), run a sweep's missing points (``sweep``); each holds the store no longer
than its CLI command does (``evalkit run``, ``answers score``, ``sweep``).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import AfterValidator, Field, field_validator

from evalkit.engines.ray import ray_address_problem
from evalkit.pipeline import (
    load_sweep,
    run_sweep_file,
    score_answer_file,
)
from evalkit.pipeline.goldset_run import run_goldset
from evalkit.records.requests import DEFAULT_RAY_ACTORS, MAX_K, GoldsetRunRequest
from evalkit.scheduler.job_kinds.base import (
    JobContext,
    JobKind,
    JobOutcome,
    JobParams,
    RetrieverParams,
    checked_by,
    checked_measures,
)

if TYPE_CHECKING:
    from evalkit.config import Settings

__all__ = [
    "ANSWERS",
    "GOLDSET_REPLAY",
    "SWEEP",
    "AnswersParams",
    "GoldsetReplayParams",
    "SweepParams",
]


def _checked_ray_address(value: str | None) -> str | None:
    """``value``, refused when the configuration is read if the Ray engine cannot use it."""
    problem = None if value is None else ray_address_problem(value, source="ray_address")
    if problem is not None:
        raise ValueError(problem)
    return value


_RayAddress = Annotated[str | None, AfterValidator(_checked_ray_address)]
"""The ``ray_address`` of a job whose engine may be ``ray``."""


# -- goldset replay -----------------------------------------------------------------------


class GoldsetReplayParams(RetrieverParams):
    """``kind = "goldset_replay"``."""

    goldset: str = Field(description="Stored goldset name.")
    goldset_version: str | None = Field(default=None, description="Version (default: newest).")
    k: int | None = Field(
        default=None, ge=1, le=MAX_K, description="Documents per query (default: k)."
    )
    measures: list[str] | None = Field(default=None, description="Measures (default set).")
    label: str | None = Field(
        default=None, description="Label stored with the run (default: the job's name)."
    )
    engine: Literal["local", "ray"] = Field(
        default="local",
        description="Where the replay runs: local (the service's process) or ray (a pool of "
        "Ray actors; needs the [ray] extra; docs/scale.md).",
    )
    ray_address: _RayAddress = Field(
        default=None,
        description="Ray cluster of engine = ray (default: RAY_ADDRESS, else a local Ray "
        "instance started for the run).",
    )
    ray_actors: int = Field(
        default=DEFAULT_RAY_ACTORS, ge=1, description="Actors replaying queries with engine = ray."
    )

    @field_validator("measures")
    @classmethod
    def _known_measures(cls, names: list[str] | None) -> list[str] | None:
        return None if names is None else checked_measures(names)

    def run_request(self, settings: Settings, job: str) -> GoldsetRunRequest:
        """The goldset run these fields ask for under ``settings``, labelled ``job`` unless
        ``label`` says otherwise."""
        request = GoldsetRunRequest.from_settings(
            settings, k=self.k, measures=self.measures, label=self.label or job
        )
        shared = {"goldset", "goldset_version", "engine", "ray_address", "ray_actors"}
        return dataclasses.replace(request, goldset_files=False, **self.model_dump(include=shared))


def _goldset_replay(ctx: JobContext, params: GoldsetReplayParams) -> JobOutcome:
    # Held through a long replay, the store would keep every other process and the
    # service's alert outbox waiting for all of it (holds_store=False).
    settings = ctx.settings
    outcome = run_goldset(
        ctx.require_access(),
        params.run_request(settings, ctx.job),
        settings,
        params.options(),
        build=lambda: params.build(settings),
        progress=ctx.progress,
    )
    run = outcome.run
    return JobOutcome.of_run(
        run,
        {
            "run_id": run.run_id,
            "status": run.status,
            "goldset": run.spec.goldset_name,
            "goldset_version": run.spec.goldset_version,
            "n_queries": run.n_queries,
            "n_failed": run.n_failed,
            "aggregates": dict(run.aggregates),
            "default_measures": (
                outcome.default_measures.to_dict() if outcome.default_measures else None
            ),
        },
    )


# -- answers ------------------------------------------------------------------------------


class AnswersParams(JobParams):
    """``kind = "answers"``: score answers with the judge of the ``[judge]`` table."""

    path: Path = Field(description="JSONL of answer records (see docs/answers.md).")


def _answers(ctx: JobContext, params: AnswersParams) -> JobOutcome:
    # The judge is asked without the store, as `evalkit answers score` asks it.
    scores = score_answer_file(
        params.path,
        settings=ctx.settings.judge,
        store=ctx.require_access(),
        progress=ctx.progress,
    )
    return JobOutcome(
        summary={
            "scoring_id": scores.scoring_id,
            "n_records": scores.n_records,
            "judge_calls": scores.judge_calls,
            "means": {f"{s.metric}/{s.method}": s.mean for s in scores.summaries},
        }
    )


# -- sweep --------------------------------------------------------------------------------


class SweepParams(JobParams):
    """``kind = "sweep"``: run the points of a sweep file that have no complete run."""

    # A bad sweep file is refused when the configuration is read, not at 3 a.m.
    file: Annotated[Path, checked_by(load_sweep)] = Field(
        description="The sweep file (TOML; see docs/sweeps.md)."
    )
    engine: Literal["local", "ray"] = Field(
        default="local", description="Where each point's replay runs: local or ray."
    )
    ray_address: _RayAddress = Field(default=None, description="Ray cluster of engine = ray.")
    ray_actors: int = Field(
        default=DEFAULT_RAY_ACTORS, ge=1, description="Actors with engine = ray."
    )


def _sweep(ctx: JobContext, params: SweepParams) -> JobOutcome:
    # Each point is a goldset run: replayed without the store, as `evalkit sweep` does.
    outcome = run_sweep_file(
        ctx.require_access(),
        params.file,
        ctx.settings,
        engine=params.engine,
        ray_address=params.ray_address,
        ray_actors=params.ray_actors,
        query_progress=ctx.progress,
    )
    failed = outcome.failed
    status = "succeeded" if not failed else "partial" if outcome.run_ids else "failed"
    return JobOutcome(
        status=status,
        run_ids=tuple(
            point.run.run_id for point in outcome.points if point.run and not point.reused
        ),
        summary=outcome.to_dict(),
        error="; ".join(f"point {p.number} ({p.point.describe()}): {p.error}" for p in failed)
        or None,
    )


GOLDSET_REPLAY = JobKind(
    "goldset_replay",
    GoldsetReplayParams,
    _goldset_replay,
    "replay a goldset against the live retriever",
    holds_store=False,
)
ANSWERS = JobKind(
    "answers", AnswersParams, _answers, "score answers and store the scores", holds_store=False
)
SWEEP = JobKind(
    "sweep", SweepParams, _sweep, "run a sweep file's missing points", holds_store=False
)
