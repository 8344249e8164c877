"""The Query drill-down page's data: one query in one run, explained, across the goldset's
runs, with the retrieved documents' text where the collection can be read."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from evalkit.errors import EvalkitError
from evalkit.metrics import parse_measure
from evalkit.retrievers.chroma_client import get_collection, open_chroma_client
from evalkit.store import Store
from evalkit.store.dashboard import query as sql
from evalkit.store.runs import get_run

__all__ = [
    "HISTORY_RUNS",
    "SNIPPET_CHARS",
    "WIDE_RUNS",
    "QueryData",
    "document_texts",
    "explain_measure",
    "query_detail",
    "query_list",
]


@dataclass(frozen=True, slots=True)
class QueryData:
    """One query in one run, and across the goldset's runs.

    ``results``: what the run retrieved (rank, doc_id, score, relevance, relevant,
    evaluated_rank: the order trec_eval scores, by score then doc id descending, and
    ``text`` when the collection could be read). ``judgments``: the query's judged
    documents. ``explanations``: per stored measure, its value and how it comes about.
    ``values``: the query's values across runs (run x measure). ``relevant_ranks``: where
    each relevant document landed in the newest ``WIDE_RUNS`` runs (doc x run; empty cell:
    not retrieved). ``history`` and ``rank_history``: the same over the newest
    ``HISTORY_RUNS`` runs, long (``query_across_runs_frame`` and ``relevant_ranks_frame``
    columns), for charts.
    """

    goldset: str
    query_id: str
    text: str
    run_id: str
    relevance_threshold: int
    k: int
    results: pd.DataFrame
    judgments: pd.DataFrame
    explanations: pd.DataFrame
    values: pd.DataFrame
    relevant_ranks: pd.DataFrame
    snippet_note: str
    history: pd.DataFrame = field(default_factory=pd.DataFrame)
    rank_history: pd.DataFrame = field(default_factory=pd.DataFrame)


HISTORY_RUNS = 500
"""Runs of the goldset a query's history charts go back over."""


WIDE_RUNS = 10
"""Runs shown as columns of the relevant documents' rank table."""


def query_list(store: Store, *, goldset_version: str, text: str | None = None) -> pd.DataFrame:
    """Queries of a goldset version matching ``text`` in their id or text."""
    return sql.search_queries(store, goldset_version=goldset_version, text=text or None)


def explain_measure(
    measure: str,
    *,
    relevant_ranks: Sequence[int],
    grades_by_rank: Mapping[int, int],
    n_relevant: int,
    depth: int,
) -> str:
    """How ``measure`` comes about for one query, in words, from where its relevant
    documents landed (``relevant_ranks``: 1-based evaluated ranks of the retrieved
    relevant documents; ``n_relevant``: every judged-relevant document)."""

    parsed = parse_measure(measure)
    cutoff = parsed.cutoff or depth
    found = sorted(rank for rank in relevant_ranks if rank <= cutoff)
    shown = ", ".join(str(rank) for rank in found[:10]) + (" ..." if len(found) > 10 else "")
    where = f"at ranks {shown}" if found else "none"
    name = parsed.name
    if n_relevant == 0:
        return "no judged-relevant document: the query scores 0 on every measure"
    if name == "recall":
        return f"{len(found)} of {n_relevant} relevant documents in the top {cutoff} ({where})"
    if name == "precision":
        return f"{len(found)} relevant documents in the top {cutoff} ({where}), / {cutoff}"
    if name == "hit_rate":
        return f"a relevant document in the top {cutoff}: {'yes' if found else 'no'}"
    if name == "mrr":
        return (
            f"first relevant document at rank {found[0]}: 1/{found[0]}"
            if found
            else f"no relevant document in the top {cutoff}: 0"
        )
    if name == "r_precision":
        top = sorted(rank for rank in relevant_ranks if rank <= n_relevant)
        return f"{len(top)} relevant documents in the top R = {n_relevant}, / {n_relevant}"
    if name == "map":
        precisions = [index / rank for index, rank in enumerate(found, start=1)]
        terms = " + ".join(f"{p:.3f}" for p in precisions[:6]) + (
            " + ..." if len(precisions) > 6 else ""
        )
        return (
            f"precision at each relevant rank in the top {cutoff} ({terms or '0'}), "
            f"summed and / {n_relevant} relevant"
        )
    if name == "ndcg":
        gains = [f"rank {rank} grade {grades_by_rank[rank]}" for rank in found[:6]]
        return (
            f"graded gains / log2(rank + 1) in the top {cutoff} ({', '.join(gains) or 'none'}),"
            " / the ideal ordering of the judged grades"
        )
    return f"{len(found)} relevant documents in the top {cutoff}"


