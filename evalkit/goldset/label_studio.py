"""Review-queue items to Label Studio tasks, and Label Studio annotations back to reviews.

Teams that already annotate in Label Studio review evalkit's draft items there:

- ``labeling_config(n)`` is the project's labeling config: the query, a document per slot
  (``n`` slots) with a 0-3 grade each, an accept/reject choice, a box to edit the question
  and a note.
- ``export_tasks(items)`` turns review items into tasks in Label Studio's import JSON. The
  grades suggested so far (by the generator, an assessor or a human judgment) come as
  pre-annotations: one prediction per suggester, its ``model_version`` the suggester's name.
- ``read_annotations(path)`` reads a Label Studio export back as one
  ``LabelStudioAnnotation`` per annotation: its ``ReviewRecord``, carrying Label Studio's own
  annotation and user ids, and where it stands in the file. Two export formats are read:
  **JSON** (the full task list, each task with its ``data`` and ``annotations``;
  recommended) and **JSON-MIN** (one flat record per annotation). Cancelled (skipped)
  annotations and tasks nobody annotated are left out. The rules of a review hold: an
  accepted item needs a graded document, and a rejection's grades (the pre-annotations a
  reviewer started from) are dropped. A malformed export raises one ``InputError`` that
  lists every problem (task and annotation by position, counted from 1, and the field) and
  returns nothing. ``import_annotations(path)`` gives the records alone.

The functions are pure: they neither read nor write the store.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from evalkit.clock import CLOCK_SKEW
from evalkit.errors import ConfigError, InputError
from evalkit.goldset._reading import ProblemLog, describe_value
from evalkit.goldset.model import unknown_documents
from evalkit.jsonsafe import TooDeepError, depth_checked
from evalkit.records.review import (
    REVIEW_GRADES,
    ReviewItem,
    ReviewRecord,
    ReviewSource,
    Verdict,
)

__all__ = [
    "GRADE_LABELS",
    "LABEL_STUDIO",
    "LabelStudioAnnotation",
    "export_tasks",
    "import_annotations",
    "labeling_config",
    "read_annotations",
    "reviewer_name",
    "user_id",
]

LABEL_STUDIO = "label-studio"
"""``ReviewSource.tool`` of the reviews imported from Label Studio."""

GRADE_LABELS: Mapping[int, str] = {
    0: "0 not relevant",
    1: "1 related",
    2: "2 relevant",
    3: "3 highly relevant",
}
"""What a reviewer sees for each grade; the annotation stores the bare digit (the choice's
``alias``)."""

QUERY_OBJECT = "query"
"""Name of the Text tag that shows the query (and of the task data key holding its text)."""
VERDICT_CONTROL = "verdict"
QUESTION_CONTROL = "question"
NOTE_CONTROL = "note"
UNATTRIBUTED = "unattributed"
"""``model_version`` of the prediction holding suggested grades that name no suggester."""

_GRADE_CONTROL = re.compile(r"grade_(\d+)")
_LONG_DIGITS = re.compile(r"\d{20,}")
_SUMMARY_PROBLEMS = 3


def _slot_number(digits: str) -> int | None:
    """The slot number a ``doc_<n>_id`` key or a ``grade_<n>`` control names; None when
    ``n`` has more digits than Python turns into an int (no export numbers a slot so)."""
    try:
        return int(digits)
    except ValueError:
        return None


def _shown_name(name: str) -> str:
    """A key or control name as an error names it: a run of digits too long to read is
    given as its length (a hostile export's slot number may have thousands)."""
    return _LONG_DIGITS.sub(lambda run: f"<{len(run.group())} digits>", name)


def _doc_object(slot: int) -> str:
    return f"doc_{slot}"


def _grade_control(slot: int) -> str:
    return f"grade_{slot}"


def _doc_key(slot: int, part: str) -> str:
    return f"doc_{slot}_{part}"


def labeling_config(max_documents: int) -> str:
    """The labeling config (XML) of a Label Studio project that reviews evalkit items.

    The query is shown first, with an accept/reject choice (required) and a box to edit the
    question (left empty to keep it); then ``max_documents`` document slots, each with its
    text and a 0-3 grade; then a free-text note. Tasks with fewer documents leave the later
    slots empty. Use at least as many slots as the item with the most documents has.
    """
    if max_documents < 1:
        raise ConfigError(
            f"a labeling config needs at least one document slot, got {max_documents}"
        )
    grade_choices = "".join(
        f'\n        <Choice value="{label}" alias="{grade}"/>'
        for grade, label in GRADE_LABELS.items()
    )
    slots = "".join(
        f"""
  <View style="margin-top: 1em; padding-top: 0.5em; border-top: 1px solid #ddd">
    <Header value="${_doc_key(slot, "title")}" size="5"/>
    <Text name="{_doc_object(slot)}" value="${_doc_key(slot, "text")}"/>
    <Choices name="{_grade_control(slot)}" toName="{_doc_object(slot)}" choice="single-radio" \
showInline="true">{grade_choices}
    </Choices>
  </View>"""
        for slot in range(max_documents)
    )
    return f"""<View>
  <Header value="Query" size="4"/>
  <Text name="{QUERY_OBJECT}" value="${QUERY_OBJECT}"/>
  <Choices name="{VERDICT_CONTROL}" toName="{QUERY_OBJECT}" choice="single-radio" \
showInline="true" required="true">
    <Choice value="accept"/>
    <Choice value="reject"/>
  </Choices>
  <Header value="Edit the question (leave empty to keep it as it is)" size="6"/>
  <TextArea name="{QUESTION_CONTROL}" toName="{QUERY_OBJECT}" maxSubmissions="1" rows="2" \
editable="true"/>
  <Header value="Grade each document: 0 not relevant, 1 related, 2 relevant, 3 highly \
relevant" size="6"/>{slots}
  <Header value="Note (optional)" size="6"/>
  <TextArea name="{NOTE_CONTROL}" toName="{QUERY_OBJECT}" maxSubmissions="1" rows="2" \
editable="true"/>
</View>
"""


def export_tasks(
    items: Sequence[ReviewItem], *, max_documents: int | None = None
) -> list[dict[str, object]]:
    """Label Studio tasks (its import JSON) for ``items``, to use with
    ``labeling_config(max_documents)``.

    Each task's ``data`` holds ``item_id``, ``goldset``, ``origin``, ``query_id``, ``query``
    (the text), ``priority`` and ``reason`` (sortable in the Data Manager), and per document
    slot ``doc_<i>_id``, ``doc_<i>_title`` and ``doc_<i>_text`` (empty strings in the slots an
    item does not use: Label Studio wants every key the config names). Suggested grades become
    ``predictions``, one per suggester (``model_version``), so that they appear pre-filled.
    Predictions carry no ``score``: evalkit has no calibrated confidence for a suggestion.

    ``max_documents`` defaults to the most documents any item has; an item with more documents
    than ``max_documents`` is a ``ConfigError``.
    """
    slots = max_documents if max_documents is not None else _most_documents(items)
    for item in items:
        if len(item.documents) > slots:
            raise ConfigError(
                f"item {item.item_id!r} has {len(item.documents)} documents but the labeling "
                f"config has {slots} slots; export with at least {len(item.documents)}"
            )
    return [_task(item, slots) for item in items]


def _most_documents(items: Sequence[ReviewItem]) -> int:
    return max((len(item.documents) for item in items), default=1) or 1


def _task(item: ReviewItem, slots: int) -> dict[str, object]:
    data: dict[str, object] = {
        "item_id": item.item_id,
        "goldset": item.goldset,
        "origin": str(item.origin),
        "query_id": item.query.id,
        QUERY_OBJECT: item.query.text,
        "priority": item.priority,
        "reason": item.reason,
    }
    for slot in range(slots):
        if slot < len(item.documents):
            document = item.documents[slot]
            data[_doc_key(slot, "id")] = document.doc_id
            data[_doc_key(slot, "title")] = f"Document {slot + 1}: {document.doc_id}"
            data[_doc_key(slot, "text")] = document.text
        else:
            data[_doc_key(slot, "id")] = ""
            data[_doc_key(slot, "title")] = f"Document {slot + 1}: (none for this query)"
            data[_doc_key(slot, "text")] = ""
    by_suggester: dict[str, list[dict[str, object]]] = {}
    for slot, document in enumerate(item.documents):
        if document.suggested_grade is None:
            continue
        suggester = document.suggested_by or UNATTRIBUTED
        by_suggester.setdefault(suggester, []).append(_grade_result(slot, document.suggested_grade))
    task: dict[str, object] = {"data": data}
    if by_suggester:
        task["predictions"] = [
            {"model_version": suggester, "result": results}
            for suggester, results in by_suggester.items()
        ]
    return task


def _grade_result(slot: int, grade: int) -> dict[str, object]:
    return {
        "from_name": _grade_control(slot),
        "to_name": _doc_object(slot),
        "type": "choices",
        "value": {"choices": [str(grade)]},
    }


def user_id(completed_by: object) -> int | None:
    """Label Studio's user id in a ``completed_by`` (or JSON-MIN ``annotator``): the number
    itself, or a user object's ``id``; ``None`` when only an email or a name is exported."""
    if isinstance(completed_by, dict):
        completed_by = completed_by.get("id")
    if isinstance(completed_by, int) and not isinstance(completed_by, bool):
        return completed_by
    return None


def reviewer_name(completed_by: object, annotators: Mapping[int, str] | None = None) -> str | None:
    """The reviewer's name for a Label Studio ``completed_by`` (or JSON-MIN ``annotator``).

    A user whose id ``annotators`` names is signed with that name, however the export gives
    the user. Otherwise an object (what some Label Studio versions export) gives its
    ``email``, else its first and last name, else ``label-studio-user-<id>``; an email string
    is kept as it is; a numeric user id is named ``label-studio-user-<id>``. ``None`` when
    the value names nobody.
    """
    user = user_id(completed_by)
    if annotators is not None and user is not None and user in annotators:
        return annotators[user]
    if isinstance(completed_by, dict):
        email = completed_by.get("email")
        if isinstance(email, str) and email.strip():
            return email.strip()
        names = [completed_by.get("first_name"), completed_by.get("last_name")]
        full = " ".join(name.strip() for name in names if isinstance(name, str) and name.strip())
        if full:
            return full
        completed_by = completed_by.get("id")
    if isinstance(completed_by, bool):
        return None
    if isinstance(completed_by, int):
        return f"label-studio-user-{completed_by}"
    if isinstance(completed_by, str) and completed_by.strip():
        return completed_by.strip()
    return None


@dataclass(frozen=True, slots=True)
class LabelStudioAnnotation:
    """One annotation of an export as a review.

    ``record.source`` holds Label Studio's annotation id and user id (where the export gives
    them); ``at`` is where the annotation stands in the file (``task 3, annotation 1``);
    ``named`` says the reviewer's name came from ``annotators`` rather than from the export;
    ``dropped_grades`` counts the grades of a rejection that were left out.
    """

    record: ReviewRecord
    at: str
    named: bool = False
    dropped_grades: int = 0


def read_annotations(
    path: Path | str,
    *,
    annotators: Mapping[int, str] | None = None,
    queue: Mapping[str, Collection[str]] | None = None,
) -> list[LabelStudioAnnotation]:
    """Every annotation of a Label Studio export (JSON or JSON-MIN) as a review.

    The project must use ``labeling_config`` and tasks from ``export_tasks``. One review per
    annotation, so several annotators of one task give several reviews. The reviewer is named
    by ``reviewer_name`` (``annotators`` maps Label Studio user ids to names); ``reviewed_at``
    is the annotation's ``updated_at`` (else ``created_at``); the question is ``None`` when the
    annotator left it empty or unchanged. Grades hold the documents the annotator graded; an
    accepted item with none is a problem (as in ``evalkit review grade``), and a rejection's
    grades are dropped and counted (a reviewer who rejects leaves the suggested grades the
    task was pre-annotated with). Cancelled annotations and unannotated tasks are skipped.
    ``queue`` (item id -> its document ids), when given, is what the annotations must name:
    an item it lacks or a document its item lacks is a problem too, at the annotation's
    position. Any problem raises one ``InputError`` listing all of them; nothing is returned
    then.
    """
    file = Path(path)
    problems = ProblemLog()
    read = list(_read_export(file, problems, annotators or {}))
    if queue is not None:
        for annotation in read:
            _check_queued(annotation.record, queue, at=annotation.at, file=file, problems=problems)
    if problems:
        raise _export_error(problems, file)
    return read


def import_annotations(
    path: Path | str,
    *,
    annotators: Mapping[int, str] | None = None,
    queue: Mapping[str, Collection[str]] | None = None,
) -> list[ReviewRecord]:
    """The reviews ``read_annotations`` reads from a Label Studio export, in file order."""
    return [
        annotation.record
        for annotation in read_annotations(path, annotators=annotators, queue=queue)
    ]


def _check_queued(
    record: ReviewRecord,
    queue: Mapping[str, Collection[str]],
    *,
    at: str,
    file: Path,
    problems: ProblemLog,
) -> None:
    known = queue.get(record.item_id)
    if known is None:
        problems.add(
            f"item {record.item_id!r} is not in the review queue of this store",
            path=file,
            field=f"{at}, item_id",
        )
        return
    for doc_id in sorted(set(record.grades) - set(known)):
        problems.add(
            f"item {record.item_id} has no document {unknown_documents([doc_id], known)}",
            path=file,
            field=f"{at}, result",
        )


def _export_error(problems: ProblemLog, file: Path) -> InputError:
    plural = "" if problems.total == 1 else "s"
    lines = [f"invalid Label Studio export, {problems.total} problem{plural}:"]
    lines.extend(f"  {problem}" for problem in problems.problems[:_SUMMARY_PROBLEMS])
    if problems.total > _SUMMARY_PROBLEMS:
        lines.append(
            f"  ... and {problems.total - _SUMMARY_PROBLEMS} more (`-o json` lists every problem"
            " in 'problems')"
        )
    lines.append(
        "Nothing was imported. Export the project again as JSON from Label Studio, with the "
        "labeling config and tasks evalkit wrote, and import again."
    )
    return InputError("\n".join(lines), path=str(file), problems=list(problems.problems))


def _read_export(
    file: Path, problems: ProblemLog, annotators: Mapping[int, str]
) -> Iterator[LabelStudioAnnotation]:
    """Each annotation's record with where it stands (``task 3, annotation 1``)."""
    tasks = _load_json(file, problems)
    if tasks is None:
        return
    if not isinstance(tasks, list):
        problems.add(
            f"expected a list of tasks [...] (Label Studio's JSON or JSON-MIN export), got "
            f"{describe_value(tasks)}",
            path=file,
        )
        return
    first = next((task for task in tasks if isinstance(task, dict)), {})
    minimal = (
        "annotations" not in first
        and "data" not in first
        and ("item_id" in first or "annotator" in first)
    )
    for number, task in enumerate(tasks, start=1):
        where = f"task {number}"
        if not isinstance(task, dict):
            _expected(problems, file, where, "a task object {...}", task)
        elif minimal:
            yield from _read_min_record(task, where, file, problems, annotators)
        else:
            yield from _read_task(task, where, file, problems, annotators)


def _load_json(file: Path, problems: ProblemLog) -> object:
    if not file.is_file():
        what = "is a directory, not a file" if file.is_dir() else "does not exist"
        problems.add(f"{what}; check the path", path=file)
        return None
    try:
        raw = file.read_bytes()
    except OSError as error:
        problems.add(f"cannot be read ({error.strerror}); check its permissions", path=file)
        return None
    try:
        text = raw.removeprefix(b"\xef\xbb\xbf").decode("utf-8")
    except UnicodeDecodeError as error:
        problems.add(f"is not valid UTF-8 (byte {error.start + 1}); export it again", path=file)
        return None
    try:
        return depth_checked(json.loads, text)
    except TooDeepError:
        problems.add("nests arrays and objects too deeply to be a Label Studio export", path=file)
    except json.JSONDecodeError as error:
        problems.add(
            f"not valid JSON ({error.msg} at column {error.colno}); export the project as JSON "
            "from Label Studio",
            path=file,
            line=error.lineno,
        )
    return None


@dataclass(frozen=True, slots=True)
class _TaskData:
    """What the import needs from a task's data: the item, its query and its slots."""

    item_id: str
    query: str
    doc_ids: Mapping[int, str]


def _task_data(
    data: Mapping[str, object], where: str, file: Path, problems: ProblemLog
) -> _TaskData | None:
    before = problems.total
    item_id = data.get("item_id")
    query = data.get(QUERY_OBJECT, "")
    if not isinstance(item_id, str) or not item_id:
        item_id = ""
        problems.add(
            f"expected the evalkit item id (a string), got {describe_value(item_id)}; was the "
            "task exported by `evalkit review export`?",
            path=file,
            field=f"{where}, data.item_id",
        )
    if not isinstance(query, str):
        query = ""
        _expected(
            problems, file, f"{where}, data.{QUERY_OBJECT}", "the query text (a string)", query
        )
    doc_ids: dict[int, str] = {}
    for key, value in data.items():
        match = re.fullmatch(r"doc_(\d+)_id", key)
        if match is None:
            continue
        field = f"{where}, data.{_shown_name(key)}"
        slot = _slot_number(match.group(1))
        if slot is None:
            problems.add(
                f"names a document slot numbered with {len(match.group(1))} digits, which "
                "no export writes; was the task exported by `evalkit review export`?",
                path=file,
                field=field,
            )
        elif not isinstance(value, str):
            _expected(problems, file, field, "a document id (a string)", value)
        elif value:
            doc_ids[slot] = value
    if problems.total > before:
        return None
    return _TaskData(item_id=item_id, query=query, doc_ids=doc_ids)


def _read_task(
    task: Mapping[str, object],
    where: str,
    file: Path,
    problems: ProblemLog,
    annotators: Mapping[int, str],
) -> Iterator[LabelStudioAnnotation]:
    data = task.get("data")
    if not isinstance(data, dict):
        _expected(problems, file, f"{where}, data", "the task's data object {...}", data)
        return
    annotations = task.get("annotations", [])
    if not isinstance(annotations, list):
        _expected(problems, file, f"{where}, annotations", "a list of annotations", annotations)
        return
    live = [
        (number, annotation)
        for number, annotation in enumerate(annotations, start=1)
        if not (isinstance(annotation, dict) and _cancelled(annotation))
    ]
    if not live:
        return
    context = _task_data(data, where, file, problems)
    for number, annotation in live:
        at = f"{where}, annotation {number}"
        if not isinstance(annotation, dict):
            _expected(problems, file, at, "an annotation object {...}", annotation)
            continue
        result = annotation.get("result")
        if not isinstance(result, list):
            problems.add(
                "missing: an annotation's 'result' lists what the annotator chose"
                if result is None
                else f"expected a list of results, got {describe_value(result)}",
                path=file,
                field=f"{at}, result",
            )
            continue
        read = _signed_record(
            context,
            _result_values(result, at, file, problems),
            signer=(annotation.get("completed_by"), f"{at}, completed_by"),
            stamped=annotation,
            annotation_id=(annotation.get("id"), f"{at}, id"),
            at=at,
            file=file,
            problems=problems,
            annotators=annotators,
        )
        if read is not None:
            yield read


def _expected(problems: ProblemLog, file: Path, field: str, wanted: str, value: object) -> None:
    problems.add(f"expected {wanted}, got {describe_value(value)}", path=file, field=field)


def _signed_record(
    context: _TaskData | None,
    values: _Values | None,
    *,
    signer: tuple[object, str],
    stamped: Mapping[str, object],
    annotation_id: tuple[object, str],
    at: str,
    file: Path,
    problems: ProblemLog,
    annotators: Mapping[int, str],
) -> LabelStudioAnnotation | None:
    """The review of one annotation: its values (None: they were unreadable) signed by
    ``signer`` (the exported user and where it stands) at the time ``stamped`` gives, with
    Label Studio's ``annotation_id`` (its value and where it stands). The signer, time and
    id are checked even when the values are unreadable, so every problem is named."""
    who, who_at = signer
    reviewer = _reviewer(who, who_at, file, problems, annotators)
    reviewed_at = _reviewed_at(stamped, at, file, problems)
    label_id, label_id_at = annotation_id
    source_id = _id_text(label_id)
    if label_id is not None and source_id is None:
        _expected(problems, file, label_id_at, "Label Studio's annotation id (a number)", label_id)
    if values is None:
        return None
    made = _record(
        context,
        values,
        reviewer=reviewer,
        reviewed_at=reviewed_at,
        at=at,
        file=file,
        problems=problems,
    )
    if made is None or (label_id is not None and source_id is None):
        return None
    record, dropped = made
    user = user_id(who)
    source = ReviewSource(
        LABEL_STUDIO,
        annotation_id=source_id,
        user_id=None if user is None else str(user),
    )
    return LabelStudioAnnotation(
        replace(record, source=source),
        at,
        named=user is not None and user in annotators,
        dropped_grades=dropped,
    )


def _id_text(value: object) -> str | None:
    """Label Studio's id of an annotation (a number) as stored; None when it has none or
    ``value`` is not one (NaN, a boolean, an empty text)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def _cancelled(annotation: Mapping[str, object]) -> bool:
    return annotation.get("was_cancelled") is True or annotation.get("skipped") is True


_Values = dict[str, tuple[str, str, list[str]]]
"""Control name -> (where the control is named, where its value is: for errors; the strings
chosen or written)."""


def _result_values(
    result: list[object], at: str, file: Path, problems: ProblemLog
) -> _Values | None:
    """The chosen or written strings of each control of one annotation's result list."""
    before = problems.total
    values: _Values = {}
    for index, region in enumerate(result, start=1):
        field = f"{at}, result {index}"
        if not isinstance(region, dict):
            _expected(problems, file, field, "a result object {...}", region)
            continue
        name = region.get("from_name")
        kind = region.get("type")
        value = region.get("value")
        if not isinstance(name, str):
            _expected(problems, file, f"{field}, from_name", "a control name", name)
            continue
        if not isinstance(value, dict):
            _expected(problems, file, f"{field}, value", "a value object {...}", value)
            continue
        key = "text" if kind == "textarea" else "choices"
        strings = value.get(key)
        if not isinstance(strings, list) or not all(isinstance(s, str) for s in strings):
            _expected(problems, file, f"{field}, value.{key}", "a list of strings", strings)
            continue
        if name in values:
            problems.add(
                f"the control '{name}' appears twice in one annotation",
                path=file,
                field=f"{field}, from_name",
            )
            continue
        values[name] = (f"{field}, from_name", f"{field}, value.{key}", list(strings))
    return None if problems.total > before else values


def _reviewer(
    completed_by: object,
    field: str,
    file: Path,
    problems: ProblemLog,
    annotators: Mapping[int, str],
) -> str | None:
    name = reviewer_name(completed_by, annotators)
    if name is None:
        problems.add(
            f"expected the annotator (a user id, an email or a user object), got "
            f"{describe_value(completed_by)}",
            path=file,
            field=field,
        )
    return name


def _reviewed_at(
    annotation: Mapping[str, object], at: str, file: Path, problems: ProblemLog
) -> datetime | None:
    key = "updated_at" if annotation.get("updated_at") is not None else "created_at"
    stamp = annotation.get(key)
    if isinstance(stamp, str):
        try:
            when = datetime.fromisoformat(stamp)
        except ValueError:
            pass
        else:
            when = when if when.tzinfo is not None else when.replace(tzinfo=UTC)
            now = datetime.now(UTC)
            if when > now + CLOCK_SKEW:
                # The latest review of an item is the one that counts: a review dated ahead
                # would supersede every review made until then.
                problems.add(
                    f"{stamp} is in the future (this machine's clock reads "
                    f"{now:%Y-%m-%dT%H:%M:%SZ}); fix the time, or the clock of what wrote it",
                    path=file,
                    field=f"{at}, {key}",
                )
                return None
            return when
    _expected(
        problems, file, f"{at}, {key}", "an ISO 8601 time such as 2026-03-09T22:16:08Z", stamp
    )
    return None


def _record(
    context: _TaskData | None,
    values: _Values,
    *,
    reviewer: str | None,
    reviewed_at: datetime | None,
    at: str,
    file: Path,
    problems: ProblemLog,
) -> tuple[ReviewRecord, int] | None:
    """The review one annotation's values make and how many grades of a rejection it
    dropped, or ``None`` after recording why not.

    Values are checked even when the task's data or the annotation's other fields are broken
    (``None`` here), so that one pass lists every problem.
    """
    before = problems.total
    verdict: Verdict | None = None
    grades: dict[str, int] = {}
    question: str | None = None
    note = ""
    for name, (control_field, field, strings) in values.items():
        if name == VERDICT_CONTROL:
            verdict = _verdict(strings, field, file, problems)
        elif name == QUESTION_CONTROL:
            edited = "\n".join(strings).strip()
            original = context.query.strip() if context is not None else ""
            question = edited if edited and edited != original else None
        elif name == NOTE_CONTROL:
            note = "\n".join(strings).strip()
        elif (match := _GRADE_CONTROL.fullmatch(name)) is not None:
            grade = _grade(strings, field, file, problems)
            slot = _slot_number(match.group(1))
            if slot is None:
                problems.add(
                    f"grades a document slot numbered with {len(match.group(1))} digits, "
                    "which no task holds; the project must use evalkit's labeling config",
                    path=file,
                    field=control_field,
                )
                continue
            if context is None:
                continue
            doc_id = context.doc_ids.get(slot)
            if doc_id is None:
                problems.add(
                    f"grades document slot {slot + 1}, which holds no document of item "
                    f"{context.item_id!r}",
                    path=file,
                    field=control_field,
                )
            elif grade is not None:
                grades[doc_id] = grade
        else:
            problems.add(
                f"unknown control '{name}'; the project must use evalkit's labeling config "
                f"(controls {VERDICT_CONTROL}, {QUESTION_CONTROL}, {NOTE_CONTROL}, grade_<n>)",
                path=file,
                field=control_field,
            )
    if VERDICT_CONTROL not in values:
        problems.add(
            "missing: the annotation has no accept/reject choice",
            path=file,
            field=f"{at}, result ({VERDICT_CONTROL})",
        )
    if (
        verdict is Verdict.accept
        and not grades
        and context is not None
        and problems.total == before
    ):
        problems.add(
            "an accepted item needs at least one graded document (as `evalkit review grade` "
            "asks); grade a document or choose reject",
            path=file,
            field=f"{at}, result (grade_<n>)",
        )
    if (
        problems.total > before
        or context is None
        or verdict is None
        or reviewer is None
        or reviewed_at is None
    ):
        return None
    dropped = len(grades) if verdict is Verdict.reject else 0
    record = ReviewRecord(
        item_id=context.item_id,
        reviewer=reviewer,
        verdict=verdict,
        grades={} if verdict is Verdict.reject else grades,
        reviewed_at=reviewed_at,
        question=question,
        note=note,
    )
    return record, dropped


def _single(strings: list[str], field: str, file: Path, problems: ProblemLog) -> str | None:
    if len(strings) != 1:
        problems.add(f"expected exactly one choice, got {len(strings)}", path=file, field=field)
        return None
    return strings[0]


def _verdict(strings: list[str], field: str, file: Path, problems: ProblemLog) -> Verdict | None:
    chosen = _single(strings, field, file, problems)
    if chosen is None:
        return None
    try:
        return Verdict(chosen.strip().lower())
    except ValueError:
        problems.add(f"expected 'accept' or 'reject', got {chosen!r}", path=file, field=field)
        return None


_GRADE_BY_TEXT = {label: grade for grade, label in GRADE_LABELS.items()} | {
    str(grade): grade for grade in REVIEW_GRADES
}


def _grade(strings: list[str], field: str, file: Path, problems: ProblemLog) -> int | None:
    chosen = _single(strings, field, file, problems)
    if chosen is None:
        return None
    grade = _GRADE_BY_TEXT.get(chosen.strip())
    if grade is None:
        allowed = ", ".join(str(grade) for grade in REVIEW_GRADES)
        problems.add(f"grade {chosen!r} is not one of {allowed}", path=file, field=field)
    return grade


def _read_min_record(
    record: Mapping[str, object],
    where: str,
    file: Path,
    problems: ProblemLog,
    annotators: Mapping[int, str],
) -> Iterator[LabelStudioAnnotation]:
    """One JSON-MIN record: the task's data and each control's answer as top-level keys."""
    controls = {
        key: value
        for key, value in record.items()
        if key in (VERDICT_CONTROL, QUESTION_CONTROL, NOTE_CONTROL)
        or _GRADE_CONTROL.fullmatch(key) is not None
    }
    if not controls and record.get("annotator") is None:
        return  # a task nobody annotated
    at = f"{where} (JSON-MIN)"
    context = _task_data(record, at, file, problems)
    values: _Values = {}
    for name, value in controls.items():
        field = f"{at}, {_shown_name(name)}"
        strings = _min_strings(value)
        if strings is None:
            _expected(problems, file, field, "a choice or a text", value)
            continue
        values[name] = (field, field, strings)
    min_record = _signed_record(
        context,
        values if len(values) == len(controls) else None,
        signer=(record.get("annotator"), f"{at}, annotator"),
        stamped=record,
        annotation_id=(record.get("annotation_id"), f"{at}, annotation_id"),
        at=at,
        file=file,
        problems=problems,
        annotators=annotators,
    )
    if min_record is not None:
        yield min_record


def _min_strings(value: object) -> list[str] | None:
    """JSON-MIN writes one choice or text as a bare string, several as objects."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        value = [value]
    if isinstance(value, list):
        strings: list[str] = []
        for part in value:
            if isinstance(part, str):
                strings.append(part)
                continue
            if not isinstance(part, dict):
                return None
            inner = part.get("choices", part.get("text"))
            if not isinstance(inner, list) or not all(isinstance(s, str) for s in inner):
                return None
            strings.extend(inner)
        return strings
    return None
