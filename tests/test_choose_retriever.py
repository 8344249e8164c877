"""Choosing a retriever on the demo, as an engineer would from a clean store: a dense run
(embedded Chroma, the bundled MiniLM) and a lexical run (bm25) of the demo goldset, their
fusion, and the corrected leaderboard that says whether the fusion is significantly better."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from evalkit.cli import invoke

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "goldsets" / "demo"

pytestmark = pytest.mark.slow


def _json(capsys: pytest.CaptureFixture[str], *args: str) -> Any:
    code = invoke([*args, "--format", "json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads(captured.out)


def test_dense_lexical_and_their_fusion_ranked_on_the_demo(
    evalkit_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert invoke(["goldset", "import", str(DEMO), "--name", "demo"]) == 0
    corpus = str(DEMO / "corpus.jsonl")
    assert invoke(["index", "--corpus", corpus, "--collection", "demo"]) == 0
    assert (
        invoke(["index", "--kind", "bm25", "--corpus", corpus, "--out", str(tmp_path / "b")]) == 0
    )
    capsys.readouterr()
    run = ["run", "--goldset", "demo", "--k", "100", "--tag", "choice"]
    dense = _json(capsys, *run, "--collection", "demo")
    lexical = _json(capsys, *run, "--retriever", "bm25", "--option", f"index={tmp_path / 'b'}")
    assert lexical["retriever"] == "bm25"
    fused = _json(
        capsys, "fuse", dense["run_id"], lexical["run_id"], "--method", "rrf", "--tag", "choice"
    )
    fused_id = fused["run_id"]

    board = _json(capsys, "compare", "--tag", "choice", "-m", "ndcg@10", "-m", "recall@100")
    assert board["runs"] == [dense["run_id"], lexical["run_id"], fused_id]
    assert board["n_queries"] == 129
    standings = {s["run"]: s for s in board["metrics"]["ndcg@10"]["standings"]}
    # The fusion of the two is better than either, significantly after Holm's correction.
    assert standings[fused_id]["rank"] == 1
    assert standings[fused_id]["letters"] == "a"
    assert "a" not in standings[dense["run_id"]]["letters"]
    assert "a" not in standings[lexical["run_id"]]["letters"]
    assert standings[dense["run_id"]]["mean"] == pytest.approx(dense["aggregates"]["ndcg@10"])
    # Replay latency for the runs that replayed; none for the fusion, which retrieved nothing.
    assert board["latency"][dense["run_id"]]["p95_ms"] > 0
    assert board["latency"][lexical["run_id"]]["p95_ms"] > 0
    assert board["latency"][fused_id] is None
