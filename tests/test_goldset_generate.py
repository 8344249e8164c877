"""``evalkit goldset generate``: questions written from SciFact passages by a loopback
OpenAI-compatible endpoint, spread over clusters, anchored to spans of their sources."""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import resource
import signal
import subprocess
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from evalkit_process import EVALKIT, fresh_env, output_once_ended, run_evalkit
from question_writer import WritingJudge, first_sentence, writing_judge

from evalkit.cli import invoke
from evalkit.cli._output import with_flags
from evalkit.config import JudgeSettings
from evalkit.embedding import load_embedder
from evalkit.errors import ConfigError, InputError, JudgeError
from evalkit.goldset.drafts import read_draft
from evalkit.judging.coverage import (
    allocate_kinds,
    cluster_count,
    parse_mix,
    plan_tasks,
)
from evalkit.judging.generate import (
    PROMPT_VERSION,
    MalformedReplyError,
    QuestionKind,
    QuestionWriter,
    content_words,
    locate_quote,
    near_duplicates,
    parse_reply,
    word_overlap,
)
from evalkit.pipeline import GenerationOutcome, generate_goldset
from evalkit.records import Document
from evalkit.records.requests import GenerationRequest
from evalkit.records.review import ReviewOrigin
from evalkit.store import Store

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")


def chunk_corpus(
    shared_data: Path, target: Path, n_sources: int, *, most_chunks: int = 100
) -> dict[str, str]:
    """Write the first ``n_sources`` SciFact abstracts as chunks of two sentences (at most
    ``most_chunks`` of each), each with its source and offsets, to ``target``; returns the
    sources' texts by id."""
    sources: dict[str, str] = {}
    lines = []
    with (shared_data / "beir_scifact" / "corpus.jsonl").open(encoding="utf-8") as handle:
        for raw in handle:
            record = json.loads(raw)
            text = record["text"]
            if len(text) < 400:
                continue
            source_id = f"S{record['_id']}"
            sources[source_id] = text
            starts = [0, *(m.end() for m in _SENTENCE_END.finditer(text))]
            bounds = [*starts[::2], len(text)]
            pairs = list(itertools.pairwise(bounds))[:most_chunks]
            for number, (start, end) in enumerate(pairs):
                chunk = text[start:end].rstrip()
                lines.append(
                    {
                        "id": f"{source_id}-{number}",
                        "title": record["title"],
                        "text": chunk,
                        "source_id": source_id,
                        "start": start,
                        "end": start + len(chunk),
                    }
                )
            if len(sources) == n_sources:
                break
    target.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return sources


def read_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def corpus(
    shared_data: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, str]]:
    """Three chunks of each of 14 SciFact abstracts, and the abstracts."""
    path = tmp_path_factory.mktemp("generate") / "chunks.jsonl"
    return path, chunk_corpus(shared_data, path, 14, most_chunks=3)


@pytest.fixture(scope="module")
def small(
    shared_data: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, str]]:
    """Three chunks of each of 6 SciFact abstracts (fast to embed), and the abstracts."""
    path = tmp_path_factory.mktemp("generate") / "small.jsonl"
    return path, chunk_corpus(shared_data, path, 6, most_chunks=3)


@pytest.fixture(scope="module")
def embedder() -> Any:
    return load_embedder()


def settings_for(judge: WritingJudge, **extra: Any) -> JudgeSettings:
    return JudgeSettings(
        base_url=judge.url, model="writer-1", retry_backoff=0, max_retries=0, **extra
    )


def generate(
    corpus: Path,
    out: Path,
    judge: WritingJudge,
    embedder: Any,
    replies: Store | None = None,
    **options: Any,
) -> GenerationOutcome:
    request = GenerationRequest(**{"n": 20, "seed": 3, **options})
    writer = QuestionWriter(settings_for(judge))
    return generate_goldset(corpus, out, request, writer=writer, embedder=embedder, replies=replies)


DRAFT_DATA = ("queries.jsonl", "judgments.jsonl", "corpus.jsonl", "candidates.jsonl")


# --- the pure pieces --------------------------------------------------------------------


def test_a_quote_is_found_exactly_then_with_its_whitespace_normalised() -> None:
    text = "Alpha beta.\nGamma  delta epsilon. Zeta."
    assert locate_quote(text, "Gamma  delta") == (12, 24)
    start, end = locate_quote(text, "beta. Gamma delta") or (0, 0)
    assert text[start:end] == "beta.\nGamma  delta"
    assert locate_quote(text, "gamma delta") is None
    assert locate_quote(text, "   ") is None


