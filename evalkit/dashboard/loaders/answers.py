"""The Answers page's data: answer scorings over time and their lowest-scored items."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from evalkit.answers.files import read_answer_records
from evalkit.dashboard.loaders.shared import has_area
from evalkit.errors import EvalkitError
from evalkit.store import Store
from evalkit.store.dashboard import answers as sql
from evalkit.store.dashboard.shared import existing_tables

__all__ = ["AnswerItems", "AnswersData", "answer_items", "answers"]


@dataclass(frozen=True, slots=True)
class AnswersData:
    """Answer metrics per scoring over time, by metric, method and judge
    (``answer_series_frame`` columns)."""

    series: pd.DataFrame


def answers(store: Store) -> AnswersData:
    """Every scoring's means and measured / unmeasured counts, with the day its answers
    were given (the traffic day, where the store knows it)."""
    with_traffic = has_area(existing_tables(store), "traffic")
    return AnswersData(series=sql.answer_series_frame(store, with_traffic=with_traffic))


@dataclass(frozen=True, slots=True)
class AnswerItems:
    """The lowest-scored answers of a scoring on one metric, with their contexts, and the
    scoring's unmeasured rows by reason."""

    scoring_id: str
    metric: str
    items: pd.DataFrame
    unmeasured: pd.DataFrame


def answer_items(store: Store, *, scoring_id: str, metric: str, limit: int = 20) -> AnswerItems:
    """The ``limit`` lowest ``metric`` values of a scoring beside their contexts.

    Questions, answers and contexts come from the traffic record of the same id, else from
    the scored JSONL file when it is still where it was scored, else the question from the
    run's goldset.
    """
    items = sql.answer_items_frame(
        store,
        scoring_id=scoring_id,
        metric=metric,
        limit=limit,
        with_traffic=has_area(existing_tables(store), "traffic"),
    )
    source = sql.scoring_source(store, scoring_id=scoring_id)
    path = Path(source) if source else None
    if path is not None and path.is_file() and not items.empty:
        items = _with_file_contexts(items, path)
    return AnswerItems(
        scoring_id=scoring_id,
        metric=metric,
        items=items,
        unmeasured=sql.unmeasured_frame(store, scoring_id=scoring_id),
    )


def _with_file_contexts(items: pd.DataFrame, path: Path) -> pd.DataFrame:
    try:
        records = {record.id: record for record in read_answer_records(path)}
    except EvalkitError:
        return items
    filled = items.copy()
    for column in ("question", "answer", "contexts"):
        filled[column] = filled[column].astype(object)
    for index, item_id in filled["item_id"].items():
        record = records.get(str(item_id))
        if record is None:
            continue
        if not isinstance(filled.at[index, "question"], str):
            filled.at[index, "question"] = record.question
        if not isinstance(filled.at[index, "answer"], str):
            filled.at[index, "answer"] = record.answer
        if filled.at[index, "contexts"] is None or (
            isinstance(filled.at[index, "contexts"], float)
        ):
            filled.at[index, "contexts"] = list(record.contexts)
    return filled
