"""False-alarm rate, power and speed of every drift method on real query embeddings.

Embeds the BEIR SciFact queries (1,109) and the Vaswani (NPL) topics (93) with evalkit's
default model, then for each registered method measures, over seeded trials:

* false alarms: reference and current windows of ``--n`` SciFact queries drawn from two
  disjoint random halves (no drift exists, so every detection is a false alarm);
* power on a domain change: SciFact vs Vaswani. Vaswani has only 93 topics, so
  ``vaswani_resampled`` draws ``--n`` of them with replacement and ``vaswani_all`` uses the
  93 once each against ``--n`` SciFact queries;
* power on partial drift: ``mix_5`` / ``mix_10`` replace 5 % / 10 % of the current window
  with Vaswani topics; ``topic_skew`` oversamples one k-means cluster of SciFact (5x
  weight), a shift of emphasis within the same domain;
* large windows: ``corpus_no_drift`` draws ``--corpus-n`` SciFact *documents* per window
  from two disjoint halves of the 5,183-document corpus (this is where ``auto`` switches
  from exact ``mmd`` to ``moments`` and ``mmd`` to random Fourier features);
  ``corpus_bursts`` is no drift either, but both windows arrive in bursts of 10 related
  documents (a random document of the corpus and its 9 nearest neighbours), as traffic
  does; ``corpus_mix_2`` / ``corpus_mix_5`` replace 2 % / 5 % of the current window with
  Vaswani documents; ``corpus_skew`` draws both windows with replacement from the two
  halves, giving one of 8 k-means topic clusters twice the weight in the current window.

A method may carry settings: ``classifier:null=permutation,n_permutations=50``. The
extra method ``classifier_cv_mann_whitney`` is the rejected design that evalkit does not
offer (a Mann-Whitney p-value for the cross-validated AUC), kept here so its measured
false-alarm rate can be reproduced.

Needs ../shared/data. Embeddings are cached under ``--cache-dir`` (default
reports/drift_cache, which git ignores). BLAS runs single-threaded and times are CPU time
per test (fit + test), so they do not depend on what else the machine runs.

    .venv/bin/python benchmarks/drift_calibration.py --trials 200 --n 200
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from evalkit.drift import DriftDetector, DriftResult, available_methods, make_detector  # noqa: E402
from evalkit.drift.classifier import out_of_fold_scores  # noqa: E402

SHARED = REPO.parent / "shared" / "data"
SCIFACT_QUERIES = SHARED / "beir_scifact" / "queries.jsonl"
SCIFACT_CORPUS = SHARED / "beir_scifact" / "corpus.jsonl"
VASWANI_TOPICS = SHARED / "vaswani_npl" / "tests" / "fixtures" / "vaswani_npl" / "query-text.trec"

Pair = tuple[np.ndarray, np.ndarray]


def scifact_texts() -> list[str]:
    """The 1,109 SciFact query texts."""
    with SCIFACT_QUERIES.open(encoding="utf-8") as handle:
        return [json.loads(line)["text"] for line in handle if line.strip()]


def scifact_documents() -> list[str]:
    """The 5,183 SciFact abstracts as evalkit embeds documents: title, newline, text."""
    with SCIFACT_CORPUS.open(encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle if line.strip()]
    return [f"{row['title']}\n{row['text']}" if row["title"] else row["text"] for row in rows]


def vaswani_documents(limit: int = 3000) -> list[str]:
    """The first ``limit`` Vaswani (NPL) abstracts (TREC <DOC> blocks)."""
    path = VASWANI_TOPICS.parent / "corpus" / "doc-text.trec"
    text = path.read_text(encoding="utf-8", errors="replace")
    bodies = re.findall(r"</DOCNO>(.*?)</DOC>", text, flags=re.DOTALL)
    return [" ".join(body.split()) for body in bodies[:limit]]


def vaswani_texts() -> list[str]:
    """The 93 Vaswani topic titles (TREC <top> blocks)."""
    text = VASWANI_TOPICS.read_text(encoding="utf-8", errors="replace")
    titles = re.findall(r"<title>(.*?)</title>", text, flags=re.DOTALL)
    return [" ".join(title.split()) for title in titles]


def cached_embeddings(texts: list[str], cache_dir: Path, name: str) -> np.ndarray:
    """Embed ``texts`` with the default model, reusing a cache keyed by the texts' hash."""
    digest = hashlib.sha256("\n".join(texts).encode()).hexdigest()[:16]
    path = cache_dir / f"{name}_{digest}.npy"
    if path.exists():
        return np.load(path)
    from evalkit.embedding import load_embedder

    vectors = load_embedder().embed(texts)
    cache_dir.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)
    return vectors


