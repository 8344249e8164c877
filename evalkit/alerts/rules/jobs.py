"""Rule kind ``job_failure``: jobs whose last runs failed or were interrupted."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from evalkit.alerts.model import Signal
from evalkit.alerts.rules.base import RuleContext, RuleKind, RuleParams, iso
from evalkit.store.jobs import latest_job_runs, list_job_runs

__all__ = [
    "JOB_FAILURE",
    "JobFailureParams",
]


class JobFailureParams(RuleParams):
    """``kind = "job_failure"``."""

    jobs: list[str] | None = Field(
        default=None,
        min_length=1,
        description="Jobs watched (default: all), each one of the file's [[jobs]].",
    )
    statuses: tuple[Literal["failed", "interrupted", "partial"], ...] = Field(
        default=("failed", "interrupted"),
        min_length=1,
        description="Job-run statuses that count as failures.",
    )
    consecutive: int = Field(
        default=1, ge=1, description="Fire after this many failed runs in a row."
    )


def _job_failure(ctx: RuleContext, params: JobFailureParams) -> list[Signal]:
    """A signal per watched job that has finished runs. Watching every job, a job that the
    file's ``[[jobs]]`` no longer holds is not watched any more, and its open key is closed:
    nothing runs it, so nothing else would ever resolve it."""
    if params.jobs is not None:
        names = list(params.jobs)
    else:
        names = sorted(latest_job_runs(ctx.store))
        if ctx.jobs is not None:
            names = [name for name in names if name in ctx.jobs]
    signals = [
        _job_gone(job)
        for job, state in sorted(ctx.previous.items())
        if job not in names and (state.active or state.notified_status == "firing")
    ]
    for job in names:
        finished = [
            run
            for run in list_job_runs(ctx.store, job=job, limit=params.consecutive + 5)
            if run.status != "running"
        ]
        if not finished:
            continue
        streak = 0
        for run in finished:
            if run.status not in params.statuses:
                break
            streak += 1
        last = finished[0]
        active = streak >= params.consecutive
        signals.append(
            Signal(
                subject=job,
                active=active,
                title=f"job {job} {last.status}"
                + (f" ({streak} runs in a row)" if streak > 1 else ""),
                summary=(last.error or f"job {job} {last.status}")[:1000],
                evidence={
                    "job": job,
                    "kind": last.kind,
                    "job_run_id": last.job_run_id,
                    "status": last.status,
                    "error": last.error,
                    "trigger": last.trigger,
                    "started_at": iso(last.started_at),
                    "finished_at": iso(last.finished_at),
                    "consecutive_failures": streak,
                    "run_ids": list(last.run_ids),
                },
                links={"history": f"evalkit jobs history {job}"},
            )
        )
    return signals


def _job_gone(job: str) -> Signal:
    why = f"job {job} is no longer configured"
    return Signal(
        subject=job,
        active=False,
        title=f"{why}: its failures are no longer watched",
        summary=f"Closed: {why} in the [[jobs]] of the configuration file.",
        evidence={"job": job, "closed": why},
        links={"history": f"evalkit jobs history {job}"},
    )


JOB_FAILURE = RuleKind(
    "job_failure",
    JobFailureParams,
    _job_failure,
    "a scheduled job failed",
)
