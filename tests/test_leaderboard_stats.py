"""Many-run leaderboard statistics: hand-computed cases, oracles (scipy, statsmodels, ranx),
letter displays on known structures, order invariance and bad input."""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import pytest
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st

from evalkit.errors import ConfigError, InputError
from evalkit.stats import (
    LatencySummary,
    LeaderboardOptions,
    PairedTestSettings,
    compact_letters,
    compare_runs,
    leaderboard_headers,
    leaderboard_latex,
    leaderboard_markdown,
    leaderboard_rows,
    pair_rows,
)
from evalkit.stats.leaderboard import _dihedral, _tukey_sums, leaderboard

MEASURE = "ndcg@10"


def frame(
    values: Mapping[str, Sequence[float] | np.ndarray], ids: list[str] | None = None
) -> pd.DataFrame:
    length = len(next(iter(values.values())))
    index = ids if ids is not None else [f"q{i}" for i in range(length)]
    return pd.DataFrame(values, index=pd.Index(index, name="query_id"))


def runs_from(matrix: np.ndarray, names: list[str] | None = None) -> dict[str, pd.DataFrame]:
    """One run per column of ``matrix`` (queries x runs)."""
    names = names or [f"run{r}" for r in range(matrix.shape[1])]
    return {name: frame({MEASURE: matrix[:, r]}) for r, name in enumerate(names)}


def correlated(n: int, shifts: list[float], *, seed: int, noise: float = 0.12) -> np.ndarray:
    """nDCG-like values: a shared per-query quality plus each run's shift and noise."""
    rng = np.random.default_rng(seed)
    quality = rng.beta(2.0, 3.0, size=n)[:, np.newaxis]
    noisy = quality + np.asarray(shifts) + rng.normal(0.0, noise, (n, len(shifts)))
    return np.asarray(np.clip(noisy, 0.0, 1.0), dtype=np.float64)


# Hand-computed ------------------------------------------------------------------------------

HAND = {
    "A": [0.9, 0.8, 0.7, 0.6],
    "B": [0.5, 0.6, 0.4, 0.5],
    "C": [0.5, 0.6, 0.4, 0.5],
}


def hand_runs() -> dict[str, pd.DataFrame]:
    return {name: frame({MEASURE: values}) for name, values in HAND.items()}


def test_hand_computed_means_effects_and_randomisation_p() -> None:
    board = leaderboard(hand_runs(), [MEASURE], options=LeaderboardOptions(resamples=20_000))
    measure = board.board(MEASURE)
    assert board.runs == ("A", "B", "C")
    assert board.n_queries == 4
    assert board.n_dropped == 0
    assert [s.mean for s in measure.standings] == pytest.approx([0.75, 0.5, 0.5])
    assert [s.rank for s in measure.standings] == [1, 2, 2]
    a_b = measure.pair("A", "B")
    assert a_b.delta == pytest.approx(0.25)
    # d = 0.4, 0.2, 0.3, 0.1: sd = sqrt(0.05 / 3).
    assert a_b.effect_size == pytest.approx(0.25 / math.sqrt(0.05 / 3))
    assert (a_b.wins, a_b.ties, a_b.losses) == (4, 0, 0)
    # Every difference is positive: only the all-plus and all-minus of the 16 sign vectors
    # reach |sum(d)|, so the exact p-value is 2/16.
    assert a_b.p_value == pytest.approx(0.125, abs=0.01)
    assert a_b.p_adjusted == pytest.approx(min(1.0, 3 * a_b.p_value), abs=1e-12)
    b_c = measure.pair("B", "C")
    assert (b_c.delta, b_c.ci_low, b_c.ci_high, b_c.effect_size) == (0.0, 0.0, 0.0, 0.0)
    assert b_c.p_value == 1.0
    assert (b_c.wins, b_c.ties, b_c.losses) == (0, 4, 0)
    assert measure.pair("B", "A") == a_b.reversed()
    assert measure.pair("B", "A").delta == pytest.approx(-0.25)
    # Four queries cannot show any difference after correction: one group.
    assert [s.letters for s in measure.standings] == ["a", "a", "a"]


