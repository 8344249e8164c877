"""Settings of the answer judge: the ``[judge]`` table of ``evalkit.toml``, ``EVALKIT_JUDGE_*``.

Precedence, highest first: arguments, ``EVALKIT_JUDGE_*`` variables, the ``[judge]`` table,
the defaults. A judge is configured when both ``base_url`` and ``model`` are set; otherwise
answers are scored offline. The API key is never a setting: ``api_key_env`` names the
variable holding it, read when the client is built, never logged nor stored. Example:
docs/answers.md, "The LLM judge".
"""

from __future__ import annotations

import os
from enum import StrEnum
from typing import Any, Literal

from pydantic import Field

from evalkit.config.types import SettingPath, SettingsTable, WebUrl

__all__ = ["JudgeSettings", "ScoringMethod"]


class ScoringMethod(StrEnum):
    """Which faithfulness method scores answers."""

    auto = "auto"
    """The LLM judge when one is configured, otherwise the offline method."""
    llm = "llm"
    """The LLM judge only (a ConfigError when none is configured)."""
    offline = "offline"
    """The offline embedding method only, even when a judge is configured."""
    both = "both"
    """Both, side by side (each stored under its own method name)."""


class JudgeSettings(SettingsTable):
    """How answers are judged: the LLM endpoint, its limits, the cache and the offline method."""

    base_url: WebUrl = Field(
        default=None,
        description="Base URL of an OpenAI-compatible API (for example "
        "http://127.0.0.1:11434/v1); with `model`, it configures the LLM judge.",
    )
    model: str | None = Field(default=None, description="Model name the judge endpoint serves.")
    api_key_env: str | None = Field(
        default="OPENAI_API_KEY",
        description="Name of the environment variable holding the API key (never the key "
        "itself). Local endpoints that need no key may leave that variable unset.",
    )
    timeout: float = Field(default=60.0, gt=0, description="Seconds before a judge call fails.")
    max_retries: int = Field(
        default=2,
        ge=0,
        description="Retries of a failed judge call (timeout, HTTP error, malformed JSON), "
        "with exponential back-off.",
    )
    retry_backoff: float = Field(
        default=1.0, ge=0, description="Seconds before the first retry; doubled on each retry."
    )
    concurrency: int = Field(default=4, ge=1, description="Judge calls in flight at once.")
    requests_per_minute: float | None = Field(
        default=None, gt=0, description="At most this many judge calls per minute (no limit)."
    )
    repeats: int = Field(
        default=1,
        ge=1,
        description="Judge each answer this many times; the mean is stored with the spread "
        "(max - min) across repeats.",
    )
    temperature: float = Field(default=0.0, ge=0, description="Sampling temperature of the judge.")
    max_tokens: int = Field(default=2048, ge=1, description="Most tokens a judge reply may use.")
    answer_relevancy: bool = Field(
        default=True,
        description="Also score answer relevance (ragas AnswerRelevancy) when a judge is set.",
    )
    method: ScoringMethod = Field(
        default=ScoringMethod.auto,
        description="Faithfulness method: auto (LLM judge when configured, else offline), "
        "llm, offline, or both.",
    )
    cache_path: SettingPath | None = Field(
        default=None,
        description="DuckDB file caching judge outputs; default: the judge_cache table of "
        "the evalkit store.",
    )
    offline_threshold: float | None = Field(
        default=None,
        gt=0.0,
        lt=1.0,
        description="Probability at which the offline method counts a claim as supported "
        "(default 0.5; see docs/answers.md).",
    )
    offline_version: Literal["offline-v3", "offline-v2"] = Field(
        default="offline-v3",
        description="Version of the offline embedding method: offline-v3 (calibrated on human "
        "ratings) or offline-v2, to go on with a series scored before offline-v3 (the two "
        "read on different scales and are never compared; see docs/answers.md).",
    )
    nli_model_path: SettingPath | None = Field(
        default=None,
        description="Local directory of an NLI / hallucination-detection cross-encoder you "
        "downloaded (a transformers sequence-classification model); when set, the offline "
        "faithfulness method is offline-nli with this model instead of offline-embedding. "
        "evalkit never downloads weights.",
    )

    @property
    def judge_configured(self) -> bool:
        """True when an LLM judge endpoint and model are both set."""
        return bool(self.base_url) and bool(self.model)

    def api_key(self) -> str:
        """The API key from the environment variable ``api_key_env`` (a placeholder if unset).

        OpenAI-compatible servers run locally usually ignore the key; the placeholder keeps
        the client from refusing to start.
        """
        if self.api_key_env and os.environ.get(self.api_key_env):
            return os.environ[self.api_key_env]
        return "not-set"

    def public_dict(self) -> dict[str, Any]:
        """The settings as a JSON-ready dict (there is no secret in it to hide)."""
        return self.model_dump(mode="json")
