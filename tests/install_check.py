"""Install the built wheel into fresh venvs, as a user would, and use it.

``python tests/install_check.py [--only core|all] [--python 3.12 ...] [--keep DIR]`` builds
the wheel, then:

- core, on each Python of ``PYTHONS`` (3.11, 3.12, 3.13): ``pip install evalkit-retrieval``
  (no extra) into a new venv made by that interpreter; checks that none of the heavy
  packages came with it, that ``--help`` lists every command, that ``--version``, ``score``,
  ``gate`` on TREC files, ``goldset import`` and ``runs`` work, and that ``index`` and
  ``dashboard`` name every extra they need at once and exit 2. The interpreters are found as
  on a fresh machine: pyenv's versions folder (``$PYENV_ROOT``, else ``~/.pyenv``), then
  ``python3.X`` on PATH; a Python that is not there is reported as a ``SKIP`` line, never
  passed over in silence;
- all: the CPU build of torch, then ``evalkit-retrieval[all]``; runs ``make demo``'s flow
  (goldset import, index, run) from the installed wheel, runs the installed dashboard app
  once with Streamlit's AppTest on that store (no exception, no error) and serves it,
  checking that its page answers.

It prints each install's size and exits non-zero on the first failure. ``make test`` runs it
(``make install-check``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import zipfile
from pathlib import Path

from evalkit.cli import COMMAND_MODULES

REPO = Path(__file__).resolve().parents[1]
# The Pythons the core is installed and run on; pyproject.toml's requires-python and
# classifiers claim exactly these (tests/test_packaging.py).
PYTHONS = ("3.11", "3.12", "3.13")
TORCH = "torch==2.13.0"  # the CPU build; an unpinned torch pulls several GB of CUDA packages
# Distribution names, as `pip list` spells them.
HEAVY = (
    "torch",
    "chromadb",
    "ragas",
    "evidently",
    "streamlit",
    "sentence-transformers",
    "transformers",
    "scikit-learn",
    "plotly",
    "onnxruntime",
)
# Run with the venv's python: the installed app.py, once, as the dashboard's tests open it.
APP_TEST = """
import sys
from streamlit.testing.v1 import AppTest

app = AppTest.from_file(sys.argv[1], default_timeout=120).run()
problems = [str(element.value) for element in [*app.exception, *app.error]]
if problems:
    raise SystemExit(f"the dashboard app failed: {problems}")
