"""A run exported from one store and gated in another: `evalkit runs export --format
parquet`, then `evalkit gate --baseline DIR` (or `evalkit runs import DIR`) in a second
store, as the GitHub Action's baseline travels from main's job to a pull request's.

The imported run keeps its provenance, so the gate names the probable causes of a
regression (null for a TREC run file), and importing it again adds nothing.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pytest

from evalkit.cli import invoke
from evalkit.embedding.fingerprint import fingerprint_from_canaries
from evalkit.store import Store
from evalkit.store.export import GOLDSET_FILES, PARQUET_FILES, import_run

N_QUERIES = 30

RETRIEVER = '''
"""A keyword retriever over three documents per topic; ``missing`` ones are not indexed."""

from evalkit.records import QueryResult
from evalkit.retrievers.base import ranked_docs

DOCS = [(f"d{q}_{r}", {f"topic{q}", f"alpha{q}"} | ({f"beta{q}"} if r != 1 else set()))
        for q in range(30) for r in range(3)]


class Keywords:
    def __init__(self, missing):
        self.docs = [(doc_id, terms) for doc_id, terms in DOCS if doc_id not in missing]

    def retrieve(self, queries, k):
        results = []
        for query in queries:
            words = set(query.text.split())
            scored = sorted(((len(words & t), d) for d, t in self.docs if words & t),
                            key=lambda pair: (-pair[0], pair[1]))[:k]
            docs = ranked_docs([d for _, d in scored], [float(s) for s, _ in scored])
            results.append(QueryResult(query.id, docs, 1.0))
        return results


def make():
    return Keywords(set())


def make_lossy():
    """Two of every topic's three documents never made it into the index."""
    return Keywords({f"d{q}_{r}" for q in range(30) for r in (0, 2)})