def test_word_overlap_counts_the_questions_content_words_found_in_the_passage() -> None:
    assert content_words("What is the effect of Aspirin on the heart?") == {
        "effect",
        "aspirin",
        "heart",
    }
    passage = "Aspirin lowers the risk of heart attacks."
    assert word_overlap("What is the effect of aspirin on the heart?", [passage]) == (
        pytest.approx(2 / 3)
    )
    assert word_overlap("Does a daily pill protect cardiac health?", [passage]) == 0.0
    assert word_overlap("What is it?", [passage]) == 0.0


def test_a_reply_must_hold_a_question_and_quotes() -> None:
    reply = '```json\n{"question": " Why? ", "answer": null, "evidence": "a quote"}\n```'
    assert parse_reply(reply) == ("Why?", "", ("a quote",))
    assert parse_reply('Sure: {"question": "Q", "answer": "A", "evidence": ["x", "y"]} ok')[2] == (
        "x",
        "y",
    )
    for bad in (
        "no json here",
        "[1, 2]",
        '{"question": "", "evidence": ["x"]}',
        '{"question": "Q", "evidence": []}',
        '{"question": "Q", "evidence": ["x", 3]}',
        '{"question": "Q", "answer": 4, "evidence": ["x"]}',
    ):
        with pytest.raises(MalformedReplyError):
            parse_reply(bad)


def test_the_mix_is_parsed_and_its_counts_add_up_to_n() -> None:
    mix = parse_mix("factoid=0.5, paraphrase=0.3,multi=0.2")
    assert allocate_kinds(mix, 10) == {"factoid": 5, "paraphrase": 3, "multi": 2}
    assert sum(allocate_kinds(mix, 7).values()) == 7
    assert allocate_kinds(parse_mix("factoid=1,multi=1"), 3) == {"factoid": 2, "multi": 1}
    for bad in ("factoid=x", "opinion=1", "factoid=0", "factoid=1,factoid=2", "factoid=-1"):
        with pytest.raises(ConfigError):
            parse_mix(bad)
    assert cluster_count(60, 20) == 10
    assert cluster_count(9, 20) == 3
    assert cluster_count(2, 5) == 1


def test_the_plan_spreads_questions_over_clusters_under_the_per_source_limit() -> None:
    rng = np.random.default_rng(0)
    documents = [
        Document(f"d{i}", f"text {i}", source_id=f"s{i // 3}", start=0, end=6) for i in range(30)
    ]
    vectors = rng.normal(size=(30, 8))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    labels = np.arange(30) % 5
    counts = {QuestionKind.factoid: 8, QuestionKind.paraphrase: 4, QuestionKind.multi: 3}
    plan = plan_tasks(documents, vectors, labels, counts, max_per_source=2, seed=1)
    assert len(plan.tasks) == 15
    assert not plan.unplaced
    assert Counter(task.cluster for task in plan.tasks) == dict.fromkeys(range(5), 3)
    uses = Counter(p.source_id for task in plan.tasks for p in task.passages)
    assert max(uses.values()) <= 2
    for task in plan.tasks:
        assert {labels[int(p.id[1:])] for p in task.passages} == {task.cluster}
        if task.kind is QuestionKind.multi:
            assert task.passages[0].source_id != task.passages[1].source_id
    tight = plan_tasks(
        documents, vectors, labels, {QuestionKind.factoid: 30}, max_per_source=1, seed=1
    )
    assert len(tight.tasks) == 10
    assert tight.unplaced == {QuestionKind.factoid: 20}


def test_near_duplicates_keep_the_first_of_each_group() -> None:
    vectors = np.array([[1.0, 0.0], [0.999, 0.0447], [0.0, 1.0], [0.3, 0.954]])
    assert near_duplicates(vectors, 0.9) == [None, 0, None, 2]
    assert near_duplicates(vectors, 0.9999) == [None, None, None, None]


# --- against the loopback endpoint ------------------------------------------------------