"""
IN_THE_WHEEL = (
    "evalkit/dashboard/app.py",
    "evalkit/dashboard/views/overview.py",
    "evalkit/answers/offline_calibration.json",
    "evalkit/answers/offline_calibration_v3.json",
    "evalkit/py.typed",
    *(
        f"evalkit/schemas/{name}.schema.json"
        for name in ("goldset-query", "goldset-judgment", "corpus-document", "traffic-log-line")
    ),
    *(
        f"evalkit/schemas/{name}.schema.json"
        for name in ("http-retriever-request", "http-retriever-response", "alert-payload")
    ),
)


def step(message: str) -> None:
    print(f"install-check: {message}", flush=True)


def run(*args: str | Path, env: dict[str, str] | None = None, cwd: Path | None = None) -> str:
    """Run a command; its stdout, or exit with what it printed."""
    done = subprocess.run(
        [str(arg) for arg in args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        check=False,
    )
    if done.returncode != 0:
        print(done.stdout[-4000:], done.stderr[-4000:], sep="\n", file=sys.stderr)
        raise SystemExit(
            f"install-check: FAILED (exit {done.returncode}): {' '.join(map(str, args))}"
        )
    return done.stdout


def build_wheel(outdir: Path) -> Path:
    step("building the wheel")
    run(sys.executable, "-m", "build", "--wheel", "--outdir", outdir, REPO)
    (wheel,) = outdir.glob("evalkit_retrieval-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = [name for name in IN_THE_WHEEL if name not in names]
    if missing:
        raise SystemExit(f"install-check: FAILED: the wheel lacks {missing}")
    step(f"{wheel.name}: {wheel.stat().st_size / 1e6:.1f} MB, {len(names)} files")
    return wheel


def find_python(version: str) -> Path | None:
    """An interpreter of Python ``version`` ("3.12"), as a machine with pyenv or the
    distribution's packages has it: this very interpreter, pyenv's newest ``version.*``, then
    ``python3.X`` on PATH; None when none of them runs as that version."""
    pyenv = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"
    patches = sorted(
        pyenv.glob(f"{version}.*/bin/python{version}"),
        key=lambda path: [int(p) if p.isdigit() else -1 for p in path.parts[-3].split(".")],
        reverse=True,
    )
    on_path = shutil.which(f"python{version}")
    candidates = [Path(sys.executable), *patches, *([Path(on_path)] if on_path else [])]
    for candidate in candidates:
        if python_version(candidate) == version:
            return candidate
    return None


def python_version(interpreter: Path) -> str | None:
    """``interpreter``'s "major.minor", or None when it does not run (a pyenv shim of a
    version that is not selected exits non-zero)."""
    try:
        done = subprocess.run(
            [str(interpreter), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except OSError:
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def fresh_venv(path: Path, python: Path | None = None) -> Path:
    # Without pip of its own: this interpreter's pip installs into it (`pip --python`), as
    # new as the one an upgrade would fetch, and seeding then upgrading pip in each venv took
    # five seconds of CPU apiece and checked nothing of evalkit's.
    run(python or sys.executable, "-m", "venv", "--without-pip", path)
    return path / "bin"


def pip(bin_dir: Path, *args: str | Path) -> str:
    """Run this interpreter's pip on the venv of ``bin_dir``."""
    return run(sys.executable, "-m", "pip", "--python", bin_dir / "python", *args)


def pip_install(bin_dir: Path, *requirements: str) -> None:
    # Byte-compiling every module of every dependency is two thirds of an install's time
    # here and checks nothing of evalkit's: a command compiles what it imports when it runs,
    # and compile_evalkit compiles every module of the wheel.
    pip(
        bin_dir, "install", "--quiet", "--no-compile", "-c", REPO / "constraints.txt", *requirements
    )


def compile_evalkit(bin_dir: Path) -> None:
    """Every module of the installed evalkit compiles on the venv's Python (pip would have
    compiled them, and passed over one that does not parse)."""
    run(
        bin_dir / "python",
        "-c",
        "import compileall, sys, evalkit\n"
        "sys.exit(not compileall.compile_dir(evalkit.__path__[0], quiet=1))",
    )


def installed(bin_dir: Path) -> set[str]:
    listed = pip(bin_dir, "list", "--format", "json")
    return {entry["name"].lower() for entry in json.loads(listed)}


def size_mb(venv: Path) -> float:
    total = sum(f.stat().st_size for f in venv.rglob("*") if f.is_file() and not f.is_symlink())
    return total / 1e6


def user_env(home: Path) -> dict[str, str]:
    """The environment of a user's shell: no source tree on the path, offline model hub."""
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV"}}
    env.update(
        EVALKIT_HOME=str(home),
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        ANONYMIZED_TELEMETRY="False",
    )
    return env


