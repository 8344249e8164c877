"""``evalkit dashboard``: the Streamlit dashboard over the configured store."""

from __future__ import annotations

import contextlib
import ipaddress
import itertools
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import typer

from evalkit.cli._app import app
from evalkit.cli._options import Format
from evalkit.cli._output import OutputFormat, console, emit_json, err_console, key_values, settings
from evalkit.errors import ConfigError
from evalkit.extras import require_all

__all__ = [
    "dashboard",
    "dashboard_command",
    "locate_app",
    "packaged_app",
    "parse_allowed_hosts",
]
STORE_ENV = "EVALKIT_STORE_PATH"
STOP_SECONDS = 10.0
_HOSTS = "--server.allowedHosts"


def packaged_app() -> Path:
    """The ``app.py`` that ships inside the installed package (``evalkit/dashboard/app.py``)."""
    return Path(__file__).resolve().parent.parent / "dashboard" / "app.py"


def locate_app(app_path: Path | None = None) -> Path:
    """The dashboard's ``app.py``: ``app_path`` when given, else the one inside the installed
    package. Raises ConfigError saying what to do."""
    if app_path is not None:
        if not app_path.is_file():
            raise ConfigError(
                f"--app {app_path}: no such file; leave --app out to run the packaged dashboard"
            )
        return app_path.resolve()
    found = packaged_app()
    if not found.is_file():
        raise ConfigError(
            f"the dashboard app is missing from the installed package ({found}): reinstall "
            "evalkit-retrieval with the dashboard extra: pip install 'evalkit-retrieval[dashboard]'"
        )
    return found


def dashboard_command(
    app_file: Path, *, host: str, port: int, allowed_hosts: Sequence[str] = ()
) -> list[str]:
    """The ``streamlit run`` command line serving ``app_file`` on ``host:port``, whose
    WebSocket (every page's connection, and the review queue's saves) accepts only the names
    ``host`` is reached by (``evalkit.net.host_names``) and ``allowed_hosts``: a page of
    another site that rebinds its own name to this address (DNS rebinding) gets no
    connection."""
    from evalkit.net import host_names  # deferred: http.server, for a fast `--help`

    hosts = dict.fromkeys([*host_names(host), *(name.lower() for name in allowed_hosts)])
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(app_file),
        "--server.address",
        host,
        "--server.port",
        str(port),
        "--server.headless",
        "true",
        "--server.fileWatcherType",
        "none",
        "--browser.gatherUsageStats",
        "false",
        "--client.toolbarMode",
        "minimal",
        *(option for name in hosts for option in (_HOSTS, name)),
    ]


# A host name, a `*.` pattern of its subdomains, or an IPv4 or IPv6 address: what
# Streamlit compares a Host header's name with (the port aside).
_LABEL = r"[a-z0-9]([a-z0-9-]*[a-z0-9])?"
_ALLOWED_HOST = re.compile(rf"(\*\.)?{_LABEL}(\.{_LABEL})*\.?")


def parse_allowed_hosts(values: Sequence[str]) -> list[str]:
    """The ``--allowed-host`` values, each a host name (``dash.example.com``), a pattern of
    its subdomains (``*.example.com``) or an address; anything else (a port, a URL, ``*``)
    is a usage error."""
    hosts = []
    for value in values:
        name = value.strip().lower()
        try:
            ipaddress.ip_address(name.strip("[]"))
        except ValueError:
            if not _ALLOWED_HOST.fullmatch(name):
                raise typer.BadParameter(
                    f"{value!r} is not a host name (dash.example.com), a pattern of its "
                    "subdomains (*.example.com) or an IP address: give the name alone, "
                    "without scheme or port",
                    param_hint="--allowed-host",
                ) from None
        else:
            name = name.strip("[]")
        hosts.append(name)
    return hosts


