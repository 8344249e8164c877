"""Generate a draft goldset from a corpus: questions that cover it evenly, written by the
``[judge]`` LLM endpoint, each anchored to the spans of the passages it rests on.

``generate_goldset`` embeds and clusters the corpus, plans questions over the clusters
(``evalkit.judging.coverage``), has them written and checked (``evalkit.judging.generate``),
drops near-duplicates, and writes a draft folder beside its destination, renamed onto it in
one step (a killed run leaves no folder or the whole one). A dry run sends and writes
nothing. With a store, replies are kept in ``judge_calls`` as they arrive and reused, so the
same command resumes a stopped run. The folder's files: docs/goldsets.md, "Generating a
draft goldset".
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evalkit.answers.cache import JudgeCallOutput
from evalkit.batches import BatchWriter
from evalkit.embedding import TextEmbedder
from evalkit.errors import ConfigError, InputError, JudgeError
from evalkit.files import write_folder
from evalkit.goldset.corpus import iter_corpus
from evalkit.judging.coverage import (
    allocate_kinds,
    cluster_count,
    cluster_documents,
    format_mix,
    parse_mix,
    plan_tasks,
    source_of,
)
from evalkit.judging.generate import (
    SUGGESTED_GRADE,
    DroppedTask,
    DropReason,
    GenerationTask,
    QuestionWriter,
    WrittenQuestion,
    estimate_tokens,
    near_duplicates,
)
from evalkit.records import Document
from evalkit.records.requests import GenerationRequest
from evalkit.store.access import WriterAccess
from evalkit.store.answers import load_judge_calls, save_judge_calls

__all__ = [
    "DRAFT_FILES",
    "GENERATED_PRIORITY",
    "GenerationOutcome",
    "generate_goldset",
]

Progress = Callable[[int, int], None]

GENERATED_PRIORITY = 0.5
"""Review priority of every generated question (the review queue weighs it against other
origins'; a generated question is as worth a look as any other)."""

_EXISTS = "already exists; choose another --out directory or pass --overwrite"

DRAFT_FILES = ("queries.jsonl", "judgments.jsonl", "corpus.jsonl", "candidates.jsonl", "README.md")
"""The files of a generated draft folder."""

_README = """# Goldset draft generated from {corpus}

{n} questions written by `{model}` (prompt {prompt_version}) from {n_passages} passages of
{n_sources} sources, drawn evenly over {n_clusters} clusters of the documents' embeddings
(mix {mix}, at most {max_per_source} passages a source, seed {seed}).

Nothing here is a human judgment yet: every grade in judgments.jsonl is the generator's
suggestion ({grade} = highly relevant, for the passage holding the question's evidence; the
span fields say where in the source that evidence stands). candidates.jsonl says where
each question came from; corpus.jsonl holds the passages.

To turn this draft into a goldset version, review it: queue it
(`evalkit review add {directory} --goldset NAME`), read each question, edit or reject it,
grade its passages 0-3 and publish the accepted items (`evalkit goldset publish`;
docs/goldsets.md, "Generating a draft goldset"). Importing the folder as it is
(`evalkit goldset import {directory} --name NAME`) would publish the generator's
suggestions as if a person had made them.
"""


@dataclass(frozen=True, slots=True)
class GenerationOutcome:
    """What a generation did (or, on a dry run, would do) and cost.

    ``dropped`` counts questions not in the draft by ``DropReason``; ``failures`` details each
    refused one; ``calls`` the requests sent, ``from_cache`` the kept replies used, ``tokens`` as
    reported and ``estimated_tokens`` at four characters a token.
    """

    corpus: Path
    directory: Path | None
    dry_run: bool
    generator: str
    prompt_version: str
    embedding_model: str
    mix: str
    n_documents: int
    n_requested: int
    n_planned: int
    n_generated: int
    kinds: Mapping[str, int]
    dropped: Mapping[str, int]
    n_clusters: int
    clusters_covered: int
    sources_used: int
    calls: int
    tokens: int
    estimated_tokens: int
    max_calls: int | None
    failures: tuple[Mapping[str, str], ...] = field(default=())
    from_cache: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "corpus": str(self.corpus),
            "directory": None if self.directory is None else str(self.directory),
            "dry_run": self.dry_run,
            "generator": self.generator,
            "prompt_version": self.prompt_version,
            "embedding_model": self.embedding_model,
            "mix": self.mix,
            "documents": self.n_documents,
            "requested": self.n_requested,
            "planned": self.n_planned,
            "generated": self.n_generated,
            "kinds": dict(self.kinds),
            "dropped": sum(self.dropped.values()),
            "dropped_by_reason": dict(self.dropped),
            "clusters": self.n_clusters,
            "clusters_covered": self.clusters_covered,
            "sources_used": self.sources_used,
            "calls": self.calls,
            "from_cache": self.from_cache,
            "max_calls": self.max_calls,
            "tokens": self.tokens,
            "estimated_tokens": self.estimated_tokens,
            "failures": [dict(failure) for failure in self.failures],
        }


