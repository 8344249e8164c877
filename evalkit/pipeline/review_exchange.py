"""The review queue and Label Studio: export a goldset's queued items as Label Studio tasks
with their labeling config, and import a Label Studio export back as reviews.

An import is checked whole, then saved in one transaction; an annotation imported before or
repeated in one export is saved once, and a Label Studio user keeps the name first imported
under (docs/goldsets.md, "Label Studio").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from evalkit.clock import naive_utc
from evalkit.errors import InputError, NotFoundError
from evalkit.goldset.label_studio import (
    LABEL_STUDIO,
    Annotators,
    LabelStudioAnnotation,
    export_tasks,
    labeling_config,
    read_annotations,
)
from evalkit.records.review import ReviewRecord, ReviewSource
from evalkit.store.access import WriterAccess
from evalkit.store.review import (
    ImportedSigners,
    add_reviews,
    imported_signers,
    item_reviews,
    list_items,
)

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
    """What an import saved (``saved`` reviews by ``reviewers`` on ``items`` items) and did not:
    ``already`` imported, ``repeated`` in the export, ``on_published`` items, ``grades_dropped``
    from rejections; ``unmatched`` annotator options and the export's ``users``.
    """

    source: str
    saved: int
    already: int
    items: int
    reviewers: tuple[str, ...]
    on_published: int = 0
    repeated: int = 0
    grades_dropped: int = 0
    unmatched: tuple[str, ...] = ()
    users: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "source": self.source,
            "saved": self.saved,
            "already_imported": self.already,
            "repeated_in_export": self.repeated,
            "items": self.items,
            "reviewers": list(self.reviewers),
            "skipped_published": self.on_published,
            "grades_dropped_from_rejections": self.grades_dropped,
            "unmatched_annotators": list(self.unmatched),
        }


def _export_users(annotations: Sequence[LabelStudioAnnotation]) -> dict[int | str, str]:
    """Each Label Studio user the annotations are by, under every key ``--annotator`` may
    name them with (user id, email in lower case), as the user is shown: ``3 (ana@x.org)``."""
    users: dict[int | str, str] = {}
    for annotation in annotations:
        source = annotation.record.source
        if source is None:
            continue
        user, email = source.user_id, source.user_email
        shown = f"{user} ({email})" if user and email else (user or email or "")
        if source.user_id is not None:
            users[int(source.user_id)] = shown
        if source.user_email is not None:
            users[source.user_email.lower()] = shown
    return users


def _review_key(record: ReviewRecord) -> tuple[str, str, datetime]:
    return (record.item_id, record.reviewer, naive_utc(record.reviewed_at))


def _annotation_key(record: ReviewRecord) -> tuple[str, str, str, datetime] | None:
    """One annotation in one state: the same in every export format and under every name."""
    source = record.source
    if source is None or source.annotation_id is None:
        return None
    return (record.item_id, source.tool, source.annotation_id, naive_utc(record.reviewed_at))


def _signed_without_annotation_id(
    stored: Sequence[ReviewRecord],
) -> dict[tuple[str, datetime], str]:
    """The reviewer of each (item, time) among stored reviews without an annotation id
    (imported before migration 20), so a renamed annotator does not save them again; an
    (item, time) two reviewers share is left out.
    """
    signed: dict[tuple[str, datetime], str | None] = {}
    for review in stored:
        if review.source is not None and review.source.annotation_id is not None:
            continue
        key = (review.item_id, naive_utc(review.reviewed_at))
        if key in signed and signed[key] != review.reviewer:
            signed[key] = None
        else:
            signed[key] = review.reviewer
    return {key: name for key, name in signed.items() if name is not None}


def _identities(source: ReviewSource | None) -> list[tuple[str, str]]:
    """What names a Label Studio user: their user id and their email (in lower case)."""
    if source is None:
        return []
    keys = [] if source.user_id is None else [("user", source.user_id)]
    if source.user_email is not None:
        keys.append(("email", source.user_email.lower()))
    return keys


def _earlier_name(
    record: ReviewRecord,
    annotation_names: Mapping[tuple[str, str], str],
    time_names: Mapping[tuple[str, datetime], str],
) -> str | None:
    """The name ``record``'s annotation was imported under before: by its Label Studio
    annotation id, else (for reviews imported without that id) by its item and time."""
    source = record.source
    if source is None:
        return None
    earlier = None
    if source.annotation_id is not None:
        earlier = annotation_names.get((record.item_id, source.annotation_id))
    if earlier is None:
        earlier = time_names.get((record.item_id, naive_utc(record.reviewed_at)))
    return earlier


def _signed_as_before(
    annotations: Sequence[LabelStudioAnnotation],
    stored: Sequence[ReviewRecord],
    signers: ImportedSigners,
    path: Path | str,
) -> list[ReviewRecord]:
    """The annotations' reviews, each signed with the name its annotation (else its Label
    Studio user, by user id or email: ``signers``) was imported under before, so that one
    person is one reviewer. A user whose annotation this export holds again is known by the
    id and the email the export gives: their new annotations take that name too. An
    ``--annotator`` name that differs from the earlier name raises ``InputError``."""
    annotation_names = {
        (review.item_id, review.source.annotation_id): review.reviewer
        for review in stored
        if review.source is not None
        and review.source.tool == LABEL_STUDIO
        and review.source.annotation_id is not None
    }
    time_names = _signed_without_annotation_id(stored)
    known: dict[tuple[str, str], str] = {
        **{("user", user): name for user, name in signers.by_user.items()},
        **{("email", email): name for email, name in signers.by_email.items()},
        # An email a review gave with a user id is that user's: a store that signed one
        # person twice before it kept emails (migration 25) signs them with the id's name.
        **{
            ("email", email): signers.by_user[user]
            for email, user in signers.user_of.items()
            if user in signers.by_user
        },
    }
    # Linked through an annotation imported before: JSON-MIN gives the email of a user whom
    # the JSON export named by id, and the other way round.
    for annotation in annotations:
        earlier = _earlier_name(annotation.record, annotation_names, time_names)
        if earlier is not None:
            for key in _identities(annotation.record.source):
                known.setdefault(key, earlier)
    records: list[ReviewRecord] = []
    conflicts: dict[int | str, InputError] = {}
    for annotation in annotations:
        record = annotation.record
        earlier = _earlier_name(record, annotation_names, time_names)
        if earlier is None:
            earlier = next((known[key] for key in _identities(record.source) if key in known), None)
        if earlier is None or earlier == record.reviewer:
            records.append(record)
        elif annotation.named_by is not None:
            user = annotation.named_by
            conflicts.setdefault(
                user,
                InputError(
                    f"Label Studio user {user} was signed {earlier!r} when their annotations "
                    f"were first imported; --annotator {user}={record.reviewer} would count "
                    f"them as a second reviewer. Give --annotator {user}={earlier}, or leave "
                    "this user out of --annotator",
                    path=str(path),
                    field=f"{annotation.at}, --annotator",
                ),
            )
        else:
            records.append(replace(record, reviewer=earlier))
    if len(conflicts) == 1:
        raise next(iter(conflicts.values()))
    if conflicts:
        problems = list(conflicts.values())
        lines = [
            f"cannot import, {len(problems)} annotators were signed otherwise before:",
            *(f"  {problem}" for problem in problems[:3]),
        ]
        raise InputError("\n".join(lines), path=str(path), problems=problems)
    return records


@dataclass(slots=True)
class _Sorted:
    fresh: list[ReviewRecord]
    positions: list[int]
    """Where each of ``fresh`` stands among the records sorted out."""
    already: int = 0
    repeated: int = 0


def _sort_out(records: Sequence[ReviewRecord], stored: Sequence[ReviewRecord]) -> _Sorted:
    """The reviews to save: neither imported before nor given earlier in the same export."""
    before_names = {_review_key(review) for review in stored}
    before_annotations = {_annotation_key(review) for review in stored} - {None}
    seen_names: set[tuple[str, str, datetime]] = set()
    seen_annotations: set[tuple[str, str, str, datetime] | None] = set()
    result = _Sorted([], [])
    for position, record in enumerate(records):
        name, annotation = _review_key(record), _annotation_key(record)
        if name in before_names or annotation in before_annotations:
            result.already += 1
        elif name in seen_names or (annotation is not None and annotation in seen_annotations):
            result.repeated += 1
        else:
            result.fresh.append(record)
            result.positions.append(position)
            seen_names.add(name)
            seen_annotations.add(annotation)
    return result


def import_label_studio(
    access: WriterAccess, path: Path | str, *, annotators: Annotators | None = None
) -> LabelStudioImport:
    """Save every annotation of the Label Studio export at ``path`` as a review signed by its
    annotator (docs/goldsets.md, "Label Studio").

    A malformed export, an unknown item or document, or a renamed ``annotators`` user raises
    InputError listing each problem, saving nothing. Published items are counted, not saved.
    """
    with access.writer("review import") as store:
        listed = list_items(store, needed_reviews=0)
        queue = {
            entry.item.item_id: [document.doc_id for document in entry.item.documents]
            for entry in listed
        }
        published = {entry.item.item_id for entry in listed if entry.status == "published"}
        read = read_annotations(path, annotators=annotators, queue=queue)
        users = _export_users(read)
        annotations = [
            replace(
                annotation,
                record=replace(
                    annotation.record, reviewed_at=naive_utc(annotation.record.reviewed_at)
                ),
            )
            for annotation in read
        ]
        ids = sorted({annotation.record.item_id for annotation in annotations})
        stored = [
            review for reviews in item_reviews(store, item_ids=ids).values() for review in reviews
        ]
        records = _signed_as_before(
            annotations, stored, imported_signers(store, LABEL_STUDIO), path
        )
        result = _sort_out(records, stored)
        fresh = [record for record in result.fresh if record.item_id not in published]
        add_reviews(store, fresh)
    # A rejection imported before, or of an item published since, is not saved by this import:
    # none of its grades is left out by it.
    dropped = sum(
        annotations[position].dropped_grades
        for position, record in zip(result.positions, result.fresh, strict=True)
        if record.item_id not in published
    )
    return LabelStudioImport(
        source=str(path),
        saved=len(fresh),
        already=result.already,
        items=len({record.item_id for record in fresh}),
        reviewers=tuple(sorted({record.reviewer for record in fresh})),
        on_published=len(result.fresh) - len(fresh),
        repeated=result.repeated,
        grades_dropped=dropped,
        unmatched=tuple(
            f"{key}={name}" for key, name in (annotators or {}).items() if key not in users
        ),
        users=tuple(sorted(set(users.values()))),
    )
