"""Where drills keep what they leave: ``<home>/drills/<drill id>/``, with the drill's own
store and its report (``report.json``, ``report.md``)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

__all__ = ["REPORT_FILE", "drill_reports", "drills_folder"]

REPORT_FILE = "report.json"
"""A drill's report as ``DrillReport.to_dict`` writes it, in the drill's folder."""

_log = logging.getLogger(__name__)


def drills_folder(home: Path) -> Path:
    """The folder of every drill run under ``home``."""
    return home / "drills"


def drill_reports(home: Path) -> list[dict[str, Any]]:
    """The reports of the drills run under ``home``, newest first. A drill still running,
    or killed, has none and is left out."""
    found = []
    for path in drills_folder(home).glob(f"*/{REPORT_FILE}"):
        try:
            found.append((path.stat().st_mtime, json.loads(path.read_text(encoding="utf-8"))))
        except (OSError, ValueError):  # removed meanwhile, or cut short by a full disk
            _log.warning("drill report %s cannot be read; it is left out", path)
    return [report for _, report in sorted(found, key=lambda item: item[0], reverse=True)]
