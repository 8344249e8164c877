"""Each command group lives in its own module, and `evalkit --help` lists them as before."""

from __future__ import annotations

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
