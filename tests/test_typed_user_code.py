"""A user's own code calling evalkit as the docs show passes ``mypy --strict``: evalkit is
typed (py.typed), so a wrong annotation is an error in every strict project that uses it."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
from pathlib import Path

import pytest
from chromadb.api.client import Client
from conftest import REPO_ROOT
from test_docs_python import python_block

from evalkit.retrievers import open_chroma_client

USER_CODE = '''
from collections.abc import Sequence
from pathlib import Path

from evalkit.config import Settings
from evalkit.goldset import Goldset
from evalkit.pipeline import (
    evaluate_goldset,
    gate_against_baseline,
    record_baseline,
    replay_candidate,
    replay_traffic_window,
)
from evalkit.pytest_plugin import EvalkitGate
from evalkit.records import Query, QueryResult
from evalkit.records.requests import GoldsetRunRequest, TrafficReplayRequest
from evalkit.retrievers.base import ranked_docs
from evalkit.store import Store


class MySearch:
    """docs/retrievers.md: only retrieve is required of a retriever of one's own."""

    def retrieve(self, queries: Sequence[Query], k: int) -> list[QueryResult]:
        return [QueryResult(q.id, ranked_docs(["d1"], [1.0]), 1.0) for q in queries]


def evaluate(store: Store, goldset: Goldset, settings: Settings) -> None:
    evaluate_goldset(store, goldset, MySearch(), GoldsetRunRequest(k=10))
    replay_traffic_window(store, "sample", MySearch(), TrafficReplayRequest(k=10))
    replay_candidate(store, goldset, MySearch(), settings=settings)
    record_baseline(store, goldset, MySearch(), Path("baseline.run"), settings=settings)
    gate_against_baseline(None, "baseline.run", MySearch(), goldset=goldset)
'''


def gate_example() -> str:
    """docs/ci.md's gate through the fixture, with the annotations a strict project adds."""
    block = python_block("ci.md", "evalkit_gate(")
    untyped = "def test_retrieval_does_not_regress(evalkit_gate):"
    assert untyped in block
    typed = "def test_retrieval_does_not_regress(evalkit_gate: EvalkitGate) -> None:"
    fixture_test = block.replace(untyped, typed).split("@pytest.mark")[0]
    return fixture_test.replace("import pytest\n", "")


@pytest.mark.slow
def test_user_code_written_as_the_docs_show_passes_mypy_strict(tmp_path: Path) -> None:
    """evaluate_goldset and the gate and traffic workflows were annotated with the whole
    ``Retriever`` protocol, so the docs' retrieve-only retriever failed mypy --strict; and
    docs/ci.md used the fixture's outcome without ruling out None, which it returns after a
    first run under ``evalkit_first_run = "pass"``."""
    script = tmp_path / "user_code.py"
    script.write_text(USER_CODE + gate_example(), encoding="utf-8")
    # Without site-packages, pandas', DuckDB's and chromadb's types are Any: what is checked
    # is evalkit's own annotations, in seconds rather than the minute a full check takes.
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-site-packages",
         "--follow-imports=silent", "--cache-dir", str(tmp_path / "cache"), str(script)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "MYPYPATH": str(REPO_ROOT)},
        timeout=300,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_chroma_client_is_annotated_as_the_class_it_is(tmp_path: Path) -> None:
    """docs/retrievers.md calls ``client.close()``: the annotation said ``ClientAPI``,
    chromadb's interface, which has no ``close``."""
    signature = inspect.signature(open_chroma_client, locals={"Client": Client}, eval_str=True)
    assert signature.return_annotation is Client
    client = open_chroma_client(path=tmp_path / "chroma")
    assert isinstance(client, Client)
    client.close()
