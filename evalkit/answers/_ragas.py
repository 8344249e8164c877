"""The ragas side of the judge (imported only when a judge or a context metric is used).

Importing ragas takes seconds, so nothing outside this module imports it at module level.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeVar

os.environ.setdefault("RAGAS_DO_NOT_TRACK", "true")

import ragas
from ragas.embeddings.base import BaseRagasEmbedding
from ragas.llms.base import InstructorBaseRagasLLM, llm_factory
from ragas.metrics.collections import AnswerRelevancy, Faithfulness
from ragas.prompt.metrics.base_prompt import BasePrompt

if TYPE_CHECKING:
    from pydantic import BaseModel

    from evalkit.answers.judge import CallGuard
    from evalkit.embedding import Embedder

__all__ = ["GuardedJudgeLLM", "LocalEmbeddings", "build_metrics", "prompt_version"]

ModelT = TypeVar("ModelT", bound="BaseModel")


class GuardedJudgeLLM(InstructorBaseRagasLLM):
    """A ragas LLM whose every call goes through a ``CallGuard`` (limits, retries, count)."""

    def __init__(self, inner: InstructorBaseRagasLLM | None, guard: CallGuard | None) -> None:
        self._inner = inner
        self._guard = guard

    def generate(self, prompt: str, response_model: type[ModelT]) -> ModelT:
        """Not used: evalkit judges asynchronously."""
        raise TypeError("the evalkit judge is asynchronous; call agenerate")

    async def agenerate(self, prompt: str, response_model: type[ModelT]) -> ModelT:
        """One guarded judge call."""
        inner, guard = self._inner, self._guard
        if inner is None or guard is None:
            raise RuntimeError("this judge LLM only describes prompts; it cannot be called")
        result: ModelT = await guard.call(lambda: inner.agenerate(prompt, response_model))
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
    """``ragas-<version>/<metric>/<hash>``: identifies the prompts ``metric`` sends.

    The hash covers each prompt's instruction, few-shot examples and output schema. For
    answer relevancy the embedding model (which turns the generated questions into the
    score) is part of the version too.
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


def build_metrics(
    names: Sequence[str],
    *,
    client: Any,
    model: str,
    guard: CallGuard,
    temperature: float,
    max_tokens: int,
    embedder: Embedder | None,
) -> dict[str, Any]:
    """ragas metric objects whose LLM calls go to ``client`` through ``guard``.

    instructor makes one attempt per call (``max_retries=1``): retries belong to the guard,
    which counts and spaces them.
    """
    inner = llm_factory(
        model,
        provider="openai",
        client=client,
        temperature=temperature,
        max_tokens=max_tokens,
        max_retries=1,
    )
    llm = GuardedJudgeLLM(inner, guard)
    embeddings = LocalEmbeddings(embedder) if embedder is not None else None
    return {name: _metric(name, llm, embeddings) for name in names}
