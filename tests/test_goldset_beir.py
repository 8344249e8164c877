"""Importing BEIR folders: header row, CRLF, split selection, grades, problems."""

from __future__ import annotations

import gzip
import shutil
import zipfile
from pathlib import Path

import pytest

from evalkit.cli import invoke
from evalkit.errors import GoldsetError
from evalkit.goldset import goldset_version, load_beir_goldset
from evalkit.records import Judgment, Query

FIXTURE = Path(__file__).parent / "data" / "goldset" / "beir_tiny"


def copy_fixture(tmp_path: Path, qrels: bytes, *, split: str = "test") -> Path:
    folder = tmp_path / "beir"
    shutil.copytree(FIXTURE, folder)
    (folder / "qrels" / f"{split}.tsv").write_bytes(qrels)
    return folder


def problem_locations(error: GoldsetError) -> list[tuple[str, int | None, str | None]]:
    return [(Path(p.path).name if p.path else "", p.line, p.field) for p in error.problems]


def test_fixture_really_has_crlf_and_a_header() -> None:
    data = (FIXTURE / "qrels" / "test.tsv").read_bytes()

    assert data.startswith(b"query-id\tcorpus-id\tscore\r\n")
    assert data.count(b"\r\n") == 5


def test_test_split_keeps_judged_queries_in_file_order() -> None:
    goldset = load_beir_goldset(FIXTURE)

    queries = (
        Query(id="1", text="Aspirin lowers fever."),
        Query(id="3", text="Coffee causes insomnia."),
    )
    judgments = (
        Judgment("3", "1003", 1),
        Judgment("1", "1001", 1),
        Judgment("1", "1002", 0),
    )
    assert goldset.name == "beir_tiny-test"
    assert goldset.queries == queries
    assert goldset.judgments == judgments
    assert goldset.version == goldset_version(queries, judgments)
    assert goldset.source == str(FIXTURE)


def test_another_split_and_a_name() -> None:
    goldset = load_beir_goldset(FIXTURE, split="train", name="tiny")

    assert goldset.name == "tiny"
    assert goldset.query_ids == ("2", "4")
    assert goldset.judgments == (Judgment("2", "1002", 1), Judgment("4", "1004", 2))


def test_qrels_without_header_and_with_lf(tmp_path: Path) -> None:
    folder = copy_fixture(tmp_path, b"3\t1003\t1\n1\t1001\t1\n1\t1002\t0\n")

    assert load_beir_goldset(folder).version == load_beir_goldset(FIXTURE).version


def test_missing_split_lists_the_available_ones() -> None:
    with pytest.raises(GoldsetError) as caught:
        load_beir_goldset(FIXTURE, split="dev")

    (problem,) = caught.value.problems
    assert problem.path == str(FIXTURE / "qrels" / "dev.tsv")
    assert "available splits: test, train" in problem.detail


def test_negative_grades_become_zero_with_a_notice(tmp_path: Path) -> None:
    folder = copy_fixture(tmp_path, b"query-id\tcorpus-id\tscore\n1\t1001\t-1\n1\t1002\t1\n")
    notices: list[str] = []

    goldset = load_beir_goldset(folder, on_notice=notices.append)

    assert goldset.judgments == (Judgment("1", "1001", 0), Judgment("1", "1002", 1))
    unjudged, notice = notices
    assert unjudged == (
        f"{folder / 'queries.jsonl'}: 3 of its 4 queries have no judgment in test.tsv and were "
        "left out, as BEIR and trec_eval leave them out"
    )
    assert "1 judgment(s) graded below 0 (first on line 2) were imported as 0" in notice


def test_repeated_judgment_with_same_grade_is_kept_once(tmp_path: Path) -> None:
    folder = copy_fixture(tmp_path, b"1\t1001\t1\n1\t1001\t1\n")
    notices: list[str] = []

    goldset = load_beir_goldset(folder, on_notice=notices.append)

    assert goldset.judgments == (Judgment("1", "1001", 1),)
    assert notices[1:] == [
        f"{folder / 'qrels' / 'test.tsv'}: 1 repeated judgment(s) with the same "
        "grade (first on line 2) were imported once"
    ]