def test_hand_computed_t_test_without_and_with_correction() -> None:
    uncorrected = leaderboard(
        hand_runs(), [MEASURE], options=LeaderboardOptions(test="t", correction="none")
    ).board(MEASURE)
    t_statistic = 0.25 / (math.sqrt(0.05 / 3) / 2.0)
    expected = 2.0 * scipy.stats.t.sf(t_statistic, 3)
    assert uncorrected.pair("A", "B").p_value == pytest.approx(expected, rel=1e-12)
    assert uncorrected.pair("A", "B").significant
    assert [s.letters for s in uncorrected.standings] == ["a", "b", "b"]
    holm = leaderboard(
        hand_runs(), [MEASURE], options=LeaderboardOptions(test="t", correction="holm")
    ).board(MEASURE)
    # Holm over (p, p, 1): 3p, then max(3p, 2p), then 1.
    assert holm.pair("A", "B").p_adjusted == pytest.approx(3 * expected, rel=1e-12)
    assert holm.pair("A", "C").p_adjusted == pytest.approx(3 * expected, rel=1e-12)
    assert [s.letters for s in holm.standings] == ["a", "a", "a"]
    assert holm.better_than("A") == ()
    assert uncorrected.better_than("A") == ("B", "C")


# Oracles ------------------------------------------------------------------------------------


def test_t_test_p_values_equal_scipy_ttest_rel() -> None:
    values = correlated(40, [0.0, 0.01, 0.05, 0.08, 0.02], seed=1)
    board = leaderboard(
        runs_from(values), [MEASURE], options=LeaderboardOptions(test="t", correction="none")
    ).board(MEASURE)
    for (i, j), pair in zip(itertools.combinations(range(5), 2), board.pairs, strict=True):
        assert (pair.first, pair.second) == (f"run{i}", f"run{j}")
        expected = scipy.stats.ttest_rel(values[:, i], values[:, j]).pvalue
        assert pair.p_value == pytest.approx(expected, rel=1e-9)
        assert pair.delta == pytest.approx(values[:, i].mean() - values[:, j].mean())


@pytest.mark.parametrize("test", ["randomization", "t"])
def test_holm_and_bonferroni_equal_statsmodels_multipletests(test: str) -> None:
    multitest = pytest.importorskip("statsmodels.stats.multitest")
    values = correlated(60, [0.0, 0.02, 0.04, 0.06, 0.08, 0.1], seed=2)
    runs = runs_from(values)

    def board(correction: str):  # type: ignore[no-untyped-def]
        options = LeaderboardOptions(test=test, correction=correction, resamples=4000)
        return leaderboard(runs, [MEASURE], options=options).board(MEASURE)

    raw = np.array([pair.p_value for pair in board("none").pairs])
    for method in ("holm", "bonferroni"):
        pairs = board(method).pairs
        reject, expected, _, _ = multitest.multipletests(raw, alpha=0.05, method=method)
        assert [pair.p_value for pair in pairs] == pytest.approx(raw.tolist(), abs=0.0)
        assert [pair.p_adjusted for pair in pairs] == pytest.approx(expected.tolist(), rel=1e-12)
        assert [pair.significant for pair in pairs] == reject.tolist()


@pytest.mark.slow
def test_corrections_are_per_measure() -> None:
    multitest = pytest.importorskip("statsmodels.stats.multitest")
    values = correlated(50, [0.0, 0.03, 0.06, 0.09], seed=3)
    other = correlated(50, [0.05, 0.0, 0.02, 0.0], seed=4)
    runs = {f"run{r}": frame({MEASURE: values[:, r], "recall@10": other[:, r]}) for r in range(4)}
    board = leaderboard(runs, [MEASURE, "recall@10"], options=LeaderboardOptions(test="t"))
    assert board.measures == (MEASURE, "recall@10")
    for measure in board.measures:
        pairs = board.board(measure).pairs
        expected = multitest.multipletests([p.p_value for p in pairs], method="holm")[1]
        assert [p.p_adjusted for p in pairs] == pytest.approx(expected.tolist(), rel=1e-12)


