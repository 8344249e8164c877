"""Fixtures shared by the whole suite."""

from __future__ import annotations

import contextlib
import gc
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from evalkit.embedding.onnx import default_cache_dir
from evalkit.store import Store

if "PYTEST_XDIST_WORKER" in os.environ:
    # pytest-xdist hands its workers the controller's terminal size (COLUMNS=80); a serial
    # run has none, and the commands' tables are checked at the width a pipe gets.
    os.environ.pop("COLUMNS", None)
    os.environ.pop("LINES", None)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# ranx is a peer the tests compare numbers with, on runs of a few hundred rows. numba compiling
# its kernels in a fresh venv costs about 145 CPU-s; CPython runs the same source in about
# one. The benchmarks time ranx compiled.
os.environ.setdefault("NUMBA_DISABLE_JIT", "1")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


def pytest_sessionstart(session: pytest.Session) -> None:
    """Stop at once when a store sits above the folders tests run in: evalkit finds a store
    as git finds .git, so every test that runs a command without EVALKIT_HOME would read and
    write that store, and fail far from the cause."""
    base = Path(str(session.config._tmp_path_factory.getbasetemp())).resolve()
    for folder in base.parents:
        if (folder / ".evalkit").is_dir():
            pytest.exit(
                f"{folder / '.evalkit'} is an evalkit store above the tests' folders "
                f"({base}); commands run in them would use it. Move it away and run again.",
                returncode=4,
            )


def pytest_collection_finish(session: pytest.Session) -> None:
    """Move what collection built (every imported module, test_layers' syntax trees) out of
    the garbage collector's reach: a worker holds about two million such objects, none ever
    freed, which each full collection walked again (the fast suite's workers spent 28 s in
    the collector before, 23 s after)."""
    gc.freeze()


@pytest.fixture(scope="session", autouse=True)
def evalkit_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's own EVALKIT_CACHE_DIR, shared by its xdist workers and the commands the
    tests start: document vectors one test embeds are read by the others, and none are left
    in the machine's cache. The ONNX export of a local model (torch makes it once per
    machine, in seconds) is linked from the machine's cache."""
    base = tmp_path_factory.getbasetemp()
    cache = (base.parent if "PYTEST_XDIST_WORKER" in os.environ else base) / "evalkit-cache"
    cache.mkdir(exist_ok=True)
    for kept in ("onnx", "digests"):
        machine = default_cache_dir() / kept
        machine.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):  # another worker linked it first
            (cache / kept).symlink_to(machine, target_is_directory=True)
    os.environ["EVALKIT_CACHE_DIR"] = str(cache)
    return cache


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data, or skip: a user's machine does not have it."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA


@pytest.fixture(scope="session")
def demo_reference(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The demo goldset replayed through embedded Chroma, once per session (demo_index)."""
    from demo_index import chroma_reference

    return chroma_reference(tmp_path_factory.mktemp("demo-reference"))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """A fresh, migrated DuckDB store file for one test, closed after it."""
    with Store.open(tmp_path / "evalkit.duckdb") as opened:
        yield opened


URGENT_NICENESS = 10
"""How far a test that times real latencies is raised above the suite's other workers."""


@pytest.fixture
def served_first() -> Iterator[None]:
    """Run a test that times real latencies (a loopback service's sleeps, an index's writes)
    ahead of the suite's other work on the machine.

    Under the whole suite each request it timed also waited for a CPU, up to tens of
    milliseconds in a burst of the other workers' load, so the figures measured the machine:
    raised, the test's threads (and those it starts) take a core as soon as they wake. Only
    root may raise a priority; elsewhere the test runs as it is.
    """
    try:
        os.nice(-URGENT_NICENESS)
    except PermissionError:
        raised = False
    else:
        raised = True
    try:
        yield
    finally:
        if raised:
            os.nice(URGENT_NICENESS)


@pytest.fixture
def evalkit_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh EVALKIT_HOME for one test, with no evalkit.toml in the way."""
    home = tmp_path / "home"
    monkeypatch.setenv("EVALKIT_HOME", str(home))
    monkeypatch.delenv("EVALKIT_CONFIG", raising=False)
    monkeypatch.delenv("EVALKIT_CHROMA_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    return home


@pytest.fixture(scope="module")
def ray_cluster() -> Any:
    """A local Ray instance (2 CPUs, loopback, no dashboard) shared by a module's tests, and
    stopped after them: an idle Ray (raylet, GCS, log monitor, idle workers) keeps taking a
    share of a core, which every later test of the session would pay."""
    from ray_cluster import start_ray

    with start_ray() as address:
        yield address
