"""Package attributes that load their module on first use.

Importing a stage's package for one name must not load every module of the stage (and the
scipy, pandas or HTTP clients they import). Such a package states each public name once, as
``from module import Name as Name`` under ``if TYPE_CHECKING:`` (a re-export to type
checkers), and sets ``__getattr__ = lazy_attributes(__name__)`` (PEP 562), which reads those
imports from its source, imports each name when first asked for, and gives ``__all__``.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any

__all__ = ["lazy_attributes", "public_imports"]


def public_imports(source: str) -> dict[str, tuple[str, str]]:
    """The names ``source`` re-exports under ``if TYPE_CHECKING:`` (``from m import X as X``),
    in order, each with its module and its name there."""
    import ast

    names: dict[str, tuple[str, str]] = {}
    for node in ast.parse(source).body:
        if not (isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING"):
            continue
        for statement in node.body:
            if isinstance(statement, ast.ImportFrom) and statement.module and not statement.level:
                for alias in statement.names:
                    if alias.asname == alias.name:
                        names[alias.name] = (statement.module, alias.name)
    return names


def lazy_attributes(package: str) -> Callable[[str], Any]:
    """``__getattr__`` for ``package``: each name it re-exports under ``TYPE_CHECKING``
    imported from its module when first asked for, then kept on the package; ``__all__``
    is those names."""
    table: dict[str, tuple[str, str]] = {}

    def attribute(name: str) -> Any:
        if not table:
            with open(str(sys.modules[package].__file__), encoding="utf-8") as source:
                table.update(public_imports(source.read()))
        if name == "__all__":
            value: Any = list(table)
        elif name in table:
            module, original = table[name]
            value = getattr(importlib.import_module(module), original)
        else:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        setattr(sys.modules[package], name, value)
        return value

    return attribute
