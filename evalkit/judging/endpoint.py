"""The ``[judge]`` OpenAI-compatible endpoint as the judging layer calls it: plain httpx POSTs
to ``chat/completions``, one client per batch, the key registered for masking first.

Plain httpx rather than the openai client: one JSON request a pair (or a question) needs none
of its request building, which cost as much CPU as the rest of a judgment. Limits, retries
and the classification of failures are the answer judge's ``CallGuard``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, ClassVar

import httpx

from evalkit.answers.judge import ACCEPTED_ENCODINGS, NotACompletionError, cap_reply
from evalkit.config import JudgeSettings
from evalkit.errors import ConfigError
from evalkit.jsonsafe import TooDeepError, depth_checked
from evalkit.redaction import register_secrets, url_secrets

__all__ = [
    "ChatReply",
    "EndpointClient",
    "MalformedReplyError",
    "complete",
    "endpoint_client",
    "reply_object",
    "require_endpoint",
]

_FENCE = re.compile(r"^```[a-zA-Z]*\s*|\s*```$")


def require_endpoint(settings: JudgeSettings, work: str) -> None:
    """Raise ``ConfigError`` when no ``[judge]`` endpoint is configured for ``work`` (what
    it would do, e.g. "relevance judging")."""
    if not settings.judge_configured:
        raise ConfigError(
            f"no LLM judge is configured for {work}: set base_url and model in the [judge] "
            "table of evalkit.toml (or EVALKIT_JUDGE_BASE_URL and EVALKIT_JUDGE_MODEL)"
        )


@dataclass
class EndpointClient:
    """What sends work to the ``[judge]`` endpoint of ``settings``: building it checks the
    configuration (a ConfigError naming ``work`` when no endpoint is set); ``calls`` counts
    every request sent, retries included."""

    settings: JudgeSettings
    calls: int = 0
    work: ClassVar[str] = "this work"

    def __post_init__(self) -> None:
        require_endpoint(self.settings, self.work)

    @property
    def model(self) -> str:
        """The model's name."""
        return str(self.settings.model)


def endpoint_client(settings: JudgeSettings) -> httpx.AsyncClient:
    """A client of the endpoint, with as many connections as the judge's concurrency, that
    reads no reply further than ``MAX_REPLY_BYTES`` (``cap_reply``). The key and the URL's
    credentials are registered first: some proxies echo the key in an error body, and every
    detail shown is masked against them."""
    api_key = settings.api_key()
    register_secrets([api_key, *url_secrets(settings.base_url or "")])
    return httpx.AsyncClient(
        base_url=str(settings.base_url),
        headers={"Authorization": f"Bearer {api_key}", "Accept-Encoding": ACCEPTED_ENCODINGS},
        event_hooks={"response": [cap_reply]},
        timeout=settings.timeout,
        limits=httpx.Limits(
            max_connections=settings.concurrency,
            max_keepalive_connections=settings.concurrency,
        ),
    )


@dataclass(frozen=True, slots=True)
class ChatReply:
    """The first choice's text (empty when there is none) and the tokens the endpoint
    reported for the request (None when it reported none)."""

    content: str
    total_tokens: int | None


async def complete(
    client: httpx.AsyncClient,
    settings: JudgeSettings,
    messages: list[dict[str, str]],
    *,
    max_tokens: int,
) -> ChatReply:
    """One chat completion of ``messages`` by the configured model; HTTP errors raise
    (``CallGuard`` classifies them)."""
    response = await client.post(
        "chat/completions",
        json={
            "model": str(settings.model),
            "messages": messages,
            "temperature": settings.temperature,
            "max_tokens": max_tokens,
        },
    )
    response.raise_for_status()
    return _chat_reply(response)


def _chat_reply(response: httpx.Response) -> ChatReply:
    """The content and token count of a chat completion; raises ``NotACompletionError``
    when the body is not one."""
    try:
        body = depth_checked(json.loads, response.content)
    except ValueError:
        body = None
    choices = body.get("choices") if isinstance(body, dict) else None
    first = choices[0] if isinstance(choices, list) and choices else {"message": {}}
    message = first.get("message") if isinstance(first, dict) else None
    if not isinstance(body, dict) or not isinstance(choices, list) or not isinstance(message, dict):
        raise NotACompletionError.of(response.status_code, response.text)
    content = message.get("content")
    usage = body.get("usage")
    tokens = usage.get("total_tokens") if isinstance(usage, dict) else None
    return ChatReply(str(content or ""), tokens if isinstance(tokens, int) else None)


class MalformedReplyError(ValueError):
    """A reply that is not the JSON object the prompt asked for (the message says why)."""


def reply_object(content: str) -> dict[str, Any]:
    """The JSON object a reply holds; raises ``MalformedReplyError`` saying what is wrong.

    The object may stand in a Markdown code fence or among other text (the outermost
    ``{...}`` is read).
    """
    text = _FENCE.sub("", content.strip())
    try:
        data = depth_checked(json.loads, text)
    except TooDeepError as error:
        raise MalformedReplyError(f"the reply's JSON {error}") from None
    except json.JSONDecodeError:
        start, end = text.find("{"), text.rfind("}")
        if start < 0 or end <= start:
            raise MalformedReplyError("the reply holds no JSON object") from None
        try:
            data = depth_checked(json.loads, text[start : end + 1])
        except TooDeepError as error:
            raise MalformedReplyError(f"the reply's JSON {error}") from None
        except json.JSONDecodeError as error:
            raise MalformedReplyError(f"the reply's JSON does not parse: {error.msg}") from None
    if not isinstance(data, dict):
        raise MalformedReplyError("the reply is JSON but not an object")
    return data
