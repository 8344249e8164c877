"""Traffic samples: a window's distinct queries drawn per stratum, and the stored samples.

Each distinct query gets the priority ``md5(seed:query_key)`` and each stratum keeps its
``quota`` lowest: a uniform sample without replacement (a bottom-k sample), reproducible from
the seed whatever order the records were ingested in.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from evalkit.clock import utc_now
from evalkit.errors import ConfigError, NotFoundError
from evalkit.records.jsonready import JsonReady
from evalkit.store.columns import record_of

if TYPE_CHECKING:
    import pandas as pd

    from evalkit.store.store import Store

__all__ = [
    "STRATUM_KINDS",
    "StoredSample",
    "Stratification",
    "draw_window_queries",
    "list_samples",
    "load_sample",
    "load_sample_queries",
    "save_sample",
    "stratum_sizes",
]


@dataclass(frozen=True, slots=True)
class Stratification:
    """What a sample is stratified by: nothing, the tenant, or one tag (``tag:KEY``)."""

    kind: str = "none"
    key: str | None = None

    def __str__(self) -> str:
        return f"tag:{self.key}" if self.kind == "tag" else self.kind


def _stratum_none(_: Stratification) -> tuple[str, list[object]]:
    return "CAST(NULL AS VARCHAR)", []


def _stratum_tenant(_: Stratification) -> tuple[str, list[object]]:
    return "tenant", []


def _stratum_tag(stratification: Stratification) -> tuple[str, list[object]]:
    key = (stratification.key or "").replace('"', '\\"')
    return "json_extract_string(tags, ?)", [f'$."{key}"']


STRATUM_KINDS = {"none": _stratum_none, "tenant": _stratum_tenant, "tag": _stratum_tag}
"""SQL expression (and its parameters) giving each record's stratum, per stratification kind."""


@dataclass(frozen=True, slots=True)
class StoredSample(JsonReady):
    """A stored traffic sample: how it was drawn (window, strata, seed) and what it holds."""

    sample_id: str
    window_label: str
    window_start: datetime
    window_end: datetime
    stratify_by: str | None
    n_requested: int
    min_per_stratum: int
    dedup: bool
    seed: int
    n_records: int
    n_distinct: int
    n_sampled: int
    quotas: Mapping[str, int]
    created_at: datetime


def _distinct_queries_sql(
    start: datetime, end: datetime, stratification: Stratification, dedup: bool
) -> tuple[str, list[object]]:
    """``distinct_queries(dedup_key, n_duplicates, first)`` of ``[start, end)``; ``first``
    is the earliest record of each group (a struct of its query_id and stratum)."""
    builder = STRATUM_KINDS.get(stratification.kind)
    if builder is None:
        raise ConfigError(
            f"unknown stratification '{stratification.kind}'; use one of: "
            f"{', '.join(STRATUM_KINDS)}"
        )
    stratum_sql, stratum_params = builder(stratification)
    key_sql = "query_key" if dedup else "md5_number_upper(query_id)"
    sql = (
        "WITH windowed AS ("
        f" SELECT query_id, ts, {stratum_sql} AS stratum, {key_sql} AS dedup_key"
        " FROM traffic_records WHERE ts >= ? AND ts < ? AND text IS NOT NULL"
        "), distinct_queries AS ("
        " SELECT dedup_key, count(*) AS n_duplicates,"
        "  arg_min({'query_id': query_id, 'stratum': stratum},"
        "   {'ts': ts, 'query_id': query_id}) AS first"
        " FROM windowed GROUP BY dedup_key"
        ")"
    )
    return sql, [*stratum_params, start, end]


def stratum_sizes(
    store: Store,
    *,
    start: datetime,
    end: datetime,
    stratification: Stratification,
    dedup: bool = True,
) -> list[tuple[str | None, int, int]]:
    """``(stratum, distinct queries, records)`` of every stratum in ``[start, end)``."""
    cte, params = _distinct_queries_sql(start, end, stratification, dedup)
    rows = store.fetch(
        f"{cte} SELECT first.stratum AS stratum, count(*), sum(n_duplicates)"
        " FROM distinct_queries GROUP BY stratum ORDER BY stratum NULLS FIRST",
        params,
    )
    return [(row[0], int(row[1]), int(row[2])) for row in rows]


def _draw_sql(
    *,
    start: datetime,
    end: datetime,
    stratification: Stratification,
    dedup: bool,
    seed: int,
    quotas: Mapping[str | None, int],
) -> tuple[str, list[object]]:
    # Each stratum keeps its ``quota`` lowest priorities with a top-n aggregate (a heap per
    # stratum) rather than ranking every distinct query; only the chosen few are joined back
    # for their text.
    cte, params = _distinct_queries_sql(start, end, stratification, dedup)
    strata = list(quotas)
    sql = (
        f"{cte}, quotas AS ("
        " SELECT unnest(?::VARCHAR[]) AS stratum, unnest(?::INTEGER[]) AS quota"
        "), ranked AS ("
        " SELECT first.query_id AS query_id, first.stratum AS stratum, n_duplicates,"
        "  md5_number(? || ':' || CAST(dedup_key AS VARCHAR)) AS priority"
        " FROM distinct_queries"
        "), lowest AS ("
        " SELECT stratum, min_by({'query_id': query_id, 'n_duplicates': n_duplicates,"
        "  'priority': priority}, priority, ?) AS picks"
        " FROM ranked GROUP BY stratum"
        "), picked AS ("
        " SELECT l.stratum, unnest(list_slice(l.picks, 1, q.quota)) AS pick"
        " FROM lowest l JOIN quotas q ON l.stratum IS NOT DISTINCT FROM q.stratum"
        ") SELECT p.pick.query_id AS query_id, r.text, r.tenant, p.stratum,"
        " p.pick.n_duplicates AS n_duplicates, p.pick.priority AS priority"
        " FROM picked p JOIN traffic_records r ON r.query_id = p.pick.query_id"
    )
    most = max([1, *quotas.values()])
    return sql, [*params, strata, [quotas[s] for s in strata], str(seed), most]


