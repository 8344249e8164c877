"""``evalkit freshness``: how long changes at the source take to become retrievable, against
an objective."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from evalkit.cli._app import app
from evalkit.cli._groups import grouped
from evalkit.cli._options import Format
from evalkit.cli._output import OutputFormat, console, emit_json, settings, table
from evalkit.cli._retriever import RETRIEVER
from evalkit.cli._store import CommandStore
from evalkit.clock import naive_utc
from evalkit.errors import ConfigError
from evalkit.records.freshness import FreshnessCheck, FreshnessRequest, human_seconds

if TYPE_CHECKING:
    from evalkit.retrievers.factory import RetrieverOptions

BREACHED_EXIT_CODE = 1


class Method(StrEnum):
    """How a change is told reflected."""

    auto = "auto"
    read_index = "index"
    probe = "probe"


@app.command("freshness")
@grouped
def freshness(
    changes: Annotated[
        list[Path] | None,
        typer.Option(
            "--changes",
            help="Change table, repeatable: a JSON Lines file or folder (doc_id, updated_at, "
            "content per line), a Parquet file, or a DuckDB file (.duckdb) holding "
            "--changes-table. Read on from where this subject's last check stopped.",
        ),
    ] = None,
    corpus: Annotated[
        Path | None,
        typer.Option(
            help="A corpus instead (JSONL, BEIR or TREC file, or a folder of files): its "
            "documents whose updated_at metadata (files: modification time) is newer than "
            "the last check's are the changes."
        ),
    ] = None,
    changes_table: Annotated[
        str | None,
        typer.Option(help="Table of a DuckDB change file (default: [freshness] changes_table)."),
    ] = None,
    retriever: RetrieverOptions = RETRIEVER.use(),
    method: Annotated[
        Method,
        typer.Option(
            help="index: read the versions and write times the index stores (Chroma, "
            "pgvector, Qdrant); probe: query the retriever with a passage of each changed "
            "document until it comes back; auto: index where evalkit can read it."
        ),
    ] = Method.auto,
    subject: Annotated[
        str | None,
        typer.Option(
            help="Name of this series of checks (default: the index, e.g. chroma:docs); each "
            "subject keeps its own place in the source."
        ),
    ] = None,
    k: Annotated[
        int | None,
        typer.Option("--k", min=1, help="Probe depth (default: [freshness] probe_k)."),
    ] = None,
    probe_timeout: Annotated[
        str | None,
        typer.Option(
            help="Keep probing unfound changes this long, e.g. 60s (default: [freshness] "
            "probe_timeout; 0: one round)."
        ),
    ] = None,
    probe_interval: Annotated[
        str | None,
        typer.Option(help="Pause between probe rounds (default: [freshness] probe_interval)."),
    ] = None,
    slo_p95_lag: Annotated[
        str | None,
        typer.Option(
            help="Objective: p95 lag at most this, e.g. 1h (default: [freshness] slo_p95_lag)."
        ),
    ] = None,
    max_unreflected_age: Annotated[
        str | None,
        typer.Option(
            help="Objective: no change waits longer than this, e.g. 6h (default: [freshness] "
            "max_unreflected_age)."
        ),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(help="Ignore changes made before this time (ISO 8601, UTC if naive)."),
    ] = None,
    shown: Annotated[
        int, typer.Option("--show", min=0, help="Changes listed of each kind (slowest, oldest).")
    ] = 20,
    output: Format = OutputFormat.table,
) -> None:
    """Measure how long changes at the source take to become retrievable, and store it.

    Stores each change's lag, the p50/p95/max and the changes still waiting (docs/freshness.md).
    Exit codes: 0 within the objective, 1 objective breached (p95 lag or the oldest
    unreflected change over its limit), 2 bad input (every bad change line is named by
    file, line and field), 3 retriever or store failure.

    Example: evalkit freshness --changes changes.jsonl --collection docs --slo-p95-lag 1h
    """
    from evalkit.config import parse_duration
    from evalkit.pipeline import check_named_index_freshness

    config = settings()
    durations = {
        name: _seconds(parse_duration, name, value)
        for name, value in (
            ("probe_timeout", probe_timeout),
            ("probe_interval", probe_interval),
            ("slo_p95_lag", slo_p95_lag),
            ("max_unreflected_age", max_unreflected_age),
        )
    }
    request = FreshnessRequest.from_settings(
        config,
        changes=tuple(changes or ()),
        corpus=corpus,
        changes_table=changes_table,
        subject=subject,
        method=method.value,
        k=k,
        since=_since(since),
        shown=shown,
        **durations,
    )
    check = check_named_index_freshness(CommandStore("freshness"), request, retriever, config)
    if output is OutputFormat.json:
        emit_json(check.to_dict(reflected=shown))
    else:
        _print(check, shown)
    if check.breached:
        raise typer.Exit(BREACHED_EXIT_CODE)


def _seconds(parse: Any, name: str, value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(parse(value))
    except ValueError as error:
        option = "--" + name.replace("_", "-")
        raise ConfigError(f"{option}: {error}") from None


def _since(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(
            f"--since {value!r} is not an ISO 8601 time (e.g. 2026-03-01T12:00:00Z)"
        ) from None
    return naive_utc(moment)


def _print(check: FreshnessCheck, shown: int) -> None:
    console.print(
        f"freshness of {check.subject} ({check.method}, {check.index_kind}) at "
        f"{check.checked_at:%Y-%m-%d %H:%M:%S} UTC: {check.n_read} changes read, "
        f"{check.n_reflected} reflected, {check.n_pending} waiting, "
        f"{check.n_superseded} superseded",
        markup=False,
    )
    summary: list[list[object]] = [
        ["p50 lag", human_seconds(check.lag_p50)],
        ["p95 lag", human_seconds(check.lag_p95)],
        ["max lag", human_seconds(check.lag_max)],
        [
            "unreflected share",
            f"{check.unreflected_share:.1%}" if check.unreflected_share is not None else None,
        ],
        ["oldest unreflected", human_seconds(check.oldest_unreflected_seconds)],
        [
            "objective",
            f"p95 <= {human_seconds(check.slo_p95_lag)}, "
            f"waiting <= {human_seconds(check.max_unreflected_age)}",
        ],
    ]
    console.print(table(None, ["figure", "value"], summary))
    if check.reflected and shown:
        slowest = sorted(check.reflected, key=lambda change: -change.lag_seconds)[:shown]
        rows: list[list[object]] = [
            [
                change.doc_id,
                f"{change.updated_at:%Y-%m-%d %H:%M:%S}",
                human_seconds(change.lag_seconds),
                change.reflected_by,
            ]
            for change in slowest
        ]
        console.print(table("slowest reflected", ["doc_id", "changed", "lag", "told by"], rows))
    if check.oldest and shown:
        waiting: list[list[object]] = [
            [
                change.doc_id,
                f"{change.updated_at:%Y-%m-%d %H:%M:%S}",
                human_seconds(change.age_seconds),
                change.state,
                change.origin,
            ]
            for change in check.oldest[:shown]
        ]
        console.print(
            table("oldest unreflected", ["doc_id", "changed", "waiting", "state", "from"], waiting)
        )
    for note in check.notes:
        console.print(f"note: {note}", markup=False)
    verdict = "BREACHED: " + "; ".join(check.breaches) if check.breached else "within objective"
    console.print(f"{verdict}; check id: {check.check_id}", markup=False)
