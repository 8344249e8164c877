"""Questions written from corpus passages by an LLM, each anchored to the spans it rests on.

``QuestionWriter`` asks the ``[judge]`` endpoint under the answer judge's ``CallGuard``;
``write_question`` (pure) turns a reply into a ``WrittenQuestion`` or a ``DroppedTask``.
Evidence passages become span-anchored judgments graded ``SUGGESTED_GRADE``. Replies kept by
``judge_call_key`` let a stopped pass resume without paying again; ``PROMPT_VERSION`` hashes
every prompt. docs/goldsets.md, "Generating a draft goldset".
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar

import numpy as np
import numpy.typing as npt

from evalkit.answers.cache import JudgeCallOutput, judge_call_key
from evalkit.answers.judge import CallGuard, JudgeCallError
from evalkit.answers.records import Unmeasured
from evalkit.config import JudgeSettings
from evalkit.coroutines import run_sync
from evalkit.errors import ConfigError
from evalkit.judging.endpoint import (
    EndpointClient,
    MalformedReplyError,
    complete,
    endpoint_client,
    reply_object,
)
from evalkit.records import Document, Span
from evalkit.redaction import masked_excerpt, redact_known

__all__ = [
    "MAX_PASSAGE_CHARS",
    "PROMPT_VERSION",
    "SUGGESTED_GRADE",
    "AskFn",
    "DropReason",
    "DroppedTask",
    "Evidence",
    "GenerationTask",
    "MalformedReplyError",
    "QuestionKind",
    "QuestionWriter",
    "ReplyReplay",
    "RequestBudget",
    "WriteOutcome",
    "WrittenQuestion",
    "content_words",
    "estimate_tokens",
    "locate_quote",
    "near_duplicates",
    "parse_reply",
    "prompt_messages",
    "reply_key",
    "word_overlap",
    "write_question",
]

MAX_PASSAGE_CHARS = 4000
"""A passage longer than this is shown cut to its first 4,000 characters."""

REPLY_EXCERPT_CHARS = 200
"""How much of a malformed reply is kept with a dropped task."""

REPLY_MAX_TOKENS = 512
"""Most tokens a question, its answer and its quotes may take."""

SUGGESTED_GRADE = 2
"""The grade suggested for a passage that holds a question's evidence (highly relevant):
a reviewer raises it to 3 when the passage holds the whole answer."""


class QuestionKind(StrEnum):
    """What kind of question a task asks for."""

    factoid = "factoid"
    """A question one passage answers with a specific fact."""
    paraphrase = "paraphrase"
    """A question one passage answers, in words other than the passage's."""
    multi = "multi"
    """A question whose answer needs two passages (of two sources)."""

    @property
    def n_passages(self) -> int:
        """How many passages a task of this kind is written from."""
        return 2 if self is QuestionKind.multi else 1


class DropReason(StrEnum):
    """Why a task gave no question."""

    malformed_reply = "malformed_reply"
    """Two replies that were not the JSON object asked for."""
    evidence_not_in_passage = "evidence_not_in_passage"
    """A quote of the evidence is in none of the task's passages."""
    evidence_in_one_passage = "evidence_in_one_passage"
    """A multi-passage question quoting only one of its passages."""
    word_overlap = "word_overlap"
    """A paraphrase that kept too many of its passage's words, after one more try."""
    near_duplicate = "near_duplicate"
    """A question too similar to one kept before it."""
    judge_error = "judge_error"
    """The endpoint failed after its retries."""
    judge_timeout = "judge_timeout"
    """The endpoint did not answer in time after its retries."""
    over_budget = "over_budget"
    """Not sent: the call budget was spent."""
    no_passage = "no_passage"
    """No passage left to write it from under the per-source limit."""


_SYSTEM = (
    "You write test questions for a search engine from passages of its document collection. "
    "You use only what the passages say, and you quote them exactly."
)
_INSTRUCTIONS: Mapping[QuestionKind, str] = {
    QuestionKind.factoid: (
        "Write one question that a user could type into a search engine and that the "
        "passage answers with a specific fact (a finding, a number, a name or a "
        "definition). The question must make sense to someone who has not seen the passage."
    ),
    QuestionKind.paraphrase: (
        "Write one question that the passage answers, asked the way a user who has never "
        "read it would ask: use as few of the passage's own words as you can (synonyms, "
        "everyday words, another construction) while keeping the meaning. The question "
        "must make sense to someone who has not seen the passage."
    ),
    QuestionKind.multi: (
        "Write one question whose answer needs both passages: it must combine a fact "
        "stated in passage 1 with a fact stated in passage 2. The question must make sense "
        "to someone who has seen neither passage."
    ),
}
_REPLY = (
    "Reply with one JSON object and nothing else: "
    '{"question": "<the question>", "answer": "<a short answer taken from the passage>", '
    '"evidence": ["<a sentence or phrase copied character for character from the passage '
    'that supports the answer>"]}. Quote every piece of evidence exactly as it stands in '
    "the passage: do not shorten, join or reword it."
)
_AGAIN_MALFORMED = (
    "That reply was not the JSON object asked for ({problem}). Reply with the JSON object only."
)
_AGAIN_OVERLAP = (
    "Your question uses too many of the passage's own words ({share:.0%} of its content "
    "words; at most {bound:.0%}). Ask the same thing in other words, and reply with the "
    "same JSON object."
)

