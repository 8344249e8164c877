"""Calibrate the offline faithfulness method and measure its agreement on held-out data.

Data (read from ../shared/data, never copied; the script exits when it is absent):

* CLAPNQ dev (answerable): 300 questions, each with one gold Wikipedia passage and an
  answer that annotators wrote from it. Questions are split in two halves by a hash of
  their id: the *calibration* half fits the support model, the *held-out* half measures it.
* amnesty_qa (20 questions): three contexts each, a reference answer written from them and
  an answer generated without them.

Labels, all from the data's own structure (no judge involved):

* claim level: a claim of the annotators' answer against its own passage is supported; the
  same claim against the passage of the most similar other question, or the claim with a
  third of its names and numbers swapped for others, is not;
* answer level: the answer with its passage is faithful; with the passage of the most
  similar other question (or a random one), it is not;
* graded: answers in which each claim was replaced, with probability 0, 1/4, 1/2, 3/4 or 1,
  by an unsupported one; the label is the share of claims left intact (Spearman);
* amnesty_qa: the reference answer is faithful to the contexts, the generated answer less
  so; and every answer against another question's contexts is unfaithful.

The named peer is the plain embedding baseline: an answer's score is the mean, over its
claims, of the best cosine similarity with a context unit (what the method does before
it adds word overlap and the support model).

Run: ``.venv/bin/python benchmarks/faithfulness.py [--memo FILE]`` (about 5,000 texts are
embedded once, a few minutes on one CPU core; ``--memo`` keeps the embeddings in a pickle
file between runs).
"""

from __future__ import annotations

import hashlib
import json
import pickle
import random
import re
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from evalkit.answers import AnswerRecord
from evalkit.answers.offline import (
    DEFAULT_SUPPORT_MODEL,
    OfflineFaithfulness,
    SupportModel,
    best_similarity,
    claim_token_features,
    context_units,
)
from evalkit.answers.sentences import split_claims
from evalkit.embedding import load_embedder

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
SEED = 20261121
SWAPPABLE = re.compile(r"\b(?:\d[\d,.]*\d|\d|[A-Z][a-z]+)\b")


class MemoEmbedder:
    """The embedder with a memo, so a text shared by several experiments is embedded once."""

    def __init__(self, memo_file: Path | None = None) -> None:
        self.inner = load_embedder()
        self.name = self.inner.name
        self.memo_file = memo_file
        self.memo: dict[str, np.ndarray] = {}
        if memo_file is not None and memo_file.is_file():
            with memo_file.open("rb") as handle:
                self.memo = pickle.load(handle)

    def save(self) -> None:
        if self.memo_file is not None:
            with self.memo_file.open("wb") as handle:
                pickle.dump(self.memo, handle)

    def embed(self, texts: list[str]) -> np.ndarray:
        missing = [text for text in dict.fromkeys(texts) if text not in self.memo]
        if missing:
            for text, vector in zip(missing, self.inner.embed(missing), strict=True):
                self.memo[text] = vector
        if not texts:
            return np.zeros((0, self.inner.dimension), dtype=np.float32)
        return np.stack([self.memo[text] for text in texts])


def load_clapnq() -> list[dict[str, str]]:
    path = DATA / "clapnq" / "annotated_data" / "dev" / "clapnq_dev_answerable.jsonl"
    items = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            answers = [o["answer"] for o in row["output"] if o["answer"].strip()]
            if answers and split_claims(answers[0]):
                items.append(
                    {
                        "id": str(row["id"]),
                        "question": row["input"],
                        "passage": row["passages"][0]["text"],
                        "answer": answers[0],
                    }
                )
    return items


def half(item_id: str) -> str:
    digit = int(hashlib.sha256(item_id.encode()).hexdigest(), 16) % 2
    return "calibration" if digit == 0 else "held-out"


def nearest_other(items: list[dict[str, str]], embedder: MemoEmbedder) -> np.ndarray:
    """For each item, the item whose passage opening is most similar (never itself)."""
    openings = [split_claims(item["passage"])[0] for item in items]
    vectors = embedder.embed(openings).astype(np.float64)
    similarity = vectors @ vectors.T
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