@pytest.mark.slow
def test_a_draft_covers_every_cluster_with_spans_in_the_source_text(
    corpus: tuple[Path, dict[str, str]], embedder: Any, tmp_path: Path
) -> None:
    path, sources = corpus
    out = tmp_path / "draft"
    with writing_judge(WritingJudge(respace=True)) as judge:
        outcome = generate(path, out, judge, embedder, max_per_source=2)
    assert outcome.n_generated == 20
    assert not outcome.dropped
    assert outcome.clusters_covered == outcome.n_clusters == 10
    assert outcome.kinds == {"factoid": 10, "paraphrase": 6, "multi": 4}
    assert outcome.calls == judge.requests == 20
    assert outcome.tokens == 20 * 120
    assert sorted(p.name for p in out.iterdir()) == [
        "README.md",
        "candidates.jsonl",
        "corpus.jsonl",
        "judgments.jsonl",
        "queries.jsonl",
    ]
    queries = read_lines(out / "queries.jsonl")
    judgments = read_lines(out / "judgments.jsonl")
    candidates = read_lines(out / "candidates.jsonl")
    chunks = {line["id"]: line for line in read_lines(out / "corpus.jsonl")}
    assert len(queries) == len(candidates) == 20
    for query in queries:
        kind = next(tag for tag in query["tags"] if tag.startswith("kind:"))
        assert query["tags"] == [
            "generated",
            "generator:writer-1",
            f"prompt:{PROMPT_VERSION}",
            kind,
        ]
    for judgment in judgments:
        assert judgment["relevance"] == 2
        source = sources[judgment["source_id"]]
        # The quote was respaced: the span is the passage's own text, at source offsets.
        assert source[judgment["start"] : judgment["end"]] == judgment["text"]
        chunk = chunks[judgment["doc_id"]]
        assert chunk["source_id"] == judgment["source_id"]
        assert chunk["start"] <= judgment["start"] < judgment["end"] <= chunk["end"]
        assert judgment["text"] == first_sentence(chunk["text"])
    per_source = Counter(s for line in candidates for s in line["source_ids"])
    assert max(per_source.values()) <= 2
    assert outcome.sources_used == len(per_source)
    multi = [line for line in candidates if line["kind"] == "multi"]
    assert len(multi) == 4
    for line in multi:
        assert len(line["source_ids"]) == 2
        assert {d["source_id"] for d in line["documents"]} == set(line["source_ids"])
    assert {line["origin"] for line in candidates} == {"generated"}
    paraphrases = [line for line in candidates if line["kind"] == "paraphrase"]
    assert all(line["word_overlap"] <= 0.5 for line in paraphrases)
    assert "writer-1" in (out / "README.md").read_text(encoding="utf-8")
    # The review queue reads the draft as generated items with the generator's suggestions.
    draft = read_draft(out)
    assert {item.origin for item in draft.queries} == {ReviewOrigin.generated}
    for item in draft.queries:
        assert item.provenance["generator"] == "writer-1"
        for document in item.documents:
            assert document.suggested_grade == 2
            assert document.suggested_by == "generator:writer-1"
            assert document.span is not None
            assert (
                document.span.text
                == sources[document.span.source_id][document.span.start : document.span.end]
            )
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


@pytest.mark.slow
def test_a_document_without_a_source_is_its_own_source(
    shared_data: Path, embedder: Any, tmp_path: Path
) -> None:
    corpus = tmp_path / "corpus.jsonl"
    documents = {}
    with (shared_data / "beir_scifact" / "corpus.jsonl").open(encoding="utf-8") as handle:
        for raw in handle:
            record = json.loads(raw)
            documents[record["_id"]] = record["text"]
            if len(documents) == 12:
                break
    corpus.write_text(
        "".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in documents.items()),
        encoding="utf-8",
    )
    with writing_judge(WritingJudge()) as judge:
        outcome = generate(corpus, tmp_path / "draft", judge, embedder, n=6, mix="factoid=1")
    assert outcome.n_generated == 6
    for judgment in read_lines(tmp_path / "draft" / "judgments.jsonl"):
        assert judgment["source_id"] == judgment["doc_id"]
        text = documents[judgment["doc_id"]]
        assert text[judgment["start"] : judgment["end"]] == judgment["text"]


