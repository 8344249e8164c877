"""Where drills keep what they leave: ``<home>/drills/<drill id>/``, with the drill's own
store and its report (``report.json``, ``report.md``)."""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import time
from pathlib import Path
from typing import Any

from evalkit.store.access import process_alive

__all__ = [
    "REPORT_FILE",
    "drill_reports",
    "drills_folder",
    "owner",
    "start_drill_folder",
    "sweep_drill_folders",
]

REPORT_FILE = "report.json"
"""A drill's report as ``DrillReport.to_dict`` writes it, in the drill's folder."""
OWNER_FILE = "owner"
"""The ``owner()`` of the drill writing the folder."""
_GRACE_SECONDS = 60.0
"""A folder younger than this is never swept: its drill may not have claimed it yet."""

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


def owner() -> str:
    """This process as a drill's owner: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


def sweep_drill_folders(home: Path) -> list[Path]:
    """Remove the folders of drills that ended without a report (killed, or failed), whose
    process is gone; returns them. A finished drill's folder stays, with its report."""
    removed = []
    for folder in sorted(drills_folder(home).glob("*")):
        if not folder.is_dir() or (folder / REPORT_FILE).is_file():
            continue
        try:
            host, _, pid = (folder / OWNER_FILE).read_text(encoding="utf-8").rpartition(":")
            alive = process_alive(int(pid), host or None)
        except (OSError, ValueError):
            alive = time.time() - folder.stat().st_mtime < _GRACE_SECONDS
        if not alive:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def start_drill_folder(home: Path, drill_id: str) -> Path:
    """Sweep what ended drills left (``sweep_drill_folders``), then make drill
    ``drill_id``'s folder, owned by this process."""
    sweep_drill_folders(home)
    folder = drills_folder(home) / drill_id
    folder.mkdir(parents=True, exist_ok=True)
    (folder / OWNER_FILE).write_text(owner(), encoding="utf-8")
    return folder
