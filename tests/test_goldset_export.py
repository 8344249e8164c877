"""`evalkit goldset export` and `goldset show` against a real DuckDB file: a stored version
back as files (byte-stable through an import, whatever made it), in BEIR and TREC the same
judgments, and a goldset's history (counts, provenance, tags, changes)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO_ROOT

from evalkit.cli import invoke
from evalkit.goldset import load_goldset
from evalkit.store import Store
from evalkit.store.goldsets import list_goldsets, load_stored_goldset

DEMO = REPO_ROOT / "goldsets" / "demo"
SOURCE = "Tides follow the moon. The sun adds a bit. Waves break."


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    return path


def cli_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, Any]:
    code = invoke([*args, "-o", "json"])
    out = capsys.readouterr().out
    return code, json.loads(out) if out.strip() else None


def files_of(folder: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(folder)): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


@pytest.fixture
def tides(evalkit_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """A goldset with every query field, span judgments and a query without judgments,
    stored as ``tides``; its folder (with its corpus)."""
    folder = tmp_path / "tides"
    write_jsonl(
        folder / "queries.jsonl",
        [
            {"id": "q1", "text": "what  causes\ttides", "tenant": "acme", "tags": ["sea", "hard"],
             "reference_answer": "The moon.", "reference_context_ids": ["s"]},
            {"id": "q2", "text": "kelp & <cold> water", "tags": ["sea"]},
            {"id": "q3", "text": "not judged yet"},
        ],
    )  # fmt: skip
    write_jsonl(
        folder / "judgments.jsonl",
        [
            {"query_id": "q1", "doc_id": "s", "relevance": 2, "source_id": "s", "start": 0,
             "end": 22, "text": "Tides follow the moon."},
            {"query_id": "q1", "doc_id": "s2", "relevance": 0, "source_id": "s", "start": 43,
             "end": 55},
            {"query_id": "q2", "doc_id": "k", "relevance": 1},
        ],
    )  # fmt: skip
    write_jsonl(
        folder / "corpus.jsonl", [{"id": "s", "text": SOURCE}, {"id": "k", "text": "Kelp."}]
    )
    assert invoke(["goldset", "import", str(folder), "--name", "tides"]) == 0
    capsys.readouterr()
    return folder


def test_export_import_export_gives_the_same_files_and_version(
    tides: Path, evalkit_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, first = cli_json(capsys, "goldset", "export", "tides", "--out", str(tmp_path / "one"))
    assert code == 0, first
    version = first["version"]
    assert (first["reads_back_as"], first["notes"]) == (version, [])
    assert first["import_command"] == f"evalkit goldset import {tmp_path / 'one'} --name tides"
    assert load_goldset(tmp_path / "one").version == version
    judgments = (tmp_path / "one" / "judgments.jsonl").read_text(encoding="utf-8")
    assert '"start": 0, "end": 22, "text": "Tides follow the moon."' in judgments
    code, again = cli_json(capsys, "goldset", "import", str(tmp_path / "one"), "--name", "copy")
    assert (code, again["version"], again["new_version"]) == (0, version, True)
    code, second = cli_json(capsys, "goldset", "export", "copy", "--out", str(tmp_path / "two"))
    assert (code, second["version"]) == (0, version)
    assert files_of(tmp_path / "one") == files_of(tmp_path / "two")
    # Byte for byte what write_jsonl_goldset writes, in a folder of just those two files.
    assert sorted(files_of(tmp_path / "one")) == ["judgments.jsonl", "queries.jsonl"]


def test_a_version_a_remap_made_exports_with_its_spans_and_imports_back(
    tides: Path, evalkit_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    chunks = write_jsonl(
        tmp_path / "chunks.jsonl",
        [
            {"id": "s#0", "text": SOURCE[:22], "source_id": "s", "start": 0, "end": 22},
            {"id": "s#1", "text": SOURCE[23:], "source_id": "s", "start": 23, "end": 55},
            {"id": "k#0", "text": "Kelp.", "source_id": "k", "start": 0, "end": 5},
        ],
    )
    code, remapped = cli_json(capsys, "goldset", "remap", "tides", "--corpus", str(chunks))
    assert code == 0, remapped
    out = tmp_path / "remapped"
    code, exported = cli_json(
        capsys, "goldset", "export", f"tides@{remapped['version'][:6]}", "--out", str(out)
    )
    assert (code, exported["version"]) == (0, remapped["version"])
    code, imported = cli_json(capsys, "goldset", "import", str(out), "--name", "tides")
    assert (code, imported["version"], imported["new_version"]) == (0, remapped["version"], False)
    with Store.open(evalkit_home / "evalkit.duckdb", read_only=True) as store:
        stored = load_stored_goldset(store, "tides", remapped["version"])
    assert {(j.doc_id, j.span) for j in load_goldset(out).judgments} == {
        (j.doc_id, j.span) for j in stored.judgments
    }
    assert {j.doc_id for j in stored.judgments} == {"s#0", "s#1", "k#0"}


@pytest.mark.parametrize(
    ("layout", "files", "reimport"),
    [
        ("beir", ["qrels/test.tsv", "queries.jsonl"], ["--format", "beir", "{out}"]),
        (
            "trec",
            ["qrels.txt", "topics.xml"],
            ["--format", "trec", "{out}/qrels.txt", "--topics", "{out}/topics.xml"],
        ),
    ],
)
def test_beir_and_trec_exports_import_to_the_same_judgments_and_say_what_they_lose(
    tides: Path,
    evalkit_home: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    layout: str,
    files: list[str],
    reimport: list[str],
) -> None:
    out = tmp_path / layout
    code, exported = cli_json(
        capsys, "goldset", "export", "tides", "--out", str(out), "--format", layout
    )
    assert code == 0, exported
    assert sorted(files_of(out)) == files
    notes = " ".join(exported["notes"])
    for lost in ("1 queries have no judgment", "tenants", "tags", "reference answers",
                 "2 judgments' spans", f"gives version {exported['reads_back_as']}"):  # fmt: skip
        assert lost in notes, notes
    args = [word.format(out=out) for word in reimport]
    code, imported = cli_json(capsys, "goldset", "import", *args, "--name", f"tides-{layout}")
    assert code == 0, imported
    assert imported["version"] == exported["reads_back_as"] != exported["version"]
    assert exported["import_command"].split() == [
        "evalkit", "goldset", "import", *args, "--name", "tides"
    ]  # fmt: skip
    with Store.open(evalkit_home / "evalkit.duckdb", read_only=True) as store:
        original = load_stored_goldset(store, "tides")
        back = load_stored_goldset(store, f"tides-{layout}")
    assert [(j.query_id, j.doc_id, j.relevance) for j in back.judgments] == [
        (j.query_id, j.doc_id, j.relevance) for j in original.judgments
    ]
    texts = {q.id: q.text for q in back.queries}
    assert texts["q2"] == "kelp & <cold> water"
    if layout == "beir":
        assert texts["q1"] == "what  causes\ttides"
    else:
        assert texts["q1"] == "what causes tides"
        assert "1 query texts read back with their white space collapsed (first: q1)" in notes
    # The same version exported again gives the same bytes.
    again = tmp_path / f"{layout}-again"
    assert invoke(["goldset", "export", "tides", "--out", str(again), "--format", layout]) == 0
    assert files_of(again) == files_of(out)


def test_ids_a_format_cannot_hold_are_refused_and_nothing_is_written(
    evalkit_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "spaced"
    write_jsonl(folder / "queries.jsonl", [{"id": "q 1", "text": "a query"}])
    write_jsonl(folder / "judgments.jsonl", [{"query_id": "q 1", "doc_id": "d\t1", "relevance": 1}])
    assert invoke(["goldset", "import", str(folder), "--name", "spaced"]) == 0
    capsys.readouterr()
    for layout, named in (("trec", "query 'q 1', document 'd\\t1'"), ("beir", "document 'd\\t1'")):
        out = tmp_path / layout
        assert invoke(["goldset", "export", "spaced", "--out", str(out), "--format", layout]) == 2
        err = " ".join(capsys.readouterr().err.split())
        assert f"cannot be written as {layout}" in err
        assert named in err
        assert "export it as jsonl" in err
        assert not out.exists()
    assert invoke(["goldset", "export", "spaced", "--out", str(tmp_path / "as-jsonl")]) == 0


def test_a_folder_that_holds_files_is_refused_without_overwrite(
    tides: Path, evalkit_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = files_of(tides)
    code = invoke(["goldset", "export", "tides", "--out", str(tides)])
    err = " ".join(capsys.readouterr().err.split())
    assert code == 2
    assert "is not empty (it holds corpus.jsonl, judgments.jsonl, queries.jsonl)" in err
    assert "--overwrite" in err
    assert files_of(tides) == before
    (tides / "queries.jsonl").write_text('{"id": "q1", "text": "edited"}\n', encoding="utf-8")
    assert invoke(["goldset", "export", "tides", "--out", str(tides), "--overwrite"]) == 0
    after = files_of(tides)
    assert after["corpus.jsonl"] == before["corpus.jsonl"]  # not the export's: left as it was
    assert set(after) == set(before)
    assert load_goldset(tides).version == load_goldset(tides, name="x").version
    with Store.open(evalkit_home / "evalkit.duckdb", read_only=True) as store:
        assert load_goldset(tides).version == load_stored_goldset(store, "tides").version
    file = tmp_path / "a-file"
    file.write_text("x", encoding="utf-8")
    assert invoke(["goldset", "export", "tides", "--out", str(file)]) == 2
    assert "is a file" in capsys.readouterr().err


def test_an_unknown_goldset_or_version_exits_2_naming_the_stored_ones(
    tides: Path, evalkit_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = str(tmp_path / "out")
    code, error = cli_json(capsys, "goldset", "export", "nosuch", "--out", out)
    assert code == 2
    assert "no goldset named 'nosuch'" in error["error"]["message"]
    assert "(stored: tides)" in error["error"]["message"]
    with Store.open(evalkit_home / "evalkit.duckdb", read_only=True) as store:
        (info,) = list_goldsets(store, "tides")
    assert invoke(["goldset", "export", "tides@ffff", "--out", out]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert f"goldset 'tides' has no version 'ffff'; stored versions: {info.version}" in err
    assert invoke(["goldset", "show", "nosuch"]) == 2
    assert "(stored: tides)" in " ".join(capsys.readouterr().err.split())
    assert not Path(out).exists()


def test_show_tells_each_version_its_counts_origin_tags_and_changes(
    tides: Path, evalkit_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    chunks = write_jsonl(
        tmp_path / "chunks.jsonl",
        [
            {"id": "s#0", "text": SOURCE[:22], "source_id": "s", "start": 0, "end": 22},
            {"id": "s#1", "text": SOURCE[23:], "source_id": "s", "start": 23, "end": 55},
            {"id": "k", "text": "Kelp."},
        ],
    )
    assert invoke(["goldset", "remap", "tides", "--corpus", str(chunks)]) == 0
    draft = tmp_path / "draft"
    write_jsonl(draft / "queries.jsonl", [{"id": "q4", "text": "moon and sea", "tags": ["new"]}])
    write_jsonl(draft / "judgments.jsonl", [{"query_id": "q4", "doc_id": "s#0", "relevance": None}])
    assert invoke(["review", "add", str(draft), "--goldset", "tides"]) == 0
    capsys.readouterr()
    code, items = cli_json(capsys, "review", "list", "--goldset", "tides")
    (item,) = items
    assert (
        invoke(["review", "grade", item["item_id"], "--reviewer", "ann", "--grade", "s#0=3"]) == 0
    )
    assert invoke(["goldset", "publish", "tides"]) == 0
    capsys.readouterr()

    code, shown = cli_json(capsys, "goldset", "show", "tides")
    assert code == 0, shown
    published, remapped, imported = shown["versions"]
    assert [v["current"] for v in shown["versions"]] == [True, False, False]
    assert imported["provenance"]["kind"] == "import"
    assert imported["provenance"]["source"] == str(tides)
    assert (imported["queries"], imported["judgments"], imported["relevant"]) == (3, 3, 2)
    assert imported["tags"] == {"sea": 2, "hard": 1}
    assert imported["changes"] is None
    assert remapped["provenance"]["kind"] == "remap"
    assert remapped["provenance"]["made_from"] == imported["version"]
    assert remapped["provenance"]["corpus"] == str(chunks)
    assert (remapped["provenance"]["mapped"], remapped["provenance"]["unmapped"]) == (3, 0)
    # s -> s#0 and s2 -> s#1 (two added, two gone); k stays k, now with its span (changed).
    assert remapped["changes"] == {
        "against": imported["version"],
        "queries_added": 0, "queries_removed": 0, "queries_edited": 0,
        "judgments_added": 2, "judgments_removed": 2, "judgments_changed": 1,
    }  # fmt: skip
    assert published["provenance"]["kind"] == "publish"
    assert published["provenance"]["made_from"] == remapped["version"]
    assert published["provenance"]["item_origins"] == {"traffic": 1}
    assert published["changes"] == {
        "against": remapped["version"],
        "queries_added": 1, "queries_removed": 0, "queries_edited": 0,
        "judgments_added": 1, "judgments_removed": 0, "judgments_changed": 0,
    }  # fmt: skip
    assert published["tags"] == {"sea": 2, "hard": 1, "new": 1}

    assert invoke(["goldset", "show", "tides"]) == 0
    table = " ".join(capsys.readouterr().out.split())
    assert f"tides version {published['version']} (current)" in table
    assert f"remap of tides {imported['version']} onto {chunks}" in table
    assert "publish of 1 reviewed items (traffic 1)" in table
    assert f"import of {tides}" in table
    assert "queries +1 -0 ~0; judgments +1 -0 ~0" in table
    assert "sea 2, hard 1" in table


def test_the_demo_goldset_round_trips_as_a_user_would_run_it(
    evalkit_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert invoke(["goldset", "import", str(DEMO), "--name", "demo"]) == 0
    assert invoke(["goldset", "export", "demo", "--out", "exported"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "import them with: evalkit goldset import exported --name demo" in out
    assert invoke(["goldset", "import", "exported", "--name", "demo"]) == 0
    assert "already stored (same content)" in capsys.readouterr().out
    assert load_goldset("exported").version == load_goldset(DEMO).version
