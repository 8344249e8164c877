"""A store on a filesystem that fills up: a real 8 MiB tmpfs, real `evalkit` processes.

The disk fills before a run can be recorded, and in the middle of one. Each time the
command stops with exit code 3 and says the disk is full, what was stored before is
intact, no run is left `running`, and once space is freed the next run completes.
Mounting needs root (as on CI machines); elsewhere the test says so and skips.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from loopback import serving

from evalkit.store import Store
from evalkit.store.goldsets import list_goldsets
from evalkit.store.retention import prune_run_details
from evalkit.store.runs import get_run, list_runs

DEMO = Path(__file__).resolve().parents[1] / "goldsets" / "demo"
FS_SIZE = "8m"


class _ManyResults(BaseHTTPRequestHandler):
    """Answers every query with 100 documents, so a run writes a lot."""

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        seed = sum(map(ord, body["query_id"]))
        results = [
            {"id": f"doc-{(seed * 7 + i) % 330:03d}", "score": 1.0 - i / 100} for i in range(100)
        ]
        payload = json.dumps({"results": results}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:
        pass


@dataclass
class SmallDisk:
    """A tmpfs mount holding the store, and the environment of evalkit processes."""

    mount: Path
    env: dict[str, str]
    url: str

    @property
    def store(self) -> Path:
        return self.mount / "evalkit.duckdb"

    def evalkit(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "evalkit", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    def evalkit_here(self, monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
        """``evalkit ARGS`` in this process, with the environment of ``evalkit``: for steps
        that set the store up, where the process boundary is not what is tested."""
        from evalkit.cli import invoke

        for name in ("EVALKIT_HOME", "EVALKIT_STORE_PATH", "EVALKIT_QUERY_BATCH_SIZE"):
            monkeypatch.setenv(name, self.env[name])
        monkeypatch.delenv("EVALKIT_CONFIG", raising=False)
        return invoke(list(args))

    def fill(self, *, leave_kib: int) -> Path:
        """Fill the filesystem until only ``leave_kib`` KiB are free."""
        free = shutil.disk_usage(self.mount).free
        filler = self.mount / "filler"
        with filler.open("wb") as sink:
            sink.truncate(0)
            remaining = max(0, free - leave_kib * 1024)
            chunk = b"\0" * (64 * 1024)
            while remaining > 0:
                try:
                    remaining -= sink.write(chunk[: min(len(chunk), remaining)])
                    sink.flush()
                except OSError:
                    break
        return filler


@pytest.fixture
def small_disk(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[SmallDisk]:
    size = getattr(request, "param", FS_SIZE)
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root")
    mount = tmp_path / "fs"
    mount.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    env = {
        **os.environ,
        "EVALKIT_HOME": str(tmp_path / "home"),
        "EVALKIT_STORE_PATH": str(mount / "evalkit.duckdb"),
        "EVALKIT_QUERY_BATCH_SIZE": "16",
    }
    env.pop("EVALKIT_CONFIG", None)
    try:
        with serving(_ManyResults) as url:
            yield SmallDisk(mount, env, f"{url}/search")
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def statuses(store_path: Path) -> list[str]:
    with Store.open(store_path, read_only=True) as store:
        return [run.status for run in list_runs(store, limit=100)]


@pytest.mark.slow
def test_a_full_disk_fails_the_command_cleanly_and_loses_nothing(
    small_disk: SmallDisk, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    imported = small_disk.evalkit_here(
        monkeypatch, "goldset", "import", "--format", "jsonl", str(DEMO), "--name", "demo"
    )
    assert imported == 0, capsys.readouterr().err
    capsys.readouterr()
    run = ("run", "--goldset", "demo", "--http-retriever", small_disk.url, "--k", "100")
    first = small_disk.evalkit_here(monkeypatch, *run, "--format", "json")
    written = capsys.readouterr()
    assert first == 0, written.err
    baseline = json.loads(written.out)
    assert baseline["status"] == "complete"

    # Full before the run can even be recorded.
    filler = small_disk.fill(leave_kib=0)
    refused = small_disk.evalkit(*run)
    assert refused.returncode == 3, refused.stderr
    assert "No space left on device" in refused.stderr
    assert "Traceback" not in refused.stderr
    filler.unlink()
    assert statuses(small_disk.store) == ["complete"]

    # Full in the middle: the run row fits, its results do not.
    for leave_kib in (64, 192):
        filler = small_disk.fill(leave_kib=leave_kib)
        broken = small_disk.evalkit(*run)
        filler.unlink()
        assert broken.returncode == 3, broken.stdout + broken.stderr
        assert "No space left on device" in broken.stderr
        assert "Traceback" not in broken.stderr
        # The run is marked failed when that still fits. On some fill levels DuckDB loses
        # that last small commit with the disk full (it reports none), and the run stays
        # `running` for the next writer to mark, as docs/scheduler.md says.
        left = statuses(small_disk.store)
        assert left[1:].count("running") == 0, left

    # Space again: a run left running is marked failed by this writer, everything stored
    # before is there and a new run completes.
    again = small_disk.evalkit(*run, "--format", "json")
    assert again.returncode == 0, again.stderr
    if left[0] == "running":
        assert "was left running by a process that stopped; marked failed" in again.stderr
    assert json.loads(again.stdout)["aggregates"] == baseline["aggregates"]
    with Store.open(small_disk.store, read_only=True) as store:
        runs = list_runs(store, limit=100)
        assert runs[-1].run_id == baseline["run_id"]
        assert get_run(store, baseline["run_id"]).aggregates == baseline["aggregates"]
        assert {run.status for run in runs} <= {"complete", "failed"}
        assert [run.status for run in runs].count("complete") == 2
        assert list_goldsets(store)[0].n_queries == 129


@pytest.mark.slow
def test_a_full_disk_in_the_middle_of_a_large_insert_is_named_with_its_path(
    small_disk: SmallDisk,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """1,500 queries x 100 documents: DuckDB writes the results' row groups into the file
    during the INSERT itself, so the disk fills inside a statement, not at the commit, and
    every later statement of that transaction is refused as "aborted"."""
    folder = tmp_path / "large"
    folder.mkdir()
    ids = [f"q{number}" for number in range(1500)]
    (folder / "queries.jsonl").write_text(
        "".join(json.dumps({"id": qid, "text": f"question {qid}"}) + "\n" for qid in ids)
    )
    (folder / "judgments.jsonl").write_text(
        "".join(
            json.dumps({"query_id": qid, "doc_id": f"doc-{n % 330:03d}", "relevance": 1}) + "\n"
            for n, qid in enumerate(ids)
        )
    )
    imported = small_disk.evalkit_here(
        monkeypatch, "goldset", "import", str(folder), "--name", "large"
    )
    assert imported == 0, capsys.readouterr().err
    filler = small_disk.fill(leave_kib=512)
    broken = small_disk.evalkit(
        "run", "--goldset", "large", "--http-retriever", small_disk.url, "--k", "100"
    )
    filler.unlink()
    assert broken.returncode == 3, broken.stdout + broken.stderr
    assert "No space left on device" in broken.stderr
    assert str(small_disk.store) in broken.stderr
    assert "transaction is aborted" not in broken.stderr
    assert "Traceback" not in broken.stderr


@pytest.mark.parametrize("small_disk", ["16m"], indirect=True)  # room for store and copy
@pytest.mark.slow
def test_a_compaction_that_fills_the_disk_leaves_the_store_as_it_was(
    small_disk: SmallDisk, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`evalkit store compact` writes a copy beside the store before it replaces it: the disk
    filling during the copy must neither touch the store nor leave the copy behind."""
    assert (
        small_disk.evalkit_here(
            monkeypatch, "goldset", "import", "--format", "jsonl", str(DEMO), "--name", "demo"
        )
        == 0
    )
    run = ("run", "--goldset", "demo", "--http-retriever", small_disk.url, "--k", "20")
    for _ in range(2):
        assert small_disk.evalkit_here(monkeypatch, *run) == 0
    capsys.readouterr()
    with Store.open(small_disk.store) as store:
        # Retention's work: what compaction gives back, and room for the copy afterwards.
        prune_run_details(store, [run.run_id for run in list_runs(store)][1:])
    size = small_disk.store.stat().st_size
    filler = small_disk.fill(leave_kib=64)
    full = small_disk.evalkit("store", "compact")
    filler.unlink()
    assert full.returncode == 3, full.stdout + full.stderr
    assert "No space left on device" in full.stderr
    assert "the store is left as it was" in full.stderr
    assert "Traceback" not in full.stderr
    assert sorted(path.name for path in small_disk.mount.iterdir()) == [
        "evalkit.duckdb",
        "evalkit.duckdb.writer.lock",
    ]
    assert small_disk.store.stat().st_size == size
    assert statuses(small_disk.store) == ["complete", "complete"]
    compacted = small_disk.evalkit("store", "compact", "--format", "json")
    assert compacted.returncode == 0, compacted.stderr
    assert json.loads(compacted.stdout)["bytes_before"] == size
    assert statuses(small_disk.store) == ["complete", "complete"]
