"""``evalkit drift embeddings|documents|model|precision``: drift checks, stored with evidence.

Each command exits 1 when it finds drift (or a model mismatch), so it can gate a job.
"""

from __future__ import annotations

from dataclasses import replace
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from evalkit.cli._options import Format, command_group, seed_option
from evalkit.cli._output import (
    OutputFormat,
    console,
    emit_json,
    key_values,
    settings,
    table,
)
from evalkit.cli._retriever import ChromaUrl, chroma_collection_name
from evalkit.cli._store import CommandStore, open_store
from evalkit.records.requests import (
    DEFAULT_DOCUMENT_SAMPLE,
    DEFAULT_MODEL_SAMPLE,
    DRIFT_TEST_DEFAULTS,
    PRECISION_WATCH_DEFAULTS,
    PRECISION_WATCH_MEASURE,
    TRAFFIC_PRECISION_MEASURE,
    TRAFFIC_PRECISION_MIN_EFFECT,
    TRAFFIC_PRECISION_MIN_JUDGED_SHARE,
    DriftTestSettings,
)

if TYPE_CHECKING:
    from evalkit.pipeline import DriftOutcome

DRIFT_FOUND = 1

drift_app = command_group(
    "drift",
    "Test embeddings, the embedding model and precision over time for drift.",
)


class VectorStream(StrEnum):
    """What the vectors of ``evalkit drift embeddings`` are."""

    queries = "queries"
    documents = "documents"


Alpha = Annotated[float, typer.Option(help="False-alarm rate of the test.")]
Seed = Annotated[int, seed_option("Seed of permutations and subsampling (stored).")]
Method = Annotated[
    str,
    typer.Option(
        help="Detector: auto (default: mmd for small windows, moments for large), mmd, moments, "
        "mmd_rff, classifier, ks, mean_cosine."
    ),
]
Report = Annotated[
    bool, typer.Option(help="Also write Evidently's HTML drift report under reports/.")
]


def _print_result(title: str, data: dict[str, Any]) -> None:
    shown = {key: value for key, value in data.items() if not isinstance(value, dict | list)}
    console.print(key_values(title, shown))


def _drift_data(outcome: DriftOutcome) -> dict[str, Any]:
    data = outcome.result.to_dict() if outcome.result is not None else {}
    data["check_id"] = outcome.check.check_id if outcome.check else None
    # What was compared with what: a snapshot file, a window, an array.
    data["reference"] = outcome.check.reference if outcome.check else None
    data["current"] = outcome.check.current if outcome.check else None
    data["report"] = str(outcome.report) if outcome.report else None
    return data


def _finish(data: dict[str, Any], title: str, output: OutputFormat, *, found: bool) -> None:
    if output is OutputFormat.json:
        emit_json(data)
    else:
        _print_result(title, data)
    if found:
        raise typer.Exit(DRIFT_FOUND)


def _finish_test(outcome: DriftOutcome, title: str, output: OutputFormat) -> None:
    """Show a drift test's outcome; exit 1 when it found drift."""
    found = outcome.result is not None and outcome.result.is_drift
    _finish(_drift_data(outcome), title, output, found=found)


@drift_app.command("embeddings")
def embeddings(
    reference: Annotated[Path, typer.Option(help="Reference window: a .npy array (n x dim).")],
    current: Annotated[Path, typer.Option(help="Current window: a .npy array (m x dim).")],
    method: Method = DRIFT_TEST_DEFAULTS.method,
    alpha: Alpha = DRIFT_TEST_DEFAULTS.alpha,
    seed: Seed = DRIFT_TEST_DEFAULTS.seed,
    stream: Annotated[
        VectorStream, typer.Option(help="What the vectors are: queries or documents.")
    ] = VectorStream.queries,
    report: Report = False,
    output: Format = OutputFormat.table,
) -> None:
    """Test whether two windows of embeddings come from the same distribution.

    Example: evalkit drift embeddings --reference last_week.npy --current today.npy
    --method mmd --format json
    """
    from evalkit.pipeline import check_drift_embeddings

    outcome = check_drift_embeddings(
        CommandStore("drift"),
        reference,
        current,
        test=DriftTestSettings(method=method, alpha=alpha, seed=seed),
        stream=stream.value,
        report_dir=Path("reports") if report else None,
    )
    _finish_test(outcome, f"{stream.value} embedding drift", output)


