"""Data frames and Arrow tables handed to DuckDB as views for one statement or block."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress

import duckdb

__all__ = ["registered"]


@contextmanager
def registered(con: duckdb.DuckDBPyConnection, name: str, data: object) -> Iterator[str]:
    """``data`` (a DataFrame or an Arrow table) as the view ``name`` for the block.

    When the block fails, unregistering is tried but never replaces the block's own error:
    after a failed statement DuckDB refuses every other one of the transaction ("Current
    transaction is aborted"), which would hide the cause, such as a full disk.
    """
    con.register(name, data)
    try:
        yield name
    except BaseException:
        with suppress(duckdb.Error):
            con.unregister(name)
        raise
    con.unregister(name)
