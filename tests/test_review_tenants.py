"""The review queue keeps tenants apart: the same question asked by two tenants is two items,
an item never takes another tenant's (or another query's) documents, and the traffic volume
behind an item's priority counts its own tenant's records only."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from evalkit.cli import invoke
from evalkit.errors import GoldsetError, InputError
from evalkit.goldset import Goldset
from evalkit.goldset.review import review_item_id
from evalkit.pipeline import ingest_draft, publish_goldset, record_review
from evalkit.records import Judgment, Query
from evalkit.records.review import ReviewDocument, ReviewItem, ReviewOrigin, Verdict
from evalkit.store import Store
from evalkit.store.goldsets import load_stored_goldset, save_goldset
from evalkit.store.review import list_items, save_items
from evalkit.traffic import ingest_paths

QUESTION = "how do I reset my password"


def write_lines(path: Path, records: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")


def draft(folder: Path, query_id: str, tenant: str | None, doc_id: str) -> Path:
    folder.mkdir(parents=True)
    query: dict[str, Any] = {"id": query_id, "text": QUESTION}
    if tenant is not None:
        query["tenant"] = tenant
    write_lines(folder / "queries.jsonl", [query])
    write_lines(
        folder / "judgments.jsonl", [{"query_id": query_id, "doc_id": doc_id, "relevance": None}]
    )
    return folder


def queue(store: Store) -> dict[tuple[str, str | None], ReviewItem]:
    return {
        (queued.item.query.id, queued.item.query.tenant): queued.item
        for queued in list_items(store, goldset="rv")
    }


def legacy_item(query_id: str, tenant: str | None, doc_id: str) -> ReviewItem:
    """An item as queued before the tenant was part of an item's id."""
    return ReviewItem(
        item_id=review_item_id("rv", ReviewOrigin.traffic, QUESTION),
        goldset="rv",
        origin=ReviewOrigin.traffic,
        query=Query(id=query_id, text=QUESTION, tenant=tenant),
        documents=(ReviewDocument(doc_id=doc_id, text=""),),
        priority=0.35,
        reason="promoted traffic",
        provenance={},
    )


def test_the_same_question_of_two_tenants_is_two_items(tmp_path: Path) -> None:
    """Queued from two drafts, acme's and other's "reset my password" used to be one item:
    acme's query with other's document, which `goldset publish` made a judgment."""
    acme = draft(tmp_path / "dA", "a1", "acme", "acme-1")
    other = draft(tmp_path / "dB", "b1", "other", "other-1")
    with Store.open(tmp_path / "evalkit.duckdb") as store:
        assert ingest_draft(store, acme, goldset="rv").counts.added == 1
        assert ingest_draft(store, other, goldset="rv").counts.to_dict() == {
            "added": 1,
            "updated": 0,
            "kept": 0,
        }
        items = queue(store)
        assert [d.doc_id for d in items["a1", "acme"].documents] == ["acme-1"]
        assert [d.doc_id for d in items["b1", "other"].documents] == ["other-1"]
        assert items["a1", "acme"].item_id != items["b1", "other"].item_id
        # Reviewed, acme's item no longer drops other's question: other's is an item too.
        record_review(store, items["a1", "acme"].item_id, reviewer="ann",
                      verdict=Verdict.accept, grades={"acme-1": 3})  # fmt: skip
        third = draft(tmp_path / "dC", "c1", "third", "third-1")
        assert ingest_draft(store, third, goldset="rv").counts.added == 1
        assert len(queue(store)) == 3
        # An untenanted query keeps the id it had before tenants were part of it.
        plain = draft(tmp_path / "dD", "d1", None, "d-1")
        ingest_draft(store, plain, goldset="rv")
        assert queue(store)["d1", None].item_id == review_item_id(
            "rv", ReviewOrigin.traffic, QUESTION
        )


def test_an_item_queued_for_another_tenant_or_query_is_a_conflict_not_a_merge(
    tmp_path: Path,
) -> None:
    with Store.open(tmp_path / "evalkit.duckdb") as store:
        # Queued before the upgrade: acme's query under the id an untenanted one takes now.
        save_items(store, [legacy_item("a1", "acme", "acme-1")])
        plain = draft(tmp_path / "plain", "p1", None, "p-1")
        with pytest.raises(InputError) as refused:
            ingest_draft(store, plain, goldset="rv")
        message = str(refused.value)
        assert "'a1' of tenant 'acme'" in message
        assert "'p1' of no tenant" in message
    with Store.open(tmp_path / "fresh.duckdb") as store:
        ingest_draft(store, draft(tmp_path / "dA", "a1", "acme", "acme-1"), goldset="rv")
        # The same tenant's question under another query id (a later window's record)
        # refreshes its item, as an untenanted one does: one question, one tenant's documents.
        again = ingest_draft(store, draft(tmp_path / "dX", "x9", "acme", "acme-9"), goldset="rv")
        assert again.counts.to_dict() == {"added": 0, "updated": 1, "kept": 0}
        items = queue(store)
        assert [tenant for _, tenant in items] == ["acme"]


