"""Label Studio exchange: tasks with pre-annotations out, annotations back as reviews.

The annotation and export shapes below are Label Studio's (labelstud.io/guide/task_format,
/guide/predictions). They were checked against label-studio-sdk 2.1.2: its
``LabelInterface`` accepts the labeling config, the predictions ``export_tasks`` writes and the
annotations built here, and ``JSON_MIN_EXPORT`` is what its ``Converter.convert_to_json_min``
writes for ``label_studio_export()``. The SDK is not a dependency (its opencv pin needs
numpy < 2.3, evalkit needs >= 2.4); ``test_sdk_accepts_config_tasks_and_predictions`` runs
where it is installed.
"""

from __future__ import annotations

import copy
import json
import math
import xml.etree.ElementTree as ET
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from evalkit.clock import CLOCK_SKEW
from evalkit.errors import ConfigError, InputError
from evalkit.goldset.label_studio import (
    export_tasks,
    import_annotations,
    labeling_config,
    read_annotations,
    reviewer_name,
    user_email,
    user_id,
)
from evalkit.records import Query
from evalkit.records.review import (
    ReviewDocument,
    ReviewItem,
    ReviewOrigin,
    ReviewRecord,
    ReviewSource,
    Verdict,
)

TIDES = ReviewItem(
    item_id="it-1",
    goldset="demo",
    origin=ReviewOrigin.generated,
    query=Query("q1", "What causes tides?"),
    documents=(
        ReviewDocument("d1", "The moon's gravity causes tides.", 3, "gpt-x"),
        ReviewDocument("d2", "Wind moves water.", 0, "gpt-x"),
        ReviewDocument("d3", "Sun also.", 1, "assessor"),
    ),
    priority=0.7,
    reason="generated",
)
TABLES = ReviewItem(
    item_id="it-2",
    goldset="demo",
    origin=ReviewOrigin.traffic,
    query=Query("q2", "tide tables"),
    documents=(ReviewDocument("d4", "Tables list tide times."),),
)


def choice(name: str, to_name: str, value: str) -> dict[str, object]:
    """A Choices result as the Label Studio editor writes it into an annotation."""
    return {
        "id": f"{name}-r",
        "from_name": name,
        "to_name": to_name,
        "type": "choices",
        "value": {"choices": [value]},
        "origin": "manual",
    }


def text(name: str, value: str) -> dict[str, object]:
    """A TextArea result as the Label Studio editor writes it."""
    return {
        "id": f"{name}-t",
        "from_name": name,
        "to_name": "query",
        "type": "textarea",
        "value": {"text": [value]},
        "origin": "manual",
    }


def annotation(
    annotation_id: int,
    completed_by: object,
    result: list[dict[str, object]],
    *,
    cancelled: bool = False,
    updated_at: str = "2026-11-21T09:05:30.123456Z",
) -> dict[str, object]:
    return {
        "id": annotation_id,
        "completed_by": completed_by,
        "result": result,
        "was_cancelled": cancelled,
        "ground_truth": False,
        "created_at": "2026-11-21T09:00:00.000000Z",
        "updated_at": updated_at,
        "lead_time": 42.5,
        "task": 100,
    }


ANA = annotation(
    501,
    {"id": 3, "email": "ana@example.com", "first_name": "Ana", "last_name": "Ng"},
    [
        choice("verdict", "query", "accept"),
        choice("grade_0", "doc_0", "3"),
        choice("grade_1", "doc_1", "1"),
        choice("grade_2", "doc_2", "0"),
        text("question", "What makes the tides rise and fall?"),
        text("note", "d2 mentions wind only"),
    ],
)
BEN = annotation(
    502,
    4,
    [choice("verdict", "query", "reject"), choice("grade_0", "doc_0", "2")],
    updated_at="2026-11-21T11:00:00.000000Z",
)
SKIPPED = annotation(503, 5, [], cancelled=True)


