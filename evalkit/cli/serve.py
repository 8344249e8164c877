"""``evalkit serve``: run the configured jobs on their schedules, evaluate alert rules,
deliver alerts."""

from __future__ import annotations

import json
import logging
import os
import sys
from typing import Annotated

import typer

from evalkit.cli._app import app
from evalkit.cli._output import OutputFormat, settings
from evalkit.cli._service import JOB_NOT_SUCCEEDED
from evalkit.errors import ConfigError
from evalkit.redaction import SecretLogFilter

__all__ = ["serve"]


class _JsonLines(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            # UTC (the converter is gmtime), said so: a log shipper reads a bare time as local.
            "ts": f"{self.formatTime(record, '%Y-%m-%dT%H:%M:%S')}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


class _SaidByEvalkit(logging.Filter):
    """Drops APScheduler's warnings of a skipped overlap or misfire: the service logs each
    in its own words (and counts it), so an operator reads it once."""

    _TEMPLATES = ('Execution of job "%s" skipped', 'Run time of job "%s" was missed by')

    def filter(self, record: logging.LogRecord) -> bool:
        return not (
            record.name.startswith("apscheduler")
            and isinstance(record.msg, str)
            and record.msg.startswith(self._TEMPLATES)
        )


def _configure_logging(level: str, output: OutputFormat) -> None:
    import time

    handler = logging.StreamHandler(sys.stderr)
    if output is OutputFormat.json:
        formatter: logging.Formatter = _JsonLines()
    else:
        formatter = logging.Formatter("%(asctime)sZ %(levelname)s %(name)s: %(message)s")
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    handler.addFilter(SecretLogFilter())
    handler.addFilter(_SaidByEvalkit())
    root = logging.getLogger("evalkit")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    logging.getLogger("apscheduler").addHandler(handler)


@app.command("serve")
def serve(
    host: Annotated[
        str | None, typer.Option(help="Health endpoint address (default: [scheduler] health_host).")
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=65535,
            help="Health endpoint port, 0 for any free one (default: health_port).",
        ),
    ] = None,
    otlp_port: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=65535,
            help="Receive OTLP/HTTP trace exports on this port (0: any free one); default: "
            "[otlp] receiver and port.",
        ),
    ] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
    output: Annotated[
        OutputFormat,
        typer.Option("--format", help="Log lines as text (table) or JSON lines (json)."),
    ] = OutputFormat.table,
) -> None:
    """Run the jobs of evalkit.toml on their schedules, evaluate alert rules, deliver alerts.

    Serves /healthz, /metrics and /jobs on loopback, and with [otlp] receiver (or --otlp-port)
    receives OpenTelemetry spans (docs/traffic.md). On SIGTERM or SIGINT, running jobs get
    [scheduler] shutdown_grace seconds, then are interrupted and their runs marked failed
    (docs/scheduler.md, "Crashes and shutdown").

    Example: EVALKIT_CONFIG=evalkit.toml evalkit serve --port 8765 --format json
    """
    from evalkit.scheduler import SchedulerService, service_config

    if log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigError(f"--log-level {log_level!r}: use debug, info, warning or error")
    _configure_logging(log_level, output)
    current = settings()
    service = SchedulerService(
        service_config(current), current, host=host, port=port, otlp_port=otlp_port
    )
    clean = service.run_forever()
    if not clean:
        logging.shutdown()
        # A job thread that would not stop must not keep the process alive; its rows are
        # marked interrupted by the next start.
        os._exit(JOB_NOT_SUCCEEDED)