PROMPT_VERSION = (
    "generate-"
    + hashlib.sha256(
        json.dumps(
            [
                _SYSTEM,
                {str(kind): text for kind, text in _INSTRUCTIONS.items()},
                _REPLY,
                _AGAIN_MALFORMED,
                _AGAIN_OVERLAP,
                MAX_PASSAGE_CHARS,
            ],
            ensure_ascii=False,
        ).encode()
    ).hexdigest()[:12]
)
"""The version of the prompts: a hash of their texts and of the passage cut."""

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_STOPWORD_LIST = """
    a about above after again against all am an and any are as at be because been before
    being below between both but by can could did do does doing down during each few for from
    further had has have having he her here hers him his how i if in into is it its itself
    just me more most my no nor not now of off on once only or other our ours out over own
    same she should so some such than that the their theirs them then there these they this
    those through to too under until up very was we were what when where which while who whom
    why will with would you your yours also among may might must one two per upon within
    without whether does did vs"""
_STOPWORDS = frozenset(_STOPWORD_LIST.split())


@dataclass(frozen=True, slots=True)
class GenerationTask:
    """One question to write: its id, kind, the passages (chunks of the corpus) it is
    written from and the cluster they were drawn from."""

    task_id: str
    kind: QuestionKind
    passages: tuple[Document, ...]
    cluster: int = 0

    def __post_init__(self) -> None:
        if len(self.passages) != self.kind.n_passages:
            raise ValueError(
                f"a {self.kind} task takes {self.kind.n_passages} passage(s), "
                f"got {len(self.passages)}"
            )


@dataclass(frozen=True, slots=True)
class Evidence:
    """The part of one passage a question rests on: the chunk's id, the span (in the
    source's offsets when the chunk has them) and the quotes found in it."""

    doc_id: str
    span: Span
    quotes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class WrittenQuestion:
    """A question written for ``task``, its answer and its evidence (one per passage that
    holds some); ``overlap`` is the share of its content words found in its passages."""

    task: GenerationTask
    question: str
    answer: str
    evidence: tuple[Evidence, ...]
    overlap: float


@dataclass(frozen=True, slots=True)
class DroppedTask:
    """A task that gave no question, why, and a detail (a masked excerpt of a bad reply)."""

    task: GenerationTask
    reason: DropReason
    detail: str = ""


AskFn = Callable[[list[dict[str, str]]], Awaitable[str]]
"""Sends chat messages to the endpoint and returns the reply's text; raises
``JudgeCallError`` when the endpoint fails and ``BudgetSpentError`` when the budget is."""


class BudgetSpentError(Exception):
    """The call budget is spent: the request was not sent."""


@dataclass
class RequestBudget:
    """A hard budget of requests: ``take`` one before each request sent (``limit`` None:
    no limit). ``sent`` counts those taken."""

    limit: int | None = None
    sent: int = 0

    def take(self) -> bool:
        """Take one request from the budget; False when it is spent."""
        if self.limit is not None and self.sent >= self.limit:
            return False
        self.sent += 1
        return True


def _passage_text(document: Document) -> str:
    return document.text[:MAX_PASSAGE_CHARS]


def prompt_messages(task: GenerationTask) -> list[dict[str, str]]:
    """The chat messages that ask for ``task``'s question."""
    if task.kind is QuestionKind.multi:
        first, second = task.passages
        shown = f"Passage 1:\n{_passage_text(first)}\n\nPassage 2:\n{_passage_text(second)}"
    else:
        shown = f"Passage:\n{_passage_text(task.passages[0])}"
    user = f"{_INSTRUCTIONS[task.kind]}\n\n{shown}\n\n{_REPLY}"
    return [{"role": "system", "content": _SYSTEM}, {"role": "user", "content": user}]


