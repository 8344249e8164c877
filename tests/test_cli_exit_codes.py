"""docs/cli.md's exit-code table against the commands themselves, in real processes."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import typer.main
from conftest import REPO_ROOT
from test_cli_gate import write_qrels, write_run

from evalkit.cli import app
from evalkit.store import Store

TABLE_ROW = re.compile(r"^\| `(evalkit [a-z ]+)` \| (.+) \|$")


def documented_codes() -> dict[str, set[int]]:
    """Each command of docs/cli.md's table with the exit codes its row lists."""
    rows: dict[str, set[int]] = {}
    for line in (REPO_ROOT / "docs" / "cli.md").read_text(encoding="utf-8").splitlines():
        match = TABLE_ROW.match(line)
        if match:
            command, cell = match.groups()
            assert command not in rows, f"{command} is listed twice"
            rows[command] = {int(item.split()[0]) for item in cell.split("; ")}
    return rows


def registered_commands() -> set[str]:
    """Every command a user can run, as ``evalkit group command``."""
    found: set[str] = set()

    def walk(command: object, path: str) -> None:
        subcommands = getattr(command, "commands", None)
        if subcommands:
            for name, sub in subcommands.items():
                walk(sub, f"{path} {name}")
        else:
            found.add(path)

    walk(typer.main.get_command(app), "evalkit")
    return found


def test_every_command_is_in_the_exit_code_table_and_nothing_else() -> None:
    documented = documented_codes()
    assert set(documented) == registered_commands()
    for command, codes in documented.items():
        assert {0, 2} <= codes, f"{command}: every command exits 0 on success and 2 on misuse"


def drift_arrays(tmp_path: Path, *, shift: float) -> list[str]:
    rng = np.random.default_rng(0)
    np.save(tmp_path / "ref.npy", rng.normal(size=(150, 16)).astype(np.float32))
    np.save(tmp_path / "cur.npy", (rng.normal(size=(150, 16)) + shift).astype(np.float32))
    return ["--reference", str(tmp_path / "ref.npy"), "--current", str(tmp_path / "cur.npy")]


def no_drift(tmp_path: Path) -> list[str]:
    return ["drift", "embeddings", *drift_arrays(tmp_path, shift=0.0), "--method", "mmd"]


def drift(tmp_path: Path) -> list[str]:
    return ["drift", "embeddings", *drift_arrays(tmp_path, shift=0.5), "--method", "mmd"]


def runs(tmp_path: Path, n_queries: int, *, drop: set[int]) -> list[str]:
    write_qrels(tmp_path / "qrels", n_queries)
    write_run(tmp_path / "base.run", n_queries)
    write_run(tmp_path / "cand.run", n_queries, drop=drop)
    return ["--qrels", str(tmp_path / "qrels"), "--resamples", "2000"]


def gate_regression(tmp_path: Path) -> list[str]:
    qrels = runs(tmp_path, 300, drop=set(range(0, 300, 10)))
    base, cand = str(tmp_path / "base.run"), str(tmp_path / "cand.run")
    return ["gate", "--baseline", base, "--candidate", cand, *qrels, "-m", "ndcg@10"]


def gate_pass(tmp_path: Path) -> list[str]:
    qrels = runs(tmp_path, 300, drop=set())
    base, cand = str(tmp_path / "base.run"), str(tmp_path / "cand.run")
    return ["gate", "--baseline", base, "--candidate", cand, *qrels, "-m", "ndcg@10"]


def gate_inconclusive(tmp_path: Path) -> list[str]:
    qrels = runs(tmp_path, 5, drop={0})
    base, cand = str(tmp_path / "base.run"), str(tmp_path / "cand.run")
    return ["gate", "--baseline", base, "--candidate", cand, *qrels, "-m", "ndcg@10"]


def compare_regression(tmp_path: Path) -> list[str]:
    args = gate_regression(tmp_path)
    base, cand = args[2], args[4]
    return ["compare", base, cand, *args[5:]]


