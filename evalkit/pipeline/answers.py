"""The answers workflow: score a file of answer records and store the scores."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from evalkit import answers as answer_stage
from evalkit.answers.files import read_answer_records
from evalkit.answers.records import AnswerScores
from evalkit.config import JudgeSettings
from evalkit.embedding import Embedder
from evalkit.pipeline.answer_scores import score_and_store_answers
from evalkit.store.access import WriterAccess


def score_answer_file(
    path: Path | str,
    *,
    settings: JudgeSettings | None = None,
    store: WriterAccess | None = None,
    embedder: Embedder | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> AnswerScores:
    """Read a JSONL of answer records (``evalkit.answers.files``), score and store it.

    Without ``store`` the scores are only returned; the store is not held while the judge works.
    A judge that answers no call raises JudgeError and nothing is stored.
    """
    records = read_answer_records(path)
    if progress is not None:
        progress(0, len(records))
    if store is None:
        result = answer_stage.score_answers(
            records,
            settings=settings,
            source=str(path),
            embedder=embedder,
            progress=progress,
            judge_must_answer=True,
        )
    else:
        result = score_and_store_answers(
            records,
            store=store,
            settings=settings,
            source=str(path),
            embedder=embedder,
            progress=progress,
            judge_must_answer=True,
        )
    if progress is not None:
        progress(len(records), len(records))
    return result
