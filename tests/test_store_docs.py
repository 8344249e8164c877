"""docs/store.md against a real store: every documented table and column exists with the
documented type, every table is documented, and the example queries run read-only and
return what the stored runs hold."""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pytest

from evalkit.embedding import ModelFingerprint
from evalkit.goldset import Goldset, load_goldset
from evalkit.pipeline import evaluate_goldset
from evalkit.records import Query, QueryResult, ScoredDoc
from evalkit.records.requests import GoldsetRunRequest
from evalkit.store import Store
from evalkit.store.goldsets import save_goldset
from evalkit.store.runs import get_run, query_metrics, run_results

REPO_ROOT = Path(__file__).resolve().parents[1]
DOC = REPO_ROOT / "docs" / "store.md"
DEMO = REPO_ROOT / "goldsets" / "demo"
FAILING = ("q005", "q017", "q042")


class ShuffledJudgments:
    """Ranks each query's judged documents among distractors in a seeded random order, so
    two seeds give two runs that gain and lose relevant documents; fails ``fail``."""

    def __init__(self, goldset: Goldset, seed: int, fail: Sequence[str] = ()) -> None:
        self.judged: dict[str, list[str]] = {}
        for judgment in goldset.judgments:
            self.judged.setdefault(judgment.query_id, []).append(judgment.doc_id)
        self.seed = seed
        self.fail = set(fail)

    def retrieve(self, queries: Sequence[Query], k: int) -> list[QueryResult]:
        results = []
        for query in queries:
            if query.id in self.fail:
                results.append(QueryResult(query.id, (), 2.0, error=f"HTTP 503 for {query.id}"))
                continue
            rng = random.Random(f"{self.seed}:{query.id}")
            docs = [*self.judged.get(query.id, []), *(f"x{n:03d}" for n in range(k))]
            rng.shuffle(docs)
            ranked = tuple(ScoredDoc(d, 1.0 - i / 100, i + 1) for i, d in enumerate(docs[:k]))
            results.append(QueryResult(query.id, ranked, 1.0 + rng.random()))
        return results

    def describe(self) -> dict[str, Any]:
        return {"kind": "shuffled", "seed": self.seed}

    def index_fingerprint(self) -> str | None:
        return None

    def model_fingerprint(self) -> ModelFingerprint | None:
        return None


@dataclass(frozen=True)
class Built:
    path: Path
    older: str
    newer: str


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """A store holding the demo goldset and two runs of it (the newer one partial)."""
    path = tmp_path_factory.mktemp("store-docs") / "evalkit.duckdb"
    gold = load_goldset(DEMO, name="demo")
    with Store.open(path) as opened:
        save_goldset(opened, gold)
        older = evaluate_goldset(
            opened, gold, ShuffledJudgments(gold, 1), GoldsetRunRequest(k=20, answers=False)
        )
        newer = evaluate_goldset(
            opened,
            gold,
            ShuffledJudgments(gold, 2, FAILING),
            GoldsetRunRequest(k=20, answers=False),
        )
    assert (older.run.status, newer.run.status) == ("complete", "partial")
    return Built(path, older.run.run_id, newer.run.run_id)


def documented_tables() -> dict[str, list[tuple[str, str]]]:
    """Each table of the "Stable tables" section with its (column, type) rows, in order."""
    text = DOC.read_text(encoding="utf-8")
    section = text[text.index("## Stable tables") : text.index("## Internal tables")]
    tables: dict[str, list[tuple[str, str]]] = {}
    for heading in re.split(r"^### ", section, flags=re.MULTILINE)[1:]:
        name = re.match(r"`(\w+)`", heading)
        assert name is not None, heading[:40]
        rows = re.findall(r"^\| `(\w+)` \| ([A-Z\[\]]+) \| .+ \|$", heading, re.MULTILINE)
        assert rows, f"no column table under {name.group(1)}"
        tables[name.group(1)] = rows
    return tables


def internal_tables() -> set[str]:
    text = DOC.read_text(encoding="utf-8")
    section = text[text.index("## Internal tables") : text.index("## Example queries")]
    return set(re.findall(r"`(\w+)`", section))


def test_every_documented_column_exists_with_its_type_and_every_table_is_named(
    store: Built,
) -> None:
    con = duckdb.connect(str(store.path), read_only=True)
    actual: dict[str, list[tuple[str, str]]] = {}
    for table, column, data_type in con.execute(
        "SELECT table_name, column_name, data_type FROM information_schema.columns"
        " WHERE table_schema = 'main' ORDER BY table_name, ordinal_position"
    ).fetchall():
        actual.setdefault(table, []).append((column, data_type))
    con.close()

    documented = documented_tables()
    assert len(documented) >= 18
    for table, columns in documented.items():
        assert table in actual, f"docs/store.md documents {table}, which the store lacks"
        assert columns == actual[table], f"docs/store.md's columns of {table} are not the store's"
    internal = internal_tables()
    assert not internal & set(documented)
    assert set(actual) == set(documented) | internal, (
        "every table must be documented as stable or named as internal in docs/store.md"
    )


def example_queries() -> list[str]:
    text = DOC.read_text(encoding="utf-8")
    section = text[text.index("## Example queries") :]
    return re.findall(r"```sql\n(.*?)```", section, re.DOTALL)


def test_the_example_queries_run_read_only_and_return_the_stored_figures(store: Built) -> None:
    queries = example_queries()
    assert len(queries) == 4
    con = duckdb.connect(str(store.path), read_only=True)
    trend, worst, lost, health = (con.execute(sql).fetchall() for sql in queries)
    con.close()

    with Store.open(store.path, read_only=True) as opened:
        runs = [get_run(opened, run_id) for run_id in (store.older, store.newer)]
        newest_values = query_metrics(opened, store.newer)["ndcg@10"]
        results = {run_id: run_results(opened, run_id) for run_id in (store.older, store.newer)}

    assert [(row[2], row[4]) for row in trend] == [
        (run.run_id, pytest.approx(run.aggregates["ndcg@10"])) for run in runs
    ]
    assert [row[0] for row in trend] == ["demo", "demo"]

    expected = sorted(newest_values.items(), key=lambda item: (item[1], item[0]))[:10]
    assert [(row[0], row[2]) for row in worst] == [(q, pytest.approx(v)) for q, v in expected]
    gold = load_goldset(DEMO, name="demo")
    texts = {q.id: q.text for q in gold.queries}
    assert all(row[1] == texts[row[0]] for row in worst)

    relevant = {(j.query_id, j.doc_id): j.relevance for j in gold.judgments if j.relevance >= 1}

    def top10(run_id: str) -> set[tuple[str, str]]:
        frame = results[run_id]
        kept = frame[frame["rank"] <= 10]
        return set(zip(kept["query_id"], kept["doc_id"], strict=True))

    before, after = top10(store.older), top10(store.newer)
    expected_lost = {pair for pair in before - after if pair in relevant}
    assert {(row[0], row[1]) for row in lost} == expected_lost
    assert len(expected_lost) > 20
    assert all(row[2] == relevant[(row[0], row[1])] for row in lost)

    by_run = {row[0]: row for row in health}
    assert by_run[store.older][1:4] == ("complete", 129, 0)
    assert by_run[store.newer][1:4] == ("partial", 129, len(FAILING))
    assert all(1.0 <= row[4] <= row[5] <= 3.0 for row in health)
