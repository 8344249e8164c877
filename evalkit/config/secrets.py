"""The secrets a settings tree holds, registered with the redactor when it is read.

Settings name secrets rather than hold them where they can (``api_key_env``, ...), but some
live in the tree itself (``[retriever] options``, URLs with a password or secret query
value, a job's retriever URL). ``parse_settings`` registers all of them, and the values of
the variables the tree names, as soon as the settings are read, so they are masked from
whatever the process does first, not only once the code using them has run.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from evalkit.redaction import conninfo_secrets, option_secrets, register_secrets, url_secrets

if TYPE_CHECKING:
    from evalkit.config.settings import Settings

__all__ = [
    "CHROMA_TOKEN_ENV",
    "HTTP_RETRIEVER_TOKEN_ENV",
    "register_settings_secrets",
    "settings_secrets",
]

HTTP_RETRIEVER_TOKEN_ENV = "EVALKIT_HTTP_RETRIEVER_TOKEN"
"""Environment variable holding a token the HTTP retriever sends as ``Authorization: Bearer``."""
CHROMA_TOKEN_ENV = "EVALKIT_CHROMA_TOKEN"
"""Environment variable holding a token sent to a Chroma server as ``Authorization: Bearer``."""


def settings_secrets(settings: Settings) -> set[str]:
    """Every secret ``settings`` holds or names through an environment variable."""
    retriever = settings.retriever
    found = option_secrets(retriever.options)
    for job in settings.jobs:
        found |= option_secrets(job.params)
    for entry in (*settings.alerts.sinks, *settings.alerts.rules):
        found |= option_secrets(entry.params)
    if retriever.pgvector.dsn:
        found |= conninfo_secrets(retriever.pgvector.dsn)
    for url in (
        settings.chroma_url,
        retriever.qdrant.url,
        settings.embedder.url,
        settings.judge.base_url,
        settings.alerts.dashboard_url,
    ):
        if url:
            found |= url_secrets(url)
    for variable in (
        HTTP_RETRIEVER_TOKEN_ENV,
        CHROMA_TOKEN_ENV,
        retriever.qdrant.api_key_env,
        settings.embedder.api_key_env,
        settings.judge.api_key_env,
        settings.otlp.token_env,
    ):
        value = os.environ.get(variable) if variable else None
        if value:
            found.add(value)
    return found


def register_settings_secrets(settings: Settings) -> None:
    """Have the redactor mask every secret of ``settings`` from now on."""
    register_secrets(settings_secrets(settings))
