"""The review queue and Label Studio: export a goldset's queued items as Label Studio tasks
with their labeling config, and import a Label Studio export back as reviews.

The formats are ``evalkit.goldset.label_studio``'s. An import is checked whole before anything
is saved (every item and document it names must be in the queue) and saved in one
transaction; annotations imported before (same item, annotator and time) are not saved twice,
so importing a newer export of the same project adds only what is new.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from evalkit.errors import InputError, NotFoundError
from evalkit.goldset.label_studio import export_tasks, import_annotations, labeling_config
from evalkit.records.review import ReviewRecord
from evalkit.store.access import WriterAccess
from evalkit.store.review import add_reviews, item_reviews, list_items

__all__ = [
    "LabelStudioExport",
    "LabelStudioImport",
    "export_label_studio",
    "import_label_studio",
]


@dataclass(frozen=True, slots=True)
class LabelStudioExport:
    """Label Studio tasks for the queued items of ``goldset`` (in review order) and the
    labeling config the project needs (slots for ``max_documents`` documents)."""

    goldset: str
    tasks: list[dict[str, object]]
    config: str
    max_documents: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (the tasks themselves go to their own file)."""
        return {"goldset": self.goldset, "tasks": len(self.tasks), "documents": self.max_documents}


def export_label_studio(
    access: WriterAccess, goldset: str, *, status: str | None = "open"
) -> LabelStudioExport:
    """The queued items of ``goldset`` with ``status`` (None: every status) as Label Studio
    tasks, pre-annotated with their suggested grades. Raises ``NotFoundError`` when there is
    none."""
    with access.writer("review export") as store:
        queued = list_items(store, goldset=goldset, status=status)
    if not queued:
        which = "" if status is None else f"{status} "
        raise NotFoundError(
            f"the review queue holds no {which}item of goldset {goldset!r}; queue drafts with "
            "`evalkit review add DIR --goldset NAME`"
        )
    items = [entry.item for entry in queued]
    most = max(len(item.documents) for item in items)
    return LabelStudioExport(goldset, export_tasks(items), labeling_config(most), most)


@dataclass(frozen=True, slots=True)
class LabelStudioImport:
    """What an import saved: ``saved`` new reviews by ``reviewers`` on ``items`` items, and
    ``already`` annotations imported before."""

    source: str
    saved: int
    already: int
    items: int
    reviewers: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "source": self.source,
            "saved": self.saved,
            "already_imported": self.already,
            "items": self.items,
            "reviewers": list(self.reviewers),
        }


def _stored_time(when: datetime) -> datetime:
    """``when`` as the store keeps times: UTC without tzinfo."""
    return when if when.tzinfo is None else when.astimezone(UTC).replace(tzinfo=None)


def _review_key(record: ReviewRecord) -> tuple[str, str, datetime]:
    return (record.item_id, record.reviewer, _stored_time(record.reviewed_at))


def import_label_studio(
    access: WriterAccess, path: Path | str, *, annotators: Mapping[int, str] | None = None
) -> LabelStudioImport:
    """Save every annotation of the Label Studio export at ``path`` as a review, signed by its
    annotator (``annotators`` names Label Studio user ids). A malformed export, or one naming
    an item or document the queue does not hold, raises ``InputError`` listing each problem,
    and nothing is saved."""
    records = [
        replace(record, reviewed_at=_stored_time(record.reviewed_at))
        for record in import_annotations(path, annotators=annotators)
    ]
    with access.writer("review import") as store:
        ids = sorted({record.item_id for record in records})
        queued = {entry.item.item_id: entry.item for entry in list_items(store, needed_reviews=0)}
        problems = []
        for position, record in enumerate(records, start=1):
            item = queued.get(record.item_id)
            if item is None:
                problems.append(
                    InputError(
                        f"annotation {position}: item {record.item_id!r} is not in the review "
                        "queue of this store",
                        path=str(path),
                        field="data.item_id",
                    )
                )
                continue
            known = {document.doc_id for document in item.documents}
            for doc_id in sorted(set(record.grades) - known):
                problems.append(
                    InputError(
                        f"annotation {position}: item {record.item_id} has no document {doc_id!r}",
                        path=str(path),
                        field="result",
                    )
                )
        if problems:
            shown = "\n".join(f"  {problem}" for problem in problems[:3])
            raise InputError(
                f"the export does not match the review queue, {len(problems)} problem(s):\n"
                f"{shown}\nNothing was imported.",
                path=str(path),
                problems=problems,
            )
        before = {
            _review_key(review)
            for reviews in item_reviews(store, item_ids=ids).values()
            for review in reviews
        }
        fresh = [record for record in records if _review_key(record) not in before]
        add_reviews(store, fresh)
    return LabelStudioImport(
        source=str(path),
        saved=len(fresh),
        already=len(records) - len(fresh),
        items=len({record.item_id for record in fresh}),
        reviewers=tuple(sorted({record.reviewer for record in fresh})),
    )