def label_studio_export() -> list[dict[str, object]]:
    """What Label Studio's JSON export holds once the exported tasks were imported and
    annotated: each task with its id, data, predictions and annotations."""
    tasks = export_tasks([TIDES, TABLES])
    exported = []
    for number, (task, annotated) in enumerate(zip(tasks, [[ANA, BEN], [SKIPPED]], strict=True)):
        exported.append(
            task
            | {
                "id": 101 + number,
                "project": 7,
                "annotations": copy.deepcopy(annotated),
                "created_at": "2026-11-20T10:00:00.000000Z",
                "updated_at": "2026-11-20T10:00:00.000000Z",
            }
        )
    return exported


EXPECTED = [
    ReviewRecord(
        item_id="it-1",
        reviewer="ana@example.com",
        verdict=Verdict.accept,
        grades={"d1": 3, "d2": 1, "d3": 0},
        reviewed_at=datetime(2026, 11, 21, 9, 5, 30, 123456, tzinfo=UTC),
        question="What makes the tides rise and fall?",
        note="d2 mentions wind only",
        source=ReviewSource(
            "label-studio", annotation_id="501", user_id="3", user_email="ana@example.com"
        ),
    ),
    # The rejection's grade is dropped: a rejection takes no grades.
    ReviewRecord(
        item_id="it-1",
        reviewer="label-studio-user-4",
        verdict=Verdict.reject,
        grades={},
        reviewed_at=datetime(2026, 11, 21, 11, 0, tzinfo=UTC),
        source=ReviewSource("label-studio", annotation_id="502", user_id="4"),
    ),
]


def write(tmp_path: Path, content: object, name: str = "export.json") -> Path:
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content), "utf-8")
    return path


def fields(error: InputError) -> list[str | None]:
    return [problem.field for problem in error.problems]


def test_labeling_config_has_a_grade_per_document_slot() -> None:
    root = ET.fromstring(labeling_config(3))

    choices = {node.get("name", ""): node for node in root.iter("Choices")}
    assert sorted(choices) == ["grade_0", "grade_1", "grade_2", "verdict"]
    assert [c.get("alias") for c in choices["grade_2"].iter("Choice")] == ["0", "1", "2", "3"]
    assert choices["grade_2"].get("toName") == "doc_2"
    assert [c.get("value") for c in choices["verdict"].iter("Choice")] == ["accept", "reject"]
    assert choices["verdict"].get("required") == "true"
    texts = {node.get("name"): node.get("value") for node in root.iter("Text")}
    assert texts == {
        "query": "$query",
        "doc_0": "$doc_0_text",
        "doc_1": "$doc_1_text",
        "doc_2": "$doc_2_text",
    }
    assert sorted(node.get("name") or "" for node in root.iter("TextArea")) == ["note", "question"]
    with pytest.raises(ConfigError, match="at least one document slot"):
        labeling_config(0)


def test_tasks_fill_every_slot_the_config_names() -> None:
    tasks = export_tasks([TIDES, TABLES])
    root = ET.fromstring(labeling_config(3))
    keys = {
        (node.get("value") or "").removeprefix("$")
        for node in root.iter()
        if node.get("value", "").startswith("$")
    }

    for task in tasks:
        data = task["data"]
        assert isinstance(data, dict)
        assert keys <= set(data)
    tables = tasks[1]["data"]
    assert isinstance(tables, dict)
    assert tables["item_id"] == "it-2"
    assert tables["query"] == "tide tables"
    assert (tables["doc_0_id"], tables["doc_0_text"]) == ("d4", "Tables list tide times.")
    assert (tables["doc_2_id"], tables["doc_2_text"]) == ("", "")
    assert "predictions" not in tasks[1]
    with pytest.raises(ConfigError, match="'it-1' has 3 documents"):
        export_tasks([TIDES], max_documents=2)


