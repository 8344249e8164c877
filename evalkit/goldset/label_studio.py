"""Review-queue items to Label Studio tasks, and Label Studio annotations back to reviews.

The functions are pure: they neither read nor write the store. Usage: docs/goldsets.md,
"Label Studio".
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from evalkit.clock import CLOCK_SKEW
from evalkit.errors import ConfigError, InputError
from evalkit.goldset._json_array import JsonArrayError, json_array_elements
from evalkit.goldset._reading import ProblemLog, describe_value
from evalkit.goldset.model import unknown_documents
from evalkit.records.review import (
    REVIEW_GRADES,
    ReviewItem,
    ReviewRecord,
    ReviewSource,
    Verdict,
    reviewer_problem,
)

__all__ = [
    "GRADE_LABELS",
    "LABEL_STUDIO",
    "Annotators",
    "LabelStudioAnnotation",
    "annotator_key",
    "export_tasks",
    "import_annotations",
    "labeling_config",
    "read_annotations",
    "reviewer_name",
    "user_email",
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
_USER_ID = re.compile(r"[0-9]{1,18}")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+")
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

    Use at least as many ``max_documents`` slots as the item with the most documents has.
    Layout: docs/goldsets.md, "Label Studio".
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

    Slots an item does not use hold empty strings (Label Studio wants every key the config
    names). ``max_documents`` defaults to the most documents any item has; an item with more
    is a ``ConfigError``. Task contents: docs/goldsets.md, "Label Studio".
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


Annotators = Mapping[int | str, str]
"""Names to sign Label Studio users with (``--annotator``), by user id or by email (in lower
case)."""


def user_id(completed_by: object) -> int | None:
    """Label Studio's user id in a ``completed_by`` (or JSON-MIN ``annotator``): the number
    itself (or its digits, as older converters write it), or a user object's ``id``; ``None``
    when only an email or a name is exported."""
    if isinstance(completed_by, dict):
        completed_by = completed_by.get("id")
    if isinstance(completed_by, int) and not isinstance(completed_by, bool):
        return completed_by
    if isinstance(completed_by, str) and _USER_ID.fullmatch(completed_by.strip()):
        return int(completed_by)
    return None


def user_email(completed_by: object, created_username: object = None) -> str | None:
    """The annotator's email: a user object's ``email``, or a ``completed_by`` (JSON-MIN
    ``annotator``) that is no user id, which Label Studio exports as the email; else the
    email in the annotation's ``created_username`` (``"Ana Ng ana@example.com, 3"``, which
    the JSON export writes beside a numeric ``completed_by``) when it is the same user's.
    ``None`` when the export gives no email."""
    email = completed_by.get("email") if isinstance(completed_by, dict) else completed_by
    if isinstance(email, str) and email.strip() and user_id(email) is None:
        return email.strip()
    if isinstance(created_username, str):
        named, _, number = created_username.rpartition(",")
        words = named.split()
        user = user_id(completed_by)
        if (
            words
            and _EMAIL.fullmatch(words[-1])
            and user is not None
            and number.strip() == str(user)
        ):
            return words[-1]
    return None


def annotator_key(value: str) -> int | str | None:
    """What ``--annotator`` names a Label Studio user by: a user id, or an email (compared in
    lower case); ``None`` when ``value`` is neither."""
    user = user_id(value)
    if user is not None:
        return user
    value = value.strip()
    return value.lower() if _EMAIL.fullmatch(value) else None


def _named_by(annotators: Annotators, user: int | None, email: str | None) -> list[int | str]:
    """The keys of ``annotators`` that name the user with id ``user`` and email ``email``."""
    keys: list[int | str] = [] if user is None else [user]
    if email is not None:
        keys.append(email.lower())
    return [key for key in keys if key in annotators]


def reviewer_name(
    completed_by: object, annotators: Annotators | None = None, created_username: object = None
) -> str | None:
    """The reviewer's name for a Label Studio ``completed_by`` (or JSON-MIN ``annotator``).

    A user whose id or email ``annotators`` names is signed with that name, however the
    export gives the user. Otherwise the user's email (``user_email``: a user object's, the
    JSON-MIN email, the one in ``created_username``), else a user object's first and last
    name, else ``label-studio-user-<id>``. ``None`` when the value names nobody.
    """
    user = user_id(completed_by)
    email = user_email(completed_by, created_username)
    named = _named_by(annotators or {}, user, email)
    if annotators is not None and named:
        return annotators[named[0]]
    if email is not None:
        return email
    if isinstance(completed_by, dict):
        names = [completed_by.get("first_name"), completed_by.get("last_name")]
        full = " ".join(name.strip() for name in names if isinstance(name, str) and name.strip())
        if full:
            return full
    return None if user is None else f"label-studio-user-{user}"


@dataclass(frozen=True, slots=True)
class LabelStudioAnnotation:
    """One annotation of an export as a review.

    ``record.source`` holds Label Studio's annotation id and user id (where the export gives
    them); ``at`` is where the annotation stands in the file (``task 3, annotation 1``);
    ``named_by`` is the key of ``annotators`` (user id or email) the reviewer's name came
    from, ``None`` when it came from the export; ``dropped_grades`` counts the grades of a
    rejection that were left out.
    """

    record: ReviewRecord
    at: str
    named_by: int | str | None = None
    dropped_grades: int = 0

    @property
    def named(self) -> bool:
        """Whether ``annotators`` named the reviewer."""
        return self.named_by is not None


def read_annotations(
    path: Path | str,
    *,
    annotators: Annotators | None = None,
    queue: Mapping[str, Collection[str]] | None = None,
) -> list[LabelStudioAnnotation]:
    """Every annotation of a Label Studio export (JSON or JSON-MIN) as a review.

    The project must use ``labeling_config`` and tasks from ``export_tasks``; one review per
    annotation, named by ``reviewer_name``. ``queue`` (item id -> its document ids), when
    given, is what the annotations must name. Any problem raises one ``InputError`` listing
    all of them; nothing is returned then. A rejection's grades are dropped and counted;
    cancelled annotations and unannotated tasks are skipped; ``reviewed_at`` is the
    annotation's ``updated_at`` (else ``created_at``). Rules: docs/goldsets.md, "Label Studio".
    """
    reader = _ExportReader(Path(path), ProblemLog(), annotators or {})
    read: list[LabelStudioAnnotation] = []
    for annotation in reader.annotations():
        if queue is not None:
            reader.check_queued(annotation.record, queue, at=annotation.at)
        # Nothing is returned once a problem is found: only the problems are kept from then.
        if reader.problems:
            read.clear()
        else:
            read.append(annotation)
    if reader.problems:
        raise reader.error()
    return read


def import_annotations(
    path: Path | str,
    *,
    annotators: Annotators | None = None,
    queue: Mapping[str, Collection[str]] | None = None,
) -> list[ReviewRecord]:
    """The reviews ``read_annotations`` reads from a Label Studio export, in file order."""
    return [
        annotation.record
        for annotation in read_annotations(path, annotators=annotators, queue=queue)
    ]


@dataclass(frozen=True, slots=True)
class _TaskData:
    """What the import needs from a task's data: the item, its query and its slots."""

    item_id: str
    query: str
    doc_ids: Mapping[int, str]


