"""``evalkit answers score|list|show``: faithfulness and other answer-level metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from evalkit.cli._options import Format, command_group
from evalkit.cli._output import (
    OutputFormat,
    console,
    emit_json,
    key_values,
    print_listing,
    progress_bar,
    table,
)
from evalkit.cli._store import CommandStore, open_store

__all__ = ["answers_app", "print_answer_summaries"]

answers_app = command_group(
    "answers",
    "Score generated answers: faithfulness (ragas with an LLM judge, or the offline "
    "embedding method), answer relevance, and ragas' ID-based and non-LLM context "
    "precision and recall.",
)


PerItem = Annotated[bool, typer.Option(help="Also print every record's scores.")]

_SUMMARY_COLUMNS = ["metric", "method", "mean", "measured", "unmeasured", "why unmeasured"]


def _summary_rows(summaries: list[dict[str, Any]]) -> list[list[object]]:
    return [
        [
            s["metric"],
            s["method"],
            s["mean"],
            s["n_measured"],
            s["n_unmeasured"],
            ", ".join(f"{reason} {n}" for reason, n in s["unmeasured_by_reason"].items()) or "-",
        ]
        for s in summaries
    ]


def _score_rows(scores: list[dict[str, Any]]) -> list[list[object]]:
    return [
        [
            s["item_id"],
            s["metric"],
            s["method"],
            s["value"],
            s["unmeasured_reason"] or "-",
            s["n_claims"],
            s["n_supported"],
        ]
        for s in scores
    ]


_SCORE_COLUMNS = ["item", "metric", "method", "value", "unmeasured", "claims", "supported"]


def print_answer_summaries(data: dict[str, Any] | None, *, title: str = "answers") -> None:
    """Print a run's answer scoring (``AnswerScores.to_dict`` form): its id and counts,
    then per metric the mean over measured answers and the measured / unmeasured counts.

    Prints nothing when ``data`` is None (the run generated no answer, or scoring was off).
    """
    if data is None:
        return
    facts = {
        "scoring": data.get("scoring_id") or "(not stored)",
        "answers": data["n_records"],
        "judge calls": data["judge_calls"],
        "cache hits": data["cache_hits"],
    }
    console.print(key_values(title, facts))
    console.print(table("answer metrics", _SUMMARY_COLUMNS, _summary_rows(data["summaries"])))


@answers_app.command("score")
def score(
    file: Annotated[
        Path,
        typer.Argument(
            help="JSONL file: one {question, answer, contexts[, reference, context_ids, "
            "reference_context_ids, reference_contexts]} object per line."
        ),
    ],
    method: Annotated[
        str | None,
        typer.Option(
            help="Faithfulness method: auto (the LLM judge of [judge] in evalkit.toml when "
            "configured, else offline), llm, offline or both. Default: the [judge] setting."
        ),
    ] = None,
    save: Annotated[
        bool, typer.Option("--store/--no-store", help="Keep the scores in the evalkit store.")
    ] = True,
    per_item: PerItem = False,
    output: Format = OutputFormat.table,
) -> None:
    """Score a JSONL file of generated answers and the contexts they were generated from.

    Answers that cannot be measured (no claim, no context, a judge failure) are counted
    and left out of the means, never scored as 0 or NaN.

    Example: evalkit answers score answers.jsonl --method offline --per-item --format json
    """
    from evalkit.config import ScoringMethod, load_settings
    from evalkit.errors import ConfigError
    from evalkit.pipeline import score_answer_file

    chosen = None
    if method is not None:
        try:
            chosen = ScoringMethod(method)
        except ValueError:
            choices = ", ".join(m.value for m in ScoringMethod)
            raise ConfigError(f"--method {method!r} is not one of: {choices}") from None
    judge_settings = load_settings(judge={"method": chosen}).judge
    with progress_bar("scoring answers", enabled=output is OutputFormat.table) as bar:
        # Opened for each piece of work the scoring does: the judge is asked without it.
        store = CommandStore("answers score") if save else None
        result = score_answer_file(file, settings=judge_settings, store=store, progress=bar)
    data = result.to_dict(per_item=per_item)
    if output is OutputFormat.json:
        emit_json(data)
        return
    console.print(
        key_values(
            "answers",
            {
                "file": str(file),
                "records": result.n_records,
                "scoring": result.scoring_id or "(not stored)",
                "judge calls": result.judge_calls,
                "cache hits": result.cache_hits,
            },
        )
    )
    if per_item:
        console.print(table("per record", _SCORE_COLUMNS, _score_rows(data["scores"])))
    console.print(table("metrics", _SUMMARY_COLUMNS, _summary_rows(data["summaries"])))


@answers_app.command("list")
def list_scorings(
    run_id: Annotated[str | None, typer.Option("--run", help="Only scorings of this run.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many scorings.")] = 20,
    output: Format = OutputFormat.table,
) -> None:
    """List stored answer scorings, newest first.

    Example: evalkit answers list --limit 5 --format json
    """
    from evalkit.store.answers import list_scorings as stored_scorings

    with open_store(write=False, purpose="answers") as store:
        scorings = stored_scorings(store, run_id=run_id, limit=limit)
    print_listing(
        scorings,
        output,
        title="answer scorings",
        columns=["scoring", "run", "source", "records", "judge calls", "cache hits", "started"],
        row=lambda s: [
            s.scoring_id,
            s.run_id or "-",
            s.source or "-",
            s.n_records,
            s.judge_calls,
            s.cache_hits,
            f"{s.started_at:%Y-%m-%d %H:%M}",
        ],
    )


@answers_app.command("show")
def show_scoring(
    scoring_id: Annotated[str, typer.Argument(help="Scoring id (a unique prefix is enough).")],
    per_item: PerItem = False,
    output: Format = OutputFormat.table,
) -> None:
    """Show one stored scoring: means over measured answers and the unmeasured counts.

    Example: evalkit answers show ans-20261121T183500-3f9a1c --per-item
    """
    from evalkit.store.answers import answer_score_rows, answer_summaries, get_scoring

    with open_store(write=False, purpose="answers") as store:
        scoring = get_scoring(store, scoring_id)
        summaries = answer_summaries(store, scoring.scoring_id)
        scores = answer_score_rows(store, scoring.scoring_id) if per_item else None
    data: dict[str, Any] = {**scoring.to_dict(), "summaries": summaries}
    if scores is not None:
        data["scores"] = scores
    if output is OutputFormat.json:
        emit_json(data)
        return
    facts = {key: data[key] for key in ("scoring_id", "run_id", "source", "n_records")}
    console.print(key_values("answer scoring", facts))
    if scores is not None:
        console.print(table("per record", _SCORE_COLUMNS, _score_rows(data["scores"])))
    console.print(table("metrics", _SUMMARY_COLUMNS, _summary_rows(summaries)))