def test_pre_annotations_carry_the_suggested_grades_per_suggester() -> None:
    predictions = export_tasks([TIDES])[0]["predictions"]

    assert predictions == [
        {
            "model_version": "gpt-x",
            "result": [
                {
                    "from_name": "grade_0",
                    "to_name": "doc_0",
                    "type": "choices",
                    "value": {"choices": ["3"]},
                },
                {
                    "from_name": "grade_1",
                    "to_name": "doc_1",
                    "type": "choices",
                    "value": {"choices": ["0"]},
                },
            ],
        },
        {
            "model_version": "assessor",
            "result": [
                {
                    "from_name": "grade_2",
                    "to_name": "doc_2",
                    "type": "choices",
                    "value": {"choices": ["1"]},
                }
            ],
        },
    ]


def test_round_trip_gives_one_review_per_annotator(tmp_path: Path) -> None:
    records = import_annotations(write(tmp_path, label_studio_export()))

    assert records == EXPECTED


def test_annotators_are_kept_apart_and_named(tmp_path: Path) -> None:
    exported = label_studio_export()
    tides = exported[0]["annotations"]
    assert isinstance(tides, list)
    tides.append(
        annotation(504, 3, [choice("verdict", "query", "accept"), choice("grade_1", "doc_1", "2")])
    )
    path = write(tmp_path, exported)

    records = import_annotations(path, annotators={3: "ana", 4: "ben"})

    # User 3 is one reviewer, whether the export gives the user object or the bare id.
    assert [(r.reviewer, r.verdict, dict(r.grades)) for r in records] == [
        ("ana", Verdict.accept, {"d1": 3, "d2": 1, "d3": 0}),
        ("ben", Verdict.reject, {}),
        ("ana", Verdict.accept, {"d2": 2}),
    ]
    assert (
        reviewer_name({"id": 9, "email": "", "first_name": "Kim", "last_name": "Lee"}) == "Kim Lee"
    )
    assert reviewer_name({"id": 9}) == "label-studio-user-9"
    assert reviewer_name(None) is None


def test_an_annotator_is_known_by_user_id_and_by_email() -> None:
    """The JSON export names a user by id (their email only in ``created_username``, or in
    a user object), JSON-MIN by email (or by the id's digits, from older converters): each
    was a different reviewer, and the JSON export's email was not read."""
    details = "Ana Ng ana@x.org, 3"
    assert (user_id(3), user_email(3, details)) == (3, "ana@x.org")
    assert (user_id("ana@x.org"), user_email("ana@x.org")) == (None, "ana@x.org")
    assert (
        user_id({"id": 3, "email": "ana@x.org"}),
        user_email({"id": 3, "email": "ana@x.org"}),
    ) == (
        3,
        "ana@x.org",
    )
    assert reviewer_name(3, created_username=details) == "ana@x.org"
    assert reviewer_name(3, created_username="Bo bo@x.org, 9") == "label-studio-user-3"
    assert (user_id("3"), user_email("3"), reviewer_name("3")) == (3, None, "label-studio-user-3")
    for named in ({3: "ana"}, {"ana@x.org": "ana"}):
        assert reviewer_name(3, named, created_username=details) == "ana"
        assert reviewer_name("Ana@x.org", named) == ("ana" if 3 not in named else "Ana@x.org")


def test_an_annotation_says_who_named_its_reviewer_and_what_grades_it_dropped(
    tmp_path: Path,
) -> None:
    read = read_annotations(write(tmp_path, label_studio_export()), annotators={4: "ben"})

    assert [(a.at, a.record.reviewer, a.named, a.dropped_grades) for a in read] == [
        ("task 1, annotation 1", "ana@example.com", False, 0),
        ("task 1, annotation 2", "ben", True, 1),
    ]


