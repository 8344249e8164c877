"""Reading the TOML files evalkit takes settings from (``evalkit.toml``, sweep files), and
holding their values to the types TOML gave them.

``read_toml`` drops a UTF-8 byte order mark and names the line of a byte that is not UTF-8.
TOML is typed, so ``validate_toml`` refuses what pydantic's lax mode would convert
(``k = "7"`` where an integer is expected); only the file's values are held to it, since
``EVALKIT_*`` variables and arguments are text. ``did_you_mean`` names the key a misspelt
one was probably meant to be.
"""

from __future__ import annotations

import codecs
import difflib
import tomllib
import types
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin

from pydantic import BaseModel, BeforeValidator, PlainValidator, ValidationError, WrapValidator
from pydantic_core import InitErrorDetails, PydanticCustomError

from evalkit.errors import ConfigError

__all__ = ["did_you_mean", "known_keys", "read_toml", "toml_type_problems", "validate_toml"]

_ModelT = TypeVar("_ModelT", bound=BaseModel)

_CONVERTERS = (BeforeValidator, PlainValidator, WrapValidator)
_EXPECTED = {
    bool: ("bool_type", "boolean"),
    int: ("int_type", "integer"),
    float: ("float_type", "number"),
}


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


def validate_toml(model: type[_ModelT], data: Mapping[str, Any]) -> _ModelT:
    """``model.model_validate(data)`` for ``data`` read from a TOML file: a value of another
    TOML type than its field's (``toml_type_problems``) is a ValidationError, not converted."""
    problems = toml_type_problems(model, data)
    if problems:
        raise ValidationError.from_exception_data(model.__name__, problems)
    return model.model_validate(data)


def toml_type_problems(
    model: type[BaseModel], data: Mapping[str, Any], at: tuple[str | int, ...] = ()
) -> list[InitErrorDetails]:
    """The values of ``data`` (a TOML table at ``at``) whose TOML type is not the type of
    their field of ``model``: a string, float or boolean for an integer, a string or boolean
    for a number, anything but true or false for a boolean, in tables, arrays and inline
    tables. Unknown keys are the model's to refuse."""
    converted = _fields_converted_before(model)
    if converted is None:
        return []
    problems: list[InitErrorDetails] = []
    for key, value in data.items():
        field = model.model_fields.get(key)
        if field is None or key in converted or _converts(field.metadata):
            continue
        problems += _problems(field.annotation, value, (*at, key))
    return problems


def known_keys(model: type[BaseModel], loc: Sequence[str | int]) -> tuple[str, ...]:
    """The keys the table at ``loc`` in ``model`` may hold (none when ``loc`` is not a
    table of known keys, such as a dict of options)."""
    annotation: Any = model
    for part in loc:
        annotation = _step(annotation, part)
        if annotation is None:
            return ()
    target = _table(annotation)
    return tuple(target.model_fields) if target is not None else ()


def did_you_mean(key: str, known: Sequence[str]) -> str:
    """``; did you mean 'jobs'?`` when ``key`` is close to one of ``known``, else ``""``."""
    close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


def _fields_converted_before(model: type[BaseModel]) -> set[str] | None:
    """The fields a validator sees before pydantic does; None when a model validator sees
    the whole input first (then any value may be converted on purpose)."""
    decorators = model.__pydantic_decorators__
    if any(item.info.mode in ("before", "wrap") for item in decorators.model_validators.values()):
        return None
    return {
        name
        for item in decorators.field_validators.values()
        if item.info.mode in ("before", "wrap", "plain")
        for name in item.info.fields
    }


def _converts(metadata: Sequence[Any]) -> bool:
    return any(isinstance(item, _CONVERTERS) for item in metadata)


def _problems(annotation: Any, value: Any, loc: tuple[str | int, ...]) -> list[InitErrorDetails]:
    origin = get_origin(annotation)
    if origin is Annotated:
        base, *metadata = get_args(annotation)
        return [] if _converts(metadata) else _problems(base, value, loc)
    if origin in (Union, types.UnionType):
        found = [_problems(member, value, loc) for member in _members(annotation)]
        return [] if not found or any(not problems for problems in found) else found[0]
    if annotation in _EXPECTED:
        return [] if _is_toml(annotation, value) else [_problem(annotation, value, loc)]
    target = _model_of(annotation)
    if target is not None:
        return toml_type_problems(target, value, loc) if isinstance(value, Mapping) else []
    if origin is Literal:
        return []
    arguments = get_args(annotation)
    if origin in (list, tuple, set, frozenset, Sequence) and isinstance(value, list):
        if origin is tuple and Ellipsis not in arguments and len(arguments) == len(value):
            pairs = list(zip(arguments, value, strict=True))
        else:
            item = arguments[0] if arguments else Any
            pairs = [(item, element) for element in value]
        return [
            problem
            for position, (kind, element) in enumerate(pairs)
            for problem in _problems(kind, element, (*loc, position))
        ]
    if origin in (dict, Mapping) and len(arguments) == 2 and isinstance(value, Mapping):
        return [
            problem
            for key, element in value.items()
            for problem in _problems(arguments[1], element, (*loc, key))
        ]
    return []


def _members(annotation: Any) -> list[Any]:
    return [member for member in get_args(annotation) if member is not type(None)]


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _table(annotation: Any) -> type[BaseModel] | None:
    """The model of a table of ``annotation`` (``SweepGrid | None``: ``SweepGrid``)."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _table(get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        return next(filter(None, map(_table, _members(annotation))), None)
    return _model_of(annotation)


def _step(annotation: Any, part: str | int) -> Any:
    """The annotation of ``part`` inside a value of ``annotation`` (None when unknown)."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _step(get_args(annotation)[0], part)
    if origin in (Union, types.UnionType):
        for member in _members(annotation):
            found = _step(member, part)
            if found is not None:
                return found
        return None
    target = _model_of(annotation)
    if target is not None:
        field = target.model_fields.get(str(part))
        return field.annotation if field is not None and isinstance(part, str) else None
    arguments = get_args(annotation)
    if origin in (list, tuple, set, frozenset, Sequence) and isinstance(part, int) and arguments:
        return arguments[0]
    if origin in (dict, Mapping) and isinstance(part, str) and len(arguments) == 2:
        return arguments[1]
    return None


def _is_toml(expected: type, value: Any) -> bool:
    if expected is bool:
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    return isinstance(value, int) if expected is int else isinstance(value, int | float)


_TOML_TYPES: tuple[tuple[type, str], ...] = (
    (bool, "a boolean"),
    (int, "an integer"),
    (float, "a float"),
    (str, "a string"),
    (list, "an array"),
    (dict, "a table"),
)


def _problem(expected: type, value: Any, loc: tuple[str | int, ...]) -> InitErrorDetails:
    kind, name = _EXPECTED[expected]
    given = next((text for python, text in _TOML_TYPES if isinstance(value, python)), None)
    message = f"Input should be a valid {name}, not {given or 'a date or time'}"
    if isinstance(value, str) and _is_toml(expected, _unquoted(value)):
        message += " (write it without quotes)"
    return {"type": PydanticCustomError(kind, message), "loc": loc, "input": value}


def _unquoted(text: str) -> object:
    """What ``text`` would be as a bare TOML value (itself when it is none)."""
    try:
        return tomllib.loads(f"value = {text.strip()}")["value"]
    except tomllib.TOMLDecodeError:
        return text
