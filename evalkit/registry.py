"""Registries of named kinds (job kinds, alert rule kinds, sink kinds)."""

from __future__ import annotations

from typing import Protocol, TypeVar

from evalkit.errors import ConfigError

__all__ = ["register_named"]


class _Named(Protocol):
    @property
    def name(self) -> str: ...


NamedT = TypeVar("NamedT", bound=_Named)


def register_named(registry: dict[str, NamedT], kind: NamedT, *, what: str) -> None:
    """Add ``kind`` to ``registry`` under its name; ConfigError if the name is taken."""
    if kind.name in registry:
        raise ConfigError(f"a {what} named {kind.name!r} is registered already")
    registry[kind.name] = kind