@dataclass(frozen=True, slots=True)
class _AnnotationKeys:
    """The keys an export format gives an annotation's annotator and Label Studio id."""

    signer: str
    annotation_id: str


_JSON_KEYS = _AnnotationKeys(signer="completed_by", annotation_id="id")
_JSON_MIN_KEYS = _AnnotationKeys(signer="annotator", annotation_id="annotation_id")


_UNNUMBERED_SLOT: Mapping[str, str] = {
    "names": "which no export writes; was the task exported by `evalkit review export`?",
    "grades": "which no task holds; the project must use evalkit's labeling config",
}
"""Why no slot is numbered with that many digits, by what the key does with the slot."""

_Values = dict[str, tuple[str, str, list[str]]]
"""Control name -> (where the control is named, where its value is: for errors; the strings
chosen or written)."""


@dataclass(frozen=True, slots=True)
class _ExportReader:
    """Reads one export ``file``, recording every problem in ``problems`` (each at the file)
    and naming reviewers by ``annotators``."""

    file: Path
    problems: ProblemLog
    annotators: Annotators

    def add(self, message: str, *, field: str | None = None, line: int | None = None) -> None:
        """Record one problem of the export."""
        self.problems.add(message, path=self.file, line=line, field=field)

    def expected(self, field: str, wanted: str, value: object) -> None:
        """Record that ``field`` holds ``value`` where ``wanted`` belongs."""
        self.add(f"expected {wanted}, got {describe_value(value)}", field=field)

    def error(self) -> InputError:
        """The one error that lists the problems recorded (the first few in its message)."""
        problems = self.problems
        plural = "" if problems.total == 1 else "s"
        lines = [f"invalid Label Studio export, {problems.total:,} problem{plural}:"]
        lines.extend(f"  {problem}" for problem in problems.problems[:_SUMMARY_PROBLEMS])
        if problems.total > _SUMMARY_PROBLEMS:
            listed = (
                "every problem"
                if problems.total <= len(problems.problems)
                else f"the first {len(problems.problems):,}"
            )
            lines.append(
                f"  ... and {problems.total - _SUMMARY_PROBLEMS:,} more (`-o json` lists "
                f"{listed} in 'problems')"
            )
        lines.append(
            "Nothing was imported. Export the project again as JSON from Label Studio, with the "
            "labeling config and tasks evalkit wrote, and import again."
        )
        return InputError("\n".join(lines), path=str(self.file), problems=list(problems.problems))

    def check_queued(
        self, record: ReviewRecord, queue: Mapping[str, Collection[str]], *, at: str
    ) -> None:
        """Record a problem for an item or a document of ``record`` that ``queue`` lacks."""
        known = queue.get(record.item_id)
        if known is None:
            self.add(
                f"item {record.item_id!r} is not in the review queue of this store",
                field=f"{at}, item_id",
            )
            return
        for doc_id in sorted(set(record.grades) - set(known)):
            self.add(
                f"item {record.item_id} has no document {unknown_documents([doc_id], known)}",
                field=f"{at}, result",
            )

    def annotations(self) -> Iterator[LabelStudioAnnotation]:
        """Each annotation's record with where it stands (``task 3, annotation 1``), the
        export read a task at a time (``json_array_elements``): a huge export is checked in
        the memory of one task."""
        tasks = self._tasks()
        minimal: bool | None = None
        for number, task in enumerate(tasks, start=1):
            where = f"task {number}"
            if not isinstance(task, dict):
                self.expected(where, "a task object {...}", task)
                continue
            if minimal is None:  # the format is told by the first task
                minimal = (
                    "annotations" not in task
                    and "data" not in task
                    and ("item_id" in task or "annotator" in task)
                )
            if minimal:
                yield from self._read_min_record(task, where)
            else:
                yield from self._read_task(task, where)

    def _tasks(self) -> Iterator[object]:
        """The export's tasks, one at a time; where the file stops being a JSON list of them,
        a problem, and no more tasks."""
        file = self.file
        if not file.is_file():
            what = "is a directory, not a file" if file.is_dir() else "does not exist"
            self.add(f"{what}; check the path")
            return
        try:
            yield from json_array_elements(file)
        except OSError as error:
            self.add(f"cannot be read ({error.strerror}); check its permissions")
        except JsonArrayError as error:
            if error.problem == "not_array":
                self.add(
                    "expected a list of tasks [...] (Label Studio's JSON or JSON-MIN export), "
                    f"got {describe_value(error.value)}"
                )
            elif error.problem == "not_utf8":
                self.add(f"{error.detail}; export it again")
            elif error.problem == "too_deep":
                self.add("nests arrays and objects too deeply to be a Label Studio export")
            elif error.problem == "too_large":
                self.add(f"{error.detail}, more than any task of an export", line=error.line)
            else:
                self.add(
                    f"not valid JSON ({error.detail}); export the project as JSON from Label "
                    "Studio",
                    line=error.line,
                )

    def _task_data(self, data: Mapping[str, object], where: str) -> _TaskData | None:
        before = self.problems.total
        item_id = data.get("item_id")
        query = data.get(QUERY_OBJECT, "")
        if not isinstance(item_id, str) or not item_id:
            self.add(
                f"expected the evalkit item id (a string), got {describe_value(item_id)}; was "
                "the task exported by `evalkit review export`?",
                field=f"{where}, data.item_id",
            )
            item_id = ""
        if not isinstance(query, str):
            self.expected(f"{where}, data.{QUERY_OBJECT}", "the query text (a string)", query)
            query = ""
        doc_ids: dict[int, str] = {}
        for key, value in data.items():
            match = re.fullmatch(r"doc_(\d+)_id", key)
            if match is None:
                continue
            field = f"{where}, data.{_shown_name(key)}"
            slot = self._slot(match.group(1), field, "names")
            if slot is None:
                continue
            if not isinstance(value, str):
                self.expected(field, "a document id (a string)", value)
            elif value:
                doc_ids[slot] = value
        if self.problems.total > before:
            return None
        return _TaskData(item_id=item_id, query=query, doc_ids=doc_ids)

    def _read_task(self, task: Mapping[str, object], where: str) -> Iterator[LabelStudioAnnotation]:
        data = task.get("data")
        if not isinstance(data, dict):
            self.expected(f"{where}, data", "the task's data object {...}", data)
            return
        annotations = task.get("annotations", [])
        if not isinstance(annotations, list):
            self.expected(f"{where}, annotations", "a list of annotations", annotations)
            return
        live = [
            (number, annotation)
            for number, annotation in enumerate(annotations, start=1)
            if not (isinstance(annotation, dict) and _cancelled(annotation))
        ]
        if not live:
            return
        context = self._task_data(data, where)
        for number, annotation in live:
            at = f"{where}, annotation {number}"
            if not isinstance(annotation, dict):
                self.expected(at, "an annotation object {...}", annotation)
                continue
            result = annotation.get("result")
            if not isinstance(result, list):
                self.add(
                    "missing: an annotation's 'result' lists what the annotator chose"
                    if result is None
                    else f"expected a list of results, got {describe_value(result)}",
                    field=f"{at}, result",
                )
                continue
            values = self._result_values(result, at)
            read = self._signed_record(context, values, annotation, _JSON_KEYS, at=at)
            if read is not None:
                yield read

    def _read_min_record(
        self, record: Mapping[str, object], where: str
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
        context = self._task_data(record, at)
        values: _Values = {}
        for name, value in controls.items():
            field = f"{at}, {_shown_name(name)}"
            strings = _min_strings(value)
            if strings is None:
                self.expected(field, "a choice or a text", value)
                continue
            values[name] = (field, field, strings)
        readable = values if len(values) == len(controls) else None
        min_record = self._signed_record(context, readable, record, _JSON_MIN_KEYS, at=at)
        if min_record is not None:
            yield min_record

    def _signed_record(
        self,
        context: _TaskData | None,
        values: _Values | None,
        annotation: Mapping[str, object],
        keys: _AnnotationKeys,
        *,
        at: str,
    ) -> LabelStudioAnnotation | None:
        """The review of one ``annotation`` (standing ``at``): its values (None: they were
        unreadable) signed by its annotator at its time, with Label Studio's annotation id,
        both under the ``keys`` of its export format. The signer, time and id are checked
        even when the values are unreadable, so every problem is named."""
        who = annotation.get(keys.signer)
        created_username = annotation.get("created_username")
        reviewer, named_by = self._reviewer(annotation, keys.signer, at)
        reviewed_at = self._reviewed_at(annotation, at)
        label_id = annotation.get(keys.annotation_id)
        source_id = _id_text(label_id)
        if label_id is not None and source_id is None:
            self.expected(
                f"{at}, {keys.annotation_id}", "Label Studio's annotation id (a number)", label_id
            )
        if values is None:
            return None
        made = self._record(context, values, reviewer=reviewer, reviewed_at=reviewed_at, at=at)
        if made is None or (label_id is not None and source_id is None):
            return None
        record, dropped = made
        user = user_id(who)
        source = ReviewSource(
            LABEL_STUDIO,
            annotation_id=source_id,
            user_id=None if user is None else str(user),
            user_email=user_email(who, created_username),
        )
        return LabelStudioAnnotation(
            replace(record, source=source), at, named_by=named_by, dropped_grades=dropped
        )

    def _result_values(self, result: list[object], at: str) -> _Values | None:
        """The chosen or written strings of each control of one annotation's result list."""
        before = self.problems.total
        values: _Values = {}
        for index, region in enumerate(result, start=1):
            field = f"{at}, result {index}"
            if not isinstance(region, dict):
                self.expected(field, "a result object {...}", region)
                continue
            name = region.get("from_name")
            kind = region.get("type")
            value = region.get("value")
            if not isinstance(name, str):
                self.expected(f"{field}, from_name", "a control name", name)
                continue
            if not isinstance(value, dict):
                self.expected(f"{field}, value", "a value object {...}", value)
                continue
            key = "text" if kind == "textarea" else "choices"
            strings = value.get(key)
            if not isinstance(strings, list) or not all(isinstance(s, str) for s in strings):
                self.expected(f"{field}, value.{key}", "a list of strings", strings)
                continue
            if name in values:
                self.add(
                    f"the control '{name}' appears twice in one annotation",
                    field=f"{field}, from_name",
                )
                continue
            values[name] = (f"{field}, from_name", f"{field}, value.{key}", list(strings))
        return None if self.problems.total > before else values

    def _reviewer(
        self, annotation: Mapping[str, object], key: str, at: str
    ) -> tuple[str | None, int | str | None]:
        """The name of the annotator ``annotation`` gives under ``key``, and the key of
        ``annotators`` that named them (``None``: named by the export)."""
        who = annotation.get(key)
        field = f"{at}, {key}"
        if key not in annotation:
            self.add(
                f"missing: the annotation does not say who made it ('{key}': a Label Studio "
                "user id, an email or a user object)",
                field=field,
            )
            return None, None
        created_username = annotation.get("created_username")
        name = reviewer_name(who, self.annotators, created_username)
        if name is None:
            self.add(
                f"expected the annotator (a user id, an email or a user object), got "
                f"{describe_value(who)}",
                field=field,
            )
            return None, None
        problem = reviewer_problem(name)
        if problem is not None:
            self.add(f"cannot sign the review: {problem}", field=field)
            return None, None
        named = _named_by(self.annotators, user_id(who), user_email(who, created_username))
        if len(named) > 1 and self.annotators[named[0]] != self.annotators[named[1]]:
            self.add(
                f"--annotator {named[0]}={self.annotators[named[0]]} and --annotator "
                f"{named[1]}={self.annotators[named[1]]} name the same Label Studio user; "
                "give one name",
                field=field,
            )
            return None, None
        return name, named[0] if named else None

    def _reviewed_at(self, annotation: Mapping[str, object], at: str) -> datetime | None:
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
                    # The latest review of an item is the one that counts: a review dated
                    # ahead would supersede every review made until then.
                    self.add(
                        f"{stamp} is in the future (this machine's clock reads "
                        f"{now:%Y-%m-%dT%H:%M:%SZ}); fix the time, or the clock of what wrote it",
                        field=f"{at}, {key}",
                    )
                    return None
                return when
        self.expected(f"{at}, {key}", "an ISO 8601 time such as 2026-03-09T22:16:08Z", stamp)
        return None

    def _record(
        self,
        context: _TaskData | None,
        values: _Values,
        *,
        reviewer: str | None,
        reviewed_at: datetime | None,
        at: str,
    ) -> tuple[ReviewRecord, int] | None:
        """The review one annotation's values make and how many grades of a rejection it
        dropped, or ``None`` after recording why not.

        Values are checked even when the task's data or the annotation's other fields are
        broken (``None`` here), so that one pass lists every problem.
        """
        before = self.problems.total
        verdict: Verdict | None = None
        grades: dict[str, int] = {}
        question: str | None = None
        note = ""
        for name, (control_field, field, strings) in values.items():
            if name == VERDICT_CONTROL:
                verdict = self._verdict(strings, field)
            elif name == QUESTION_CONTROL:
                edited = "\n".join(strings).strip()
                original = context.query.strip() if context is not None else ""
                question = edited if edited and edited != original else None
            elif name == NOTE_CONTROL:
                note = "\n".join(strings).strip()
            elif (match := _GRADE_CONTROL.fullmatch(name)) is not None:
                grade = self._grade(strings, field)
                slot = self._slot(match.group(1), control_field, "grades")
                if slot is None:
                    continue
                if context is None:
                    continue
                doc_id = context.doc_ids.get(slot)
                if doc_id is None:
                    self.add(
                        f"grades document slot {slot + 1}, which holds no document of item "
                        f"{context.item_id!r}",
                        field=control_field,
                    )
                elif grade is not None:
                    grades[doc_id] = grade
            else:
                self.add(
                    f"unknown control '{name}'; the project must use evalkit's labeling config "
                    f"(controls {VERDICT_CONTROL}, {QUESTION_CONTROL}, {NOTE_CONTROL}, grade_<n>)",
                    field=control_field,
                )
        if VERDICT_CONTROL not in values:
            self.add(
                "missing: the annotation has no accept/reject choice",
                field=f"{at}, result ({VERDICT_CONTROL})",
            )
        if (
            verdict is Verdict.accept
            and not grades
            and context is not None
            and self.problems.total == before
        ):
            self.add(
                "an accepted item needs at least one graded document (as `evalkit review "
                "grade` asks); grade a document or choose reject",
                field=f"{at}, result (grade_<n>)",
            )
        if (
            self.problems.total > before
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

    def _slot(self, digits: str, field: str, action: Literal["names", "grades"]) -> int | None:
        """The slot ``digits`` number, or None after recording at ``field`` that its key
        (a task's document id, or a grade control: ``action``) numbers one as none is."""
        slot = _slot_number(digits)
        if slot is None:
            self.add(
                f"{action} a document slot numbered with {len(digits)} digits, "
                + _UNNUMBERED_SLOT[action],
                field=field,
            )
        return slot

    def _single(self, strings: list[str], field: str) -> str | None:
        if len(strings) != 1:
            self.add(f"expected exactly one choice, got {len(strings)}", field=field)
            return None
        return strings[0]

    def _verdict(self, strings: list[str], field: str) -> Verdict | None:
        chosen = self._single(strings, field)
        if chosen is None:
            return None
        try:
            return Verdict(chosen.strip().lower())
        except ValueError:
            self.add(f"expected 'accept' or 'reject', got {chosen!r}", field=field)
            return None

    def _grade(self, strings: list[str], field: str) -> int | None:
        chosen = self._single(strings, field)
        if chosen is None:
            return None
        grade = _GRADE_BY_TEXT.get(chosen.strip())
        if grade is None:
            allowed = ", ".join(str(grade) for grade in REVIEW_GRADES)
            self.add(f"grade {chosen!r} is not one of {allowed}", field=field)
        return grade


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


_GRADE_BY_TEXT = {label: grade for grade, label in GRADE_LABELS.items()} | {
    str(grade): grade for grade in REVIEW_GRADES
}


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
