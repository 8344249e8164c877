"""Sweeps (``evalkit sweep``) against an embedded Chroma index of part of the demo corpus
built with the bundled MiniLM: every point a stored, tagged run; a sweep run again runs only what is
missing; bad sweep files refused naming the key; Chroma's ef_search really searched with;
the Pareto front on known figures; one sweep on the Ray engine and one as a scheduled job."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from demo_index import DEMO_DIR
from evalkit_process import EVALKIT
from gate_inputs import write_goldset_files
from loopback import JSONHandler, running
from pydantic import ValidationError
from terminal import run_on_terminal, terminal_env

from evalkit.cli import invoke
from evalkit.config import Settings, load_settings
from evalkit.embedding import LazyEmbedder, ModelFingerprint
from evalkit.engines.ray import LOCAL_RAY_ENV
from evalkit.errors import ConfigError
from evalkit.goldset import iter_corpus
from evalkit.pipeline import pareto_front
from evalkit.pipeline.sweep import load_sweep
from evalkit.pipeline.sweep.run import SweepPlan
from evalkit.records import Query, QueryResult
from evalkit.retrievers import ChromaRetriever
from evalkit.retrievers.chroma import hnsw_ef_search
from evalkit.retrievers.chroma_client import close_client, get_collection, open_chroma_client
from evalkit.retrievers.factory import RetrieverOptions, build_retriever
from evalkit.retrievers.indexing import index_corpus
from evalkit.scheduler import JOB_KINDS, JobContext
from evalkit.store import Store
from evalkit.store.access import StoreAccess
from evalkit.store.runs import list_runs, run_results

pytestmark = pytest.mark.slow

GRID = """
name = "{name}"
goldset = "{goldset}"
measures = ["ndcg@10", "recall@10"]

[retriever]
collection = "demo"

