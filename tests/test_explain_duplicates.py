"""Duplicates piling up in a real index are named as the cause of the regression they make.

The demo corpus is indexed in embedded Chroma with the real model and the demo goldset run;
then every document is indexed a second time under another id (an ingestion that is not
idempotent), the goldset run again and the collection audited, all through the CLI.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evalkit.cli import invoke

pytestmark = pytest.mark.slow

DEMO = Path(__file__).resolve().parents[1] / "goldsets" / "demo"


def _json(capsys: pytest.CaptureFixture[str], *args: str, expect: int = 0) -> dict:
    code = invoke([*args, "--format", "json"])
    captured = capsys.readouterr()
    assert code == expect, captured.err
    return json.loads(captured.out)


def test_copies_of_every_document_are_the_cause_explain_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EVALKIT_HOME", str(tmp_path / "home"))
    assert invoke(["goldset", "import", str(DEMO), "--name", "demo"]) == 0
    capsys.readouterr()
    _json(capsys, "index", "--corpus", str(DEMO / "corpus.jsonl"), "--collection", "dup")
    baseline = _json(capsys, "run", "--goldset", "demo", "--collection", "dup")["run_id"]

    doubled = tmp_path / "doubled.jsonl"
    with doubled.open("w", encoding="utf-8") as out:
        for line in (DEMO / "corpus.jsonl").read_text(encoding="utf-8").splitlines():
            document = json.loads(line)
            out.write(json.dumps(document) + "\n")
            out.write(json.dumps({**document, "id": f"{document['id']}-copy"}) + "\n")
    indexed = _json(capsys, "index", "--corpus", str(doubled), "--collection", "dup")
    assert (indexed["added"], indexed["total"]) == (330, 660)
    candidate = _json(capsys, "run", "--goldset", "demo", "--collection", "dup")["run_id"]
    audit = _json(capsys, "audit", "--collection", "dup", "--source", str(DEMO / "corpus.jsonl"))
    found = {f["kind"]: f for f in audit["findings"]}
    assert found["exact_duplicates"]["count"] == 660
    # The copies' ids were never in the source: duplicates of its documents, not documents
    # deleted from it.
    assert "not_in_source" not in found
    assert found["duplicates_of_source"]["count"] == 330
    assert found["duplicates_of_source"]["details"]["copies"]["d0001-copy"] == "d0001"

    explained = _json(capsys, "explain", candidate)

    assert explained["baseline"] == baseline
    assert explained["delta"] < -0.1
    top = explained["causes"][0]
    assert top["kind"] == "crowded_by_duplicates", [c["kind"] for c in explained["causes"]]
    # Each group in one place (its judged original's) wins back the whole drop: the
    # copies, not the rebuilt index, account for it.
    assert top["score"] > 0.95
    assert top["link"]["params"]["finding"] == "exact_duplicates"
    assert all(row["extra_copies"] for row in top["evidence"])
    assert top["statement"].endswith(
        f"of these copies store a source document's text under an id the source does not "
        f"have (audit {audit['audit_id']}, duplicates_of_source): the likely cause is the "
        "corpus ingested again under new ids without deduplication"
    )
    rebuilt = next(c for c in explained["causes"] if c["kind"] == "index_changed")
    assert rebuilt["score"] < 0.05