def gate_bad_measure(tmp_path: Path) -> list[str]:
    return [*gate_pass(tmp_path)[:-1], "ndcg@ten"]


def invalid_goldset(tmp_path: Path) -> list[str]:
    folder = tmp_path / "gs"
    folder.mkdir()
    (folder / "queries.jsonl").write_text('{"id": "q1"}\n', encoding="utf-8")
    (folder / "judgments.jsonl").write_text("not json\n", encoding="utf-8")
    return ["goldset", "validate", str(folder)]


def missing_qrels(tmp_path: Path) -> list[str]:
    write_run(tmp_path / "base.run", 3)
    return ["score", "--qrels", str(tmp_path / "absent"), "--run", str(tmp_path / "base.run")]


def unknown_run(tmp_path: Path) -> list[str]:
    Store.open(tmp_path / "home" / "evalkit.duckdb").close()
    return ["runs", "show", "20261121T000000-000000"]


def explain_unknown_run(tmp_path: Path) -> list[str]:
    return ["explain", unknown_run(tmp_path)[-1]]


def unreadable_store(tmp_path: Path) -> list[str]:
    home = tmp_path / "home"
    home.mkdir()
    (home / "evalkit.duckdb").write_text("not a database\n", encoding="utf-8")
    return ["runs", "list"]


def strict_ingest(tmp_path: Path) -> list[str]:
    log = tmp_path / "app.jsonl"
    good = {"query_id": "a1", "timestamp": "2026-11-21T18:35:00Z", "text": "reset password"}
    log.write_text(json.dumps(good) + "\n{not json\n", encoding="utf-8")
    return ["traffic", "ingest", str(log), "--strict"]


def missing_log(tmp_path: Path) -> list[str]:
    """ingest's --format takes input formats too: asked for json, an error is JSON still."""
    return ["traffic", "ingest", str(tmp_path / "no-such.jsonl"), "--format", "otlp-json"]


CONFIG = """
[[jobs]]
name = "ok"
kind = "command"
command = [{python}, "-c", "pass"]

[[jobs]]
name = "broken"
kind = "command"
command = [{python}, "-c", "import sys; sys.exit('disk full')"]

[[alerts.sinks]]
name = "refusing"
kind = "command"
command = [{python}, "-c", "import sys; sys.exit(1)"]
"""


def configured(tmp_path: Path) -> None:
    python = json.dumps(sys.executable)
    (tmp_path / "evalkit.toml").write_text(CONFIG.format(python=python), encoding="utf-8")


def job_ok(tmp_path: Path) -> list[str]:
    configured(tmp_path)
    return ["jobs", "run", "ok", "--local"]


def job_failed(tmp_path: Path) -> list[str]:
    configured(tmp_path)
    return ["jobs", "run", "broken", "--local"]


def unknown_job(tmp_path: Path) -> list[str]:
    configured(tmp_path)
    return ["jobs", "run", "absent", "--local"]


def sink_refuses(tmp_path: Path) -> list[str]:
    configured(tmp_path)
    return ["alerts", "test"]


def goldsets_without_store(tmp_path: Path) -> list[str]:
    """A listing of a store that is not there fails, as `runs list` does: a CI job pointed
    at a wrong store path must not pass on an empty list."""
    return ["goldset", "list"]


def windows_without_store(tmp_path: Path) -> list[str]:
    return ["traffic", "windows"]


def precision_without_store(tmp_path: Path) -> list[str]:
    """It reads stored runs before it writes its check: no store is created to say so."""
    return ["drift", "precision", "--goldset", "demo"]


def unknown_option(tmp_path: Path) -> list[str]:
    return ["runs", "list", "--no-such-option"]


