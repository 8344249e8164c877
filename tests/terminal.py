"""Run a command on a real pseudo-terminal, as a user typing it would, and read what it drew.

Tests and CI pipe output, so a defect that only shows on a terminal (a progress bar, the
cursor) needs a real one: the command's stdin, stdout and stderr are the slave side of a pty
of a fixed size, and everything it writes is read back from the master side.
"""

from __future__ import annotations

import errno
import fcntl
import os
import pty
import select
import struct
import subprocess
import termios
import time
from dataclasses import dataclass
from pathlib import Path

HIDE_CURSOR = "\x1b[?25l"
SHOW_CURSOR = "\x1b[?25h"
ROWS, COLUMNS = 40, 140


@dataclass(frozen=True)
class TerminalRun:
    """What a command did on the terminal: its exit code and everything it wrote."""

    returncode: int
    output: str

    def cursor_left_hidden(self) -> bool:
        """True when the last cursor hide is not followed by a show."""
        hidden = self.output.rfind(HIDE_CURSOR)
        return hidden >= 0 and self.output.rfind(SHOW_CURSOR) < hidden

    def drew_progress(self) -> bool:
        """True when the command hid the cursor (rich does so while a live bar runs)."""
        return HIDE_CURSOR in self.output


def terminal_env(**extra: str) -> dict[str, str]:
    """The environment of a user's terminal: TERM set, nothing forcing or disabling colour."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"COLUMNS", "LINES", "NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE"}
        and not key.startswith("PYTEST_")
    }
    return {**env, "TERM": "xterm-256color", **extra}


def run_on_terminal(
    command: list[str],
    *,
    cwd: Path,
    env: dict[str, str],
    timeout: float = 300,
    columns: int = COLUMNS,
) -> TerminalRun:
    """Run ``command`` with a pty ``columns`` wide as its terminal; kill it after ``timeout``
    seconds."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, columns, 0, 0))
    try:
        process = subprocess.Popen(
            command,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            cwd=cwd,
            env=env,
            start_new_session=True,
            close_fds=True,
        )
    finally:
        os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                process.kill()
                process.wait()
                raise TimeoutError(
                    f"{command} still ran after {timeout} s; it wrote:\n"
                    + b"".join(chunks).decode(errors="replace")[-4000:]
                )
            ready, _, _ = select.select([master], [], [], min(left, 1.0))
            if not ready:
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError as error:
                # Linux answers EIO once every holder of the slave side has closed it.
                if error.errno != errno.EIO:
                    raise
                break
            if not chunk:
                break
            chunks.append(chunk)
        returncode = process.wait(timeout=max(deadline - time.monotonic(), 1))
    finally:
        os.close(master)
        if process.poll() is None:
            process.kill()
            process.wait()
    return TerminalRun(returncode, b"".join(chunks).decode(errors="replace"))
