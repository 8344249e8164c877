"""`evalkit run` holds the store's writer lock only to read the goldset and record the run.

Real processes throughout: `evalkit run` replays against an HTTP retriever on 127.0.0.1 that
holds every goldset query until the test lets it answer, so the run is provably mid-replay
while another real `evalkit` process writes the store.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from loopback import running

from evalkit.errors import RetrieverError
from evalkit.goldset import load_goldset
from evalkit.pipeline import evaluate_goldset, gate_against_baseline
from evalkit.records import Query, QueryResult, ScoredDoc
from evalkit.records.requests import GoldsetRunRequest
from evalkit.stats.decision import Decision
from evalkit.store import Store
from evalkit.store.access import FileLock, StoreAccess
from evalkit.store.runs import list_runs, run_queries

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
# Generous: only bounds how long a broken test can hang, never what it asserts.
PATIENCE = 120.0


class HeldEndpoint:
    """An HTTP retriever endpoint that answers the probe at once and holds every goldset
    query until ``release`` is set; ``replaying`` is set when the first one arrives."""

    def __init__(self) -> None:
        self.replaying = threading.Event()
        self.release = threading.Event()
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if body["query_id"] != "evalkit-check":
                    endpoint.replaying.set()
                    endpoint.release.wait(PATIENCE)
                payload = json.dumps({"results": [{"id": "a", "score": 0.9}]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.handler = Handler
        self.url = ""


@pytest.fixture
def endpoint() -> Iterator[HeldEndpoint]:
    held = HeldEndpoint()
    with running(held.handler) as server:
        held.url = f"{server.url}/search"
        yield held
        held.release.set()


def write_goldset(folder: Path, n: int = 3) -> Path:
    folder.mkdir(parents=True)
    (folder / "queries.jsonl").write_text(
        "".join(json.dumps({"id": f"q{i}", "text": f"question {i}"}) + "\n" for i in range(n))
    )
    (folder / "judgments.jsonl").write_text(
        "".join(
            json.dumps({"query_id": f"q{i}", "doc_id": "a", "relevance": 1}) + "\n"
            for i in range(n)
        )
    )
    return folder


class Evalkit:
    """``python -m evalkit`` processes sharing one EVALKIT_HOME."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.store = root / "home" / "evalkit.duckdb"
        self.env = {
            **os.environ,
            "EVALKIT_HOME": str(root / "home"),
            "EVALKIT_HTTP_TIMEOUT": str(PATIENCE),
            # A writer that had to wait for the whole replay gives up and fails instead.
            "EVALKIT_STORE_WAIT": "5",
            "PYTHONPATH": str(REPO),
        }
        for name in ("EVALKIT_CONFIG", "EVALKIT_CHROMA_URL", "EVALKIT_STORE_PATH"):
            self.env.pop(name, None)

    def start(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "evalkit", *args],
            cwd=self.root,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "evalkit", *args],
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=PATIENCE,
            check=False,
        )

    def statuses(self) -> list[str]:
        with Store.open(self.store, read_only=True) as store:
            return [run.status for run in list_runs(store)]


@pytest.fixture
def evalkit(tmp_path: Path) -> Evalkit:
    tool = Evalkit(tmp_path)
    imported = tool("goldset", "import", str(write_goldset(tmp_path / "gold")), "--name", "g")
    assert imported.returncode == 0, imported.stderr
    return tool


def test_a_goldset_import_beside_a_replaying_run_does_not_wait_for_it(
    evalkit: Evalkit, endpoint: HeldEndpoint, tmp_path: Path
) -> None:
    run = evalkit.start(
        "run",
        "--goldset",
        "g",
        "--http-retriever",
        endpoint.url,
        "--no-answers",
        "--format",
        "json",
    )
    try:
        assert endpoint.replaying.wait(PATIENCE), run.stderr
        other = write_goldset(tmp_path / "other", n=2)
        imported = evalkit("goldset", "import", str(other), "--name", "other")
        assert imported.returncode == 0, imported.stderr
        assert run.poll() is None, "the run must still be replaying"
    finally:
        endpoint.release.set()
        out, err = run.communicate(timeout=PATIENCE)
    assert run.returncode == 0, err
    stored = json.loads(out)
    assert stored["status"] == "complete"
    assert stored["n_evaluated"] == 3
    assert stored["aggregates"]["recall@10"] == 1.0
    assert evalkit.statuses() == ["complete"]
    listed = evalkit("goldset", "list", "--format", "json")
    assert {entry["name"] for entry in json.loads(listed.stdout)} == {"g", "other"}


def test_a_run_killed_mid_replay_leaves_no_run_running(
    evalkit: Evalkit, endpoint: HeldEndpoint, tmp_path: Path
) -> None:
    run = evalkit.start("run", "--goldset", "g", "--http-retriever", endpoint.url, "--no-answers")
    try:
        assert endpoint.replaying.wait(PATIENCE), run.stderr
        os.kill(run.pid, signal.SIGKILL)
    finally:
        run.communicate(timeout=PATIENCE)
    assert run.returncode == -signal.SIGKILL
    imported = evalkit("goldset", "import", str(write_goldset(tmp_path / "next")), "--name", "n")
    assert imported.returncode == 0, imported.stderr
    assert "running" not in evalkit.statuses()