QRELS_PROBLEMS = {
    "score not an integer": (b"h\tc\tscore\r\n1\t1001\t1.5\r\n", [("test.tsv", 2, "score")]),
    "too few columns": (b"1\t1001\r\n", [("test.tsv", 1, None)]),
    "empty corpus id": (b"1\t\t1\n", [("test.tsv", 1, "corpus-id")]),
    "conflicting grades": (b"1\t1001\t1\n1\t1001\t2\n", [("test.tsv", 2, "score")]),
    "unknown query, reported once": (
        b"1\t1001\t1\n9\t1001\t1\n9\t1002\t1\n",
        [("test.tsv", 2, "query-id")],
    ),
    "no judgments": (b"query-id\tcorpus-id\tscore\r\n", [("test.tsv", None, None)]),
    # A first row was skipped as a header whenever its score was no integer: its judgment
    # was lost without a word.
    "first row with a fractional score": (
        b"1\t1001\t1.5\n1\t1002\t1\n",
        [("test.tsv", 1, "score")],
    ),
    # int() reads "1_0" as 10 and "２" as 2; BEIR's int() as well, trec_eval's atol() not.
    "score with an underscore": (b"1\t1001\t1_0\n", [("test.tsv", 1, "score")]),
    "score in full-width digits": ("1\t1001\t\uff12\n".encode(), [("test.tsv", 1, "score")]),
}


@pytest.mark.parametrize(
    ("qrels", "expected"), list(QRELS_PROBLEMS.values()), ids=list(QRELS_PROBLEMS)
)
def test_qrels_problems(
    tmp_path: Path, qrels: bytes, expected: list[tuple[str, int | None, str | None]]
) -> None:
    folder = copy_fixture(tmp_path, qrels)

    with pytest.raises(GoldsetError) as caught:
        load_beir_goldset(folder)

    assert problem_locations(caught.value) == expected


def test_unknown_query_problem_counts_its_lines(tmp_path: Path) -> None:
    folder = copy_fixture(tmp_path, b"9\t1001\t1\n9\t1002\t1\n9\t1003\t0\n")

    with pytest.raises(GoldsetError) as caught:
        load_beir_goldset(folder)

    assert "query '9' (and 2 more lines for it)" in caught.value.problems[0].detail


def test_queries_problems(tmp_path: Path) -> None:
    folder = copy_fixture(tmp_path, b"1\t1001\t1\n")
    (folder / "queries.jsonl").write_text(
        '{"_id": "1", "text": "fine"}\n'
        '{"_id": "2", "text": ""}\n'
        '{"text": "no id"}\n'
        '{"_id": "1", "text": "again"}\n'
        "{oops\n",
        encoding="utf-8",
    )

    with pytest.raises(GoldsetError) as caught:
        load_beir_goldset(folder)

    assert problem_locations(caught.value) == [
        ("queries.jsonl", 2, "text"),
        ("queries.jsonl", 3, "_id"),
        ("queries.jsonl", 4, "_id"),
        ("queries.jsonl", 5, None),
    ]


def test_integer_query_ids_match_qrels(tmp_path: Path) -> None:
    folder = copy_fixture(tmp_path, b"7\t1001\t1\n")
    (folder / "queries.jsonl").write_text('{"_id": 7, "text": "seven"}\n', encoding="utf-8")

    assert load_beir_goldset(folder).queries == (Query(id="7", text="seven"),)