@drift_app.command("documents")
def documents(
    collection: Annotated[
        str, typer.Option(help="Chroma collection to watch.", callback=chroma_collection_name)
    ],
    chroma_url: ChromaUrl = None,
    save_reference: Annotated[
        bool, typer.Option(help="Save a reference snapshot of the collection now and stop.")
    ] = False,
    reference: Annotated[
        Path | None, typer.Option(help="Reference snapshot (.npy); default: the newest saved.")
    ] = None,
    sample: Annotated[
        int, typer.Option(min=2, help="Documents sampled from the collection.")
    ] = DEFAULT_DOCUMENT_SAMPLE,
    method: Method = DRIFT_TEST_DEFAULTS.method,
    alpha: Alpha = DRIFT_TEST_DEFAULTS.alpha,
    seed: Seed = DRIFT_TEST_DEFAULTS.seed,
    report: Report = False,
    output: Format = OutputFormat.table,
) -> None:
    """Compare the indexed corpus now with a reference snapshot of its embeddings.

    The sample tested holds documents outside the snapshot (added or re-embedded since, or
    never sampled), so that what changed is not diluted by the documents both share.

    Example: evalkit drift documents --collection demo --save-reference, later
    evalkit drift documents --collection demo --format json
    """
    from evalkit.pipeline import check_drift_documents, save_documents_reference

    config = settings()
    if save_reference:
        path, n_vectors = save_documents_reference(
            config, collection, chroma_url=chroma_url, sample=sample, seed=seed
        )
        _finish(
            {"snapshot": str(path), "vectors": n_vectors},
            "reference saved",
            output,
            found=False,
        )
        return
    outcome = check_drift_documents(
        CommandStore("drift", config=config),
        config,
        collection,
        chroma_url=chroma_url,
        reference=reference,
        sample=sample,
        test=DriftTestSettings(method=method, alpha=alpha, seed=seed),
        report_dir=Path("reports") if report else None,
    )
    _finish_test(outcome, f"document embedding drift: {collection}", output)


@drift_app.command("model")
def model(
    collection: Annotated[
        str,
        typer.Option(
            help="Chroma collection whose model to check.", callback=chroma_collection_name
        ),
    ],
    chroma_url: ChromaUrl = None,
    sample: Annotated[
        int, typer.Option(min=1, help="Stored documents re-embedded from their text.")
    ] = DEFAULT_MODEL_SAMPLE,
    seed: Annotated[int, seed_option("Seed of the sample (stored).")] = DRIFT_TEST_DEFAULTS.seed,
    output: Format = OutputFormat.table,
) -> None:
    """Check that the configured query model embeds as the model the index was built with.

    Evidence: the collection's model fingerprint (canary texts) and a seeded sample of
    stored documents re-embedded and compared with their stored vectors. A mismatch is its
    own finding (model_mismatch), not drift.

    Example: evalkit drift model --collection demo --sample 128 --format json
    """
    from evalkit.pipeline import check_drift_model

    config = settings()
    check = check_drift_model(
        CommandStore("drift", config=config),
        config,
        collection,
        chroma_url=chroma_url,
        sample=sample,
        seed=seed,
    )
    _finish(check.to_dict(), f"model check: {collection}", output, found=check.is_mismatch)