def claim_features(claims: list[str], contexts: list[str], embedder: MemoEmbedder) -> np.ndarray:
    """(similarity, coverage, salient) of each claim, as OfflineFaithfulness computes them."""
    similarity = best_similarity(
        embedder.embed(claims).astype(np.float64),
        embedder.embed(context_units(contexts)).astype(np.float64),
    )
    coverage, salient, _ = claim_token_features(claims, contexts)
    return np.column_stack([similarity, coverage, salient])


def labelled_claims(
    items: list[dict[str, str]],
    indices: list[int],
    near: np.ndarray,
    swaps: dict[tuple[int, str], str],
    embedder: MemoEmbedder,
) -> tuple[np.ndarray, np.ndarray]:
    features, labels = [], []
    for index in indices:
        item = items[index]
        claims = split_claims(item["answer"])
        own = claim_features(claims, [item["passage"]], embedder)
        other = claim_features(claims, [items[near[index]]["passage"]], embedder)
        features += [own, other]
        labels += [1] * len(claims) + [0] * len(claims)
        changed = [swaps[(index, c)] for c in claims if (index, c) in swaps]
        if changed:
            features.append(claim_features(changed, [item["passage"]], embedder))
            labels += [0] * len(changed)
    return np.vstack(features), np.asarray(labels)


def mean_cosine(records: list[AnswerRecord], embedder: MemoEmbedder) -> np.ndarray:
    """The peer: mean over claims of the best cosine similarity with a context unit."""
    values = []
    for record in records:
        claims = split_claims(record.answer)
        similarity = best_similarity(
            embedder.embed(claims).astype(np.float64),
            embedder.embed(context_units(record.contexts)).astype(np.float64),
        )
        values.append(float(similarity.mean()))
    return np.asarray(values)


def offline_scores(records: list[AnswerRecord], method: OfflineFaithfulness) -> np.ndarray:
    return np.asarray([score.value for score in method.score(records)], dtype=np.float64)


def report(name: str, labels: np.ndarray, ours: np.ndarray, peer: np.ndarray, n: int) -> None:
    if len(set(labels.tolist())) == 2:
        kind = "ROC AUC"
        mine, theirs = roc_auc_score(labels, ours), roc_auc_score(labels, peer)
    else:
        kind = "Spearman"
        mine, theirs = spearmanr(labels, ours).statistic, spearmanr(labels, peer).statistic
    print(f"{name:<58} {kind:<9} {mine:7.3f} {theirs:7.3f} {n:6d}")


