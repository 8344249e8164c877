"""Files and folders written beside their destination, then renamed onto it, with the user's
permissions; and helpers for readers: written order, open-file identity, compression.

``tempfile.mkstemp`` creates files mode 0600 whatever the umask: right for a secret, wrong for
an export or a cache the owner shares with a CI job or a web server. A file made here gets
0666 less the umask, as ``open(path, "w")`` would give it.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import secrets
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

__all__ = [
    "COMPRESSED_SUFFIXES",
    "HEAD_BYTES",
    "FileIdentity",
    "compression_in",
    "compression_of",
    "create_beside",
    "file_identity",
    "files_oldest_first",
    "replace_text",
    "write_folder",
]

HEAD_BYTES = 1024
"""Bytes at the start of a file whose hash, with device and inode, identifies it."""

_ATTEMPTS = 100

COMPRESSED_SUFFIXES = frozenset({".gz", ".bz2", ".xz", ".zst", ".zip", ".lz4"})
"""File name endings of the compressed formats ``compression_of`` tells."""

# The magic bytes each compressed format starts with; none can start a line of text.
_COMPRESSION_MAGIC = (
    (re.compile(rb"\x1f\x8b"), "gzip"),
    (re.compile(rb"BZh[1-9](\x31\x41\x59\x26\x53\x59|\x17\x72\x45\x38\x50\x90)"), "bzip2"),
    (re.compile(rb"\xfd7zXZ\x00"), "xz"),
    (re.compile(rb"\x28\xb5\x2f\xfd"), "zstd"),
    (re.compile(rb"PK\x03\x04"), "zip"),
    (re.compile(rb"\x04\x22\x4d\x18"), "lz4"),
)
_LONGEST_MAGIC = 10


def compression_of(path: Path) -> str | None:
    """The compression format (``gzip``, ``zip``...) whose magic bytes ``path`` starts with,
    if any: a compressed file read as text is bytes that are not UTF-8 and no line ends, and
    would otherwise be reported line by line as such."""
    with path.open("rb") as handle:
        return compression_in(handle.read(_LONGEST_MAGIC))


def compression_in(head: bytes) -> str | None:
    """The compression format whose magic bytes the first bytes of a file ``head`` start
    with, if any (``compression_of`` for a stream that cannot be opened twice)."""
    return next((name for magic, name in _COMPRESSION_MAGIC if magic.match(head)), None)


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
        # Name the folder the user gave, not the hidden temporary name inside it.
        except FileNotFoundError:
            raise FileNotFoundError(
                f"{target.parent}: no such folder; create it first, or write {target.name} "
                "elsewhere"
            ) from None
        except NotADirectoryError as error:
            raise NotADirectoryError(error.errno, error.strerror, str(target.parent)) from None
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


def write_folder(target: Path, files: Mapping[str, str], *, overwrite: bool) -> None:
    """Write the text ``files`` (name -> UTF-8 text) into a hidden folder beside ``target``
    and rename it onto ``target`` in one step, so that ``target`` is never seen half-written.

    An existing ``target`` is replaced only with ``overwrite``; otherwise FileExistsError
    with ``target`` as its filename, and nothing is changed. A ``target`` that is a symbolic
    link is written through: the folder it names is replaced (written beside that folder),
    and the link kept.
    """
    named = target
    if target.is_symlink():
        # Renaming onto the link would move the link aside, where rmtree leaves it (a
        # `.NAME.HASH.replaced` beside it), and keep the folder it names as it was.
        target = Path(os.path.realpath(target))
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = _folder_beside(target, "partial")
    try:
        for name, text in files.items():
            with (staging / name).open("w", encoding="utf-8", newline="\n") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
        if not target.exists():
            staging.rename(target)
            return
        if not overwrite:
            raise FileExistsError(errno.EEXIST, "already exists", str(named))
        replaced = _folder_beside(target, "replaced")
        replaced.rmdir()
        target.rename(replaced)
        staging.rename(target)
        shutil.rmtree(replaced, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _folder_beside(target: Path, purpose: str) -> Path:
    """A new empty hidden folder beside ``target`` (mode 0777 less the umask)."""
    for _ in range(_ATTEMPTS):
        candidate = target.with_name(f".{target.name}.{secrets.token_hex(6)}.{purpose}")
        try:
            candidate.mkdir(0o777)
        except FileExistsError:
            continue
        return candidate
    raise FileExistsError(f"no free temporary name beside {target} after {_ATTEMPTS} tries")


def files_oldest_first(folder: Path) -> list[Path]:
    """The visible files of ``folder`` (not its subfolders, not dot files), oldest
    modification first, then by name: the order a log or change folder was written in."""
    entries = [
        entry for entry in folder.iterdir() if entry.is_file() and not entry.name.startswith(".")
    ]
    entries.sort(key=lambda entry: (entry.stat().st_mtime, entry.name))
    return entries


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True, slots=True)
class FileIdentity:
    """An open file as a reader that resumes it knows it: its device and inode (a renamed
    file keeps them), its size, and its first ``HEAD_BYTES`` bytes (a file replaced under the
    same inode starts differently)."""

    device: int
    inode: int
    size: int
    head: bytes

    @property
    def head_hash(self) -> str:
        """The SHA-256 (hex) of ``head``."""
        return _sha256(self.head)

    def starts_as(self, head_length: int, head_hash: str) -> bool:
        """Whether the file's first ``head_length`` bytes hash to ``head_hash``, as they did
        when it was read before (False when the file is now shorter than that)."""
        if head_length > len(self.head):
            return False
        return _sha256(self.head[:head_length]) == head_hash


def file_identity(handle: BinaryIO) -> FileIdentity:
    """The identity of the open file ``handle``, whose head it reads (the caller then seeks
    to where it resumes)."""
    status = os.fstat(handle.fileno())
    handle.seek(0)
    head = handle.read(HEAD_BYTES)
    return FileIdentity(status.st_dev, status.st_ino, status.st_size, head)
