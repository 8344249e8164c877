"""``evalkit compare`` and ``evalkit gate``: paired statistics between two runs."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from evalkit.cli._output import OutputFormat, console, emit_json, err_console, settings, table
from evalkit.cli._retriever import (
    AllowMismatch,
    ChromaUrl,
    Collection,
    HttpUrl,
    RetrieverSpec,
    WhereKey,
)
from evalkit.cli._store import open_store
from evalkit.cli.app import app
from evalkit.errors import ConfigError, RetrieverError
from evalkit.retrievers.factory import RetrieverOptions, build_retriever

if TYPE_CHECKING:
    import pandas as pd

    from evalkit.store import Store

EXIT_CODES = {"pass": 0, "regression": 1, "inconclusive": 4}

Measures = Annotated[
    list[str] | None,
    typer.Option("-m", "--measure", help="Measure to compare, repeatable (default: ndcg@10)."),
]
GoldsetOption = Annotated[
    str | None,
    typer.Option(help="Stored goldset whose judgments score run files (and a live candidate)."),
]
QrelsOption = Annotated[Path | None, typer.Option(help="TREC qrels to score both runs with.")]
Alpha = Annotated[float, typer.Option(help="Family-wise error rate across the measures.")]
MinEffect = Annotated[
    float,
    typer.Option(help="Smallest drop that matters (in the measure's units, e.g. 0.01)."),
]
Resamples = Annotated[int, typer.Option(help="Bootstrap resamples and sign-flip permutations.")]
Seed = Annotated[int, typer.Option(help="Seed of the resampling (recorded in the output).")]
Worst = Annotated[int, typer.Option(help="Worst-regressed queries to list per measure.")]
Format = Annotated[OutputFormat, typer.Option("--format", help="table or json")]
FailedAsZero = Annotated[
    bool,
    typer.Option(
        "--failed-as-zero",
        help="Count a query whose retrieval failed in a stored run as 0 on every measure "
        "(the worst outcome). Without it, a run with failed queries is refused (exit 3).",
    ),
]


def _judgments(store: Store | None, goldset: str | None, qrels: Path | None) -> pd.DataFrame | None:
    from evalkit.store.goldsets import judgments_frame, load_goldset

    if qrels is not None and goldset is not None:
        raise ConfigError("give --qrels or --goldset, not both")
    if qrels is not None:
        from evalkit.metrics import read_qrels

        return read_qrels(qrels)
    if goldset is not None:
        if store is None:
            raise ConfigError(f"no store to read goldset {goldset!r} from")
        return judgments_frame(store, load_goldset(store, goldset).version)
    return None


def _print(data: dict[str, Any]) -> None:
    rows = [
        [
            measure,
            m["baseline_mean"],
            m["candidate_mean"],
            m["delta"],
            f"[{m['ci_low']:+.4f}, {m['ci_high']:+.4f}]",
            m["p_permutation"],
            m["p_wilcoxon"],
            m["p_adjusted"],
            m["n"],
            m["decision"],
        ]
        for measure, m in data["metrics"].items()
    ]
    columns = [
        "measure",
        "baseline",
        "candidate",
        "delta",
        f"{round(data['confidence'] * 100)}% CI",
        "p perm",
        "p wilcoxon",
        "p adj (Holm)",
        "n",
        "decision",
    ]
    console.print(table(f"{data['baseline']} -> {data['candidate']}", columns, rows))
    for measure, m in data["metrics"].items():
        if m["queries_needed_note"]:
            needed = m["queries_needed"]
            console.print(
                f"queries needed to decide {measure}: "
                + (
                    f"~{needed:,} ({m['queries_needed_note']})"
                    if needed
                    else m["queries_needed_note"]
                ),
                markup=False,
            )
    for measure, queries in data["worst_queries"].items():
        if not queries:
            continue
        worst_rows = [
            [q["query_id"], q["baseline"], q["candidate"], q["delta"], ", ".join(q["lost"]) or "-"]
            for q in queries
        ]
        console.print(
            table(
                f"worst-regressed queries on {measure}",
                ["query", "baseline", "candidate", "delta", "relevant docs lost"],
                worst_rows,
            )
        )
    for role in ("baseline", "candidate"):
        failed = data.get(f"failed_in_{role}", [])
        if failed:
            err_console.print(
                f"note: {len(failed)} queries failed in the {role} and were counted as 0 "
                f"(--failed-as-zero): {', '.join(failed)}",
                markup=False,
            )
    dropped = len(data.get("only_in_baseline", [])) + len(data.get("only_in_candidate", []))
    if dropped:
        err_console.print(
            f"note: {dropped} queries are in only one of the runs and were not compared "
            f"(only in baseline: {len(data['only_in_baseline'])}, "
            f"only in candidate: {len(data['only_in_candidate'])})",
            markup=False,
        )
    console.print(f"decision: {data['decision']}", markup=False)


def _open_store(stack: ExitStack, *, write: bool, purpose: str) -> Store | None:
    """The store for the rest of ``stack`` (None when only reading and there is none)."""
    config = settings()
    if not write and not config.resolved_store_path.exists():
        return None
    return stack.enter_context(open_store(write=write, purpose=purpose, config=config))


@app.command("compare")
def compare(
    baseline: Annotated[str, typer.Argument(help="Stored run id or TREC run file.")],
    candidate: Annotated[str, typer.Argument(help="Stored run id or TREC run file.")],
    measure: Measures = None,
    goldset: GoldsetOption = None,
    qrels: QrelsOption = None,
    alpha: Alpha = 0.05,
    min_effect: MinEffect = 0.0,
    resamples: Resamples = 10_000,
    seed: Seed = 0,
    worst: Worst = 10,
    failed_as_zero: FailedAsZero = False,
    output: Format = OutputFormat.table,
) -> None:
    """Compare two runs query by query: deltas, bootstrap CIs, p-values, worst queries.

    Example: evalkit compare 20261121T101500-1a2b3c 20261121T113000-4d5e6f -m ndcg@10
    -m recall@100

    A stored run whose retrieval failed on some queries is refused (exit 3) unless
    --failed-as-zero counts those queries as 0; they are never left out silently.
    """
    from evalkit.stats import compare_scored, score_run

    measures = measure or ["ndcg@10"]
    with ExitStack() as stack:
        store = _open_store(stack, write=False, purpose="compare")
        judgments = _judgments(store, goldset, qrels)
        base = score_run(store, baseline, measures, judgments=judgments)
        cand = score_run(store, candidate, measures, judgments=judgments)
    report = compare_scored(
        base,
        cand,
        measures,
        alpha=alpha,
        min_effect=min_effect,
        resamples=resamples,
        seed=seed,
        worst=worst,
        failed_as_zero=failed_as_zero,
    )
    data = report.to_dict()
    if output is OutputFormat.json:
        emit_json(data)
    else:
        _print(data)


@app.command("gate")
def gate(
    baseline: Annotated[str, typer.Option(help="Stored run id or TREC run file.")],
    candidate: Annotated[
        str | None,
        typer.Option(help="Stored run id or TREC run file; or name a live retriever instead."),
    ] = None,
    measure: Measures = None,
    min_effect: MinEffect = 0.01,
    alpha: Alpha = 0.05,
    goldset: GoldsetOption = None,
    qrels: QrelsOption = None,
    collection: Collection = None,
    chroma_url: ChromaUrl = None,
    http_retriever: HttpUrl = None,
    retriever_spec: RetrieverSpec = None,
    k: Annotated[int | None, typer.Option("--k", help="Depth of a live candidate run.")] = None,
    where_key: WhereKey = None,
    allow_model_mismatch: AllowMismatch = False,
    resamples: Resamples = 10_000,
    seed: Seed = 0,
    worst: Worst = 10,
    failed_as_zero: FailedAsZero = False,
    junit: Annotated[Path | None, typer.Option(help="Write JUnit XML here.")] = None,
    markdown: Annotated[Path | None, typer.Option(help="Write a Markdown summary here.")] = None,
    output: Format = OutputFormat.table,
) -> None:
    """Fail on a statistically significant retrieval regression.

    Per measure: regression when the drop is significant after Holm correction and the
    confidence interval shows a drop larger than --min-effect; pass when the interval rules
    such a drop out; otherwise inconclusive. Exit codes: 0 pass, 1 regression, 2 bad input,
    3 retriever or store failure (including a baseline or candidate run with failed queries,
    unless --failed-as-zero counts them as 0), 4 inconclusive.

    Example: evalkit gate --baseline 20261121T101500-1a2b3c --goldset demo --collection demo
    -m ndcg@10 -m recall@100 --min-effect 0.01 --junit gate.xml --markdown gate.md
    """
    from evalkit.stats import compare_scored, score_run, to_junit_xml, to_markdown

    measures = measure or ["ndcg@10"]
    live_options = RetrieverOptions(
        collection=collection,
        chroma_url=chroma_url,
        http_url=http_retriever,
        retriever=retriever_spec,
        where_key=where_key,
        allow_model_mismatch=allow_model_mismatch,
    )
    named_live = bool(collection or chroma_url or http_retriever or retriever_spec)
    if named_live and candidate is not None:
        raise ConfigError(
            "name the candidate once: --candidate RUN_OR_FILE, or a live retriever "
            "(--retriever / --collection / --chroma-url / --http-retriever) to replay now"
        )
    configured = settings().retriever
    live = named_live or (candidate is None and bool(configured.kind or configured.factory))
    if not live and candidate is None:
        raise ConfigError(
            "name the candidate: --candidate RUN_OR_FILE, or a live retriever "
            "(--retriever / --collection / --chroma-url / --http-retriever, or a [retriever] "
            "table in evalkit.toml) to replay now"
        )
    with ExitStack() as stack:
        store = _open_store(stack, write=live, purpose="gate")
        judgments = _judgments(store, goldset, qrels)
        base = score_run(store, baseline, measures, judgments=judgments)
        if live:
            candidate = _replay_candidate(
                store,
                goldset,
                measures,
                k=k,
                options=live_options,
            )
        assert candidate is not None
        cand = score_run(store, candidate, measures, judgments=judgments)
    report = compare_scored(
        base,
        cand,
        measures,
        alpha=alpha,
        min_effect=min_effect,
        resamples=resamples,
        seed=seed,
        worst=worst,
        failed_as_zero=failed_as_zero,
    )
    data = report.to_dict()
    if junit is not None:
        junit.parent.mkdir(parents=True, exist_ok=True)
        junit.write_text(to_junit_xml(report.comparison), encoding="utf-8")
    if markdown is not None:
        markdown.parent.mkdir(parents=True, exist_ok=True)
        markdown.write_text(
            to_markdown(report.comparison, worst=report.worst_queries), encoding="utf-8"
        )
    if output is OutputFormat.json:
        emit_json(data)
    else:
        _print(data)
    raise typer.Exit(EXIT_CODES[str(data["decision"])])


def _replay_candidate(
    store: Store | None,
    goldset: str | None,
    measures: list[str],
    *,
    k: int | None,
    options: RetrieverOptions,
) -> str:
    from evalkit.pipeline import default_measures, evaluate_goldset
    from evalkit.store.goldsets import load_goldset

    if goldset is None or store is None:
        raise ConfigError("a live candidate needs --goldset NAME to replay")
    config = settings()
    depth = k or config.k
    gold = load_goldset(store, goldset)
    retriever = build_retriever(options, config)
    wanted = list(dict.fromkeys([*default_measures(depth), *measures]))
    outcome = evaluate_goldset(
        store,
        gold,
        retriever,
        k=depth,
        measures=wanted,
        relevance_threshold=config.relevance_threshold,
        batch_size=config.query_batch_size,
        label="gate candidate",
        # The gate decides on retrieval metrics; judging answers would only add cost.
        answers=False,
        close_retriever=True,
    )
    if outcome.run.status != "complete":
        raise RetrieverError(
            f"the candidate run {outcome.run.run_id} is {outcome.run.status}: "
            f"{outcome.run.error}. The gate needs every query answered."
        )
    return outcome.run.run_id
