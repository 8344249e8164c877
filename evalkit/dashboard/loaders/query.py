"""The Query drill-down page's data: one query in one run, explained, across the goldset's
runs, with the retrieved documents' text where the collection can be read."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from evalkit.causes.evidence import MISSING_FINDINGS, STALE_FINDINGS, index_evidence
from evalkit.errors import EvalkitError
from evalkit.metrics import parse_measure
from evalkit.metrics.measures import QueryEvidence
from evalkit.retrievers.chroma_client import get_collection, open_chroma_client
from evalkit.stats import ScoredRun, document_depth, lost_relevant_documents
from evalkit.store import Store
from evalkit.store.audit import audit_findings
from evalkit.store.dashboard import query as sql
from evalkit.store.runs import RunRecord, get_run

__all__ = [
    "DIFF_ROWS",
    "GONE",
    "HISTORY_RUNS",
    "MISSING_FINDINGS",
    "SNIPPET_CHARS",
    "STALE_FINDINGS",
    "WIDE_RUNS",
    "QueryData",
    "QueryDiff",
    "document_texts",
    "explain_measure",
    "query_detail",
    "query_diff",
    "query_list",
]


@dataclass(frozen=True, slots=True)
class QueryData:
    """One query in one run, and across the goldset's runs.

    ``results``: what the run retrieved (evaluated_rank: the order trec_eval scores; ``text``
    when the collection could be read). ``judgments``: the query's judged
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
    relevant documents; ``n_relevant``: every judged-relevant document), as the measure's
    registration explains it; MeasureError for a measure evalkit does not compute."""

    parsed = parse_measure(measure)
    if n_relevant == 0:
        return "no judged-relevant document: the query scores 0 on every measure"
    cutoff = parsed.cutoff or depth
    evidence = QueryEvidence(
        found=tuple(sorted(rank for rank in relevant_ranks if rank <= cutoff)),
        relevant_ranks=tuple(relevant_ranks),
        grades_by_rank=grades_by_rank,
        n_relevant=n_relevant,
        cutoff=cutoff,
    )
    return parsed.definition.explain(evidence)


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


DIFF_ROWS = 20
"""Rows of each ranking a query diff shows (lost and gained documents are looked for over
the whole depth of the measure, as Compare runs looks for them)."""

GONE = "(not in the index now)"
"""A diff's title for a document the run's collection no longer holds."""


@dataclass(frozen=True, slots=True)
class QueryDiff:
    """One query's ranking in a baseline run beside a candidate's, and why each relevant
    document the candidate lost was lost.

    ``baseline_ranking`` / ``candidate_ranking``: the top ``DIFF_ROWS`` in the order
    trec_eval scores, with the rank in the other run (NaN where it is not there).
    ``lost``: relevant documents in the baseline's top ``depth`` but not the candidate's,
    with why; ``gained`` the other way round. ``candidate_error``: why the query failed in
    the candidate, if it did.
    """

    query_id: str
    baseline: str
    candidate: str
    measure: str
    depth: int
    relevance_threshold: int
    baseline_ranking: pd.DataFrame
    candidate_ranking: pd.DataFrame
    lost: pd.DataFrame
    gained: pd.DataFrame
    candidate_error: str | None = None
    snippet_note: str = ""


_LOST_COLUMNS = [
    "doc_id",
    "grade",
    "baseline_rank",
    "candidate_rank",
    "why",
    "audit_id",
    "finding",
    "collection",
]


def _evaluated(results: pd.DataFrame) -> pd.DataFrame:
    """A query's results in the order trec_eval scores them (score, then doc id, both
    descending), ranked 1, 2, ..."""
    ordered = results.sort_values(["score", "doc_id"], ascending=[False, False], kind="stable")
    ordered = ordered.drop_duplicates("doc_id").reset_index(drop=True)
    return ordered.assign(rank=np.arange(1, len(ordered) + 1))


def _scored(
    run: RunRecord, query_id: str, results: pd.DataFrame, judged: pd.DataFrame
) -> ScoredRun:
    return ScoredRun(
        reference=run.run_id,
        run_id=run.run_id,
        results=results.assign(query_id=query_id)[["query_id", "doc_id", "score"]],
        per_query=pd.DataFrame(),
        judgments=judged.assign(query_id=query_id)[["query_id", "doc_id", "relevance"]],
        relevance_threshold=run.spec.relevance_threshold,
    )


def _audit_reasons(
    store: Store, base: RunRecord, cand: RunRecord, lost: set[str]
) -> dict[str, tuple[str, str, str]]:
    """Lost documents that the audits `evalkit explain` reads for the candidate report
    missing or stale (``MISSING_FINDINGS``, ``STALE_FINDINGS``): doc -> (audit id, finding
    kind, collection). Each check counts from the audit nearest the candidate that ran it,
    and audits made once the index changed after the candidate are not read
    (``evalkit.causes.evidence.index_evidence``)."""
    if not lost:
        return {}
    found: dict[str, tuple[str, str, str]] = {}
    for audit, ran in index_evidence(store, base, cand).checks_read():
        for finding in audit_findings(store, audit.audit_id):
            if finding.check not in ran or finding.kind not in (*MISSING_FINDINGS, *STALE_FINDINGS):
                continue
            for doc in finding.doc_ids:
                if doc in lost:
                    found.setdefault(doc, (audit.audit_id, finding.kind, audit.collection))
    return found


def query_diff(
    store: Store,
    *,
    query_id: str,
    baseline: str,
    candidate: str,
    measure: str,
    with_text: bool = False,
) -> QueryDiff:
    """One query in ``baseline`` beside ``candidate``: both rankings, relevant documents
    marked with their grade, and each relevant document lost from the top of ``measure``'s
    depth tagged with why (the audit that found it missing from the index or stale, the
    rank it fell to, a failed query, a judgment that changed, or that the candidate
    returned it for no query at all)."""
    base, cand = get_run(store, baseline), get_run(store, candidate)
    depth = min(document_depth(measure), max(base.spec.k, cand.spec.k))
    judged_base = sql.judgments_of_query(
        store, goldset_version=base.spec.goldset_version or "", query_id=query_id
    )
    judged_cand = sql.judgments_of_query(
        store, goldset_version=cand.spec.goldset_version or "", query_id=query_id
    )
    grade_base = dict(zip(judged_base["doc_id"], judged_base["relevance"], strict=True))
    grade_cand = dict(zip(judged_cand["doc_id"], judged_cand["relevance"], strict=True))
    ranked_base = _evaluated(sql.query_results_frame(store, run_id=base.run_id, query_id=query_id))
    ranked_cand = _evaluated(sql.query_results_frame(store, run_id=cand.run_id, query_id=query_id))
    changes = lost_relevant_documents(
        _scored(base, query_id, ranked_base, judged_base),
        _scored(cand, query_id, ranked_cand, judged_base),
        [query_id],
        depth=depth,
    )[query_id]
    rank_base = dict(zip(ranked_base["doc_id"], ranked_base["rank"], strict=True))
    rank_cand = dict(zip(ranked_cand["doc_id"], ranked_cand["rank"], strict=True))
    error = sql.query_error(store, run_id=cand.run_id, query_id=query_id)
    lost_docs = list(changes["lost"])
    audited = _audit_reasons(store, base, cand, set(lost_docs))
    returned = sql.documents_returned(store, run_id=cand.run_id, doc_ids=lost_docs)
    threshold = cand.spec.relevance_threshold
    lost_rows = []
    for doc in lost_docs:
        source = audited.get(doc)
        now = rank_cand.get(doc)
        if error is not None:
            why = f"the query failed in the candidate ({error}); it counts as 0"
        elif source is not None and source[1] in MISSING_FINDINGS:
            why = f"missing from the index per audit {source[0]} ({source[1]})"
        elif source is not None and source[1] == "changed_in_index":
            why = f"stale: the index no longer stores its source's text (audit {source[0]})"
        elif source is not None:
            why = f"stale: changed at the source since it was indexed (audit {source[0]})"
        elif now is not None:
            why = f"now at rank {now}"
        elif float(grade_cand.get(doc, 0) or 0) < threshold:
            why = "no longer judged relevant in the candidate's goldset version"
        elif doc not in returned:
            why = (
                "returned for no query by the candidate: probably gone from the index "
                "(no audit since the baseline says so)"
            )
        else:
            why = f"not in the candidate's top {cand.spec.k}"
        lost_rows.append(
            (
                doc,
                grade_base.get(doc),
                rank_base.get(doc),
                now,
                why,
                *(source if source is not None else (None, None, None)),
            )
        )
    gained_rows = [
        (doc, grade_base.get(doc), rank_base.get(doc), rank_cand.get(doc))
        for doc in changes["gained"]
    ]
    texts: dict[str, str] = {}
    note = ""
    if with_text:
        wanted = pd.DataFrame(
            {
                "doc_id": sorted(
                    {
                        *ranked_base["doc_id"].head(DIFF_ROWS),
                        *ranked_cand["doc_id"].head(DIFF_ROWS),
                        *lost_docs,
                    }
                )
            }
        )
        texts, note = document_texts(cand.spec.retriever_config, cand.spec.collection, wanted)
        if texts and not note:
            # Read from the index just now: a document it no longer holds says so.
            gone = {doc: GONE for doc in wanted["doc_id"] if doc not in texts}
            texts = {**texts, **gone}
    return QueryDiff(
        query_id=query_id,
        baseline=base.run_id,
        candidate=cand.run_id,
        measure=measure,
        depth=depth,
        relevance_threshold=base.spec.relevance_threshold,
        baseline_ranking=_ranking(
            ranked_base,
            grades=grade_base,
            run=base,
            other=rank_cand,
            texts=texts,
            other_name="candidate",
        ),
        candidate_ranking=_ranking(
            ranked_cand,
            grades=grade_cand,
            run=cand,
            other=rank_base,
            texts=texts,
            other_name="baseline",
        ),
        lost=pd.DataFrame(lost_rows, columns=_LOST_COLUMNS),
        gained=pd.DataFrame(
            gained_rows, columns=["doc_id", "grade", "baseline_rank", "candidate_rank"]
        ),
        candidate_error=error,
        snippet_note=note,
    )


def _ranking(
    ranked: pd.DataFrame,
    *,
    grades: Mapping[str, Any],
    run: RunRecord,
    other: Mapping[str, int],
    texts: Mapping[str, str],
    other_name: str,
) -> pd.DataFrame:
    """The top ``DIFF_ROWS`` of a ranking with grades, whether relevant, the rank of each
    document in the other run (column ``<other_name>_rank``, NaN: not retrieved there) and
    its title."""
    top = ranked.head(DIFF_ROWS)
    grade = [grades.get(doc) for doc in top["doc_id"]]
    return pd.DataFrame(
        {
            "rank": top["rank"].astype(int),
            "doc_id": top["doc_id"].astype(str),
            "grade": [np.nan if g is None else float(g) for g in grade],
            "relevant": [g is not None and g >= run.spec.relevance_threshold for g in grade],
            f"{other_name}_rank": [float(other.get(doc, np.nan)) for doc in top["doc_id"]],
            "title": [_title(texts.get(doc, "")) for doc in top["doc_id"]],
        }
    )


def _title(text: str, length: int = 80) -> str:
    return text if len(text) <= length else text[: length - 3] + "..."
