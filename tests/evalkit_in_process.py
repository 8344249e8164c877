"""Run the ``evalkit`` CLI in this process through ``evalkit.cli.invoke``, with the environment
and working directory a subprocess would get: for the steps that only set a case up, where
starting a process (and importing evalkit's dependencies again) tests nothing."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path

from evalkit.cli import invoke


@contextlib.contextmanager
def environment(env: Mapping[str, str], cwd: Path | None = None) -> Iterator[None]:
    """``os.environ`` replaced by exactly ``env`` and the working directory moved to ``cwd``
    (when given), both restored after."""
    saved, here = dict(os.environ), Path.cwd()
    os.environ.clear()
    os.environ.update(env)
    if cwd is not None:
        os.chdir(cwd)
    try:
        yield
    finally:
        os.chdir(here)
        os.environ.clear()
        os.environ.update(saved)


def invoke_evalkit(
    *args: str, env: Mapping[str, str], cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """``evalkit ARGS`` run in this process with exactly ``env`` in ``cwd``: its exit code,
    stdout and stderr, as ``evalkit_process.run_evalkit`` reports a subprocess's."""
    out, err = io.StringIO(), io.StringIO()
    with environment(env, cwd), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = invoke(list(args))
    return subprocess.CompletedProcess(["evalkit", *args], code, out.getvalue(), err.getvalue())
