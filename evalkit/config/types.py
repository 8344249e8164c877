"""Value types shared by the settings tables: durations, sizes, increases, quantiles and
entry names; and the base of the entries that have a kind."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict

from evalkit.redaction import http_url_problem, mask_url

__all__ = [
    "NAME_PATTERN",
    "ByteSize",
    "Duration",
    "Increase",
    "KindEntry",
    "SettingPath",
    "SettingsTable",
    "WebUrl",
    "format_duration",
    "parse_duration",
    "parse_increase",
    "parse_quantile",
    "parse_size",
    "quantile_name",
    "setting_path",
    "web_url",
]

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
"""What the name of a job, an alert rule or a sink may look like."""


class SettingsTable(BaseModel):
    """A table of ``evalkit.toml``: a key it does not define, or a number that is not finite,
    is refused."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class KindEntry(BaseModel):
    """An entry of ``[[jobs]]``, ``[[alerts.rules]]`` or ``[[alerts.sinks]]``: the model holds
    the fields every entry of the table has, the others belong to the entry's kind."""

    model_config = ConfigDict(extra="allow", frozen=True, allow_inf_nan=False)

    @property
    def params(self) -> dict[str, object]:
        """The fields of the entry that belong to its kind."""
        return dict(self.model_extra or {})


_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")


MAX_DURATION = 100 * 365 * 86400.0
"""The longest duration, 100 years: a schedule or deadline further out is a mistake, and
the clock arithmetic of a scheduler overflows near the year 9999."""


def parse_duration(value: object) -> float:
    """Seconds from a number of seconds or a string such as ``"90s"``, ``"15m"``, ``"2h"``:
    finite, from 0 to ``MAX_DURATION``."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or a string such as '15m'")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.match(value.strip().removeprefix("-"))):
        seconds = float(match.group(1)) * _UNITS[match.group(2) or "s"]
        if value.strip().startswith("-"):
            seconds = -seconds
    else:
        raise ValueError(
            f"{value!r} is not a duration: give seconds (90) or a string such as '90s', "
            "'15m', '2h', '7d'"
        )
    if math.isnan(seconds):
        raise ValueError(f"a duration must be a number of seconds, got {value!r}")
    if seconds < 0:
        raise ValueError(f"a duration cannot be negative, got {value!r}")
    if seconds > MAX_DURATION:
        raise ValueError(f"a duration can be at most 100 years (36500d), got {value!r}")
    return seconds


def format_duration(seconds: float) -> str:
    """``90`` -> ``"90s"``, ``900`` -> ``"15m"``, ``7200`` -> ``"2h"``."""
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("m", 60.0)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


Duration = Annotated[float, BeforeValidator(parse_duration)]
"""A length of time in seconds, accepting ``"15m"``-style strings in ``evalkit.toml``."""


# As DuckDB reads sizes (memory_limit): KB is 1000 bytes, KiB 1024.
_SIZE_UNITS = {
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]i?b|b)?\s*$", re.IGNORECASE)


def parse_size(value: object) -> int:
    """Bytes from an integer number of bytes or a string such as ``"2MiB"``, ``"16 MiB"``,
    ``"1GB"`` (KB, MB, GB, TB are powers of 1000; KiB, MiB, GiB, TiB of 1024, as DuckDB
    reads them)."""
    if isinstance(value, bool):
        raise ValueError("a size is a number of bytes or a string such as '16MiB'")
    if isinstance(value, int):
        size = value
    elif isinstance(value, str) and (match := _SIZE.match(value)):
        size = round(float(match.group(1)) * _SIZE_UNITS[(match.group(2) or "b").lower()])
    else:
        raise ValueError(
            f"{value!r} is not a size: give bytes (65536) or a string such as '64KiB', "
            "'16MiB', '1GiB'"
        )
    if size < 0:
        raise ValueError(f"a size cannot be negative, got {value!r}")
    return size


ByteSize = Annotated[int, BeforeValidator(parse_size)]
"""A size in bytes, accepting ``"16MiB"``-style strings in ``evalkit.toml``."""


_INCREASE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(%?)\s*$")


def parse_increase(value: object) -> float:
    """A relative increase as a share: ``"20%"`` -> 0.2, ``0.2`` -> 0.2.

    A bare number is a share, so one above 1 (``20``) is refused as ambiguous: write
    ``"20%"`` (or ``"2000%"`` if that is meant)."""
    if isinstance(value, bool):
        raise ValueError("an increase is a share such as 0.2 or a percentage such as '20%'")
    match = _INCREASE.match(value) if isinstance(value, str) else None
    if isinstance(value, int | float) and value >= 0:
        number, percent = float(value), False
    elif match is not None:
        number, percent = float(match.group(1)), bool(match.group(2))
    else:
        raise ValueError(f"{value!r} is not an increase: write a percentage such as '20%'")
    if percent:
        return number / 100.0
    if number > 1:
        raise ValueError(
            f"{value!r} is ambiguous as an increase: write '{number:g}%' for a percentage, "
            "or a share up to 1 (0.2 for 20 %)"
        )
    return number


Increase = Annotated[float, BeforeValidator(parse_increase)]
"""A relative increase as a share, accepting ``"20%"``-style strings in ``evalkit.toml``."""


_QUANTILE = re.compile(r"^p(\d{1,2}(?:\.\d+)?)$")


def parse_quantile(name: str) -> float:
    """``"p95"`` -> 0.95 (``p50``, ``p95``, ``p99``, ``p99.9``...); ValueError otherwise."""
    match = _QUANTILE.match(str(name).strip().lower())
    level = float(match.group(1)) / 100.0 if match else math.nan
    if not 0.0 < level < 1.0:
        raise ValueError(
            f"{name!r} is not a latency quantile: write p50, p95, p99 (any pNN between p1 "
            "and p99.9)"
        )
    return level


def quantile_name(level: float) -> str:
    """0.95 -> ``"p95"``, 0.999 -> ``"p99.9"``."""
    return f"p{round(level * 100, 6):g}"


def web_url(url: str | None) -> str | None:
    """``url`` unchanged when it is an http:// or https:// URL with a host, or empty (unset);
    ValueError saying what is wrong otherwise (its secrets masked).

    A URL without its scheme (``127.0.0.1:11434/v1``) would otherwise be refused by the
    client only when it is first called, as an endpoint that cannot be reached."""
    if not url:
        return url
    problem = http_url_problem(url)
    if problem is None:
        return url
    shown = mask_url(url)
    hint = f"; write http://{shown}" if "://" not in url else ""
    raise ValueError(f"{shown!r}: {problem}{hint}")


WebUrl = Annotated[str | None, AfterValidator(web_url)]
"""An http:// or https:// URL with a host (or unset), checked when the settings are read."""


def setting_path(value: object) -> object:
    """``value`` unchanged unless it is an empty text: ValueError then, since an empty path
    reads as the working directory (``EVALKIT_HOME=`` would put the store wherever a
    command runs, ``EVALKIT_STORE_PATH=`` name a folder as the store)."""
    if isinstance(value, str) and not value.strip():
        raise ValueError(
            "an empty path, which would be the working directory: give a path, or leave the "
            "setting out (unset the variable) for its default"
        )
    return value


SettingPath = Annotated[Path, BeforeValidator(setting_path)]
"""A path of the settings: never empty."""
