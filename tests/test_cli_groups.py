"""Each command group lives in its own module, and `evalkit --help` lists them as before."""

from __future__ import annotations

import ast

import typer.main

from evalkit.cli import alerts, app, jobs, serve

LISTED = [
    "audit",
    "dashboard",
    "compare",
    "gate",
    "index",
    "run",
    "score",
    "serve",
    "goldset",
    "runs",
    "answers",
    "drift",
    "jobs",
    "alerts",
    "traffic",
]


def test_serve_jobs_and_alerts_each_have_their_module() -> None:
    command = typer.main.get_command(app)
    groups = getattr(command, "commands", {})
    assert serve.serve.__module__ == "evalkit.cli.serve"
    assert groups["jobs"].commands.keys() == {"list", "run", "history"}
    assert groups["alerts"].commands.keys() == {"list", "show", "evaluate", "deliver", "test"}
    assert {c.callback.__module__ for c in groups["jobs"].commands.values()} == {jobs.__name__}
    assert {c.callback.__module__ for c in groups["alerts"].commands.values()} == {alerts.__name__}


def test_help_lists_the_commands_in_the_order_it_always_did() -> None:
    import subprocess
    import sys

    # A fresh process: this module imported some command modules first, out of order.
    code = (
        "import typer.main\nfrom evalkit.cli import app\n"
        "print(' '.join(typer.main.get_command(app).commands))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    names = done.stdout.split()
    assert {"serve", "jobs", "alerts"} <= set(names)
    # Commands added later may sit anywhere; those listed keep their relative order.
    assert [name for name in names if name in LISTED] == [name for name in LISTED if name in names]


def test_each_command_is_registered_by_the_module_the_cli_loads_for_it() -> None:
    """`evalkit CMD` imports only COMMAND_MODULES[CMD]: that module must register CMD, and
    every command of the full application must be in the table."""
    import subprocess
    import sys

    import typer.main

    from evalkit.cli import COMMAND_MODULES

    everything = typer.main.get_group(app)
    assert set(everything.commands) == set(COMMAND_MODULES)
    code = (
        "import sys, typer.main\n"
        "from evalkit.cli import COMMAND_MODULES, load_commands\n"
        "for name in COMMAND_MODULES:\n"
        "    assert name in typer.main.get_group(load_commands([name])).commands, name\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.stdout.strip() == "ok", done.stderr
    # One command loads one module, not the rest of the command line.
    alone = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys\nfrom evalkit.cli import load_commands\nload_commands(['score'])\n"
            "print(sorted(m for m in sys.modules if m.startswith('evalkit.cli.')))",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert "evalkit.cli.traffic" not in alone.stdout
    assert "evalkit.cli.score" in alone.stdout


def test_help_loads_every_command_module_but_no_stage_or_settings() -> None:
    """`evalkit --help` registers every command and imports none of what the commands
    run: not the settings (pydantic and every config model, about 0.2 s of start-up), nor
    NumPy, pandas, DuckDB or SciPy (benchmarks/startup.py's target is +0.3 s over Python)."""
    import subprocess
    import sys

    heavy = ("evalkit.config", "pydantic", "numpy", "pandas", "duckdb", "scipy")
    code = (
        "import sys\nfrom evalkit.cli import COMMAND_MODULES, load_commands\n"
        "load_commands(['--help'])\n"
        "assert all('evalkit.cli.' + m in sys.modules for m in COMMAND_MODULES.values())\n"
        f"print(sorted(m for m in {heavy!r} if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def _loaded_by(args: list[str], modules: tuple[str, ...]) -> list[str]:
    """Which of ``modules`` (and which command modules) ``evalkit ARGS`` imports, run as the
    ``evalkit`` script runs it."""
    import subprocess
    import sys

    code = (
        "import sys, atexit\n"
        "atexit.register(lambda: print(sorted(m for m in sys.modules if m in "
        f"{modules!r} or m.startswith('evalkit.cli.') and not m.startswith('evalkit.cli._'))))\n"
        "from evalkit.cli import main\n"
        f"main({args!r})\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    return list(ast.literal_eval(done.stdout.strip().splitlines()[-1]))


def test_help_lists_every_command_without_loading_one() -> None:
    """`evalkit --help` draws its list from COMMAND_SUMMARIES: no command module, none of
    what they import (the request records, the goldset readers), neither click (typer
    carries its own) nor asyncio (benchmarks/startup.py: +0.3 s over Python at most)."""
    moved_out = (
        "click",
        "asyncio",
        "evalkit.coroutines",
        "evalkit.records",
        "evalkit.records.requests",
        "evalkit.goldset",
        "evalkit.goldset.label_studio",
        "evalkit.files",
        "pydantic",
    )
    assert _loaded_by(["--help"], moved_out) == []


def test_help_lists_the_commands_the_application_has_in_its_order() -> None:
    import os
    import subprocess
    import sys

    from evalkit.cli import COMMAND_MODULES, COMMAND_SUMMARIES

    assert set(COMMAND_SUMMARIES) == set(COMMAND_MODULES)
    done = subprocess.run(
        [sys.executable, "-m", "evalkit", "--help"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "COLUMNS": "80"},
    )
    listing = done.stdout.split("Commands:\n", 1)[1].splitlines()
    # One line per command, whole: no summary is cut to "..." or wrapped.
    assert [line.split()[0] for line in listing] == list(COMMAND_SUMMARIES)
    assert [line.split(None, 1)[1] for line in listing] == list(COMMAND_SUMMARIES.values())
    # The order of the whole application's (in a fresh process: this one imported some
    # command modules out of order).
    code = (
        "import typer.main\nfrom evalkit.cli import app\n"
        "print(' '.join(typer.main.get_command(app).commands))"
    )
    whole = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert list(COMMAND_SUMMARIES) == whole.stdout.split()


def test_a_command_loads_no_other_command_module() -> None:
    """`evalkit run --help` loads `run` alone (not answers, judge, runs, which it calls into
    when it runs), and `traffic --help` and `traffic replay --help` load `traffic` alone;
    `review --help` reads no Label Studio export code."""
    assert _loaded_by(["run", "--help"], ()) == ["evalkit.cli.run"]
    assert _loaded_by(["traffic", "--help"], ()) == ["evalkit.cli.traffic"]
    assert _loaded_by(["traffic", "replay", "--help"], ()) == ["evalkit.cli.traffic"]
    loaded = _loaded_by(["review", "--help"], ("evalkit.goldset", "evalkit.goldset.label_studio"))
    assert loaded == ["evalkit.cli.review", "evalkit.cli.review_exchange"]