CASES: list[tuple[str, Callable[[Path], list[str]], int]] = [
    ("evalkit drift embeddings", no_drift, 0),
    ("evalkit drift embeddings", drift, 1),
    ("evalkit gate", gate_pass, 0),
    ("evalkit gate", gate_regression, 1),
    ("evalkit gate", gate_inconclusive, 4),
    ("evalkit gate", gate_bad_measure, 2),
    ("evalkit compare", compare_regression, 0),
    ("evalkit goldset validate", invalid_goldset, 2),
    ("evalkit score", missing_qrels, 2),
    ("evalkit runs show", unknown_run, 2),
    ("evalkit runs list", unreadable_store, 3),
    ("evalkit runs list", unknown_option, 2),
    ("evalkit goldset list", goldsets_without_store, 2),
    ("evalkit traffic windows", windows_without_store, 2),
    ("evalkit drift precision", precision_without_store, 2),
    ("evalkit explain", explain_unknown_run, 2),
    ("evalkit traffic ingest", strict_ingest, 2),
    ("evalkit traffic ingest", missing_log, 2),
    ("evalkit jobs run", job_ok, 0),
    ("evalkit jobs run", job_failed, 1),
    ("evalkit jobs run", unknown_job, 2),
    ("evalkit alerts test", sink_refuses, 3),
]


@pytest.mark.parametrize(
    ("command", "scenario", "code"),
    CASES,
    ids=[f"{command[8:]}-{scenario.__name__}-{code}" for command, scenario, code in CASES],
)
@pytest.mark.slow
def test_a_command_exits_with_the_code_its_row_documents(
    tmp_path: Path, command: str, scenario: Callable[[Path], list[str]], code: int
) -> None:
    assert code in documented_codes()[command], f"docs/cli.md: {command} does not list {code}"
    args = scenario(tmp_path)
    assert " ".join(["evalkit", *args]).startswith(command)
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("EVALKIT_CONFIG", "EVALKIT_CHROMA_URL", "EVALKIT_STORE_PATH")
    }
    env["EVALKIT_HOME"] = str(tmp_path / "home")
    as_json = ["-o", "json"] if args[0] == "goldset" else ["--format", "json"]
    done = subprocess.run(
        [sys.executable, "-m", "evalkit", *args, *as_json],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=tmp_path,
        env=env,
    )
    assert done.returncode == code, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    if scenario.__name__.endswith("_without_store"):
        assert "no evalkit store at" in done.stdout + done.stderr
        assert not (tmp_path / "home" / "evalkit.duckdb").exists()
    # Asked for JSON, stdout is JSON whatever the outcome: the result or an error object.
    result = json.loads(done.stdout)
    if isinstance(result, dict) and set(result) == {"error"}:
        assert result["error"]["exit_code"] == code


_ENDS_WITHOUT_TEARDOWN = """
import atexit, sys, threading, time
import evalkit.cli as cli
from evalkit.cli._app import end_without_teardown

atexit.register(lambda: print("TEARDOWN", flush=True))
if sys.argv[1] == "thread":
    def late():
        time.sleep(0.3)
        print("THREAD-DONE", flush=True)
    threading.Thread(target=late).start()

def command(argv=None):
    sys.stdout.write("x" * 200_000 + "\\nEND\\n")
    end_without_teardown()
    return 3

cli.invoke = command
cli.main()
"""


@pytest.mark.parametrize("case", ["alone", "thread"])
def test_a_command_that_closed_everything_ends_without_teardown_unless_a_thread_is_left(
    case: str,
) -> None:
    """`evalkit run` ends without the interpreter's teardown once it has closed what it
    wrote: the exit code and every byte of piped output survive; a thread still running
    gets the ordinary exit (it finishes, and exit hooks run)."""
    done = subprocess.run(
        [sys.executable, "-c", _ENDS_WITHOUT_TEARDOWN, case],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 3, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "x" * 200_000
    assert lines[1] == "END"
    if case == "alone":
        assert lines[2:] == []
    else:
        assert lines[2:] == ["THREAD-DONE", "TEARDOWN"]
