"""``evalkit review add|disagreements|list|show|grade|agreement``: the goldset review queue
(docs/goldsets.md, "Review queue"; Label Studio: ``evalkit.cli.review_exchange``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from evalkit.cli._app import review_app
from evalkit.cli._options import (
    Output,
    TextsChromaUrl,
    TextsCollection,
    TextsCorpus,
    optional_document_texts,
)
from evalkit.cli._output import (
    OutputFormat,
    console,
    emit_json,
    key_values,
    print_listing,
    say,
    table,
)
from evalkit.cli._store import CommandStore
from evalkit.records.review import DISAGREEMENT_DEFAULTS

if TYPE_CHECKING:
    from evalkit.pipeline import QueueOutcome

__all__ = ["parse_grades"]

GoldsetName = Annotated[str, typer.Option("--goldset", help="The goldset the items are for.")]
ItemId = Annotated[str, typer.Argument(help="The item's id (or its first characters).")]


def parse_grades(values: list[str]) -> dict[str, int]:
    """``DOC=GRADE`` options as a mapping; a malformed one is a usage error (exit 2)."""
    grades: dict[str, int] = {}
    for value in values:
        doc_id, separator, grade = value.rpartition("=")
        if not separator or not doc_id.strip() or not grade.strip().isdigit():
            raise typer.BadParameter(
                f"{value!r} is not DOC=GRADE (a document id, '=', a grade 0-3)",
                param_hint="--grade",
            )
        if doc_id.strip() in grades:
            raise typer.BadParameter(f"document {doc_id!r} is graded twice", param_hint="--grade")
        grades[doc_id.strip()] = int(grade)
    return grades


def _print_queued(outcome: QueueOutcome, output: OutputFormat, summary: str) -> None:
    """What queueing did: the outcome as JSON, or ``goldset NAME: `` and ``summary``."""
    if output is OutputFormat.json:
        emit_json(outcome.to_dict())
    else:
        console.print(f"goldset {outcome.goldset}: {summary}", markup=False)


@review_app.command("add")
def add(
    directory: Annotated[
        Path, typer.Argument(help="A draft folder (traffic promote or goldset generate).")
    ],
    goldset: Annotated[
        str | None,
        typer.Option(
            "--goldset", help="The goldset the items are for (default: the folder's name)."
        ),
    ] = None,
    corpus: TextsCorpus = None,
    collection: TextsCollection = None,
    chroma_url: TextsChromaUrl = None,
    output: Output = OutputFormat.table,
) -> None:
    """Queue every query of a draft folder for review.

    A malformed draft is refused with every problem's file, line and field, and nothing is
    queued. Queuing a draft again keeps the items' reviews. A draft of promoted traffic needs
    --corpus or --collection for the reviewers to read its documents.

    Example: evalkit review add drafts/window-2026-11-20 --goldset support --collection support
    """
    from evalkit.pipeline import ingest_draft

    texts = optional_document_texts(corpus, collection, chroma_url)
    outcome = ingest_draft(CommandStore("review add"), directory, goldset=goldset, texts=texts)
    counts = outcome.counts
    _print_queued(
        outcome,
        output,
        f"{counts.added} items queued, {counts.updated} updated, {counts.kept} already "
        f"queued and kept (from {outcome.source})",
    )
    if outcome.already_asked and output is not OutputFormat.json:
        pairs = ", ".join(f"{query} ({asked})" for query, asked in outcome.already_asked[:5])
        more = ", ..." if len(outcome.already_asked) > 5 else ""
        n = len(outcome.already_asked)
        say(
            f"{n} draft quer{'y' if n == 1 else 'ies'} already in goldset {outcome.goldset} "
            f"(same tenant, same text up to case and spacing): {pairs}{more}; once accepted, "
            "`evalkit goldset publish` merges their grades into those queries instead of "
            "adding them again"
        )


@review_app.command("disagreements")
def disagreements(
    goldset: GoldsetName,
    assessor: Annotated[
        list[str] | None,
        typer.Option("--assessor", help="Only this assessor's grades (repeat for several)."),
    ] = None,
    min_gap: Annotated[
        int,
        typer.Option(
            "--min-gap",
            min=1,
            max=3,
            help="Grades (0-3) between the human's and the assessor's from which a pair "
            "disagrees (graded goldsets).",
        ),
    ] = DISAGREEMENT_DEFAULTS.min_gap,
    corpus: TextsCorpus = None,
    collection: TextsCollection = None,
    chroma_url: TextsChromaUrl = None,
    output: Output = OutputFormat.table,
) -> None:
    """Queue the goldset judgments an LLM assessor graded differently, one item per query.

    The assessor's grades come from the judged pool (`evalkit judge agreement`, `judge
    holes`); the items suggest the assessor's grade and show the goldset's.

    Example: evalkit review disagreements --goldset scifact --assessor gpt-4o-mini@v1
    """
    from evalkit.pipeline import queue_disagreements
    from evalkit.records.review import DisagreementRequest

    texts = optional_document_texts(corpus, collection, chroma_url)

    request = DisagreementRequest(
        assessors=tuple(assessor or ()),
        min_gap=min_gap,
        assessor_threshold=DISAGREEMENT_DEFAULTS.assessor_threshold,
    )
    outcome = queue_disagreements(
        CommandStore("review disagreements"), goldset, request, texts=texts
    )
    counts = outcome.counts
    _print_queued(
        outcome,
        output,
        f"{len(outcome.item_ids)} queries with a disagreement; {counts.added} queued, "
        f"{counts.updated} updated, {counts.kept} already queued and kept",
    )


@review_app.command("list")
def list_queue(
    goldset: Annotated[str | None, typer.Option("--goldset", help="Only this goldset.")] = None,
    status: Annotated[
        str | None,
        typer.Option(
            "--status", help="Only items in this status: open, accepted, rejected, published."
        ),
    ] = None,
    needed: Annotated[
        int,
        typer.Option("--needed", min=0, help="Reviewers an item needs; items that have them sink."),
    ] = 1,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="List at most N.")] = None,
    output: Output = OutputFormat.table,
) -> None:
    """List the queue in review order: highest priority first, reviewed items last.

    Example: evalkit review list --goldset support --status open -o json
    """
    from evalkit.pipeline import review_queue

    items = review_queue(
        CommandStore("review list", write=False),
        goldset=goldset,
        status=status,
        needed_reviews=needed,
        limit=limit,
    )
    print_listing(
        items,
        output,
        title=f"{len(items)} review items",
        columns=[
            "item",
            "goldset",
            "origin",
            "status",
            "priority",
            "docs",
            "reviewers",
            "query",
            "why",
        ],
        row=lambda queued: [
            queued.item.item_id,
            queued.item.goldset,
            str(queued.item.origin),
            queued.status,
            queued.item.priority,
            len(queued.item.documents),
            ", ".join(queued.reviewers) or "-",
            _short(queued.item.query.text),
            _short(queued.item.reason),
        ],
    )


def _short(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


@review_app.command("show")
def show(
    item: ItemId,
    output: Output = OutputFormat.table,
) -> None:
    """Show an item: its query, documents with suggested grades and spans, and its reviews.

    Example: evalkit review show 3f9a1c
    """
    from evalkit.pipeline import review_item

    details = review_item(CommandStore("review show", write=False), item)
    if output is OutputFormat.json:
        emit_json(details.to_dict())
        return
    queued = details.queued
    console.print(
        key_values(
            f"review item {queued.item.item_id}",
            {
                "goldset": queued.item.goldset,
                "origin": str(queued.item.origin),
                "status": queued.status,
                "priority": queued.item.priority,
                "why": queued.item.reason,
                "query id": queued.item.query.id,
                **({"tenant": queued.item.query.tenant} if queued.item.query.tenant else {}),
                "question": queued.item.query.text,
                **{f"provenance {k}": v for k, v in sorted(queued.item.provenance.items())},
            },
        )
    )
    console.print(
        table(
            "documents",
            ["doc", "suggested", "by", "span", "text"],
            [
                [
                    document.doc_id,
                    document.suggested_grade,
                    document.suggested_by,
                    _span_text(document.span),
                    _short(document.text, 80),
                ]
                for document in queued.item.documents
            ],
        )
    )
    if details.reviews:
        console.print(
            table(
                "reviews",
                ["reviewer", "verdict", "grades", "question", "note", "at (UTC)"],
                [
                    [
                        review.reviewer,
                        str(review.verdict),
                        ", ".join(f"{doc}={grade}" for doc, grade in review.grades.items()),
                        review.question,
                        review.note or None,
                        f"{review.reviewed_at:%Y-%m-%d %H:%M}",
                    ]
                    for review in details.reviews
                ],
            )
        )


def _span_text(span: object) -> str | None:
    from evalkit.records import Span

    if not isinstance(span, Span):
        return None
    where = f"{span.start}-{span.end}" if span.start is not None else "quoted"
    return f"{span.source_id}:{where}"


@review_app.command("grade")
def grade(
    item: ItemId,
    reviewer: Annotated[str, typer.Option("--reviewer", help="Your name, to sign the review.")],
    grades: Annotated[
        list[str] | None,
        typer.Option(
            "--grade",
            help="DOC=GRADE, a grade 0-3 (0 not relevant, 1 related, 2 relevant, 3 highly "
            "relevant) for one of the item's documents; repeat for each.",
        ),
    ] = None,
    question: Annotated[
        str | None, typer.Option("--question", help="The question as it should read.")
    ] = None,
    reject: Annotated[
        bool, typer.Option("--reject", help="Reject the item: it will not be published.")
    ] = False,
    note: Annotated[str, typer.Option("--note", help="A note for other reviewers.")] = "",
    output: Output = OutputFormat.table,
) -> None:
    """Review an item: grade its documents (accept) or reject it, signed with your name.

    Reviews are never overwritten: another review by you replaces yours in the verdict,
    and other reviewers' reviews stay beside it.

    Example: evalkit review grade 3f9a1c --reviewer ann --grade doc12=3 --grade doc7=0
    """
    from evalkit.pipeline import record_review
    from evalkit.records.review import Verdict

    record = record_review(
        CommandStore("review grade"),
        item,
        reviewer=reviewer,
        verdict=Verdict.reject if reject else Verdict.accept,
        grades=parse_grades(grades or []),
        question=question,
        note=note,
    )
    if output is OutputFormat.json:
        emit_json(
            {
                "item_id": record.item_id,
                "reviewer": record.reviewer,
                "verdict": str(record.verdict),
                "grades": dict(record.grades),
                "question": record.question,
                "reviewed_at": record.reviewed_at,
            }
        )
        return
    console.print(
        f"review of {record.item_id} by {record.reviewer} saved: {record.verdict}", markup=False
    )


@review_app.command("agreement")
def agreement(goldset: GoldsetName, output: Output = OutputFormat.table) -> None:
    """Cohen's kappa between every pair of reviewers over the items both reviewed.

    Weighted (linear) kappa over the documents both graded, with a bootstrap interval, and
    the share of items they gave the same verdict.

    Example: evalkit review agreement --goldset support
    """
    from evalkit.pipeline import reviewer_agreement

    results = reviewer_agreement(CommandStore("review agreement", write=False), goldset)
    print_listing(
        results,
        output,
        title=f"reviewer agreement on {goldset}",
        columns=[
            "reviewers",
            "items",
            "documents",
            "kappa",
            "low",
            "high",
            "scale",
            "same verdict",
        ],
        row=lambda r: [
            f"{r.reviewer_a} / {r.reviewer_b}",
            r.n_items,
            r.n_pairs,
            r.kappa,
            r.low,
            r.high,
            r.scale,
            r.verdict_agreement,
        ],
    )


# Registered after the commands above, so that `evalkit review --help` lists them in order.
from evalkit.cli import review_exchange  # noqa: E402, F401  (registers `review export|import`)
