"""Slices on real text: when a foreign subject arriving in traffic is found as a new
out-of-scope slice, how often windows of one population flag a slice, and how long topics
take to fit on 100,000 queries.

The retriever is exact cosine search with all-MiniLM-L6-v2 over BEIR SciFact's 5,183
abstracts (title and text), as an embedded Chroma collection with exact search would rank
them; the goldset run that places the out-of-scope floor is SciFact's 300 test claims with
their qrels. Traffic is SciFact's 809 training claims (never in the goldset); the foreign
subject is Vaswani's 93 physics queries.

* **Detection.** Topics are fitted on a window of ``--window`` claims. Each later window holds
  claims and, from window 2 on, Vaswani queries at a share ``s`` (0 for the first windows):
  the table gives, per share, the first window after the mix began in which a content gap is
  flagged (a topic slice, ``topic:outside`` included, at least half out of scope, whose share
  grew significantly, Benjamini-Hochberg at 0.05 over the slices), over ``--reps`` seeds, and
  whether the gap is named by physics terms.
* **False discoveries.** Pairs of windows drawn from the claims alone, each with random tenant
  and tag slices beside the topics: the share of windows with any slice flagged (share grew
  or shrank, or estimated precision dropped), which Benjamini-Hochberg keeps at 0.05 when
  nothing changed, and the mean number of slices tested.
* **Scale.** ``fit_topics`` and ``TopicSet.assign`` on 100,000 query vectors (SciFact's claims
  resampled with a little noise), beside scikit-learn's ``KMeans`` alone with the same k and
  seeds (the peer: what naming the topics and placing their floors adds) and
  ``MiniBatchKMeans``.

    .venv/bin/python benchmarks/slices.py [--reps 20] [--window 300] [--fdr-windows 200]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import numpy.typing as npt

from evalkit.drift.slices import (
    SlicedQuery,
    content_gaps,
    scope_floor,
    slice_changes,
    slice_figures,
)
from evalkit.drift.topics import (
    MIN_QUERIES,
    OUTSIDE,
    emerging_subjects,
    fit_topics,
    slice_terms,
    topic_slice,
)
from evalkit.embedding import load_embedder
from evalkit.judging.estimate import expected_precision_per_query, fit_calibration

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
SCIFACT = SHARED / "beir_scifact"
VASWANI = SHARED / "vaswani_npl" / "tests" / "fixtures" / "vaswani_npl" / "query-text.trec"
K = 10
MODEL = "all-MiniLM-L6-v2"
SHARES = (0.02, 0.05, 0.1, 0.2)
PHYSICS_WORDS = {
    "electron", "electrons", "plasma", "magnetic", "field", "fields", "waves", "wave",
    "frequency", "circuits", "circuit", "energy", "nuclear", "ionosphere", "ionospheric",
    "scattering", "transistor", "transistors", "computers", "digital", "solar", "radio",
    "amplifiers", "impedance", "antenna", "microwave", "earths",
}  # fmt: skip
Matrix = npt.NDArray[np.float32]


def _load() -> dict[str, object]:
    corpus = [json.loads(line) for line in (SCIFACT / "corpus.jsonl").read_text().splitlines()]
    queries = {
        q["_id"]: q["text"]
        for q in map(json.loads, (SCIFACT / "queries.jsonl").read_text().splitlines())
    }
    qrels: dict[str, set[str]] = {}
    for line in (SCIFACT / "qrels" / "test.tsv").read_text().splitlines()[1:]:
        query_id, doc_id, grade = line.split()
        if int(grade) > 0:
            qrels.setdefault(query_id, set()).add(doc_id)
    train = [text for query_id, text in queries.items() if query_id not in qrels]
    physics = [
        " ".join(t.split()).lower()
        for t in re.findall(r"<title>\s*(.*?)\s*</title>", VASWANI.read_text(), re.DOTALL)
    ]
    embedder = load_embedder()
    # The abstracts take minutes to embed on two cores: kept beside the model's own cache,
    # keyed by the model's canary hash, for the next run.
    cache = (
        Path(tempfile.gettempdir())
        / f"evalkit-bench-scifact-{embedder.fingerprint.canary_hash}.npy"
    )
    if cache.is_file():
        docs = np.load(cache)
    else:
        started = time.perf_counter()
        docs = embedder.embed([f"{d['title']} {d['text']}" for d in corpus])
        np.save(cache, docs)
        print(
            f"embedded {len(corpus)} abstracts in {time.perf_counter() - started:.0f} s",
            file=sys.stderr,
        )
    test_ids = sorted(qrels)
    return {
        "doc_ids": np.asarray([d["_id"] for d in corpus]),
        "docs": docs,
        "gold_vectors": embedder.embed([queries[q] for q in test_ids]),
        "gold_relevant": [qrels[q] for q in test_ids],
        "train": train,
        "train_vectors": embedder.embed(train),
        "physics": physics,
        "physics_vectors": embedder.embed(physics),
    }


def _top(vectors: Matrix, docs: Matrix) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    scores = vectors @ docs.T
    top = np.argsort(-scores, axis=1)[:, :K]
    return top, np.take_along_axis(scores, top, axis=1)


class World:
    """The retriever's scores for every query, the floor and the calibration."""

    def __init__(self, data: dict[str, object]) -> None:
        self.data = data
        docs = data["docs"]
        gold_top, gold_scores = _top(data["gold_vectors"], docs)  # type: ignore[arg-type]
        doc_ids = data["doc_ids"]
        relevant = [
            np.asarray([doc_ids[i] in wanted for i in row])  # type: ignore[index]
            for row, wanted in zip(gold_top, data["gold_relevant"], strict=True)  # type: ignore[call-overload]
        ]
        self.floor = scope_floor(
            [float(s[0]) for s, r in zip(gold_scores, relevant, strict=True) if r.any()]
        )
        self.calibration = fit_calibration(list(gold_scores), relevant, k=K)
        texts = [*data["train"], *data["physics"]]  # type: ignore[misc]
        vectors = np.vstack([data["train_vectors"], data["physics_vectors"]])  # type: ignore[list-item]
        _, scores = _top(vectors, docs)  # type: ignore[arg-type]
        self.texts = texts
        self.vectors = vectors
        self.top1 = scores[:, 0]
        self.precision = np.asarray(expected_precision_per_query(list(scores), self.calibration))
        self.n_claims = len(data["train"])  # type: ignore[arg-type]

    def window(self, rng: np.random.Generator, size: int, foreign: float) -> npt.NDArray[np.int64]:
        n_foreign = round(size * foreign)
        claims = rng.choice(self.n_claims, size - n_foreign, replace=False)
        physics = self.n_claims + rng.choice(len(self.texts) - self.n_claims, n_foreign)
        return np.concatenate([claims, physics])

    def sliced(
        self, rows: npt.NDArray[np.int64], labels: npt.NDArray[np.int64], rng: np.random.Generator
    ) -> list[SlicedQuery]:
        return [
            SlicedQuery(
                query_id=str(n),
                slices=(
                    topic_slice(int(label)),
                    f"tenant:{rng.integers(3)}",
                    f"tag:locale={('en', 'de', 'fr', 'es')[rng.integers(4)]}",
                ),
                out_of_scope=bool(self.top1[row] < self.floor),
                low_confidence=False,
                precision=float(self.precision[row]),
            )
            for n, (row, label) in enumerate(zip(rows, labels, strict=True))
        ]


