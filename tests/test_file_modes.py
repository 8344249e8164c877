"""Files evalkit writes for its user get the user's permissions: 0666 less the umask (0644
under umask 022), never mkstemp's private 0600. Each kind of file is written the way a user
writes it (the CLI, the pytest plugin's baseline, the model cache) under umask 022."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from plugin_sources import fixed_retriever_source
from query_log import logged_query, write_query_log

from evalkit.cli import invoke
from evalkit.config import load_settings
from evalkit.files import create_beside
from evalkit.pipeline import record_baseline
from evalkit.retrievers.factory import RetrieverOptions
from evalkit.store import Store

DEMO = Path(__file__).resolve().parents[1] / "goldsets" / "demo"


def mode(path: Path) -> str:
    return oct(stat.S_IMODE(path.stat().st_mode))


@pytest.fixture
def umask_022() -> Iterator[None]:
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


@pytest.fixture
def retriever(evalkit_home: Path, tmp_path: Path) -> str:
    """A stored demo goldset and a plug-in retriever importable from the working directory."""
    module = f"fixed_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{module}.py").write_text(fixed_retriever_source())
    assert invoke(["goldset", "import", "--format", "jsonl", str(DEMO), "--name", "demo"]) == 0
    return f"{module}:make"


def stored_run(retriever: str, capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    code = invoke(["run", "--goldset", "demo", "--retriever", retriever, "--format", "json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    return str(json.loads(out)["run_id"])


def test_create_beside_applies_the_umask(tmp_path: Path) -> None:
    previous = os.umask(0o027)
    try:
        descriptor, path = create_beside(tmp_path / "out.txt")
    finally:
        os.umask(previous)
    os.close(descriptor)
    assert path.parent == tmp_path
    assert path.name.startswith(".out.txt.")
    assert path.name.endswith(".partial")
    assert mode(path) == "0o640"


@pytest.mark.usefixtures("umask_022")
@pytest.mark.parametrize("form", ["trec", "jsonl", "parquet"])
def test_run_exports_respect_the_umask(
    retriever: str, tmp_path: Path, form: str, capsys: pytest.CaptureFixture[str]
) -> None:
    run_id = stored_run(retriever, capsys)
    target = tmp_path / f"export-{form}"
    assert invoke(["runs", "export", run_id, "--format", form, "--output", str(target)]) == 0
    written = sorted(target.iterdir()) if target.is_dir() else [target]
    assert written
    assert {path.name: mode(path) for path in written} == {path.name: "0o644" for path in written}


@pytest.mark.usefixtures("umask_022")
def test_gate_reports_respect_the_umask(
    retriever: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    baseline = stored_run(retriever, capsys)
    junit, markdown = tmp_path / "reports" / "gate.xml", tmp_path / "reports" / "gate.md"
    code = invoke(
        [
            "gate",
            "--baseline",
            baseline,
            "--goldset",
            "demo",
            "--retriever",
            retriever,
            "--junit",
            str(junit),
            "--markdown",
            str(markdown),
        ]
    )
    assert code == 0, capsys.readouterr().err
    assert (mode(junit), mode(markdown)) == ("0o644", "0o644")


@pytest.mark.usefixtures("umask_022")
def test_a_recorded_baseline_respects_the_umask(retriever: str, tmp_path: Path) -> None:
    settings = load_settings()
    baseline = tmp_path / "baselines" / "demo.run"
    with Store.open(settings.resolved_store_path) as store:
        record_baseline(
            store, "demo", RetrieverOptions(retriever=retriever), baseline, settings=settings
        )
    assert baseline.read_text().startswith("q")
    assert mode(baseline) == "0o644"


@pytest.mark.usefixtures("umask_022")
def test_a_promoted_draft_respects_the_umask(retriever: str, tmp_path: Path) -> None:
    logs = write_query_log(
        tmp_path, (logged_query(index, results=["d1", "d2"]) for index in range(4))
    )
    assert invoke(["traffic", "ingest", str(logs)]) == 0
    assert invoke(["traffic", "sample", "--window", "2026-11-21", "--n", "4"]) == 0
    replay = ["traffic", "replay", "--window", "2026-11-21", "--embed-sample", "0"]
    assert invoke([*replay, "--retriever", retriever, "--no-answers"]) == 0
    draft = tmp_path / "draft"
    code = invoke(["traffic", "promote", "--window", "2026-11-21", "--out", str(draft)])
    assert code == 0
    written = sorted(draft.iterdir())
    assert written
    assert {path.name: mode(path) for path in written} == {path.name: "0o644" for path in written}


@pytest.mark.slow
@pytest.mark.usefixtures("umask_022")
def test_the_model_cache_respects_the_umask(tmp_path: Path) -> None:
    from evalkit.embedding import EmbedBackend, load_embedder

    cache = tmp_path / "cache"
    embedder = load_embedder(backend=EmbedBackend.onnx, cache_dir=cache)
    assert embedder.backend == "onnxruntime"
    written = [path for path in cache.rglob("*") if path.is_file() and path.name != ".lock"]
    assert {path.parent.name for path in written} >= {"digests"}
    assert any(path.name == "model.onnx" for path in written)
    assert {str(path.relative_to(cache)): mode(path) for path in written} == {
        str(path.relative_to(cache)): "0o644" for path in written
    }


def test_an_output_folder_that_is_missing_or_a_file_is_named_not_the_temporary_file(
    tmp_path: Path,
) -> None:
    from evalkit.files import replace_text

    with pytest.raises(FileNotFoundError) as missing:
        replace_text(tmp_path / "nodir" / "tasks.json", "x")
    assert str(missing.value).startswith(f"{tmp_path / 'nodir'}: no such folder")
    assert ".partial" not in str(missing.value)
    (tmp_path / "afile").write_text("x")
    with pytest.raises(NotADirectoryError) as a_file:
        replace_text(tmp_path / "afile" / "tasks.json", "x")
    assert a_file.value.filename == str(tmp_path / "afile")


def test_review_export_into_a_missing_folder_names_the_folder(
    evalkit_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from test_review_queue import write_generated_draft

    draft = write_generated_draft(tmp_path / "draft")
    assert invoke(["review", "add", str(draft), "--goldset", "tay"]) == 0
    capsys.readouterr()
    out = tmp_path / "nodir" / "tasks.json"
    assert invoke(["review", "export", "--goldset", "tay", "--out", str(out)]) == 3
    said = capsys.readouterr().err
    assert f"{tmp_path / 'nodir'}: no such folder" in said
    assert ".partial" not in said


@pytest.mark.parametrize("dangling", [False, True])
def test_an_output_folder_given_as_a_symlink_is_written_through_and_nothing_left_beside(
    tmp_path: Path, dangling: bool
) -> None:
    """`goldset generate --overwrite` on a symlinked --out moved the link aside as
    `.NAME.HASH.replaced` (which it then failed to remove) and left the folder it named as
    it was: the folder the link names is replaced, and the link kept."""
    from evalkit.files import write_folder

    real = tmp_path / "drafts" / "v2"
    if not dangling:
        real.mkdir(parents=True)
        (real / "old.txt").write_text("old\n")
    link = tmp_path / "out" / "current"
    link.parent.mkdir()
    link.symlink_to(real, target_is_directory=True)
    if not dangling:
        with pytest.raises(FileExistsError) as caught:
            write_folder(link, {"queries.jsonl": "new\n"}, overwrite=False)
        assert caught.value.filename == str(link)
        assert (real / "old.txt").exists()
    write_folder(link, {"queries.jsonl": "new\n"}, overwrite=True)
    assert link.is_symlink()
    assert link.resolve() == real.resolve()
    assert sorted(p.name for p in real.iterdir()) == ["queries.jsonl"]
    assert (link / "queries.jsonl").read_text() == "new\n"
    assert sorted(p.name for p in link.parent.iterdir()) == ["current"]
    assert sorted(p.name for p in real.parent.iterdir()) == ["v2"]