@drift_app.command("precision")
def precision(
    goldset: Annotated[str | None, typer.Option(help="Goldset whose run series to check.")] = None,
    traffic: Annotated[
        bool,
        typer.Option(
            "--traffic",
            help="Check the series of traffic windows judged by an LLM assessor instead of a "
            "goldset's runs (see `evalkit judge traffic`).",
        ),
    ] = False,
    measure: Annotated[
        str | None,
        typer.Option(
            "-m",
            "--measure",
            help=f"Measure to watch (default {PRECISION_WATCH_MEASURE}; "
            f"--traffic {TRAFFIC_PRECISION_MEASURE}).",
        ),
    ] = None,
    assessor: Annotated[
        str | None, typer.Option(help="--traffic: only this assessor's labels.")
    ] = None,
    min_judged_share: Annotated[
        float,
        typer.Option(help="--traffic: leave out windows with less than this share labelled."),
    ] = TRAFFIC_PRECISION_MIN_JUDGED_SHARE,
    subject: Annotated[
        str | None, typer.Option(help="Only this retriever (as listed in the output).")
    ] = None,
    baseline: Annotated[
        str | None,
        typer.Option(
            help="Pinned baseline run (default: each series' first complete run that "
            "retention left its per-query results); with --traffic, a window (default: the "
            "first judged one)."
        ),
    ] = None,
    last: Annotated[
        int,
        typer.Option(
            min=0,
            help="Table output: show each series' newest this many runs (0: all). The "
            "detector and the JSON output use every run.",
        ),
    ] = 20,
    alpha: Alpha = PRECISION_WATCH_DEFAULTS.alpha,
    min_effect: Annotated[
        float | None,
        typer.Option(
            help=f"Smallest drop that matters (default {PRECISION_WATCH_DEFAULTS.min_effect}; "
            f"--traffic {TRAFFIC_PRECISION_MIN_EFFECT})."
        ),
    ] = None,
    seed: Seed = PRECISION_WATCH_DEFAULTS.seed,
    output: Format = OutputFormat.table,
) -> None:
    """Watch a goldset's runs over time: sequential change detection plus a paired test of
    the latest run against the pinned baseline.

    A retriever whose runs are all partial is listed as skipped, with the reason. With
    --traffic, the series are judged traffic windows, tested unpaired against the first (or
    --baseline WINDOW). docs/drift.md, "`evalkit drift precision`"; docs/judging.md.

    Example: evalkit drift precision --goldset demo -m ndcg@10 --format json
    """
    from evalkit.errors import ConfigError
    from evalkit.pipeline import check_drift_precision

    if traffic == (goldset is not None):
        raise ConfigError("name what to watch: --goldset NAME or --traffic, one of the two")
    if traffic:
        _traffic_precision(
            measure=measure or TRAFFIC_PRECISION_MEASURE,
            subject=subject,
            assessor=assessor,
            baseline=baseline,
            alpha=alpha,
            min_effect=TRAFFIC_PRECISION_MIN_EFFECT if min_effect is None else min_effect,
            min_judged_share=min_judged_share,
            output=output,
        )
        return
    assert goldset is not None
    measure = measure or PRECISION_WATCH_MEASURE
    paired_test = replace(PRECISION_WATCH_DEFAULTS, alpha=alpha, seed=seed)
    if min_effect is not None:
        paired_test = replace(paired_test, min_effect=min_effect)
    with open_store(write=True, purpose="drift", existing=True) as store:
        watched = check_drift_precision(
            store,
            goldset,
            measure=measure,
            subject=subject,
            baseline_run=baseline,
            test=paired_test,
        )
    checks = watched.checks
    found = any(check.finding == "drift" for check in checks)
    if output is OutputFormat.json:
        emit_json(
            {
                "checks": [check.to_dict() for check in checks],
                "skipped": [item.to_dict() for item in watched.skipped],
                "is_drift": found,
            }
        )
    else:
        for check in checks:
            rows = [
                [run_id, started[:16], value, level]
                for (run_id, started, value), level in zip(
                    check.series, check.shown_levels(), strict=True
                )
            ]
            hidden = len(rows) - last if last and len(rows) > last else 0
            console.print(
                table(
                    f"{goldset} on {check.subject}: {measure} ({check.status()})",
                    ["run", "started", measure, "level"],
                    rows[hidden:],
                )
            )
            if hidden:
                console.print(
                    f"{hidden} earlier runs of the series not shown (--last 0 shows them)",
                    markup=False,
                )
            if check.details.get("paired_skipped"):
                console.print(str(check.details["paired_skipped"]), markup=False)
            if check.paired:
                metric = check.paired.metric(measure)
                console.print(
                    f"latest vs baseline {check.baseline_run}: delta {metric.delta:+.4f} "
                    f"[{metric.ci_low:+.4f}, {metric.ci_high:+.4f}], "
                    f"p={metric.p_adjusted:.4g}, {metric.decision.value}",
                    markup=False,
                )
            if check.partial_runs:
                console.print(
                    f"{check.partial_runs} partial runs of {check.subject} left out of the "
                    "series (queries failed)",
                    markup=False,
                )
            if check.check_id and check.finding == "drift":
                console.print(
                    f"stored as drift check {check.check_id}: `evalkit explain --drift-check "
                    f"{check.check_id}` names its probable causes",
                    markup=False,
                )
        for item in watched.skipped:
            console.print(f"skipped {item.subject}: {item.reason}", markup=False)
    if found:
        raise typer.Exit(DRIFT_FOUND)


def _traffic_precision(
    *,
    measure: str,
    subject: str | None,
    assessor: str | None,
    baseline: str | None,
    alpha: float,
    min_effect: float,
    min_judged_share: float,
    output: OutputFormat,
) -> None:
    from evalkit.pipeline import check_traffic_precision

    with open_store(write=True, purpose="drift", existing=True) as store:
        checks = check_traffic_precision(
            store,
            measure=measure,
            assessor=assessor,
            retriever=subject,
            baseline_window=baseline,
            alpha=alpha,
            min_effect=min_effect,
            min_judged_share=min_judged_share,
        )
    found = any(check.finding == "drift" for check in checks)
    if output is OutputFormat.json:
        emit_json({"checks": [check.to_dict() for check in checks], "is_drift": found})
    else:
        for check in checks:
            rows = [
                [window, run_id, value, low, high, share, level]
                for (window, run_id, value, low, high, share), level in zip(
                    check.series, check.levels, strict=True
                )
            ]
            columns = ["window", "run", measure, "low", "high", "judged", "level"]
            title = f"traffic on {check.retriever}: {measure} by {check.assessor} ({check.finding})"
            console.print(table(title, columns, rows))
            if check.test is not None:
                test = check.test
                console.print(
                    f"window {test.current_window} vs {test.baseline_window}: delta "
                    f"{test.delta:+.4f} (se {test.standard_error:.4f}), one-sided p="
                    f"{test.p_value:.4g}, {'regression' if test.regression else 'no regression'}",
                    markup=False,
                )
            console.print(
                f"assessor agreement: {check.agreement_id or 'agreement not measured'}",
                markup=False,
            )
    if found:
        raise typer.Exit(DRIFT_FOUND)