def _figures(world: World, rows: npt.NDArray[np.int64], topics, rng, *, reference: bool = False):  # type: ignore[no-untyped-def]
    labels = topics.assign(world.vectors[rows], MODEL, reference=reference)
    texts = [world.texts[r] for r in rows]
    named = slice_terms(world.vectors[rows], texts, labels.tolist())
    details = {topic_slice(n): {"window_terms": list(terms)} for n, (terms, _) in named.items()}
    outside = np.flatnonzero(labels == OUTSIDE)
    if len(outside) >= MIN_QUERIES:  # named as `evalkit traffic slices` names them
        details[topic_slice(OUTSIDE)] = emerging_subjects(
            world.vectors[rows][outside], [texts[i] for i in outside]
        )
    return slice_figures(
        world.sliced(rows, labels, rng),
        precision_of=("estimate", "calibration", "precision@10"),
        details=details,
    )


def _reference(world: World, rng: np.random.Generator, size: int, seed: int):  # type: ignore[no-untyped-def]
    """Topics fitted on a window of claims, and that window's slices (the baseline)."""
    reference = world.window(rng, size, 0.0)
    texts = [world.texts[r] for r in reference]
    topics = fit_topics(world.vectors[reference], texts, model_fingerprint=MODEL, seed=seed)
    return topics, _figures(world, reference, topics, rng, reference=True)


