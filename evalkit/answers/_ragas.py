"""The ragas side of the judge (imported only when a judge or a context metric is used).

Importing ragas takes seconds, so nothing outside this module imports it at module level.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

os.environ.setdefault("RAGAS_DO_NOT_TRACK", "true")

import ragas
from ragas.embeddings.base import BaseRagasEmbedding
from ragas.llms.base import InstructorBaseRagasLLM, llm_factory
from ragas.metrics.collections import AnswerRelevancy, Faithfulness
from ragas.prompt.metrics.base_prompt import BasePrompt

if TYPE_CHECKING:
    from pydantic import BaseModel

    from evalkit.answers.judge import CallGuard, JudgmentCalls
    from evalkit.embedding import Embedder

__all__ = ["GuardedJudgeLLM", "LocalEmbeddings", "metric_builder", "prompt_version"]

ModelT = TypeVar("ModelT", bound="BaseModel")


class GuardedJudgeLLM(InstructorBaseRagasLLM):
    """A ragas LLM whose every call goes through a ``CallGuard`` (limits, retries, count),
    for one judgment whose call outputs ``calls`` recalls (answered before) and keeps."""

    def __init__(
        self,
        inner: InstructorBaseRagasLLM | None,
        guard: CallGuard | None,
        calls: JudgmentCalls | None = None,
    ) -> None:
        self._inner = inner
        self._guard = guard
        self._calls = calls

    def generate(self, prompt: str, response_model: type[ModelT]) -> ModelT:
        """Not used: evalkit judges asynchronously."""
        raise TypeError("the evalkit judge is asynchronous; call agenerate")

    async def agenerate(self, prompt: str, response_model: type[ModelT]) -> ModelT:
        """One guarded judge call, or its output kept from an earlier scoring."""
        inner, guard, calls = self._inner, self._guard, self._calls
        if inner is None or guard is None:
            raise RuntimeError("this judge LLM only describes prompts; it cannot be called")
        call_key, kept = (
            calls.recall(prompt, response_model.__name__) if calls is not None else ("", None)
        )
        if kept is not None:
            try:
                return response_model.model_validate_json(kept)
            except ValueError:
                pass  # an output that no longer parses into the prompt's model is asked again
        result: ModelT = await guard.call(lambda: inner.agenerate(prompt, response_model))
        if calls is not None:
            calls.keep(call_key, result.model_dump_json())
        return result


class LocalEmbeddings(BaseRagasEmbedding):
    """evalkit's local embedding model (offline) as a ragas embedding, for AnswerRelevancy."""

    def __init__(self, embedder: Embedder) -> None:
        super().__init__()
        self._embedder = embedder

    def embed_text(self, text: str, **kwargs: Any) -> list[float]:
        """One text's embedding."""
        vector: list[float] = self._embedder.embed([text])[0].tolist()
        return vector

    async def aembed_text(self, text: str, **kwargs: Any) -> list[float]:
        """One text's embedding (computed synchronously: the model is local)."""
        return self.embed_text(text)

    def embed_texts(self, texts: list[str], **kwargs: Any) -> list[list[float]]:
        """Several texts' embeddings in one batch."""
        vectors: list[list[float]] = self._embedder.embed(texts).tolist()
        return vectors

    async def aembed_texts(self, texts: list[str], **kwargs: Any) -> list[list[float]]:
        """Several texts' embeddings in one batch."""
        return self.embed_texts(texts)


def _metric(name: str, llm: InstructorBaseRagasLLM, embeddings: BaseRagasEmbedding | None) -> Any:
    if name == "faithfulness":
        return Faithfulness(llm=llm)
    if name == "answer_relevancy":
        if embeddings is None:
            raise ValueError("answer_relevancy needs an embedding model")
        return AnswerRelevancy(llm=llm, embeddings=embeddings)
    raise ValueError(f"unknown judge metric {name!r}")


class _DescribeOnlyEmbeddings(BaseRagasEmbedding):
    def embed_text(self, text: str, **kwargs: Any) -> list[float]:
        raise RuntimeError("these embeddings only describe prompts")

    async def aembed_text(self, text: str, **kwargs: Any) -> list[float]:
        raise RuntimeError("these embeddings only describe prompts")


def prompt_version(metric: str, *, embedding_model: str | None = None) -> str:
    """``ragas-<version>/<metric>/<hash>``: identifies the prompts (instruction, examples, output
    schema) ``metric`` sends; answer relevancy's also covers ``embedding_model``.
    """
    instance = _metric(metric, GuardedJudgeLLM(None, None), _DescribeOnlyEmbeddings())
    prompts = [value for value in vars(instance).values() if isinstance(value, BasePrompt)]
    digest = hashlib.sha256()
    for prompt in sorted(prompts, key=lambda p: type(p).__name__):
        digest.update(type(prompt).__name__.encode())
        digest.update(prompt.instruction.encode())
        digest.update(json.dumps(prompt.output_model.model_json_schema(), sort_keys=True).encode())
        for example_input, example_output in prompt.examples:
            digest.update(example_input.model_dump_json().encode())
            digest.update(example_output.model_dump_json().encode())
    version = f"ragas-{ragas.__version__}/{metric}/{digest.hexdigest()[:12]}"
    if metric == "answer_relevancy" and embedding_model:
        version += f"/{embedding_model}"
    return version


def metric_builder(
    *,
    client: Any,
    model: str,
    guard: CallGuard,
    temperature: float,
    max_tokens: int,
    embedder: Embedder | None,
) -> Callable[[str, JudgmentCalls], Any]:
    """What builds, for a metric name and one judgment's ``JudgmentCalls``, the ragas metric whose
    LLM calls go to ``client`` through ``guard`` (one attempt per call: retries are the guard's).
    """
    inner = llm_factory(
        model,
        provider="openai",
        client=client,
        temperature=temperature,
        max_tokens=max_tokens,
        max_retries=1,
    )
    embeddings = LocalEmbeddings(embedder) if embedder is not None else None

    def build(name: str, calls: JudgmentCalls) -> Any:
        return _metric(name, GuardedJudgeLLM(inner, guard, calls), embeddings)

    return build