@pytest.mark.slow
def test_the_budget_stops_at_n_calls_and_a_dry_run_makes_none(
    small: tuple[Path, dict[str, str]], embedder: Any, tmp_path: Path
) -> None:
    path, _ = small
    with writing_judge(WritingJudge()) as judge:
        planned = generate(
            path, tmp_path / "dry", judge, embedder, n=10, dry_run=True, max_per_source=3
        )
        assert judge.requests == 0
        assert not (tmp_path / "dry").exists()
        assert planned.dry_run
        assert planned.calls == planned.n_planned == 10
        assert planned.estimated_tokens > 10 * 150
        budgeted = generate(
            path, tmp_path / "draft", judge, embedder, n=10, max_calls=7, max_per_source=3
        )
    assert judge.requests == budgeted.calls == 7
    assert budgeted.n_generated == 7
    assert budgeted.dropped == {"over_budget": 3}
    assert len(read_lines(tmp_path / "draft" / "queries.jsonl")) == 7


@pytest.mark.slow
def test_a_rerun_pays_only_for_the_replies_it_has_not_kept(
    small: tuple[Path, dict[str, str]], embedder: Any, tmp_path: Path
) -> None:
    """A generation stopped part-way (here by its budget) was paid for a second time in
    full by the next run: its replies were kept nowhere."""
    path, _ = small
    options: dict[str, Any] = {"n": 6, "mix": "factoid=1", "max_per_source": 3}
    with writing_judge(WritingJudge()) as judge, Store.open(tmp_path / "store.duckdb") as store:
        stopped = generate(path, tmp_path / "first", judge, embedder, store, max_calls=4, **options)
        assert (stopped.calls, stopped.from_cache, judge.requests) == (4, 0, 4)
        assert stopped.dropped == {"over_budget": 2}
        planned = generate(path, tmp_path / "dry", judge, embedder, store, dry_run=True, **options)
        assert (planned.calls, planned.from_cache, judge.requests) == (2, 4, 4)
        resumed = generate(path, tmp_path / "draft", judge, embedder, store, **options)
        assert (resumed.calls, resumed.from_cache, judge.requests) == (2, 4, 6)
        assert resumed.to_dict()["from_cache"] == 4
        # Kept replies cost nothing from the budget: a budget of one call is not touched.
        again = generate(
            path,
            tmp_path / "draft",
            judge,
            embedder,
            store,
            max_calls=1,
            overwrite=True,
            **options,
        )
        assert (again.calls, again.from_cache, again.n_generated, judge.requests) == (0, 6, 6, 6)
        whole = generate(path, tmp_path / "whole", judge, embedder, **options)
    assert (whole.calls, whole.from_cache, judge.requests) == (6, 0, 12)
    assert resumed.n_generated == whole.n_generated == 6
    for name in DRAFT_DATA:
        assert (tmp_path / "draft" / name).read_bytes() == (tmp_path / "whole" / name).read_bytes()


