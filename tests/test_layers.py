"""The layering of shared/ARCHITECTURE.md, enforced: the import-linter contract in
pyproject.toml (also run by ``make lint``) and the rule on imports inside functions."""

from __future__ import annotations

import ast
import importlib
import os
import re
import shutil
import subprocess
import sys
import tomllib
import types
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "evalkit"
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")

# The optional dependencies heavy enough that evalkit imports them only when used.
HEAVY = ("chroma", "torch", "sentence-transformers", "sentence_transformers", "ragas")
HEAVY += ("evidently", "streamlit")
HEAVY += ("psycopg", "qdrant_client", "bm25s", "apscheduler")


def _source(path: Path) -> str:
    """The text of ``path``, as it was when this module was collected for the package's own."""
    return PACKAGE_SOURCES.get(path) or path.read_text(encoding="utf-8")


def _parse(path: Path) -> ast.Module:
    """The syntax tree of ``path``; the package's own files come from ``PACKAGE_TREES``."""
    return PACKAGE_TREES.get(path) or ast.parse(_source(path))


# Parsed once, when this module is collected and before any test starts a thread: CPython
# 3.11 shares the AST builder's recursion counter between threads, so ast.parse racing
# another thread's (a dashboard script thread an earlier test left running) can fail with
# "AST constructor recursion depth mismatch".
PACKAGE_SOURCES = {path: path.read_text(encoding="utf-8") for path in PACKAGE.rglob("*.py")}
PACKAGE_TREES = {path: ast.parse(source) for path, source in PACKAGE_SOURCES.items()}


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
    lines = _source(path).splitlines()
    tree = _parse(path)
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


MAX_MODULE_LINES = 1000
MAX_WORKFLOW_LINES = 500
"""A module of the workflow layer (``evalkit/pipeline/``) stays small: one workflow, or
what workflows share; a module growing past it holds two concerns."""


def _oversized(root: Path) -> list[str]:
    found = []
    for path in sorted((root / "evalkit").rglob("*.py")):
        relative = path.relative_to(root)
        workflow = relative.parts[:2] == ("evalkit", "pipeline")
        limit = MAX_WORKFLOW_LINES if workflow else MAX_MODULE_LINES
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > limit:
            found.append(f"{relative.as_posix()}: {lines} lines (at most {limit})")
    return found


def test_no_module_outgrows_its_place() -> None:
    oversized = _oversized(ROOT)
    assert not oversized, "split these by concern:\n" + "\n".join(oversized)


def test_the_size_check_holds_the_workflow_layer_to_its_smaller_limit(tmp_path: Path) -> None:
    workflows = tmp_path / "evalkit" / "pipeline"
    workflows.mkdir(parents=True)
    (workflows / "grown.py").write_text("x = 1\n" * (MAX_WORKFLOW_LINES + 1), encoding="utf-8")
    (workflows / "small.py").write_text("x = 1\n" * MAX_WORKFLOW_LINES, encoding="utf-8")
    (tmp_path / "evalkit" / "stage.py").write_text("x = 1\n" * 900, encoding="utf-8")
    (tmp_path / "evalkit" / "huge.py").write_text("x = 1\n" * 1001, encoding="utf-8")
    assert _oversized(tmp_path) == [
        "evalkit/huge.py: 1001 lines (at most 1000)",
        f"evalkit/pipeline/grown.py: {MAX_WORKFLOW_LINES + 1} lines (at most 500)",
    ]


@pytest.mark.parametrize(
    "path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT))
)
def test_no_private_module_of_another_package_is_imported(path: Path) -> None:
    """A private module (``typer._click``) may vanish in any release of its package."""
    tree = _parse(path)
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


def _contracts(pyproject: Path = ROOT / "pyproject.toml") -> list[dict[str, Any]]:
    config = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    contracts: list[dict[str, Any]] = config["tool"]["importlinter"]["contracts"]
    return contracts


def _contract(name: str) -> dict[str, Any]:
    return next(contract for contract in _contracts() if contract["name"] == name)