def draw_window_queries(
    store: Store, *, start: datetime, end: datetime, seed: int, limit: int, dedup: bool = True
) -> pd.DataFrame:
    """A seeded uniform sample of up to ``limit`` distinct queries of ``[start, end)``.

    Columns: query_id, text, tenant, stratum, n_duplicates; in priority order.
    """
    sql, params = _draw_sql(
        start=start,
        end=end,
        stratification=Stratification(),
        dedup=dedup,
        seed=seed,
        quotas={None: limit},
    )
    return store.fetch_frame(
        f"SELECT query_id, text, tenant, stratum, n_duplicates FROM ({sql}) ORDER BY priority",
        params,
    )


def save_sample(
    store: Store,
    *,
    window_label: str,
    start: datetime,
    end: datetime,
    stratification: Stratification,
    n_requested: int,
    min_per_stratum: int,
    dedup: bool,
    seed: int,
    n_records: int,
    n_distinct: int,
    quotas: Mapping[str | None, int],
) -> StoredSample:
    """Draw the sample with these ``quotas`` per stratum and store it with how it was drawn."""
    created_at = utc_now()
    sample_id = f"{created_at:%Y%m%dT%H%M%S}-{secrets.token_hex(3)}"
    draw, params = _draw_sql(
        start=start,
        end=end,
        stratification=stratification,
        dedup=dedup,
        seed=seed,
        quotas=quotas,
    )
    stratify_by = None if stratification.kind == "none" else str(stratification)
    quota_json = json.dumps({("" if s is None else s): q for s, q in quotas.items()})
    with store.writing(f"cannot store the traffic sample of {window_label}") as con:
        con.execute(
            "INSERT INTO traffic_sample_queries SELECT ?,"
            " row_number() OVER (ORDER BY priority) - 1,"
            f" query_id, text, tenant, stratum, n_duplicates FROM ({draw})",
            [sample_id, *params],
        )
        sampled = con.execute(
            "SELECT count(*) FROM traffic_sample_queries WHERE sample_id = ?", [sample_id]
        ).fetchall()[0][0]
        con.execute(
            "INSERT INTO traffic_samples VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                sample_id,
                window_label,
                start,
                end,
                stratify_by,
                n_requested,
                min_per_stratum,
                dedup,
                seed,
                n_records,
                n_distinct,
                sampled,
                quota_json,
                created_at,
            ],
        )
    return load_sample(store, sample_id)


_SAMPLE_COLUMNS = (
    "sample_id, window_label, window_start, window_end, stratify_by, n_requested,"
    " min_per_stratum, dedup, seed, n_records, n_distinct, n_sampled, quotas, created_at"
)


def _sample(row: tuple[Any, ...]) -> StoredSample:
    return record_of(StoredSample, _SAMPLE_COLUMNS, row, quotas=json.loads)


def load_sample(store: Store, sample_id: str) -> StoredSample:
    """The stored sample ``sample_id`` (a unique prefix is enough)."""
    rows = store.fetch(
        f"SELECT {_SAMPLE_COLUMNS} FROM traffic_samples WHERE starts_with(sample_id, ?)"
        " ORDER BY sample_id",
        [sample_id],
    )
    exact = [row for row in rows if row[0] == sample_id]
    if not rows or (len(rows) > 1 and not exact):
        problem = "no traffic sample" if not rows else "an ambiguous traffic sample prefix"
        raise NotFoundError(
            f"{problem} {sample_id!r} in {store.path}; list samples with "
            "`evalkit traffic windows` or draw one with `evalkit traffic sample --window ...`"
        )
    return _sample(exact[0] if exact else rows[0])


def list_samples(
    store: Store, *, window_label: str | None = None, limit: int = 50
) -> list[StoredSample]:
    """Stored samples, newest first (optionally of one window)."""
    rows = store.fetch(
        f"SELECT {_SAMPLE_COLUMNS} FROM traffic_samples WHERE ? IS NULL OR window_label = ?"
        " ORDER BY created_at DESC, sample_id DESC LIMIT ?",
        [window_label, window_label, limit],
    )
    return [_sample(row) for row in rows]


def load_sample_queries(store: Store, sample_id: str) -> pd.DataFrame:
    """The queries of a sample, in sample order: query_id, text, tenant, stratum, n_duplicates."""
    return store.fetch_frame(
        "SELECT query_id, text, tenant, stratum, n_duplicates FROM traffic_sample_queries"
        " WHERE sample_id = ? ORDER BY ordinal",
        [sample_id],
    )
