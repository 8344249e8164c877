"""``evalkit store compact`` and ``evalkit store migrate``."""

from __future__ import annotations

from evalkit.cli._app import store_app
from evalkit.cli._options import Format
from evalkit.cli._output import OutputFormat, emit_json, say, settings


@store_app.command("compact")
def compact(output: Format = OutputFormat.table) -> None:
    """Shrink the store file to what it holds: DuckDB reuses the space of rows the
    retention job deleted but never gives it back (docs/store.md, "Compacting the file").

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


@store_app.command("migrate")
def migrate(output: Format = OutputFormat.table) -> None:
    """Bring the store file to this evalkit's schema: apply the migrations it lacks, each in
    its own transaction, holding the writer lock. A store already current is left as it is
    (exit 0); readers never migrate (docs/store.md, "Migrating the file").

    Example: evalkit store migrate
    """
    from evalkit.scheduler import find_service
    from evalkit.store.access import StoreAccess
    from evalkit.store.store import no_store_error

    config = settings()
    if not config.resolved_store_path.exists():
        raise no_store_error(config.resolved_store_path)
    access = StoreAccess.from_settings(config, program="evalkit", on_wait=say)
    with access.writer("store migrate") as store:
        applied = store.migrated
        version = store.schema_version()
    if output is OutputFormat.json:
        emit_json(
            {"path": str(access.store_path), "schema_version": version, "applied": list(applied)}
        )
    elif not applied:
        say(f"the store {access.store_path} is current (schema version {version})")
    else:
        say(
            f"migrated {access.store_path} to schema version {version}: "
            f"applied {', '.join(applied)}"
        )
    service = find_service(access.store_path) if applied else None
    if service is not None:
        # This evalkit refuses to serve a store it has not migrated: the service that was
        # already running is an older evalkit, and `jobs run` hands it its jobs.
        say(
            f"note: evalkit serve (pid {service.pid}, started {service.started_at}) is running "
            "on this store with the evalkit it was started with, older than the store now: "
            "restart it (stop it, then `evalkit serve`) so that its jobs and alert rules run "
            "this evalkit"
        )


def _megabytes(size: int) -> str:
    return f"{size / 1_000_000:,.1f} MB"
