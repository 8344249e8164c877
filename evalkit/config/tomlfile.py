"""Reading the TOML files evalkit takes settings from (``evalkit.toml``, sweep files).

``read_toml`` drops a UTF-8 byte order mark (Windows editors write one) and names the line
of a byte that is not UTF-8.
"""

from __future__ import annotations

import codecs
import tomllib
from pathlib import Path
from typing import Any

from evalkit.errors import ConfigError

__all__ = ["read_toml"]


def read_toml(path: Path) -> dict[str, Any]:
    """The tables of the TOML file ``path``, a leading UTF-8 byte order mark dropped.

    Raises ConfigError naming the file: a folder, unreadable, not UTF-8 (with the line and
    byte of the first bad byte), or not TOML (with tomllib's line and column).
    """
    if path.is_dir():
        raise ConfigError(f"{path}: a folder, not a file")
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise ConfigError(f"{path}: cannot read it: {error}") from error
    raw = raw.removeprefix(codecs.BOM_UTF8)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        byte = error.start - raw.rfind(b"\n", 0, error.start)
        raise ConfigError(
            f"{path}: not valid UTF-8 text, as TOML must be: line {line}, byte {byte} "
            f"(0x{raw[error.start]:02x}); save the file as UTF-8"
        ) from error
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from error