def test_cancelled_annotations_and_unannotated_tasks_are_skipped(tmp_path: Path) -> None:
    exported = label_studio_export()
    tides = exported[0]["annotations"]
    assert isinstance(tides, list)
    # A cancelled annotation may hold leftovers; it is skipped whatever it holds.
    tides.append(annotation(505, 6, [choice("grade_0", "doc_0", "9")], cancelled=True))
    exported.append(export_tasks([TABLES])[0] | {"id": 103, "annotations": []})

    records = import_annotations(write(tmp_path, exported))

    assert records == EXPECTED


def test_an_unchanged_question_is_not_an_edit(tmp_path: Path) -> None:
    exported = label_studio_export()
    exported[0]["annotations"] = [
        annotation(
            506,
            7,
            [
                choice("verdict", "query", "accept"),
                choice("grade_0", "doc_0", "2"),
                text("question", "  What causes tides? "),
            ],
        )
    ]

    (record,) = import_annotations(write(tmp_path, exported))

    assert record.question is None
    assert record.grades == {"d1": 2}


# Label Studio's JSON-MIN export of label_studio_export() (label-studio-sdk 2.1.2's converter;
# the cancelled annotation is not in it, JSON-MIN leaves cancelled annotations out).
JSON_MIN_EXPORT = [
    {
        "item_id": "it-1",
        "goldset": "demo",
        "origin": "generated",
        "query_id": "q1",
        "query": "What causes tides?",
        "priority": 0.7,
        "reason": "generated",
        "doc_0_id": "d1",
        "doc_0_title": "Document 1: d1",
        "doc_0_text": "The moon's gravity causes tides.",
        "doc_1_id": "d2",
        "doc_1_title": "Document 2: d2",
        "doc_1_text": "Wind moves water.",
        "doc_2_id": "d3",
        "doc_2_title": "Document 3: d3",
        "doc_2_text": "Sun also.",
        "id": 101,
        "verdict": "reject",
        "grade_0": "2",
        "annotator": 4,
        "annotation_id": 502,
        "created_at": "2026-11-21T11:00:00.000000Z",
        "updated_at": "2026-11-21T11:00:00.000000Z",
        "lead_time": 10.0,
    },
    {
        "item_id": "it-1",
        "goldset": "demo",
        "origin": "generated",
        "query_id": "q1",
        "query": "What causes tides?",
        "priority": 0.7,
        "reason": "generated",
        "doc_0_id": "d1",
        "doc_0_title": "Document 1: d1",
        "doc_0_text": "The moon's gravity causes tides.",
        "doc_1_id": "d2",
        "doc_1_title": "Document 2: d2",
        "doc_1_text": "Wind moves water.",
        "doc_2_id": "d3",
        "doc_2_title": "Document 3: d3",
        "doc_2_text": "Sun also.",
        "id": 101,
        "verdict": "accept",
        "grade_0": "3",
        "grade_1": "1",
        "grade_2": "0",
        "question": "What makes the tides rise and fall?",
        "note": "d2 mentions wind only",
        "annotator": "ana@example.com",
        "annotation_id": 501,
        "created_at": "2026-11-21T09:00:00.000000Z",
        "updated_at": "2026-11-21T09:05:30.123456Z",
        "lead_time": 42.5,
    },
]


def test_json_min_export_reads_like_the_full_export(tmp_path: Path) -> None:
    records = import_annotations(write(tmp_path, JSON_MIN_EXPORT))

    # JSON-MIN gives ana's email only, not her user id.
    ana = replace(
        EXPECTED[0],
        source=ReviewSource("label-studio", annotation_id="501", user_email="ana@example.com"),
    )
    assert records == [EXPECTED[1], ana]


def test_json_min_problems_are_named(tmp_path: Path) -> None:
    broken = copy.deepcopy(JSON_MIN_EXPORT)
    broken[1]["grade_1"] = "5"

    with pytest.raises(InputError) as caught:
        import_annotations(write(tmp_path, broken))

    assert fields(caught.value) == ["task 2 (JSON-MIN), grade_1"]