def test_a_beir_folder_imported_as_jsonl_says_to_use_format_beir(
    evalkit_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without --format beir, every `_id` was a problem to fix by hand."""
    code = invoke(["goldset", "import", str(FIXTURE), "--name", "tiny"])
    err = capsys.readouterr().err
    assert code == 2
    assert "field '_id'" in err
    assert err.rstrip().endswith(
        "The folder holds qrels/, as a BEIR dataset does: import it with --format beir (and "
        "--split)"
    )


def test_a_compressed_queries_file_is_one_problem_saying_to_decompress(tmp_path: Path) -> None:
    """Before, each line was "not valid UTF-8; save the file as UTF-8", then every judged
    query was "not in queries.jsonl"."""
    folder = copy_fixture(tmp_path, b"1\t1001\t1\n3\t1003\t1\n")
    queries = folder / "queries.jsonl"
    queries.write_bytes(gzip.compress(queries.read_bytes()))

    with pytest.raises(GoldsetError) as caught:
        load_beir_goldset(folder)

    assert problem_locations(caught.value) == [("queries.jsonl", None, None)]
    assert caught.value.problems[0].detail.startswith("holds gzip-compressed data, not text")


def test_a_download_holding_queries_jsonl_gz_is_told_to_decompress_it(tmp_path: Path) -> None:
    """BEIR datasets downloaded from the Hugging Face hub hold queries.jsonl.gz."""
    folder = copy_fixture(tmp_path, b"1\t1001\t1\n")
    queries = folder / "queries.jsonl"
    (folder / "queries.jsonl.gz").write_bytes(gzip.compress(queries.read_bytes()))
    queries.unlink()

    with pytest.raises(GoldsetError) as caught:
        load_beir_goldset(folder)

    assert problem_locations(caught.value) == [("queries.jsonl", None, None)]
    assert caught.value.problems[0].detail == (
        "does not exist, but queries.jsonl.gz is beside it: evalkit reads uncompressed text, "
        "so decompress it first (gunzip -c queries.jsonl.gz > queries.jsonl)"
    )


def test_the_zip_of_a_beir_dataset_is_told_to_be_unpacked(tmp_path: Path) -> None:
    """BEIR ships its datasets as zips; given one, each file inside was "does not exist"."""
    archive = tmp_path / "scifact.zip"
    with zipfile.ZipFile(archive, "w") as packed:
        for file in FIXTURE.rglob("*"):
            packed.write(file, file.relative_to(FIXTURE))

    with pytest.raises(GoldsetError) as caught:
        load_beir_goldset(archive)

    (problem,) = caught.value.problems
    assert problem.path == str(archive)
    assert problem.detail == (
        "is a zip file, not a folder: unpack it first (unzip scifact.zip) and give the folder "
        "it holds"
    )


def test_a_missing_folder_is_one_problem(tmp_path: Path) -> None:
    with pytest.raises(GoldsetError) as caught:
        load_beir_goldset(tmp_path / "nope")

    assert problem_locations(caught.value) == [("nope", None, None)]


def test_a_query_repeated_word_for_word_is_imported_once(tmp_path: Path) -> None:
    """As a judgment repeated with its grade is: queries files joined from two splits repeat
    their shared queries. Before, it was a duplicate id that stopped the import."""
    folder = copy_fixture(tmp_path, b"1\t1001\t1\n3\t1003\t1\n")
    queries = folder / "queries.jsonl"
    queries.write_bytes(queries.read_bytes() + b'{"_id": "1", "text": "Aspirin lowers fever."}\n')
    notices: list[str] = []

    goldset = load_beir_goldset(folder, on_notice=notices.append)

    assert (
        goldset.version
        == load_beir_goldset(copy_fixture(tmp_path / "b", b"1\t1001\t1\n3\t1003\t1\n")).version
    )
    assert goldset.query_ids == ("1", "3")
    assert notices == [
        f"{queries}: 2 of its 4 queries have no judgment in test.tsv and were left out, as "
        "BEIR and trec_eval leave them out",
        f"{queries}: 1 repeated query with the same id and text (first on line 5) was imported "
        "once",
    ]


def test_a_query_id_repeated_with_another_text_is_a_problem(tmp_path: Path) -> None:
    folder = copy_fixture(tmp_path, b"1\t1001\t1\n")
    queries = folder / "queries.jsonl"
    queries.write_bytes(queries.read_bytes() + b'{"_id": "1", "text": "Aspirin raises fever."}\n')

    with pytest.raises(GoldsetError) as caught:
        load_beir_goldset(folder)

    assert problem_locations(caught.value) == [("queries.jsonl", 5, "_id")]
    assert caught.value.problems[0].detail == (
        "duplicate query id '1' with another text (first on line 1); query ids must be unique"
    )


def test_the_import_says_how_many_queries_the_split_left_out(
    evalkit_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """It said "2 queries, 3 judgments" of a queries file holding 4, and not why."""
    code = invoke(["goldset", "import", "--format", "beir", str(FIXTURE), "--name", "tiny"])

    said = capsys.readouterr()
    assert code == 0
    assert said.out.startswith("goldset tiny version ")
    assert ": 2 queries, 3 judgments, stored as a new version" in said.out
    assert " ".join(said.err.split()) == (
        f"note: {FIXTURE / 'queries.jsonl'}: 2 of its 4 queries have no judgment in test.tsv "
        "and were left out, as BEIR and trec_eval leave them out"
    )