def clusters(vectors: np.ndarray, n_clusters: int = 8) -> np.ndarray:
    """Seeded k-means labels of the SciFact queries (topic groups for ``topic_skew``)."""
    from sklearn.cluster import KMeans

    return KMeans(n_clusters=n_clusters, n_init=4, random_state=0).fit_predict(vectors)


def scenarios(
    scifact: np.ndarray,
    vaswani: np.ndarray,
    n: int,
    corpus: np.ndarray | None = None,
    corpus_n: int = 2000,
    foreign_corpus: np.ndarray | None = None,
) -> dict[str, Callable[[np.random.Generator], Pair]]:
    """Window pair generators; each takes the trial's generator."""
    topic = clusters(scifact)

    def halves(rng: np.random.Generator, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        order = rng.permutation(rows.shape[0])
        half = rows.shape[0] // 2
        return order[:half], order[half:]

    def disjoint_windows(rows: np.ndarray, size: int) -> Callable[[np.random.Generator], Pair]:
        def draw(rng: np.random.Generator) -> Pair:
            first, second = halves(rng, rows)
            return rows[rng.choice(first, size, replace=False)], rows[
                rng.choice(second, size, replace=False)
            ]

        return draw

    def vaswani_resampled(rng: np.random.Generator) -> Pair:
        return scifact[rng.choice(scifact.shape[0], n, replace=False)], vaswani[
            rng.choice(vaswani.shape[0], n, replace=True)
        ]

    def vaswani_all(rng: np.random.Generator) -> Pair:
        return scifact[rng.choice(scifact.shape[0], n, replace=False)], vaswani[
            rng.permutation(vaswani.shape[0])
        ]

    def mix(share: float) -> Callable[[np.random.Generator], Pair]:
        def draw(rng: np.random.Generator) -> Pair:
            first, second = halves(rng, scifact)
            foreign = round(share * n)
            current = np.vstack(
                [
                    scifact[rng.choice(second, n - foreign, replace=False)],
                    vaswani[rng.choice(vaswani.shape[0], foreign, replace=False)],
                ]
            )
            return scifact[rng.choice(first, n, replace=False)], current

        return draw

    def topic_skew(rng: np.random.Generator) -> Pair:
        first, second = halves(rng, scifact)
        favoured = rng.integers(topic.max() + 1)
        weights = np.where(topic[second] == favoured, 5.0, 1.0)
        chosen = rng.choice(second, n, replace=False, p=weights / weights.sum())
        return scifact[rng.choice(first, n, replace=False)], scifact[chosen]

    def bursts(rng: np.random.Generator, length: int = 10) -> np.ndarray:
        assert corpus is not None
        rows = []
        for seed_row in rng.choice(corpus.shape[0], -(-corpus_n // length), replace=False):
            nearest = np.argsort(-(corpus @ corpus[seed_row]))[:length]
            rows.append(corpus[nearest])
        return np.vstack(rows)[:corpus_n]

    def corpus_bursts(rng: np.random.Generator) -> Pair:
        return bursts(rng), bursts(rng)

    def corpus_mix(share: float) -> Callable[[np.random.Generator], Pair]:
        def draw(rng: np.random.Generator) -> Pair:
            assert corpus is not None
            assert foreign_corpus is not None
            first, second = halves(rng, corpus)
            foreign = round(share * corpus_n)
            current = np.vstack(
                [
                    corpus[rng.choice(second, corpus_n - foreign, replace=False)],
                    foreign_corpus[rng.choice(foreign_corpus.shape[0], foreign, replace=False)],
                ]
            )
            return corpus[rng.choice(first, corpus_n, replace=False)], current[
                rng.permutation(corpus_n)
            ]

        return draw

    corpus_topic = clusters(corpus) if corpus is not None else None

    def corpus_skew(rng: np.random.Generator) -> Pair:
        assert corpus is not None
        assert corpus_topic is not None
        first, second = halves(rng, corpus)
        favoured = rng.integers(corpus_topic.max() + 1)
        weights = np.where(corpus_topic[second] == favoured, 2.0, 1.0)
        # With replacement on both sides: without, a window of most of a half would be
        # nearly the whole half whatever the weights.
        chosen = rng.choice(second, corpus_n, replace=True, p=weights / weights.sum())
        return corpus[rng.choice(first, corpus_n, replace=True)], corpus[chosen]

    generators: dict[str, Callable[[np.random.Generator], Pair]] = {
        "no_drift": disjoint_windows(scifact, n),
        "vaswani_resampled": vaswani_resampled,
        "vaswani_all": vaswani_all,
        "mix_10": mix(0.10),
        "mix_5": mix(0.05),
        "topic_skew": topic_skew,
    }
    if corpus is not None:
        generators["corpus_no_drift"] = disjoint_windows(corpus, corpus_n)
        generators["corpus_bursts"] = corpus_bursts
        generators["corpus_skew"] = corpus_skew
    if corpus is not None and foreign_corpus is not None:
        generators["corpus_mix_2"] = corpus_mix(0.02)
        generators["corpus_mix_5"] = corpus_mix(0.05)
    return generators


class CrossValidatedMannWhitney(DriftDetector):
    """5-fold out-of-fold logistic-regression AUC with a Mann-Whitney p-value (too liberal)."""

    method = "classifier_cv_mann_whitney"

    def _test(self, reference: np.ndarray, current: np.ndarray) -> DriftResult:
        from scipy.stats import mannwhitneyu

        m, n = reference.shape[0], current.shape[0]
        labels = np.concatenate([np.zeros(m, np.int8), np.ones(n, np.int8)])
        scores, _ = out_of_fold_scores(
            np.vstack([reference, current]),
            labels,
            n_splits=5,
            regularization=1.0,
            seed=int(self.seed or 0),
        )
        test = mannwhitneyu(scores[m:], scores[:m], alternative="greater")
        auc = float(test.statistic) / (m * n)
        return self._result(
            statistic=auc,
            p_value=float(test.pvalue),
            effect_size=auc - 0.5,
            n_reference=m,
            n_current=n,
            seed=self.seed,
            details={},
        )


def build(method: str, **settings: Any) -> DriftDetector:
    """A registered detector, or the rejected cross-validated Mann-Whitney design."""
    if method == CrossValidatedMannWhitney.method:
        return CrossValidatedMannWhitney(**settings)
    return make_detector(method, **settings)


def sequential_table(seeds: int, warmups: list[int], runs: int) -> None:
    """False alarms and detection delays of CUSUM and Page-Hinkley with default settings.

    Series: ``warmup`` + ``runs`` values of N(0.6, 0.02); drops of 1, 2 and 3 sd start at
    monitored run 30. Each warm-up in ``warmups`` gets its rows.
    """
    from evalkit.drift import cusum, page_hinkley

    print(f"sequential: {runs} monitored runs after the warm-up, {seeds} seeds, sd 0.02")
    print(
        "| detector | warm-up | alert false alarms | warning false alarms | drop | "
        "median delay | alerted within 10 runs |"
    )
    print("|---|---|---|---|---|---|---|")
    for warmup in warmups:
        change = warmup + 30
        for name, detect in (("cusum", cusum), ("page_hinkley", page_hinkley)):
            alerts = warnings = 0
            delays: dict[int, list[float]] = {1: [], 2: [], 3: []}
            for seed in range(seeds):
                rng = np.random.default_rng(seed)
                values = 0.6 + 0.02 * rng.standard_normal(warmup + runs)
                trace = detect(values, warmup=warmup)
                alerts += trace.first_alert is not None
                warnings += trace.first_warning is not None
                for size, found in delays.items():
                    dropped = values.copy()
                    dropped[change:] -= 0.02 * size
                    first = detect(dropped, warmup=warmup).first_alert
                    found.append(math.inf if first is None else first - change)
            for size, found in delays.items():
                delay = np.array(found)
                within = np.mean((delay >= 0) & (delay < 10))
                print(
                    f"| {name} | {warmup} | {alerts / seeds:.3f} | {warnings / seeds:.3f} | "
                    f"{size} sd | {np.median(delay):.0f} | {within:.3f} |"
                )


def wilson(successes: int, trials: int) -> str:
    """A rate with its 95 % Wilson score interval."""
    z = 1.959963984540054
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials))
    half /= 1 + z * z / trials
    return f"{p:.3f} [{centre - half:.3f}, {centre + half:.3f}]"


def sequential_defaults(seeds: int) -> None:
    """False alarms of the sequential checks with the settings users get, on stable series.

    * the ``precision_regression`` rule (``page_hinkley`` / ``cusum``) and the ``drift_check``
      metric stream: warm-up ``METRIC_STREAM_WARMUP`` (5), evaluated after every run; the
      rate is that of a critical alert (or any warning) at least once within the series'
      first 100 and 200 runs, warm-up included (the rule reads ``history`` = 200 runs);
    * ``evalkit drift precision`` (``watch_drops``: warm-up half the series, 5 to 10),
      checked after every run: Page-Hinkley at ``alert`` on the newest run at least once by
      run 20, 100 and 200 (its paired test adds its own ``--alpha`` per check).

    Series of N(0.6, 0.02) run means, ``seeds`` of them.
    """
    from evalkit.drift import AlertLevel, sequential_trace
    from evalkit.drift.watch import watch_drops
    from evalkit.records.requests import METRIC_STREAM_WARMUP

    lengths = (100, 200)
    print(f"\nsequential defaults: {seeds} stable series of N(0.6, 0.02), rate [95 % Wilson]")
    print("| check | warm-up | by run | critical alert at least once | warning or alert |")
    print("|---|---|---|---|---|")
    for method in ("page_hinkley", "cusum"):
        alerts = dict.fromkeys(lengths, 0)
        flagged = dict.fromkeys(lengths, 0)
        for seed in range(seeds):
            values = np.random.default_rng(seed).normal(0.6, 0.02, max(lengths))
            # The trace is causal: its level at run i is what an evaluation after run i saw.
            levels = sequential_trace(method, values, warmup=METRIC_STREAM_WARMUP).levels
            for length in lengths:
                seen = levels[:length]
                alerts[length] += AlertLevel.ALERT in seen
                flagged[length] += any(level is not AlertLevel.OK for level in seen)
        for length in lengths:
            print(
                f"| rule / metric stream, {method} | {METRIC_STREAM_WARMUP} | {length} | "
                f"{wilson(alerts[length], seeds)} | {wilson(flagged[length], seeds)} |"
            )
    checkpoints = (20, 100, 200)
    watched = dict.fromkeys(checkpoints, 0)
    for seed in range(seeds):
        values = np.random.default_rng(seed).normal(0.6, 0.02, max(checkpoints))
        first = None
        # Below 20 runs the warm-up grows with the series: each check has its own trace.
        for length in range(3, 20):
            if (
                watch_drops(values[:length], warmup=None, h_warning=5.0, h_alert=8.0).levels[-1]
                == "alert"
            ):
                first = length
                break
        if first is None:
            # From 20 runs the warm-up is 10 and the trace is causal: one pass sees every check.
            levels = watch_drops(values, warmup=None, h_warning=5.0, h_alert=8.0).levels
            alarmed = [index + 1 for index in range(19, len(levels)) if levels[index] == "alert"]
            first = alarmed[0] if alarmed else None
        for checkpoint in checkpoints:
            watched[checkpoint] += first is not None and first <= checkpoint
    for checkpoint in checkpoints:
        print(
            f"| evalkit drift precision (Page-Hinkley) | half the series, 5-10 | {checkpoint} | "
            f"{wilson(watched[checkpoint], seeds)} | |"
        )


def sequential_recovery(seeds: int) -> None:
    """How soon a sequential alert clears once the retriever is fixed, and how often it
    clears while a drop goes on, with the recovery reset and without it (the same detector
    with ``RECOVERY_RUNS`` out of reach, as before the reset existed).

    Outage: the rule's 5-run warm-up of N(0.6, 0.02), 10 runs 3 sd down, then back at 0.6;
    "runs to clear" counts the runs after the fix up to the first evaluated ``ok`` (101: not
    within 100). Deterministic: the same with no noise (sd floored at ``min_sd``). Sustained:
    20 warm-up runs, then 80 runs 1 or 2 sd down; the share of alerted series that read
    ``ok`` again before the end.
    """
    from unittest import mock

    from evalkit.drift import AlertLevel, sequential, sequential_trace
    from evalkit.records.requests import METRIC_STREAM_WARMUP

    def runs_to_clear(method: str, values: np.ndarray, fixed: int) -> int:
        levels = sequential_trace(method, values, warmup=METRIC_STREAM_WARMUP).levels
        clear = [i for i in range(fixed, len(levels)) if levels[i] is AlertLevel.OK]
        return clear[0] - fixed + 1 if clear else 101

    print(f"\nsequential recovery: {seeds} series each")
    print(
        "| detector | reset | outage: runs to clear, median (p90) | deterministic outage | "
        "cleared during a 1 sd drop | during a 2 sd drop |"
    )
    print("|---|---|---|---|---|---|")
    warmup = METRIC_STREAM_WARMUP
    for method in ("page_hinkley", "cusum"):
        for reset in (True, False):
            with mock.patch.object(
                sequential, "RECOVERY_RUNS", sequential.RECOVERY_RUNS if reset else 10**9
            ):
                cleared = []
                for seed in range(seeds):
                    rng = np.random.default_rng(seed)
                    values = 0.6 + 0.02 * rng.standard_normal(warmup + 110)
                    values[warmup : warmup + 10] -= 0.06
                    cleared.append(runs_to_clear(method, values, warmup + 10))
                flat = np.full(warmup + 110, 0.6)
                flat[warmup : warmup + 10] -= 0.06
                deterministic = runs_to_clear(method, flat, warmup + 10)
                flapped = {}
                for size in (1, 2):
                    alerted = clear = 0
                    for seed in range(seeds):
                        values = np.random.default_rng(seed).normal(0.6, 0.02, 100)
                        values[20:] -= 0.02 * size
                        levels = sequential_trace(method, values, warmup=20).levels
                        if AlertLevel.ALERT in levels:
                            alerted += 1
                            first = levels.index(AlertLevel.ALERT)
                            clear += AlertLevel.OK in levels[first:]
                    flapped[size] = wilson(clear, max(alerted, 1))
            print(
                f"| {method} | {'yes' if reset else 'no'} | {np.median(cleared):.0f} "
                f"({np.percentile(cleared, 90):.0f}) | "
                f"{'never' if deterministic > 100 else deterministic} | "
                f"{flapped[1]} | {flapped[2]} |"
            )


def parse_method(text: str) -> tuple[str, dict[str, Any]]:
    """``name`` or ``name:key=value,key=value`` (values parsed as JSON when they can be)."""
    name, _, options = text.partition(":")
    settings: dict[str, Any] = {}
    for option in filter(None, options.split(",")):
        key, _, value = option.partition("=")
        try:
            settings[key] = json.loads(value)
        except json.JSONDecodeError:
            settings[key] = value
    return name, settings


def measure(
    method: str,
    settings: dict[str, Any],
    draw: Callable[[np.random.Generator], Pair],
    trials: int,
    base_seed: int,
) -> tuple[float, float]:
    """(detection rate, mean CPU seconds per test) over ``trials`` seeded window pairs.

    CPU time of this process (BLAS is single-threaded here) rather than wall time, so the
    figure does not depend on what else the machine runs.
    """
    detections = 0
    elapsed = 0.0
    for trial in range(trials):
        rng = np.random.default_rng([base_seed, trial])
        reference, current = draw(rng)
        detector = build(method, seed=trial, **settings)
        start = time.process_time()
        result = detector.fit(reference).test(current)
        elapsed += time.process_time() - start
        detections += result.is_drift
    return detections / trials, elapsed / max(trials, 1)


def main() -> None:
    """Run every scenario for every method and print a Markdown table (and JSON)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--power-trials", type=int, default=100)
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--corpus-n", type=int, default=2000)
    parser.add_argument("--corpus-trials", type=int, default=100)
    parser.add_argument("--methods", nargs="*", default=list(available_methods()))
    parser.add_argument("--scenarios", nargs="*", default=None)
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--cache-dir", type=Path, default=REPO / "reports" / "drift_cache")
    parser.add_argument("--json", type=Path, default=None, help="also write results here")
    parser.add_argument(
        "--sequential-seeds",
        type=int,
        default=0,
        help="only simulate CUSUM / Page-Hinkley on this many seeded series (no data needed)",
    )
    parser.add_argument("--sequential-warmup", type=int, nargs="+", default=[20])
    parser.add_argument(
        "--sequential-defaults",
        type=int,
        default=0,
        help="only simulate the alert rule, the metric stream and `evalkit drift precision` "
        "with their default settings on this many stable series",
    )
    parser.add_argument(
        "--sequential-recovery",
        type=int,
        default=0,
        help="only simulate how soon a sequential alert clears after a fix, and how often "
        "it clears during a drop, on this many series",
    )
    arguments = parser.parse_args()
    if arguments.sequential_recovery:
        sequential_recovery(arguments.sequential_recovery)
        return
    if arguments.sequential_seeds:
        sequential_table(arguments.sequential_seeds, arguments.sequential_warmup, 100)
    if arguments.sequential_defaults:
        sequential_defaults(arguments.sequential_defaults)
    if arguments.sequential_seeds or arguments.sequential_defaults:
        return
    if not SHARED.is_dir():
        sys.exit(f"{SHARED} is not present: this benchmark needs the shared reference data")

    scifact = cached_embeddings(scifact_texts(), arguments.cache_dir, "scifact_queries")
    vaswani = cached_embeddings(vaswani_texts(), arguments.cache_dir, "vaswani_topics")
    chosen_names = arguments.scenarios or []
    corpus = foreign_corpus = None
    if not chosen_names or any(name.startswith("corpus") for name in chosen_names):
        corpus = cached_embeddings(scifact_documents(), arguments.cache_dir, "scifact_corpus")
    if not chosen_names or any(name.startswith("corpus_mix") for name in chosen_names):
        foreign_corpus = cached_embeddings(
            vaswani_documents(), arguments.cache_dir, "vaswani_corpus"
        )
    print(f"SciFact queries {scifact.shape}, Vaswani topics {vaswani.shape}, n={arguments.n}")
    pairs = scenarios(scifact, vaswani, arguments.n, corpus, arguments.corpus_n, foreign_corpus)
    chosen = chosen_names or list(pairs)
    rows: list[dict[str, Any]] = []
    with threadpool_limits(1):
        for label in arguments.methods:
            method, settings = parse_method(label)
            row: dict[str, Any] = {"method": label}
            total_seconds = large_seconds = 0.0
            total_trials = large_trials = 0
            for index, scenario in enumerate(chosen):
                large = scenario.startswith("corpus")
                trials = (
                    arguments.corpus_trials
                    if large
                    else arguments.trials
                    if scenario == "no_drift"
                    else arguments.power_trials
                )
                rate, seconds = measure(
                    method, {"alpha": arguments.alpha, **settings}, pairs[scenario], trials, index
                )
                row[scenario] = rate
                row[f"{scenario}_trials"] = trials
                if large:
                    large_seconds += seconds * trials
                    large_trials += trials
                else:
                    total_seconds += seconds * trials
                    total_trials += trials
                row[f"{scenario}_ms"] = 1000 * seconds
                print(
                    f"  {label:12s} {scenario:18s} rate {rate:.3f} ({trials} trials, "
                    f"{1000 * seconds:.1f} CPU ms/test)",
                    flush=True,
                )
            row["ms_per_test"] = 1000 * total_seconds / max(total_trials, 1)
            row["large_ms_per_test"] = 1000 * large_seconds / max(large_trials, 1)
            rows.append(row)

    any_large = any(scenario.startswith("corpus") for scenario in chosen)
    any_small = any(not scenario.startswith("corpus") for scenario in chosen)
    header = ["method", *chosen]
    if any_small:
        header.append(f"CPU ms/test (n={arguments.n})")
    if any_large:
        header.append(f"CPU ms/test (n={arguments.corpus_n})")
    print()
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        cells = [row["method"]]
        for scenario in chosen:
            rate = row[scenario]
            trials = row[f"{scenario}_trials"]
            sd = math.sqrt(max(rate * (1 - rate), 1e-12) / trials)
            cells.append(f"{rate:.3f} ± {sd:.3f}")
        if any_small:
            cells.append(f"{row['ms_per_test']:.1f}")
        if any_large:
            cells.append(f"{row['large_ms_per_test']:.1f}")
        print("| " + " | ".join(cells) + " |")
    if arguments.json:
        arguments.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