def query_detail(
    store: Store, *, goldset: str, query_id: str, run_id: str, with_text: bool = False
) -> QueryData:
    """One query of ``goldset`` in run ``run_id``, explained, and across the newest runs.

    ``with_text`` reads the retrieved documents' text from the run's Chroma collection.
    """
    run = get_run(store, run_id)
    version = run.spec.goldset_version or ""
    texts = sql.search_queries(store, goldset_version=version, text=None, limit=1_000_000)
    matching = texts[texts["query_id"] == query_id]
    text = str(matching.iloc[0]["text"]) if not matching.empty else ""
    threshold = run.spec.relevance_threshold
    results = sql.query_results_frame(store, run_id=run.run_id, query_id=query_id)
    order = results.sort_values(["score", "doc_id"], ascending=[False, False], kind="stable")
    evaluated = pd.Series(np.arange(1, len(order) + 1), index=order.index)
    results = results.assign(
        evaluated_rank=evaluated.reindex(results.index).to_numpy(),
        relevant=results["relevance"].fillna(-1).to_numpy() >= threshold,
    )
    judgments = sql.judgments_of_query(store, goldset_version=version, query_id=query_id)
    n_relevant = int((judgments["relevance"] >= threshold).sum())
    relevant_rows = results[results["relevant"]]
    ranks = [int(rank) for rank in relevant_rows["evaluated_rank"]]
    grades = {
        int(rank): int(grade)
        for rank, grade in zip(
            results["evaluated_rank"], results["relevance"].fillna(0), strict=True
        )
    }
    stored = run.aggregates
    values_long = sql.query_across_runs_frame(
        store, goldset=goldset, query_id=query_id, limit=HISTORY_RUNS
    )
    this_run = sql.query_values_frame(store, run_id=run.run_id, query_id=query_id)
    value_of = dict(zip(this_run["measure"], this_run["value"], strict=True))
    explanations = pd.DataFrame(
        [
            {
                "measure": name,
                "value": value_of.get(name),
                "run mean": stored.get(name),
                "why": explain_measure(
                    name,
                    relevant_ranks=ranks,
                    grades_by_rank=grades,
                    n_relevant=n_relevant,
                    depth=run.spec.k,
                ),
            }
            for name in run.spec.measures
        ],
        columns=["measure", "value", "run mean", "why"],
    )
    values = (
        values_long.pivot_table(
            index=["run_id", "started_at", "retriever"], columns="measure", values="value"
        )
        .reset_index()
        .sort_values("started_at", ascending=False)
        if not values_long.empty
        else pd.DataFrame(columns=["run_id", "started_at", "retriever"])
    )
    values.columns.name = None
    ranks_long = sql.relevant_ranks_frame(
        store,
        goldset=goldset,
        query_id=query_id,
        relevance_threshold=threshold,
        limit=HISTORY_RUNS,
    )
    if ranks_long.empty:
        relevant_ranks = pd.DataFrame(columns=["doc_id", "relevance"])
    else:
        newest_first = list(dict.fromkeys(ranks_long["run_id"]))[:WIDE_RUNS]
        wide = ranks_long.pivot(index="doc_id", columns="run_id", values="rank")[newest_first]
        grades = ranks_long.groupby("doc_id")["relevance"].max()
        relevant_ranks = wide.assign(relevance=grades)[["relevance", *newest_first]]
        relevant_ranks = relevant_ranks.sort_values(
            ["relevance", "doc_id"], ascending=[False, True]
        ).reset_index()
        relevant_ranks.columns.name = None
    note = ""
    if with_text:
        snippets, note = document_texts(run.spec.retriever_config, run.spec.collection, results)
        results = results.assign(text=[snippets.get(doc, "") for doc in results["doc_id"]])
    return QueryData(
        goldset=goldset,
        query_id=query_id,
        text=text,
        run_id=run.run_id,
        relevance_threshold=threshold,
        k=run.spec.k,
        results=results,
        judgments=judgments,
        explanations=explanations,
        values=values,
        relevant_ranks=relevant_ranks,
        snippet_note=note,
        history=values_long,
        rank_history=ranks_long,
    )


SNIPPET_CHARS = 300


def document_texts(
    config: Mapping[str, Any], collection: str | None, results: pd.DataFrame
) -> tuple[dict[str, str], str]:
    """Text snippets of the retrieved documents, read from the run's Chroma collection.

    Returns the snippets by doc id and, when they could not be read, why.
    """
    kind = str(config.get("kind", ""))
    if not kind.startswith("chroma") or not collection:
        return {}, f"text snippets need a Chroma collection; this run used {kind or 'unknown'}"
    if results.empty:
        return {}, ""

    path, url = config.get("path"), config.get("url")
    if url is None and not (isinstance(path, str) and (Path(path) / "chroma.sqlite3").is_file()):
        # Opening a missing embedded store would create an empty one: read nothing instead.
        return {}, f"text snippets unavailable: no Chroma store at {path} on this machine"
    try:
        client = open_chroma_client(path=path if url is None else None, url=url)
        found = get_collection(client, collection).get(
            ids=[str(doc) for doc in results["doc_id"]], include=["documents"]
        )
    except EvalkitError as error:
        return {}, f"text snippets unavailable: {error}"
    except Exception as error:  # Chroma raises its own, sqlite and HTTP errors alike
        return {}, f"text snippets unavailable: {type(error).__name__}: {error}"
    documents = found.get("documents") or []
    snippets = {
        str(doc_id): _snippet(text)
        for doc_id, text in zip(found.get("ids") or [], documents, strict=False)
        if text
    }
    return snippets, ""


def _snippet(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= SNIPPET_CHARS else flat[: SNIPPET_CHARS - 3] + "..."