def _ranked_set(n_queries: int, skills: list[float], seed: int):  # type: ignore[no-untyped-def]
    """ranx Qrels and Runs of a small synthetic collection, and evalkit's per-query frames
    of the same runs (ranx's own nDCG@10 per query)."""
    ranx = pytest.importorskip("ranx")
    rng = np.random.default_rng(seed)
    depth = 20
    qrels: dict[str, dict[str, int]] = {}
    runs: list[dict[str, dict[str, float]]] = [{} for _ in skills]
    scores = np.linspace(1.0, 0.0, depth).tolist()
    for q in range(n_queries):
        relevant = int(rng.integers(1, 4))
        qrels[f"q{q}"] = {f"d{q}_{r}": int(rng.integers(1, 3)) for r in range(relevant)}
        hardness = rng.random() * 4
        for run, skill in zip(runs, skills, strict=True):
            ranks = np.minimum(rng.geometric(1.0 / (skill + hardness), size=relevant) - 1, 19)
            order = [f"d{q}_x{i}" for i in range(depth)]
            for r, rank in enumerate(ranks):
                order[rank] = f"d{q}_{r}"
            run[f"q{q}"] = dict(zip(order, scores, strict=True))
    names = [f"system_{i}" for i in range(len(skills))]
    ranx_qrels = ranx.Qrels(qrels)
    ranx_runs = [ranx.Run(run, name=name) for run, name in zip(runs, names, strict=True)]
    per_query = {
        name: frame(
            {MEASURE: ranx.evaluate(ranx_qrels, run, MEASURE, return_mean=False)},
            ids=list(qrels),
        )
        for name, run in zip(names, ranx_runs, strict=True)
    }
    return ranx, ranx_qrels, ranx_runs, per_query


@pytest.mark.slow
def test_randomisation_p_values_agree_with_ranx_fisher() -> None:
    ranx, qrels, runs, per_query = _ranked_set(120, [6.0, 5.0, 4.2, 3.5], seed=3)
    ours = leaderboard(
        per_query, [MEASURE], options=LeaderboardOptions(resamples=20_000, correction="none")
    ).board(MEASURE)
    permutations = 5000
    report = ranx.compare(
        qrels, runs, [MEASURE], stat_test="fisher", n_permutations=permutations, max_p=0.05
    ).to_dict()
    for pair in ours.pairs:
        theirs = report[pair.first]["comparisons"][pair.second][MEASURE]
        # Both are Monte Carlo estimates of the same exact p-value: allow 4.5 standard
        # errors of their difference, plus ranx's missing +1 correction.
        p = max(theirs, 1e-3)
        error = math.sqrt(p * (1 - p) * (1 / permutations + 1 / 20_000))
        assert pair.p_value == pytest.approx(theirs, abs=4.5 * error + 1 / permutations)
        assert report[pair.first]["scores"][MEASURE] == pytest.approx(
            ours.standing(pair.first).mean
        )


def test_tukey_agrees_with_ranx_tukey_on_weakly_correlated_runs() -> None:
    ranx, qrels, runs, per_query = _ranked_set(150, [6.0, 5.0, 4.0, 3.2], seed=3)
    report = ranx.compare(qrels, runs, [MEASURE], stat_test="tukey", max_p=0.05).to_dict()
    for test in ("randomization", "t"):
        options = LeaderboardOptions(test=test, correction="tukey", resamples=20_000)
        ours = leaderboard(per_query, [MEASURE], options=options).board(MEASURE)
        for pair in ours.pairs:
            theirs = report[pair.first]["comparisons"][pair.second][MEASURE]
            # ranx runs SciPy's one-way Tukey HSD, which ignores the pairing by query; on
            # runs the queries barely correlate the paired forms give nearly the same p.
            assert pair.p_adjusted == pytest.approx(theirs, abs=0.03), (test, pair)
            if abs(theirs - 0.05) > 0.02:
                assert pair.significant == (theirs <= 0.05)