def test_a_json_min_slot_too_long_to_read_is_named_by_its_length(tmp_path: Path) -> None:
    broken = copy.deepcopy(JSON_MIN_EXPORT)
    broken[1]["grade_" + "2" * 5000] = "1"
    broken[1]["doc_" + "3" * 5000 + "_id"] = "d9"

    with pytest.raises(InputError) as caught:
        import_annotations(write(tmp_path, broken))

    where = f"{tmp_path / 'export.json'} field 'task 2 (JSON-MIN),"
    assert [str(problem) for problem in caught.value.problems] == [
        f"{where} data.doc_<5000 digits>_id': names a document slot numbered with 5000 "
        "digits, which no export writes; was the task exported by `evalkit review export`?",
        f"{where} grade_<5000 digits>': grades a document slot numbered with 5000 digits, "
        "which no task holds; the project must use evalkit's labeling config",
    ]


def test_json_min_annotation_id_of_another_type_is_named(tmp_path: Path) -> None:
    broken = copy.deepcopy(JSON_MIN_EXPORT)
    broken[0]["annotation_id"] = True

    with pytest.raises(InputError) as caught:
        import_annotations(write(tmp_path, broken))

    assert fields(caught.value) == ["task 1 (JSON-MIN), annotation_id"]


def test_a_review_dated_within_the_clock_skew_is_taken(tmp_path: Path) -> None:
    """Label Studio's clock may run a little ahead of this machine's."""
    exported = label_studio_export()
    ahead = datetime.now(UTC) + CLOCK_SKEW / 2
    exported[0]["annotations"][0]["updated_at"] = ahead.isoformat()  # type: ignore[index]

    records = import_annotations(write(tmp_path, exported))

    assert records[0].reviewed_at == ahead


def broken_export(change: str) -> list[dict[str, object]]:
    exported = label_studio_export()
    ana = exported[0]["annotations"][0]  # type: ignore[index]
    if change == "missing result":
        del ana["result"]
    elif change == "grade out of range":
        ana["result"][2]["value"]["choices"] = ["4"]
    elif change == "unknown document":
        exported[1]["annotations"] = [
            annotation(
                507, 8, [choice("verdict", "query", "accept"), choice("grade_2", "doc_2", "1")]
            )
        ]
    elif change == "no verdict":
        del ana["result"][0]
    elif change == "bad time":
        ana["updated_at"] = "yesterday"
    elif change == "doc slot too long":
        exported[0]["data"]["doc_" + "1" * 5000 + "_id"] = "d1"  # type: ignore[index]
    elif change == "grade slot too long":
        ana["result"][1]["from_name"] = "grade_" + "1" * 5000
    elif change == "far-future time":
        ana["updated_at"] = "9999-12-31T23:59:59+14:00"
    elif change == "id NaN":
        ana["id"] = math.nan
    elif change == "id true":
        ana["id"] = True
    elif change == "id empty":
        ana["id"] = " "
    return exported


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ("missing result", "task 1, annotation 1, result", "missing"),
        (
            "grade out of range",
            "task 1, annotation 1, result 3, value.choices",
            "grade '4' is not one of 0, 1, 2, 3",
        ),
        (
            "unknown document",
            "task 2, annotation 1, result 2, from_name",
            "slot 3, which holds no document of item 'it-2'",
        ),
        ("no verdict", "task 1, annotation 1, result (verdict)", "no accept/reject choice"),
        ("bad time", "task 1, annotation 1, updated_at", "ISO 8601"),
        # The latest review of an item counts: this one would supersede every later review.
        (
            "far-future time",
            "task 1, annotation 1, updated_at",
            "9999-12-31T23:59:59+14:00 is in the future (this machine's clock reads ",
        ),
        (
            "doc slot too long",
            "task 1, data.doc_<5000 digits>_id",
            "names a document slot numbered with 5000 digits, which no export writes",
        ),
        (
            "grade slot too long",
            "task 1, annotation 1, result 2, from_name",
            "grades a document slot numbered with 5000 digits, which no task holds",
        ),
        (
            "id NaN",
            "task 1, annotation 1, id",
            "expected Label Studio's annotation id (a number), got a number (nan)",
        ),
        (
            "id true",
            "task 1, annotation 1, id",
            "expected Label Studio's annotation id (a number), got a boolean (true)",
        ),
        (
            "id empty",
            "task 1, annotation 1, id",
            'expected Label Studio\'s annotation id (a number), got a string (" ")',
        ),
    ],
)
def test_a_malformed_annotation_is_named_and_nothing_is_returned(
    tmp_path: Path, change: str, field: str, message: str
) -> None:
    path = write(tmp_path, broken_export(change))

    with pytest.raises(InputError) as caught:
        import_annotations(path)

    assert fields(caught.value) == [field]
    assert caught.value.problems[0].path == str(path)
    assert message in str(caught.value)
    assert "Nothing was imported" in str(caught.value)