def _check_request(request: GenerationRequest) -> None:
    if request.n < 1:
        raise ConfigError(f"`n` must be at least 1, got {request.n}")
    if request.max_per_source < 1:
        raise ConfigError(f"`max_per_source` must be at least 1, got {request.max_per_source}")
    if request.clusters is not None and request.clusters < 1:
        raise ConfigError(f"`clusters` must be at least 1, got {request.clusters}")
    if not 0.0 < request.dedup_threshold <= 1.0:
        raise ConfigError(
            f"`dedup_threshold` must be above 0 and at most 1, got {request.dedup_threshold}"
        )
    if not 0.0 <= request.max_overlap <= 1.0:
        raise ConfigError(f"`max_overlap` must be within 0 and 1, got {request.max_overlap}")
    if request.max_calls is not None and request.max_calls < 0:
        raise ConfigError(f"`max_calls` must be at least 0, got {request.max_calls}")
    if request.max_calls == 0 and not request.dry_run:
        raise ConfigError("`max_calls` 0 sends nothing: give a budget of at least one call")


def generate_goldset(
    corpus: Path | str,
    out: Path | str,
    request: GenerationRequest,
    *,
    writer: QuestionWriter,
    embedder: TextEmbedder,
    progress: Progress | None = None,
    replies: WriterAccess | None = None,
) -> GenerationOutcome:
    """Generate a draft goldset of ``request.n`` questions from ``corpus`` into ``out`` (a dry run
    plans and prices it); ``replies`` (the store) keeps and reuses replies.

    Raises InputError for an existing ``out`` or a corpus without text, ConfigError for options
    that cannot work, JudgeError when calls yield no question (nothing is written).
    """
    _check_request(request)
    corpus_path, target = Path(corpus), Path(out)
    if target.exists() and not request.overwrite and not request.dry_run:
        raise InputError(_EXISTS, path=str(target))
    mix = parse_mix(request.mix)
    documents = [document for document in iter_corpus(corpus_path) if document.text.strip()]
    if not documents:
        raise InputError(
            "holds no document with text to write questions from", path=str(corpus_path)
        )
    vectors = embedder.embed([document.content for document in documents])
    k = request.clusters or cluster_count(len(documents), request.n)
    labels = cluster_documents(vectors, k, seed=request.seed)
    plan = plan_tasks(
        documents,
        vectors,
        labels,
        allocate_kinds(mix, request.n),
        max_per_source=request.max_per_source,
        seed=request.seed,
    )
    tasks = plan.tasks
    cached = _kept_replies(replies, writer, tasks)
    replay = writer.replay(tasks, cached, max_overlap=request.max_overlap)
    pending = replay.pending
    sendable = pending if request.max_calls is None else pending[: request.max_calls]
    facts: dict[str, Any] = {
        "corpus": corpus_path,
        "generator": writer.model,
        "prompt_version": writer.prompt_version,
        "embedding_model": embedder.name,
        "mix": format_mix(mix),
        "n_documents": len(documents),
        "n_requested": request.n,
        "n_planned": len(tasks),
        "n_clusters": plan.n_clusters,
        "estimated_tokens": sum(estimate_tokens(task) for task in sendable),
        "max_calls": request.max_calls,
    }
    unplaced = sum(plan.unplaced.values())
    if not tasks:
        raise ConfigError(
            f"no question could be given a passage: the {len(documents)} documents cannot "
            f"serve the mix {format_mix(mix)} with at most {request.max_per_source} passages "
            "a source (a multi-passage question needs two sources in one cluster); raise "
            "`max_per_source` or change `mix`"
        )
    if request.dry_run:
        return GenerationOutcome(
            directory=None,
            dry_run=True,
            n_generated=0,
            kinds=dict(Counter(str(task.kind) for task in tasks)),
            dropped={DropReason.no_passage: unplaced} if unplaced else {},
            clusters_covered=len({task.cluster for task in tasks}),
            sources_used=len({source_of(p) for task in tasks for p in task.passages}),
            calls=len(sendable),
            from_cache=replay.from_cache,
            tokens=0,
            **facts,
        )
    done = 0

    def tick(_: WrittenQuestion | DroppedTask) -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, len(tasks))

    keeper = None if replies is None else _reply_keeper(replies)
    try:
        written = writer.write(
            tasks,
            max_overlap=request.max_overlap,
            max_calls=request.max_calls,
            on_written=tick,
            cached=cached,
            on_reply=None if keeper is None else keeper.add,
        )
    except BaseException:
        if keeper is not None:
            keeper.close(raise_failure=False)  # what was paid for is kept; the error goes on
        raise
    if keeper is not None:
        keeper.close()
    questions = [result for result in written.results if isinstance(result, WrittenQuestion)]
    dropped = [result for result in written.results if isinstance(result, DroppedTask)]
    if questions:
        verdicts = near_duplicates(
            embedder.embed([question.question for question in questions]),
            request.dedup_threshold,
        )
        # The same question from the same passages would repeat a query id, whatever the
        # threshold: it is a duplicate too.
        seen: dict[str, int] = {}
        for index, question in enumerate(questions):
            earlier = seen.setdefault(query_id(question, writer.prompt_version), index)
            if verdicts[index] is None and earlier != index:
                verdicts[index] = earlier
        for question, original in zip(questions, verdicts, strict=True):
            if original is not None:
                dropped.append(
                    DroppedTask(
                        question.task,
                        DropReason.near_duplicate,
                        f"{question.question!r} repeats {questions[original].question!r}",
                    )
                )
        questions = [q for q, original in zip(questions, verdicts, strict=True) if original is None]
    reasons = Counter(str(item.reason) for item in dropped)
    if unplaced:
        reasons[str(DropReason.no_passage)] += unplaced
    if not questions:
        summary = ", ".join(f"{reason} {count}" for reason, count in reasons.most_common())
        raise JudgeError(
            f"no question came out of the {written.calls} calls sent ({summary}); nothing "
            "was written"
        )
    files = _draft_files(
        questions, writer=writer, corpus=corpus_path, target=target, request=request, facts=facts
    )
    try:
        write_folder(target, files, overwrite=request.overwrite)
    except FileExistsError as error:
        if error.filename != str(target):
            raise
        raise InputError(_EXISTS, path=str(target)) from None
    return GenerationOutcome(
        directory=target,
        dry_run=False,
        n_generated=len(questions),
        kinds=dict(Counter(str(question.task.kind) for question in questions)),
        dropped=dict(reasons),
        clusters_covered=len({question.task.cluster for question in questions}),
        sources_used=len({source_of(p) for q in questions for p in q.task.passages}),
        calls=written.calls,
        from_cache=written.from_cache,
        tokens=written.tokens,
        failures=tuple(
            {
                "task": item.task.task_id,
                "kind": str(item.task.kind),
                "reason": str(item.reason),
                "detail": item.detail,
            }
            for item in dropped
        ),
        **facts,
    )


