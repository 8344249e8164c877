"""A user's own code calling evalkit as the docs show passes ``mypy --strict``: evalkit is
typed (py.typed), so a wrong annotation is an error in every strict project that uses it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import REPO_ROOT

USER_CODE = '''
from collections.abc import Sequence

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
from evalkit.config import Settings
from evalkit.retrievers.base import ranked_docs
from evalkit.store import Store
from pathlib import Path


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


def test_retrieval_does_not_regress(evalkit_gate: EvalkitGate) -> None:
    """docs/ci.md's example."""
    outcome = evalkit_gate(goldset="goldsets/demo", retriever=MySearch(), baseline="b.run")
    assert outcome is not None  # None only after a first run under evalkit_first_run = "pass"
    assert outcome.report.metric("ndcg@10").candidate_mean > 0.5
'''


def test_a_retriever_with_retrieve_alone_type_checks_where_the_api_takes_one(
    tmp_path: Path,
) -> None:
    """evaluate_goldset and the gate and traffic workflows were annotated with the whole
    ``Retriever`` protocol, so the docs' retrieve-only retriever failed mypy --strict."""
    script = tmp_path / "user_code.py"
    script.write_text(USER_CODE, encoding="utf-8")
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
