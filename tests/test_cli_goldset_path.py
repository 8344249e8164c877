"""``--goldset`` as a path on ``run``, ``gate`` and ``compare``, and the store found as git
finds ``.git``: each case runs the real ``evalkit`` CLI in a subprocess, in a project folder
with no EVALKIT_HOME unless the case sets one."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from evalkit_in_process import invoke_evalkit
from evalkit_process import fresh_env, run_evalkit
from overlap_retriever import overlap_retriever

REPOSITORY = Path(__file__).resolve().parent.parent
DEMO = REPOSITORY / "goldsets" / "demo"


def evalkit(
    cwd: Path, *args: str, home: Path | None = None, code: int = 0
) -> subprocess.CompletedProcess[str]:
    """Run ``evalkit ARGS`` in ``cwd``; check its exit code."""
    done = run_evalkit(*args, env=fresh_env(home), cwd=cwd)
    assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
    return done


def set_up(cwd: Path, *args: str, home: Path | None = None) -> None:
    """``evalkit ARGS`` in ``cwd`` run in this process, for a step that only sets a case up;
    it must succeed."""
    done = invoke_evalkit(*args, env=fresh_env(home), cwd=cwd)
    assert done.returncode == 0, (done.returncode, done.stdout, done.stderr)


def as_json(done: subprocess.CompletedProcess[str]) -> Any:
    return json.loads(done.stdout)


def run_json(cwd: Path, goldset: str, endpoint: str) -> Any:
    """``evalkit run`` in ``cwd`` of ``goldset`` against the retriever at ``endpoint``, k 10,
    as JSON."""
    args = ["--goldset", goldset, "--http-retriever", endpoint, "--k", "10"]
    return as_json(evalkit(cwd, "run", *args, "--format", "json"))


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project folder holding a copy of the demo goldset at goldsets/demo."""
    root = tmp_path / "project"
    shutil.copytree(DEMO, root / "goldsets" / "demo")
    return root


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with overlap_retriever() as url:
        yield url


def stored_versions(cwd: Path, *, home: Path | None = None) -> dict[str, list[str]]:
    listed = as_json(evalkit(cwd, "goldset", "list", "-o", "json", home=home))
    versions: dict[str, list[str]] = {}
    for row in listed:
        versions.setdefault(row["name"], []).append(row["version"])
    return versions


@pytest.mark.slow
def test_run_reads_a_goldset_folder_and_stores_the_version_import_makes(
    project: Path, endpoint: str
) -> None:
    run = run_json(project, "goldsets/demo", endpoint)
    assert run["status"] == "complete"
    assert run["goldset"] == "demo"
    assert run["n_queries"] == 129
    assert (project / ".evalkit" / "evalkit.duckdb").is_file()
    imported = as_json(
        evalkit(project, "goldset", "import", "goldsets/demo", "--name", "demo", "-o", "json")
    )
    assert imported["version"] == run["goldset_version"]
    assert imported["new_version"] is False
    assert stored_versions(project) == {"demo": [run["goldset_version"]]}


@pytest.mark.slow
def test_gate_and_compare_read_a_goldset_folder(project: Path, endpoint: str) -> None:
    base = run_json(project, "goldsets/demo", endpoint)
    gate = as_json(
        evalkit(
            project,
            "gate",
            "--baseline",
            base["run_id"],
            "--goldset",
            "goldsets/demo",
            "--http-retriever",
            endpoint,
            "--k",
            "10",
            "--resamples",
            "500",
            "--format",
            "json",
        )
    )
    assert gate["decision"] == "pass"
    assert gate["metrics"]["ndcg@10"]["n"] == 129
    compared = as_json(
        evalkit(
            project,
            "compare",
            base["run_id"],
            gate["candidate"],
            "--goldset",
            "./goldsets/demo/",
            "--resamples",
            "500",
            "--format",
            "json",
        )
    )
    assert compared["metrics"]["ndcg@10"]["delta"] == 0.0
    missing = evalkit(
        project,
        "gate",
        "--baseline",
        base["run_id"],
        "--candidate",
        gate["candidate"],
        "--goldset",
        "goldsets/nothing",
        code=2,
    )
    assert "goldset goldsets/nothing: no such file or folder" in missing.stderr


@pytest.mark.slow
def test_a_subdirectory_finds_the_store_of_a_parent(project: Path) -> None:
    set_up(project, "goldset", "import", "goldsets/demo", "--name", "demo")
    deeper = project / "src" / "pkg"
    deeper.mkdir(parents=True)
    assert list(stored_versions(deeper)) == ["demo"]
    evalkit(deeper, "goldset", "import", "../../goldsets/demo", "--name", "again")
    assert sorted(stored_versions(project)) == ["again", "demo"]
    assert not (deeper / ".evalkit").exists()
    assert not (project / "src" / ".evalkit").exists()


@pytest.mark.slow
def test_evalkit_home_wins_over_a_store_up_the_tree(project: Path, tmp_path: Path) -> None:
    set_up(project, "goldset", "import", "goldsets/demo", "--name", "demo")
    deeper = project / "src"
    deeper.mkdir()
    elsewhere = tmp_path / "elsewhere"
    nothing = evalkit(deeper, "goldset", "list", home=elsewhere, code=2)
    assert f"no evalkit store at {elsewhere / 'evalkit.duckdb'}" in nothing.stderr
    evalkit(deeper, "goldset", "import", "../goldsets/demo", "--name", "other", home=elsewhere)
    assert list(stored_versions(deeper, home=elsewhere)) == ["other"]
    assert list(stored_versions(deeper)) == ["demo"]


@pytest.mark.slow
def test_a_bare_word_is_a_stored_name_first_and_a_path_with_a_slash_is_files(
    project: Path, endpoint: str
) -> None:
    smaller = project / "smaller"
    smaller.mkdir()
    queries = (DEMO / "queries.jsonl").read_text().splitlines(keepends=True)
    (smaller / "queries.jsonl").write_text("".join(queries[:20]))
    kept = {json.loads(line)["id"] for line in queries[:20]}
    (smaller / "judgments.jsonl").write_text(
        "".join(
            line
            for line in (DEMO / "judgments.jsonl").read_text().splitlines(keepends=True)
            if json.loads(line)["query_id"] in kept
        )
    )
    set_up(project, "goldset", "import", "smaller", "--name", "demo")
    folder = project / "goldsets"

    assert run_json(folder, "demo", endpoint)["n_queries"] == 20
    assert run_json(folder, "./demo", endpoint)["n_queries"] == 129
    (folder / "demo").rename(folder / "fresh")
    assert run_json(folder, "fresh", endpoint)["n_queries"] == 129
    assert sorted(stored_versions(folder)) == ["demo", "fresh"]


@pytest.mark.slow
def test_goldset_list_keeps_each_version_whole_at_80_columns(tmp_path: Path) -> None:
    """Beside the absolute source paths, 80 columns cut each version to 034c87ce43…, which
    can no longer be copied into the next command."""
    home = tmp_path / "home"
    deep = tmp_path / "a folder with a long name" / "of goldsets kept for the nightly job"
    for name in ("demo", "demo-copy"):
        shutil.copytree(DEMO, deep / name)
        set_up(tmp_path, "goldset", "import", str(deep / name), "--name", name, home=home)
    versions = {
        version for listed in stored_versions(tmp_path, home=home).values() for version in listed
    }
    done = run_evalkit("goldset", "list", env=fresh_env(home, COLUMNS="80"), cwd=tmp_path)
    listed = done.stdout
    assert done.returncode == 0, done.stderr
    assert versions
    assert all(version in listed for version in versions), listed
