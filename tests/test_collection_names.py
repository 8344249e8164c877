"""A Chroma collection name Chroma would refuse (`kb`: 3-512 characters, and its other rules)
is refused through the CLI with exit 2 naming the rule, before any work; the docs use valid
names."""

from __future__ import annotations

import json
import re
import subprocess
import textwrap
from pathlib import Path

import pytest
from evalkit_in_process import invoke_evalkit
from evalkit_process import run_evalkit

from evalkit.retrievers.chroma_client import collection_name_problem

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "goldsets" / "demo"

# Each name is refused by Chroma 1.5 itself (`get_or_create_collection` raises), for the rule.
BAD_NAMES = {
    "kb": "3 to 512",
    "x" * 513: "3 to 512",
    "-kb-": "letter or digit first and last",
    "support kb": "only letters, digits",
    "kb..v2": "two consecutive periods",
    "10.0.0.1": "IPv4 address",
}


def test_names_are_judged_as_chroma_judges_them(tmp_path: Path) -> None:
    import chromadb
    from chromadb.config import Settings

    client = chromadb.PersistentClient(
        path=str(tmp_path / "chroma"), settings=Settings(anonymized_telemetry=False)
    )
    try:
        for name, rule in BAD_NAMES.items():
            problem = collection_name_problem(name)
            assert problem is not None, name
            assert rule in problem, (name, problem)
            with pytest.raises(Exception, match="name"):
                client.get_or_create_collection(name, embedding_function=None)
        for name in ("abc", "support-kb", "kb_v2.1", "1.2.3", "x" * 512, "255.255.255.256"):
            assert collection_name_problem(name) is None, name
            client.get_or_create_collection(name, embedding_function=None)
    finally:
        client.close()


def evalkit(
    cwd: Path, home: Path, *args: str, config: str | None = None
) -> subprocess.CompletedProcess[str]:
    if config is not None:
        (cwd / "evalkit.toml").write_text(textwrap.dedent(config), encoding="utf-8")
    return run_evalkit(*args, env=minimal_env(home), cwd=cwd)


def minimal_env(home: Path) -> dict[str, str]:
    """The environment the commands run with: a store at ``home`` and nothing else of the
    test run's."""
    return {
        "PATH": "/usr/bin:/bin",
        "EVALKIT_HOME": str(home),
        "PYTHONPATH": str(REPO),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "ANONYMIZED_TELEMETRY": "False",
    }


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A working directory and a store holding the demo goldset, and no Chroma store."""
    cwd = tmp_path_factory.mktemp("names")
    home = cwd / "home"
    done = invoke_evalkit(
        "goldset", "import", str(DEMO), "--name", "demo", env=minimal_env(home), cwd=cwd
    )
    assert done.returncode == 0, done.stderr
    return cwd, home


def one_line(text: str) -> str:
    return " ".join(text.split())


@pytest.mark.parametrize(
    "args",
    [
        ["run", "--goldset", "demo", "--collection", "kb"],
        ["gate", "--goldset", "demo", "--collection", "kb", "--baseline", "none"],
        ["traffic", "replay", "--window", "2026-11-21", "--collection", "kb"],
        ["index", "--corpus", str(DEMO / "corpus.jsonl"), "--collection", "kb"],
        ["audit", "--collection", "kb"],
        ["drift", "model", "--collection", "kb"],
        ["drift", "documents", "--collection", "kb"],
    ],
    ids=lambda args: " ".join(args[:2]),
)
def test_a_name_chroma_refuses_is_exit_2_naming_the_rule_before_any_work(
    store: tuple[Path, Path], args: list[str]
) -> None:
    cwd, home = store
    done = evalkit(cwd, home, *args)
    said = one_line(done.stderr)
    assert done.returncode == 2, said
    assert "Chroma collection name 'kb' is not valid" in said
    assert "3 to 512" in said
    assert not (home / "chroma").exists(), "the Chroma store was opened"


def test_json_output_carries_the_refusal(store: tuple[Path, Path]) -> None:
    cwd, home = store
    done = evalkit(
        cwd, home, "run", "--goldset", "demo", "--collection", "a..b", "--format", "json"
    )
    assert done.returncode == 2
    error = json.loads(done.stdout)["error"]
    assert (error["type"], error["exit_code"]) == ("ConfigError", 2)
    assert "two consecutive periods" in error["message"]


@pytest.mark.slow
def test_a_qdrant_collection_is_not_held_to_chromas_rules(store: tuple[Path, Path]) -> None:
    cwd, home = store
    done = evalkit(
        cwd, home, "run", "--goldset", "demo", "--retriever", "qdrant", "--collection", "kb"
    )
    assert "Chroma collection name" not in done.stderr
    assert "[retriever.qdrant]" in one_line(done.stderr)  # the next thing it misses


@pytest.mark.parametrize(
    "job",
    [
        'kind = "goldset_replay"\ngoldset = "demo"\ncollection = "kb"',
        'kind = "audit"\ncollection = "kb"',
    ],
    ids=["goldset_replay", "audit"],
)
@pytest.mark.slow
def test_a_job_naming_a_refused_collection_is_refused_when_the_config_is_read(
    tmp_path: Path, job: str
) -> None:
    config = f'[[jobs]]\nname = "nightly"\n{job}\n'
    done = evalkit(tmp_path, tmp_path / "home", "jobs", "list", config=config)
    said = one_line(done.stderr)
    assert done.returncode == 2, said
    assert "evalkit.toml" in said
    assert "'nightly'" in said
    assert "Chroma collection name 'kb' is not valid" in said


# `--collection NAME` on a command line, `collection = "NAME"` in evalkit.toml.
NAMED = re.compile(r"""(?:--collection[ =]|\bcollection\s*=\s*["'])([A-Za-z0-9_.-]+)""")


def test_the_docs_and_help_texts_name_only_valid_collections() -> None:
    files = [REPO / "README.md", REPO / "action.yml", *sorted((REPO / "docs").glob("*.md"))]
    files += sorted((REPO / "evalkit" / "cli").glob("*.py"))
    found = []
    for path in files:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            for match in NAMED.finditer(line):
                name = match.group(1)
                if name.isupper() or name.startswith(("-", "_")) or name == "...":
                    continue  # placeholders (NAME), options and code, not names
                problem = collection_name_problem(name)
                if problem is not None:
                    found.append(f"{path.relative_to(REPO)}:{number}: {name!r}: {problem}")
    assert not found, "\n".join(found)
