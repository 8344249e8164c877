"""Fit, calibrate and measure the offline faithfulness methods; time them against offline-v1.

Data (read from ../shared/data, never copied; the script exits when it is absent):

* CLAPNQ dev, answerable: 300 questions, each with one gold Wikipedia passage and one to
  seven answers that annotators wrote from it. Questions are split by a hash of their id:
  a quarter *fits* the support model, a quarter *calibrates* it (isotonic regression), and
  the other half is *held out* and measures both.
* CLAPNQ dev, unanswerable: 300 questions whose passage does not answer them; their
  passages are the hard negatives (the unanswerable passage closest to a question).
* amnesty_qa (20 questions, held out): three contexts each, a reference answer written from
  them and an answer generated without them.

Labels come from the data's structure, not from a judge:

* claim level: a claim of any annotator's answer against its own passage is supported (the
  second and later annotators reword the passage differently); the first answer's claims
  against the most similar other passage, against the closest unanswerable passage, or with
  a third of its names and numbers swapped, are not;
* answer level: an answer with its own passage is fully faithful; with another passage it
  is not; graded answers have each claim replaced with probability 0, 1/4, 1/2, 3/4 or 1 by
  an unsupported one, and their label is the share of claims left intact.

Methods compared: ``offline-embedding`` as shipped (offline-v3: offline-v2's share through
the map fitted on human ratings by ``benchmarks/faithfulness_human.py``), offline-v2
(Markdown-aware claims, cached sentence vectors, calibrated), the same signals with
offline-v1's units and weights (``legacy_units``, uncalibrated), the plain embedding peer
(mean over claims of the best cosine with a context unit), and, with ``--nli-model PATH``,
``offline-nli`` with that local cross-encoder.

Run:

    nice -n 10 .venv/bin/python benchmarks/faithfulness.py [--memo FILE] [--write]
        [--nli-model PATH] [--no-speed] [--bootstrap 1000]

``--write`` writes the fitted model and calibration map to
``evalkit/answers/offline_calibration.json`` (with their provenance); without it the
script only compares the fit with the committed one. ``--memo`` keeps the embeddings of
the accuracy part in a pickle between runs (the speed part never uses it).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import pickle
import random
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from evalkit.answers import AnswerRecord
from evalkit.answers.offline import (
    CALIBRATION_FILE,
    DEFAULT_CALIBRATION,
    DEFAULT_SUPPORT_MODEL,
    IDENTITY_CALIBRATION,
    Calibration,
    ClaimSupport,
    OfflineFaithfulness,
    SupportModel,
    context_units,
)
from evalkit.answers.sentences import split_claims, split_sentences
from evalkit.embedding import load_embedder
from evalkit.store import Store
from evalkit.store.answers import StoreEmbeddingCache

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / ".." / "shared" / "data"
SEED = 20261121
SWAPPABLE = re.compile(r"\b(?:\d[\d,.]*\d|\d|[A-Z][a-z]+)\b")
V1_SUPPORT_MODEL = SupportModel(intercept=-11.87, similarity=2.95, coverage=3.2, salient=7.32)
"""offline-v1's shipped weights (today's method before this calibration)."""
RELIABILITY_BINS = np.linspace(0.0, 1.0, 11)


class MemoEmbedder:
    """The embedder with a memo, so a text shared by several experiments is embedded once."""

    def __init__(self, memo_file: Path | None = None) -> None:
        self.inner = load_embedder()
        self.name = self.inner.name
        self.dimension = self.inner.dimension
        self.fingerprint = self.inner.fingerprint
        self.memo_file = memo_file
        self.memo: dict[str, np.ndarray] = {}
        if memo_file is not None and memo_file.is_file():
            with memo_file.open("rb") as handle:
                self.memo = pickle.load(handle)

    def save(self) -> None:
        if self.memo_file is not None:
            with self.memo_file.open("wb") as handle:
                pickle.dump(self.memo, handle)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        missing = [text for text in dict.fromkeys(texts) if text not in self.memo]
        if missing:
            for text, vector in zip(missing, self.inner.embed(missing), strict=True):
                self.memo[text] = vector
        if not texts:
            return np.zeros((0, self.inner.dimension), dtype=np.float32)
        return np.stack([self.memo[text] for text in texts])


@dataclass
class Item:
    id: str
    question: str
    passage: str
    answers: list[str]


def load_clapnq() -> list[Item]:
    path = DATA / "clapnq" / "annotated_data" / "dev" / "clapnq_dev_answerable.jsonl"
    items = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            answers = [o["answer"] for o in row["output"] if split_claims(o["answer"])]
            if answers:
                items.append(
                    Item(str(row["id"]), row["input"], row["passages"][0]["text"], answers)
                )
    return items


def load_unanswerable() -> list[tuple[str, str]]:
    path = DATA / "clapnq" / "annotated_data" / "dev" / "clapnq_dev_unanswerable.jsonl"
    with path.open(encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle]
    return [(row["input"], row["passages"][0]["text"]) for row in rows]


def part(item_id: str) -> str:
    """fit / calibration / held-out, by a hash of the id (held-out: the same half as v1)."""
    value = int(hashlib.sha256(item_id.encode()).hexdigest(), 16)
    if value % 2:
        return "held-out"
    return "fit" if (value // 2) % 2 == 0 else "calibration"


def nearest(queries: np.ndarray, pool: np.ndarray, *, exclude_self: bool) -> np.ndarray:
    similarity = queries @ pool.T
    if exclude_self:
        np.fill_diagonal(similarity, -np.inf)
    return np.asarray(similarity.argmax(axis=1))


def swapped(claim: str, pool: dict[str, list[str]], rng: random.Random) -> str | None:
    """The claim with a third of its names and numbers (at least one) replaced, or None."""
    matches = [m for m in SWAPPABLE.finditer(claim) if m.start() > 0]
    if not matches:
        return None
    chosen = rng.sample(matches, max(1, len(matches) // 3))
    text = claim
    for match in sorted(chosen, key=lambda m: -m.start()):
        kind = "number" if match.group()[0].isdigit() else "name"
        replacement = rng.choice(pool[kind])
        while replacement == match.group():
            replacement = rng.choice(pool[kind])
        text = text[: match.start()] + replacement + text[match.end() :]
    return text


@dataclass
class Claims:
    """Labelled claims: signals (n, 3), labels (n,), and the question each belongs to."""

    features: np.ndarray
    labels: np.ndarray
    groups: np.ndarray


def signals(results: Sequence[object]) -> np.ndarray:
    rows = [
        np.column_stack([r.similarity, r.coverage, r.salient])
        for r in results
        if isinstance(r, ClaimSupport)
    ]
    return np.vstack(rows) if rows else np.zeros((0, 3))


def labelled_claims(method: OfflineFaithfulness, setup: Setup, indices: Sequence[int]) -> Claims:
    features, labels, groups = [], [], []

    def add(records: list[AnswerRecord], label: int, index: int) -> None:
        found = signals(method.analyse(records))
        features.append(found)
        labels.extend([label] * len(found))
        groups.extend([index] * len(found))

    for index in indices:
        item = setup.items[index]
        own = [
            record(item, answer, (item.passage,), f"own{k}")
            for k, answer in enumerate(item.answers)
        ]
        add(own, 1, index)
        near_passage = setup.items[setup.near[index]].passage
        add([record(item, item.answers[0], (near_passage,), "near")], 0, index)
        hard = setup.unanswerable[setup.near_unanswerable[index]][1]
        add([record(item, item.answers[0], (hard,), "unans")], 0, index)
        changed = [
            setup.swaps[(index, c)]
            for c in split_claims(item.answers[0])
            if (index, c) in setup.swaps
        ]
        add(
            [record(item, claim, (item.passage,), f"swap{k}") for k, claim in enumerate(changed)],
            0,
            index,
        )
    return Claims(np.vstack(features), np.asarray(labels), np.asarray(groups))


def record(item: Item, answer: str, contexts: tuple[str, ...], suffix: str) -> AnswerRecord:
    return AnswerRecord(
        id=f"{item.id}-{suffix}", question=item.question, answer=answer, contexts=contexts
    )


@dataclass
class Setup:
    items: list[Item]
    unanswerable: list[tuple[str, str]]
    near: np.ndarray
    near_unanswerable: np.ndarray
    swaps: dict[tuple[int, str], str]
    parts: dict[str, list[int]]


def build_setup(embedder: MemoEmbedder, rng: random.Random) -> Setup:
    items = load_clapnq()
    unanswerable = load_unanswerable()
    openings = [split_claims(item.passage)[0] for item in items]
    vectors = embedder.embed(openings).astype(np.float64)
    near = nearest(vectors, vectors, exclude_self=True)
    questions = embedder.embed([item.question for item in items]).astype(np.float64)
    hard = embedder.embed([passage[:400] for _, passage in unanswerable]).astype(np.float64)
    near_unanswerable = nearest(questions, hard, exclude_self=False)
    pool: dict[str, list[str]] = {"number": [], "name": []}
    for item in items:
        for match in SWAPPABLE.finditer(item.passage):
            pool["number" if match.group()[0].isdigit() else "name"].append(match.group())
    swaps: dict[tuple[int, str], str] = {}
    for index, item in enumerate(items):
        for claim in split_claims(item.answers[0]):
            changed = swapped(claim, pool, rng)
            if changed is not None:
                swaps[(index, claim)] = changed
    parts: dict[str, list[int]] = {"fit": [], "calibration": [], "held-out": []}
    for index, item in enumerate(items):
        parts[part(item.id)].append(index)
    return Setup(items, unanswerable, near, near_unanswerable, swaps, parts)


def balanced_weights(labels: np.ndarray) -> np.ndarray:
    """Each class weighs half in all: the calibrated value is P(supported) at even odds."""
    positive = labels == 1
    weights = np.empty(len(labels))
    weights[positive] = 0.5 / positive.sum()
    weights[~positive] = 0.5 / (~positive).sum()
    return weights * len(labels)


def fit_support_model(claims: Claims) -> SupportModel:
    fit = LogisticRegression(C=1.0, max_iter=2000).fit(
        claims.features, claims.labels, sample_weight=balanced_weights(claims.labels)
    )
    return SupportModel(
        intercept=round(float(fit.intercept_[0]), 3),
        similarity=round(float(fit.coef_[0][0]), 3),
        coverage=round(float(fit.coef_[0][1]), 3),
        salient=round(float(fit.coef_[0][2]), 3),
    )


def fit_calibration(support: np.ndarray, labels: np.ndarray) -> Calibration:
    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
    iso.fit(support, labels, sample_weight=balanced_weights(labels))
    xs = [round(float(x), 4) for x in iso.X_thresholds_]
    ys = [round(float(y), 4) for y in iso.y_thresholds_]
    points: dict[float, float] = {}
    for x, y in zip(xs, ys, strict=True):
        points[x] = max(points.get(x, 0.0), y)
    scores = sorted(points)
    probabilities = np.maximum.accumulate([points[x] for x in scores]).tolist()
    if scores[0] > 0.0:
        scores, probabilities = [0.0, *scores], [probabilities[0], *probabilities]
    if scores[-1] < 1.0:
        scores, probabilities = [*scores, 1.0], [*probabilities, probabilities[-1]]
    return Calibration(scores=tuple(scores), probabilities=tuple(probabilities))


def reliability(probability: np.ndarray, labels: np.ndarray) -> list[tuple[str, int, float, float]]:
    """Per bin of probability: (bin, claims, mean probability, observed supported share)."""
    weights = balanced_weights(labels)
    rows = []
    which = np.clip(np.digitize(probability, RELIABILITY_BINS[1:-1]), 0, len(RELIABILITY_BINS) - 2)
    for b in range(len(RELIABILITY_BINS) - 1):
        mask = which == b
        if not mask.any():
            continue
        w = weights[mask]
        rows.append(
            (
                f"{RELIABILITY_BINS[b]:.1f}-{RELIABILITY_BINS[b + 1]:.1f}",
                int(mask.sum()),
                float(np.average(probability[mask], weights=w)),
                float(np.average(labels[mask], weights=w)),
            )
        )
    return rows


def expected_calibration_error(probability: np.ndarray, labels: np.ndarray) -> float:
    rows = reliability(probability, labels)
    weights = balanced_weights(labels)
    which = np.clip(np.digitize(probability, RELIABILITY_BINS[1:-1]), 0, len(RELIABILITY_BINS) - 2)
    total = weights.sum()
    error = 0.0
    for b, (_, _, predicted, observed) in zip(sorted(set(which.tolist())), rows, strict=True):
        error += weights[which == b].sum() / total * abs(predicted - observed)
    return error


Scorer = Callable[[list[AnswerRecord]], np.ndarray]


def method_scorer(method: OfflineFaithfulness | object) -> Scorer:
    def score(records: list[AnswerRecord]) -> np.ndarray:
        values = [s.value for s in method.score(records)]  # type: ignore[attr-defined]
        return np.asarray([np.nan if v is None else v for v in values], dtype=np.float64)

    return score


def peer_scorer(method: OfflineFaithfulness) -> Scorer:
    """The plain embedding baseline: mean over claims of the best cosine with a unit."""

    def score(records: list[AnswerRecord]) -> np.ndarray:
        return np.asarray(
            [
                float(r.similarity.mean()) if isinstance(r, ClaimSupport) else np.nan
                for r in method.analyse(records)
            ]
        )

    return score


def bootstrap(
    statistic: Callable[[np.ndarray, np.ndarray], float],
    truth: np.ndarray,
    values: np.ndarray,
    *,
    resamples: int,
    rng: np.random.Generator,
) -> tuple[float, float, float]:
    point = statistic(truth, values)
    draws = []
    n = len(truth)
    for _ in range(resamples):
        sample = rng.integers(0, n, n)
        if len(set(truth[sample].tolist())) < 2:
            continue
        draws.append(statistic(truth[sample], values[sample]))
    low, high = np.percentile(draws, [2.5, 97.5])
    return point, float(low), float(high)


def spearman(truth: np.ndarray, values: np.ndarray) -> float:
    return float(spearmanr(truth, values).statistic)


def auc(truth: np.ndarray, values: np.ndarray) -> float:
    return float(roc_auc_score(truth, values))


@dataclass
class AnswerSet:
    name: str
    records: list[AnswerRecord]
    share: np.ndarray
    """Share of the answer's claims that are supported (1 = fully faithful)."""


