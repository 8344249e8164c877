"""Every command that draws a progress bar, run on a real pseudo-terminal as a user types it,
then piped as a CI log reads it; and `make demo` itself on a terminal.

On a terminal the bar must draw, end, and give the cursor back; piped, the same commands print
plain progress lines on stderr (``evalkit.cli._output.ProgressLines``).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from evalkit_process import EVALKIT, USER_STORE_VARIABLES, output_once_ended, run_evalkit
from loopback import serving
from plugin_sources import fixed_retriever_source, stalling_retriever_source
from query_log import logged_query, write_query_log
from terminal import TerminalRun, run_on_terminal, terminal_env

from evalkit.cli import Terminated, invoke

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "goldsets" / "demo"
RUN_DEMO = ("run", "--goldset", "demo", "--collection", "demo", "--k", "10")
TRAFFIC_REPLAY = (
    "traffic",
    "replay",
    "--window",
    "2026-11-21",
    "--embed-sample",
    "0",
    "--retriever",
    "fixed_retriever:make",
    "--no-answers",
)

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Workspace:
    """A fresh store with the demo goldset imported, a folder to run in, and its env."""

    folder: Path
    home: Path

    def env(self) -> dict[str, str]:
        return terminal_env(
            EVALKIT_HOME=str(self.home), PYTHONPATH=str(self.folder), PYTHONFAULTHANDLER="1"
        )

    def on_terminal(self, *args: str) -> TerminalRun:
        return run_on_terminal([*EVALKIT, *args], cwd=self.folder, env=self.env())

    def piped(self, *args: str) -> subprocess.CompletedProcess[str]:
        return run_evalkit(*args, env=self.env(), cwd=self.folder)

    def set_up(self, *args: str) -> str:
        """``evalkit ARGS`` run in this process, in the folder, over the store: for setup
        that is not itself under test. Its stdout; a nonzero exit fails the setup."""
        out = io.StringIO()
        path = list(sys.path)
        # The folder's factory module, not one of the same name another test's folder held.
        sys.modules.pop("fixed_retriever", None)
        with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(out):
            for name in USER_STORE_VARIABLES:
                patch.delenv(name, raising=False)
            patch.setenv("EVALKIT_HOME", str(self.home))
            patch.chdir(self.folder)
            code = invoke(list(args))
        sys.path[:] = path
        sys.modules.pop("fixed_retriever", None)
        assert code == 0, out.getvalue()
        return out.getvalue()


def live_gate(baseline: str) -> tuple[str, ...]:
    """``gate`` of the plug-in retriever, replayed now, against the run ``baseline``."""
    return (
        "gate",
        "--baseline",
        baseline,
        "--goldset",
        "demo",
        "--retriever",
        "fixed_retriever:make",
        "--k",
        "10",
    )


def assert_clean(done: TerminalRun) -> None:
    """Exit 0, no traceback, the bar drawn and the cursor shown again."""
    assert done.returncode == 0, done.output[-4000:]
    assert "Traceback" not in done.output, done.output[-4000:]
    assert "lost sys.stderr" not in done.output
    assert done.drew_progress(), "no progress bar was drawn on the terminal"
    assert not done.cursor_left_hidden(), "the cursor was left hidden"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    folder = tmp_path_factory.mktemp("terminal")
    space = Workspace(folder, folder / "home")
    space.set_up("goldset", "import", "--format", "jsonl", str(DEMO), "--name", "demo")
    (folder / "fixed_retriever.py").write_text(fixed_retriever_source("d1", "d2"))
    logs = write_query_log(folder, (logged_query(index, results=["d1"]) for index in range(40)))
    space.set_up("traffic", "ingest", str(logs))
    space.set_up("traffic", "sample", "--window", "2026-11-21", "--n", "40")
    return space


@pytest.fixture(scope="module")
def indexed(workspace: Workspace) -> TerminalRun:
    """`evalkit index` of the demo corpus, typed on a terminal."""
    return workspace.on_terminal(
        "index", "--corpus", str(DEMO / "corpus.jsonl"), "--collection", "demo"
    )


def test_index_draws_its_bar_and_ends_cleanly_on_a_terminal(indexed: TerminalRun) -> None:
    assert_clean(indexed)
    assert "collection demo" in indexed.output
    # While the model loads the command says so, and its bar knows its total from the
    # start: it showed a silent "0/?" for about 25 s.
    assert "loading embedding model sentence-transformers/all-MiniLM-L6-v2 ..." in indexed.output
    assert "0/?" not in indexed.output
    assert "/330" in indexed.output


def test_run_draws_its_bar_and_ends_cleanly_on_a_terminal(
    workspace: Workspace, indexed: TerminalRun
) -> None:
    assert indexed.returncode == 0
    done = workspace.on_terminal(*RUN_DEMO)
    assert_clean(done)
    assert "ndcg@10" in done.output


def test_traffic_replay_draws_its_bar_and_ends_cleanly_on_a_terminal(
    workspace: Workspace,
) -> None:
    done = workspace.on_terminal(*TRAFFIC_REPLAY)
    assert_clean(done)


def test_answers_score_draws_its_bar_and_ends_cleanly_on_a_terminal(
    workspace: Workspace,
) -> None:
    context = "The Sydney Harbour Bridge is a steel arch bridge. It opened in 1932."
    answers = workspace.folder / "answers.jsonl"
    answers.write_text(
        "".join(
            json.dumps(
                {
                    "id": f"a{index}",
                    "question": "When did the bridge open?",
                    "answer": "The Sydney Harbour Bridge opened in 1932.",
                    "contexts": [context],
                }
            )
            + "\n"
            for index in range(5)
        )
    )
    done = workspace.on_terminal("answers", "score", str(answers), "--method", "offline")
    assert_clean(done)
    assert "faithfulness" in done.output


def test_piped_run_prints_plain_progress_lines_on_stderr(
    workspace: Workspace, indexed: TerminalRun
) -> None:
    assert indexed.returncode == 0
    done = workspace.piped(*RUN_DEMO)
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("replaying demo: ")]
    # 129 queries in batches of 64: past 40 %, past 90 %, then all of them.
    assert lines[-1].startswith("replaying demo: 129/129 (100%), 0:00:")
    assert any(line.startswith("replaying demo: 64/129 (50%)") for line in lines)
    assert "\x1b[" not in done.stderr
    assert "replaying demo" not in done.stdout


@pytest.mark.parametrize(
    ("sent", "code", "said", "error"),
    [
        (signal.SIGINT, 130, "interrupted: what was stored before is kept", "interrupted: Ctrl-C"),
        (
            signal.SIGTERM,
            143,
            "terminated (SIGTERM): what was stored before is kept",
            "interrupted: SIGTERM",
        ),
    ],
)
def test_ctrl_c_or_sigterm_mid_replay_exits_saying_the_run_is_stored_as_failed(
    workspace: Workspace, sent: signal.Signals, code: int, said: str, error: str
) -> None:
    (workspace.folder / "stalling_retriever.py").write_text(stalling_retriever_source())
    replay = subprocess.Popen(
        [*EVALKIT, "run", "--goldset", "demo", "--retriever", "stalling_retriever:make"],
        cwd=workspace.folder,
        env=workspace.env(),
        stderr=subprocess.PIPE,
        text=True,
    )
    assert replay.stderr is not None
    # The first batch of 64 answered, the replay stalls on the second: interrupt it there.
    first = replay.stderr.readline()
    assert first.startswith("replaying demo: 64/129"), first
    replay.send_signal(sent)
    rest = replay.stderr.read()
    assert replay.wait(timeout=60) == code
    assert "Traceback" not in rest
    assert said in rest
    (latest, *_) = json.loads(workspace.set_up("runs", "list", "--format", "json"))
    assert (latest["retriever_config"]["factory"], latest["status"]) == (
        "stalling_retriever:make",
        "failed",
    )
    # Said as a run a stopped process left is said (`interrupted: ...`), not as an error.
    assert latest["error"] == error


@pytest.mark.parametrize(
    ("sent", "code", "kind"),
    [(signal.SIGINT, 130, "Interrupted"), (signal.SIGTERM, 143, "Terminated")],
)
def test_ctrl_c_or_sigterm_of_a_json_command_prints_the_error_object(
    workspace: Workspace, sent: signal.Signals, code: int, kind: str
) -> None:
    """A script parsing stdout gets JSON when the command is stopped too, as on every
    other failure (docs/cli.md, Errors as JSON)."""
    (workspace.folder / "stalling_retriever.py").write_text(stalling_retriever_source())
    replay = subprocess.Popen(
        [
            *EVALKIT,
            "run",
            "--goldset",
            "demo",
            "--retriever",
            "stalling_retriever:make",
            "--format",
            "json",
        ],
        cwd=workspace.folder,
        env=workspace.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert replay.stderr is not None
    while (line := replay.stderr.readline()) and line.strip() != "stalling":
        pass
    replay.send_signal(sent)
    out, err = output_once_ended(replay)
    assert replay.returncode == code, err
    error = json.loads(out)["error"]
    assert (error["type"], error["exit_code"]) == (kind, code)
    assert "what was stored before is kept" in error["message"]


def _terminate() -> None:
    raise Terminated("SIGTERM")


def test_sigterm_raised_inside_an_event_loop_callback_stops_the_loop() -> None:
    """asyncio logs and drops what a callback or a transport's write raises, but for
    SystemExit and KeyboardInterrupt: a SIGTERM landing there while a judge or the question
    writer sent its requests was ignored, and the command went on until it was killed."""

    async def sending() -> None:
        asyncio.get_running_loop().call_soon(_terminate)
        await asyncio.wait_for(asyncio.Event().wait(), timeout=5)

    with pytest.raises(Terminated):
        asyncio.run(sending())


class _AnswersTheProbeThenHangs(BaseHTTPRequestHandler):
    """An endpoint that answers its first request (evalkit's probe) and never the others."""

    asked = 0
    stop = threading.Event()

    def do_POST(self) -> None:
        type(self).asked += 1
        self.rfile.read(int(self.headers["Content-Length"]))
        if type(self).asked > 1:
            type(self).stop.wait(120)
            return
        body = json.dumps({"results": [{"id": "d1", "score": 1.0}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_sigterm_does_not_wait_for_requests_to_a_hung_endpoint(workspace: Workspace) -> None:
    """A container's stop sends SIGTERM, then SIGKILL after its grace period (10 s for
    docker): the run must be stored as failed within it, not after the requests in flight
    used up their 60 s timeout and three retries."""
    handler = type("Hangs", (_AnswersTheProbeThenHangs,), {"asked": 0, "stop": threading.Event()})
    try:
        with serving(handler) as url:
            replay = subprocess.Popen(
                [*EVALKIT, "run", "--goldset", "demo", "--http-retriever", f"{url}/search"],
                cwd=workspace.folder,
                env={**workspace.env(), "EVALKIT_HTTP_TIMEOUT": "60"},
                stderr=subprocess.PIPE,
                text=True,
            )
            while handler.asked < 2 and replay.poll() is None:
                handler.stop.wait(0.05)
            replay.send_signal(signal.SIGTERM)
            _, err = output_once_ended(replay, timeout=30)
    finally:
        handler.stop.set()
        replay.kill()
    assert replay.returncode == 143, err
    (latest, *_) = json.loads(workspace.set_up("runs", "list", "--format", "json"))
    assert (latest["status"], latest["error"]) == ("failed", "interrupted: SIGTERM")


def test_sigterm_ends_a_traffic_watch_cleanly(workspace: Workspace) -> None:
    """A service manager stops ``traffic ingest --watch`` with SIGTERM: exit 0, no note
    about failed runs, and what the pass ingested is stored."""
    log = workspace.folder / "watched.jsonl"
    log.write_text(
        json.dumps({"query_id": "w1", "timestamp": "2019-03-04T10:00:00Z", "text": "hello"}) + "\n"
    )
    watcher = subprocess.Popen(
        [*EVALKIT, "traffic", "ingest", str(log), "--watch", "--interval", "1"],
        cwd=workspace.folder,
        env=workspace.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert watcher.stdout is not None
    for line in watcher.stdout:  # the first pass's table names the file it read
        if "watched.jsonl" in line:
            break
    watcher.send_signal(signal.SIGTERM)
    _, rest = output_once_ended(watcher)
    assert watcher.returncode == 0, rest
    assert "stopped watching" in rest
    assert "Traceback" not in rest
    assert "failed" not in rest
    windows = json.loads(workspace.set_up("traffic", "windows", "--format", "json"))
    assert [w["records"] for w in windows if w["window"] == "2019-03-04"] == [1]


def test_piped_traffic_replay_prints_plain_progress_lines_on_stderr(
    workspace: Workspace,
) -> None:
    done = workspace.piped(*TRAFFIC_REPLAY)
    assert done.returncode == 0, done.stderr
    assert "replaying traffic: 40/40 (100%), 0:00:" in done.stderr


@pytest.fixture(scope="module")
def fixed_baseline(workspace: Workspace) -> str:
    """A stored run of the plug-in retriever, the baseline a live gate compares with."""
    out = workspace.set_up(
        "run",
        "--goldset",
        "demo",
        "--retriever",
        "fixed_retriever:make",
        "--k",
        "10",
        "--format",
        "json",
    )
    return str(json.loads(out)["run_id"])


def test_gate_draws_its_bar_while_it_replays_a_live_candidate_on_a_terminal(
    workspace: Workspace, fixed_baseline: str
) -> None:
    done = workspace.on_terminal(*live_gate(fixed_baseline))
    assert_clean(done)


def test_piped_gate_prints_plain_progress_lines_while_it_replays(
    workspace: Workspace, fixed_baseline: str
) -> None:
    done = workspace.piped(*live_gate(fixed_baseline))
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("replaying demo ")]
    assert lines, done.stderr
    assert lines[-1].startswith("replaying demo against the candidate: 129/129 (100%)")
    assert "\x1b[" not in done.stderr


def test_runs_list_in_80_columns_shows_each_run_whole(
    workspace: Workspace, fixed_baseline: str
) -> None:
    """Squeezed into 80 columns the table cut every cell: "comp…", "0.74…", "202… 17:…"."""
    done = run_on_terminal(
        [*EVALKIT, "runs", "list", "--goldset", "demo"],
        cwd=workspace.folder,
        env=workspace.env(),
        timeout=120,
        columns=80,
    )
    assert done.returncode == 0, done.output[-4000:]
    drawn = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", done.output).splitlines()
    assert max(len(line) for line in drawn) <= 80
    (row,) = [line for line in drawn if line.startswith(fixed_baseline)]
    assert re.fullmatch(
        rf"{fixed_baseline} +complete +demo +129 +\d\.\d{{4}} +\d\d-\d\d \d\d:\d\d *", row
    ), row
    assert "…" not in done.output
    assert "not shown at this width: retriever, collection" in done.output


def test_piped_json_output_prints_no_progress(workspace: Workspace) -> None:
    done = workspace.piped(*TRAFFIC_REPLAY, "--format", "json")
    assert done.returncode == 0, done.stderr
    assert "replaying traffic" not in done.stderr
    json.loads(done.stdout)


def test_a_query_id_wider_than_the_terminal_leaves_every_value_shown(tmp_path: Path) -> None:
    """A URL as query id, wider than the terminal: the id is shortened in the middle, never
    the values (rich squeezed every other column to nothing beside an id it kept whole)."""
    url = (
        "https://example.com/some/really/long/path/to/a/document/that/is/used/as/a/query/"
        "identifier?with=params&and=more12"
    )
    (tmp_path / "qrels").write_text(f"{url} 0 d1 1\nq2 0 d2 1\n")
    (tmp_path / "run").write_text(
        f"{url} Q0 d1 1 1.0 t\n{url} Q0 d3 2 0.5 t\nq2 Q0 d3 1 1.0 t\nq2 Q0 d2 2 0.5 t\n"
    )
    measures = ["-m", "ndcg@10", "-m", "recall@10", "-m", "mrr"]
    done = run_on_terminal(
        [*EVALKIT, "score", "--qrels", "qrels", "--run", "run", "--per-query", *measures],
        cwd=tmp_path,
        env=terminal_env(EVALKIT_HOME=str(tmp_path / "home")),
        timeout=120,
        columns=100,
    )
    assert done.returncode == 0, done.output[-4000:]
    drawn = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", done.output).splitlines()
    assert max(len(line) for line in drawn) <= 100
    (url_row,) = [line for line in drawn if line.startswith("│ https://example.com/")]
    (q2_row,) = [line for line in drawn if line.startswith("│ q2 ")]
    assert re.search(
        r"…dentifier\?with=params&and=more12 +│ +1\.0000 │ +1\.0000 │ +1\.0000 │", url_row
    )
    assert re.search(r"│ +0\.6309 │ +1\.0000 │ +0\.5000 │$", q2_row)


def test_sentences_are_printed_uncoloured_on_a_terminal(tmp_path: Path) -> None:
    """rich coloured every number, date and bracket of a message mid-sentence ("1 queries",
    "(was 034c87ce4345)"), in the user's own ids and texts too."""
    (tmp_path / "g").mkdir()
    (tmp_path / "g" / "queries.jsonl").write_text('{"id": "q1", "text": "cat on a mat"}\n')
    (tmp_path / "g" / "judgments.jsonl").write_text(
        '{"query_id": "q1", "doc_id": "d1", "relevance": 1}\n'
    )
    done = run_on_terminal(
        [*EVALKIT, "goldset", "import", "g", "--name", "g"],
        cwd=tmp_path,
        env=terminal_env(EVALKIT_HOME=str(tmp_path / "home")),
        timeout=120,
    )
    assert done.returncode == 0, done.output[-4000:]
    assert re.search(r"goldset g version [0-9a-f]{12}: 1 queries, 1 judgments", done.output)
    assert "\x1b[" not in done.output


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_demo_passes_on_a_terminal(tmp_path: Path) -> None:
    venv = REPO / ".venv"
    if not (venv / ".installed").exists() or not (venv / "bin" / "evalkit").exists():
        pytest.skip("make demo runs in the repository's .venv, which is not installed")
    # -o: take the installed venv as up to date; a test must never reinstall it.
    done = run_on_terminal(
        ["make", "-o", str(venv.relative_to(REPO) / ".installed"), "demo", f"DEMO_HOME={tmp_path}"],
        cwd=REPO,
        env=terminal_env(),
        timeout=600,
    )
    assert_clean(done)
    assert "ndcg@10" in done.output
    assert os.path.exists(tmp_path / "evalkit.duckdb")
    # The demo shows evalkit at its best: each query searches its own tenant's documents
    # (the note that 129 queries of 2 tenants searched every tenant's is gone), the next
    # steps replay the same way, and indexing says what it waits for.
    assert "tenant(s)" not in done.output
    assert "--collection demo --where-key tenant" in done.output
    assert "loading embedding model" in done.output
