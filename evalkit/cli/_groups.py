"""Option groups: the options that make one record, declared once and parsed once.

A command takes a group as one parameter whose default is ``GROUP.use()``; ``grouped``
lists the group's options in its place and calls the body with the record
(docs/architecture.md, "Where a new piece goes").
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar, cast

from typer.models import ParameterInfo

__all__ = ["OptionGroup", "grouped"]

R = TypeVar("R")
F = TypeVar("F", bound=Callable[..., Any])


def _parameters(
    function: Callable[..., Any], skip: tuple[str, ...] = ()
) -> list[inspect.Parameter]:
    """``function``'s parameters, keyword-only, their annotations evaluated in its module
    (those of ``skip`` left as written: they need not exist at run time)."""
    parameters = []
    for parameter in inspect.signature(function).parameters.values():
        annotation = parameter.annotation
        if isinstance(annotation, str) and parameter.name not in skip:
            annotation = eval(annotation, function.__globals__)
        parameters.append(
            parameter.replace(kind=inspect.Parameter.KEYWORD_ONLY, annotation=annotation)
        )
    return parameters


def _is_option(parameter: inspect.Parameter) -> bool:
    metadata = getattr(parameter.annotation, "__metadata__", ())
    return typing.get_origin(parameter.annotation) is typing.Annotated and any(
        isinstance(item, ParameterInfo) for item in metadata
    )


@dataclass(frozen=True)
class OptionGroup(Generic[R]):
    """The group ``parse`` declares: its options are ``parse``'s typer-annotated parameters."""

    parse: Callable[..., R]

    def use(
        self,
        *,
        omit: tuple[str, ...] = (),
        fixed: Mapping[str, Any] | None = None,
        options: Mapping[str, Any] | None = None,
        **defaults: Any,
    ) -> Any:
        """The group as a command's parameter default. ``omit`` leaves options out (the
        command does not offer them; ``parse`` takes their defaults), ``fixed`` gives
        ``parse`` further keywords, ``options`` replaces options' typer types and
        ``defaults`` their defaults, for this command only."""
        declared = [p for p in _parameters(self.parse) if _is_option(p) and p.name not in omit]
        return _Use(
            self,
            [
                p.replace(
                    annotation=(options or {}).get(p.name, p.annotation),
                    default=defaults.get(p.name, p.default),
                )
                for p in declared
            ],
            dict(fixed or {}),
        )


@dataclass(frozen=True)
class _Use:
    group: OptionGroup[Any]
    options: list[inspect.Parameter]
    fixed: Mapping[str, Any] = field(default_factory=dict)

    def parse(self, values: dict[str, Any]) -> Any:
        given = {option.name: values.pop(option.name) for option in self.options}
        return self.group.parse(**given, **self.fixed)


def grouped(command: F) -> F:
    """``command`` with each parameter whose default is ``GROUP.use()`` replaced by the
    group's options (typer reads the new ``__signature__``), and called with the record
    they parse into."""
    uses = {
        p.name: p.default
        for p in inspect.signature(command).parameters.values()
        if isinstance(p.default, _Use)
    }
    parameters: list[inspect.Parameter] = []
    for parameter in _parameters(command, skip=tuple(uses)):
        use = uses.get(parameter.name)
        parameters.extend(use.options if use is not None else [parameter])

    @functools.wraps(command)
    def parsed(**values: Any) -> Any:
        records = {name: use.parse(values) for name, use in uses.items()}
        return command(**values, **records)

    parsed.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    parsed.__annotations__ = {p.name: p.annotation for p in parameters}
    return cast("F", parsed)