def detection(world: World, *, reps: int, size: int, windows: int) -> list[dict[str, object]]:
    rows_out = []
    for share in SHARES:
        found_at: list[int | None] = []
        named = 0
        for seed in range(reps):
            rng = np.random.default_rng(seed)
            topics, base = _reference(world, rng, size, seed)
            first = None
            for number in range(1, windows + 1):
                current = _figures(world, world.window(rng, size, share), topics, rng)
                gaps = content_gaps(current, slice_changes(base, current))
                if gaps:
                    first = number
                    named += bool(set(gaps[0].details.get("window_terms", [])) & PHYSICS_WORDS)
                    break
            found_at.append(first)
        caught = [n for n in found_at if n is not None]
        rows_out.append(
            {
                "share": share,
                "caught": f"{len(caught)}/{reps}",
                "median window": float(np.median(caught)) if caught else None,
                "named by physics terms": f"{named}/{len(caught)}" if caught else "-",
            }
        )
    return rows_out


def false_discoveries(world: World, *, pairs: int, size: int) -> dict[str, object]:
    flagged = 0
    flags = 0
    tested = []
    for seed in range(pairs):
        rng = np.random.default_rng(10_000 + seed)
        topics, base = _reference(world, rng, size, seed)
        current = _figures(world, world.window(rng, size, 0.0), topics, rng)
        changes = slice_changes(base, current)
        tested.append(len(changes))
        wrong = sum(c.grew or c.shrank or c.dropped for c in changes)
        flags += wrong
        flagged += wrong > 0
    return {
        "window pairs": pairs,
        "slices tested (mean)": float(np.mean(tested)),
        "windows with a false flag": flagged / pairs,
        "false flags per window": flags / pairs,
    }


def scale(world: World, n: int = 100_000) -> dict[str, float]:
    from sklearn.cluster import KMeans, MiniBatchKMeans

    rng = np.random.default_rng(0)
    rows = rng.choice(world.n_claims, n)
    noisy = world.vectors[rows] + rng.normal(scale=0.02, size=(n, world.vectors.shape[1])).astype(
        np.float32
    )
    texts = [world.texts[r] for r in rows]
    started = time.perf_counter()
    topics = fit_topics(noisy, texts, model_fingerprint=MODEL)
    fitted = time.perf_counter() - started
    started = time.perf_counter()
    topics.assign(noisy, MODEL)
    assigned = time.perf_counter() - started
    k = len(topics.topics)
    started = time.perf_counter()
    KMeans(n_clusters=k, n_init=4, random_state=0).fit(noisy)
    kmeans = time.perf_counter() - started
    started = time.perf_counter()
    MiniBatchKMeans(n_clusters=k, n_init=4, random_state=0).fit(noisy)
    minibatch = time.perf_counter() - started
    return {
        "queries": n,
        "topics": k,
        "fit_topics s": fitted,
        "assign s": assigned,
        "KMeans alone s": kmeans,
        "fit_topics / KMeans": fitted / kmeans,
        "MiniBatchKMeans s": minibatch,
    }


def _table(rows: list[dict[str, object]]) -> str:
    columns = list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = [f"{v:.3g}" if isinstance(v, float) else str(v) for v in row.values()]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--window", type=int, default=300)
    parser.add_argument(
        "--windows", type=int, default=5, help="windows watched after the mix began"
    )
    parser.add_argument("--fdr-windows", type=int, default=200)
    parser.add_argument("--scale", type=int, default=100_000)
    args = parser.parse_args()
    if not SCIFACT.is_dir():
        sys.exit(f"{SCIFACT} is not there: ../shared/data is needed")
    world = World(_load())
    print(f"out-of-scope floor (5 % of answerable goldset claims below): {world.floor:.3f}")
    print(f"\n## Detection of a foreign subject (window of {args.window} queries)\n")
    print(_table(detection(world, reps=args.reps, size=args.window, windows=args.windows)))
    print(f"\n## False discoveries over windows of SciFact alone ({args.window} queries)\n")
    print(_table([false_discoveries(world, pairs=args.fdr_windows, size=args.window)]))
    print(f"\n## Fitting topics on {args.scale:,} queries\n")
    print(_table([scale(world, args.scale)]))


if __name__ == "__main__":
    main()