def main() -> int:
    if not DATA.is_dir():
        print(f"{DATA} is absent: nothing to benchmark")
        return 0
    started = time.perf_counter()
    rng = random.Random(SEED)
    memo = Path(sys.argv[sys.argv.index("--memo") + 1]) if "--memo" in sys.argv else None
    embedder = MemoEmbedder(memo)
    items = load_clapnq()
    near = nearest_other(items, embedder)
    pool: dict[str, list[str]] = {"number": [], "name": []}
    for item in items:
        for match in SWAPPABLE.finditer(item["passage"]):
            pool["number" if match.group()[0].isdigit() else "name"].append(match.group())
    swaps: dict[tuple[int, str], str] = {}
    for index, item in enumerate(items):
        for claim in split_claims(item["answer"]):
            changed = swapped(claim, pool, rng)
            if changed is not None:
                swaps[(index, claim)] = changed
    calibration = [i for i, item in enumerate(items) if half(item["id"]) == "calibration"]
    held_out = [i for i, item in enumerate(items) if half(item["id"]) == "held-out"]

    features, labels = labelled_claims(items, calibration, near, swaps, embedder)
    fit = LogisticRegression(C=1.0, max_iter=1000).fit(features, labels)
    fitted = SupportModel(
        intercept=round(float(fit.intercept_[0]), 2),
        similarity=round(float(fit.coef_[0][0]), 2),
        coverage=round(float(fit.coef_[0][1]), 2),
        salient=round(float(fit.coef_[0][2]), 2),
    )
    print(f"calibration half: {len(calibration)} questions, {len(labels)} labelled claims")
    print(f"fitted support model:  {fitted}")
    print(f"shipped support model: {DEFAULT_SUPPORT_MODEL}")

    method = OfflineFaithfulness(embedder)  # type: ignore[arg-type]
    held_features, held_labels = labelled_claims(items, held_out, near, swaps, embedder)
    probability = DEFAULT_SUPPORT_MODEL.probability(
        held_features[:, 0], held_features[:, 1], held_features[:, 2]
    )
    supported = probability >= method.threshold
    print(
        f"\nheld-out half: {len(held_out)} questions; claim decisions at threshold "
        f"{method.threshold}: accuracy {np.mean(supported == held_labels):.3f}, "
        f"supported claims found {np.mean(supported[held_labels == 1]):.3f}, "
        f"unsupported claims found {np.mean(~supported[held_labels == 0]):.3f}"
    )
    print(f"\n{'task (held-out)':<58} {'measure':<9} {'offline':>7} {'peer':>7} {'n':>6}")
    report(
        "claims: supported vs other passage / swapped names",
        held_labels,
        probability,
        held_features[:, 0],
        len(held_labels),
    )

    def record(index: int, answer: str, passage: str, suffix: str) -> AnswerRecord:
        item = items[index]
        return AnswerRecord(
            id=f"{item['id']}-{suffix}",
            question=item["question"],
            answer=answer,
            contexts=(passage,),
        )

    faithful = [record(i, items[i]["answer"], items[i]["passage"], "own") for i in held_out]
    similar = [record(i, items[i]["answer"], items[near[i]]["passage"], "near") for i in held_out]
    shuffled = held_out[1:] + held_out[:1]
    random_other = [
        record(i, items[i]["answer"], items[j]["passage"], "random")
        for i, j in zip(held_out, shuffled, strict=True)
    ]
    for name, wrong in (
        ("answers: own passage vs most similar other passage", similar),
        ("answers: own passage vs random other passage", random_other),
    ):
        records = faithful + wrong
        truth = np.asarray([1] * len(faithful) + [0] * len(wrong))
        report(
            name,
            truth,
            offline_scores(records, method),
            mean_cosine(records, embedder),
            len(records),
        )

    graded, shares = [], []
    for repeat in range(3):
        for index in held_out:
            claims = split_claims(items[index]["answer"])
            others = split_claims(items[near[index]]["answer"]) or claims
            replace_probability = rng.choice([0.0, 0.25, 0.5, 0.75, 1.0])
            kept, mixed = 0, []
            for claim in claims:
                if rng.random() < replace_probability:
                    if (index, claim) in swaps and rng.random() < 0.5:
                        mixed.append(swaps[(index, claim)])
                    else:
                        mixed.append(rng.choice(others))
                else:
                    mixed.append(claim)
                    kept += 1
            shares.append(kept / len(claims))
            graded.append(record(index, " ".join(mixed), items[index]["passage"], f"g{repeat}"))
    report(
        "graded answers: share of intact claims",
        np.asarray(shares),
        offline_scores(graded, method),
        mean_cosine(graded, embedder),
        len(graded),
    )

    amnesty = json.loads((DATA / "amnesty_qa" / "english.json").read_text(encoding="utf-8"))
    n = len(amnesty["question"])
    base = [
        AnswerRecord(
            id=str(i),
            question=amnesty["question"][i],
            answer=amnesty["answer"][i],
            contexts=tuple(amnesty["contexts"][i]),
        )
        for i in range(n)
    ]
    references = [
        replace(r, id=f"{r.id}-ref", answer=amnesty["ground_truths"][int(r.id)][0]) for r in base
    ]
    records = references + base
    truth = np.asarray([1] * n + [0] * n)
    report(
        "amnesty_qa: reference vs generated answer, same contexts",
        truth,
        offline_scores(records, method),
        mean_cosine(records, embedder),
        len(records),
    )
    other_contexts = [
        replace(r, id=f"{r.id}-other", contexts=base[(i + n // 2) % n].contexts)
        for i, r in enumerate(references)
    ]
    records = references + other_contexts
    report(
        "amnesty_qa: reference answer, own vs other question's contexts",
        truth,
        offline_scores(records, method),
        mean_cosine(records, embedder),
        len(records),
    )
    embedder.save()
    elapsed = time.perf_counter() - started
    print(f"\n{len(embedder.memo)} distinct texts embedded; {elapsed:.0f} s in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
