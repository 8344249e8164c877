"""``evalkit store compact``."""

from __future__ import annotations

from evalkit.cli._app import store_app
from evalkit.cli._options import Format
from evalkit.cli._output import OutputFormat, emit_json, say, settings


@store_app.command("compact")
def compact(output: Format = OutputFormat.table) -> None:
    """Shrink the store file to what it holds: DuckDB reuses the space of rows the
    retention job deleted but never gives it back. Copies the store into a new file, checks
    every table kept its rows, and puts it in place, holding the writer lock meanwhile.

    Example: evalkit store compact
    """
    from evalkit.store.access import StoreAccess
    from evalkit.store.compact import compact_store

    access = StoreAccess.from_settings(settings(), program="evalkit", on_wait=say)
    report = compact_store(access)
    if output is OutputFormat.json:
        emit_json(report.to_dict())
        return
    say(
        f"compacted {report.path}: {_megabytes(report.bytes_before)} -> "
        f"{_megabytes(report.bytes_after)} ({report.rows:,} rows in {report.tables} tables kept)"
    )


def _megabytes(size: int) -> str:
    return f"{size / 1_000_000:,.1f} MB"
