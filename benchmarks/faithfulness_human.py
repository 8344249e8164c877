"""Fit offline-v3's answer calibration on human faithfulness ratings, and measure it.

Data (read from ../shared/data, never copied; the script exits when it is absent):
``mtrag_faithfulness/calibration.jsonl``, the calibration part of IBM's MTRAG human
evaluations (Apache-2.0): 267 answers to 89 multi-turn tasks (the human reference, gpt-4o
and llama-3.1-405b-instruct), each with the median of its annotators' faithfulness ratings
(1-4, 4 = fully faithful). The rest of the rated tasks are kept aside by the data's owners
to check the result; nothing here reads them.

The method: offline-v2's expected share of supported claims ``s`` (support model and claim
calibration as committed in ``offline_calibration.json``, unchanged) goes through
``sigmoid(a + b * logit(s))``, fitted by maximum likelihood to "rated 4" (a plain
two-parameter logistic regression, Newton's method, no penalty). The stored value is then the
probability that a person rates the answer fully faithful. The map is strictly increasing:
within one fold it ranks answers exactly as offline-v2 does.

Cross-validation by task, never by answer: a task's three answers share a fold (tasks
ordered by the SHA-256 of their id, dealt to 5 folds in turn), each fold's answers are
scored by the map fitted on the other four, and every figure below is computed on those
out-of-fold scores. Intervals:
95 % bootstrap over tasks (a task's three answers drawn together), 1,000 resamples, seed
``SEED``. Spearman and AUC of offline-v2 are computed on the same folds (within each fold,
then averaged over the five; and pooled) and on the same resamples.

``--features`` also cross-validates what claim-level features add: a logistic regression on
logit(share) plus the claims' mean and lowest similarity and coverage, the share of claims
with a negation, whether a number of the answer is absent from the contexts, and the share
of its capitalised words absent from them.

Run:

    nice -n 10 .venv/bin/python benchmarks/faithfulness_human.py [--write] [--features]

``--write`` writes the map fitted on all 267 answers, with its provenance and the
cross-validated figures, to ``evalkit/answers/offline_calibration_v3.json``; without it the
script compares the fit with the committed one.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import rankdata, spearmanr

from evalkit.answers import AnswerRecord
from evalkit.answers.offline import (
    CALIBRATION_V3_FILE,
    AnswerCalibration,
    ClaimSupport,
    OfflineFaithfulness,
    fitted_parameters_v3,
)

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / ".." / "shared" / "data" / "mtrag_faithfulness" / "calibration.jsonl"
SEED = 20261125
FOLDS = 5
RESAMPLES = 1000
FLOOR = 1e-3
TARGETS = {"rated_4_mean_min": 0.80, "rated_1_2_mean_max": 0.45}
GENERATORS = ("reference", "gpt-4o", "llama-3.1-405b-instruct")


@dataclass(frozen=True)
class Rated:
    """The rated answers: records, median human rating, task id and generator of each."""

    records: list[AnswerRecord]
    ratings: np.ndarray
    tasks: np.ndarray
    generators: np.ndarray


def load_ratings(path: Path = DATA) -> Rated:
    """The MTRAG calibration part as answer records with their ratings."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    records = [
        AnswerRecord(
            id=f"{row['task_id']}|{row['model_id']}",
            question=row["question"],
            answer=row["answer"],
            contexts=tuple(row["contexts"]),
        )
        for row in rows
    ]
    return Rated(
        records=records,
        ratings=np.asarray([int(row["human"]) for row in rows]),
        tasks=np.asarray([row["task_id"] for row in rows]),
        generators=np.asarray([row["model_id"] for row in rows]),
    )


def folds_of(tasks: np.ndarray) -> np.ndarray:
    """Each answer's fold: tasks ordered by the SHA-256 of their id are dealt to the folds in
    turn (folds of 17-18 tasks), and all answers of a task share its fold."""
    order = sorted(set(tasks.tolist()), key=lambda task: hashlib.sha256(task.encode()).hexdigest())
    fold = {task: rank % FOLDS for rank, task in enumerate(order)}
    return np.asarray([fold[task] for task in tasks.tolist()])


def logit(share: np.ndarray) -> np.ndarray:
    clipped = np.clip(share, FLOOR, 1.0 - FLOOR)
    return np.asarray(np.log(clipped / (1.0 - clipped)))