def write_trec_files(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    queries = range(40)
    (folder / "qrels.txt").write_text(
        "".join(f"q{q} 0 d{q}_{r} 1\n" for q in queries for r in (0, 1))
    )
    (folder / "base.run").write_text(
        "".join(f"q{q} Q0 d{q}_{r} {r + 1} {1 - r / 10} base\n" for q in queries for r in (0, 1))
    )
    (folder / "worse.run").write_text(
        "".join(
            f"q{q} Q0 {'x' if q % 2 == 0 and r == 0 else 'd'}{q}_{r} {r + 1} {1 - r / 10} worse\n"
            for q in queries
            for r in (0, 1)
        )
    )


def check_core(wheel: Path, work: Path, version: str) -> bool:
    """The core install on Python ``version``; False (after a SKIP line) when this machine
    has no such interpreter."""
    python = find_python(version)
    if python is None:
        step(
            f"SKIP core on Python {version}: no interpreter found (pyenv's versions/{version}.*, "
            f"python{version} on PATH); install it (pyenv install {version}) to check it"
        )
        return False
    venv = work / f"core-{version}"
    step(f"core on Python {version} ({python}): pip install evalkit-retrieval (no extra)")
    bin_dir = fresh_venv(venv, python)
    pip_install(bin_dir, str(wheel))
    compile_evalkit(bin_dir)
    present = installed(bin_dir) & set(HEAVY)
    if present:
        raise SystemExit(f"install-check: FAILED: the core install brought {sorted(present)}")
    env = user_env(work / f"core-home-{version}")
    evalkit = bin_dir / "evalkit"
    evalkit_version = run(evalkit, "--version", env=env, cwd=work).strip()
    check_help(evalkit, env, work)
    files = work / "trec"
    write_trec_files(files)
    scored = json.loads(
        run(
            *(evalkit, "score", "--qrels", files / "qrels.txt", "--run", files / "base.run"),
            *("-m", "ndcg@10", "--format", "json"),
            env=env,
            cwd=work,
        )
    )
    assert scored["aggregate"]["ndcg@10"] == 1.0, scored
    gate = subprocess.run(
        [
            *(str(evalkit), "gate", "--baseline", str(files / "base.run")),
            *("--candidate", str(files / "worse.run"), "--qrels", str(files / "qrels.txt")),
            *("-m", "ndcg@10", "--format", "json"),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=work,
        check=False,
    )
    if gate.returncode != 1 or json.loads(gate.stdout)["decision"] != "regression":
        raise SystemExit(f"install-check: FAILED: gate on files: {gate.stdout} {gate.stderr}")
    run(
        evalkit,
        "goldset",
        "import",
        REPO / "goldsets" / "demo",
        "--name",
        "demo",
        env=env,
        cwd=work,
    )
    run(evalkit, "goldset", "list", env=env, cwd=work)
    run(evalkit, "runs", "list", env=env, cwd=work)
    schema = json.loads(run(evalkit, "schema", "alert-payload", env=env, cwd=work))
    assert schema["title"] == "evalkit alert payload", schema
    index = subprocess.run(
        [
            str(evalkit),
            "index",
            "--corpus",
            str(REPO / "goldsets/demo/corpus.jsonl"),
            "--collection",
            "demo",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=work,
        check=False,
    )
    if index.returncode != 2 or "pip install 'evalkit-retrieval[chroma,embed]'" not in index.stderr:
        raise SystemExit(f"install-check: FAILED: index on the core install: {index.stderr}")
    dashboard = subprocess.run(
        [str(evalkit), "dashboard", "--dry-run"],
        capture_output=True,
        text=True,
        env=env,
        cwd=work,
        check=False,
    )
    if (
        dashboard.returncode != 2
        or "pip install 'evalkit-retrieval[dashboard]'" not in dashboard.stderr
    ):
        raise SystemExit(
            f"install-check: FAILED: dashboard on the core install: {dashboard.stderr}"
        )
    step(
        f"core on Python {version}: OK ({evalkit_version}); {len(installed(bin_dir))} packages, "
        f"{size_mb(venv):.0f} MB"
    )
    return True


def help_commands(text: str) -> set[str]:
    """The command names of a click ``--help``'s ``Commands:`` section."""
    _, _, section = text.partition("\nCommands:\n")
    return set(re.findall(r"^  ([a-z][\w-]*)  ", section, flags=re.MULTILINE))


def check_help(evalkit: Path, env: dict[str, str], work: Path) -> None:
    """``evalkit --help`` of the core install lists every command the source registers."""
    listed = help_commands(run(evalkit, "--help", env={**env, "COLUMNS": "100"}, cwd=work))
    missing = set(COMMAND_MODULES) - listed
    if missing:
        raise SystemExit(f"install-check: FAILED: evalkit --help does not list {sorted(missing)}")


def check_app(bin_dir: Path, env: dict[str, str], work: Path) -> None:
    """Run the installed dashboard app once with AppTest, on the store the CLI points it at."""
    located = json.loads(
        run(bin_dir / "evalkit", "dashboard", "--dry-run", "--format", "json", env=env, cwd=work)
    )
    app_env = {**env, "EVALKIT_STORE_PATH": located["store"]}
    run(bin_dir / "python", "-c", APP_TEST, located["app"], env=app_env, cwd=work)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def check_dashboard(evalkit: Path, env: dict[str, str], work: Path) -> None:
    port = free_port()
    server = subprocess.Popen(
        [str(evalkit), "dashboard", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
        cwd=work,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/_stcore/health", timeout=5
                ) as r:
                    if r.read().strip() == b"ok":
                        break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    said = server.stderr.read() if server.stderr else ""
                    raise SystemExit(
                        f"install-check: FAILED: the dashboard did not start: {said}"
                    ) from None
                time.sleep(1)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as page:
            if b"<title>" not in page.read():
                raise SystemExit("install-check: FAILED: the dashboard page has no HTML")
    finally:
        server.send_signal(signal.SIGTERM)
        code = server.wait(timeout=30)
    if code != 0:
        raise SystemExit(f"install-check: FAILED: the dashboard exited {code} on SIGTERM")


def check_all(wheel: Path, work: Path) -> None:
    venv = work / "all"
    step("all: the CPU torch, then evalkit-retrieval[all] into a fresh venv")
    bin_dir = fresh_venv(venv)
    pip_install(bin_dir, TORCH)
    pip_install(bin_dir, f"{wheel}[all]")
    compile_evalkit(bin_dir)
    env = user_env(work / "all-home")
    evalkit = bin_dir / "evalkit"
    demo = REPO / "goldsets" / "demo"
    run(
        evalkit, "goldset", "import", "--format", "jsonl", demo, "--name", "demo", env=env, cwd=work
    )
    run(
        evalkit,
        "index",
        "--corpus",
        demo / "corpus.jsonl",
        "--collection",
        "demo",
        env=env,
        cwd=work,
    )
    ran = json.loads(
        run(
            *(evalkit, "run", "--goldset", "demo", "--collection", "demo", "--k", "100"),
            *("--format", "json"),
            env=env,
            cwd=work,
        )
    )
    if ran["status"] != "complete" or not ran["aggregates"].get("ndcg@10"):
        raise SystemExit(f"install-check: FAILED: the demo run: {ran}")
    check_app(bin_dir, env, work)
    check_dashboard(evalkit, env, work)
    step(
        f"all: OK (demo nDCG@10 {ran['aggregates']['ndcg@10']:.4f}, dashboard run and served); "
        f"{len(installed(bin_dir))} packages, {size_mb(venv):.0f} MB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["core", "all"])
    parser.add_argument(
        "--python",
        action="append",
        choices=PYTHONS,
        help="Check the core on this Python only (repeatable; default: all of them).",
    )
    parser.add_argument("--keep", type=Path, help="Work here and keep the venvs.")
    options = parser.parse_args()
    work = options.keep or Path(tempfile.mkdtemp(prefix="evalkit-install-"))
    work.mkdir(parents=True, exist_ok=True)
    skipped: list[str] = []
    try:
        wheel = build_wheel(work / "dist")
        if options.only in (None, "core"):
            for version in options.python or PYTHONS:
                if not check_core(wheel, work, version):
                    skipped.append(version)
        if options.only in (None, "all"):
            check_all(wheel, work)
    finally:
        if options.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    if skipped:
        step(f"all checks passed, but the core was NOT checked on Python {', '.join(skipped)}")
    else:
        step("all checks passed")


if __name__ == "__main__":
    main()