class _Interrupted:
    """A retriever whose replay is interrupted (Ctrl-C) at its first query."""

    def retrieve(self, queries: Sequence[Query], k: int) -> list[QueryResult]:
        raise KeyboardInterrupt

    def describe(self) -> dict[str, str]:
        return {"kind": "interrupted"}

    def index_fingerprint(self) -> None:
        return None

    def model_fingerprint(self) -> None:
        return None


class _Failing(_Interrupted):
    def retrieve(self, queries: Sequence[Query], k: int) -> list[QueryResult]:
        raise RetrieverError("the index is gone")


def test_an_interrupted_replay_outside_the_lock_is_stored_as_a_failed_run(
    tmp_path: Path,
) -> None:
    goldset = load_goldset(write_goldset(tmp_path / "gold"), name="g")
    access = StoreAccess(tmp_path / "evalkit.duckdb", wait=5, program="test")
    with pytest.raises(KeyboardInterrupt):
        evaluate_goldset(
            access,
            goldset,
            _Interrupted(),
            GoldsetRunRequest(k=10, answers=False),
        )
    with Store.open(access.store_path, read_only=True) as store:
        [run] = list_runs(store)
    assert run.status == "failed"
    assert run.error == "interrupted: Ctrl-C"
    assert run.spec.goldset_version == goldset.version
    assert not FileLock(access.lock_path, program="probe").is_held()


def test_a_failing_retriever_outside_the_lock_gives_a_failed_run(tmp_path: Path) -> None:
    goldset = load_goldset(write_goldset(tmp_path / "gold"), name="g")
    access = StoreAccess(tmp_path / "evalkit.duckdb", wait=5, program="test")
    outcome = evaluate_goldset(access, goldset, _Failing(), GoldsetRunRequest(k=10, answers=False))
    assert outcome.run.status == "failed"
    assert outcome.run.n_failed == 3
    with Store.open(access.store_path, read_only=True) as store:
        assert run_queries(store, outcome.run.run_id)["error"].notna().all()


def test_a_waiter_is_told_the_holder_s_name_never_a_blank_record_of_a_named_holder(
    tmp_path: Path,
) -> None:
    """The holder's record was emptied before it was written (and before the lock was
    released), so a waiter polling in that moment logged 'another process' for a holder
    with a name, this very service among them."""
    import fcntl
    import json
    import os

    path = tmp_path / "evalkit.duckdb.writer.lock"
    first = FileLock(path, program="evalkit")
    assert first.acquire(purpose="a long first purpose, longer than the next", wait=0)
    first.release()
    second = FileLock(path, program="evalkit")
    assert second.acquire(purpose="job ingest", wait=0)
    # Written over the last record and cut to its own length, never emptied in between.
    assert json.loads(path.read_text())["purpose"] == "job ingest"
    told: list[object] = []
    assert not FileLock(path, program="probe").acquire(purpose="x", wait=0.3, on_wait=told.append)
    assert [getattr(holder, "purpose", None) for holder in told] == ["job ingest"]
    second.release()

    # A holder that left no record (a full disk) is reported unnamed, once a second shows
    # that no record is coming.
    blank = os.open(path, os.O_RDWR)
    try:
        os.ftruncate(blank, 0)
        fcntl.flock(blank, fcntl.LOCK_EX)
        told.clear()
        assert not FileLock(path, program="probe").acquire(
            purpose="x", wait=0.5, on_wait=told.append
        )
        assert told == []
        assert not FileLock(path, program="probe").acquire(
            purpose="x", wait=1.5, on_wait=told.append
        )
        assert told == [None]
    finally:
        os.close(blank)


def test_a_wait_for_this_process_s_own_work_is_not_logged_as_contention(tmp_path: Path) -> None:
    """`evalkit serve` logged "waiting for the store ... held by this process's 'job X:
    recording its result'" after every job, with nothing else using the store: its outbox
    waited a moment for its own job. Another process's hold is told at once, as before."""
    from evalkit.store.access import StoreBusyError

    store = tmp_path / "evalkit.duckdb"
    Store.open(store).close()
    told: list[str] = []
    access = StoreAccess(store, wait=0.5, program="evalkit serve", on_wait=told.append)
    own = FileLock(store.with_name(store.name + ".writer.lock"), program="evalkit serve")
    assert own.acquire(purpose="job nightly: recording its result", wait=0)
    try:
        with pytest.raises(StoreBusyError), access.writer("outbox: delivering"):
            pass
    finally:
        own.release()
    assert told == []


