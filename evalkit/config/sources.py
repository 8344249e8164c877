"""Where settings come from, and how a problem with one is worded.

The configuration file is ``$EVALKIT_CONFIG`` (an error when missing), else
``./evalkit.toml`` (none is fine). ``EVALKIT_<FIELD>`` and ``EVALKIT_JUDGE_<FIELD>``
variables set top-level and ``[judge]`` settings; the other tables come from the file only.
:func:`settings_error` names each invalid value's source and field. docs/configuration.md,
"Where settings come from".
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, cast

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, EnvSettingsSource

from evalkit.config.tomlfile import did_you_mean, known_keys, read_toml
from evalkit.errors import ConfigError

__all__ = [
    "CONFIG_FILE_ENV",
    "DASHBOARD_READ_ONLY_ENV",
    "DEFAULT_CONFIG_FILE",
    "ENV_PREFIX",
    "JUDGE_ENV_PREFIX",
    "check_tables",
    "config_file_path",
    "discover_home",
    "environment_values",
    "field_problems",
    "line_at",
    "merge",
    "read_config_file",
    "settings_error",
    "toml_file_problems",
    "toml_lines",
    "toml_place",
]

CONFIG_FILE_ENV = "EVALKIT_CONFIG"
DASHBOARD_READ_ONLY_ENV = "EVALKIT_DASHBOARD_READ_ONLY"
"""Set by ``evalkit dashboard`` for the Streamlit process: ``0`` lets the review page save
reviews; anything else, or unset, keeps the dashboard read-only."""
DEFAULT_CONFIG_FILE = "evalkit.toml"
DEFAULT_HOME = Path(".evalkit")
ENV_PREFIX = "EVALKIT_"
JUDGE_ENV_PREFIX = "EVALKIT_JUDGE_"

TABLES = (
    "judge",
    "scheduler",
    "alerts",
    "otlp",
    "retriever",
    "embedder",
    "audit",
    "freshness",
)
"""Top-level keys that hold a table (``[judge]``...)."""
ARRAYS = {"jobs": "[[jobs]]"}
"""Top-level keys that hold an array of tables."""
ENTRY_ARRAYS = {"rules": "[[alerts.rules]]", "sinks": "[[alerts.sinks]]"}
"""Arrays of tables inside ``[alerts]``."""


def discover_home(start: Path | None = None) -> Path:
    """The store's home when no setting names one, found as git finds ``.git``: the
    nearest ``.evalkit`` folder in ``start`` (default: the working directory) or its parents;
    ``./.evalkit`` when there is none (the first command that writes creates it)."""
    here = (start or Path.cwd()).absolute()
    for folder in (here, *here.parents):
        if (folder / DEFAULT_HOME).is_dir():
            return DEFAULT_HOME if folder == here and start is None else folder / DEFAULT_HOME
    return DEFAULT_HOME


def config_file_path() -> Path:
    """The configuration file evalkit reads: ``$EVALKIT_CONFIG`` or ``./evalkit.toml``."""
    return Path(os.environ.get(CONFIG_FILE_ENV, DEFAULT_CONFIG_FILE))


def read_config_file() -> tuple[Path, dict[str, Any]]:
    """The configuration file's path and its parsed TOML.

    A missing ``./evalkit.toml`` reads as empty; a missing file named by ``$EVALKIT_CONFIG``,
    a folder where the file should be, and a file that is not valid TOML raise ConfigError.
    """
    chosen = config_file_path()
    named = CONFIG_FILE_ENV in os.environ
    if chosen.is_dir():
        where = f"{CONFIG_FILE_ENV}={chosen}" if named else str(chosen)
        raise ConfigError(f"{where}: a folder, not a file")
    if not chosen.is_file():
        if named:
            raise ConfigError(f"{CONFIG_FILE_ENV}={chosen}: no such file")
        return chosen, {}
    return chosen, read_toml(chosen)


def check_tables(data: Mapping[str, Any], path: Path) -> None:
    """Raise ConfigError when a table of ``data`` is not a table (``judge = 3``...)."""
    for key in TABLES:
        if key in data and not isinstance(data[key], Mapping):
            raise ConfigError(f"{path}: `{key}` must be a table ([{key}])")
    for key, header in ARRAYS.items():
        if key in data:
            _check_entries(data[key], key=key, header=header, path=path)
    alerts = data.get("alerts", {})
    for key, header in ENTRY_ARRAYS.items():
        if key in alerts:
            _check_entries(alerts[key], key=f"alerts.{key}", header=header, path=path)


def _check_entries(entries: object, *, key: str, header: str, path: Path) -> None:
    if not isinstance(entries, list):
        raise ConfigError(f"{path}: `{key}` must be an array of tables ({header})")
    for number, entry in enumerate(entries, start=1):
        if not isinstance(entry, Mapping):
            raise ConfigError(
                f"{path}: {header} #{number} must be a table, got {type(entry).__name__}"
            )


def environment_values(
    settings_class: type[BaseSettings], judge: type[BaseModel]
) -> dict[str, Any]:
    """The settings the environment gives: ``EVALKIT_<FIELD>`` and ``EVALKIT_JUDGE_<FIELD>``.

    Tables and arrays of tables are never read from a variable (only from the file), so a
    message about one of their fields can name the file.
    """
    values = {
        key: value
        for key, value in EnvSettingsSource(settings_class, env_prefix=ENV_PREFIX)().items()
        if key not in TABLES and key not in ARRAYS
    }
    # EnvSettingsSource reads any model's fields; its signature asks for a BaseSettings.
    judge_values = EnvSettingsSource(
        cast("type[BaseSettings]", judge), env_prefix=JUDGE_ENV_PREFIX
    )()
    if judge_values:
        values["judge"] = judge_values
    return values


def merge(*layers: Mapping[str, Any]) -> dict[str, Any]:
    """Merge ``layers``, later ones winning; tables are merged key by key."""
    merged: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
                merged[key] = merge(merged[key], value)
            else:
                merged[key] = value
    return merged


def field_problems(
    error: ValidationError,
    *,
    path: Path | None = None,
    at: tuple[str | int, ...] = (),
    model: type[BaseModel] | None = None,
    beside: Sequence[str] = (),
) -> str:
    """``field 'a': message; field 'b.c': message``: the problems of a table's model; with
    the file ``path`` and the table's place ``at`` in it, each with its line. With the
    ``model`` validated, an unknown key is given the field it was probably meant to be (or
    one of the keys the table holds ``beside`` the model's, such as a job's ``cron``)."""
    lines = toml_lines(path) if path is not None and at else {}
    texts = []
    for problem in error.errors():
        text = _field_problem(problem["loc"], _message(problem, model, beside))
        line = _file_line((*at, *problem["loc"]), lines) if lines else None
        texts.append(text if line is None else f"line {line}, {text}")
    return "; ".join(texts)


def _message(
    problem: ErrorDetails, model: type[BaseModel] | None, beside: Sequence[str] = ()
) -> str:
    """The problem's message; for an unknown key of ``model``, with the known key it is
    closest to."""
    loc = tuple(problem["loc"])
    if problem["type"] != "extra_forbidden" or model is None or not loc:
        return problem["msg"]
    known = (*known_keys(model, loc[:-1]), *(beside if len(loc) == 1 else ()))
    return problem["msg"] + did_you_mean(str(loc[-1]), known)


def _field_problem(loc: tuple[int | str, ...], message: str) -> str:
    return f"field '{_location(loc) or '(table)'}': {message}"


def _location(parts: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in parts)


def settings_error(
    error: ValidationError,
    data: Mapping[str, Any],
    path: Path,
    *,
    from_file: bool = False,
    model: type[BaseModel] | None = None,
    arguments: Mapping[str, Any] | None = None,
) -> ConfigError:
    """One ConfigError for every problem of ``error``, each naming its source and field.

    ``data`` is what was validated and ``path`` the configuration file; problems are grouped
    by table or ``[[...]]`` entry. A file's value is named by its line (``evalkit.toml:12``),
    a variable's by the variable; ``from_file``: every value of ``data`` is the file's;
    ``arguments`` are the values given as arguments (None: not known). With ``model``, an
    unknown key is given the field it was probably meant to be.
    """
    lines = toml_lines(path)
    groups: dict[str, list[str]] = {}
    for problem in error.errors():
        loc = tuple(problem["loc"])
        # A variable sets only a known field, never an unknown key.
        known = problem["type"] != "extra_forbidden"
        variable = (
            _variable_of(loc, arguments)
            if known and not from_file and arguments is not None
            else None
        )
        if variable is not None:
            groups.setdefault(f"environment variable {variable}", []).append(problem["msg"])
            continue
        line = _file_line(loc, lines, variables=known and not from_file)
        prefix, rest, plain = _where(loc, data, path)
        if line is not None and plain:
            # Said as the file's: its table and key, not the variable that could set it.
            judge = loc[0] == "judge"
            prefix = f"{path}: [judge]" if judge else f"{path}"
            rest, plain = (loc[1:] if judge else loc), False
        message = _message(problem, model)
        text = f"{_location(rest)}: {message}" if plain else _field_problem(rest, message)
        if line is not None:
            text = f"line {line}, {text}"
        groups.setdefault(prefix, []).append(text)
    return ConfigError(
        "\n".join(f"{prefix}: {'; '.join(texts)}" for prefix, texts in groups.items())
    )


def _variable_of(loc: tuple[int | str, ...], arguments: Mapping[str, Any]) -> str | None:
    """The ``EVALKIT_*`` variable, as the environment spells it, that gave the value at
    ``loc``: one is set for its field and no argument gave the field (None otherwise)."""
    if not loc or loc[0] in ARRAYS:
        return None
    if loc[0] == "judge":
        given = arguments.get("judge")
        if len(loc) < 2 or (isinstance(given, Mapping) and loc[1] in given):
            return None
        wanted = f"{JUDGE_ENV_PREFIX}{loc[1]}"
    elif loc[0] in TABLES or loc[0] in arguments:
        return None
    else:
        wanted = f"{ENV_PREFIX}{loc[0]}"
    # The variables' names are read whatever their case, as EnvSettingsSource reads them.
    return next((name for name in os.environ if name.upper() == wanted.upper()), None)


def _where(
    loc: tuple[int | str, ...], data: Mapping[str, Any], path: Path
) -> tuple[str, tuple[int | str, ...], bool]:
    """The group a problem at ``loc`` belongs to, the rest of its location, and whether it is
    worded as ``name: message`` (arguments and variables) or ``field 'name': message``."""
    section = loc[0] if loc else ""
    if section == "judge":
        return (
            "invalid judge settings (from arguments, EVALKIT_JUDGE_* variables or the "
            f"[judge] table of {path})",
            loc[1:],
            True,
        )
    if section == "scheduler":
        return f"{path}: [scheduler]", loc[1:], False
    if section in ARRAYS and len(loc) > 1 and isinstance(loc[1], int):
        return (
            _entry(ARRAYS[str(section)], data.get(str(section), []), loc[1], path),
            loc[2:],
            False,
        )
    if section == "alerts":
        alerts = data.get("alerts", {})
        kind = loc[1] if len(loc) > 1 else ""
        if kind in ENTRY_ARRAYS and len(loc) > 2 and isinstance(loc[2], int):
            header = ENTRY_ARRAYS[str(kind)]
            return _entry(header, alerts.get(str(kind), []), loc[2], path), loc[3:], False
        return f"{path}: [alerts]", loc[1:], False
    return f"invalid settings (from arguments, EVALKIT_* variables or {path})", loc, True


def _entry(header: str, entries: Any, index: int, path: Path) -> str:
    name = None
    if isinstance(entries, list) and index < len(entries) and isinstance(entries[index], Mapping):
        name = entries[index].get("name")
    label = f"{header} #{index + 1}"
    return f"{path}: {label} '{name}'" if isinstance(name, str) else f"{path}: {label}"


def toml_lines(path: Path) -> dict[tuple[str | int, ...], int]:
    """The line of every table header and key of the TOML file ``path`` (empty when it
    cannot be read): ``("retriever", "k")``, ``("jobs", 0)`` for the first ``[[jobs]]``
    (and ``("jobs",)``, the array, at the same line), ``("jobs", 0, "cron")``. A key inside
    an inline table or a value over several lines is found at the line of its outer key."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError):
        return {}
    found: dict[tuple[str | int, ...], int] = {}
    table: tuple[str | int, ...] = ()
    counts: dict[tuple[str, ...], int] = {}
    open_brackets = 0
    open_string: str | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if open_string is not None:
            if open_string in line:
                open_string = None
            continue
        if open_brackets > 0:
            open_brackets += _bracket_balance(line)
            continue
        if not line or line.startswith("#"):
            continue
        if line.startswith("[["):
            name = _dotted(line[2 : line.find("]]")])
            counts[name] = counts.get(name, -1) + 1
            found.setdefault(name, number)
            table = (*name, counts[name])
            found.setdefault(table, number)
        elif line.startswith("["):
            table = _dotted(line[1 : line.find("]")])
            found.setdefault(table, number)
        else:
            key, equals, value = line.partition("=")
            if not equals:
                continue
            found.setdefault((*table, *_dotted(key)), number)
            value = value.strip()
            for quotes in ('"""', "'''"):
                if value.startswith(quotes) and value.count(quotes) == 1:
                    open_string = quotes
            open_brackets = _bracket_balance(value)
    return found


