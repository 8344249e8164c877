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

from evalkit.errors import NotFoundError
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
    """What an import saved: ``saved`` new reviews by ``reviewers`` on ``items`` items,
    ``already`` annotations imported before, and ``on_published`` annotations of items
    already published (a review of those would change nothing, so none is saved)."""

    source: str
    saved: int
    already: int
    items: int
    reviewers: tuple[str, ...]
    on_published: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "source": self.source,
            "saved": self.saved,
            "already_imported": self.already,
            "items": self.items,
            "reviewers": list(self.reviewers),
            "skipped_published": self.on_published,
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
    an item or document the queue does not hold, raises ``InputError`` listing each problem
    at its task and annotation, and nothing is saved. Annotations of items published since
    the export are counted, not saved: they could no longer change the goldset."""
    with access.writer("review import") as store:
        listed = list_items(store, needed_reviews=0)
        queue = {
            entry.item.item_id: [document.doc_id for document in entry.item.documents]
            for entry in listed
        }
        published = {entry.item.item_id for entry in listed if entry.status == "published"}
        records = [
            replace(record, reviewed_at=_stored_time(record.reviewed_at))
            for record in import_annotations(path, annotators=annotators, queue=queue)
        ]
        live = [record for record in records if record.item_id not in published]
        ids = sorted({record.item_id for record in live})
        before = {
            _review_key(review)
            for reviews in item_reviews(store, item_ids=ids).values()
            for review in reviews
        }
        fresh = [record for record in live if _review_key(record) not in before]
        add_reviews(store, fresh)
    return LabelStudioImport(
        source=str(path),
        saved=len(fresh),
        already=len(live) - len(fresh),
        items=len({record.item_id for record in fresh}),
        reviewers=tuple(sorted({record.reviewer for record in fresh})),
        on_published=len(records) - len(live),
    )