def test_an_annotation_that_does_not_say_who_made_it_is_named_as_missing(
    tmp_path: Path,
) -> None:
    """An annotation without `completed_by` (JSON-MIN: `annotator`) was said to hold null."""
    exported = label_studio_export()
    del exported[0]["annotations"][0]["completed_by"]  # type: ignore[index]
    minimal = copy.deepcopy(JSON_MIN_EXPORT)
    del minimal[1]["annotator"]
    exported[0]["annotations"][1]["completed_by"] = ""  # type: ignore[index]

    for export, missing, empty in (
        (exported, "task 1, annotation 1, completed_by", "task 1, annotation 2, completed_by"),
        (minimal, "task 2 (JSON-MIN), annotator", None),
    ):
        with pytest.raises(InputError) as caught:
            import_annotations(write(tmp_path, export))
        where = f"{tmp_path / 'export.json'} field"
        key = missing.rpartition(", ")[2]
        expected = [
            f"{where} '{missing}': missing: the annotation does not say who made it ('{key}': "
            "a Label Studio user id, an email or a user object)"
        ]
        if empty is not None:
            expected.append(
                f"{where} '{empty}': expected the annotator (a user id, an email or a user "
                'object), got a string ("")'
            )
        assert [str(problem) for problem in caught.value.problems] == expected


def test_every_problem_is_listed_in_one_error(tmp_path: Path) -> None:
    exported = broken_export("grade out of range")
    exported[0]["annotations"][1]["completed_by"] = None  # type: ignore[index]
    del exported[1]["data"]["item_id"]  # type: ignore[attr-defined]
    exported[1]["annotations"] = [annotation(508, 9, [choice("verdict", "query", "maybe")])]

    with pytest.raises(InputError) as caught:
        import_annotations(write(tmp_path, exported))

    assert fields(caught.value) == [
        "task 1, annotation 1, result 3, value.choices",
        "task 1, annotation 2, completed_by",
        "task 2, data.item_id",
        "task 2, annotation 1, result 1, value.choices",
    ]
    assert "4 problems" in str(caught.value)


@pytest.mark.parametrize(
    ("key", "value", "field", "message"),
    [
        (
            "item_id",
            12345,
            "task 1, data.item_id",
            "expected the evalkit item id (a string), got a number (12345)",
        ),
        (
            "item_id",
            None,
            "task 1, data.item_id",
            "expected the evalkit item id (a string), got null",
        ),
        (
            "query",
            ["a", "b"],
            "task 1, data.query",
            "expected the query text (a string), got a list",
        ),
    ],
)
def test_a_task_data_value_of_another_type_is_named_as_it_stands(
    tmp_path: Path, key: str, value: object, field: str, message: str
) -> None:
    exported = label_studio_export()
    exported[0]["data"][key] = value  # type: ignore[index]

    with pytest.raises(InputError) as caught:
        import_annotations(write(tmp_path, exported))

    assert fields(caught.value) == [field]
    assert message in str(caught.value.problems[0])