def test_a_wait_given_up_states_its_length_and_the_holder_now_apart(tmp_path: Path) -> None:
    """`evalkit serve` logged "held by pid 29456 (evalkit serve: job audit) since 08:33:28Z
    for more than 120 s" at 08:33:44: the wait had covered several holders in turn, and the
    message gave the whole wait to the last one."""
    from evalkit.store.access import StoreBusyError

    store = tmp_path / "evalkit.duckdb"
    Store.open(store).close()
    lock_path = store.with_name(store.name + ".writer.lock")

    def record(pid: int, purpose: str, since: str) -> None:
        holder = {"pid": pid, "program": "evalkit serve", "purpose": purpose, "since": since}
        lock_path.write_text(json.dumps({**holder, "host": "elsewhere"}), encoding="utf-8")

    told: list[str] = []

    def hand_over(message: str) -> None:
        told.append(message)
        record(4343, "job audit", "2026-11-27T08:33:28Z")

    access = StoreAccess(store, wait=0.5, program="evalkit jobs", on_wait=hand_over)
    lock = FileLock(lock_path, program="evalkit serve")
    assert lock.acquire(purpose="job nightly", wait=0)
    record(4242, "job nightly", "2026-11-27T08:31:44Z")
    try:
        with pytest.raises(StoreBusyError) as raised, access.writer("job metric-drift"):
            pass
    finally:
        lock.release()
    assert told == [
        f"waiting for the store {store}: it is held by pid 4242 (evalkit serve: job nightly) "
        "since 2026-11-27T08:31:44Z"
    ]
    assert str(raised.value) == (
        f"waited 0.5 s for the store {store}, which other work held all that time; it is held "
        "now by pid 4343 (evalkit serve: job audit) since 2026-11-27T08:33:28Z; try again when "
        "it is done (`evalkit jobs list` shows running jobs)"
    )


def test_the_outbox_takes_the_store_before_this_process_s_jobs_waiting_for_it(
    tmp_path: Path,
) -> None:
    """Alerts raised while `evalkit serve` had a queue of jobs waiting for the store reached
    the sinks ten minutes later: every waiter polled the lock with no order, and the jobs
    kept taking it. A ``first`` waiter of the same access now takes it before them, round
    after round, as soon as the holder (another process, here) lets go."""
    store = tmp_path / "evalkit.duckdb"
    Store.open(store).close()
    told: list[str] = []
    access = StoreAccess(store, wait=PATIENCE, program="evalkit serve", on_wait=told.append)
    lock_path = store.with_name(store.name + ".writer.lock")
    holder = {"pid": 4242, "program": "evalkit", "purpose": "import", "since": "", "host": "x"}
    for _ in range(3):
        other = FileLock(lock_path, program="evalkit")
        assert other.acquire(purpose="import", wait=0)
        lock_path.write_text(json.dumps(holder), encoding="utf-8")
        told.clear()
        order: list[str] = []

        waiters = [
            threading.Thread(target=_take, args=(f"job {n}", access.writer, order))
            for n in range(5)
        ]
        waiters.append(threading.Thread(target=_take, args=("alerts", access.first, order)))
        for thread in waiters:
            thread.start()
        try:
            while len(told) < len(waiters):
                assert all(thread.is_alive() for thread in waiters)
                time.sleep(0.05)
        finally:
            other.release()
            for thread in waiters:
                thread.join(PATIENCE)
        assert order[0] == "alerts"
        assert sorted(order[1:]) == [f"job {n}" for n in range(5)]


def _take(
    name: str, session: Callable[[str], AbstractContextManager[Store]], order: list[str]
) -> None:
    with session(name):
        order.append(name)


class _LockProbe(_Interrupted):
    """Answers every query with document ``a`` and notes whether the store's writer lock was
    held while it did."""

    def __init__(self, lock_path: Path) -> None:
        self.lock_path = lock_path
        self.held: list[bool] = []

    def retrieve(self, queries: Sequence[Query], k: int) -> list[QueryResult]:
        self.held.append(FileLock(self.lock_path, program="probe").is_held())
        return [QueryResult(query.id, (ScoredDoc("a", 1.0, 1),), 1.0) for query in queries]


def test_the_gate_replays_a_live_candidate_with_the_store_given_back(tmp_path: Path) -> None:
    """`evalkit gate` held the store through its candidate's replay, writing each batch into
    it as the queries ran: every query of the candidate was slower than the same retriever
    replayed by `evalkit run` (p50 1.7 ms against 1.0 ms on the demo), and a latency gate
    failed the unchanged retriever."""
    goldset = load_goldset(write_goldset(tmp_path / "gold"), name="g")
    access = StoreAccess(tmp_path / "evalkit.duckdb", wait=5, program="test")
    request = GoldsetRunRequest(k=10, answers=False)
    baseline = evaluate_goldset(access, goldset, _LockProbe(access.lock_path), request)
    probe = _LockProbe(access.lock_path)
    outcome = gate_against_baseline(access, baseline.run.run_id, probe, goldset=goldset)
    assert probe.held == [False]
    assert outcome.decision is Decision.PASS
    assert outcome.candidate_run is not None
    assert outcome.candidate_run.status == "complete"
    assert not FileLock(access.lock_path, program="probe").is_held()