def fit_logistic(features: np.ndarray, labels: np.ndarray, *, ridge: float = 0.0) -> np.ndarray:
    """Maximum-likelihood logistic regression (intercept first), by Newton's method.

    ``ridge`` adds an L2 penalty on the slopes (not the intercept)."""
    design = np.column_stack([np.ones(len(labels)), features])
    beta = np.zeros(design.shape[1])
    penalty = np.full(design.shape[1], ridge)
    penalty[0] = 0.0
    for _ in range(100):
        p = 1.0 / (1.0 + np.exp(-(design @ beta)))
        gradient = design.T @ (labels - p) - penalty * beta
        hessian = (design * (p * (1 - p))[:, None]).T @ design + np.diag(penalty)
        step = np.linalg.solve(hessian, gradient)
        beta += step
        if np.abs(step).max() < 1e-10:
            break
    return beta


def fit_answer_calibration(shares: np.ndarray, rated_4: np.ndarray) -> AnswerCalibration:
    """The map from the share to P(rated 4), rounded as it is committed."""
    intercept, slope = fit_logistic(logit(shares)[:, None], rated_4.astype(float))
    return AnswerCalibration(intercept=round(float(intercept), 4), slope=round(float(slope), 4))


def out_of_fold(
    fit: Callable[[np.ndarray], Callable[[np.ndarray], np.ndarray]],
    n: int,
    folds: np.ndarray,
) -> np.ndarray:
    """Each answer's value from a model fitted on the other folds: ``fit(train_index)``
    returns a function of the test index."""
    values = np.empty(n)
    for fold in range(FOLDS):
        test = np.flatnonzero(folds == fold)
        train = np.flatnonzero(folds != fold)
        values[test] = fit(train)(test)
    return values


def spearman(ratings: np.ndarray, values: np.ndarray) -> float:
    return float(spearmanr(ratings, values).statistic)


def auc(ratings: np.ndarray, values: np.ndarray) -> float:
    """Area under the ROC curve of ``values`` for "rated 4", by the rank-sum statistic (ties
    count one half): scikit-learn's ``roc_auc_score`` to rounding, without its input checks,
    which took most of the bootstrap's 1,000 resamples."""
    positive = ratings == 4
    n_positive = int(positive.sum())
    n_negative = len(positive) - n_positive
    rank_sum = float(rankdata(values)[positive].sum())
    return (rank_sum - n_positive * (n_positive + 1) / 2) / (n_positive * n_negative)


def rated_4_mean(ratings: np.ndarray, values: np.ndarray) -> float:
    return float(values[ratings == 4].mean())


def rated_1_2_mean(ratings: np.ndarray, values: np.ndarray) -> float:
    return float(values[ratings <= 2].mean())


STATISTICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "rated_4_mean": rated_4_mean,
    "rated_3_mean": lambda r, v: float(v[r == 3].mean()),
    "rated_1_2_mean": rated_1_2_mean,
    "spearman": spearman,
    "auc_rated_4": auc,
}


def task_bootstrap(
    ratings: np.ndarray, tasks: np.ndarray, columns: dict[str, np.ndarray]
) -> dict[str, dict[str, list[float]]]:
    """95 % intervals of every statistic of every column (and of v3 - v2 for the ranking
    statistics), resampling tasks with their answers, the same draws for every column."""
    rng = np.random.default_rng(SEED)
    unique = np.unique(tasks)
    rows_of = {task: np.flatnonzero(tasks == task) for task in unique}
    draws: dict[str, dict[str, list[float]]] = {
        name: {stat: [] for stat in STATISTICS} for name in columns
    }
    draws["v3 - v2"] = {"spearman": [], "auc_rated_4": []}
    for _ in range(RESAMPLES):
        chosen = rng.choice(unique, size=len(unique), replace=True)
        index = np.concatenate([rows_of[task] for task in chosen])
        r = ratings[index]
        if (r == 4).all() or (r != 4).all() or not (r <= 2).any() or not (r == 3).any():
            continue
        for name, values in columns.items():
            for stat, function in STATISTICS.items():
                draws[name][stat].append(function(r, values[index]))
        for stat in ("spearman", "auc_rated_4"):
            draws["v3 - v2"][stat].append(
                STATISTICS[stat](r, columns["offline-v3"][index])
                - STATISTICS[stat](r, columns["offline-v2"][index])
            )
    return {
        name: {
            stat: [round(float(x), 3) for x in np.percentile(values, [2.5, 97.5])]
            for stat, values in stats.items()
        }
        for name, stats in draws.items()
    }


