"""A drill of the user's own monitoring (``evalkit.scheduler.drill``), end to end.

The demo corpus in embedded Chroma with the bundled MiniLM, the demo goldset stored, and an
evalkit.toml whose nightly goldset_replay job reads the collection and whose
precision_regression rule (Page-Hinkley) watches nDCG@10. Quiet cycles raise nothing; the
deletion of a third of the relevant documents is caught on its first cycle and resolves within
six cycles of the restore (4 here: Page-Hinkley's memory of the drop); the live collection is
the same after the drill; its runs stay in the drill's store.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from demo_index import cached_minilm, demo_documents, demo_goldset

from evalkit.config import load_settings
from evalkit.drill.scratch import DRILL_PREFIX
from evalkit.retrievers.chroma_client import close_client, contents_fingerprint, open_chroma_client
from evalkit.retrievers.indexing import index_corpus
from evalkit.scheduler.drill import DrillRequest, run_drill
from evalkit.store import Store
from evalkit.store.goldsets import save_goldset

CONFIG = """
[[jobs]]
name = "nightly"
kind = "goldset_replay"
goldset = "demo"
collection = "demo-kb"
k = 10
measures = ["ndcg@10", "recall@10"]
cron = "0 2 * * *"

[[alerts.rules]]
name = "ndcg-drop"
kind = "precision_regression"
goldset = "demo"
measures = ["ndcg@10"]
method = "page_hinkley"
warmup = 2
"""


@pytest.mark.slow
def test_a_deletion_is_caught_on_its_first_cycle_and_the_live_collection_is_untouched(
    evalkit_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = evalkit_home.parent / "evalkit.toml"
    config.write_text(CONFIG, encoding="utf-8")
    monkeypatch.setenv("EVALKIT_CONFIG", str(config))
    user = load_settings()
    client = open_chroma_client(path=user.resolved_chroma_path)
    index_corpus(client, demo_documents(), cached_minilm(), collection_name="demo-kb")
    before = contents_fingerprint(client.get_collection("demo-kb", embedding_function=None))
    close_client(client)
    with Store.open(user.resolved_store_path) as store:
        save_goldset(store, demo_goldset())

    report = run_drill(
        user,
        DrillRequest(incidents=(("deletion", 0.34),), quiet_cycles=3, cycles=6, drill_id="t1"),
    )

    assert report.false_alarms == ()
    [deletion] = report.incidents
    assert deletion.injected.incident == "deletion"
    assert deletion.first_alert == ("ndcg-drop", 1), deletion
    # Page-Hinkley remembers the drop: the restored level takes a few runs to clear it.
    assert deletion.resolved_after is not None
    assert 1 <= deletion.resolved_after <= 6
    assert report.exit_code == 0
    assert report.copies == {"demo-kb": f"{DRILL_PREFIX}t1-demo-kb"}

    client = open_chroma_client(path=user.resolved_chroma_path)
    try:
        assert [c.name for c in client.list_collections()] == ["demo-kb"]
        live = client.get_collection("demo-kb", embedding_function=None)
        assert contents_fingerprint(live) == before
    finally:
        close_client(client)
    with Store.open(user.resolved_store_path, read_only=True) as store:
        assert store.fetch("SELECT count(*) FROM runs")[0][0] == 0, "no drill run in the live store"
    with Store.open(Path(report.store), read_only=True) as store:
        # 3 quiet cycles, 1 with the incident, then the cycles until it resolved.
        runs = store.fetch("SELECT count(*) FROM runs")[0][0]
        assert runs == 3 + 1 + deletion.resolved_after
