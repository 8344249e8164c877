"""The layering of shared/ARCHITECTURE.md, enforced: the import-linter contract in
pyproject.toml (also run by ``make lint``) and the rule on imports inside functions."""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "evalkit"
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")

# The optional dependencies heavy enough that evalkit imports them only when used.
HEAVY = ("chroma", "torch", "sentence-transformers", "sentence_transformers", "ragas")
HEAVY += ("evidently", "streamlit")
HEAVY += ("psycopg", "qdrant_client")


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """Run the contract of ``root/pyproject.toml`` over the package under ``root``."""
    env = {**os.environ, "PYTHONPATH": str(root), "NO_COLOR": "1"}
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(root / "pyproject.toml"), "--no-cache"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_the_layer_contract_holds() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_layer_contract_fails_on_a_backward_import(tmp_path: Path) -> None:
    shutil.copytree(PACKAGE, tmp_path / "evalkit", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    goldset_model = tmp_path / "evalkit" / "goldset" / "model.py"
    goldset_model.write_text(
        goldset_model.read_text(encoding="utf-8") + "\nfrom evalkit.cli._app import app\n",
        encoding="utf-8",
    )
    result = lint_imports(tmp_path)
    assert result.returncode != 0
    assert "evalkit.goldset is not allowed to import evalkit.cli" in result.stdout
    assert "evalkit.goldset.model -> evalkit.cli._app" in result.stdout


def test_the_layer_contract_places_every_module(tmp_path: Path) -> None:
    """The contract is exhaustive: a new top-level module must be given its layer."""
    shutil.copytree(PACKAGE, tmp_path / "evalkit", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    (tmp_path / "evalkit" / "stray.py").write_text('"""Not in any layer."""\n', encoding="utf-8")
    result = lint_imports(tmp_path)
    assert result.returncode != 0
    assert "evalkit.stray" in result.stdout


def _function_level_own_imports(path: Path, root: Path = ROOT) -> list[str]:
    """``path:line`` of each import of evalkit's own modules inside a function whose
    comment (on its lines, or just above its run of imports) does not name the heavy
    optional dependency it defers."""
    source = path.read_text(encoding="utf-8")
    lines = source.splitlines()
    tree = ast.parse(source)
    found: list[str] = []

    def own(node: ast.Import | ast.ImportFrom) -> bool:
        if isinstance(node, ast.ImportFrom):
            return node.level > 0 or (node.module or "").split(".")[0] == "evalkit"
        return any(alias.name.split(".")[0] == "evalkit" for alias in node.names)

    def explained(first: ast.stmt, node: ast.stmt) -> bool:
        end = node.end_lineno or node.lineno
        nearby = lines[max(first.lineno - 2, 0) : end]
        comments = " ".join(line.split("#", 1)[1] for line in nearby if "#" in line)
        return any(name in comments.lower() for name in HEAVY)

    def visit(body: list[ast.stmt], in_function: bool) -> None:
        first: ast.stmt | None = None
        for statement in body:
            if isinstance(statement, ast.Import | ast.ImportFrom):
                first = first or statement
                if in_function and own(statement) and not explained(first, statement):
                    found.append(f"{path.relative_to(root)}:{statement.lineno}")
                continue
            first = None
            inside = in_function or isinstance(
                statement, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda
            )
            for field in ("body", "orelse", "finalbody"):
                child = getattr(statement, field, None)
                if isinstance(child, list):
                    visit(child, inside)
            for handler in getattr(statement, "handlers", []):
                visit(handler.body, inside)
            for case in getattr(statement, "cases", []):
                visit(case.body, inside)

    visit(tree.body, False)
    return found


def test_imports_inside_functions_only_defer_a_heavy_dependency() -> None:
    offenders = [
        place
        for path in sorted(PACKAGE.rglob("*.py"))
        if "cli" not in path.relative_to(PACKAGE).parts[:1]
        for place in _function_level_own_imports(path)
    ]
    assert not offenders, (
        "imports of evalkit's own modules inside functions, without a comment naming the "
        "heavy optional dependency they defer (move them to the top of the module):\n"
        + "\n".join(offenders)
    )


def test_the_function_level_import_check_catches_an_unexplained_import(tmp_path: Path) -> None:
    sample = tmp_path / "evalkit" / "sample.py"
    sample.parent.mkdir()
    sample.write_text(
        "def quiet():\n"
        "    from evalkit.errors import ConfigError\n"
        "    return ConfigError\n"
        "\n\n"
        "def explained():\n"
        "    # deferred: chromadb is heavy\n"
        "    from evalkit.records import Query\n"
        "    from evalkit.errors import StoreError\n"
        "    return Query, StoreError\n",
        encoding="utf-8",
    )
    assert _function_level_own_imports(sample, tmp_path) == ["evalkit/sample.py:2"]


@pytest.mark.parametrize(
    "path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT))
)
def test_no_private_module_of_another_package_is_imported(path: Path) -> None:
    """A private module (``typer._click``) may vanish in any release of its package."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    private = re.compile(r"(^|\.)_[a-z]")
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        for name in names:
            if name.split(".")[0] in ("evalkit", "__future__"):
                continue
            assert not private.search(name), (
                f"{path.relative_to(ROOT)}:{node.lineno} imports {name}"
            )