[grid]
k = [10, 20]
ef_search = [10, 100]
"""


N_QUERIES = 40
N_UNJUDGED = 60


@pytest.fixture(scope="module")
def small_demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A goldset folder of the demo's first ``N_QUERIES`` queries with their judgments, and
    a corpus of the documents they judge and ``N_UNJUDGED`` others."""
    folder = tmp_path_factory.mktemp("small-demo")
    queries = (DEMO_DIR / "queries.jsonl").read_text(encoding="utf-8").splitlines()[:N_QUERIES]
    kept = {json.loads(line)["id"] for line in queries}
    judgments = [
        line
        for line in (DEMO_DIR / "judgments.jsonl").read_text(encoding="utf-8").splitlines()
        if json.loads(line)["query_id"] in kept
    ]
    judged = {json.loads(line)["doc_id"] for line in judgments}
    corpus = (DEMO_DIR / "corpus.jsonl").read_text(encoding="utf-8").splitlines()
    others = [line for line in corpus if json.loads(line)["id"] not in judged][:N_UNJUDGED]
    chosen = [line for line in corpus if json.loads(line)["id"] in judged] + others
    for name, lines in (("queries", queries), ("judgments", judgments), ("corpus", chosen)):
        (folder / f"{name}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def chroma_home(tmp_path_factory: pytest.TempPathFactory, small_demo: Path) -> Path:
    """An evalkit home whose embedded Chroma holds ``small_demo``'s corpus as collection
    ``demo``, embedded with the bundled MiniLM as `evalkit index` embeds it."""
    home = tmp_path_factory.mktemp("sweep-home")
    embedder = LazyEmbedder.from_settings(Settings(home=home))
    client = open_chroma_client(path=home / "chroma")
    try:
        index_corpus(
            client, iter_corpus(small_demo / "corpus.jsonl"), embedder, collection_name="demo"
        )
    finally:
        close_client(client)
        embedder.close()
    return home


@pytest.fixture
def home(chroma_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``chroma_home`` as EVALKIT_HOME, with a store of this test's own."""
    monkeypatch.setenv("EVALKIT_HOME", str(chroma_home))
    monkeypatch.setenv("EVALKIT_STORE_PATH", str(tmp_path / "evalkit.duckdb"))
    monkeypatch.delenv("EVALKIT_CONFIG", raising=False)
    monkeypatch.delenv("EVALKIT_CHROMA_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    return chroma_home


def write_sweep(folder: Path, text: str, name: str = "sweep.toml") -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def http_sweep(folder: Path, url: str, name: str, k: Sequence[int]) -> Path:
    """A sweep of ``k`` on goldset files ``gs`` against the loopback endpoint at ``url``."""
    return write_sweep(
        folder,
        f'name = "{name}"\ngoldset = "gs"\nmeasures = ["ndcg@10"]\n'
        f'[retriever]\nhttp_url = "{url}/search"\n[grid]\nk = {list(k)}\n',
    )


def sweep_json(
    capsys: pytest.CaptureFixture[str], path: Path, *args: str, expect: int = 0
) -> dict[str, Any]:
    code = invoke(["sweep", str(path), "--format", "json", *args])
    out, err = capsys.readouterr()
    assert code == expect, err + out
    data: dict[str, Any] = json.loads(out)
    return data


def stored_runs(tmp_path: Path, tag: str) -> list[Any]:
    with Store.open(tmp_path / "evalkit.duckdb") as store:
        return list_runs(store, tag=tag, limit=100)


def demo_ef_search(home: Path) -> int:
    client = open_chroma_client(path=home / "chroma")
    try:
        return hnsw_ef_search(get_collection(client, "demo"))
    finally:
        close_client(client)


def test_the_pareto_front_on_known_figures() -> None:
    points: Sequence[tuple[float | None, float | None]] = [
        (0.50, 10.0),  # 0: fastest of the good ones
        (0.60, 20.0),  # 1: best quality
        (0.55, 30.0),  # 2: dominated by 1
        (0.60, 20.0),  # 3: equal to 1, on the front with it
        (0.40, 5.0),  # 4: fastest of all
        (0.45, 5.0),  # 5: dominates 4 (as fast, better)
        (None, 1.0),  # 6: no quality
        (0.90, float("nan")),  # 7: no latency
        (0.58, 20.0),  # 8: dominated by 1 (as fast, worse)
    ]
    assert pareto_front(points) == [0, 1, 3, 5]
    assert pareto_front([]) == []
    assert pareto_front([(0.3, 1.0)]) == [0]


def test_a_grid_of_k_and_ef_search_stores_every_point_as_a_tagged_run(
    home: Path, small_demo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = demo_ef_search(home)
    path = write_sweep(tmp_path, GRID.format(name="grid", goldset=small_demo.as_posix()))
    data = sweep_json(capsys, path)

    assert (data["points_total"], data["points_already_run"], data["points_failed"]) == (4, 0, 0)
    settings = [point["settings"] for point in data["points"]]
    assert settings == [
        {"k": 10, "ef_search": 10},
        {"k": 10, "ef_search": 100},
        {"k": 20, "ef_search": 10},
        {"k": 20, "ef_search": 100},
    ]
    runs = {run.run_id: run for run in stored_runs(tmp_path, "sweep:grid")}
    assert len(runs) == 4
    for point in data["points"]:
        run = runs[point["run_id"]]
        k, ef_search = point["settings"]["k"], point["settings"]["ef_search"]
        assert run.status == "complete"
        assert set(run.spec.tags) == {
            "sweep:grid",
            f"sweep-point:{point['point_key']}",
            f"k={k}",
            f"ef_search={ef_search}",
        }
        assert run.spec.label == f"sweep grid: k={k} ef_search={ef_search}"
        assert run.spec.k == k
        assert run.spec.retriever_config["ef_search"] == ef_search
        assert run.spec.goldset_name == small_demo.name
        assert list(run.spec.measures) == ["ndcg@10", "recall@10"]
        assert point["aggregates"]["ndcg@10"] == run.aggregates["ndcg@10"]
        assert 0 < point["latency_p50_ms"] <= point["latency_p95_ms"]
    # The front is the one of the figures printed, best quality first.
    figures = [(p["aggregates"]["ndcg@10"], p["latency_p95_ms"]) for p in data["points"]]
    front = [data["points"][i]["number"] for i in pareto_front(figures)]
    assert sorted(data["pareto"]["points"]) == sorted(front)
    qualities = [data["points"][n - 1]["aggregates"]["ndcg@10"] for n in data["pareto"]["points"]]
    assert qualities == sorted(qualities, reverse=True)
    assert data["cost"] is None
    assert "not known" in data["cost_note"]
    # Chroma has no per-query ef_search: the collection's own is back once the sweep is done.
    assert demo_ef_search(home) == before


def test_an_interrupted_sweep_runs_only_the_missing_point_again(
    home: Path,
    small_demo: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = write_sweep(tmp_path, GRID.format(name="resume", goldset=small_demo.as_posix()))
    replay = ChromaRetriever.retrieve

    def outage_at_k20_ef10(self: ChromaRetriever, queries: Sequence[Query], k: int) -> Any:
        if k == 20 and self.describe()["ef_search"] == 10:
            raise RuntimeError("the vector store went away")
        return replay(self, queries, k)

    with monkeypatch.context() as patched:
        patched.setattr(ChromaRetriever, "retrieve", outage_at_k20_ef10)
        first = sweep_json(capsys, path, expect=1)
    failed = [point for point in first["points"] if point["status"] != "complete"]
    assert [point["settings"] for point in failed] == [{"k": 20, "ef_search": 10}]
    assert failed[0]["status"] == "failed"
    assert "the vector store went away" in failed[0]["error"]
    assert failed[0]["run_id"] is not None  # the failed run is stored, as any run's is
    kept = {p["number"]: p["run_id"] for p in first["points"] if p["status"] == "complete"}

    assert invoke(["sweep", str(path)]) == 0
    err = capsys.readouterr().err
    assert "3 of 4 points already run; running 1" in err
    assert "point 3/4 k=20 ef_search=10: running" in err
    assert "point 1/4" not in err
    runs = stored_runs(tmp_path, "sweep:resume")
    assert sorted(run.status for run in runs) == ["complete"] * 4 + ["failed"]

    again = sweep_json(capsys, path)
    assert again["points_already_run"] == 4
    assert all(point["reused"] for point in again["points"])
    assert {n: again["points"][n - 1]["run_id"] for n in kept} == kept
    assert len(stored_runs(tmp_path, "sweep:resume")) == 5


K10 = """
name = "{name}"
goldset = "{goldset}"
measures = ["ndcg@10", "recall@10"]
k = 10

[retriever]
collection = "demo"
"""
EF_GRID = (
    K10
    + """
[grid]
ef_search = [10, 40, 100]
"""
)


@pytest.fixture
def own_index(
    chroma_home: Path, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """``home`` with a copy of ``chroma_home``'s Chroma store of its own, to index again."""
    copy = tmp_path / "home"
    shutil.copytree(chroma_home / "chroma", copy / "chroma")
    monkeypatch.setenv("EVALKIT_HOME", str(copy))
    return copy


def test_a_sweep_run_again_after_the_index_changed_runs_its_points_again(
    own_index: Path, small_demo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The point's hash is of the sweep file and the settings; the collection indexed again
    without some documents keeps its name, so its earlier runs' figures are of an index that
    no longer exists: the points run again, and the sweep says why."""
    path = write_sweep(tmp_path, EF_GRID.format(name="reindexed", goldset=small_demo.as_posix()))
    first = sweep_json(capsys, path)
    assert first["points_rerun"] == 0
    assert [point["rerun"] for point in first["points"]] == [None] * 3
    lines = (small_demo / "corpus.jsonl").read_text(encoding="utf-8").splitlines()
    smaller = tmp_path / "smaller.jsonl"
    smaller.write_text("\n".join(lines[:-20]) + "\n", encoding="utf-8")
    assert invoke(["index", "--corpus", str(smaller), "--collection", "demo", "--prune"]) == 0
    capsys.readouterr()

    assert invoke(["sweep", str(path)]) == 0
    err = capsys.readouterr().err
    assert "running 3 points; 3 points rerun: index changed since they ran (points 1, 2, 3)" in err
    old = first["points"][1]["run_id"]
    assert f"point 2/3 ef_search=40: running again (index changed since it ran: run {old})" in err

    again = sweep_json(capsys, path)
    assert (again["points_already_run"], again["points_rerun"]) == (3, 0)
    earlier = {point["run_id"] for point in first["points"]}
    assert not earlier & {point["run_id"] for point in again["points"]}
    runs = {run.run_id: run for run in stored_runs(tmp_path, "sweep:reindexed")}
    assert len(runs) == 6
    for before, now in zip(first["points"], again["points"], strict=True):
        assert runs[before["run_id"]].spec.index_documents == len(lines)
        assert runs[now["run_id"]].spec.index_documents == len(lines) - 20


def test_a_sweep_whose_index_is_gone_runs_its_points_again_rather_than_reuse_them(
    own_index: Path, small_demo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_sweep(tmp_path, EF_GRID.format(name="gone", goldset=small_demo.as_posix()))
    first = sweep_json(capsys, path)
    client = open_chroma_client(path=own_index / "chroma")
    try:
        client.delete_collection("demo")
    finally:
        close_client(client)

    data = sweep_json(capsys, path, expect=3)
    assert (data["points_already_run"], data["points_rerun"], data["points_failed"]) == (0, 3, 3)
    assert [point["rerun"] for point in data["points"]] == [
        {"run_id": point["run_id"], "reason": "index_unreadable"} for point in first["points"]
    ]
    assert all("demo" in point["error"] for point in data["points"])


_KILLED_SWEEP = """
import os, signal, sys
from evalkit.cli import invoke
from evalkit.retrievers import ChromaRetriever
replay = ChromaRetriever.retrieve
def retrieve(self, queries, k):
    if self.describe()["ef_search"] == 40:
        os.kill(os.getpid(), signal.SIGKILL)  # kill -9 in the middle of point 2's replay
    return replay(self, queries, k)
ChromaRetriever.retrieve = retrieve
invoke(["sweep", sys.argv[1]])
"""


def test_a_sweep_killed_mid_point_resumes_reusing_every_finished_point(
    own_index: Path, small_demo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """kill -9 during point 2, its ef_search left in the collection: the index is the one
    point 1 ran against, so the sweep run again reuses point 1 and runs only the others."""
    path = write_sweep(tmp_path, EF_GRID.format(name="killed", goldset=small_demo.as_posix()))
    killed = subprocess.run(
        [sys.executable, "-c", _KILLED_SWEEP, str(path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert killed.returncode == -9, killed.stderr
    assert "point 1: complete" in killed.stderr
    assert demo_ef_search(own_index) == 40
    [finished] = [run for run in stored_runs(tmp_path, "sweep:killed") if run.status == "complete"]

    assert invoke(["sweep", str(path)]) == 0
    err = capsys.readouterr().err
    assert "1 of 3 points already run; running 2\n" in err
    assert "point 1/3" not in err
    again = sweep_json(capsys, path)
    assert (again["points_already_run"], again["points_rerun"]) == (3, 0)
    assert again["points"][0]["run_id"] == finished.run_id


@pytest.mark.parametrize("columns", [80, 100, 160])
def test_every_point_s_run_id_and_figures_are_whole_on_a_narrow_terminal(
    home: Path,
    small_demo: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    columns: int,
) -> None:
    """On an 80-column terminal the points' table read `20261…` for the run to copy and
    `0.73…` for the figures: each point is a block of its figures where the table would
    have to cut them."""
    path = write_sweep(
        tmp_path,
        GRID.format(name="narrow", goldset=small_demo.as_posix()),
    )
    data = sweep_json(capsys, path)
    env = terminal_env(EVALKIT_STORE_PATH=str(tmp_path / "evalkit.duckdb"))
    drawn = run_on_terminal([*EVALKIT, "sweep", str(path)], cwd=tmp_path, env=env, columns=columns)
    assert drawn.returncode == 0, drawn.output
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", drawn.output).replace("\r", "")
    assert "…" not in text  # nor in the points' leaderboard after them
    assert max(len(line.rstrip()) for line in text.splitlines()) <= columns
    points = text[: text.index("Pareto front")]
    for point in data["points"]:
        assert point["run_id"] in points
        assert " ".join(f"{key}={value}" for key, value in point["settings"].items()) in points
        for value in point["aggregates"].values():
            assert f"{value:.4f}" in points
        assert f"{point['latency_p95_ms']:.4f}" in points


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[grid]\nef_serch = [10]\n", "grid.ef_serch: unknown key; did you mean 'ef_search'?"),
        ('mesures = ["ndcg@10"]\n[grid]\nk = [10]\n', "mesures: unknown key"),
        ('[grid]\nk = ["ten"]\n', "grid.k[1]: Input should be a valid integer"),
        ('[grid]\nk = [10, "20"]\n', "grid.k[2]: Input should be a valid integer, not a string"),
        ("[grid]\nk = [true, 20]\n", "grid.k[1]: Input should be a valid integer, not a boolean"),
        ("[[points]]\nef_search = 1.0\n", "points[1].ef_search: Input should be a valid integer"),
        (
            '[embedders.e]\nkind = "openai"\ntimeout = "5"\n[grid]\nembedder = ["e"]\n',
            "embedders.e.timeout: Input should be a valid number, not a string (write it",
        ),
        ("[grid]\nk = 10\n", "grid.k: Input should be a valid list"),
        ("[grid]\n", "grid: an empty [grid]"),
        ("[grid]\nef_search = []\n", "grid.ef_search: Value error, an empty list"),
        ('[[points]]\nk = "x"\n', "points[1].k: Input should be a valid integer"),
        ('[grid]\nembedder = ["e5"]\n', "[grid] embedder: no embedder named 'e5'"),
        ("[grid]\nk = [5]\n", "[grid] k: ndcg@10 needs at least 10 documents per query"),
        (
            '[retriever]\nhttp_url = "http://127.0.0.1:9"\n[grid]\nef_search = [10]\n',
            "[grid] ef_search: the http retriever has no ef_search",
        ),
        ("[grid]\noptions.top = [1, 2]\n", "[grid] options.top: the chroma retriever takes no"),
        ('[grid]\ncollection = ["ab"]\n', "[grid] collection: Chroma collection name 'ab'"),
        ("[grid]\nk = [99999999999]\n", "grid.k: Value error, values must be at most 2147483647"),
        (
            'k = 99999999999\n[retriever]\ncollection = "demo"\n[grid]\nk = [10]\n',
            "k: Input should be less than or equal to 2147483647",
        ),
        (
            '[retriever]\nhttp_url = "http://127.0.0.1:9"\ncollection = "demo"\n[grid]\nk = [10]\n',
            "retriever: Value error, give one of http_url, retriever, or collection",
        ),
        (
            '[retriever]\nretriever = "m:f"\n[grid]\noptions.alpha = [0.5, nan]\n',
            "grid.options: Value error, option alpha[1] is nan: an option must be a finite",
        ),
        (
            '[retriever]\nretriever = "m:f"\n[[points]]\noptions = {deep = {x = -inf}}\n',
            "points[1].options: Value error, option deep.x is -inf",
        ),
        ("[grid]\nk = [10, 20, 10]\n", "grid.k: the value 10 is listed twice; list each value"),
        (
            '[retriever]\nretriever = "m:f"\n[grid]\noptions.mode = ["a", "b", "a"]\n',
            "grid.options.mode: the value a is listed twice",
        ),
    ],
    ids=[
        "unknown-key",
        "unknown-top-level-key",
        "wrong-type-in-list",
        "string-for-an-integer",
        "boolean-for-an-integer",
        "float-for-an-integer",
        "string-for-a-number",
        "not-a-list",
        "empty-grid",
        "empty-values",
        "wrong-type-in-points",
        "unknown-embedder",
        "k-below-cutoff",
        "setting-the-store-cannot-set",
        "options-on-a-built-in-kind",
        "collection-name-chroma-refuses",
        "k-deeper-than-the-store-keeps",
        "base-k-deeper-than-the-store-keeps",
        "two-retrievers-named",
        "nan-option-in-grid",
        "infinite-option-in-a-point",
        "value-listed-twice",
        "option-value-listed-twice",
    ],
)
def test_a_bad_sweep_file_exits_2_naming_the_file_and_the_key(
    text: str,
    expected: str,
    evalkit_home: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    head = 'name = "bad"\ngoldset = "demo"\nmeasures = ["ndcg@10"]\n'
    if "mesures" in text:
        head = 'name = "bad"\ngoldset = "demo"\n'
    if "[retriever]" not in text:
        head += '[retriever]\ncollection = "demo"\n'
    path = write_sweep(tmp_path, head + text, name="bad-sweep.toml")
    data = sweep_json(capsys, path, expect=2)
    message = data["error"]["message"]
    assert str(path) in message
    assert expected in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[grid]\nk = [10, "20"]\n', "line 7, grid.k[2]: Input should be a valid integer"),
        ("[grid]\nef_serch = [10]\n", "line 7, grid.ef_serch: unknown key; did you mean"),
        ("[grid]\nk = [10, 20, 10]\n", "line 7, grid.k: the value 10 is listed twice"),
        (
            '[[points]]\nk = 10\n\n[[points]]\nembedder = "e5"\n',
            "line 10, [[points]] #2 embedder: no embedder named 'e5'",
        ),
        ("[[points]]\nk = 10\n[[points]]\nk = 5\n", "line 9, [[points]] #2 k: ndcg@10 needs"),
        (
            "[[points]]\nk = 10\n[[points]]\nk = 10\n",
            "line 8, [[points]] #2 has the same settings as [[points]] #1",
        ),
    ],
    ids=["wrong-type", "unknown-key", "listed-twice", "unknown-embedder", "k-below", "same-point"],
)
def test_a_bad_sweep_file_names_the_line_of_the_key(
    text: str,
    expected: str,
    evalkit_home: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Sweep files were named by their key path only, evalkit.toml by its lines too."""
    head = (
        'name = "bad"\ngoldset = "demo"\nmeasures = ["ndcg@10"]\n[retriever]\ncollection = "demo"\n'
    )
    path = write_sweep(tmp_path, head + text, name="bad-sweep.toml")
    message = sweep_json(capsys, path, expect=2)["error"]["message"]
    assert message.startswith(f"{path}: {expected}")


def test_a_sweep_file_that_is_not_utf8_exits_2_naming_the_file(
    evalkit_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes('name = "caf\u00e9"\n'.encode("latin-1"))
    message = sweep_json(capsys, path, expect=2)["error"]["message"]
    assert message == (
        f"{path}: not valid UTF-8 text, as TOML must be: line 1, byte 12 (0xe9); "
        "save the file as UTF-8"
    )


def test_a_sweep_file_that_is_a_folder_exits_2_naming_it(
    evalkit_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "sweep.toml"
    path.mkdir()
    message = sweep_json(capsys, path, expect=2)["error"]["message"]
    assert message == f"{path}: a folder, not a file"


def test_a_sweep_file_starting_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    """Windows editors save UTF-8 with a byte order mark; TOML parsers refuse it."""
    path = tmp_path / "bom.toml"
    path.write_bytes(b"\xef\xbb\xbf" + GRID.format(name="bom", goldset="demo").encode())
    sweep = load_sweep(path)
    assert (sweep.name, len(sweep.points)) == ("bom", 4)


def test_a_sweep_file_with_neither_or_both_grid_and_points_is_refused(
    evalkit_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    head = 'name = "bad"\ngoldset = "demo"\nmeasures = ["ndcg@10"]\n'
    neither = write_sweep(tmp_path, head, name="neither.toml")
    assert "none is given" in sweep_json(capsys, neither, expect=2)["error"]["message"]
    both = write_sweep(tmp_path, head + "[grid]\nk = [10]\n[[points]]\nk = 20\n", "both.toml")
    assert "not both" in sweep_json(capsys, both, expect=2)["error"]["message"]


DIMENSION = 32
N_DOCUMENTS = 2000


def _unit(seed: int, n: int) -> np.ndarray:
    vectors = np.random.default_rng(seed).standard_normal((n, DIMENSION)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


class _FixedEmbedder:
    """A preset vector per query text (no model)."""

    name = "fixed"
    dimension = DIMENSION

    def __init__(self, vectors: dict[str, np.ndarray]) -> None:
        self._vectors = vectors

    @property
    def fingerprint(self) -> ModelFingerprint:
        return ModelFingerprint(name=self.name, dimension=DIMENSION, canary_hash="fixed")

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return np.stack([self._vectors[text] for text in texts]).astype(np.float32)


@pytest.fixture
def starved_index(tmp_path: Path) -> tuple[Path, np.ndarray]:
    """An embedded collection with a sparse HNSW graph searched at ef_search 10."""
    documents = _unit(1, N_DOCUMENTS)
    client = open_chroma_client(path=tmp_path / "chroma")
    try:
        collection = client.create_collection(
            "starved",
            embedding_function=None,
            configuration={
                "hnsw": {
                    "space": "cosine",
                    "ef_construction": 10,
                    "ef_search": 10,
                    "max_neighbors": 4,
                }
            },
        )
        collection.add(ids=[f"d{i:04d}" for i in range(N_DOCUMENTS)], embeddings=documents)
    finally:
        close_client(client)
    return tmp_path / "chroma", documents


def _recall(results: list[QueryResult], exact: np.ndarray) -> float:
    return float(
        np.mean(
            [
                len({int(doc.doc_id[1:]) for doc in result.docs} & set(top.tolist())) / 10
                for result, top in zip(results, exact, strict=True)
            ]
        )
    )


def test_chroma_is_searched_with_the_ef_search_asked_for_and_gets_its_own_back(
    starved_index: tuple[Path, np.ndarray],
) -> None:
    path, documents = starved_index
    probes = _unit(2, 60)
    queries = [Query(id=f"q{i}", text=f"probe {i}") for i in range(len(probes))]
    embedder = _FixedEmbedder({q.text: p for q, p in zip(queries, probes, strict=True)})
    exact = np.argsort(-(probes @ documents.T), axis=1)[:, :10]

    with ChromaRetriever.embedded(path, "starved", embedder) as own:
        assert own.describe()["ef_search"] == 10
        starved = _recall(own.retrieve(queries, 10), exact)
    with ChromaRetriever.embedded(path, "starved", embedder, ef_search=400) as wide:
        assert wide.describe()["ef_search"] == 400
        widened = _recall(wide.retrieve(queries, 10), exact)
    with ChromaRetriever.embedded(path, "starved", embedder) as again:
        assert again.describe()["ef_search"] == 10
        restored = _recall(again.retrieve(queries, 10), exact)

    assert starved < 0.8
    assert widened > starved + 0.1
    assert restored == starved


def test_ef_search_on_a_chroma_server_is_refused_before_connecting(tmp_path: Path) -> None:
    settings = Settings(
        home=tmp_path, retriever={"chroma": {"ef_search": 64}}, chroma_url="http://127.0.0.1:9"
    )
    with pytest.raises(ConfigError, match=r"ef_search = 64 cannot be set on the Chroma server"):
        build_retriever(RetrieverOptions(collection="demo"), settings)


@pytest.mark.filterwarnings("ignore:The minimum number of concurrent actors:UserWarning")
@pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.data.context")
def test_a_sweep_on_the_ray_engine_stores_the_local_figures(
    ray_cluster: str,
    home: Path,
    small_demo: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    points = (
        K10
        + """
[[points]]
ef_search = 10

[[points]]
ef_search = 100
"""
    )
    goldset = small_demo.as_posix()
    local = sweep_json(capsys, write_sweep(tmp_path, points.format(name="local", goldset=goldset)))
    on_ray = sweep_json(
        capsys,
        write_sweep(tmp_path, points.format(name="ray", goldset=goldset), name="ray.toml"),
        "--engine",
        "ray",
        "--ray-actors",
        "1",
    )
    assert on_ray["points_failed"] == 0
    assert [p["settings"] for p in on_ray["points"]] == [p["settings"] for p in local["points"]]
    runs = {run.run_id: run for run in stored_runs(tmp_path, "sweep:ray")}
    assert {run.status for run in runs.values()} == {"complete"}
    narrow, wide = on_ray["points"]
    assert runs[narrow["run_id"]].spec.retriever_config["ef_search"] == 10
    # At ef_search 100 these few documents are searched exactly: the local figures.
    assert wide["aggregates"] == local["points"][1]["aggregates"]
    # At 10 Chroma's graph search differs from one opening of the store to the next (on
    # the actors as locally), but that the actors searched narrower shows.
    with Store.open(tmp_path / "evalkit.duckdb") as store:
        narrow_docs, wide_docs = (
            run_results(store, point["run_id"])[["query_id", "doc_id"]]
            for point in on_ray["points"]
        )
    assert not narrow_docs.equals(wide_docs)


class _CountingRay:
    """The ``ray`` module as the Ray engine sees it, counting the instances it starts
    (the session's own Ray answers everything else)."""

    def __init__(self, ray: Any) -> None:
        self._ray = ray
        self.started = 0
        self._up = False
        self.environment: dict[str, str | None] = {}

    def is_initialized(self) -> bool:
        return self._up

    def init(self, **_: Any) -> None:
        self.started += 1
        self._up = True
        # The raylet reads its settings (its workers' niceness) from the environment.
        self.environment = {key: os.environ.get(key) for key in LOCAL_RAY_ENV}

    def shutdown(self) -> None:
        self._up = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ray, name)


@pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.data.context")
def test_a_sweep_on_ray_without_an_address_starts_one_local_ray_for_all_its_points(
    ray_cluster: str,
    home: Path,
    small_demo: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import ray

    from evalkit.engines import ray_actors

    counting = _CountingRay(ray)
    monkeypatch.setattr(ray_actors, "ray", counting)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    path = write_sweep(
        tmp_path,
        f'name = "one-ray"\ngoldset = "{small_demo.as_posix()}"\nmeasures = ["ndcg@10"]\n'
        'k = 10\n[retriever]\ncollection = "demo"\n[grid]\nef_search = [20, 80]\n',
    )
    outcome = sweep_json(capsys, path, "--engine", "ray", "--ray-actors", "1")
    assert [point["status"] for point in outcome["points"]] == ["complete"] * 2
    assert counting.started == 1
    assert counting.environment == LOCAL_RAY_ENV, "the actors run at the driver's niceness"
    again = sweep_json(capsys, path, "--engine", "ray", "--ray-actors", "1")
    assert {point["reused"] for point in again["points"]} == {True}
    assert counting.started == 1  # nothing to run: no Ray started


def test_the_sweep_job_runs_the_points_a_sweep_file_is_missing(
    home: Path, small_demo: Path, tmp_path: Path
) -> None:
    path = write_sweep(
        tmp_path,
        f'name = "nightly"\ngoldset = "{small_demo.as_posix()}"\nmeasures = ["ndcg@10"]\n'
        'k = 10\n[retriever]\ncollection = "demo"\n[[points]]\nef_search = 50\n',
    )
    kind = JOB_KINDS["sweep"]
    params = kind.params.model_validate({"file": str(path)})
    # As `evalkit sweep`, the job opens the store only for short stretches.
    access = StoreAccess(tmp_path / "evalkit.duckdb", wait=10, program="test")
    context = JobContext(
        job="nightly", settings=load_settings(), cancel=threading.Event(), access=access
    )
    first = kind.run(context, params)
    again = kind.run(context, params)
    assert first.status == "succeeded"
    assert len(first.run_ids) == 1
    assert first.summary["points"][0]["tags"] == [
        "ef_search=50",
        f"sweep-point:{first.summary['points'][0]['point_key']}",
        "sweep:nightly",
    ]
    assert again.status == "succeeded"
    assert (again.run_ids, again.summary["points_already_run"]) == ((), 1)

    write_sweep(tmp_path, '[grid]\nk = "x"\n', name="broken.toml")
    with pytest.raises(ValidationError, match=r"broken\.toml: .*name: missing"):
        kind.params.model_validate({"file": str(tmp_path / "broken.toml")})


_KILLED_MID_POINT = """
import os, signal, sys
from evalkit.retrievers import ChromaRetriever
ChromaRetriever.embedded(sys.argv[1], "demo", None, defer_model_check=True, ef_search=13)
os.kill(os.getpid(), signal.SIGKILL)  # killed mid-point: close() never puts the value back
"""


def _killed_mid_point(chroma_home: Path, tmp_path: Path) -> tuple[Path, int]:
    """A copy of ``chroma_home`` whose collection a point killed mid-search (kill -9) left
    at ef_search 13; the home and the collection's own value."""
    home = tmp_path / "home"
    shutil.copytree(chroma_home / "chroma", home / "chroma")
    before = demo_ef_search(home)
    killed = subprocess.run(
        [sys.executable, "-c", _KILLED_MID_POINT, str(home / "chroma")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert killed.returncode == -9, killed.stderr
    assert demo_ef_search(home) == 13
    return home, before


def test_a_sweep_killed_mid_point_leaves_ef_search_that_the_next_open_puts_back(
    chroma_home: Path, tmp_path: Path
) -> None:
    """kill -9 while a point searches with its ef_search: the collection keeps that value,
    and the mark written before the change lets the next embedded open put the collection's
    own value back."""
    home, before = _killed_mid_point(chroma_home, tmp_path)
    assert (home / "chroma" / ".evalkit-ef-search" / "demo.json").is_file()

    ChromaRetriever.embedded(home / "chroma", "demo", None, defer_model_check=True).close()  # type: ignore[arg-type]
    assert demo_ef_search(home) == before
    assert not (home / "chroma" / ".evalkit-ef-search" / "demo.json").exists()

    # A point that runs after the kill restores the collection's own value, not 13, on close.
    point = ChromaRetriever.embedded(
        home / "chroma",
        "demo",
        None,
        defer_model_check=True,
        ef_search=50,  # type: ignore[arg-type]
    )
    assert demo_ef_search(home) == 50
    point.close()
    assert demo_ef_search(home) == before


@pytest.mark.parametrize("command", ["audit", "index"])
def test_audit_and_index_put_back_the_ef_search_a_killed_point_left(
    chroma_home: Path,
    small_demo: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    command: str,
) -> None:
    """`evalkit audit` measures ANN recall: at a killed sweep's ef_search it measured the
    collection as nobody searches it. It, and `evalkit index`, put the value back first."""
    from evalkit.cli import invoke

    home, before = _killed_mid_point(chroma_home, tmp_path)
    monkeypatch.setenv("EVALKIT_HOME", str(home))
    argv = {
        "audit": ["audit", "--collection", "demo", "--format", "json"],
        "index": ["index", "--corpus", str(small_demo / "corpus.jsonl"), "--collection", "demo"],
    }[command]
    assert invoke(argv) in (0, 1), capsys.readouterr().err
    assert demo_ef_search(home) == before
    assert not (home / "chroma" / ".evalkit-ef-search" / "demo.json").exists()


def test_a_partial_point_says_why_it_is_not_ranked(
    evalkit_home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A point whose run is partial printed `partial (partial, ...)`: it says it is not
    ranked on the sweep's measure because its run is not complete."""
    from gate_inputs import write_goldset_files
    from loopback import JSONHandler, running

    class HalfDown(JSONHandler):
        def do_POST(self) -> None:
            body = self.read_json()
            if body["query_id"] == "q0":
                self.send_json({"error": "down"}, 503)
                return
            number = body["query_id"][1:]
            results = [{"id": f"rel{number}_{r}", "score": 1.0 - r / 10} for r in range(3)]
            self.send_json({"results": results})

    monkeypatch.setenv("EVALKIT_HTTP_RETRIES", "0")
    write_goldset_files(tmp_path / "gs", 20)
    with running(HalfDown) as server:
        path = http_sweep(tmp_path, server.url, "half", [10, 20])
        code = invoke(["sweep", str(path)])
    said = capsys.readouterr().err
    assert code == 3, said
    assert "partial (not ranked on ndcg@10: the run is not complete" in said
    assert "partial (partial" not in said


class _DeepDown(JSONHandler):
    """Answers ``qN`` with its relevant documents, except ``q0`` when asked for 30 (HTTP
    503): the point at ``k = 30`` is partial, the others complete."""

    def do_POST(self) -> None:
        body = self.read_json()
        if body["query_id"] == "q0" and body["k"] == 30:
            self.send_json({"error": "down"}, 503)
            return
        number = body["query_id"][1:]
        results = [{"id": f"rel{number}_{r}", "score": 1.0 - r / 10} for r in range(3)]
        self.send_json({"results": results})


def test_an_http_endpoint_s_points_are_reused_as_they_are_without_asking_it(
    evalkit_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An HTTP endpoint says nothing of its index: its runs record no index fingerprint, so
    a sweep run again reuses them as before, without a request (the endpoint may be down)."""
    write_goldset_files(tmp_path / "gs", 20)
    with running(_DeepDown) as server:
        path = http_sweep(tmp_path, server.url, "endpoint", [10, 20])
        first = sweep_json(capsys, path)
    assert [point["status"] for point in first["points"]] == ["complete", "complete"]
    with Store.open(evalkit_home / "evalkit.duckdb") as store:
        runs = list_runs(store, tag="sweep:endpoint")
    assert [run.spec.index_fingerprint for run in runs] == [None, None]

    again = sweep_json(capsys, path)
    assert (again["points_already_run"], again["points_rerun"]) == (2, 0)
    assert [p["run_id"] for p in again["points"]] == [p["run_id"] for p in first["points"]]


def test_the_points_that_failed_are_listed_before_the_leaderboard(
    evalkit_home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The output is the points' table, the front and the points that failed, then the
    leaderboard: the failures came after the leaderboard's pairs, hundreds of lines below
    the table on a sweep of a dozen points."""
    monkeypatch.setenv("EVALKIT_HTTP_RETRIES", "0")
    write_goldset_files(tmp_path / "gs", 20)
    with running(_DeepDown) as server:
        path = http_sweep(tmp_path, server.url, "deep", [10, 20, 30])
        code = invoke(["sweep", str(path)])
    out = capsys.readouterr().out
    assert code == 1, out
    failed = out.index("point 3 (k=30) partial: 1 of 20 queries failed")
    assert out.index("Pareto front") < failed < out.index("leaderboard of 2 runs")


def test_an_embedder_whose_model_path_is_missing_names_the_sweep_files_key(
    evalkit_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The point failed with the loader's 'set EVALKIT_MODEL_PATH to a local
    sentence-transformers model directory', a setting the sweep file's model_path overrides."""
    write_goldset_files(tmp_path / "gs", 5)
    path = write_sweep(
        tmp_path,
        'name = "emb"\ngoldset = "gs"\nmeasures = ["ndcg@10"]\nk = 10\n'
        '[retriever]\nretriever = "no_such_hook:make"\n'
        f'[embedders.broken]\nmodel_path = "{tmp_path / "no-model"}"\n'
        '[[points]]\nembedder = "broken"\n',
    )
    data = sweep_json(capsys, path, expect=3)
    assert data["points"][0]["error"] == (
        f"{path}: embedders.broken.model_path: {tmp_path / 'no-model'} is not a directory; "
        "give a local sentence-transformers model directory"
    )


def test_the_plan_of_a_one_point_sweep_run_again_reads_as_one_point() -> None:
    """It read "all 1 points already run"."""
    assert SweepPlan(1, {1: "r1"}, "ndcg@10").describe() == (
        "the point already run; nothing to run"
    )
    assert SweepPlan(2, {1: "r1", 2: "r2"}, "ndcg@10").describe() == (
        "all 2 points already run; nothing to run"
    )


def _grid_of(values: int, *, max_points: int | None = None) -> str:
    """A sweep of ``values`` x ``values`` points (k against ef_search) on the demo."""
    listed = list(range(10, 10 + values))
    cap = f"max_points = {max_points}\n" if max_points is not None else ""
    return (
        f'name = "wide"\ngoldset = "demo"\nmeasures = ["ndcg@10"]\n{cap}'
        f'[retriever]\ncollection = "demo"\n[grid]\nk = {listed}\nef_search = {listed}\n'
    )


def test_a_grid_of_a_million_points_is_refused_before_one_is_made(
    evalkit_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A 1,000 x 1,000 grid had not started its first point after 90 s (776 MB): its points
    are counted first, and more than the cap (1,000) is a bad sweep file, exit 2."""
    import time
    import tracemalloc

    path = write_sweep(tmp_path, _grid_of(1000))
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(ConfigError) as caught:
            load_sweep(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - started < 5
    assert peak < 20 * 2**20
    assert str(caught.value) == (
        f"{path}: line 6, grid: 1,000,000 points (1000 k x 1000 ef_search), more than the "
        "1,000 points a sweep runs at most (each point is a goldset run); narrow it, or allow "
        "more with max_points = N in the file or --max-points N"
    )
    error = sweep_json(capsys, path, expect=2)["error"]
    assert error["exit_code"] == 2
    assert error["message"].startswith(f"{path}: line 6, grid: 1,000,000 points")


def test_the_cap_on_points_is_the_file_s_or_the_command_s_to_raise(
    evalkit_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """33 x 33 = 1,089 points: refused by default, allowed by max_points in the file or by
    --max-points, and --dry-run counts them against the cap without running one."""
    refused = write_sweep(tmp_path, _grid_of(33), name="refused.toml")
    assert "1,089 points (33 k x 33 ef_search)" in str(
        sweep_json(capsys, refused, "--dry-run", expect=2)["error"]["message"]
    )
    planned = sweep_json(capsys, refused, "--dry-run", "--max-points", "1089")
    assert (planned["points_total"], planned["max_points"]) == (1089, 1089)
    assert planned["points"][0] == {
        "number": 1,
        "settings": {"k": 10, "ef_search": 10},
        "source": "[grid]",
    }
    assert sweep_json(capsys, refused, "--dry-run", "--max-points", "1088", expect=2)
    allowed = write_sweep(tmp_path, _grid_of(33, max_points=2000), name="allowed.toml")
    assert load_sweep(allowed).max_points == 2000
    assert sweep_json(capsys, allowed, "--dry-run")["points_total"] == 1089
    many = "".join(f"[[points]]\nk = {k}\n" for k in range(10, 1012))
    listed = write_sweep(
        tmp_path,
        'name = "list"\ngoldset = "demo"\nmeasures = ["ndcg@10"]\n'
        f'[retriever]\ncollection = "demo"\n{many}',
        name="listed.toml",
    )
    with pytest.raises(ConfigError, match=r"points: 1,002 \[\[points\]\] entries, more than"):
        load_sweep(listed)
    # Nothing was run, nothing stored.
    assert not (evalkit_home / "evalkit.duckdb").exists()


def test_a_dry_run_prints_the_points_and_their_count(
    evalkit_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_sweep(tmp_path, GRID.format(name="plan", goldset="demo"))
    assert invoke(["sweep", str(path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "k=10 ef_search=10" in out
    assert f"sweep plan ({path}): 4 points (at most 1,000) on goldset demo; dry run" in out
