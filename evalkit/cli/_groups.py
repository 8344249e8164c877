"""Option groups: the options that make one record, declared once and parsed once.

A group (``OptionGroup``) holds its options, each a typer ``Annotated`` type with its
default, and the function that parses their values into its record. A command takes the
group as one parameter whose default is ``GROUP.use()``::

    @app.command("run")
    @grouped
    def run(retriever: RetrieverOptions = RETRIEVER.use(), ...) -> None: ...

``grouped`` lists the group's options in the command's signature in that parameter's
place (so typer shows and parses them as before) and calls the body with the record.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar, cast

__all__ = ["REQUIRED", "OptionGroup", "grouped"]

R = TypeVar("R")
F = TypeVar("F", bound=Callable[..., Any])

REQUIRED: Any = inspect.Parameter.empty
"""The default of an option that has none: the command line must give it."""


@dataclass(frozen=True)
class OptionGroup(Generic[R]):
    """``options``: parameter name -> (typer ``Annotated`` type, default); ``parse`` takes
    their values as keywords and returns the record."""

    options: Mapping[str, tuple[Any, Any]]
    parse: Callable[..., R]

    def use(
        self,
        *,
        omit: tuple[str, ...] = (),
        fixed: Mapping[str, Any] | None = None,
        options: Mapping[str, tuple[Any, Any]] | None = None,
        **defaults: Any,
    ) -> Any:
        """The group as a command's parameter default. ``omit`` leaves options out (the
        command does not offer them; ``parse`` gets their defaults), ``fixed`` passes
        ``parse`` further keywords, ``options`` replaces options' declarations and
        ``defaults`` their defaults, for this command only."""
        declared = {**self.options, **(options or {})}
        return _Use(
            self,
            {
                name: (annotation, defaults.get(name, default))
                for name, (annotation, default) in declared.items()
                if name not in omit
            },
            {
                **{name: self.options[name][1] for name in omit},
                **(fixed or {}),
            },
        )


@dataclass(frozen=True)
class _Use:
    group: OptionGroup[Any]
    options: Mapping[str, tuple[Any, Any]]
    fixed: Mapping[str, Any] = field(default_factory=dict)

    def parse(self, values: dict[str, Any]) -> Any:
        return self.group.parse(**{name: values.pop(name) for name in self.options}, **self.fixed)


def grouped(command: F) -> F:
    """``command`` with each parameter whose default is ``GROUP.use()`` replaced by the
    group's options (typer reads the new ``__signature__``), and called with the record
    they parse into."""
    uses: dict[str, _Use] = {}
    parameters: list[inspect.Parameter] = []
    for parameter in inspect.signature(command).parameters.values():
        use = parameter.default
        if not isinstance(use, _Use):
            annotation = parameter.annotation
            if isinstance(annotation, str):
                annotation = eval(annotation, command.__globals__)
            parameters.append(
                parameter.replace(kind=inspect.Parameter.KEYWORD_ONLY, annotation=annotation)
            )
            continue
        uses[parameter.name] = use
        parameters.extend(
            inspect.Parameter(
                name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=kind
            )
            for name, (kind, default) in use.options.items()
        )

    @functools.wraps(command)
    def parsed(**values: Any) -> Any:
        records = {name: use.parse(values) for name, use in uses.items()}
        return command(**values, **records)

    parsed.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    parsed.__annotations__ = {p.name: p.annotation for p in parameters}
    return cast("F", parsed)