def _kept_replies(
    replies: WriterAccess | None, writer: QuestionWriter, tasks: Iterable[GenerationTask]
) -> dict[str, str]:
    """The replies the store keeps for ``tasks``: call key -> reply."""
    if replies is None:
        return {}
    with replies.writer("goldset generate") as store:
        return load_judge_calls(store, [writer.reply_key(task) for task in tasks])


def _reply_keeper(replies: WriterAccess) -> BatchWriter[JudgeCallOutput]:
    """Keeps replies in the store as they arrive (``BatchWriter``), each batch in a short
    writing stretch."""

    def save(batch: list[JudgeCallOutput]) -> None:
        with replies.writer("goldset generate") as store:
            save_judge_calls(store, batch)

    return BatchWriter(save, name="evalkit-generation-replies")


def query_id(question: WrittenQuestion, prompt_version: str) -> str:
    """A question's id: a hash of its text, kind, passages and prompt version, so that the
    same question generated again keeps its id."""
    key = json.dumps(
        [
            question.question,
            str(question.task.kind),
            [p.id for p in question.task.passages],
            prompt_version,
        ],
        ensure_ascii=False,
    )
    return "gen-" + hashlib.sha256(key.encode()).hexdigest()[:12]


def _lines(records: Iterable[Mapping[str, Any]]) -> str:
    return "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records)


