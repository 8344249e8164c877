"""Job kinds that keep house: prune old runs, run a program of your own.

- ``retention``: delete the per-query rows of old runs, keeping their aggregates, (when
  asked) production traffic older than ``traffic_keep_days``, and what killed drills left
  (their scratch collections and folders);
- ``command``: run a program (it gets the store to itself: the service does not hold it).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from datetime import timedelta
from pathlib import Path

from pydantic import Field

from evalkit.clock import utc_now
from evalkit.config import Duration
from evalkit.drill.scratch import sweep_drill_leftovers
from evalkit.errors import ConfigError, RetrieverError
from evalkit.redaction import masked_excerpt
from evalkit.scheduler.job_kinds.base import JobContext, JobKind, JobOutcome, JobParams
from evalkit.store.retention import prune_run_details, prune_traffic, retention_candidates

__all__ = [
    "COMMAND",
    "RETENTION",
    "CommandParams",
    "RetentionParams",
]


# -- retention ----------------------------------------------------------------------------


class RetentionParams(JobParams):
    """``kind = "retention"``: prune per-query rows of old runs, keep their aggregates."""

    keep_days: Duration = Field(
        default=90 * 86400.0, description="Runs younger than this keep everything ('90d')."
    )
    keep_latest: int = Field(
        default=10, ge=0, description="Newest runs of each goldset and label kept whole."
    )
    keep_runs: list[str] = Field(
        default_factory=list, description="Runs never pruned (baselines of rules are added)."
    )
    traffic_keep_days: Duration | None = Field(
        default=None,
        description="Delete logged production queries older than this ('30d'); unset keeps them.",
    )


def _retention(ctx: JobContext, params: RetentionParams) -> JobOutcome:

    store = ctx.require_store()
    keep = list(dict.fromkeys([*params.keep_runs, *ctx.pinned_runs]))
    candidates = retention_candidates(
        store,
        older_than=utc_now() - timedelta(seconds=params.keep_days),
        keep_latest=params.keep_latest,
        keep=keep,
    )
    deleted = 0
    pruned: list[str] = []
    for run_id in candidates:
        ctx.check_cancelled()
        deleted += prune_run_details(store, [run_id])
        pruned.append(run_id)
    summary: dict[str, object] = {"runs_pruned": len(pruned), "rows_deleted": deleted, "kept": keep}
    if params.traffic_keep_days is not None:
        ctx.check_cancelled()
        traffic = prune_traffic(
            store, older_than=utc_now() - timedelta(seconds=params.traffic_keep_days)
        )
        summary["traffic_records_deleted"] = traffic.records
        summary["traffic_sample_queries_deleted"] = traffic.sample_queries
        summary["traffic_generations_deleted"] = traffic.generations
    try:
        summary["drill_leftovers_removed"] = sweep_drill_leftovers(ctx.settings)
    except RetrieverError as error:  # the pruning stands; the next drill sweeps too
        ctx.log.warning("job %s: %s", ctx.job, error)
        summary["drill_sweep_error"] = str(error)
    return JobOutcome(summary=summary)


# -- command ------------------------------------------------------------------------------

_TERMINATE_GRACE = 5.0
_STDERR_CHARS = 500


class CommandParams(JobParams):
    """``kind = "command"``: run a program; exit status 0 is success."""

    command: list[str] = Field(min_length=1, description="Program and arguments.")
    timeout: Duration | None = Field(default=None, gt=0, description="Kill it after this long.")
    cwd: Path | None = Field(default=None, description="Working directory.")


def _command(ctx: JobContext, params: CommandParams) -> JobOutcome:
    began = time.monotonic()
    env = {**os.environ, "EVALKIT_JOB": ctx.job}
    try:
        child = subprocess.Popen(
            params.command,
            cwd=params.cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
    except OSError as error:
        raise ConfigError(f"job {ctx.job}: cannot run {params.command[0]}: {error}") from error
    with child:
        stderr, stopped = _wait_for(child, ctx, timeout=params.timeout, began=began)
    if stopped == "timeout":
        return JobOutcome(
            status="failed", error=f"{params.command[0]} ran longer than {params.timeout:g} s"
        )
    if stopped == "cancelled":
        ctx.check_cancelled()
    tail = masked_excerpt(stderr.decode(errors="replace").strip(), _STDERR_CHARS, tail=True)
    summary = {"exit_code": child.returncode, "seconds": round(time.monotonic() - began, 3)}
    if child.returncode == 0:
        return JobOutcome(summary=summary)
    return JobOutcome(
        status="failed",
        summary=summary,
        error=f"{params.command[0]} exited with {child.returncode}" + (f": {tail}" if tail else ""),
    )


def _wait_for(
    child: subprocess.Popen[bytes], ctx: JobContext, *, timeout: float | None, began: float
) -> tuple[bytes, str | None]:
    """Wait for the child; stop it when the job is cancelled or runs out of time."""
    try:
        while True:
            try:
                _, stderr = child.communicate(timeout=0.2)
                return stderr, None
            except subprocess.TimeoutExpired:
                if ctx.cancel.is_set():
                    _stop(child)
                    return b"", "cancelled"
                if timeout is not None and time.monotonic() - began > timeout:
                    _stop(child)
                    return b"", "timeout"
    finally:
        if child.poll() is None:
            _stop(child)


def _stop(child: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(child.pid, signal.SIGTERM)
        child.wait(timeout=_TERMINATE_GRACE)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()
    except ProcessLookupError:
        child.wait()


RETENTION = JobKind("retention", RetentionParams, _retention, "prune per-query rows of old runs")
COMMAND = JobKind("command", CommandParams, _command, "run a program", uses_store=False)