def test_paired_tukey_has_more_power_than_one_way_when_queries_correlate_runs() -> None:
    values = correlated(200, [0.0, 0.02, 0.04], seed=5, noise=0.05)
    one_way = scipy.stats.tukey_hsd(*values.T).pvalue
    for test in ("randomization", "t"):
        options = LeaderboardOptions(test=test, correction="tukey", resamples=5000)
        board = leaderboard(runs_from(values), [MEASURE], options=options).board(MEASURE)
        assert board.pair("run0", "run2").p_adjusted < 0.001 < one_way[0, 2]


def test_tukey_of_two_runs_is_the_pairwise_test() -> None:
    values = correlated(60, [0.0, 0.03], seed=14)
    runs = runs_from(values)
    parametric = leaderboard(
        runs, [MEASURE], options=LeaderboardOptions(test="t", correction="tukey")
    ).board(MEASURE)
    # Two runs: the studentized range is sqrt(2) |t| on n - 1 degrees of freedom.
    expected = scipy.stats.ttest_rel(values[:, 0], values[:, 1]).pvalue
    assert parametric.pairs[0].p_adjusted == pytest.approx(expected, rel=1e-6)
    randomised = leaderboard(
        runs, [MEASURE], options=LeaderboardOptions(correction="tukey", resamples=20_000)
    ).board(MEASURE)
    pair = randomised.pairs[0]
    assert pair.p_adjusted == pytest.approx(pair.p_value, abs=4.5 * math.sqrt(0.25 / 10_000))


def test_randomised_tukey_matches_full_permutations() -> None:
    """The per-query permutations drawn from a relabelled dihedral group give the same
    p-values as uniformly random permutations of all the runs."""
    rng = np.random.default_rng(7)
    n, k = 30, 5
    values = correlated(n, [0.0, 0.02, 0.05, 0.06, 0.1], seed=8, noise=0.15)
    observed = np.abs(values.sum(axis=0)[:, None] - values.sum(axis=0)[None, :])
    centred = values - values.mean(axis=1, keepdims=True)
    full = 20_000
    ranges = np.empty(full)
    for start in range(0, full, 1000):
        shuffled = rng.permuted(np.broadcast_to(centred, (1000, n, k)), axis=2)
        sums = shuffled.sum(axis=1)
        ranges[start : start + 1000] = sums.max(axis=1) - sums.min(axis=1)
    relabel = np.argsort(rng.random((n, k)), axis=1)
    ours = _tukey_sums(centred, relabel, k, resamples=full, rng=np.random.default_rng(9))
    ours_ranges = np.ptp(ours, axis=1)
    for i, j in itertools.combinations(range(k), 2):
        p_full = (ranges >= observed[i, j] - 1e-9).mean()
        p_ours = (ours_ranges >= observed[i, j] - 1e-6).mean()
        error = math.sqrt(max(p_full, 1e-3) * (1 - p_full) * 2 / full)
        assert p_ours == pytest.approx(p_full, abs=4.5 * error + 1e-3), (i, j)


def test_dihedral_group_is_closed_and_holds_every_rotation() -> None:
    for k in (2, 3, 5, 8):
        group = {tuple(g) for g in _dihedral(k)}
        assert len(group) == (2 * k if k > 2 else 2)
        for g, h in itertools.product(group, repeat=2):
            assert tuple(np.asarray(g)[list(h)]) in group


def test_two_runs_p_value_close_to_the_gate() -> None:
    values = correlated(300, [0.0, 0.015], seed=6)
    runs = runs_from(values, ["base", "cand"])
    ours = leaderboard(runs, [MEASURE], options=LeaderboardOptions(resamples=20_000))
    gate = compare_runs(runs["base"], runs["cand"], PairedTestSettings(resamples=20_000)).metric(
        MEASURE
    )
    pair = ours.board(MEASURE).pair("cand", "base")
    assert pair.delta == pytest.approx(gate.delta)
    assert pair.effect_size == pytest.approx(gate.effect_size)
    assert pair.p_value == pytest.approx(gate.p_permutation, abs=0.01)
    assert pair.ci_low == pytest.approx(gate.ci_low, abs=0.002)
    assert pair.ci_high == pytest.approx(gate.ci_high, abs=0.002)