def _reply_max_tokens(settings: JudgeSettings) -> int:
    return min(settings.max_tokens, REPLY_MAX_TOKENS)


def reply_key(task: GenerationTask, settings: JudgeSettings) -> str:
    """SHA-256 (hex) of what the replies to ``task``'s requests depend on besides the
    messages: the prompts' version, the model and its sampling settings, and the task (its
    id, kind and passages), so that two tasks never share a reply even when they ask the
    same thing. A request's own key is ``judge_call_key`` of this key and its messages."""
    payload = json.dumps(
        [
            "generate",
            PROMPT_VERSION,
            str(settings.model),
            settings.temperature,
            _reply_max_tokens(settings),
            task.task_id,
            str(task.kind),
            [passage.id for passage in task.passages],
        ],
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def _call_key(task_key: str, messages: list[dict[str, str]]) -> str:
    # A task's conversation only grows, so the same messages are never sent twice by one task.
    return judge_call_key(judgment_key=task_key, request=messages, occurrence=0)


def estimate_tokens(task: GenerationTask) -> int:
    """A rough count of the tokens writing ``task``'s question costs: its prompt at four
    characters a token, plus a reply of a question, an answer and a quote (150 tokens).
    Only for ``--dry-run``: endpoints count with their own tokenizers."""
    prompt_chars = sum(len(message["content"]) for message in prompt_messages(task))
    return math.ceil(prompt_chars / 4) + 150


def parse_reply(content: str) -> tuple[str, str, tuple[str, ...]]:
    """(question, answer, evidence quotes) from a reply's outermost ``{...}`` (fenced or not);
    raises MalformedReplyError saying what is wrong: ``question`` must be non-blank, ``answer``
    text, ``evidence`` non-blank strings (one string is a list of one).
    """
    data = reply_object(content)
    question = data.get("question")
    if not isinstance(question, str) or not question.strip():
        raise MalformedReplyError("question is missing or not text")
    answer = data.get("answer", "")
    if answer is None:
        answer = ""
    if not isinstance(answer, str):
        raise MalformedReplyError("answer is not text")
    evidence = data.get("evidence")
    if isinstance(evidence, str):
        evidence = [evidence]
    if not isinstance(evidence, list) or not evidence:
        raise MalformedReplyError("evidence is missing or not a list of quotes")
    if not all(isinstance(quote, str) and quote.strip() for quote in evidence):
        raise MalformedReplyError("evidence holds something that is not a quote")
    return question.strip(), answer.strip(), tuple(quote.strip() for quote in evidence)


def locate_quote(text: str, quote: str) -> tuple[int, int] | None:
    """Where ``quote`` stands in ``text`` as (start, end), end exclusive: the first exact
    occurrence, else the first occurrence with any run of whitespace matching any other;
    None when it is not there."""
    quote = quote.strip()
    if not quote:
        return None
    position = text.find(quote)
    if position >= 0:
        return position, position + len(quote)
    pattern = r"\s+".join(re.escape(token) for token in quote.split())
    match = re.search(pattern, text)
    return None if match is None else (match.start(), match.end())


def content_words(text: str) -> set[str]:
    """The lower-cased words of ``text`` that carry content: no stop words, no one-letter
    words."""
    return {
        word
        for word in (token.lower() for token in _WORD.findall(text))
        if len(word) > 1 and word not in _STOPWORDS
    }


def word_overlap(question: str, passages: Sequence[str]) -> float:
    """The share of ``question``'s content words that appear in ``passages`` (0 when the
    question has none)."""
    asked = content_words(question)
    if not asked:
        return 0.0
    found = set().union(*(content_words(passage) for passage in passages))
    return len(asked & found) / len(asked)


def _evidence(task: GenerationTask, quotes: Sequence[str]) -> tuple[Evidence, ...] | None:
    """The evidence of each passage holding quotes; None when a quote is in none."""
    found: dict[int, list[tuple[int, int, str]]] = {}
    for quote in quotes:
        for index, passage in enumerate(task.passages):
            where = locate_quote(passage.text, quote)
            if where is not None:
                found.setdefault(index, []).append((*where, quote))
                break
        else:
            return None
    evidence = []
    for index in sorted(found):
        passage = task.passages[index]
        start = min(begin for begin, _, _ in found[index])
        end = max(stop for _, stop, _ in found[index])
        offset = passage.start if passage.start is not None else None
        source = passage.source_id
        if source is None:
            span = Span(passage.id, start, end, passage.text[start:end])
        elif offset is None:
            span = Span(source, None, None, passage.text[start:end])
        else:
            span = Span(source, offset + start, offset + end, passage.text[start:end])
        evidence.append(Evidence(passage.id, span, tuple(quote for _, _, quote in found[index])))
    return tuple(evidence)


_DROPPED = {
    Unmeasured.judge_timeout: DropReason.judge_timeout,
    # A reply too large to read (MAX_REPLY_BYTES).
    Unmeasured.judge_malformed_output: DropReason.malformed_reply,
}


def _masked_excerpt(reply: str) -> str:
    # Masked before cutting, so a secret cut at the limit is not half left in the excerpt.
    return masked_excerpt(reply, REPLY_EXCERPT_CHARS)


async def write_question(
    task: GenerationTask, ask: AskFn, *, max_overlap: float
) -> WrittenQuestion | DroppedTask:
    """Ask for ``task``'s question through ``ask`` and check the reply (see the module's
    docstring): a written question, or the task dropped with its reason."""
    messages = prompt_messages(task)
    texts = [passage.text for passage in task.passages]
    malformed_asked = overlap_asked = False
    while True:
        try:
            reply = await ask(messages)
        except BudgetSpentError:
            return DroppedTask(task, DropReason.over_budget, "the call budget is spent")
        except JudgeCallError as failure:
            reason = _DROPPED.get(failure.reason, DropReason.judge_error)
            return DroppedTask(task, reason, redact_known(failure.detail))
        try:
            question, answer, quotes = parse_reply(reply)
        except MalformedReplyError as problem:
            if malformed_asked:
                return DroppedTask(task, DropReason.malformed_reply, _masked_excerpt(reply))
            malformed_asked = True
            messages = [
                *messages,
                {"role": "assistant", "content": reply},
                {"role": "user", "content": _AGAIN_MALFORMED.format(problem=problem)},
            ]
            continue
        evidence = _evidence(task, quotes)
        if evidence is None:
            return DroppedTask(
                task, DropReason.evidence_not_in_passage, _masked_excerpt(" | ".join(quotes))
            )
        if len(evidence) < len(task.passages):
            return DroppedTask(task, DropReason.evidence_in_one_passage, redact_known(question))
        overlap = word_overlap(question, texts)
        if task.kind is QuestionKind.paraphrase and overlap > max_overlap:
            if overlap_asked:
                return DroppedTask(
                    task,
                    DropReason.word_overlap,
                    f"{overlap:.0%} of the question's content words are the passage's: "
                    f"{redact_known(question)}",
                )
            overlap_asked = True
            messages = [
                *messages,
                {"role": "assistant", "content": reply},
                {
                    "role": "user",
                    "content": _AGAIN_OVERLAP.format(share=overlap, bound=max_overlap),
                },
            ]
            continue
        return WrittenQuestion(
            task, redact_known(question), redact_known(answer), evidence, round(overlap, 4)
        )


def near_duplicates(vectors: npt.ArrayLike, threshold: float) -> list[int | None]:
    """For each row of ``vectors`` (unit vectors, in priority order), the index of an
    earlier kept row it is a near duplicate of (cosine similarity >= ``threshold``), or
    None when it is kept. Greedy: a row dropped as a duplicate is no one's original."""
    matrix = np.asarray(vectors, dtype=np.float64)
    kept: list[int] = []
    verdicts: list[int | None] = []
    for index in range(matrix.shape[0]):
        original = None
        if kept:
            similarity = matrix[kept] @ matrix[index]
            best = int(np.argmax(similarity))
            if similarity[best] >= threshold:
                original = kept[best]
        if original is None:
            kept.append(index)
        verdicts.append(original)
    return verdicts


@dataclass(frozen=True, slots=True)
class WriteOutcome:
    """What a ``QuestionWriter.write`` pass gave, in task order, and what it cost:
    requests sent (retries included), the tokens the endpoint reported using, and the
    replies taken from those kept instead of being asked for again (``from_cache``)."""

    results: tuple[WrittenQuestion | DroppedTask, ...]
    calls: int
    tokens: int
    from_cache: int = 0


@dataclass(frozen=True, slots=True)
class ReplyReplay:
    """What kept replies give a set of tasks, sending nothing (``QuestionWriter.replay``):
    the tasks that still need at least one request, in task order, and the kept replies
    the others (and the first steps of those) are answered with."""

    pending: tuple[GenerationTask, ...]
    from_cache: int


@dataclass
class QuestionWriter(EndpointClient):
    """Writes questions through the ``[judge]`` endpoint of ``settings``.

    Building it checks the configuration (a ConfigError when no judge is set); nothing is
    sent until ``write`` is called.
    """

    tokens: int = 0
    work: ClassVar[str] = "writing questions"

    @property
    def prompt_version(self) -> str:
        """The prompts' version (``PROMPT_VERSION``)."""
        return PROMPT_VERSION

    def reply_key(self, task: GenerationTask) -> str:
        """``reply_key`` of ``task`` under this writer's settings: the ``judgment_key`` its
        kept replies are filed under."""
        return reply_key(task, self.settings)

    def replay(
        self,
        tasks: Sequence[GenerationTask],
        cached: Mapping[str, str],
        *,
        max_overlap: float,
    ) -> ReplyReplay:
        """Write ``tasks``' questions from the ``cached`` replies (call key -> reply) alone,
        sending nothing: which tasks would still send a request, and how many replies the
        cache gives."""
        if not cached:
            return ReplyReplay(tuple(tasks), 0)
        used = 0

        async def one(task: GenerationTask) -> bool:
            nonlocal used
            key = self.reply_key(task)

            async def ask(messages: list[dict[str, str]]) -> str:
                nonlocal used
                reply = cached.get(_call_key(key, messages))
                if reply is None:
                    raise BudgetSpentError
                used += 1
                return reply

            result = await write_question(task, ask, max_overlap=max_overlap)
            return isinstance(result, DroppedTask) and result.reason is DropReason.over_budget

        async def every() -> list[bool]:
            return [await one(task) for task in tasks]

        pending = run_sync(every)
        return ReplyReplay(
            tuple(task for task, sends in zip(tasks, pending, strict=True) if sends), used
        )

    def write(
        self,
        tasks: Sequence[GenerationTask],
        *,
        max_overlap: float,
        max_calls: int | None = None,
        on_written: Callable[[WrittenQuestion | DroppedTask], None] | None = None,
        cached: Mapping[str, str] | None = None,
        on_reply: Callable[[JudgeCallOutput], None] | None = None,
    ) -> WriteOutcome:
        """Write every task's question concurrently, in task order, within ``max_calls`` requests
        (the rest dropped ``over_budget``); paraphrases over ``max_overlap`` are asked again, then
        dropped. ``on_written`` gets each result. Replies in ``cached`` are reused for free;
        ``on_reply`` gets each new reply to keep, except one holding a secret (asked again).
        """
        if not 0.0 <= max_overlap <= 1.0:
            raise ConfigError(f"max_overlap must be within 0 and 1, got {max_overlap}")
        if not tasks:
            return WriteOutcome((), 0, 0)
        budget = RequestBudget(max_calls)
        return run_sync(
            lambda: self._write(
                tasks,
                budget,
                max_overlap=max_overlap,
                on_written=on_written,
                cached=cached or {},
                on_reply=on_reply,
            )
        )

    async def _write(
        self,
        tasks: Sequence[GenerationTask],
        budget: RequestBudget,
        *,
        max_overlap: float,
        on_written: Callable[[WrittenQuestion | DroppedTask], None] | None,
        cached: Mapping[str, str],
        on_reply: Callable[[JudgeCallOutput], None] | None,
    ) -> WriteOutcome:
        guard = CallGuard.from_settings(self.settings)
        client = endpoint_client(self.settings)
        max_tokens = _reply_max_tokens(self.settings)
        used = reused = 0

        async def ask(messages: list[dict[str, str]]) -> str:
            nonlocal used
            if not budget.take():
                raise BudgetSpentError
            first = True

            async def request() -> str:
                nonlocal first, used
                # A retry is one more request: it is paid from the budget like the first.
                if not first and not budget.take():
                    raise BudgetSpentError("the call budget is spent")
                first = False
                reply = await complete(client, self.settings, messages, max_tokens=max_tokens)
                used += reply.total_tokens or 0
                return reply.content

            return await guard.call(request)

        async def one(task: GenerationTask) -> WrittenQuestion | DroppedTask:
            key = self.reply_key(task)

            async def ask_once(messages: list[dict[str, str]]) -> str:
                nonlocal reused
                call = _call_key(key, messages)
                kept = cached.get(call)
                if kept is not None:
                    reused += 1
                    return kept
                reply = await ask(messages)
                if on_reply is not None and redact_known(reply) == reply:
                    on_reply(JudgeCallOutput(call, key, self.model, reply))
                return reply

            result = await write_question(task, ask_once, max_overlap=max_overlap)
            if on_written is not None:
                on_written(result)
            return result

        try:
            results = await asyncio.gather(*(one(task) for task in tasks))
        finally:
            await client.aclose()
        self.calls += budget.sent
        self.tokens += used
        return WriteOutcome(tuple(results), budget.sent, used, reused)