def test_a_file_that_is_not_json_is_named_with_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, '[\n  {"data": {"item_id": "it-1"},\n  oops\n]')

    with pytest.raises(InputError) as caught:
        import_annotations(path)

    (problem,) = caught.value.problems
    assert (problem.path, problem.line) == (str(path), 3)
    assert "not valid JSON" in str(problem)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ({"data": {}, "annotations": []}, "expected a list of tasks [...]"),
        ("42", "expected a list of tasks [...]"),
        ([["not", "a", "task"]], "expected a task object"),
    ],
)
def test_a_wrong_top_level_type_is_named(tmp_path: Path, content: object, expected: str) -> None:
    path = write(tmp_path, content)

    with pytest.raises(InputError, match=r"invalid Label Studio export") as caught:
        import_annotations(path)

    assert expected in str(caught.value.problems[0])


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        import_annotations(tmp_path / "absent.json")


def test_sdk_accepts_config_tasks_and_predictions() -> None:
    label_interface = pytest.importorskip("label_studio_sdk.label_interface")
    interface = label_interface.LabelInterface(labeling_config(3))
    interface.validate()

    for task in export_tasks([TIDES, TABLES]):
        data = task["data"]
        assert isinstance(data, dict)
        assert all(data.get(obj.value_name) is not None for obj in interface.objects)
        for prediction in task.get("predictions", []):  # type: ignore[attr-defined]
            assert interface.validate_prediction(prediction, return_errors=True) == []
    for annotated in (ANA, BEN):
        assert interface.validate_annotation(annotated)
    wrong = {"result": [choice("grade_0", "doc_0", "7")]}
    assert interface.validate_prediction(wrong, return_errors=True) != []


@pytest.mark.slow
def test_a_huge_export_of_small_objects_is_checked_in_bounded_memory(tmp_path: Path) -> None:
    """A 167 MB export of small objects took 1.85 GB before it was refused: it is read a
    task at a time, and only the first 1,000 problems are kept."""
    import time
    import tracemalloc

    tasks = 100_000
    path = tmp_path / "huge.json"
    path.write_text("[" + ",".join(['{"x":1}'] * tasks) + "]", encoding="utf-8")
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(InputError) as caught:
            import_annotations(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Reading the file with json.loads alone held 20 MB: 100,000 dicts and their list.
    assert peak < 12 * 2**20, f"{peak / 2**20:.1f} MB"
    assert time.perf_counter() - started < 60
    assert len(caught.value.problems) == 1000
    assert caught.value.problems[-1].field == "task 1000, data"
    message = str(caught.value)
    assert message.startswith(f"{path}: invalid Label Studio export, 100,000 problems:")
    assert "... and 99,997 more (`-o json` lists the first 1,000 in 'problems')" in message
    assert "every problem" not in message


def test_a_few_problems_are_all_listed_and_said_so(tmp_path: Path) -> None:
    path = write(tmp_path, [{"x": 1}] * 4)
    with pytest.raises(InputError) as caught:
        import_annotations(path)
    assert len(caught.value.problems) == 4
    assert "... and 1 more (`-o json` lists every problem in 'problems')" in str(caught.value)


def test_a_task_larger_than_any_export_holds_is_refused_not_read_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from evalkit.goldset import _json_array

    monkeypatch.setattr(_json_array, "MAX_ELEMENT_CHARS", 4 * 2**20)
    monkeypatch.setattr(_json_array, "CHUNK_BYTES", 2**20)
    path = tmp_path / "long.json"
    path.write_text('[{"data": {}},\n{"data": {"query": "' + "a" * 6 * 2**20, encoding="utf-8")
    with pytest.raises(InputError) as caught:
        import_annotations(path)
    [problem] = caught.value.problems
    assert problem.line == 2
    assert "element 2 is longer than 4 MiB of JSON, more than any task of an export" in str(problem)
