"""How the dashboard writes figures and names columns, in one place for tables and charts.

Every column a table shows gets a human header and a format from its name (``column_format``):
grades and counts as integers, p-values in scientific notation, latencies in ms, shares and
scores with their decimals, a measure's canonical name (``ndcg@10 delta``) as it is. Text
for people goes through ``fmt``, ``fmt_p`` and ``plural``: a missing value is a dash, a tiny
p-value reads "< 0.001", and one day is "1 day".
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

import pandas as pd

from evalkit.errors import EvalkitError
from evalkit.metrics import parse_measure

__all__ = [
    "DASH",
    "KIND_FORMATS",
    "LABELS",
    "ColumnFormat",
    "column_format",
    "fmt",
    "fmt_p",
    "humanise",
    "plural",
    "shortened",
    "text_width",
]

DASH: Final = "—"
"""What a missing value shows as, in tables and text."""

KIND_FORMATS: Mapping[str, str | None] = {
    "count": "%d",
    "grade": "%d",
    "score": "%.4f",
    "delta": "%+.4f",
    "share": "%.3f",
    "p": "%.2e",
    "ms": "%.1f ms",
    "seconds": "%.2f s",
    "statistic": "%.4g",
    "text": None,
    "time": None,
    "other": None,
}
"""The ``st.column_config.NumberColumn`` format of each kind of number (None: as it comes)."""


@dataclass(frozen=True, slots=True)
class ColumnFormat:
    """A column's header for people and the kind of value it holds (``KIND_FORMATS``)."""

    label: str
    kind: str


LABELS: Mapping[str, ColumnFormat] = {
    name: ColumnFormat(label, kind)
    for name, label, kind in (
        ("run_id", "Run", "text"),
        ("run", "Run", "text"),
        ("query_id", "Query", "text"),
        ("doc_id", "Document", "text"),
        ("goldset_name", "Goldset", "text"),
        ("goldset_version", "Goldset version", "text"),
        ("retriever", "Retriever", "text"),
        ("series", "Series", "text"),
        ("status", "Status", "text"),
        ("decision", "Decision", "text"),
        ("why", "Why", "text"),
        ("label", "Label", "text"),
        ("measure", "Measure", "text"),
        ("text", "Text", "text"),
        ("title", "Title", "text"),
        ("kind", "Kind", "text"),
        ("description", "Description", "text"),
        ("lost", "Lost relevant documents", "text"),
        ("gained", "Gained relevant documents", "text"),
        ("n_lost", "Lost", "count"),
        ("n_gained", "Gained", "count"),
        ("value", "Value", "score"),
        ("mean", "Mean", "score"),
        ("run mean", "Run mean", "score"),
        ("latest", "Latest", "score"),
        ("baseline_value", "Baseline value", "score"),
        ("baseline_mean", "Baseline mean", "score"),
        ("candidate_mean", "Candidate mean", "score"),
        ("delta", "Change", "delta"),
        ("ci_low", "95% CI low", "delta"),
        ("ci_high", "95% CI high", "delta"),
        ("p_value", "p-value", "p"),
        ("p_adjusted", "p (Holm-adjusted)", "p"),
        ("p_permutation", "p (permutation)", "p"),
        ("p_wilcoxon", "p (Wilcoxon)", "p"),
        ("statistic", "Statistic", "statistic"),
        ("threshold", "Threshold", "statistic"),
        ("effect_size", "Effect size", "statistic"),
        ("ks_statistic", "KS statistic", "statistic"),
        ("mean_shift_sd", "Mean shift (sd)", "statistic"),
        ("dimension", "Dimension", "count"),
        ("relevance", "Grade", "grade"),
        ("grade", "Grade", "grade"),
        ("rank", "Rank", "count"),
        ("evaluated_rank", "Evaluated rank", "count"),
        ("score", "Score", "score"),
        ("relevant", "Relevant", "other"),
        ("k", "k", "count"),
        ("n", "Queries", "count"),
        ("n_compared", "Queries compared", "count"),
        ("n_runs", "Runs", "count"),
        ("n_queries", "Queries", "count"),
        ("n_judgments", "Judgments", "count"),
        ("n_relevant", "Relevant judgments", "count"),
        ("n_evaluated", "Queries evaluated", "count"),
        ("n_failed", "Failed queries", "count"),
        ("n_replayed", "Replayed", "count"),
        ("n_distinct", "Distinct queries", "count"),
        ("n_reference", "Reference size", "count"),
        ("n_current", "Current size", "count"),
        ("n_documents", "Documents", "count"),
        ("n_embeddings", "Embeddings", "count"),
        ("n_measured", "Measured", "count"),
        ("n_unmeasured", "Unmeasured", "count"),
        ("n_top", "Documents in the top", "count"),
        ("records", "Records", "count"),
        ("volume", "Volume", "count"),
        ("attempt", "Attempt", "count"),
        ("status_code", "HTTP status", "count"),
        ("count", "Count", "count"),
        ("latency_p50", "Replay latency p50", "ms"),
        ("latency_p95", "Replay latency p95", "ms"),
        ("latency_p99", "Replay latency p99", "ms"),
        ("logged_latency_p50", "Production latency p50", "ms"),
        ("logged_latency_p95", "Production latency p95", "ms"),
        ("logged_latency_p99", "Production latency p99", "ms"),
        ("production_latency_p50", "Production latency p50", "ms"),
        ("production_latency_p95", "Production latency p95", "ms"),
        ("production_latency_p99", "Production latency p99", "ms"),
        ("duration_ms", "Duration", "ms"),
        ("seconds", "Duration", "seconds"),
        ("low_confidence_share", "Low-confidence share", "share"),
        ("low_confidence_threshold", "Low-confidence score below", "statistic"),
        ("empty_share", "Empty share", "share"),
        ("churn", "Churn", "share"),
        ("overlap_mean", "Mean overlap@k", "share"),
        ("rbo_mean", "Mean RBO", "share"),
        ("top1_mean", "Mean top-1 score", "score"),
        ("top1_p50", "Median top-1 score", "score"),
        ("judged_at_depth", "Judged share of the top", "share"),
        ("judged_at_k", "Judged share of all", "share"),
        ("judged_share", "Judged share", "share"),
        ("started_at", "Started", "time"),
        ("finished_at", "Finished", "time"),
        ("created_at", "Created", "time"),
        ("latest_started", "Latest started", "time"),
        ("measured_at", "Measured", "time"),
        ("window_start", "Window start", "time"),
        ("window_end", "Window end", "time"),
        ("computed_at", "Computed", "time"),
        ("time", "Time", "time"),
        ("check_id", "Check", "text"),
        ("audit_id", "Audit", "text"),
        ("alert_id", "Alert", "text"),
        ("window_label", "Window", "text"),
        ("tenant", "Tenant", "text"),
        ("stream", "Stream", "text"),
        ("subject", "Subject", "text"),
        ("finding", "Finding", "text"),
        ("method", "Method", "text"),
        ("reference", "Reference", "text"),
        ("current", "Current", "text"),
        ("severity", "Severity", "text"),
        ("summary", "Summary", "text"),
        ("message", "Message", "text"),
        ("model_fingerprint", "Model fingerprint", "text"),
        ("index_fingerprint", "Index fingerprint", "text"),
        ("latest_run", "Latest run", "text"),
        ("measured_run", "Measured run", "text"),
        ("baseline_run", "Baseline run", "text"),
        ("baseline_rank", "Baseline rank", "count"),
        ("candidate_rank", "Candidate rank", "count"),
    )
}
"""Known columns: their header and kind. Others are named by ``humanise``."""