def answer_sets(setup: Setup, rng: random.Random) -> list[AnswerSet]:
    items, held = setup.items, setup.parts["held-out"]
    sets = []
    own = [
        record(items[i], answer, (items[i].passage,), f"own{k}")
        for i in held
        for k, answer in enumerate(items[i].answers)
    ]
    other = [
        record(items[i], items[i].answers[0], (items[setup.near[i]].passage,), "near") for i in held
    ]
    hard = [
        record(
            items[i],
            items[i].answers[0],
            (setup.unanswerable[setup.near_unanswerable[i]][1],),
            "unans",
        )
        for i in held
    ]
    sets.append(
        AnswerSet(
            "CLAPNQ: own passage vs most similar other / closest unanswerable passage",
            own + other + hard,
            np.asarray([1.0] * len(own) + [0.0] * (len(other) + len(hard))),
        )
    )
    graded, shares = [], []
    for repeat in range(3):
        for index in held:
            claims = split_claims(items[index].answers[0])
            others = split_claims(items[setup.near[index]].answers[0]) or claims
            replace_probability = rng.choice([0.0, 0.25, 0.5, 0.75, 1.0])
            kept, mixed = 0, []
            for claim in claims:
                if rng.random() < replace_probability:
                    if (index, claim) in setup.swaps and rng.random() < 0.5:
                        mixed.append(setup.swaps[(index, claim)])
                    else:
                        mixed.append(rng.choice(others))
                else:
                    mixed.append(claim)
                    kept += 1
            shares.append(kept / len(claims))
            graded.append(
                record(items[index], " ".join(mixed), (items[index].passage,), f"g{repeat}")
            )
    sets.append(AnswerSet("CLAPNQ graded: share of intact claims", graded, np.asarray(shares)))
    amnesty = json.loads((DATA / "amnesty_qa" / "english.json").read_text(encoding="utf-8"))
    n = len(amnesty["question"])
    references = [
        AnswerRecord(
            id=f"{i}-ref",
            question=amnesty["question"][i],
            answer=amnesty["ground_truths"][i][0],
            contexts=tuple(amnesty["contexts"][i]),
        )
        for i in range(n)
    ]
    other_contexts = [
        replace(r, id=f"{i}-other", contexts=references[(i + n // 2) % n].contexts)
        for i, r in enumerate(references)
    ]
    sets.append(
        AnswerSet(
            "amnesty_qa: reference answer, own vs another question's contexts",
            references + other_contexts,
            np.asarray([1.0] * n + [0.0] * n),
        )
    )
    generated = [
        replace(r, id=f"{i}-gen", answer=amnesty["answer"][i]) for i, r in enumerate(references)
    ]
    sets.append(
        AnswerSet(
            "amnesty_qa: reference vs generated answer, same contexts",
            references + generated,
            np.asarray([1.0] * n + [0.0] * n),
        )
    )
    return sets


def agreement(sets: list[AnswerSet], scorers: dict[str, Scorer], *, resamples: int) -> list[str]:
    rng = np.random.default_rng(SEED)
    lines = [
        "| labelled set (held out) | method | Spearman [95 % CI] | ROC AUC fully faithful"
        " [95 % CI] | mean on fully faithful | n |",
        "|---|---|---|---|---|---|",
    ]
    for answer_set in sets:
        for name, scorer in scorers.items():
            values = scorer(answer_set.records)
            measured = ~np.isnan(values)
            share, values = answer_set.share[measured], values[measured]
            full = (share == 1.0).astype(int)
            rho = bootstrap(spearman, share, values, resamples=resamples, rng=rng)
            area = bootstrap(auc, full, values, resamples=resamples, rng=rng)
            lines.append(
                f"| {answer_set.name} | {name} | {rho[0]:.3f} [{rho[1]:.3f}, {rho[2]:.3f}] | "
                f"{area[0]:.3f} [{area[1]:.3f}, {area[2]:.3f}] | "
                f"{values[full == 1].mean():.3f} | {len(values)} |"
            )
    return lines


def speed(setup: Setup, n_answers: int) -> list[str]:
    """CPU seconds per answer: offline-v1's path against offline-v2 cold and warm."""
    embedder = load_embedder()
    items = setup.items
    chosen = (setup.parts["held-out"] + setup.parts["calibration"])[:n_answers]

    # Each answer sees its passage and the passages of its two nearest neighbours (about
    # 500 words, as a retriever's top 3 would give); neighbours' passages recur.
    def contexts(i: int) -> tuple[str, ...]:
        second = int(setup.near[setup.near[i]]) if setup.near[setup.near[i]] != i else 0
        return (items[i].passage, items[setup.near[i]].passage, items[second].passage)

    today = [record(items[i], items[i].answers[0], contexts(i), "a") for i in chosen]
    tomorrow = [record(items[i], items[i].answers[-1], contexts(i), "b") for i in chosen]
    words = np.mean([sum(len(c.split()) for c in r.contexts) for r in today])
    distinct = len({c for r in today for c in r.contexts})
    # What a first scoring can gain at most: offline-v1 embeds every sentence and adjacent
    # pair of every answer's contexts, offline-v2 each distinct sentence once; both embed the
    # claims. The encoder's cost is about linear in the words it reads.
    claim_words = sum(len(claim.split()) for r in today for claim in split_claims(r.answer))
    v1_words = claim_words + sum(
        len(unit.split()) for r in today for unit in context_units(list(r.contexts))
    )
    v2_words = claim_words + sum(
        len(sentence.split())
        for context in {c for r in today for c in r.contexts}
        for sentence in split_sentences(context)
    )
    embedder.embed(["warm up the model"] * 8)

    def cpu(run: Callable[[], object]) -> float:
        started = time.process_time()
        run()
        return (time.process_time() - started) / len(chosen)

    legacy = OfflineFaithfulness(
        embedder, model=V1_SUPPORT_MODEL, calibration=IDENTITY_CALIBRATION, legacy_units=True
    )

    def scoring(version: str, records: list[AnswerRecord], store: Store) -> Callable[[], object]:
        method = OfflineFaithfulness(embedder, version=version)
        return lambda: method.score(records, cache=StoreEmbeddingCache(store))

    timings: dict[str, tuple[float, float]] = {}
    with tempfile.TemporaryDirectory() as folder:
        old = cpu(lambda: legacy.score(today))
        # Each version in its own store, so each pays for its own first scoring.
        for version in ("offline-v2", "offline-v3"):
            with Store.open(Path(folder) / f"{version}.duckdb") as store:
                cold = cpu(scoring(version, today, store))
                warm = cpu(scoring(version, tomorrow, store))
            timings[version] = (cold, warm)
    import torch  # deferred: only to report the thread count the timings ran with

    return [
        f"{len(chosen)} answers, {words:.0f} words of context each ({distinct} distinct "
        f"passages), torch threads {torch.get_num_threads()}, load average "
        f"{os.getloadavg()[0]:.1f}",
        "| path | CPU s per answer | ratio to offline-v1 |",
        "|---|---|---|",
        f"| offline-v1 (every sentence and pair of every answer embedded) | {old:.3f} | 1.0x |",
        *(
            line
            for version, (cold, warm) in timings.items()
            for line in (
                f"| {version}, first scoring (empty cache) | {cold:.3f} | {old / cold:.1f}x |",
                f"| {version}, next scoring of other answers on the same contexts (store "
                f"cache) | {warm:.3f} | {old / warm:.1f}x |",
            )
        ),
        f"offline-v3 / offline-v2 CPU time: first scoring "
        f"{timings['offline-v3'][0] / timings['offline-v2'][0]:.3f}, next scoring "
        f"{timings['offline-v3'][1] / timings['offline-v2'][1]:.3f}",
        f"words embedded on a first scoring: offline-v1 {v1_words:,}, offline-v2 {v2_words:,}: "
        f"at most {v1_words / v2_words:.1f}x fewer CPU seconds with the same encoder",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--memo", type=Path)
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--nli-model", type=Path)
    parser.add_argument("--no-speed", action="store_true")
    parser.add_argument("--speed-answers", type=int, default=120)
    parser.add_argument("--bootstrap", type=int, default=1000)
    args = parser.parse_args()
    if not DATA.is_dir():
        print(f"{DATA} is absent: nothing to benchmark")
        return 0
    started = time.perf_counter()
    rng = random.Random(SEED)
    embedder = MemoEmbedder(args.memo)
    setup = build_setup(embedder, rng)
    raw = OfflineFaithfulness(embedder, calibration=IDENTITY_CALIBRATION)  # type: ignore[arg-type]

    fit_claims = labelled_claims(raw, setup, setup.parts["fit"])
    model = fit_support_model(fit_claims)
    cal_claims = labelled_claims(raw, setup, setup.parts["calibration"])
    support = model.probability(*cal_claims.features.T)
    calibration = fit_calibration(support, cal_claims.labels)
    print(
        f"fit part: {len(setup.parts['fit'])} questions, {len(fit_claims.labels)} claims; "
        f"calibration part: {len(setup.parts['calibration'])} questions, "
        f"{len(cal_claims.labels)} claims; held out: {len(setup.parts['held-out'])} questions"
    )
    print(f"fitted support model:    {model}")
    print(f"committed support model: {DEFAULT_SUPPORT_MODEL}")
    print(
        f"calibration points: {len(calibration.scores)} "
        f"(committed {len(DEFAULT_CALIBRATION.scores)})"
    )
    if args.write:
        commit = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        payload = {
            "support_model": {
                "intercept": model.intercept,
                "similarity": model.similarity,
                "coverage": model.coverage,
                "salient": model.salient,
            },
            "calibration": {
                "scores": list(calibration.scores),
                "probabilities": list(calibration.probabilities),
            },
            "provenance": {
                "script": "benchmarks/faithfulness.py --write",
                "data": "CLAPNQ dev answerable + unanswerable (Apache-2.0), claim labels from "
                "the data's structure (see the script's docstring)",
                "support_model": f"logistic regression, class-balanced, on the fit part "
                f"({len(setup.parts['fit'])} questions, {len(fit_claims.labels)} claims)",
                "calibration": f"isotonic regression of the support score, class-balanced, on "
                f"the calibration part ({len(setup.parts['calibration'])} questions, "
                f"{len(cal_claims.labels)} claims)",
                "held_out": f"{len(setup.parts['held-out'])} CLAPNQ questions and amnesty_qa",
                "embedding_model": embedder.name,
                "seed": SEED,
                "code_commit": commit,
                "fitted_on": dt.date.today().isoformat(),
            },
        }
        target = ROOT / "evalkit" / "answers" / CALIBRATION_FILE
        target.write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {target}")
    else:
        model, calibration = DEFAULT_SUPPORT_MODEL, DEFAULT_CALIBRATION

    held = labelled_claims(raw, setup, setup.parts["held-out"])
    held_support = model.probability(*held.features.T)
    held_probability = calibration.apply(held_support)
    v1 = V1_SUPPORT_MODEL.probability(*held.features.T)
    print(
        f"\nReliability on held-out claims ({len(held.labels)}; supported and unsupported "
        "weighted half each):"
    )
    print("| calibrated probability | claims | mean probability | observed supported share |")
    print("|---|---|---|---|")
    for name, n, predicted, observed in reliability(held_probability, held.labels):
        print(f"| {name} | {n} | {predicted:.3f} | {observed:.3f} |")
    errors = [
        expected_calibration_error(values, held.labels)
        for values in (held_probability, held_support, v1)
    ]
    print(
        f"expected calibration error: calibrated {errors[0]:.3f}, uncalibrated support score "
        f"{errors[1]:.3f}, offline-v1 weights {errors[2]:.3f}"
    )
    supported = held_probability >= 0.5
    print(
        f"claims at 0.5: supported found {supported[held.labels == 1].mean():.3f}, unsupported "
        f"found {(~supported[held.labels == 0]).mean():.3f}; mean probability of supported "
        f"claims {held_probability[held.labels == 1].mean():.3f} (offline-v1 "
        f"{v1[held.labels == 1].mean():.3f}); claim ROC AUC "
        f"{auc(held.labels, held_probability):.3f}"
    )

    shipped = OfflineFaithfulness(embedder, model=model, calibration=calibration)  # type: ignore[arg-type]
    shipped_v2 = OfflineFaithfulness(
        embedder,  # type: ignore[arg-type]
        model=model,
        calibration=calibration,
        version="offline-v2",
    )
    legacy = OfflineFaithfulness(
        embedder,  # type: ignore[arg-type]
        model=V1_SUPPORT_MODEL,
        calibration=IDENTITY_CALIBRATION,
        legacy_units=True,
    )
    scorers: dict[str, Scorer] = {
        "offline-embedding (v3, human-rating calibration, default)": method_scorer(shipped),
        "offline-embedding (v2, calibrated)": method_scorer(shipped_v2),
        "offline-v1 (today)": method_scorer(legacy),
        "peer: mean best cosine": peer_scorer(shipped),
    }
    if args.nli_model is not None:
        from evalkit.answers.nli import NLIFaithfulness

        scorers["offline-nli (" + args.nli_model.name + ")"] = method_scorer(
            NLIFaithfulness(args.nli_model)
        )
    print("\nAgreement with the labels, answer level (bootstrap 95 % intervals):")
    for line in agreement(answer_sets(setup, rng), scorers, resamples=args.bootstrap):
        print(line)
    embedder.save()
    if not args.no_speed:
        print("\nSpeed (CPU seconds per answer):")
        for line in speed(setup, args.speed_answers):
            print(line)
    print(f"\n{time.perf_counter() - started:.0f} s in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