def test_a_tenanted_draft_queued_before_the_upgrade_is_not_queued_again(tmp_path: Path) -> None:
    acme = draft(tmp_path / "dA", "a1", "acme", "acme-1")
    with Store.open(tmp_path / "evalkit.duckdb") as store:
        old = legacy_item("a1", "acme", "acme-1")
        save_items(store, [old])
        record_review(store, old.item_id, reviewer="ann", verdict=Verdict.accept,
                      grades={"acme-1": 2})  # fmt: skip
        # Another query of acme's asking the same question since is an item of its own.
        ingest_draft(store, draft(tmp_path / "dX", "x9", "acme", "acme-9"), goldset="rv")
        again = ingest_draft(store, acme, goldset="rv")
        assert again.counts.to_dict() == {"added": 0, "updated": 0, "kept": 1}
        assert again.item_ids == (old.item_id,)
        assert queue(store)["a1", "acme"].item_id == old.item_id
        assert len(queue(store)) == 2


def test_the_traffic_volume_counts_the_items_own_tenant(tmp_path: Path) -> None:
    log = tmp_path / "traffic.jsonl"
    asked = [("acme", 3), ("other", 40), (None, 2)]
    write_lines(
        log,
        [
            {"query_id": f"{tenant}-{n}", "timestamp": "2026-11-21T08:00:00Z",
             "text": QUESTION, "tenant": tenant}
            for tenant, times in asked
            for n in range(times)
        ],
    )  # fmt: skip
    with Store.open(tmp_path / "evalkit.duckdb") as store:
        ingest_paths(store, [log])
        ingest_draft(store, draft(tmp_path / "dA", "a1", "acme", "acme-1"), goldset="rv")
        ingest_draft(store, draft(tmp_path / "dP", "p1", None, "p-1"), goldset="rv")
        items = queue(store)
    assert items["a1", "acme"].provenance["traffic_volume"] == "3"
    assert "asked 3 times in traffic" in items["a1", "acme"].reason
    assert items["p1", None].provenance["traffic_volume"] == "2"


def test_the_traffic_volume_counts_the_same_question_in_any_case_and_spacing(
    tmp_path: Path,
) -> None:
    """Traffic counts "How do I reset my  PASSWORD" as the query acme asked three times
    already (one query_key); the item's volume, behind its priority, counted one spelling."""
    spellings = [QUESTION, QUESTION, "How do I reset my  PASSWORD", f" {QUESTION.upper()}"]
    write_lines(
        tmp_path / "traffic.jsonl",
        [
            {"query_id": f"r{n}", "timestamp": "2026-11-21T08:00:00Z", "text": text,
             "tenant": "acme"}
            for n, text in enumerate(spellings)
        ],
    )  # fmt: skip
    with Store.open(tmp_path / "evalkit.duckdb") as store:
        ingest_paths(store, [tmp_path / "traffic.jsonl"])
        ingest_draft(store, draft(tmp_path / "dA", "a1", "acme", "acme-1"), goldset="rv")
        items = queue(store)
    assert items["a1", "acme"].provenance["traffic_volume"] == "4"
    assert "asked 4 times in traffic" in items["a1", "acme"].reason


def test_review_show_says_whose_question_it_is(
    evalkit_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    acme = draft(tmp_path / "dA", "a1", "acme", "acme-1")
    assert invoke(["review", "add", str(acme), "--goldset", "rv", "-o", "json"]) == 0
    item_id = json.loads(capsys.readouterr().out)["items"][0]
    assert invoke(["review", "show", item_id]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert any("tenant" in row and "acme" in row for row in rows)


def test_a_query_id_the_goldset_asks_for_another_tenant_is_refused(tmp_path: Path) -> None:
    """Acme's draft query a1 asks what the goldset's a1 asks, but for tenant other: its
    grades went into other's query, judging a document other's retrieval never sees."""
    goldset = Goldset.build(
        "rv", [Query("a1", QUESTION, tenant="other")], [Judgment("a1", "other-1", 3)]
    )
    acme = draft(tmp_path / "dA", "a1", "acme", "acme-1")
    with Store.open(tmp_path / "evalkit.duckdb") as store:
        save_goldset(store, goldset)
        with pytest.raises(GoldsetError) as refused:
            ingest_draft(store, acme, goldset="rv")
        assert list_items(store, goldset="rv") == []
    assert (
        f"query id 'a1' is already another query of goldset 'rv' (version {goldset.version}: "
        f"'{QUESTION}' of tenant 'other', the draft's of tenant 'acme'); give the draft's query "
        "another id"
    ) in str(refused.value)
    # Queued before the goldset asked a1 for other (or before this check): publish refuses.
    with Store.open(tmp_path / "fresh.duckdb") as store:
        ingest_draft(store, acme, goldset="rv")
        save_goldset(store, goldset)
        (item,) = queue(store).values()
        record_review(store, item.item_id, reviewer="ann", verdict=Verdict.accept,
                      grades={"acme-1": 3})  # fmt: skip
        with pytest.raises(GoldsetError) as unpublished:
            publish_goldset(store, "rv")
        assert load_stored_goldset(store, "rv").judgments == goldset.judgments
    assert (
        f"item {item.item_id} asks '{QUESTION}' as query 'a1', which the goldset (or another "
        "item) asks for tenant 'other', not tenant 'acme'; reject one of them"
    ) in str(unpublished.value)