'''


def write_goldset(where: Path, *, regraded: int = 0) -> Path:
    """The goldset: topic q's three documents relevant to query q (the first graded 2);
    ``regraded`` queries have their first document judged 1 instead."""
    where.mkdir(parents=True)
    (where / "queries.jsonl").write_text(
        "".join(
            json.dumps({"id": f"q{q}", "text": f"topic{q} alpha{q} beta{q}"}) + "\n"
            for q in range(N_QUERIES)
        )
    )
    (where / "judgments.jsonl").write_text(
        "".join(
            json.dumps(
                {
                    "query_id": f"q{q}",
                    "doc_id": f"d{q}_{r}",
                    "relevance": 1 + (r == 0 and q >= regraded),
                }
            )
            + "\n"
            for q in range(N_QUERIES)
            for r in range(3)
        )
    )
    return where


@dataclass(frozen=True)
class Cli:
    """evalkit's CLI in one EVALKIT_HOME (a store of its own)."""

    home: Path
    monkeypatch: pytest.MonkeyPatch
    capsys: pytest.CaptureFixture[str]

    def __call__(self, *args: str) -> tuple[int, str, str]:
        self.monkeypatch.setenv("EVALKIT_HOME", str(self.home))
        self.capsys.readouterr()
        code = invoke(list(args))
        captured = self.capsys.readouterr()
        return code, captured.out, captured.err

    def json(self, *args: str, expect: int = 0) -> Any:
        code, out, err = self(*args, "--format", "json")
        assert code == expect, err + out
        return json.loads(out)

    def goldset(self, path: Path) -> None:
        code, _, err = self("goldset", "import", str(path), "--name", "support")
        assert code == 0, err

    @property
    def store(self) -> Path:
        return self.home / "evalkit.duckdb"


@pytest.fixture
def clis(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> tuple[Cli, Cli]:
    """Main's store and a pull request's, the user's retriever module importable by both."""
    (tmp_path / "keywords.py").write_text(RETRIEVER)
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("EVALKIT_CONFIG", "EVALKIT_STORE_PATH", "EVALKIT_CHROMA_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return Cli(tmp_path / "main", monkeypatch, capsys), Cli(tmp_path / "pr", monkeypatch, capsys)


def baseline_export(main: Cli, tmp_path: Path) -> tuple[dict[str, Any], Path]:
    """Main's run of the goldset (written to ``tmp_path/goldset``), exported as Parquet to
    ``tmp_path/baseline``; its record and the export."""
    directory = tmp_path / "baseline"
    main.goldset(write_goldset(tmp_path / "goldset"))
    run = main.json("run", "--goldset", "support", "--retriever", "keywords:make", "--k", "10")
    code, _, err = main(
        "runs", "export", run["run_id"], "--format", "parquet", "--output", str(directory)
    )
    assert code == 0, err
    assert run["status"] == "complete"
    return dict(run), directory


def gate(cli: Cli, baseline: Path, tmp_path: Path, *, expect: int = 1) -> tuple[Any, str]:
    markdown = tmp_path / f"gate-{cli.home.name}.md"
    data = cli.json(
        "gate",
        "--baseline",
        str(baseline),
        "--goldset",
        "support",
        "--retriever",
        "keywords:make_lossy",
        "-m",
        "ndcg@10",
        "--resamples",
        "1000",
        "--markdown",
        str(markdown),
        expect=expect,
    )
    return data, markdown.read_text(encoding="utf-8")


@pytest.mark.slow
def test_a_gate_against_an_exported_run_names_the_probable_causes(
    clis: tuple[Cli, Cli], tmp_path: Path
) -> None:
    main, pr = clis
    run, exported = baseline_export(main, tmp_path)
    assert sorted(p.name for p in exported.iterdir()) == sorted(PARQUET_FILES + GOLDSET_FILES)

    pr.goldset(tmp_path / "goldset")
    data, markdown = gate(pr, exported, tmp_path)
    assert data["decision"] == "regression"
    assert data["baseline"] == run["run_id"]
    causes = data["probable_causes"]
    assert causes is not None, "an exported baseline is a stored run: causes are computed"
    assert causes["baseline"] == run["run_id"]
    kinds = [cause["kind"] for cause in causes["causes"]]
    assert "absent_from_results" in kinds, kinds
    (absent,) = [c for c in causes["causes"] if c["kind"] == "absent_from_results"]
    assert absent["statement"].startswith("probably missing from the index: 60 of the")
    assert "probably missing from the index: 60 of the" in markdown
    assert "### Probable causes" in markdown

    # The baseline is stored as it was recorded on main, saying where it came from.
    listed = {r["run_id"]: r for r in pr.json("runs", "list")}
    imported = listed[run["run_id"]]
    assert imported["imported_from"] == str(exported.resolve())
    for field in ("retriever", "retriever_config", "model", "index_fingerprint", "k"):
        assert imported[field] == run[field], field
    assert imported["goldset_version"] == run["goldset_version"]
    assert imported["aggregates"] == pytest.approx(run["aggregates"])
    assert imported["started_at"] == run["started_at"]
    code, table, _ = pr("runs", "list")
    assert code == 0
    assert "imported from" in table
    code, shown, _ = pr("runs", "show", run["run_id"])
    assert code == 0
    assert f"from {exported.resolve()}" in shown

    # A second gate (a later push to the pull request) imports nothing twice.
    again, _ = gate(pr, exported, tmp_path)
    assert again["probable_causes"]["baseline"] == run["run_id"]
    code, out, err = pr("runs", "import", str(exported / "run.json"))
    assert code == 0, err
    assert out.startswith(f"run {run['run_id']} is stored already: nothing imported")
    with duckdb.connect(str(pr.store), read_only=True) as con:
        counts = con.execute(
            "SELECT (SELECT count(*) FROM runs WHERE run_id = $1),"
            " (SELECT count(*) FROM run_results WHERE run_id = $1),"
            " (SELECT count(*) FROM query_metrics WHERE run_id = $1)",
            [run["run_id"]],
        ).fetchone()
    with duckdb.connect(str(main.store), read_only=True) as con:
        expected = con.execute(
            "SELECT 1, (SELECT count(*) FROM run_results WHERE run_id = $1),"
            " (SELECT count(*) FROM query_metrics WHERE run_id = $1)",
            [run["run_id"]],
        ).fetchone()
    assert counts == expected


@pytest.mark.slow
def test_an_imported_run_is_no_default_baseline_for_the_stores_own_runs(
    clis: tuple[Cli, Cli], tmp_path: Path
) -> None:
    main, pr = clis
    _, exported = baseline_export(main, tmp_path)
    pr.goldset(tmp_path / "goldset")
    imported = pr.json("runs", "import", str(exported))
    assert imported["imported"] is True
    local = pr.json("run", "--goldset", "support", "--retriever", "keywords:make", "--k", "10")
    # The only earlier run of the series ran on main's index: explain needs it named.
    code, _, err = pr("explain", local["run_id"])
    assert code == 2
    assert "no earlier finished run" in err
    named = pr.json("explain", local["run_id"], "--baseline", imported["run_id"])
    assert named["baseline"] == imported["run_id"]


@pytest.mark.slow
def test_the_baselines_goldset_version_travels_with_it(
    clis: tuple[Cli, Cli], tmp_path: Path
) -> None:
    main, pr = clis
    _, exported = baseline_export(main, tmp_path)
    # The pull request regrades 12 queries' first document: a goldset version main never
    # had, so the old judgments exist only in the export.
    pr.goldset(write_goldset(tmp_path / "new", regraded=12))
    data, _ = gate(pr, exported, tmp_path)
    (changed,) = [c for c in data["probable_causes"]["causes"] if c["kind"] == "goldset_changed"]
    # Both runs were scored on `--goldset support`: the regrading explains none of the loss.
    assert (
        "the judgments of 12 queries differ between the versions, but both runs were scored "
        "on the same judgments, so the change accounts for none of the ndcg@10 loss; 0 queries "
        "added and 0 removed are not compared"
    ) in changed["statement"]
    assert changed["score"] == 0
    # The old version's judgments are stored under no goldset name: `--goldset support`
    # still means the pull request's version.
    with duckdb.connect(str(pr.store), read_only=True) as con:
        names = con.execute("SELECT name, version FROM goldsets").fetchall()
    ((name, version),) = names
    assert name == "support"
    assert version != main_version(main)


def main_version(cli: Cli) -> str:
    with duckdb.connect(str(cli.store), read_only=True) as con:
        row = con.execute("SELECT version FROM goldsets").fetchone()
    assert row is not None
    return str(row[0])


@pytest.mark.slow
def test_a_broken_export_is_refused_naming_the_file_and_field(
    clis: tuple[Cli, Cli], tmp_path: Path
) -> None:
    main, pr = clis
    _, exported = baseline_export(main, tmp_path)
    record = json.loads((exported / "run.json").read_text())
    (exported / "run.json").write_text(json.dumps({**record, "k": "ten"}))
    code, _, err = pr("runs", "import", str(exported))
    assert code == 2
    assert f"{exported / 'run.json'} field 'k': expected int, found 'ten'" in err
    (exported / "run.json").write_text(json.dumps({**record, "status": "running"}))
    code, _, err = pr("runs", "import", str(exported))
    assert code == 2
    assert "field 'status': a run export holds a finished run" in err
    # Which of two values was meant is anyone's guess: json.loads would keep the last.
    (exported / "run.json").write_text(json.dumps(record)[:-1] + f', "k": {record["k"] + 1}}}')
    code, _, err = pr("runs", "import", str(exported))
    assert code == 2
    assert f"{exported / 'run.json'} field 'k': appears twice in one object; keep one" in err
    (exported / "queries.parquet").unlink()
    code, _, err = pr("runs", "import", str(exported))
    assert code == 2
    assert f"{exported}: not a run export: queries.parquet missing" in err
    with Store.open(pr.store, read_only=True) as store:
        assert store.fetch("SELECT count(*) FROM runs") == [(0,)]


@pytest.mark.slow
def test_the_query_models_canary_embeddings_travel_with_the_run(
    clis: tuple[Cli, Cli], tmp_path: Path
) -> None:
    """An imported baseline is compared with the pull request's runs by canary cosine, so
    its canary embeddings travel in run.json; a broken value is refused, naming the field."""
    main, pr = clis
    _, exported = baseline_export(main, tmp_path)
    pr.goldset(tmp_path / "goldset")
    vectors = np.random.default_rng(3).normal(size=(8, 384))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    model = fingerprint_from_canaries("all-MiniLM-L6-v2", 384, vectors.astype(np.float32))
    canaries = base64.b64encode(model.canary_vectors).decode("ascii")
    record = json.loads((exported / "run.json").read_text())
    described = {"name": model.name, "dimension": 384, "fingerprint": model.canary_hash}
    run_json = exported / "run.json"
    for broken, message in (
        ("not base64!", "expected the canary embeddings in base64"),
        (canaries[:8], "expected float16 canary embeddings of 384 dimensions, found 6 bytes"),
    ):
        run_json.write_text(json.dumps({**record, "model": {**described, "canaries": broken}}))
        code, _, err = pr("runs", "import", str(exported))
        assert code == 2
        assert f"{run_json} field 'model.canaries': {message}" in err
    with Store.open(pr.store, read_only=True) as store:
        assert store.fetch("SELECT count(*) FROM runs") == [(0,)]

    run_json.write_text(json.dumps({**record, "model": {**described, "canaries": canaries}}))
    imported = pr.json("runs", "import", str(exported))
    with Store.open(pr.store, read_only=True) as store:
        assert store.fetch("SELECT model_canaries FROM runs") == [(model.canary_vectors,)]
    # About 8 KB a run: an export carries them on, a listing of runs does not.
    assert pr.json("runs", "show", imported["run_id"])["model"] == described
    assert all("canaries" not in run["model"] for run in pr.json("runs", "list"))
    again = tmp_path / "again"
    pr("runs", "export", imported["run_id"], "--format", "parquet", "--output", str(again))
    exported_again = json.loads((again / "run.json").read_text())
    assert exported_again["model"] == {**described, "canaries": canaries}


@pytest.mark.slow
def test_a_run_id_evalkit_does_not_write_is_refused_and_nothing_is_stored(
    clis: tuple[Cli, Cli], tmp_path: Path
) -> None:
    """An empty id, one with a path or a control character in it, or 100,000 characters
    were stored as given (an id with a NUL cut short at it), and no command could name them."""
    main, pr = clis
    _, exported = baseline_export(main, tmp_path)
    run_json = exported / "run.json"
    record = json.loads(run_json.read_text())
    found = {
        "": "''",
        " 20261121T183500-3f9a1c ": "' 20261121T183500-3f9a1c '",
        "../../../tmp/PWNED": "'../../../tmp/PWNED'",
        "x" * 100_000: repr("x" * 40 + "..."),
        "20261121T183500-3f9a1c\x1b]0;PWN\x07": "'20261121T183500-3f9a1c\\x1b]0;PWN\\x07'",
        "x\x00y": "'x\\x00y'",
        "20261121T183500-3f9a1c\n": "'20261121T183500-3f9a1c\\n'",
        "20261121T183500-3F9A1C": "'20261121T183500-3F9A1C'",
    }
    for run_id, shown in found.items():
        run_json.write_text(json.dumps({**record, "run_id": run_id}))
        code, _, err = pr("runs", "import", str(exported))
        assert code == 2, run_id
        assert (
            f"{run_json} field 'run_id': expected a run id as evalkit writes them (start time "
            f"and six hex digits, such as 20261121T183500-3f9a1c), found {shown}"
        ) in err, run_id
    with Store.open(pr.store, read_only=True) as store:
        assert store.fetch("SELECT count(*) FROM runs") == [(0,)]
        assert store.fetch("SELECT count(*) FROM goldset_queries") == [(0,)]


@pytest.mark.slow
def test_an_export_edited_or_cut_short_is_refused_and_nothing_is_stored(
    clis: tuple[Cli, Cli], tmp_path: Path
) -> None:
    """A baseline whose figure was edited would be gated on as if the run had scored it."""
    main, pr = clis
    _, exported = baseline_export(main, tmp_path)
    run_json, record = exported / "run.json", json.loads((exported / "run.json").read_text())
    measure = record["measures"][0]
    edited = {**record, "aggregates": {**record["aggregates"], measure: 0.99}}
    run_json.write_text(json.dumps(edited))
    code, _, err = pr("runs", "import", str(exported))
    assert code == 2
    assert f"{run_json} field 'aggregates.{measure}': is 0.99, but the mean of" in err
    run_json.write_text(json.dumps(record))

    judgments = exported / "judgments.parquet"
    kept = judgments.read_bytes()
    judgments.unlink()
    code, _, err = pr("runs", "import", str(exported))
    assert code == 2
    assert "goldset version's rows; judgments.parquet missing" in err
    judgments.write_bytes(kept[: len(kept) // 2])
    code, _, err = pr("runs", "import", str(exported))
    assert code == 2
    assert f"{judgments}: not a readable Parquet file (" in err
    assert "store query failed" not in err
    judgments.write_bytes(kept)

    results = exported / "results.parquet"
    results.write_bytes((exported / "queries.parquet").read_bytes())
    code, _, err = pr("runs", "import", str(exported))
    assert code == 2
    assert f"{results} field 'rank': column missing" in err
    with Store.open(pr.store, read_only=True) as store:
        assert store.fetch("SELECT count(*) FROM runs") == [(0,)]


@pytest.mark.slow
def test_an_export_an_older_evalkit_wrote_without_its_goldset_files_is_imported(
    clis: tuple[Cli, Cli], tmp_path: Path
) -> None:
    """Exports written before they carried the goldset version had no goldset files, and
    after an upgrade every one of them was refused as broken, even by a store holding the
    very goldset version the run replayed, so a CI gate's baseline stopped working."""
    main, pr = clis
    run, exported = baseline_export(main, tmp_path)
    for name in GOLDSET_FILES:
        (exported / name).unlink()
    code, _, err = pr("runs", "import", str(exported))
    assert code == 2
    assert (
        f"{exported}: the export of a goldset run holds its goldset version's rows; "
        "goldset_queries.parquet, judgments.parquet missing, and the store "
        f"{pr.store} does not hold goldset version {run['goldset_version']} either (an export "
        "written by an evalkit older than the goldset files has none): import the goldset "
        "version the run replayed (`evalkit goldset import`) and import the run again, or "
        "export it again with this evalkit"
    ) in err
    with Store.open(pr.store, read_only=True) as store:
        assert store.fetch("SELECT count(*) FROM runs") == [(0,)]

    pr.goldset(tmp_path / "goldset")
    imported = pr.json("runs", "import", str(exported))
    assert imported["imported"] is True
    assert imported["goldset_stored"] is False
    assert imported["queries"] == N_QUERIES
    data, _ = gate(pr, exported, tmp_path)
    assert data["decision"] == "regression"
    assert data["probable_causes"]["baseline"] == run["run_id"]
    with duckdb.connect(str(pr.store), read_only=True) as con:
        totals = con.execute(
            "SELECT DISTINCT n_total FROM run_aggregates WHERE run_id = ?", [run["run_id"]]
        ).fetchall()
    assert totals == [(N_QUERIES,)]


def test_import_run_is_idempotent_in_the_store(clis: tuple[Cli, Cli], tmp_path: Path) -> None:
    main, pr = clis
    run, exported = baseline_export(main, tmp_path)
    with Store.open(pr.store) as store:
        first = import_run(store, exported)
        second = import_run(store, exported / "run.json")
        assert (first.imported, second.imported) == (True, False)
        assert first.goldset_stored
        assert (second.n_queries, second.n_results) == (first.n_queries, first.n_results)
        assert first.n_queries == N_QUERIES
        assert store.fetch("SELECT count(*) FROM runs") == [(1,)]
        assert store.fetch(
            "SELECT count(*) FROM goldset_queries WHERE goldset_version = ?",
            [run["goldset_version"]],
        ) == [(N_QUERIES,)]


@pytest.mark.slow
def test_a_run_export_is_compared_on_a_read_only_store(
    clis: tuple[Cli, Cli], tmp_path: Path
) -> None:
    """A CI job reading a store artifact on a read-only mount: `compare EXPORT RUN` opened
    the store for writing to import the export, and failed on the lock file ([Errno 30]),
    even when the store already held the exported run. It now compares read-only, and an
    export the store lacks is refused saying why. A reader also spilled beside the store."""
    import os
    import shutil
    import subprocess

    main, pr = clis
    run, exported = baseline_export(main, tmp_path)
    with Store.open(main.store, read_only=True) as store:
        spill = store.fetch("SELECT current_setting('temp_directory')")[0][0]
        assert not str(spill).startswith(str(main.home))
    code, _, err = pr("goldset", "import", str(tmp_path / "goldset"), "--name", "support")
    assert code == 0, err
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("a read-only bind mount needs root")
    mount = tmp_path / "ro"
    mount.mkdir()
    for command in (
        ["mount", "--bind", str(main.home), str(mount)],
        ["mount", "-o", "remount,ro,bind", str(mount)],
    ):
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            subprocess.run(["umount", "-l", str(mount)], check=False)
            pytest.skip(f"cannot bind-mount read-only here: {done.stderr.strip()}")
    try:
        reader = Cli(mount, main.monkeypatch, main.capsys)
        compared = reader.json("compare", str(exported), run["run_id"], "--resamples", "200")
        assert compared["baseline"] == compared["candidate"] == run["run_id"]
        other = tmp_path / "other"
        pr.json("run", "--goldset", "support", "--retriever", "keywords:make", "--k", "10")
        [pr_run] = pr.json("runs", "list")
        code, _, err = pr(
            "runs", "export", pr_run["run_id"], "--format", "parquet", "--output", str(other)
        )
        assert code == 0, err
        code, _, err = reader("compare", str(other), run["run_id"])
        assert code == 3
        assert "which the store" in err
        assert "is read-only here" in " ".join(err.split())
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)
