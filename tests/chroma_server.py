"""A real Chroma server for tests: ``chroma run`` on a free loopback port and a temp path.

Import the fixture into a test module (``from chroma_server import chroma_server_fixture``)
and ask for ``chroma_server``; it is session-scoped, so one server serves every module that
uses it, and it is terminated at the end of the session.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

STARTUP_SECONDS = 60.0


@dataclass(frozen=True)
class ChromaServer:
    """A running ``chroma run`` process: its URL, data directory and log file."""

    url: str
    path: Path
    log: Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def chroma_executable() -> Path:
    """The ``chroma`` command installed next to this Python."""
    return Path(sys.executable).parent / "chroma"


def _wait_for_heartbeat(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"chroma run exited with {process.returncode}:\n{log.read_text(errors='replace')}"
            )
        try:
            if httpx.get(f"{url}/api/v2/heartbeat", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"chroma run did not answer within {STARTUP_SECONDS} s:\n{log.read_text()}")


@contextmanager
def running_chroma(base: Path) -> Iterator[ChromaServer]:
    """``chroma run`` on a free loopback port with its data and log under ``base``, for the
    block (the benchmarks start one this way too)."""
    executable = chroma_executable()
    if not executable.exists():
        raise RuntimeError(f"the chroma command is not installed at {executable}")
    path = base / "data"
    log = base / "server.log"
    port = free_port()
    environment = {**os.environ, "ANONYMIZED_TELEMETRY": "False"}
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            [
                str(executable),
                "run",
                "--path",
                str(path),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=environment,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for_heartbeat(url, process, log)
        yield ChromaServer(url=url, path=path, log=log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture(scope="session", name="chroma_server")
def chroma_server_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChromaServer]:
    """Start ``chroma run`` for the session and stop it afterwards."""
    if not chroma_executable().exists():
        pytest.fail(f"the chroma command is not installed at {chroma_executable()}")
    with running_chroma(tmp_path_factory.mktemp("chroma-server")) as server:
        yield server