def line_at(lines: Mapping[tuple[str | int, ...], int], loc: tuple[str | int, ...]) -> int | None:
    """The line (in ``toml_lines``) of the value at ``loc``, else of its nearest enclosing
    table; None when neither is found."""
    for end in range(len(loc), 0, -1):
        line = lines.get(loc[:end])
        if line is not None:
            return line
    return None


def toml_place(path: Path, loc: tuple[str | int, ...]) -> str:
    """``line N, `` of the value at ``loc`` in the TOML file ``path`` (or of its table), or
    nothing when it cannot be found."""
    line = line_at(toml_lines(path), loc)
    return f"line {line}, " if line is not None else ""


def toml_file_problems(path: Path, error: ValidationError, model: type[BaseModel]) -> str:
    """``sweep.toml: line 9, grid.k[2]: message; ...``: the problems of a TOML file (a
    sweep file) validated as ``model``, each with its line and key path (entries counted
    from 1, as people count them), an unknown key with the one it was probably meant to
    be."""
    lines = toml_lines(path)
    problems = []
    for problem in error.errors():
        loc = tuple(problem["loc"])
        if problem["type"] == "extra_forbidden":
            text = "unknown key" + did_you_mean(str(loc[-1]), known_keys(model, loc[:-1]))
        elif problem["type"] == "missing":
            text = "missing: this key is required"
        else:
            text = problem["msg"]
        line = line_at(lines, loc)
        where = "" if line is None else f"line {line}, "
        problems.append(f"{where}{_key_path(loc)}: {text}")
    return f"{path}: " + "; ".join(problems)


