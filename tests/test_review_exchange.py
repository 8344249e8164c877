"""`evalkit review export|import` against a real store: the queue goes to Label Studio as
tasks with their labeling config, an annotated export comes back as signed reviews, a second
import of the same export adds nothing, and an export that does not match the queue is
refused whole."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from test_label_studio import annotation, choice, text
from test_review_queue import write_generated_draft

from evalkit.cli import invoke
from evalkit.store import MIGRATIONS, Store
from evalkit.store import store as store_module
from evalkit.store.review import item_reviews, list_items


def _annotated(tasks: list[dict[str, object]]) -> list[dict[str, object]]:
    """Label Studio's JSON export after two annotators worked on every task: ana accepts
    and grades every document 2 (rewording the first question), user 9 rejects."""
    exported = []
    for number, task in enumerate(tasks):
        data = task["data"]
        assert isinstance(data, dict)
        slots = [
            key[len("doc_") : -len("_id")] for key in data if key.endswith("_id") and data[key]
        ]
        slots = [slot for slot in slots if slot.isdigit()]
        grades = [choice(f"grade_{slot}", f"doc_{slot}", "2") for slot in slots]
        ana_result = [choice("verdict", "query", "accept"), *grades]
        if number == 0:
            ana_result.append(text("question", "A reworded question?"))
        ana = annotation(700 + number, {"id": 3, "email": "ana@example.com"}, ana_result)
        other = annotation(800 + number, 9, [choice("verdict", "query", "reject")])
        exported.append(task | {"id": 100 + number, "annotations": [ana, other]})
    return exported


def test_the_queue_goes_to_label_studio_and_its_annotations_come_back_as_reviews(
    evalkit_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    draft = write_generated_draft(tmp_path / "draft")
    assert invoke(["review", "add", str(draft), "--goldset", "tay"]) == 0
    tasks_file = tmp_path / "ls" / "tasks.json"
    tasks_file.parent.mkdir()
    capsys.readouterr()
    assert (
        invoke(["review", "export", "--goldset", "tay", "--out", str(tasks_file), "-o", "json"])
        == 0
    )
    summary = json.loads(capsys.readouterr().out)
    tasks = json.loads(tasks_file.read_text(encoding="utf-8"))
    config = (tmp_path / "ls" / "tasks.label-config.xml").read_text(encoding="utf-8")
    store_path = evalkit_home / "evalkit.duckdb"
    with Store.open(store_path, read_only=True) as store:
        queued = list_items(store, goldset="tay")
    assert summary["tasks"] == len(tasks) == len(queued)
    assert {task["data"]["item_id"] for task in tasks} == {q.item.item_id for q in queued}
    assert config.startswith("<View")
    assert 'name="grade_0"' in config
    assert all(task["predictions"] for task in tasks)  # the generator's suggested grades

    export_file = tmp_path / "project-1-at-2026-11-25.json"
    export_file.write_text(json.dumps(_annotated(tasks)), encoding="utf-8")
    argv = ["review", "import", str(export_file), "--annotator", "9=bo", "-o", "json"]
    assert invoke(argv) == 0
    imported = json.loads(capsys.readouterr().out)
    assert imported["saved"] == 2 * len(tasks)
    assert imported["reviewers"] == ["ana@example.com", "bo"]
    with Store.open(store_path, read_only=True) as store:
        reviews = item_reviews(store, goldset="tay")
        statuses = {q.item.item_id: q.status for q in list_items(store, goldset="tay")}
    assert sum(len(records) for records in reviews.values()) == 2 * len(tasks)
    first = tasks[0]["data"]["item_id"]
    ana_first = next(r for r in reviews[first] if r.reviewer == "ana@example.com")
    assert ana_first.question == "A reworded question?"
    assert set(ana_first.grades.values()) == {2}
    assert set(statuses.values()) == {"open"}  # one accept, one reject: a tie stays open

    assert invoke(argv) == 0
    again = json.loads(capsys.readouterr().out)
    assert (again["saved"], again["already_imported"]) == (0, 2 * len(tasks))


def test_an_export_naming_what_the_queue_lacks_is_refused_and_nothing_is_saved(
    evalkit_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    draft = write_generated_draft(tmp_path / "draft")
    assert invoke(["review", "add", str(draft), "--goldset", "tay"]) == 0
    tasks_file = tmp_path / "tasks.json"
    assert invoke(["review", "export", "--goldset", "tay", "--out", str(tasks_file)]) == 0
    tasks = json.loads(tasks_file.read_text(encoding="utf-8"))
    annotated = _annotated(tasks)
    annotated[-1]["data"]["item_id"] = "0000000000000000"
    first = annotated[0]["annotations"]
    assert isinstance(first, list)
    first[1]["result"] = "oops"  # malformed: reported with the queue's problems
    export_file = tmp_path / "export.json"
    export_file.write_text(json.dumps(annotated), encoding="utf-8")
    capsys.readouterr()
    assert invoke(["review", "import", str(export_file), "-o", "json"]) == 2
    captured = capsys.readouterr()
    assert "0000000000000000" in captured.err
    assert "not in the review queue" in captured.err
    # One error names every problem where it stands: task and annotation, not a running count.
    fields = [p["field"] for p in json.loads(captured.out)["error"]["problems"]]
    last = len(annotated)
    assert fields == [
        "task 1, annotation 2, result",
        f"task {last}, annotation 1, item_id",
        f"task {last}, annotation 2, item_id",
    ]
    with Store.open(evalkit_home / "evalkit.duckdb", read_only=True) as store:
        assert item_reviews(store, goldset="tay") == {}


def test_exporting_a_goldset_with_nothing_queued_says_how_to_queue(
    evalkit_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    draft = write_generated_draft(tmp_path / "draft")
    assert invoke(["review", "add", str(draft), "--goldset", "tay"]) == 0
    capsys.readouterr()
    code = invoke(["review", "export", "--goldset", "other", "--out", str(tmp_path / "t.json")])
    assert code == 2
    assert "evalkit review add" in capsys.readouterr().err
    assert not (tmp_path / "t.json").exists()


def test_a_published_item_takes_no_more_reviews_and_says_so(
    evalkit_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """After publish, `review grade` is refused (exit 2, naming why) and the annotations an
    older export holds for the item are counted, not saved."""
    draft = write_generated_draft(tmp_path / "draft")
    assert invoke(["review", "add", str(draft), "--goldset", "tay"]) == 0
    tasks_file = tmp_path / "tasks.json"
    assert invoke(["review", "export", "--goldset", "tay", "--out", str(tasks_file)]) == 0
    tasks = json.loads(tasks_file.read_text(encoding="utf-8"))
    store_path = evalkit_home / "evalkit.duckdb"
    with Store.open(store_path, read_only=True) as store:
        queued = list_items(store, goldset="tay")
    item = queued[0].item
    grade = f"{item.documents[0].doc_id}=2"
    assert invoke(["review", "grade", item.item_id, "--reviewer", "ann", "--grade", grade]) == 0
    assert invoke(["goldset", "publish", "tay"]) == 0
    capsys.readouterr()

    again = ["review", "grade", item.item_id, "--reviewer", "ben", "--grade", grade]
    assert invoke(again) == 2
    assert "already published" in capsys.readouterr().err
    reject = ["review", "grade", queued[1].item.item_id, "--reviewer", "ben", "--reject"]
    assert invoke([*reject, "--grade", f"{queued[1].item.documents[0].doc_id}=1"]) == 2
    assert "takes no grades" in capsys.readouterr().err

    export_file = tmp_path / "export.json"
    export_file.write_text(json.dumps(_annotated(tasks)), encoding="utf-8")
    assert invoke(["review", "import", str(export_file), "-o", "json"]) == 0
    imported = json.loads(capsys.readouterr().out)
    assert imported["skipped_published"] == 2
    assert imported["saved"] == 2 * (len(tasks) - 1)
    with Store.open(store_path, read_only=True) as store:
        reviewers = [r.reviewer for r in item_reviews(store, goldset="tay")[item.item_id]]
    assert reviewers == ["ann"]


def _queued_tasks(tmp_path: Path) -> list[dict[str, object]]:
    """The `tay` draft queued and exported as Label Studio tasks."""
    draft = write_generated_draft(tmp_path / "draft")
    assert invoke(["review", "add", str(draft), "--goldset", "tay"]) == 0
    tasks_file = tmp_path / "tasks.json"
    assert invoke(["review", "export", "--goldset", "tay", "--out", str(tasks_file)]) == 0
    tasks: list[dict[str, object]] = json.loads(tasks_file.read_text(encoding="utf-8"))
    return tasks


def _export(tmp_path: Path, name: str, tasks: list[dict[str, object]]) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(tasks), encoding="utf-8")
    return str(path)


def _graded_by_user_4(task: dict[str, object], *, updated_at: str, grade: str = "2") -> dict:
    result = [choice("verdict", "query", "accept"), choice("grade_0", "doc_0", grade)]
    return task | {"id": 100, "annotations": [annotation(41, 4, result, updated_at=updated_at)]}


def _reviewers(store_path: Path, item_id: str) -> list[str]:
    with Store.open(store_path, read_only=True) as store:
        return [review.reviewer for review in item_reviews(store, item_ids=[item_id])[item_id]]


def test_one_annotation_is_one_review_under_any_name_or_export_format(
    evalkit_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An annotation imported unnamed (label-studio-user-4), then again with --annotator 4=ben
    or as JSON-MIN, was saved under both names: one person counted as two reviewers and
    `goldset publish --min-reviews 2` published what only they had reviewed."""
    tasks = _queued_tasks(tmp_path)
    item_id = str(tasks[0]["data"]["item_id"])  # type: ignore[index]
    first = _export(
        tmp_path, "first.json", [_graded_by_user_4(tasks[0], updated_at="2026-11-26T10:00:00Z")]
    )
    assert invoke(["review", "import", first]) == 0
    capsys.readouterr()

    assert invoke(["review", "import", first, "--annotator", "4=ben"]) == 2
    err = capsys.readouterr().err
    assert "first.json field 'task 1, annotation 1, --annotator'" in err
    assert "Label Studio user 4 was signed 'label-studio-user-4'" in err
    assert "Give --annotator 4=label-studio-user-4" in err
    assert _reviewers(evalkit_home / "evalkit.duckdb", item_id) == ["label-studio-user-4"]

    data = tasks[0]["data"]
    assert isinstance(data, dict)
    as_min = [
        data
        | {
            "id": 100,
            "verdict": "accept",
            "grade_0": "2",
            "annotator": "dee@example.com",
            "annotation_id": 41,
            "created_at": "2026-11-26T10:00:00Z",
            "updated_at": "2026-11-26T10:00:00Z",
        }
    ]
    assert invoke(["review", "import", _export(tmp_path, "min.json", as_min), "-o", "json"]) == 0
    imported = json.loads(capsys.readouterr().out)
    assert (imported["saved"], imported["already_imported"]) == (0, 1)

    # The annotation edited in Label Studio later is a newer review by the same reviewer.
    edited = _graded_by_user_4(tasks[0], updated_at="2026-11-26T11:00:00Z", grade="3")
    assert invoke(["review", "import", _export(tmp_path, "edited.json", [edited])]) == 0
    assert _reviewers(evalkit_home / "evalkit.duckdb", item_id) == ["label-studio-user-4"] * 2
    capsys.readouterr()
    assert invoke(["goldset", "publish", "tay", "--min-reviews", "2", "-o", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["published"] is False


def test_annotations_imported_before_the_store_kept_their_ids_keep_their_first_names(
    evalkit_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Reviews a release before migration 20 imported carry no annotation or user id: the
    same export imported again with --annotator 4=ben saved each annotation a second time as
    ben, and `goldset publish --min-reviews 2` published items only user 4 had reviewed. A
    re-import after publishing said the annotations had not been imported before."""
    store_path = evalkit_home / "evalkit.duckdb"
    tasks = _queued_tasks(tmp_path)
    first_item, second_item = (str(t["data"]["item_id"]) for t in tasks[:2])  # type: ignore[index]
    # As the release before migration 20 imported them, in a store since migrated to 22:
    # migration 23 (the backfill of their sources) has yet to run.
    with Store.open(store_path) as old, old.transaction() as con:
        for review_id, item_id, reviewer in (
            ("rev-1", first_item, "label-studio-user-4"),
            ("rev-2", second_item, "ana@example.com"),
        ):
            con.execute(
                "INSERT INTO reviews (review_id, item_id, reviewer, reviewed_at, verdict, grades,"
                " question, note) VALUES (?, ?, ?, '2026-11-26 10:00:00', 'accept',"
                " '{\"doc_0\": 2}', NULL, '')",
                [review_id, item_id, reviewer],
            )
        con.execute("DELETE FROM schema_migrations WHERE number = 23")
    result = [choice("verdict", "query", "accept"), choice("grade_0", "doc_0", "2")]
    at = "2026-11-26T10:00:00Z"
    export = _export(
        tmp_path,
        "export.json",
        [
            tasks[0] | {"id": 100, "annotations": [annotation(900, 4, result, updated_at=at)]},
            tasks[1]
            | {
                "id": 101,
                "annotations": [
                    annotation(901, {"id": 3, "email": "ana@example.com"}, result, updated_at=at)
                ],
            },
        ],
    )
    capsys.readouterr()

    assert invoke(["review", "import", export, "--annotator", "4=ben"]) == 2
    err = capsys.readouterr().err
    assert "Label Studio user 4 was signed 'label-studio-user-4'" in err
    assert "Give --annotator 4=label-studio-user-4" in err
    assert invoke(["review", "import", export, "--annotator", "3=ana"]) == 2
    assert "Label Studio user 3 was signed 'ana@example.com'" in capsys.readouterr().err
    assert _reviewers(store_path, first_item) == ["label-studio-user-4"]
    assert _reviewers(store_path, second_item) == ["ana@example.com"]
    with Store.open(store_path, read_only=True) as store:
        assert store.fetch(
            "SELECT reviewer, source_tool, source_user_id FROM reviews ORDER BY review_id"
        ) == [
            ("label-studio-user-4", "label-studio", "4"),
            ("ana@example.com", None, None),
        ]

    assert invoke(["review", "import", export, "-o", "json"]) == 0
    imported = json.loads(capsys.readouterr().out)
    assert (imported["saved"], imported["already_imported"]) == (0, 2)

    assert invoke(["goldset", "publish", "tay", "--min-reviews", "2", "-o", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["published"] is False
    assert invoke(["goldset", "publish", "tay", "-o", "json"]) == 0
    capsys.readouterr()
    assert invoke(["review", "import", export]) == 0
    out, err = capsys.readouterr()
    assert "0 reviews saved on 0 items by nobody; 2 imported before" in out
    assert "published since the export" not in err


def test_a_task_repeated_in_one_export_is_saved_once(
    evalkit_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tasks = _queued_tasks(tmp_path)
    item_id = str(tasks[0]["data"]["item_id"])  # type: ignore[index]
    task = _graded_by_user_4(tasks[0], updated_at="2026-11-26T10:00:00Z")
    capsys.readouterr()

    export = _export(tmp_path, "export.json", [task, copy.deepcopy(task)])
    assert invoke(["review", "import", export]) == 0

    assert "1 reviews saved on 1 items by label-studio-user-4; 0 imported before, 1 repeated " in (
        capsys.readouterr().out
    )
    assert _reviewers(evalkit_home / "evalkit.duckdb", item_id) == ["label-studio-user-4"]


def test_an_import_keeps_the_rules_of_review_grade(
    evalkit_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An accept with no grade was saved (and published as a query with no judgment); a
    rejection kept the pre-annotated grades it started from."""
    tasks = _queued_tasks(tmp_path)
    ungraded = tasks[0] | {
        "id": 100,
        "annotations": [annotation(41, 4, [choice("verdict", "query", "accept")])],
    }
    capsys.readouterr()
    assert invoke(["review", "import", _export(tmp_path, "ungraded.json", [ungraded])]) == 2
    err = capsys.readouterr().err
    assert "ungraded.json field 'task 1, annotation 1, result (grade_<n>)'" in err
    assert "an accepted item needs at least one graded document" in err
    with Store.open(evalkit_home / "evalkit.duckdb", read_only=True) as store:
        assert item_reviews(store, goldset="tay") == {}

    rejected = tasks[0] | {
        "id": 100,
        "annotations": [
            annotation(
                42,
                4,
                [choice("verdict", "query", "reject"), choice("grade_0", "doc_0", "2")],
            )
        ],
    }
    export = _export(tmp_path, "rejected.json", [rejected])
    assert invoke(["review", "import", export, "-o", "json"]) == 0
    imported = json.loads(capsys.readouterr().out)
    assert (imported["saved"], imported["grades_dropped_from_rejections"]) == (1, 1)
    item_id = str(tasks[0]["data"]["item_id"])  # type: ignore[index]
    with Store.open(evalkit_home / "evalkit.duckdb", read_only=True) as store:
        (review,) = item_reviews(store, item_ids=[item_id])[item_id]
    assert (review.verdict, dict(review.grades)) == ("reject", {})

    # Imported again, the rejection is not saved again, so no grade of it is left out again.
    assert invoke(["review", "import", export, "-o", "json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert (again["saved"], again["already_imported"]) == (0, 1)
    assert again["grades_dropped_from_rejections"] == 0
    assert invoke(["review", "import", export]) == 0
    assert "left out" not in capsys.readouterr().err


def _min_record(
    task: dict[str, object], annotation_id: int, annotator: object, at: str, grade: str = "2"
) -> dict[str, object]:
    """One annotation of ``task`` as Label Studio's JSON-MIN export writes it."""
    data = task["data"]
    assert isinstance(data, dict)
    return data | {
        "id": 100,
        "verdict": "accept",
        "grade_0": grade,
        "annotator": annotator,
        "annotation_id": annotation_id,
        "created_at": at,
        "updated_at": at,
    }


def test_one_person_is_one_reviewer_whether_an_export_names_them_by_id_or_email(
    evalkit_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Label Studio's JSON export names an annotator by user id, its JSON-MIN export by email:
    ana (user 3) and bo (user 9) imported from one and then the other were four reviewers,
    and ana's second annotation of an item counted her as a second rater of it in `review
    agreement` and toward `goldset publish --min-reviews`."""
    store_path = evalkit_home / "evalkit.duckdb"
    tasks = _queued_tasks(tmp_path)
    first, second = (str(t["data"]["item_id"]) for t in tasks[:2])  # type: ignore[index]
    result = [choice("verdict", "query", "accept"), choice("grade_0", "doc_0", "2")]
    at = "2026-11-26T10:00:00Z"
    # The JSON export: completed_by is the user id; created_username holds ana's email.
    ana = annotation(700, 3, result, updated_at=at) | {"created_username": "Ana Ng ana@x.org, 3"}
    bo = annotation(800, 9, result, updated_at="2026-11-26T11:00:00Z")
    as_json = [tasks[0] | {"id": 100, "annotations": [ana, bo]}]
    capsys.readouterr()
    assert invoke(["review", "import", _export(tmp_path, "p.json", as_json), "-o", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["reviewers"] == ["ana@x.org", "label-studio-user-9"]

    # JSON-MIN a day later: the same two annotations, ana's second one of the first item, and
    # both annotating the second item.
    later = "2026-11-27T10:00:00Z"
    as_min = [
        _min_record(tasks[0], 700, "ana@x.org", at),
        _min_record(tasks[0], 800, "bo@x.org", "2026-11-26T11:00:00Z"),
        _min_record(tasks[0], 710, "ana@x.org", later, grade="3"),
        _min_record(tasks[1], 711, "ana@x.org", later),
        _min_record(tasks[1], 811, "bo@x.org", "2026-11-27T11:00:00Z", grade="1"),
    ]
    assert invoke(["review", "import", _export(tmp_path, "min.json", as_min), "-o", "json"]) == 0
    imported = json.loads(capsys.readouterr().out)
    assert (imported["saved"], imported["already_imported"]) == (3, 2)
    assert imported["reviewers"] == ["ana@x.org", "label-studio-user-9"]
    assert _reviewers(store_path, first) == ["ana@x.org", "label-studio-user-9", "ana@x.org"]
    assert _reviewers(store_path, second) == ["ana@x.org", "label-studio-user-9"]
    with Store.open(store_path, read_only=True) as store:
        assert store.fetch(
            "SELECT source_annotation_id, source_user_id, source_user_email FROM reviews"
            " ORDER BY source_annotation_id"
        ) == [
            ("700", "3", "ana@x.org"),
            ("710", None, "ana@x.org"),
            ("711", None, "ana@x.org"),
            ("800", "9", None),
            ("811", None, "bo@x.org"),
        ]

    assert invoke(["review", "agreement", "--goldset", "tay", "-o", "json"]) == 0
    pairs = json.loads(capsys.readouterr().out)
    assert [(pair["reviewers"], pair["items"]) for pair in pairs] == [
        (["ana@x.org", "label-studio-user-9"], 2)
    ]
    assert invoke(["goldset", "publish", "tay", "--min-reviews", "3", "-o", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["published"] is False


def test_annotator_names_a_label_studio_user_by_id_or_by_email(
    evalkit_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--annotator took only ID=NAME: a JSON-MIN export, which names users by email, could
    not be signed with chosen names (`'ana@x.org=ana' is not ID=NAME`)."""
    store_path = evalkit_home / "evalkit.duckdb"
    tasks = _queued_tasks(tmp_path)
    first, second = (str(t["data"]["item_id"]) for t in tasks[:2])  # type: ignore[index]
    at, later = "2026-11-26T10:00:00Z", "2026-11-27T10:00:00Z"
    as_min = _export(tmp_path, "min.json", [_min_record(tasks[0], 700, "Ana@x.org", at)])
    capsys.readouterr()
    assert invoke(["review", "import", as_min, "--annotator", "ana@x.org=ana"]) == 0
    assert "1 reviews saved on 1 items by ana;" in capsys.readouterr().out

    # The JSON export names her by id alone; the annotation imported before tells who user 3
    # is, so her new annotation is ana's too, with or without --annotator 3=ana.
    result = [choice("verdict", "query", "accept"), choice("grade_0", "doc_0", "2")]
    as_json = [
        tasks[0] | {"id": 100, "annotations": [annotation(700, 3, result, updated_at=at)]},
        tasks[1] | {"id": 101, "annotations": [annotation(711, 3, result, updated_at=later)]},
    ]
    export = _export(tmp_path, "p.json", as_json)
    assert invoke(["review", "import", export, "--annotator", "3=ann"]) == 2
    err = capsys.readouterr().err
    assert "Label Studio user 3 was signed 'ana'" in err
    assert "Give --annotator 3=ana" in err
    assert invoke(["review", "import", export]) == 0
    assert "1 reviews saved on 1 items by ana; 1 imported before" in capsys.readouterr().out
    assert _reviewers(store_path, first) == ["ana"]
    assert _reviewers(store_path, second) == ["ana"]

    assert invoke(["review", "import", export, "--annotator", "ana=x"]) == 2
    assert "'ana=x' is not ID=NAME or EMAIL=NAME" in capsys.readouterr().err
    twice = ["--annotator", "3=ana", "--annotator", "3=ann"]
    assert invoke(["review", "import", export, *twice]) == 2
    assert "Label Studio user 3 is named twice (ana, ann)" in capsys.readouterr().err


def test_a_reviewer_imported_by_email_before_migration_25_stays_one_reviewer(
    evalkit_home: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A store at migration 24 kept no email: ana, imported from JSON-MIN by email, became a
    second reviewer when a JSON export named her by user id with --annotator 3=ana."""
    store_path = evalkit_home / "evalkit.duckdb"
    with monkeypatch.context() as older_release:
        older_release.setattr(store_module, "MIGRATIONS", MIGRATIONS[:24])
        tasks = _queued_tasks(tmp_path)
        first, second = (str(t["data"]["item_id"]) for t in tasks[:2])  # type: ignore[index]
        with Store.open(store_path) as old, old.transaction() as con:
            con.execute(
                "INSERT INTO reviews VALUES ('rev-1', ?, 'ana@x.org', '2026-11-26 10:00',"
                " 'accept', '{\"doc_0\": 2}', NULL, '', 'label-studio', '700', NULL)",
                [first],
            )
    result = [choice("verdict", "query", "accept"), choice("grade_0", "doc_0", "2")]
    user_3 = annotation(711, 3, result, updated_at="2026-11-27T10:00:00Z")
    export = _export(
        tmp_path,
        "p.json",
        [tasks[1] | {"id": 101, "annotations": [user_3 | {"created_username": " ana@x.org, 3"}]}],
    )
    capsys.readouterr()
    assert invoke(["review", "import", export, "--annotator", "3=ana"]) == 2
    err = capsys.readouterr().err
    assert "Label Studio user 3 was signed 'ana@x.org'" in err
    assert invoke(["review", "import", export]) == 0
    assert _reviewers(store_path, first) == ["ana@x.org"]
    assert _reviewers(store_path, second) == ["ana@x.org"]


def test_a_person_signed_twice_before_migration_25_takes_one_name_from_then_on(
    evalkit_home: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A store at migration 24 holds ana twice: label-studio-user-3 (JSON) and ana@x.org
    (JSON-MIN). Once an export gives her id and email together, her new annotations take the
    user id's name whichever format they come in."""
    store_path = evalkit_home / "evalkit.duckdb"
    with monkeypatch.context() as older_release:
        older_release.setattr(store_module, "MIGRATIONS", MIGRATIONS[:24])
        tasks = _queued_tasks(tmp_path)
        items = [str(t["data"]["item_id"]) for t in tasks]  # type: ignore[index]
        with Store.open(store_path) as old, old.transaction() as con:
            for review_id, reviewer, annotation_id, user in (
                ("rev-1", "label-studio-user-3", "600", "3"),
                ("rev-2", "ana@x.org", "700", None),
            ):
                con.execute(
                    "INSERT INTO reviews VALUES (?, ?, ?, '2026-11-26 10:00', 'accept',"
                    " '{\"doc_0\": 2}', NULL, '', 'label-studio', ?, ?)",
                    [review_id, items[0], reviewer, annotation_id, user],
                )
    result = [choice("verdict", "query", "accept"), choice("grade_0", "doc_0", "2")]
    at = "2026-11-27T10:00:00Z"
    user_3 = annotation(711, 3, result, updated_at=at) | {"created_username": " ana@x.org, 3"}
    as_json = [tasks[1] | {"id": 101, "annotations": [user_3]}]
    as_min = [_min_record(tasks[2], 712, "ana@x.org", at)]
    capsys.readouterr()
    assert invoke(["review", "import", _export(tmp_path, "p.json", as_json)]) == 0
    assert invoke(["review", "import", _export(tmp_path, "min.json", as_min)]) == 0
    assert _reviewers(store_path, items[1]) == ["label-studio-user-3"]
    assert _reviewers(store_path, items[2]) == ["label-studio-user-3"]


def test_an_annotator_option_that_names_nobody_in_the_export_is_told(
    evalkit_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A mistyped --annotator (user 5 for ben, who is user 4) was ignored without a word: ben's
    annotations were saved as label-studio-user-4, a name that --annotator 4=ben is refused
    for from then on."""
    tasks = _queued_tasks(tmp_path)
    task = _graded_by_user_4(tasks[0], updated_at="2026-11-26T10:00:00Z")
    export = _export(tmp_path, "p.json", [task])
    capsys.readouterr()
    assert invoke(["review", "import", export, "--annotator", "5=ben", "-o", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["unmatched_annotators"] == ["5=ben"]

    as_min = [_min_record(tasks[1], 42, "ana@x.org", "2026-11-26T10:00:00Z")]
    both = ["--annotator", "5=ben", "--annotator", "ann@x.org=ana", "--annotator", "4=ben"]
    assert invoke(["review", "import", _export(tmp_path, "min.json", as_min), *both]) == 0
    out, err = capsys.readouterr()
    assert "1 reviews saved on 1 items by ana@x.org;" in out
    assert (
        "--annotator 5=ben, ann@x.org=ana, 4=ben: no annotation of this export is by those "
        "users (its annotators: ana@x.org); check the user id or email in Label Studio."
    ) in " ".join(err.split())


UNFIT_NAMES = {
    "escape": "ann\x1b[2J\x1b[31m",
    "bell": "ann\x07",
    "newline": "ann\nreviewed by: bob",
    "c1": "ann\x9b31m",
    "override": "ann\u202egpj.exe",
    "isolate": "ann\u2067x",
    "long": "a" * 1_000_000,
}


@pytest.mark.parametrize("name", UNFIT_NAMES.values(), ids=UNFIT_NAMES.keys())
@pytest.mark.slow
def test_a_name_with_control_or_bidi_characters_or_too_long_signs_nothing(
    evalkit_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    """ESC sequences, BEL, newlines, U+202E and a million characters were taken as a
    reviewer's name and printed raw by the one-line summaries (`review grade`, `review
    import`); the dashboard's agreement table applied the override. Each is refused, exit
    2, naming the field (and for an export the annotation); nothing is saved."""
    tasks = _queued_tasks(tmp_path)
    item = tasks[0]["data"]["item_id"]  # type: ignore[index]
    doc = tasks[0]["data"]["doc_0_id"]  # type: ignore[index]
    capsys.readouterr()
    assert invoke(["review", "grade", item, "--reviewer", name, "--grade", f"{doc}=2"]) == 2
    err = capsys.readouterr().err
    assert "reviewer" in err
    assert "\x1b" not in err
    assert "\u202e" not in err
    assert len(err) < 2_000

    by_email = _graded_by_user_4(tasks[0], updated_at="2026-11-21T09:00:00Z")
    by_email["annotations"][0]["completed_by"] = {"id": 4, "email": name}  # type: ignore[index]
    by_name = _graded_by_user_4(tasks[0], updated_at="2026-11-21T09:00:00Z")
    by_name["annotations"][0]["completed_by"] = {"id": 4, "first_name": name}  # type: ignore[index]
    for export in (by_email, by_name):
        assert invoke(["review", "import", _export(tmp_path, "named.json", [export])]) == 2
        err = capsys.readouterr().err
        assert "named.json field 'task 1, annotation 1, completed_by': cannot sign" in err
        assert "\x1b" not in err
        assert "\u202e" not in err
    unnamed = _graded_by_user_4(tasks[0], updated_at="2026-11-21T09:00:00Z")
    plain = _export(tmp_path, "plain.json", [unnamed])
    assert invoke(["review", "import", plain, "--annotator", f"4={name}"]) == 2
    err = capsys.readouterr().err
    assert "--annotator" in err
    assert "\x1b" not in err
    with Store.open(evalkit_home / "evalkit.duckdb", read_only=True) as store:
        assert item_reviews(store, goldset="tay") == {}


def test_a_name_of_200_characters_in_any_script_signs_a_review(
    evalkit_home: Path, tmp_path: Path
) -> None:
    tasks = _queued_tasks(tmp_path)
    item = tasks[0]["data"]["item_id"]  # type: ignore[index]
    doc = tasks[0]["data"]["doc_0_id"]  # type: ignore[index]
    name = ("Zoë Ångström-حسن 李 " * 20)[:200]
    assert invoke(["review", "grade", item, "--reviewer", name, "--grade", f"{doc}=2"]) == 0
    assert _reviewers(evalkit_home / "evalkit.duckdb", item) == [name.strip()]


def test_an_export_does_not_replace_existing_files_without_overwrite(
    evalkit_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`review export --out tasks.json` replaced a tasks file (and its config) that was
    there, whatever it held."""
    draft = write_generated_draft(tmp_path / "draft")
    assert invoke(["review", "add", str(draft), "--goldset", "tay"]) == 0
    tasks_file = tmp_path / "tasks.json"
    config_file = tmp_path / "tasks.label-config.xml"
    export = ["review", "export", "--goldset", "tay", "--out", str(tasks_file)]
    for existing in (tasks_file, config_file):
        existing.write_text("someone's file\n", encoding="utf-8")
        capsys.readouterr()
        assert invoke(export) == 2
        assert capsys.readouterr().err.strip() == (
            f"error: {existing}: already exists; pass --overwrite to replace it, or choose "
            "another --out"
        )
        assert existing.read_text(encoding="utf-8") == "someone's file\n"
        existing.unlink()
    tasks_file.write_text("old\n", encoding="utf-8")
    assert invoke([*export, "--overwrite"]) == 0
    assert json.loads(tasks_file.read_text(encoding="utf-8"))
    assert config_file.read_text(encoding="utf-8").startswith("<View")
