"""Run the real ``evalkit`` CLI in a subprocess, as a user's shell or CI job runs it, against a
store of the test's own: none of the variables that would point it at the developer's store,
settings or Chroma server comes along from the environment of the test run. And write the
evalkit.toml that names the retriever it replays, as a user would."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

EVALKIT = [sys.executable, "-m", "evalkit"]
USER_STORE_VARIABLES = frozenset(
    {
        "EVALKIT_HOME",
        "EVALKIT_CONFIG",
        "EVALKIT_STORE_PATH",
        "EVALKIT_CHROMA_URL",
        "EVALKIT_CHROMA_PATH",
    }
)


def fresh_env(home: Path | None = None, **extra: str) -> dict[str, str]:
    """This process's environment without ``USER_STORE_VARIABLES``, with ``EVALKIT_HOME``
    set to ``home`` when given (else the store is found from the working directory) and
    ``extra`` on top."""
    env = {key: value for key, value in os.environ.items() if key not in USER_STORE_VARIABLES}
    if home is not None:
        env["EVALKIT_HOME"] = str(home)
    return {**env, **extra}


def run_evalkit(
    *args: str, env: Mapping[str, str], cwd: Path | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """``python -m evalkit ARGS`` in ``cwd`` with exactly ``env``; its exit code, stdout and
    stderr (text), whatever the code."""
    return subprocess.run(
        [*EVALKIT, *args],
        cwd=cwd,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def output_once_ended(process: subprocess.Popen[str], *, timeout: float = 60) -> tuple[str, str]:
    """``process.communicate(timeout=timeout)``, for a process the test has just stopped.

    Past the timeout the process is sent SIGABRT and the test fails with what it printed,
    which is where each of its threads was when its environment set ``PYTHONFAULTHANDLER=1``:
    a process that does not end says where it hangs.
    """
    try:
        return process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGABRT)
        out, err = process.communicate()
        pytest.fail(f"still running {timeout:g} s after it was stopped:\n{out}\n{err}")


def write_retriever_config(folder: Path, kind: str, **settings: str) -> Path:
    """``folder/evalkit.toml`` naming a retriever of ``kind`` with ``settings`` as its
    ``[retriever.KIND]`` table (string values); its path."""
    lines = [f"{key} = {json.dumps(value)}" for key, value in settings.items()]
    config = folder / "evalkit.toml"
    config.write_text(
        f'[retriever]\nkind = "{kind}"\n\n[retriever.{kind}]\n' + "\n".join(lines) + "\n",
        encoding="utf-8",
    )
    return config
