"""Production traffic: log it, ingest it, sample it, replay it, promote it to goldsets.

The flow, one module per step::

    log_query (log)  ->  ingest_paths / watch (ingest)  ->  sample_window (sampling)
        ->  plan_replay / save_window_summary (replay: a run + a window summary, run by
        evalkit.pipeline.replay_traffic_window)  ->  promote_window (promote)

``docs/traffic.md`` documents the log format, every setting and every stored figure.
Importing this package loads only the log writer; the rest loads on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from evalkit.traffic.log import LOG_FIELDS, REQUIRED_FIELDS, format_log_line, log_query

if TYPE_CHECKING:
    from evalkit.traffic._records import log_line_json_schema
    from evalkit.traffic.ingest import (
        FileIngest,
        IngestProblem,
        IngestReport,
        ingest_paths,
        log_files,
        watch,
    )
    from evalkit.traffic.promote import (
        PromotionDraft,
        choose_promotions,
        promote_window,
        promotion_priority,
    )
    from evalkit.traffic.redaction import (
        REDACTION_PATTERNS,
        Redaction,
        RedactionPattern,
    )
    from evalkit.traffic.replay import (
        ReplayPlan,
        compare_with_logged,
        filters_by_tenant,
        plan_replay,
        save_window_summary,
    )
    from evalkit.traffic.sampling import (
        SampleSpec,
        allocate_quotas,
        parse_stratification,
        sample_window,
    )
    from evalkit.traffic.summary import (
        DEFAULT_LOW_CONFIDENCE,
        ReplayFigures,
        replay_figures,
    )
    from evalkit.traffic.windows import (
        GRANULARITIES,
        Window,
        parse_window,
        window_containing,
    )

# Everything but the log writer loads on first use, so an application that only calls
# ``log_query`` does not import DuckDB, pandas and Arrow.
_LAZY: dict[str, str] = {
    "log_line_json_schema": "evalkit.traffic._records",
    "FileIngest": "evalkit.traffic.ingest",
    "IngestProblem": "evalkit.traffic.ingest",
    "IngestReport": "evalkit.traffic.ingest",
    "ingest_paths": "evalkit.traffic.ingest",
    "log_files": "evalkit.traffic.ingest",
    "watch": "evalkit.traffic.ingest",
    "PromotionDraft": "evalkit.traffic.promote",
    "choose_promotions": "evalkit.traffic.promote",
    "promote_window": "evalkit.traffic.promote",
    "promotion_priority": "evalkit.traffic.promote",
    "REDACTION_PATTERNS": "evalkit.traffic.redaction",
    "Redaction": "evalkit.traffic.redaction",
    "RedactionPattern": "evalkit.traffic.redaction",
    "ReplayPlan": "evalkit.traffic.replay",
    "compare_with_logged": "evalkit.traffic.replay",
    "filters_by_tenant": "evalkit.traffic.replay",
    "plan_replay": "evalkit.traffic.replay",
    "save_window_summary": "evalkit.traffic.replay",
    "SampleSpec": "evalkit.traffic.sampling",
    "allocate_quotas": "evalkit.traffic.sampling",
    "parse_stratification": "evalkit.traffic.sampling",
    "sample_window": "evalkit.traffic.sampling",
    "DEFAULT_LOW_CONFIDENCE": "evalkit.traffic.summary",
    "ReplayFigures": "evalkit.traffic.summary",
    "replay_figures": "evalkit.traffic.summary",
    "GRANULARITIES": "evalkit.traffic.windows",
    "Window": "evalkit.traffic.windows",
    "parse_window": "evalkit.traffic.windows",
    "window_containing": "evalkit.traffic.windows",
}

__all__ = [
    "DEFAULT_LOW_CONFIDENCE",
    "GRANULARITIES",
    "LOG_FIELDS",
    "REDACTION_PATTERNS",
    "REQUIRED_FIELDS",
    "FileIngest",
    "IngestProblem",
    "IngestReport",
    "PromotionDraft",
    "Redaction",
    "RedactionPattern",
    "ReplayFigures",
    "ReplayPlan",
    "SampleSpec",
    "Window",
    "allocate_quotas",
    "choose_promotions",
    "compare_with_logged",
    "filters_by_tenant",
    "format_log_line",
    "ingest_paths",
    "log_files",
    "log_line_json_schema",
    "log_query",
    "parse_stratification",
    "parse_window",
    "plan_replay",
    "promote_window",
    "promotion_priority",
    "replay_figures",
    "sample_window",
    "save_window_summary",
    "watch",
    "window_containing",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'evalkit.traffic' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
