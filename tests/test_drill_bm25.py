"""A drill on a BM25 index (bm25s): the copy is built from the corpus the index was built
from, checked against the index's fingerprint, and lives in the drill's folder; the
incidents that change texts are caught, those that need vectors or ANN settings are
reported as not injectable, and the live index folder is byte for byte the same after it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from demo_index import DEMO_DIR, demo_documents, demo_goldset
from test_drill_run import CONFIG, on_the_retriever_table

from evalkit.config import load_settings
from evalkit.drill.config import bm25_indexes_named, pointed_at_copies
from evalkit.drill.scratch import DRILL_PREFIX
from evalkit.errors import ConfigError
from evalkit.retrievers.bm25_index import build_bm25_index
from evalkit.scheduler.drill import DrillRequest, run_drill
from evalkit.store import Store
from evalkit.store.goldsets import save_goldset

BM25_TABLE = '\n[retriever]\nkind = "bm25"\noptions = {{ index = "{index}" }}\n'


def _folder_digest(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


@pytest.fixture
def bm25_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The demo corpus in a BM25 index, the demo goldset stored, and an evalkit.toml whose
    nightly replay reads the index through ``[retriever]``."""
    index = tmp_path / "demo-bm25"
    build_bm25_index(demo_documents(), index)
    config = tmp_path / "evalkit.toml"
    config.write_text(
        BM25_TABLE.format(index=index) + on_the_retriever_table(CONFIG), encoding="utf-8"
    )
    monkeypatch.setenv("EVALKIT_CONFIG", str(config))
    monkeypatch.setenv("EVALKIT_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    with Store.open(load_settings().resolved_store_path) as store:
        save_goldset(store, demo_goldset())
    return index


def test_the_index_a_bm25_job_reads_is_found_and_pointed_at_its_copy() -> None:
    tables = {
        "retriever": {"kind": "bm25", "options": {"index": "live", "k1": 1.2}},
        "jobs": [
            {"name": "a", "kind": "goldset_replay"},
            {"name": "b", "retriever": "bm25", "retriever_options": {"index": "other"}},
            {"name": "c", "collection": "kb"},
            {"name": "d", "kind": "drift_check", "stream": "queries"},
        ],
    }
    assert bm25_indexes_named(tables) == {"live", "other"}
    rewritten = pointed_at_copies(tables, copies={"live": "/d/copy", "other": "/d/copy2"})
    assert rewritten["retriever"] == {"kind": "bm25", "options": {"index": "/d/copy", "k1": 1.2}}
    a, b, c, d = rewritten["jobs"]
    assert a == {"name": "a", "kind": "goldset_replay"}, "it reads [retriever]'s, the copy"
    assert b["retriever_options"] == {"index": "/d/copy2"}
    assert c == {"name": "c", "collection": "kb"}
    assert d == {"name": "d", "kind": "drift_check", "stream": "queries"}, "no retriever keys"
    assert tables["retriever"]["options"] == {"index": "live", "k1": 1.2}, "tables unchanged"


@pytest.mark.slow
def test_a_drill_of_a_bm25_index_catches_what_changes_texts_and_leaves_the_index_unchanged(
    bm25_home: Path,
) -> None:
    before = _folder_digest(bm25_home)
    report = run_drill(
        load_settings(),
        DrillRequest(
            incidents=(
                ("deletion", 0.34),
                ("stale_content", 0.34),
                ("model_mismatch", None),
                ("ann_degradation", None),
            ),
            quiet_cycles=2,
            cycles=2,
            recovery_cycles=6,
            corpus=DEMO_DIR / "corpus.jsonl",
            drill_id="lexical",
        ),
    )

    folder = Path(report.folder)
    assert report.copies == {
        str(bm25_home): str(folder / "bm25" / f"{DRILL_PREFIX}lexical-demo-bm25")
    }
    assert report.false_alarms == ()
    deletion, stale, mismatch, ann = report.incidents
    for caught in (deletion, stale):
        assert caught.first_alert == ("ndcg-drop", 1), report.to_markdown()
        assert caught.resolved_after is not None, caught
        before_ndcg, after_ndcg = caught.effect["ndcg@10"]
        assert before_ndcg is not None
        assert after_ndcg is not None
        assert after_ndcg < before_ndcg
    # As on Chroma with no audit job: the rebuilt index is named, then the missing documents.
    assert (deletion.top_cause, deletion.cause_rank) == ("index_changed", 2), deletion
    assert mismatch.gap is not None
    assert mismatch.gap.startswith("not injectable: the index holds no vectors"), mismatch.gap
    assert ann.gap is not None
    assert ann.gap.startswith("not injectable: a BM25 index searches exactly"), ann.gap
    assert not (folder / "bm25").exists(), "the copies went with the drill"
    assert _folder_digest(bm25_home) == before


def test_a_bm25_drill_needs_the_corpus_the_index_was_built_from(
    bm25_home: Path, tmp_path: Path
) -> None:
    request = DrillRequest(incidents=(("deletion", 0.34),), quiet_cycles=1, cycles=1)
    with pytest.raises(ConfigError, match="give --corpus, the corpus it was built from"):
        run_drill(load_settings(), request)

    other = tmp_path / "other.jsonl"
    lines = (DEMO_DIR / "corpus.jsonl").read_text(encoding="utf-8").splitlines()
    other.write_text("\n".join(lines[:-1]) + "\n", encoding="utf-8")
    request = DrillRequest(
        incidents=(("deletion", 0.34),), quiet_cycles=1, cycles=1, corpus=other, drill_id="x"
    )
    with pytest.raises(ConfigError, match=f"--corpus {other} is not the corpus BM25 index"):
        run_drill(load_settings(), request)
    assert not list((tmp_path / "home").rglob(f"{DRILL_PREFIX}*")), "no copy is left"