# Letters ------------------------------------------------------------------------------------


def significance(k: int, pairs: list[tuple[int, int]]) -> np.ndarray:
    matrix = np.zeros((k, k), dtype=bool)
    for i, j in pairs:
        matrix[i, j] = matrix[j, i] = True
    return matrix


def test_letters_of_known_structures() -> None:
    assert compact_letters([0.9, 0.5, 0.5], significance(3, [(0, 1), (0, 2)])) == ("a", "b", "b")
    assert compact_letters([0.5, 0.5], significance(2, [])) == ("a", "a")
    assert compact_letters([0.9, 0.7, 0.5], significance(3, [(0, 2)])) == ("a", "ab", "b")
    assert compact_letters([0.9, 0.8, 0.7, 0.6], significance(4, [(0, 2), (0, 3), (1, 3)])) == (
        "a",
        "ab",
        "bc",
        "c",
    )
    # The best run gets "a" wherever it is given.
    assert compact_letters([0.5, 0.9, 0.7], significance(3, [(1, 0)])) == ("b", "a", "ab")
    assert compact_letters([0.1, 0.2, 0.3], significance(3, [(0, 1), (0, 2), (1, 2)])) == (
        "c",
        "b",
        "a",
    )


def test_clearly_better_run_stands_alone_and_equal_runs_share_a_letter() -> None:
    values = correlated(400, [0.15, 0.0, 0.0, 0.0], seed=10)
    values[:, 2] = values[:, 1]
    board = leaderboard(runs_from(values), [MEASURE]).board(MEASURE)
    letters = [s.letters for s in board.standings]
    assert letters[0] == "a"
    assert all("a" not in other for other in letters[1:])
    assert letters[1] == letters[2]
    assert board.pair("run1", "run2").p_value == 1.0


def test_chain_on_real_values() -> None:
    values = correlated(150, [0.04, 0.02, 0.0], seed=56, noise=0.1)
    board = leaderboard(runs_from(values), [MEASURE], options=LeaderboardOptions(seed=1))
    measure = board.board(MEASURE)
    assert measure.pair("run0", "run2").significant
    assert not measure.pair("run0", "run1").significant
    assert not measure.pair("run1", "run2").significant
    assert [s.letters for s in measure.standings] == ["a", "ab", "b"]


@settings(max_examples=150, deadline=None)
@given(
    st.integers(min_value=2, max_value=7).flatmap(
        lambda k: st.tuples(
            st.permutations(list(range(k))),
            st.lists(st.booleans(), min_size=k * (k - 1) // 2, max_size=k * (k - 1) // 2),
            st.permutations(list(range(k))),
        )
    )
)
def test_letters_share_exactly_the_non_significant_pairs(case) -> None:  # type: ignore[no-untyped-def]
    ranking, flags, shuffle = case
    k = len(ranking)
    pairs = [p for p, flag in zip(itertools.combinations(range(k), 2), flags, strict=True) if flag]
    means = np.asarray(ranking, dtype=float)
    letters = compact_letters(means, significance(k, pairs))
    for i, j in itertools.combinations(range(k), 2):
        assert bool(set(letters[i]) & set(letters[j])) == ((i, j) not in pairs)
    assert "a" in letters[int(np.argmax(means))]
    # Given in another order, each run keeps its letters.
    order = list(shuffle)
    moved = significance(k, [(order.index(i), order.index(j)) for i, j in pairs])
    again = compact_letters(means[order], moved)
    assert [again[order.index(r)] for r in range(k)] == list(letters)


@settings(max_examples=25, deadline=None)
@given(
    st.integers(min_value=3, max_value=6),
    st.integers(min_value=0, max_value=10_000),
    st.randoms(use_true_random=False),
)
def test_any_order_of_the_runs_gives_the_same_letters(k: int, seed: int, shuffler) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed)
    shifts = rng.choice([0.0, 0.0, 0.05, 0.1, 0.2], size=k).tolist()
    values = np.round(correlated(25, shifts, seed=seed), 2)
    names = [f"r{chr(97 + i)}" for i in range(k)]
    runs = runs_from(values, names)
    shuffled = list(runs.items())
    shuffler.shuffle(shuffled)
    options = LeaderboardOptions(resamples=300, seed=seed)
    first = leaderboard(runs, [MEASURE], options=options).board(MEASURE)
    second = leaderboard(dict(shuffled), [MEASURE], options=options).board(MEASURE)
    for name in names:
        assert second.standing(name) == first.standing(name)
    for a, b in itertools.combinations(names, 2):
        assert second.pair(a, b) == first.pair(a, b)


