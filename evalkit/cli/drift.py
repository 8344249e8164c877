"""``evalkit drift embeddings|documents|model|precision``: drift checks, stored with evidence.

Each command exits 1 when it finds drift (or a model mismatch), so it can gate a job.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from evalkit.cli._output import (
    OutputFormat,
    console,
    emit_json,
    key_values,
    settings,
    table,
)
from evalkit.cli._retriever import ChromaUrl
from evalkit.cli._store import open_store
from evalkit.cli.app import app

DRIFT_FOUND = 1

drift_app = typer.Typer(
    help="Test embeddings, the embedding model and precision over time for drift.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(drift_app, name="drift")

Format = Annotated[OutputFormat, typer.Option("--format", help="table or json")]
Alpha = Annotated[float, typer.Option(help="False-alarm rate of the test.")]
Seed = Annotated[int, typer.Option(help="Seed of permutations and subsampling (stored).")]
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


def _finish(data: dict[str, Any], title: str, output: OutputFormat, *, found: bool) -> None:
    if output is OutputFormat.json:
        emit_json(data)
    else:
        _print_result(title, data)
    if found:
        raise typer.Exit(DRIFT_FOUND)


@drift_app.command("embeddings")
def embeddings(
    reference: Annotated[Path, typer.Option(help="Reference window: a .npy array (n x dim).")],
    current: Annotated[Path, typer.Option(help="Current window: a .npy array (m x dim).")],
    method: Method = "auto",
    alpha: Alpha = 0.05,
    seed: Seed = 0,
    stream: Annotated[str, typer.Option(help="What the vectors are: queries or documents.")] = (
        "queries"
    ),
    report: Report = False,
    output: Format = OutputFormat.table,
) -> None:
    """Test whether two windows of embeddings come from the same distribution.

    Example: evalkit drift embeddings --reference last_week.npy --current today.npy
    --method mmd --format json
    """
    from evalkit.drift.watch import check_embeddings, load_embeddings

    reference_array = load_embeddings(reference)
    current_array = load_embeddings(current)
    with open_store(write=True, purpose="drift") as store:
        result, stored, report_path = check_embeddings(
            reference_array,
            current_array,
            method=method,
            alpha=alpha,
            seed=seed,
            stream=stream,
            reference_label=str(reference),
            current_label=str(current),
            store=store,
            report_dir=Path("reports") if report else None,
        )
    data = result.to_dict()
    data["check_id"] = stored.check_id if stored else None
    data["report"] = str(report_path) if report_path else None
    _finish(data, f"{stream} embedding drift", output, found=result.is_drift)


@drift_app.command("documents")
def documents(
    collection: Annotated[str, typer.Option(help="Chroma collection to watch.")],
    chroma_url: ChromaUrl = None,
    save_reference: Annotated[
        bool, typer.Option(help="Save a reference snapshot of the collection now and stop.")
    ] = False,
    reference: Annotated[
        Path | None, typer.Option(help="Reference snapshot (.npy); default: the newest saved.")
    ] = None,
    sample: Annotated[int, typer.Option(help="Documents sampled from the collection.")] = 2000,
    method: Method = "auto",
    alpha: Alpha = 0.05,
    seed: Seed = 0,
    report: Report = False,
    output: Format = OutputFormat.table,
) -> None:
    """Compare the indexed corpus now with a reference snapshot of its embeddings.

    Example: evalkit drift documents --collection demo --save-reference, later
    evalkit drift documents --collection demo --format json
    """
    import numpy as np

    from evalkit.drift.watch import check_embeddings, load_embeddings
    from evalkit.retrievers.chroma_client import close_client, get_collection, open_chroma_client
    from evalkit.store import utc_now

    config = settings()
    url = chroma_url or config.chroma_url
    client = open_chroma_client(path=None if url else config.resolved_chroma_path, url=url)
    try:
        vectors = _sample_vectors(get_collection(client, collection), sample, seed)
    finally:
        close_client(client)
    snapshots = config.home / "snapshots"
    if save_reference:
        snapshots.mkdir(parents=True, exist_ok=True)
        path = snapshots / f"{collection}-{utc_now():%Y%m%dT%H%M%S}.npy"
        np.save(path, vectors)
        _finish(
            {"snapshot": str(path), "vectors": len(vectors)},
            "reference saved",
            output,
            found=False,
        )
        return
    if reference is None:
        saved = sorted(snapshots.glob(f"{collection}-*.npy"))
        if not saved:
            from evalkit.errors import ConfigError

            raise ConfigError(
                f"no reference snapshot of {collection}: save one first with "
                f"`evalkit drift documents --collection {collection} --save-reference`"
            )
        reference = saved[-1]
    with open_store(write=True, purpose="drift", config=config) as store:
        result, stored, report_path = check_embeddings(
            load_embeddings(reference),
            vectors,
            method=method,
            alpha=alpha,
            seed=seed,
            stream="documents",
            subject=collection,
            reference_label=str(reference),
            current_label=f"{collection} now",
            store=store,
            report_dir=Path("reports") if report else None,
        )
    data = result.to_dict()
    data["check_id"] = stored.check_id if stored else None
    data["report"] = str(report_path) if report_path else None
    _finish(data, f"document embedding drift: {collection}", output, found=result.is_drift)


def _sample_vectors(collection: Any, sample: int, seed: int) -> Any:
    import numpy as np

    count = collection.count()
    ids = collection.get(include=[])["ids"]
    rng = np.random.default_rng(seed)
    chosen = sorted(rng.choice(len(ids), min(sample, count), replace=False).tolist())
    picked = [ids[index] for index in chosen]
    vectors = []
    for start in range(0, len(picked), 1000):
        got = collection.get(ids=picked[start : start + 1000], include=["embeddings"])
        vectors.append(np.asarray(got["embeddings"], dtype=np.float32))
    return np.concatenate(vectors) if vectors else np.zeros((0, 0), dtype=np.float32)


@drift_app.command("model")
def model(
    collection: Annotated[str, typer.Option(help="Chroma collection whose model to check.")],
    chroma_url: ChromaUrl = None,
    output: Format = OutputFormat.table,
) -> None:
    """Check that the configured query model embeds as the model the index was built with.

    A mismatch is reported as its own finding (model_mismatch), not as drift.

    Example: evalkit drift model --collection demo --format json
    """
    from evalkit.drift.watch import check_model
    from evalkit.embedding import ModelFingerprint, load_embedder
    from evalkit.retrievers.chroma_client import close_client, get_collection, open_chroma_client

    config = settings()
    url = chroma_url or config.chroma_url
    client = open_chroma_client(path=None if url else config.resolved_chroma_path, url=url)
    try:
        metadata = dict(get_collection(client, collection).metadata or {})
    finally:
        close_client(client)
    embedder = load_embedder(config.model_path, batch_size=config.embed_batch_size)
    with open_store(write=True, purpose="drift", config=config) as store:
        check = check_model(
            ModelFingerprint.from_metadata(metadata), embedder, subject=collection, store=store
        )
    _finish(check.to_dict(), f"model check: {collection}", output, found=check.is_mismatch)


@drift_app.command("precision")
def precision(
    goldset: Annotated[str, typer.Option(help="Goldset whose run series to check.")],
    measure: Annotated[str, typer.Option("-m", "--measure", help="Measure to watch.")] = (
        "ndcg@10"
    ),
    subject: Annotated[
        str | None, typer.Option(help="Only this retriever (as listed in the output).")
    ] = None,
    baseline: Annotated[
        str | None, typer.Option(help="Pinned baseline run (default: the oldest run).")
    ] = None,
    alpha: Alpha = 0.05,
    min_effect: Annotated[float, typer.Option(help="Smallest drop that matters.")] = 0.01,
    seed: Seed = 0,
    output: Format = OutputFormat.table,
) -> None:
    """Watch a goldset's runs over time: sequential change detection plus a paired test of
    the latest run against the pinned baseline.

    A series still inside the detector's warm-up says "warming up (n of N runs)"; a
    retriever whose runs are all partial is listed as skipped, with the reason.

    Example: evalkit drift precision --goldset demo -m ndcg@10 --format json
    """
    from evalkit.drift.watch import watch_precision

    with open_store(write=True, purpose="drift") as store:
        watched = watch_precision(
            store,
            goldset,
            measure=measure,
            subject=subject,
            baseline_run=baseline,
            alpha=alpha,
            min_effect=min_effect,
            seed=seed,
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
            console.print(
                table(
                    f"{goldset} on {check.subject}: {measure} ({check.status()})",
                    ["run", "started", measure, "level"],
                    rows,
                )
            )
            if check.paired:
                metric = check.paired["metrics"][measure]
                console.print(
                    f"latest vs baseline {check.baseline_run}: delta {metric['delta']:+.4f} "
                    f"[{metric['ci_low']:+.4f}, {metric['ci_high']:+.4f}], "
                    f"p={metric['p_adjusted']:.4g}, {metric['decision']}",
                    markup=False,
                )
            if check.partial_runs:
                console.print(
                    f"{check.partial_runs} partial runs of {check.subject} left out of the "
                    "series (queries failed)",
                    markup=False,
                )
        for item in watched.skipped:
            console.print(f"skipped {item.subject}: {item.reason}", markup=False)
    if found:
        raise typer.Exit(DRIFT_FOUND)
