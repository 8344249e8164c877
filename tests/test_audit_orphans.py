"""`evalkit audit` on a real Chroma collection that lost judged-relevant documents.

An index that lost 25 of a goldset's 120 relevant documents caps the recall of every query
that judged one: that is critical (exit 1 under the default --fail-on critical), not a
warning. One lost document is within the small share allowed
(``[audit] orphaned_relevant_critical_share``, default 1 %) and stays a warning.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from gate_inputs import write_goldset_files

from evalkit.cli import invoke
from evalkit.retrievers.chroma_client import open_chroma_client

N_QUERIES = 40
RELEVANT = [f"rel{q}_{r}" for q in range(N_QUERIES) for r in range(3)]
LOST = RELEVANT[::4][:25]


def _collection(home: Path, name: str, lost: list[str]) -> None:
    """A Chroma collection holding every relevant document and some others, then ``lost``
    deleted from it, as an outside process deleting documents does."""
    client = open_chroma_client(path=home / "chroma")
    collection = client.create_collection(name, metadata={"hnsw:space": "cosine"})
    ids = [*RELEVANT, *(f"other{i}" for i in range(30))]
    vectors = np.random.default_rng(0).standard_normal((len(ids), 8)).astype(np.float32)
    collection.add(ids=ids, embeddings=vectors, documents=[f"text of {i}" for i in ids])
    collection.delete(ids=lost)
    assert collection.count() == len(ids) - len(lost)


@pytest.fixture
def home(evalkit_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    folder = write_goldset_files(tmp_path / "goldset", N_QUERIES)
    assert invoke(["goldset", "import", "--format", "jsonl", str(folder), "--name", "kb"]) == 0
    _collection(evalkit_home, "lost-25", LOST)
    _collection(evalkit_home, "lost-1", LOST[:1])
    capsys.readouterr()
    return evalkit_home


def _audit(capsys: pytest.CaptureFixture[str], collection: str) -> tuple[int, dict[str, Any]]:
    code = invoke(
        [
            "audit",
            "--collection",
            collection,
            "--goldset",
            "kb",
            "--check",
            "orphans",
            "--format",
            "json",
        ]
    )
    return code, json.loads(capsys.readouterr().out)


def _orphans(data: dict[str, Any]) -> dict[str, Any]:
    (finding,) = [f for f in data["findings"] if f["kind"] == "orphaned_judgments"]
    return finding


def test_losing_more_than_a_small_share_of_relevant_documents_is_critical(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, data = _audit(capsys, "lost-25")
    assert code == 1
    assert data["failed"] is True
    assert data["max_severity"] == "critical"
    finding = _orphans(data)
    assert finding["severity"] == "critical"
    assert sorted(finding["doc_ids"]) == sorted(LOST)
    assert finding["value"] == pytest.approx(25 / 120)
    assert finding["threshold"] == 0.01
    assert "20.8% of its 120 relevant documents" in finding["message"]
    assert "orphaned_relevant_critical_share" in finding["message"]
    (orphans,) = [check for check in data["checks"] if check["name"] == "orphans"]
    assert orphans["measurements"]["orphaned_relevant_share"] == pytest.approx(25 / 120)

    code = invoke(["audit", "--collection", "lost-25", "--goldset", "kb", "--check", "orphans"])
    printed = " ".join(capsys.readouterr().out.split())
    assert code == 1
    assert "FAIL (fail on critical; worst finding: critical)" in printed


def test_one_lost_document_is_within_the_share_and_a_warning(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, data = _audit(capsys, "lost-1")
    assert code == 0
    finding = _orphans(data)
    assert finding["severity"] == "warning"
    assert finding["value"] == pytest.approx(1 / 120)
    assert "no more than the 1.0% allowed" in finding["message"]


def test_the_share_is_a_setting(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "evalkit.toml"
    config.write_text("[audit]\norphaned_relevant_critical_share = 0.25\n", encoding="utf-8")
    monkeypatch.setenv("EVALKIT_CONFIG", str(config))
    code, data = _audit(capsys, "lost-25")
    assert code == 0
    assert _orphans(data)["severity"] == "warning"
    assert _orphans(data)["threshold"] == 0.25

    config.write_text("[audit]\norphaned_relevant_critical_share = 0\n", encoding="utf-8")
    code, data = _audit(capsys, "lost-1")
    assert code == 1
    assert _orphans(data)["severity"] == "critical"

    config.write_text("[audit]\norphaned_relevant_critical_share = 1.5\n", encoding="utf-8")
    code = invoke(["audit", "--collection", "lost-1", "--goldset", "kb", "--check", "orphans"])
    error = capsys.readouterr().err
    assert code == 2
    assert "orphaned_relevant_critical_share" in error
    assert str(config) in error