_MEASURE = re.compile(r"^[a-z_]+(@\d+)?( |$)")
_COUNT_PREFIX = "n_"


def _is_measure(word: str) -> bool:
    try:
        parse_measure(word)
    except EvalkitError:
        return False
    return True


def humanise(name: str) -> str:
    """A header for a column no entry of ``LABELS`` names: ``snake_case`` as words, a
    measure's canonical name (``ndcg@10 delta``, ``map latest``) left as it is."""
    if _MEASURE.match(name) and _is_measure(name.split(" ", maxsplit=1)[0]):
        return name
    words = name.replace("_", " ").strip()
    return words[:1].upper() + words[1:] if words else name


def column_format(name: str, values: pd.Series | None = None) -> ColumnFormat:
    """The header and kind of column ``name`` (its ``values`` decide for unknown names)."""
    known = LABELS.get(name)
    if known is not None:
        return known
    label = humanise(name)
    lowered = name.lower()
    if lowered.endswith(" delta") or lowered.startswith("delta"):
        return ColumnFormat(label, "delta")
    if lowered.startswith(_COUNT_PREFIX):
        return ColumnFormat(humanise(name[len(_COUNT_PREFIX) :]), "count")
    if lowered.startswith("p_") or lowered.startswith("p "):
        return ColumnFormat(label, "p")
    if "latency" in lowered:
        return ColumnFormat(label, "ms")
    if lowered.endswith("share"):
        return ColumnFormat(label, "share")
    if values is not None:
        if pd.api.types.is_datetime64_any_dtype(values):
            return ColumnFormat(label, "time")
        if pd.api.types.is_bool_dtype(values):
            return ColumnFormat(label, "other")
        if pd.api.types.is_integer_dtype(values):
            return ColumnFormat(label, "count")
        if pd.api.types.is_float_dtype(values):
            return ColumnFormat(label, "score")
    return ColumnFormat(label, "text")


def fmt(value: object, digits: int = 4) -> str:
    """A figure for people: floats rounded to ``digits`` decimals, a missing value a dash."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return DASH
    if value is pd.NA or value is pd.NaT:
        return DASH
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def fmt_p(value: object) -> str:
    """A p-value for people: "< 0.001" below a thousandth, else three decimals."""
    if value is None or not isinstance(value, int | float) or math.isnan(float(value)):
        return DASH
    if value < 0.001:
        return "< 0.001"
    return f"{value:.3f}"


def plural(count: int, noun: str, plural_form: str | None = None) -> str:
    """``1 day``, ``2 days``, ``1,000 queries`` (``plural_form`` for an irregular noun)."""
    word = noun if count == 1 else (plural_form or f"{noun}s")
    return f"{count:,} {word}"


def shortened(text: str, width: int) -> str:
    """``text`` in at most ``width`` characters, cut in the middle where it is longer: a
    series' kind (up to its first colon) and the end of its path or URL are what tell
    series apart (``bm25:…ash/many/bm25/a``)."""
    if len(text) <= width:
        return text
    kind = text.find(":") + 1
    head = kind if 0 < kind <= width // 3 else max(1, (width - 1) // 3)
    return f"{text[:head]}…{text[len(text) - (width - 1 - head) :]}"


def text_width(texts: pd.Series | list[str], label: str) -> int:
    """Pixels a column needs so that neither its header nor its longest value is cut."""
    longest = max((len(str(text)) for text in texts), default=0)
    return max(len(label) * 8 + 32, longest * 7 + 24)
