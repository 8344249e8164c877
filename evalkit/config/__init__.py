"""evalkit's settings: one typed tree read from ``evalkit.toml`` and ``EVALKIT_*`` variables.

``settings`` holds ``Settings`` and ``load_settings``; one module per table holds its model
(the stages resolve the kinds of jobs, rules, sinks and retrievers); ``sources`` finds and
layers the sources; ``tomlfile`` reads TOML files. docs/configuration.md.
"""

from evalkit.config.alerts import AlertsSettings, RuleConfig, SinkConfig
from evalkit.config.audit import AuditSettings
from evalkit.config.freshness import FreshnessSettings
from evalkit.config.judge import JudgeSettings, ScoringMethod
from evalkit.config.otlp import OtlpSettings
from evalkit.config.retriever import (
    ChromaSettings,
    DistanceMetric,
    EmbedBackend,
    EmbedderKind,
    EmbedderSettings,
    PgvectorSettings,
    QdrantSettings,
    RetrieverSettings,
    SearchMode,
)
from evalkit.config.scheduler import JobConfig, SchedulerSettings, cron_trigger
from evalkit.config.settings import Settings, load_settings, parse_settings
from evalkit.config.sources import (
    CONFIG_FILE_ENV,
    DASHBOARD_READ_ONLY_ENV,
    DEFAULT_CONFIG_FILE,
    config_file_path,
    field_problems,
)
from evalkit.config.types import NAME_PATTERN, Duration, format_duration, parse_duration

__all__ = [
    "CONFIG_FILE_ENV",
    "DASHBOARD_READ_ONLY_ENV",
    "DEFAULT_CONFIG_FILE",
    "NAME_PATTERN",
    "AlertsSettings",
    "AuditSettings",
    "ChromaSettings",
    "DistanceMetric",
    "Duration",
    "EmbedBackend",
    "EmbedderKind",
    "EmbedderSettings",
    "FreshnessSettings",
    "JobConfig",
    "JudgeSettings",
    "OtlpSettings",
    "PgvectorSettings",
    "QdrantSettings",
    "RetrieverSettings",
    "RuleConfig",
    "SchedulerSettings",
    "ScoringMethod",
    "SearchMode",
    "Settings",
    "SinkConfig",
    "config_file_path",
    "cron_trigger",
    "field_problems",
    "format_duration",
    "load_settings",
    "parse_duration",
    "parse_settings",
]