# Coverage, output and errors ----------------------------------------------------------------


def test_queries_not_shared_are_dropped_and_counted() -> None:
    runs = {
        "x": frame({MEASURE: [0.1, 0.2, 0.3, 0.4]}, ["q1", "q2", "q3", "q4"]),
        "y": frame({MEASURE: [0.2, 0.3, 0.4]}, ["q2", "q3", "q4"]),
        "z": frame({MEASURE: [0.3, 0.3, 0.3, 0.9]}, ["q2", "q3", "q4", "q5"]),
    }
    board = leaderboard(runs, [MEASURE], options=LeaderboardOptions(resamples=200))
    assert board.n_queries == 3
    assert board.n_dropped == 2
    assert board.dropped_by_run == (1, 0, 1)
    assert board.board(MEASURE).standing("x").mean == pytest.approx(0.3)


def test_to_dict_is_json_without_nan_and_carries_latency() -> None:
    runs = {"x": frame({MEASURE: [0.5]}), "y": frame({MEASURE: [0.7]})}
    latency = {"y": LatencySummary(p50_ms=12.5, p95_ms=40.0)}
    board = leaderboard(runs, [MEASURE], options=LeaderboardOptions(test="t"), latency=latency)
    data = json.loads(json.dumps(board.to_dict(), allow_nan=False))
    assert data["runs"] == ["x", "y"]
    assert data["latency"] == {"x": None, "y": {"p50_ms": 12.5, "p95_ms": 40.0}}
    standing = data["metrics"][MEASURE]["standings"][0]
    assert (standing["ci_low"], standing["ci_high"]) == (None, None)
    pair = data["metrics"][MEASURE]["pairs"][0]
    assert pair["p_value"] == 1.0
    assert pair["effect_size"] is None
    assert data["options"]["correction"] == "holm"
    assert board.latency == (None, latency["y"])


def test_rows_and_markdown() -> None:
    values = correlated(200, [0.0, 0.08, 0.04], seed=12)
    latency = {"run1": LatencySummary(8.0, 20.5)}
    board = leaderboard(runs_from(values), [MEASURE], latency=latency)
    headers = leaderboard_headers(board)
    rows = leaderboard_rows(board)
    assert headers == ("#", "run", f"{MEASURE} [95 % CI]", f"{MEASURE} groups", "p50 ms", "p95 ms")
    assert [row[1] for row in rows] == ["run1", "run2", "run0"]
    best = board.board(MEASURE).standing("run1")
    assert rows[0] == (
        "1",
        "run1",
        f"{best.mean:.4f} [{best.ci_low:.4f}, {best.ci_high:.4f}]",
        best.letters,
        "8.0",
        "20.5",
    )
    assert rows[1][4:] == ("-", "-")
    assert all(len(row) == len(headers) for row in rows)
    pairs = pair_rows(board, MEASURE)
    assert len(pairs) == 3
    assert all(row[2].startswith("+") for row in pairs)
    markdown = leaderboard_markdown(board)
    assert "| 1 | run1 |" in markdown
    assert "200 queries shared by all 3 runs" in markdown
    assert "Holm across the 3 pairs" in markdown


