"""Package attributes that load their module on first use.

A stage's package re-exports its public names; importing the package for one of them must
not load every module of the stage (and the scipy, pandas or HTTP clients they import), or
a quick command pays for all of them. ``lazy_attributes`` builds the package's
``__getattr__`` (PEP 562) from a name -> module table.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_attributes"]


def lazy_attributes(package: str, names: Mapping[str, str]) -> Callable[[str], Any]:
    """``__getattr__`` for ``package``: each of ``names`` imported from its module when
    first asked for, then kept on the package."""

    def attribute(name: str) -> Any:
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[package], name, value)
        return value

    return attribute
