"""Registries of named kinds (job kinds, alert rule kinds, sink kinds, file formats)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, TypeVar

from evalkit.errors import ConfigError

__all__ = ["lookup_named", "register_named"]


class _Named(Protocol):
    @property
    def name(self) -> str: ...


NamedT = TypeVar("NamedT", bound=_Named)
EntryT = TypeVar("EntryT")


def register_named(registry: dict[str, NamedT], kind: NamedT, *, what: str) -> None:
    """Add ``kind`` to ``registry`` under its name; ConfigError if the name is taken."""
    if kind.name in registry:
        raise ConfigError(f"a {what} named {kind.name!r} is registered already")
    registry[kind.name] = kind


def lookup_named(registry: Mapping[str, EntryT], name: str, *, what: str) -> EntryT:
    """The entry of ``registry`` named ``name``; ConfigError naming the choices otherwise."""
    entry = registry.get(name)
    if entry is None:
        raise ConfigError(f"unknown {what} '{name}'; use one of: {', '.join(registry)}")
    return entry
