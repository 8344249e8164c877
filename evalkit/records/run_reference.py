"""What a user names a run by: a stored run's id, a run export or a TREC run file.

``RunReference.parse`` classifies the text once, where it arrives (the CLI, the pytest
plugin, the gate's Python entry); ``evalkit.pipeline.compared_runs.resolve_run`` turns the
reference into a stored run or a run file's rows, and the statistics only ever see those.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Final

__all__ = ["RUN_EXPORT_FILE", "RunReference", "RunReferenceKind", "is_run_export"]

RUN_EXPORT_FILE: Final = "run.json"
"""The file that makes a directory a Parquet run export."""


def is_run_export(path: Path) -> bool:
    """Whether ``path`` names a Parquet run export: a directory holding ``run.json``, or
    that ``run.json`` itself."""
    if path.is_dir():
        return (path / RUN_EXPORT_FILE).is_file()
    return path.name == RUN_EXPORT_FILE and path.is_file()


class RunReferenceKind(StrEnum):
    """What a run reference names."""

    STORED = "stored"
    """A stored run's id (or a prefix of one)."""
    EXPORT = "export"
    """A Parquet run export (``evalkit runs export RUN --format parquet``), imported first."""
    FILE = "file"
    """A TREC run file, scored on the judgments given with it."""


@dataclass(frozen=True, slots=True)
class RunReference:
    """A run as the user named it (``text``), and what that names (``kind``)."""

    text: str
    kind: RunReferenceKind

    @classmethod
    def parse(cls, reference: str | RunReference) -> RunReference:
        """Classify ``reference``: a run export (``is_run_export``), else an existing file
        (a TREC run file), else a stored run's id. A reference already parsed is kept."""
        if isinstance(reference, RunReference):
            return reference
        path = Path(reference)
        if is_run_export(path):
            return cls(reference, RunReferenceKind.EXPORT)
        if path.is_file():
            return cls(reference, RunReferenceKind.FILE)
        return cls(reference, RunReferenceKind.STORED)

    @classmethod
    def stored(cls, run_id: str) -> RunReference:
        """A stored run named by its id, with nothing to classify."""
        return cls(run_id, RunReferenceKind.STORED)

    @property
    def path(self) -> Path:
        """The reference as a path (an export's or a run file's)."""
        return Path(self.text)

    def __str__(self) -> str:
        return self.text
