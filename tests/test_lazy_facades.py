"""The lazy package facades: each public name stated once, under ``TYPE_CHECKING`` as
``from module import Name as Name``, and ``__all__``, the attributes and the type checker's
view all agree with it."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from evalkit.lazy import public_imports

PACKAGE = Path(__file__).resolve().parents[1] / "evalkit"
FACADES = sorted(
    ".".join(path.relative_to(PACKAGE.parent).parent.parts)
    for path in PACKAGE.rglob("__init__.py")
    if "lazy_attributes(" in path.read_text(encoding="utf-8")
)


def _type_checking_imports(package: str) -> list[ast.ImportFrom]:
    source = (PACKAGE.parent / package.replace(".", "/") / "__init__.py").read_text("utf-8")
    return [
        statement
        for node in ast.parse(source).body
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING"
        for statement in node.body
        if isinstance(statement, ast.ImportFrom)
    ]


def test_the_facades_are_found() -> None:
    assert {"evalkit.pipeline", "evalkit.stats", "evalkit.traffic", "evalkit.alerts"} <= set(
        FACADES
    )


@pytest.mark.parametrize("package", FACADES)
def test_all_is_every_re_exported_name_and_each_resolves_to_its_module(package: str) -> None:
    """A name imported under ``TYPE_CHECKING`` without ``as Name`` would be hidden from a
    strict type checker and left out of ``__all__``; one whose module lacks it would fail
    on first use."""
    imports = _type_checking_imports(package)
    assert imports, package
    plain = [
        f"{statement.module}.{alias.name}"
        for statement in imports
        for alias in statement.names
        if alias.asname != alias.name
    ]
    assert not plain, f"{package}: write these `from m import X as X`: {plain}"
    declared = [alias.name for statement in imports for alias in statement.names]
    facade = importlib.import_module(package)
    assert facade.__all__ == declared
    assert len(set(declared)) == len(declared)
    for statement in imports:
        home = importlib.import_module(str(statement.module))
        for alias in statement.names:
            assert getattr(facade, alias.name) is getattr(home, alias.name), alias.name
    namespace: dict[str, object] = {}
    exec(f"from {package} import *", namespace)
    assert set(declared) <= set(namespace)
    with pytest.raises(AttributeError, match=f"module '{package}' has no attribute 'nothing'"):
        getattr(facade, "nothing")  # noqa: B009


def test_importing_a_facade_loads_none_of_its_modules() -> None:
    probe = (
        "import importlib, sys\n"
        f"for package in {FACADES!r}:\n"
        "    importlib.import_module(package)\n"
        f"print(sorted(m for m in sys.modules if m.startswith({tuple(FACADES)!r})"
        " and m not in sys.argv[1:] and m.rpartition('.')[0] in sys.argv[1:]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, *FACADES], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]", done.stderr


def test_public_imports_reads_only_re_exports_under_type_checking() -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "from a.eager import Loaded as Loaded\n"
        "if TYPE_CHECKING:\n"
        "    from a.b import Public as Public, helper\n"
        "    from a.c import CONSTANT as CONSTANT\n"
        "    from . import relative as relative\n"
        "    import a.d as d\n"
    )
    assert public_imports(source) == {
        "Public": ("a.b", "Public"),
        "CONSTANT": ("a.c", "CONSTANT"),
    }
