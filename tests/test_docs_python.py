"""The Python examples of the docs run as written: an API that moved on would otherwise
leave the page a user copies from wrong (`replay_traffic_window(..., k=10)` was)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from evalkit.records import Query, QueryResult
from evalkit.retrievers.base import ranked_docs

DOCS = Path(__file__).resolve().parents[1] / "docs"


def python_block(page: str, containing: str) -> str:
    """The ``python`` code block of ``docs/page`` that holds ``containing``."""
    blocks = re.findall(r"```python\n(.*?)```", (DOCS / page).read_text(), re.DOTALL)
    (block,) = [block for block in blocks if containing in block]
    return block


class _Logged:
    """Answers every query with two documents of its tenant, as a retriever of production
    would (it filters by the ``tenant`` metadata key)."""

    def retrieve(self, queries: list[Query], k: int) -> list[QueryResult]:
        return [
            QueryResult(q.id, ranked_docs(["d1", "d2"][:k], [0.9, 0.5][:k]), 1.0) for q in queries
        ]

    def describe(self) -> dict[str, Any]:
        return {"kind": "logged", "where_key": "tenant"}

    def index_fingerprint(self) -> str | None:
        return None

    def model_fingerprint(self) -> None:
        return None


def test_the_traffic_page_s_python_example_runs(
    evalkit_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".evalkit").mkdir()
    (tmp_path / "logs").mkdir()
    lines = [
        {
            "query_id": f"q{n}",
            "timestamp": "2026-11-21T10:00:00Z",
            "text": f"question {n} from a{n % 2}@example.com",
            "tenant": f"t{n % 2}",
            "results": ["d1", "d3"],
        }
        for n in range(40)
    ]
    (tmp_path / "logs" / "app.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    # The page opens production's Chroma index; here a retriever answering as it would.
    from evalkit import embedding
    from evalkit.retrievers import ChromaRetriever

    opened: list[tuple[Any, ...]] = []

    def embedded(cls: type, *args: Any, **options: Any) -> _Logged:
        opened.append((*args, options))
        return _Logged()

    monkeypatch.setattr(ChromaRetriever, "embedded", classmethod(embedded))
    monkeypatch.setattr(embedding, "load_embedder", lambda: "embedder")
    scope: dict[str, Any] = {}
    exec(python_block("traffic.md", "replay_traffic_window"), scope)
    assert opened == [(".evalkit/chroma", "support", "embedder", {"where_key": "tenant"})]
    assert scope["report"].records_added == 40
    assert scope["outcome"].run.status == "complete"
    assert (tmp_path / "drafts" / "2026-11-21" / "queries.jsonl").is_file()