def _document_record(document: Document) -> dict[str, Any]:
    record: dict[str, Any] = {"id": document.id, "title": document.title, "text": document.text}
    if document.metadata:
        record["metadata"] = document.metadata
    if document.source_id is not None:
        record["source_id"] = document.source_id
    if document.start is not None and document.end is not None:
        record["start"], record["end"] = document.start, document.end
    return record


def _draft_files(
    questions: list[WrittenQuestion],
    *,
    writer: QuestionWriter,
    corpus: Path,
    target: Path,
    request: GenerationRequest,
    facts: Mapping[str, Any],
) -> dict[str, str]:
    """The draft folder's files, by name, as text."""
    queries, judgments, candidates = [], [], []
    passages: dict[str, Document] = {}
    for question in questions:
        identifier = query_id(question, writer.prompt_version)
        task = question.task
        doc_ids = [p.id for p in task.passages]
        queries.append(
            {
                "id": identifier,
                "text": question.question,
                "tags": [
                    "generated",
                    f"generator:{writer.model}",
                    f"prompt:{writer.prompt_version}",
                    f"kind:{task.kind}",
                ],
                "reference_answer": question.answer,
                "reference_context_ids": doc_ids,
            }
        )
        documents = []
        for evidence in question.evidence:
            span = evidence.span
            judgment: dict[str, Any] = {
                "query_id": identifier,
                "doc_id": evidence.doc_id,
                "relevance": SUGGESTED_GRADE,
                "source_id": span.source_id,
            }
            if span.start is not None:
                judgment["start"], judgment["end"] = span.start, span.end
            judgment["text"] = span.text
            judgments.append(judgment)
            documents.append(
                {
                    "doc_id": evidence.doc_id,
                    "suggested_grade": SUGGESTED_GRADE,
                    "source_id": span.source_id,
                    "start": span.start,
                    "end": span.end,
                    "quotes": list(evidence.quotes),
                }
            )
        for passage in task.passages:
            passages[passage.id] = passage
        candidates.append(
            {
                "query_id": identifier,
                "origin": "generated",
                "generator": writer.model,
                "prompt_version": writer.prompt_version,
                "kind": str(task.kind),
                "source_ids": list(dict.fromkeys(source_of(p) for p in task.passages)),
                "priority": GENERATED_PRIORITY,
                "text": question.question,
                "answer": question.answer,
                "cluster": task.cluster,
                "word_overlap": question.overlap,
                "documents": documents,
            }
        )
    readme = _README.format(
        corpus=corpus,
        n=len(questions),
        model=writer.model,
        prompt_version=writer.prompt_version,
        n_passages=len(passages),
        n_sources=len({source_of(p) for p in passages.values()}),
        n_clusters=facts["n_clusters"],
        mix=facts["mix"],
        max_per_source=request.max_per_source,
        seed=request.seed,
        grade=SUGGESTED_GRADE,
        directory=target,
    )
    return {
        "queries.jsonl": _lines(queries),
        "judgments.jsonl": _lines(judgments),
        "corpus.jsonl": _lines(_document_record(p) for p in passages.values()),
        "candidates.jsonl": _lines(candidates),
        "README.md": readme,
    }
