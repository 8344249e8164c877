"""``evalkit audit``: index health checks on a Chroma or Qdrant collection or a pgvector table,
stored, gating on severity."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from evalkit.cli._app import app
from evalkit.cli._options import Format, seed_option
from evalkit.cli._output import OutputFormat, console, emit_json, say, settings, table
from evalkit.cli._retriever import ChromaUrl, chroma_collection_name
from evalkit.cli._store import CommandStore
from evalkit.errors import ConfigError
from evalkit.extras import require_all
from evalkit.records.audit import AUDIT_DEFAULTS, AUDITED_KINDS, CHECK_NAMES, AuditConfig

if TYPE_CHECKING:
    from evalkit.audit import AuditReport
    from evalkit.config import RetrieverSettings

FINDINGS_EXIT_CODE = 1
_SHOWN_IDS = 5


class FailOn(StrEnum):
    """The least severe finding that makes ``evalkit audit`` exit with 1."""

    warning = "warning"
    critical = "critical"


@app.command("audit")
def audit(
    collection: Annotated[
        str | None,
        typer.Option(
            help="Collection to audit: Chroma's (required), or Qdrant's with --retriever "
            "qdrant (default: [retriever.qdrant]'s)."
        ),
    ] = None,
    source: Annotated[
        Path | None,
        typer.Option(
            help="Source corpus the index should mirror (JSONL file, BEIR folder or TREC "
            "file): finds changed, deleted and unindexed documents."
        ),
    ] = None,
    goldset: Annotated[
        str | None,
        typer.Option(
            help="Stored goldset: its queries probe ANN recall and judgment coverage, its "
            "judgments are checked for orphans, its span judgments against the source."
        ),
    ] = None,
    chroma_url: ChromaUrl = None,
    retriever_spec: Annotated[
        str | None,
        typer.Option(
            "--retriever",
            help="chroma (the default), qdrant or pgvector (the table of "
            "[retriever.pgvector]): the engine whose index is read; other retrievers are "
            "refused with what to run instead.",
        ),
    ] = None,
    fail_on: Annotated[
        FailOn,
        typer.Option(help="Exit with 1 when a finding of this severity or worse exists."),
    ] = FailOn.critical,
    near_duplicate_threshold: Annotated[
        float, typer.Option(help="Cosine at or above which two documents are near duplicates.")
    ] = AUDIT_DEFAULTS.near_duplicate_threshold,
    model_sample: Annotated[
        int,
        typer.Option(help="Stored documents re-embedded to check the model (0: all of them)."),
    ] = AUDIT_DEFAULTS.model_sample_size or 0,
    k: Annotated[
        int, typer.Option("--k", help="Depth of ANN recall@k and judged@k.")
    ] = AUDIT_DEFAULTS.k,
    ann_queries: Annotated[
        int, typer.Option(help="Queries sampled for the ANN recall check.")
    ] = AUDIT_DEFAULTS.ann_max_queries,
    check: Annotated[
        list[str] | None,
        typer.Option(
            help="Run only this check (repeatable): duplicates, staleness, model, "
            "ann_recall, coverage, orphans, spans."
        ),
    ] = None,
    seed: Annotated[
        int, seed_option("Seed of the document and query samples.")
    ] = AUDIT_DEFAULTS.seed,
    save: Annotated[
        bool, typer.Option("--save/--no-save", help="Store the audit and its findings.")
    ] = True,
    output: Format = OutputFormat.table,
) -> None:
    """Audit a collection: duplicates, staleness, model mismatch, ANN recall, coverage, orphans.

    Findings are stored (for alert rules and the dashboard). Exit codes: 0 no finding at or
    above --fail-on, 1 such a finding exists, 2 bad input, 3 retriever or store failure.
    A Chroma collection, a Qdrant collection or a pgvector table can be audited: the checks
    read its stored vectors and texts.

    Example: evalkit audit --collection demo --source goldsets/demo/corpus.jsonl
    --goldset demo --fail-on critical --format json
    """
    from evalkit.embedding import (
        PacedEmbedder,
        build_document_embedder,
        close_embedder,
        local_model_modules,
    )
    from evalkit.pipeline import audit_collection

    config = settings()
    checks = tuple(check) if check else CHECK_NAMES
    if check:
        # A check asked for by name that could not run would pass a CI step unchecked.
        needs = {"coverage": goldset, "orphans": goldset, "spans": goldset, "staleness": source}
        option = {"staleness": "--source"}
        unable = [name for name in checks if name in needs and needs[name] is None]
        if unable:
            raise ConfigError(
                f"--check {unable[0]} needs {option.get(unable[0], '--goldset')}; without it "
                "the check cannot run"
            )
    # The model check re-embeds documents; ANN recall and coverage embed the goldset's queries.
    embeds = "model" in checks or bool(goldset and {"ann_recall", "coverage"} & set(checks))
    model_modules = local_model_modules(config) if embeds else ()
    kind, collection = _audited_index(collection, retriever_spec, config.retriever)
    if kind != "chroma" and chroma_url:
        raise ConfigError(f"--chroma-url is for a Chroma collection, not a {kind} index")
    if kind == "chroma":
        require_all(("chromadb", *model_modules), "`evalkit audit`")
    audit_config = AuditConfig(
        checks=checks,
        near_duplicate_threshold=near_duplicate_threshold,
        model_sample_size=model_sample or None,
        k=k,
        ann_max_queries=ann_queries,
        relevance_threshold=config.relevance_threshold,
        orphaned_relevant_critical_share=config.audit.orphaned_relevant_critical_share,
        seed=seed,
    )
    # The [embedder] the collection was indexed with, loaded when a check first needs it:
    # the store, the goldset and the collection are checked before that. A text this model
    # embedded before (`evalkit index`) is read from the vector cache, as indexing reads it.
    embedder = build_document_embedder(config)
    if embedder is not None and output is OutputFormat.table:
        # Re-embedding every stored text (--model-sample 0) takes minutes: say how long first.
        embedder = PacedEmbedder(embedder, lambda pace: say(pace.describe()))
    # Opened for each piece of work the audit does: the checks run without the store.
    store = CommandStore("audit", write=save, config=config) if (save or goldset) else None
    try:
        outcome = audit_collection(
            store,
            collection,
            settings=config,
            config=audit_config,
            embedder=embedder,
            chroma_url=chroma_url,
            source=source,
            goldset=goldset,
            save=save,
            retriever=kind,
        )
    finally:
        close_embedder(embedder)
    report, audit_id = outcome.report, outcome.audit_id
    data = {"audit_id": audit_id, **report.to_dict(), "fail_on": fail_on.value}
    failed = report.fails(fail_on.value)
    data["failed"] = failed
    if output is OutputFormat.json:
        emit_json(data)
    else:
        _print(report, audit_id, fail_on, failed)
    if failed:
        raise typer.Exit(FINDINGS_EXIT_CODE)


def _audited_index(
    collection: str | None, retriever_spec: str | None, configured: RetrieverSettings
) -> tuple[str, str | None]:
    """The kind of index to audit and its collection (None: the settings'); ConfigError when
    the retriever named is not one evalkit can read."""
    named = retriever_spec or (None if collection else configured.factory or configured.kind)
    kind = named or "chroma"
    if kind not in AUDITED_KINDS:
        raise ConfigError(
            f"audit reads an index's stored vectors (duplicates, staleness, model, ANN "
            f"recall) and evalkit can read them from {', '.join(AUDITED_KINDS)}; the retriever "
            f"{named!r} is not one. Give --retriever KIND (and --collection NAME) of those, or "
            f"measure {named!r} with `evalkit run --retriever {named}` (docs/audit.md)"
        )
    if kind == "chroma":
        if not collection:
            raise ConfigError("name the Chroma collection to audit: --collection NAME")
        chroma_collection_name(collection)
    elif kind == "pgvector" and collection:
        raise ConfigError(
            "a pgvector audit takes no --collection NAME: it reads the table of "
            "[retriever.pgvector] (its `table`)"
        )
    return kind, collection


def _ids(ids: tuple[str, ...]) -> str:
    shown = ", ".join(ids[:_SHOWN_IDS])
    return f"{shown}, ... (+{len(ids) - _SHOWN_IDS})" if len(ids) > _SHOWN_IDS else shown or "-"


def _print(report: AuditReport, audit_id: str | None, fail_on: FailOn, failed: bool) -> None:
    findings: list[list[Any]] = [
        [
            finding.severity.value,
            finding.kind,
            finding.count,
            _ids(finding.doc_ids or finding.query_ids),
            finding.message,
        ]
        for finding in report.findings
    ]
    title = f"audit of {report.collection} ({report.n_documents} documents)"
    if findings:
        console.print(table(title, ["severity", "kind", "count", "ids", "finding"], findings))
    else:
        console.print(f"{title}: no findings", markup=False)
    checks = [
        [
            outcome.name,
            "yes" if outcome.ran else "no",
            ", ".join(f"{name}={value:g}" for name, value in outcome.measurements.items()) or "-",
            outcome.note or "-",
        ]
        for outcome in report.checks
    ]
    console.print(table("checks", ["check", "ran", "measurements", "note"], checks))
    worst = report.max_severity
    verdict = "FAIL" if failed else "pass"
    console.print(
        f"{verdict} (fail on {fail_on.value}; worst finding: "
        f"{worst.value if worst else 'none'}); audit id: {audit_id or 'not stored'}",
        markup=False,
    )
