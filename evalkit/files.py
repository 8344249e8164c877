"""Files written beside their destination, then renamed onto it, with the user's permissions;
and the files of a folder in the order they were written.

``tempfile.mkstemp`` creates its file mode 0600 whatever the umask: right for a secret
scratch file, wrong for an export, a baseline or a model cache that the file's owner shares
with a CI job, a teammate or a web server. A file made here gets 0666 less the umask, as
``open(path, "w")`` would give it (0644 under the usual umask 022).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

__all__ = ["create_beside", "files_oldest_first", "replace_text"]

_ATTEMPTS = 100


def create_beside(target: Path, *, suffix: str = ".partial") -> tuple[int, Path]:
    """A new empty file next to ``target``, open for writing: its descriptor and its path.

    The name is hidden and unique (``.NAME.<random><suffix>``); the file is created
    exclusively (never an existing file, never through a symlink), mode 0666 less the umask.
    The caller writes it, renames it onto ``target`` and removes it if anything failed.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    for _ in range(_ATTEMPTS):
        candidate = target.with_name(f".{target.name}.{secrets.token_hex(6)}{suffix}")
        try:
            return os.open(candidate, flags, 0o666), candidate
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name beside {target} after {_ATTEMPTS} tries")


def replace_text(target: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``target`` through a file beside it renamed onto it, so that
    ``target`` is either as it was or complete; the partial file is removed on failure."""
    handle, partial = create_beside(target)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as output:
            output.write(text)
        os.replace(partial, target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def files_oldest_first(folder: Path) -> list[Path]:
    """The visible files of ``folder`` (not its subfolders, not dot files), oldest
    modification first, then by name: the order a log or change folder was written in."""
    entries = [
        entry for entry in folder.iterdir() if entry.is_file() and not entry.name.startswith(".")
    ]
    entries.sort(key=lambda entry: (entry.stat().st_mtime, entry.name))
    return entries