def _key_path(loc: tuple[int | str, ...]) -> str:
    """``grid.ef_search``, ``points[2].k`` (1-based, as people count entries)."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part + 1}]"
        else:
            text += f".{part}" if text else part
    return text or "(file)"


def _dotted(key: str) -> tuple[str, ...]:
    return tuple(part.strip().strip("\"'") for part in key.split("."))


_STRINGS = re.compile(r""""(?:[^"\\]|\\.)*"|'[^']*'""")


def _bracket_balance(value: str) -> int:
    """Brackets and braces ``value`` opens less those it closes, outside strings and
    comments."""
    bare = _STRINGS.sub("", value).split("#", 1)[0]
    return bare.count("[") + bare.count("{") - bare.count("]") - bare.count("}")


def _file_line(
    loc: tuple[int | str, ...],
    lines: Mapping[tuple[str | int, ...], int],
    *,
    variables: bool = True,
) -> int | None:
    """The line of the file holding the value at ``loc`` (or its nearest enclosing table),
    unless a variable may have set it (with ``variables``): top-level and ``[judge]``
    settings can come from ``EVALKIT_*`` variables, which win over the file."""
    if not loc:
        return None
    if not variables:
        variable = None
    elif loc[0] == "judge" and len(loc) > 1:
        variable = f"{JUDGE_ENV_PREFIX}{str(loc[1]).upper()}"
    elif loc[0] not in TABLES and loc[0] not in ARRAYS:
        variable = f"{ENV_PREFIX}{str(loc[0]).upper()}"
    else:
        variable = None
    if variable is not None and variable in os.environ:
        return None
    return line_at(lines, loc)
