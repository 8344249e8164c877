"""A team with only a corpus, end to end through the commands: generate a draft goldset from
chunked SciFact abstracts (a loopback LLM writes the questions) into the review queue, review
it, publish a version, re-chunk the corpus into single sentences, and remap: every judgment
still holds, on the new chunks that hold its evidence."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from question_writer import WritingJudge, writing_judge
from test_goldset_generate import chunk_corpus

from evalkit.cli import invoke
from evalkit.store import Store
from evalkit.store.goldsets import list_goldsets, load_stored_goldset

pytestmark = [pytest.mark.slow, pytest.mark.shared_data]

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")


def sentence_corpus(sources: dict[str, str], target: Path) -> None:
    """The same sources cut into one chunk per sentence, with new ids and offsets."""
    lines = []
    for source_id, text in sources.items():
        starts = [0, *(m.end() for m in _SENTENCE_END.finditer(text))]
        for number, (start, end) in enumerate(zip(starts, [*starts[1:], len(text)], strict=True)):
            chunk = text[start:end].rstrip()
            lines.append(
                {
                    "id": f"{source_id}/s{number}",
                    "text": chunk,
                    "source_id": source_id,
                    "start": start,
                    "end": start + len(chunk),
                }
            )
    target.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")


def run_json(argv: list[str], capsys: pytest.CaptureFixture[str], code: int = 0) -> object:
    assert invoke([*argv, "-o", "json"]) == code, capsys.readouterr().err
    return json.loads(capsys.readouterr().out)


def test_generate_review_publish_rechunk_and_remap_keep_every_judgment(
    shared_data: Path,
    evalkit_home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    chunks = tmp_path / "chunks.jsonl"
    sources = chunk_corpus(shared_data, chunks, 6, most_chunks=3)
    draft = tmp_path / "draft"
    with writing_judge(WritingJudge()) as judge:
        monkeypatch.setenv("EVALKIT_JUDGE_BASE_URL", judge.url)
        monkeypatch.setenv("EVALKIT_JUDGE_MODEL", "writer-1")
        monkeypatch.setenv("EVALKIT_JUDGE_RETRY_BACKOFF", "0")
        generated = run_json(
            [
                "goldset",
                "generate",
                "--corpus",
                str(chunks),
                "--n",
                "6",
                "--mix",
                "factoid=1",
                "--out",
                str(draft),
                "--queue",
                "life",
            ],
            capsys,
        )
    assert isinstance(generated, dict)
    assert generated["generated"] >= 4
    assert generated["queued"]["added"] == generated["generated"]
    items = run_json(["review", "list", "--goldset", "life"], capsys)
    assert isinstance(items, list)
    assert len(items) == generated["generated"]
    for item in items:
        grades = [f"{doc['doc_id']}={doc['suggested_grade'] or 0}" for doc in item["documents"]]
        args = ["review", "grade", item["item_id"], "--reviewer", "ann"]
        for grade in grades:
            args += ["--grade", grade]
        run_json(args, capsys)
    published = run_json(["goldset", "publish", "life"], capsys)
    assert isinstance(published, dict)
    assert published["new_version"]

    store_path = evalkit_home / "evalkit.duckdb"
    with Store.open(store_path, read_only=True) as store:
        before = load_stored_goldset(store, "life")
    relevant = [j for j in before.judgments if j.relevance > 0]
    assert len(relevant) >= len(items)
    assert all(j.span is not None and j.span.source_id in sources for j in relevant)

    sentences = tmp_path / "sentences.jsonl"
    sentence_corpus(sources, sentences)
    remapped = run_json(
        ["goldset", "remap", "life", "--corpus", str(sentences), "--old-corpus", str(chunks)],
        capsys,
    )
    assert isinstance(remapped, dict)
    with Store.open(store_path, read_only=True) as store:
        after = load_stored_goldset(store, "life")
        assert len(list_goldsets(store, "life")) == 2
    assert after.version != before.version
    assert {q.id for q in after.queries} == {q.id for q in before.queries}
    chunk_of = {
        line["id"]: line
        for line in map(json.loads, sentences.read_text(encoding="utf-8").splitlines())
    }
    for judgment in relevant:
        span = judgment.span
        assert span is not None
        assert span.start is not None
        assert span.end is not None
        assert sources[span.source_id][span.start : span.end] == span.text
        mapped = [
            j
            for j in after.judgments
            if j.query_id == judgment.query_id
            and chunk_of[j.doc_id]["source_id"] == span.source_id
            and j.relevance == judgment.relevance
        ]
        assert mapped, judgment
        # Every new chunk it reached overlaps the evidence.
        for new in mapped:
            line = chunk_of[new.doc_id]
            assert line["start"] < span.end
            assert span.start < line["end"]