def test_a_run_name_with_a_line_break_stays_on_its_markdown_row() -> None:
    values = correlated(60, [0.0, 0.2], seed=4)
    board = leaderboard(runs_from(values, ["plain", "two\nlines"]), [MEASURE])
    rows = [line for line in leaderboard_markdown(board).splitlines() if line.startswith("| ")]
    assert any(line.startswith("| 1 | two\\nlines |") for line in rows)
    assert not any(line.startswith("lines") for line in leaderboard_markdown(board).splitlines())


def test_latex_body_is_the_one_ranx_writes() -> None:
    ranx, qrels, runs, per_query = _ranked_set(150, [6.0, 5.0, 4.0, 3.2], seed=3)
    report = ranx.compare(qrels, runs, [MEASURE], stat_test="student", max_p=0.05)
    board = leaderboard(
        per_query, [MEASURE], options=LeaderboardOptions(test="t", correction="none")
    )

    def body(latex: str) -> str:
        return latex.split("\\midrule\n", 1)[1].split("\\bottomrule", 1)[0]

    ours = leaderboard_latex(board)
    assert body(ours) == body(report.to_latex())
    assert "\\textbf{NDCG@10}" in ours
    assert "paired t-test with $p \\le 0.05$" in ours


def test_bad_input_is_refused() -> None:
    one = {"x": frame({MEASURE: [0.1, 0.2]})}
    with pytest.raises(ConfigError, match="at least two runs"):
        leaderboard(one, [MEASURE])
    apart = {"x": frame({MEASURE: [0.1]}, ["q1"]), "y": frame({MEASURE: [0.2]}, ["q2"])}
    with pytest.raises(ConfigError, match="share no query"):
        leaderboard(apart, [MEASURE])
    two = {"x": frame({MEASURE: [0.1, 0.2]}), "y": frame({MEASURE: [0.3, 0.4]})}
    with_map = {**two, "x": frame({MEASURE: [0.1, 0.2], "map": [0.1, 0.1]})}
    with pytest.raises(InputError, match="run 'y' has no column for measures \\['map'\\]"):
        leaderboard(with_map, [MEASURE, "map"])
    with pytest.raises(InputError, match="no measures"):
        leaderboard(two, [])
    with pytest.raises(InputError, match="repeated"):
        leaderboard(two, [MEASURE, MEASURE])
    with pytest.raises(InputError, match="run 'y' has no finite ndcg@10 for queries q1"):
        leaderboard({**two, "y": frame({MEASURE: [0.3, float("nan")]})}, [MEASURE])
    with pytest.raises(InputError, match="more than one row for query ids q0"):
        leaderboard({**two, "y": frame({MEASURE: [0.3, 0.4]}, ["q0", "q0"])}, [MEASURE])
    with pytest.raises(InputError, match="must be a pandas DataFrame"):
        leaderboard({**two, "y": [0.3, 0.4]}, [MEASURE])  # type: ignore[dict-item]
    with pytest.raises(ConfigError, match="latency given for runs not ranked: w"):
        leaderboard(two, [MEASURE], latency={"w": LatencySummary(1.0, 2.0)})
    with pytest.raises(InputError, match="was not ranked"):
        leaderboard(two, [MEASURE], options=LeaderboardOptions(resamples=50)).board("map")


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"alpha": 0.0}, "alpha"),
        ({"confidence": 1.0}, "confidence"),
        ({"resamples": 0}, "resamples"),
        ({"resamples": True}, "resamples"),
        ({"seed": -1}, "seed"),
        ({"test": "wilcoxon"}, "unknown test 'wilcoxon'; choose one of randomization, t"),
        ({"correction": "sidak"}, "unknown correction 'sidak'; choose one of holm"),
    ],
)
def test_bad_options_are_refused(setting: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        LeaderboardOptions(**setting)  # type: ignore[arg-type]


def test_same_seed_same_figures() -> None:
    runs = runs_from(correlated(80, [0.0, 0.02, 0.04], seed=13))
    options = LeaderboardOptions(resamples=1000, seed=5, correction="tukey")
    assert leaderboard(runs, [MEASURE], options=options) == leaderboard(
        runs, [MEASURE], options=options
    )