def _copy_of_the_package(tmp_path: Path) -> Path:
    shutil.copytree(PACKAGE, tmp_path / "evalkit", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def _append(path: Path, line: str) -> None:
    path.write_text(path.read_text(encoding="utf-8") + f"\n{line}\n", encoding="utf-8")


def test_the_forbidden_contracts_fail_on_duckdb_outside_the_store_and_a_stage_in_the_cli(
    tmp_path: Path,
) -> None:
    root = _copy_of_the_package(tmp_path)
    _append(root / "evalkit" / "goldset" / "model.py", "import duckdb")
    _append(root / "evalkit" / "cli" / "run.py", "from evalkit.metrics import Evaluator")
    _append(root / "evalkit" / "cli" / "run.py", "from evalkit.retrievers import build_retriever")
    _append(root / "evalkit" / "scheduler" / "jobs.py", "from evalkit.judging import assessor")
    _append(root / "evalkit" / "scheduler" / "jobs.py", "from evalkit.drift import make_detector")
    result = lint_imports(root)
    assert result.returncode != 0
    assert "evalkit is not allowed to import duckdb" in result.stdout
    assert "evalkit.goldset.model -> duckdb" in result.stdout
    assert "evalkit.cli is not allowed to import evalkit.metrics" in result.stdout
    assert "evalkit.cli.run -> evalkit.metrics" in result.stdout
    assert "evalkit.scheduler is not allowed to import evalkit.drift" in result.stdout
    assert "evalkit.scheduler.jobs -> evalkit.drift" in result.stdout
    assert "evalkit.cli is not allowed to import evalkit.retrievers" in result.stdout
    assert "evalkit.cli.run -> evalkit.retrievers" in result.stdout
    assert "evalkit.scheduler is not allowed to import evalkit.judging" in result.stdout
    assert "evalkit.scheduler.jobs -> evalkit.judging" in result.stdout


ASSEMBLY = "the CLI and the scheduler call the pipeline and do not assemble its stages"

# Stage calls by name, where the module also holds what the CLI may use: the store's
# writers of a run's rows and of a check's result (evalkit.store.runs also holds the reads
# the CLI shows), and an engine's replay loop (its module also holds the engine the CLI
# chooses and hands to the pipeline).
STAGE_CALLS = {
    "evalkit.store": frozenset(
        {
            "RunRecorder",
            "create_run",
            "insert_run",
            "add_query_results",
            "finish_run",
            "mark_finished",
            "fail_run",
            "save_drift_check",
            "save_answer_scores",
            "save_audit",
            "load_run_shards",
        }
    ),
    "evalkit.engines": frozenset({"replay", "replay_on_ray"}),
}


def _module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _evalkit_imports(path: Path, root: Path = ROOT) -> Iterator[tuple[str, int, str, str]]:
    """(importer, line, module, name) of each ``from evalkit.x import name`` in ``path``."""
    importer = _module_name(path, root)
    for node in ast.walk(_parse(path)):
        if (
            isinstance(node, ast.ImportFrom)
            and node.level == 0
            and (node.module or "").split(".")[0] == "evalkit"
        ):
            for alias in node.names:
                yield importer, node.lineno, str(node.module), alias.name


def _home(module: str, name: str) -> str:
    """The module that defines ``module.name``, followed through a package's re-exports
    and lazy attributes; ``module`` itself for a constant."""
    package = importlib.import_module(module)
    try:
        value = getattr(package, name)
    except AttributeError:
        return importlib.import_module(f"{module}.{name}").__name__
    if isinstance(value, types.ModuleType):
        return value.__name__
    home = getattr(value, "__module__", None)
    return home if isinstance(home, str) and home.split(".")[0] == "evalkit" else module


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _assembled_stages(imports: Iterable[tuple[str, int, str, str]]) -> list[str]:
    """The imports by which the CLI or the scheduler would sequence a stage themselves: a
    name, imported from anywhere but ``evalkit.pipeline``, whose home is a module the
    assembly contract forbids (unless the contract ignores that import), or one of
    ``STAGE_CALLS``."""
    contract = _contract(ASSEMBLY)
    forbidden = contract["forbidden_modules"]
    allowed = [
        tuple(part.strip() for part in rule.split("->"))
        for rule in contract.get("ignore_imports", [])
    ]
    found = []
    for importer, line, module, name in imports:
        if _within(module, "evalkit.pipeline"):
            continue  # what the pipeline exports is a workflow, wherever its body lives
        home = _home(module, name)
        if any(_within(importer, source) and _within(home, target) for source, target in allowed):
            continue
        stage = any(_within(home, target) for target in forbidden)
        call = any(
            _within(home, package) and name in names for package, names in STAGE_CALLS.items()
        )
        if stage or call:
            found.append(f"{importer}:{line} imports {name} from {home}")
    return found


def test_the_cli_and_the_scheduler_import_no_stage_the_pipeline_assembles() -> None:
    """The assembly contract, also through lazy re-exports (``from evalkit.audit import
    run_audit`` is an import of ``evalkit.audit`` to import-linter) and for ``STAGE_CALLS``."""
    callers = sorted((PACKAGE / "cli").rglob("*.py")) + sorted(
        (PACKAGE / "scheduler").rglob("*.py")
    )
    found = _assembled_stages(place for path in callers for place in _evalkit_imports(path))
    assert not found, (
        "the CLI and the scheduler call evalkit.pipeline; these imports assemble stages "
        "(move the sequence into a pipeline workflow):\n" + "\n".join(found)
    )


def test_the_assembly_check_sees_through_lazy_re_exports_and_names_store_writers(
    tmp_path: Path,
) -> None:
    sample = tmp_path / "evalkit" / "cli" / "sample.py"
    sample.parent.mkdir(parents=True)
    sample.write_text(
        "from evalkit.audit import CHECK_NAMES, run_audit\n"
        "from evalkit.store.runs import finish_run, list_runs\n"
        "from evalkit.metrics import parse_measures\n",
        encoding="utf-8",
    )
    found = _assembled_stages(_evalkit_imports(sample, tmp_path))
    assert found == [
        "evalkit.cli.sample:1 imports run_audit from evalkit.audit.runner",
        "evalkit.cli.sample:2 imports finish_run from evalkit.store.runs",
        "evalkit.cli.sample:3 imports parse_measures from evalkit.metrics.measures",
    ]


ARCHITECTURE_PAGE = ROOT / "docs" / "architecture.md"


def _layer_names(contract: dict[str, Any]) -> list[str]:
    return [
        name.strip()
        for layer in contract["layers"]
        for name in re.split(r"[|:]", layer)
        if name.strip()
    ]


def _layers_on_the_page(page: str) -> list[str]:
    """The names in the first column of the page's table under "## Layers"."""
    section = page.split("\n## Layers", 1)[1].split("\n## ", 1)[0]
    names: list[str] = []
    for line in section.splitlines():
        cells = re.split(r"(?<!\\)\|", line)
        if line.startswith("| `") and len(cells) > 2:
            names += re.findall(r"`([a-z_]+)`", cells[1])
    return names


def _out_of_step(contracts: list[dict[str, Any]], page: str) -> list[str]:
    """How the layers contracts and docs/architecture.md disagree: a layer of the package's
    contract missing from the page's table (or a table row no layer has), and a layer of a
    sub-package's contract (``evalkit.pipeline``) that the page never names."""
    on_the_page = _layers_on_the_page(page)
    problems: list[str] = []
    for contract in contracts:
        if contract["type"] != "layers":
            continue
        names = _layer_names(contract)
        if contract["containers"] == ["evalkit"]:
            problems += [
                f"layer {name} is not in the table" for name in names if name not in on_the_page
            ]
            problems += [
                f"the table names {name}, no layer" for name in on_the_page if name not in names
            ]
        else:
            container = contract["containers"][0]
            problems += [
                f"layer {name} of {container} is not named"
                for name in names
                if f"`{name}`" not in page
            ]
    return problems


def test_the_architecture_page_names_every_layer_of_the_contracts() -> None:
    problems = _out_of_step(_contracts(), ARCHITECTURE_PAGE.read_text(encoding="utf-8"))
    assert not problems, "docs/architecture.md and pyproject.toml's layers disagree:\n" + "\n".join(
        problems
    )


def test_the_architecture_check_sees_a_layer_missing_from_the_page() -> None:
    page = ARCHITECTURE_PAGE.read_text(encoding="utf-8")
    row = next(line for line in page.splitlines() if line.startswith("| `stats` |"))
    without = page.replace(row + "\n", "")
    assert _out_of_step(_contracts(), without) == ["layer stats is not in the table"]
    contracts = _contracts()
    package = next(c for c in contracts if c["type"] == "layers" and c["containers"] == ["evalkit"])
    package["layers"] = [*package["layers"], "ledger"]
    assert "layer ledger is not in the table" in _out_of_step(contracts, page)
