"""Production traffic: log it, ingest it, sample it, replay it, promote it to goldsets, one
module per step (the replay itself is run by ``evalkit.pipeline.replay_traffic_window``).

``docs/traffic.md`` documents the log format, every setting and every stored figure.
Importing this package loads none of its modules; each name loads its own on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from evalkit.lazy import lazy_attributes

if TYPE_CHECKING:
    from evalkit.traffic._records import log_line_json_schema as log_line_json_schema
    from evalkit.traffic.ingest import FileIngest as FileIngest
    from evalkit.traffic.ingest import IngestProblem as IngestProblem
    from evalkit.traffic.ingest import IngestReport as IngestReport
    from evalkit.traffic.ingest import ingest_paths as ingest_paths
    from evalkit.traffic.ingest import log_files as log_files
    from evalkit.traffic.ingest import watch as watch
    from evalkit.traffic.log import LOG_FIELDS as LOG_FIELDS
    from evalkit.traffic.log import REQUIRED_FIELDS as REQUIRED_FIELDS
    from evalkit.traffic.log import format_log_line as format_log_line
    from evalkit.traffic.log import log_query as log_query
    from evalkit.traffic.promote import PromotionDraft as PromotionDraft
    from evalkit.traffic.promote import choose_promotions as choose_promotions
    from evalkit.traffic.promote import promote_window as promote_window
    from evalkit.traffic.promote import promotion_priority as promotion_priority
    from evalkit.traffic.redaction import REDACTION_PATTERNS as REDACTION_PATTERNS
    from evalkit.traffic.redaction import Redaction as Redaction
    from evalkit.traffic.redaction import RedactionPattern as RedactionPattern
    from evalkit.traffic.replay import ReplayPlan as ReplayPlan
    from evalkit.traffic.replay import compare_with_logged as compare_with_logged
    from evalkit.traffic.replay import filters_by_tenant as filters_by_tenant
    from evalkit.traffic.replay import plan_replay as plan_replay
    from evalkit.traffic.replay import save_window_summary as save_window_summary
    from evalkit.traffic.sampling import SampleSpec as SampleSpec
    from evalkit.traffic.sampling import allocate_quotas as allocate_quotas
    from evalkit.traffic.sampling import parse_stratification as parse_stratification
    from evalkit.traffic.sampling import sample_window as sample_window
    from evalkit.traffic.summary import DEFAULT_LOW_CONFIDENCE as DEFAULT_LOW_CONFIDENCE
    from evalkit.traffic.summary import ReplayFigures as ReplayFigures
    from evalkit.traffic.summary import replay_figures as replay_figures
    from evalkit.traffic.windows import GRANULARITIES as GRANULARITIES
    from evalkit.traffic.windows import Window as Window
    from evalkit.traffic.windows import parse_window as parse_window
    from evalkit.traffic.windows import window_containing as window_containing
else:
    # Importing the package loads none of its modules, so an application that only calls
    # ``log_query`` does not import DuckDB, pandas and Arrow.
    __getattr__ = lazy_attributes(__name__)