def per_fold(ratings: np.ndarray, folds: np.ndarray, values: np.ndarray) -> dict[str, float]:
    """Spearman and AUC within each fold, averaged over the folds."""
    rho, area = [], []
    for fold in range(FOLDS):
        mask = folds == fold
        rho.append(spearman(ratings[mask], values[mask]))
        area.append(auc(ratings[mask], values[mask]))
    return {
        "spearman": round(float(np.mean(rho)), 3),
        "auc_rated_4": round(float(np.mean(area)), 3),
    }


def shares_of(rated: Rated) -> np.ndarray:
    """offline-v2's value of every rated answer (the share of supported claims)."""
    scores = OfflineFaithfulness(version="offline-v2").score(rated.records)
    values = [score.value for score in scores]
    if any(value is None for value in values):
        missing = [s.item_id for s in scores if s.value is None]
        raise SystemExit(f"unmeasured rated answers: {missing}")
    return np.asarray(values, dtype=np.float64)


def evaluate(rated: Rated, shares: np.ndarray) -> dict[str, Any]:
    """The cross-validated figures of offline-v3 beside offline-v2, and the full fit."""
    folds = folds_of(rated.tasks)
    rated_4 = rated.ratings == 4

    def fit(train: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
        calibration = fit_answer_calibration(shares[train], rated_4[train])
        return lambda test: calibration.apply(shares[test])

    v3 = out_of_fold(fit, len(shares), folds)
    columns = {"offline-v2": shares, "offline-v3": v3}
    point = {
        name: {stat: round(f(rated.ratings, values), 3) for stat, f in STATISTICS.items()}
        for name, values in columns.items()
    }
    by_generator = {
        generator: {
            name: {
                stat: round(STATISTICS[stat](rated.ratings[mask], values[mask]), 3)
                for stat in ("rated_4_mean", "spearman", "auc_rated_4")
            }
            for name, values in columns.items()
        }
        | {"n": int(mask.sum()), "n_rated_4": int((rated.ratings[mask] == 4).sum())}
        for generator in GENERATORS
        for mask in [rated.generators == generator]
    }
    return {
        "calibration": fit_answer_calibration(shares, rated_4),
        "v3": v3,
        "folds": folds,
        "figures": {
            "point": point,
            "interval_95": task_bootstrap(rated.ratings, rated.tasks, columns),
            "within_folds": {
                name: per_fold(rated.ratings, folds, v) for name, v in columns.items()
            },
            "by_generator": by_generator,
            "fold_sizes": [int((folds == fold).sum()) for fold in range(FOLDS)],
        },
    }


NEGATION = re.compile(r"\b(?:not|no|never|none|cannot|without|nor)\b|n't\b", re.IGNORECASE)
NUMBER = re.compile(r"\b\d[\d,.]*\b")
CAPITALISED = re.compile(r"(?<=\w\s)[A-Z][a-zA-Z]+")


def claim_features(rated: Rated, shares: np.ndarray) -> np.ndarray:
    """Per answer: logit(share), mean and lowest claim similarity and coverage, share of
    claims with a negation, a number absent from the contexts, share of capitalised words
    absent from them."""
    method = OfflineFaithfulness(version="offline-v2")
    rows = []
    for record, result, share in zip(
        rated.records, method.analyse(rated.records), shares, strict=True
    ):
        assert isinstance(result, ClaimSupport)
        context = " ".join(record.contexts)
        lower = context.lower()
        numbers = [n.strip(".,") for c in result.claims for n in NUMBER.findall(c)]
        names = [w for c in result.claims for w in CAPITALISED.findall(c)]
        rows.append(
            [
                logit(np.asarray([share]))[0],
                result.similarity.mean(),
                result.similarity.min(),
                np.average(result.coverage, weights=result.weights),
                result.coverage.min(),
                np.mean([bool(NEGATION.search(c)) for c in result.claims]),
                float(any(n not in context for n in numbers)),
                np.mean([w.lower() not in lower for w in names]) if names else 0.0,
            ]
        )
    return np.asarray(rows)


def features_row(rated: Rated, shares: np.ndarray, folds: np.ndarray) -> dict[str, float]:
    features = claim_features(rated, shares)
    rated_4 = (rated.ratings == 4).astype(float)

    def fit(train: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
        mean, std = features[train].mean(axis=0), features[train].std(axis=0) + 1e-9
        beta = fit_logistic((features[train] - mean) / std, rated_4[train], ridge=1.0)

        def predict(test: np.ndarray) -> np.ndarray:
            z = beta[0] + ((features[test] - mean) / std) @ beta[1:]
            return np.asarray(1.0 / (1.0 + np.exp(-z)))

        return predict

    values = out_of_fold(fit, len(shares), folds)
    row = {stat: round(f(rated.ratings, values), 3) for stat, f in STATISTICS.items()}
    return row | {f"within_folds_{k}": v for k, v in per_fold(rated.ratings, folds, values).items()}


def table(figures: dict[str, Any]) -> list[str]:
    point, interval = figures["point"], figures["interval_95"]
    lines = [
        "| method | rated 4: mean | rated 3: mean | rated 1-2: mean | Spearman with the rating"
        " | AUC for rated 4 |",
        "|---|---|---|---|---|---|",
    ]
    for name in ("offline-v2", "offline-v3"):
        cells = [
            f"{point[name][stat]:.3f} [{interval[name][stat][0]:.3f}, "
            f"{interval[name][stat][1]:.3f}]"
            for stat in STATISTICS
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--features", action="store_true")
    args = parser.parse_args()
    if not DATA.is_file():
        print(f"{DATA} is absent: nothing to fit")
        return 0
    started = time.perf_counter()
    rated = load_ratings()
    shares = shares_of(rated)
    result = evaluate(rated, shares)
    calibration: AnswerCalibration = result["calibration"]
    figures = result["figures"]
    print(
        f"{len(rated.records)} rated answers, {len(np.unique(rated.tasks))} tasks, folds of "
        f"{figures['fold_sizes']} answers"
    )
    print(f"fitted on all:  {calibration}")
    print(f"committed:      {AnswerCalibration(**fitted_parameters_v3()['answer_calibration'])}")
    print("\nCross-validated by task (95 % bootstrap intervals over tasks):")
    for line in table(figures):
        print(line)
    print(f"v3 - v2, bootstrap: {figures['interval_95']['v3 - v2']}")
    print(f"within folds (mean of 5): {figures['within_folds']}")
    print("\nBy generator (cross-validated values):")
    print("| generator | answers (rated 4) | method | rated 4: mean | Spearman | AUC for rated 4 |")
    print("|---|---|---|---|---|---|")
    for generator, row in figures["by_generator"].items():
        for name in ("offline-v2", "offline-v3"):
            print(
                f"| {generator} | {row['n']} ({row['n_rated_4']}) | {name} | "
                f"{row[name]['rated_4_mean']:.3f} | {row[name]['spearman']:.3f} | "
                f"{row[name]['auc_rated_4']:.3f} |"
            )
    if args.features:
        print("\nWith claim-level features (cross-validated the same way):")
        print(features_row(rated, shares, result["folds"]))
    if args.write:
        commit = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        counts = {str(k): int((rated.ratings == k).sum()) for k in (1, 2, 3, 4)}
        payload = {
            "answer_calibration": {
                "intercept": calibration.intercept,
                "slope": calibration.slope,
                "floor": calibration.floor,
            },
            "provenance": {
                "script": "benchmarks/faithfulness_human.py --write",
                "data": "MTRAG human faithfulness ratings, calibration part "
                "(../shared/data/mtrag_faithfulness/calibration.jsonl, Apache-2.0): "
                f"{len(rated.records)} answers, {len(np.unique(rated.tasks))} tasks, "
                f"median rating counts {counts}",
                "target": "rated 4 (fully faithful) by the annotators' median",
                "method": "logistic regression of rated 4 on logit(offline-v2 share), "
                "maximum likelihood, on all answers",
                "builds_on": "offline_calibration.json (offline-v2's support model and claim "
                "calibration, unchanged)",
                "cross_validation": f"{FOLDS} folds by task (tasks ordered by the SHA-256 of "
                "their id, dealt to the folds in turn), never by answer",
                "bootstrap": f"{RESAMPLES} resamples of tasks, seed {SEED}",
                "embedding_model": "sentence-transformers/all-MiniLM-L6-v2",
                "code_commit": commit,
                "fitted_on": dt.date.today().isoformat(),
            },
            "targets": TARGETS,
            "cross_validated": figures,
        }
        target = ROOT / "evalkit" / "answers" / CALIBRATION_V3_FILE
        target.write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {target}")
    print(f"\n{time.perf_counter() - started:.0f} s in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