@app.command("dashboard")
def dashboard(
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to serve on.")] = 8501,
    host: Annotated[
        str,
        typer.Option(
            help="Address to listen on. The dashboard has no login: keep it on 127.0.0.1 "
            "unless a proxy in front of it authenticates users."
        ),
    ] = "127.0.0.1",
    app_path: Annotated[
        Path | None,
        typer.Option(
            "--app",
            help="The dashboard's app.py (default: the one inside the installed package; "
            "a copy of your own to run a modified dashboard).",
        ),
    ] = None,
    read_only: Annotated[
        bool | None,
        typer.Option(
            "--read-only/--allow-reviews",
            help="--read-only: the review queue is shown but not written. Default: read-only "
            "when --host is not a loopback address (the dashboard has no login), reviews "
            "allowed on loopback.",
        ),
    ] = None,
    allowed_host: Annotated[
        list[str] | None,
        typer.Option(
            "--allowed-host",
            help="Another name browsers reach the dashboard by (the name a proxy in front of "
            "it serves, *.example.com for its subdomains); repeatable. Connections naming a "
            "host that is neither this nor an address the dashboard listens on are refused "
            "(DNS rebinding).",
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print what would be started, then exit.")
    ] = False,
    output: Format = OutputFormat.table,
) -> None:
    """Serve the dashboard (Streamlit) over the configured store.

    It reads the store every command uses and waits for writers; its one write, a review, is
    off with --read-only, the default beyond loopback (docs/dashboard.md, "Sharing the store
    with writers"). Stop it with Ctrl-C.

    Example: evalkit --home .evalkit dashboard --port 8501
    """
    require_all(("streamlit", "plotly", "psutil"), "`evalkit dashboard`")
    store_path = settings().resolved_store_path.resolve()
    app_file = locate_app(app_path)
    command = dashboard_command(
        app_file, host=host, port=port, allowed_hosts=parse_allowed_hosts(allowed_host or [])
    )
    shown_host = f"[{host}]" if ":" in host else host
    from evalkit.config import DASHBOARD_READ_ONLY_ENV
    from evalkit.net import is_loopback

    reviews_read_only = not is_loopback(host) if read_only is None else read_only
    info: dict[str, Any] = {
        "url": f"http://{shown_host}:{port}/",
        "store": str(store_path),
        "store_exists": store_path.is_file(),
        "read_only": reviews_read_only,
        "allowed_hosts": [name for flag, name in itertools.pairwise(command) if flag == _HOSTS],
        "app": str(app_file),
        "command": command,
    }
    if output is OutputFormat.json:
        emit_json(info)
    else:
        console.print(
            key_values(
                "dashboard",
                {
                    "url": info["url"],
                    "store": info["store"],
                    "reviews": "read-only" if reviews_read_only else "saved to the store",
                    "hosts": ", ".join(info["allowed_hosts"]),
                },
            )
        )
        if not info["store_exists"]:
            err_console.print(
                f"note: there is no store at {store_path} yet; the dashboard shows how to "
                "create one (`make demo`)",
                markup=False,
            )
    if not is_loopback(host):
        can = (
            "read the dashboard"
            if reviews_read_only
            else "read the dashboard, save reviews and publish goldset versions with them "
            "(--allow-reviews; leave it out to keep the dashboard read-only)"
        )
        err_console.print(
            f"warning: listening on {host}: anyone who can reach this address can {can}, "
            "without a login",
            markup=False,
        )
    if dry_run:
        return
    child_env = {
        **os.environ,
        STORE_ENV: str(store_path),
        DASHBOARD_READ_ONLY_ENV: "1" if reviews_read_only else "0",
    }
    process = subprocess.Popen(command, env=child_env)
    code = run_child(process)
    if code:
        raise typer.Exit(code)


def run_child(process: subprocess.Popen[bytes]) -> int:
    """Wait for ``process``, passing SIGTERM and SIGINT on to it; its exit code (0 when it
    ended because this process was told to stop).

    Without this, SIGTERM left the child re-parented to PID 1, still serving its port. A
    child told to stop gets ``STOP_SECONDS``, then it is killed.
    """
    received: list[int] = []

    def forward(signum: int, frame: FrameType | None) -> None:
        received.append(signum)
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signum)

    previous: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for which in (signal.SIGTERM, signal.SIGINT):
            previous[which] = signal.signal(which, forward)
    try:
        deadline: float | None = None
        while True:
            try:
                code = process.wait(timeout=0.2)
                break
            except subprocess.TimeoutExpired:
                pass
            if received and deadline is None:
                deadline = time.monotonic() + STOP_SECONDS
            if deadline is not None and time.monotonic() >= deadline:
                process.kill()
                process.wait()
                code = 0
                break
    finally:
        for stopper, handler in previous.items():
            signal.signal(stopper, handler)
    return 0 if received else code