@pytest.mark.slow
def test_a_reply_holding_a_secret_is_not_kept(
    small: tuple[Path, dict[str, str]],
    embedder: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path, _ = small
    secret = "sk-generate-0123456789abcdef"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    judge = WritingJudge(
        echo=secret, malformed_once={line["text"][:60] for line in read_lines(path)}
    )
    options: dict[str, Any] = {"n": 3, "mix": "factoid=1"}
    with writing_judge(judge), Store.open(tmp_path / "store.duckdb") as store:
        first = generate(path, tmp_path / "first", judge, embedder, store, **options)
        kept = store.fetch("SELECT output FROM judge_calls")
        second = generate(path, tmp_path / "second", judge, embedder, store, **options)
    # Each question took a malformed reply (echoing the key) and a good one; only the good
    # ones are kept, so the malformed reply is asked for again, and nothing stored holds it.
    assert (first.calls, first.n_generated) == (6, 3)
    assert len(kept) == 3
    assert not [row for row in kept if secret in row[0]]
    assert (second.calls, second.from_cache, second.n_generated) == (3, 3, 3)


@pytest.mark.slow
def test_malformed_replies_are_asked_again_once_then_counted_with_a_masked_excerpt(
    small: tuple[Path, dict[str, str]],
    embedder: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path, sources = small
    secret = "sk-generate-0123456789abcdef"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    broken, once = sorted(sources)[:2], sorted(sources)[2:4]
    judge = WritingJudge(echo=secret)
    # Markers are passage texts: every chunk of two sources always, of two more once.
    chunks = read_lines(path)
    judge.malformed = {c["text"][:60] for c in chunks if c["source_id"] in broken}
    judge.malformed_once = {c["text"][:60] for c in chunks if c["source_id"] in once}
    with writing_judge(judge):
        outcome = generate(path, tmp_path / "draft", judge, embedder, mix="factoid=1", n=12)
    failed = [f for f in outcome.failures if f["reason"] == "malformed_reply"]
    assert failed
    assert outcome.dropped["malformed_reply"] == len(failed)
    for failure in failed:
        assert secret not in failure["detail"]
        assert failure["detail"].startswith("Here is a fine question")
        assert len(failure["detail"]) <= 200
    # Each malformed task cost two requests; every other task one (some were asked again).
    again = [b for b in judge.bodies if len(b["messages"]) == 4]
    assert all("not the JSON object asked for" in b["messages"][3]["content"] for b in again)
    assert outcome.calls == judge.requests == outcome.n_planned + len(again)
    written = read_lines(tmp_path / "draft" / "candidates.jsonl")
    used = {s for line in written for s in line["source_ids"]}
    assert not used & set(broken)
    assert used & set(once)


@pytest.mark.slow
def test_quotes_not_in_the_passage_and_copying_paraphrases_are_dropped(
    small: tuple[Path, dict[str, str]], embedder: Any, tmp_path: Path
) -> None:
    path, sources = small
    chunks = read_lines(path)
    first, second, third = sorted(sources)[:3]
    judge = WritingJudge(
        misquote={c["text"][:60] for c in chunks if c["source_id"] == first},
        copying={c["text"][:60] for c in chunks if c["source_id"] == second},
        copying_once={c["text"][:60] for c in chunks if c["source_id"] == third},
    )
    with writing_judge(judge):
        outcome = generate(
            path, tmp_path / "draft", judge, embedder, n=18, mix="paraphrase=1", max_per_source=3
        )
    reasons = Counter(f["reason"] for f in outcome.failures)
    assert reasons["evidence_not_in_passage"] >= 1
    assert reasons["word_overlap"] >= 1
    assert set(reasons) <= {"evidence_not_in_passage", "word_overlap"}
    rephrased = [b for b in judge.bodies if len(b["messages"]) == 4]
    assert rephrased
    assert all("other words" in b["messages"][3]["content"] for b in rephrased)
    written = read_lines(tmp_path / "draft" / "candidates.jsonl")
    used = {s for line in written for s in line["source_ids"]}
    assert first not in used
    assert second not in used
    assert third in used
    assert all(line["word_overlap"] <= 0.5 for line in written)


@pytest.mark.slow
def test_near_duplicate_questions_are_removed(
    small: tuple[Path, dict[str, str]], embedder: Any, tmp_path: Path
) -> None:
    path, _ = small
    # Every factoid is the same question; the paraphrases are all different.
    mix = "factoid=1,paraphrase=1"
    with writing_judge(WritingJudge(duplicate=True)) as judge:
        outcome = generate(path, tmp_path / "draft", judge, embedder, n=8, mix=mix)
    assert outcome.kinds == {"factoid": 1, "paraphrase": 4}
    assert outcome.dropped == {"near_duplicate": 3}
    for failure in outcome.failures:
        assert failure["kind"] == "factoid"
        assert failure["detail"].count("What is the main finding reported in this study?") == 2
    questions = [line["text"] for line in read_lines(tmp_path / "draft" / "queries.jsonl")]
    assert len(questions) == len(set(questions)) == 5


def _limit_file_size() -> None:
    # Writes past 64 KiB fail with EFBIG (the signal it would send is ignored), as on a
    # full disk: a real process failing half-way through writing the draft.
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


@pytest.mark.slow
def test_the_draft_appears_whole_or_not_at_all(embedder: Any, tmp_path: Path) -> None:
    embedder.embed(["the ONNX export is cached before the child process needs it"])
    long_tail = " ".join(f"Filler sentence number {i} of a long passage." for i in range(3000))
    lines = [
        {"id": "a", "text": "Aspirin lowers the risk of heart attacks in adults. " + long_tail},
        {"id": "b", "text": "Alpine glaciers have lost a third of their ice since the eighties."},
        {"id": "c", "text": "The new compiler release makes numerical code twice as fast."},
    ]
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    out = tmp_path / "drafts" / "draft"
    args = ["goldset", "generate", "--corpus", str(corpus), "--n", "3", "--mix", "factoid=1"]
    with writing_judge(WritingJudge()) as judge:
        env = fresh_env(
            tmp_path / "home",
            EVALKIT_JUDGE_BASE_URL=judge.url,
            EVALKIT_JUDGE_MODEL="writer-1",
            EVALKIT_JUDGE_RETRY_BACKOFF="0",
        )
        failed = subprocess.run(
            [*EVALKIT, *args, "--out", str(out)],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
            preexec_fn=_limit_file_size,
        )
        assert judge.requests == 3
        assert failed.returncode == 3, failed.stderr
        assert "File too large" in failed.stderr
        assert not out.exists()
        assert not list((tmp_path / "drafts").iterdir())  # nor a hidden half folder

        out.mkdir()
        (out / "old.txt").write_text("kept\n", encoding="utf-8")
        good = tmp_path / "good.jsonl"
        good.write_text("".join(json.dumps(line) + "\n" for line in lines[1:]), encoding="utf-8")
        with pytest.raises(InputError, match="already exists"):
            generate(good, out, judge, embedder, n=2, mix="factoid=1")
        assert (out / "old.txt").exists()
        generate(good, out, judge, embedder, n=2, mix="factoid=1", overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == [
        "README.md",
        "candidates.jsonl",
        "corpus.jsonl",
        "judgments.jsonl",
        "queries.jsonl",
    ]
    assert [p.name for p in (tmp_path / "drafts").iterdir()] == ["draft"]


class HoldingJudge(WritingJudge):
    """Answers its first ``answered`` requests, then holds each further one until
    ``release`` is set; ``holding`` is set once ``held`` of them are held. ``arrived``
    counts the requests as they arrive, held or not."""

    def __init__(self, answered: int, held: int) -> None:
        super().__init__()
        self.answered, self.held = answered, held
        self.holding, self.release = threading.Event(), threading.Event()
        self.arrived = 0

    def handle(self, body: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self.arrived += 1
            arrived = self.arrived
        if arrived > self.answered:
            if arrived == self.answered + self.held:
                self.holding.set()
            self.release.wait(timeout=120)
        return super().handle(body)


@pytest.mark.slow
def test_a_terminated_generation_is_resumed_by_the_same_command(
    small: tuple[Path, dict[str, str]], embedder: Any, tmp_path: Path
) -> None:
    """A generation stopped by SIGTERM had kept none of the replies it had paid for: the
    same command run again sent every request a second time."""
    path, _ = small
    embedder.embed(["the ONNX export is cached before the child process needs it"])
    out = tmp_path / "draft"
    options = ["--n", "6", "--mix", "factoid=1", "--max-per-source", "3", "--seed", "3"]
    args = ["goldset", "generate", "--corpus", str(path), *options, "--out", str(out)]
    judge = HoldingJudge(answered=2, held=2)
    with writing_judge(judge):
        env = fresh_env(
            tmp_path / "home",
            EVALKIT_JUDGE_BASE_URL=judge.url,
            EVALKIT_JUDGE_MODEL="writer-1",
            EVALKIT_JUDGE_RETRY_BACKOFF="0",
            EVALKIT_JUDGE_MAX_RETRIES="0",
            EVALKIT_JUDGE_CONCURRENCY="2",
        )
        process = subprocess.Popen(
            [*EVALKIT, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        try:
            assert judge.holding.wait(timeout=120)
            process.send_signal(signal.SIGTERM)
            _, stopped = output_once_ended(process)
        finally:
            judge.release.set()
        assert process.returncode == 143, stopped
        assert not out.exists()
        rerun = run_evalkit(*args, "--format", "json", env=env)
        assert rerun.returncode == 0, rerun.stderr
        summary = json.loads(rerun.stdout)
        # Both held requests were cut off unanswered: they are the only ones paid twice.
        assert (summary["from_cache"], summary["calls"], summary["generated"]) == (2, 4, 6)
        assert judge.arrived == 2 + 2 + 4
        whole = generate(
            path, tmp_path / "whole", judge, embedder, n=6, mix="factoid=1", max_per_source=3
        )
    assert whole.calls == 6
    for name in DRAFT_DATA:
        assert (out / name).read_bytes() == (tmp_path / "whole" / name).read_bytes()


@pytest.mark.slow
def test_no_question_at_all_is_a_judge_failure_and_writes_nothing(
    small: tuple[Path, dict[str, str]], embedder: Any, tmp_path: Path
) -> None:
    path, _ = small
    everything = {line["text"][:60] for line in read_lines(path)}
    with (
        writing_judge(WritingJudge(malformed=everything)) as judge,
        pytest.raises(JudgeError, match="malformed_reply 4"),
    ):
        generate(path, tmp_path / "draft", judge, embedder, n=4, mix="factoid=1")
    assert not (tmp_path / "draft").exists()


@pytest.mark.slow
def test_a_draft_is_generated_from_inside_a_running_event_loop(
    small: tuple[Path, dict[str, str]], embedder: Any, tmp_path: Path
) -> None:
    """A notebook runs an event loop: generating there failed with `asyncio.run() cannot
    be called from a running event loop`."""
    path, _ = small

    async def in_a_notebook() -> GenerationOutcome:
        return generate(path, tmp_path / "draft", judge, embedder, n=4, mix="factoid=1")

    with writing_judge(WritingJudge()) as judge:
        outcome = asyncio.run(in_a_notebook())
    assert outcome.n_generated == 4
    assert len(read_lines(tmp_path / "draft" / "queries.jsonl")) == 4


@pytest.mark.slow
def test_the_cli_writes_a_draft_and_reports_it(
    small: tuple[Path, dict[str, str]],
    evalkit_home: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path, _ = small
    out = evalkit_home.parent / "draft"
    with writing_judge(WritingJudge()) as judge:
        monkeypatch.setenv("EVALKIT_JUDGE_BASE_URL", judge.url)
        monkeypatch.setenv("EVALKIT_JUDGE_MODEL", "writer-1")
        monkeypatch.setenv("EVALKIT_JUDGE_RETRY_BACKOFF", "0")
        args = ["goldset", "generate", "--corpus", str(path), "--n", "6", "--out", str(out)]
        assert invoke([*args, "--dry-run", "--format", "json"]) == 0
        planned = json.loads(capsys.readouterr().out)
        assert judge.requests == 0
        assert planned["calls"] == 6
        assert planned["from_cache"] == 0
        assert planned["dry_run"]
        assert not (evalkit_home / "evalkit.duckdb").exists()  # a dry run writes nothing
        assert invoke([*args, "--max-calls", "4", "--format", "json"]) == 0
        summary = json.loads(capsys.readouterr().out)
        assert judge.requests == 4
        assert summary["generated"] == 4
        assert summary["dropped_by_reason"] == {"over_budget": 2}
        assert summary["directory"] == str(out)
        assert invoke([*args, "--dry-run"]) == 0
        replanned = capsys.readouterr().out
        assert re.search(r"calls\s+│ 2 \(up to 4 if", replanned), replanned
        assert re.search(r"replies from cache │ 4 ", replanned), replanned
        assert invoke(args) == 2  # the draft exists
        assert "already exists" in capsys.readouterr().err
        assert invoke([*args, "--overwrite", "--mix", "factoid=1,multi=1"]) == 0
        shown = capsys.readouterr().out
        assert "clusters covered" in shown
        assert "generated" in shown
    monkeypatch.delenv("EVALKIT_JUDGE_BASE_URL")
    assert invoke([*args, "--dry-run"]) == 2  # no [judge] endpoint configured
    assert "no LLM judge is configured for writing questions" in capsys.readouterr().err


@pytest.mark.slow
def test_a_mix_the_corpus_cannot_serve_is_refused_before_any_call(
    small: tuple[Path, dict[str, str]], embedder: Any, tmp_path: Path
) -> None:
    path, sources = small
    one_source = tmp_path / "one.jsonl"
    chunks = [line for line in read_lines(path) if line["source_id"] == sorted(sources)[0]]
    one_source.write_text("".join(json.dumps(c) + "\n" for c in chunks), encoding="utf-8")
    with writing_judge(WritingJudge()) as judge:
        with pytest.raises(ConfigError, match="two sources in one cluster"):
            generate(one_source, tmp_path / "draft", judge, embedder, n=2, mix="multi=1")
        with pytest.raises(ConfigError, match="`max_calls` 0") as budget:
            generate(one_source, tmp_path / "draft", judge, embedder, n=2, max_calls=0)
        with pytest.raises(ConfigError, match="`dedup_threshold` must be above 0") as threshold:
            generate(one_source, tmp_path / "draft", judge, embedder, n=2, dedup_threshold=0.0)
    assert with_flags(str(budget.value)).startswith("--max-calls 0 sends nothing")
    assert with_flags(str(threshold.value)).startswith("--dedup-threshold must be above 0")
    assert judge.requests == 0
    assert not (tmp_path / "draft").exists()
