"""``evalkit dashboard``: what it starts, where, and against which store."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import evalkit.cli.dashboard as command
from evalkit.cli import invoke

REPO = Path(__file__).resolve().parents[1]


def test_help_has_an_example(capsys: pytest.CaptureFixture[str]) -> None:
    assert invoke(["dashboard", "--help"]) == 0
    assert "Example: evalkit --home .evalkit dashboard --port 8501" in capsys.readouterr().out


def test_dry_run_serves_the_repository_app_on_loopback_against_the_configured_store(
    evalkit_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert invoke(["dashboard", "--dry-run", "--port", "8600", "--format", "json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["url"] == "http://127.0.0.1:8600/"
    assert info["store"] == str((evalkit_home / "evalkit.duckdb").resolve())
    assert info["store_exists"] is False
    assert info["app"] == str(REPO / "evalkit" / "dashboard" / "app.py")
    arguments = info["command"]
    assert arguments[1:5] == ["-m", "streamlit", "run", info["app"]]
    assert arguments[arguments.index("--server.address") + 1] == "127.0.0.1"
    assert arguments[arguments.index("--server.port") + 1] == "8600"
    assert arguments[arguments.index("--server.headless") + 1] == "true"


def test_global_home_option_names_the_store(
    tmp_path: Path,
    evalkit_home: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from evalkit.cli import _output

    # `--home` is remembered in module state for the rest of the process; keep it to this test.
    monkeypatch.setattr(_output, "_global_overrides", {})
    other = tmp_path / "elsewhere"
    assert invoke(["--home", str(other), "dashboard", "--dry-run", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["store"] == str(other / "evalkit.duckdb")


def test_listening_beyond_loopback_is_warned_about(
    evalkit_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert invoke(["dashboard", "--dry-run", "--host", "0.0.0.0"]) == 0
    assert capsys.readouterr().err.endswith(
        "warning: listening on 0.0.0.0: anyone who can reach this address can read the "
        "dashboard, without a login\n"
    )
    assert invoke(["dashboard", "--dry-run", "--host", "::1"]) == 0
    assert "login" not in capsys.readouterr().err


def test_reviews_allowed_beyond_loopback_are_warned_to_be_writable_by_anyone(
    evalkit_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The warning said anyone could read the dashboard while they could also save reviews
    and publish goldset versions."""
    assert invoke(["dashboard", "--dry-run", "--host", "0.0.0.0", "--allow-reviews"]) == 0
    warning = capsys.readouterr().err
    assert "anyone who can reach this address can read the dashboard, save reviews and " in (
        warning
    )
    assert "publish goldset versions" in warning
    assert "leave it out to keep the dashboard read-only" in warning


@pytest.mark.parametrize(
    ("options", "read_only"),
    [
        ([], False),
        (["--host", "::1"], False),
        (["--host", "0.0.0.0"], True),
        (["--host", "0.0.0.0", "--allow-reviews"], False),
        (["--read-only"], True),
    ],
)
def test_reviews_are_saved_only_on_loopback_unless_said_otherwise(
    evalkit_home: Path,
    capsys: pytest.CaptureFixture[str],
    options: list[str],
    read_only: bool,
) -> None:
    assert invoke(["dashboard", "--dry-run", "--format", "json", *options]) == 0
    assert json.loads(capsys.readouterr().out)["read_only"] is read_only


def _allowed_hosts(arguments: list[str]) -> list[str]:
    return [value for flag, value in itertools.pairwise(arguments) if flag == command._HOSTS]


def test_streamlit_accepts_only_the_names_the_dashboard_is_reached_by(
    evalkit_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Streamlit accepts a WebSocket naming any host unless server.allowedHosts is set: a
    page of another site that rebinds its name to 127.0.0.1 (DNS rebinding) could save
    reviews. The dashboard pins it to the names of the address it listens on and the
    --allowed-host ones."""
    assert invoke(["dashboard", "--dry-run", "--format", "json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert _allowed_hosts(info["command"]) == ["127.0.0.1", "localhost", "::1"]
    assert info["allowed_hosts"] == ["127.0.0.1", "localhost", "::1"]
    options = ["--host", "0.0.0.0", "--allowed-host", "Dash.Example.com"]
    assert invoke(["dashboard", "--dry-run", "--format", "json", *options]) == 0
    hosts = _allowed_hosts(json.loads(capsys.readouterr().out)["command"])
    assert {"localhost", "127.0.0.1", socket.gethostname().lower(), "dash.example.com"} <= set(
        hosts
    )
    assert "*" not in hosts
    assert "0.0.0.0" not in hosts


@pytest.mark.parametrize("value", ["http://dash.example.com", "dash.example.com:8501", "*", ""])
def test_an_allowed_host_that_is_no_host_name_is_a_usage_error(
    evalkit_home: Path, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    assert invoke(["dashboard", "--dry-run", "--allowed-host", value]) == 2
    assert "--allowed-host" in capsys.readouterr().err


def test_a_missing_app_is_a_usage_error_saying_what_to_do(
    tmp_path: Path, evalkit_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert invoke(["dashboard", "--dry-run", "--app", str(tmp_path / "app.py")]) == 2
    assert "leave --app out to run the packaged dashboard" in capsys.readouterr().err


def test_a_package_without_its_app_says_how_to_reinstall(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(command, "packaged_app", lambda: tmp_path / "dashboard" / "app.py")
    with pytest.raises(command.ConfigError, match=r"evalkit-retrieval\[dashboard\]"):
        command.locate_app()


def test_starts_streamlit_with_the_store_in_its_environment(
    evalkit_home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    started: dict[str, Any] = {}

    class FakeProcess:
        def __init__(self, arguments: list[str], *, env: dict[str, str]) -> None:
            started.update(arguments=arguments, env=env)

        def wait(self, timeout: float | None = None) -> int:
            return 3

    monkeypatch.setattr(subprocess, "Popen", FakeProcess)
    assert invoke(["dashboard", "--port", "8765"]) == 3
    assert started["env"]["EVALKIT_STORE_PATH"] == str((evalkit_home / "evalkit.duckdb").resolve())
    assert "8765" in started["arguments"]
    assert "http://127.0.0.1:8765/" in capsys.readouterr().out


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(child) for child in text.split()]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _listening(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        return True
    return False


@pytest.mark.slow
def test_sigterm_stops_the_streamlit_child_and_frees_the_port(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "EVALKIT_HOME": str(tmp_path / "home")}
    env.pop("EVALKIT_STORE_PATH", None)
    log = (tmp_path / "dashboard.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "evalkit", "dashboard", "--port", str(port)],
        env=env,
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    children: list[int] = []
    try:
        deadline = time.monotonic() + 120
        while not _listening(port):
            assert process.poll() is None, (tmp_path / "dashboard.log").read_text()
            assert time.monotonic() < deadline, "streamlit did not start listening"
            time.sleep(0.2)
        children = _children(process.pid)
        assert children, "evalkit dashboard runs streamlit as a child process"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
        deadline = time.monotonic() + 5
        while any(_alive(child) for child in children) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(_alive(child) for child in children), "streamlit was left running"
        assert not _listening(port)
    finally:
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)
        if process.poll() is None:
            process.kill()
            process.wait()
        log.close()
