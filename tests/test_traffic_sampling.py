"""Sampling traffic windows: quotas, strata, dedup, seeds and uniformity."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.stats import chisquare

from evalkit.errors import ConfigError
from evalkit.store import Store
from evalkit.store.traffic import draw_window_queries, load_sample_queries
from evalkit.traffic import (
    SampleSpec,
    allocate_quotas,
    ingest_paths,
    parse_stratification,
    parse_window,
    sample_window,
)

DAY = parse_window("2026-11-21")


def ingest_records(store: Store, tmp_path: Path, records: list[dict[str, object]]) -> None:
    log = tmp_path / f"log-{len(list(tmp_path.glob('log-*')))}.jsonl"
    log.write_text("".join(json.dumps(record) + "\n" for record in records))
    report = ingest_paths(store, [log])
    assert report.malformed == 0


def record(query_id: str, text: str, *, hour: int = 10, **extra: object) -> dict[str, object]:
    return {
        "query_id": query_id,
        "timestamp": f"2026-11-21T{hour:02d}:00:00Z",
        "text": text,
        **extra,
    }


# -- quotas ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sizes", "n", "minimum", "expected"),
    [
        # Proportional: 10 split 50:30:20.
        ([50, 30, 20], 10, 0, [5, 3, 2]),
        # The floor lifts the small tenant to 5, taken from the large one (not added on top).
        ([1000, 10], 100, 5, [95, 5]),
        # A stratum smaller than the floor gives all it has.
        ([1000, 3], 100, 5, [97, 3]),
        # Floors alone exceed n: every floor is kept (the minimum is a guarantee).
        ([100, 100, 100], 6, 5, [5, 5, 5]),
        # n larger than the population: everything.
        ([4, 2], 50, 0, [4, 2]),
        # Largest remainders: 7 * (1/3 each) = 2.33 -> 2, 2, 2 and one extra to the first.
        ([10, 10, 10], 7, 0, [3, 2, 2]),
        # 10 * [0.55, 0.45] = 5.5 / 4.5: equal remainders, the earlier stratum gets the extra one.
        ([55, 45], 10, 0, [6, 4]),
        # An empty stratum gets nothing even with a floor.
        ([0, 10], 4, 2, [0, 4]),
    ],
)
def test_quotas_by_hand(sizes: list[int], n: int, minimum: int, expected: list[int]) -> None:
    assert allocate_quotas(sizes, n, minimum=minimum).tolist() == expected


@given(
    sizes=st.lists(st.integers(min_value=0, max_value=500), min_size=1, max_size=12),
    n=st.integers(min_value=0, max_value=2000),
    minimum=st.integers(min_value=0, max_value=40),
)
def test_quotas_respect_floors_sizes_and_total(sizes: list[int], n: int, minimum: int) -> None:
    quota = allocate_quotas(sizes, n, minimum=minimum)
    size = np.array(sizes)
    floor = np.minimum(size, minimum)
    assert (quota >= floor).all()
    assert (quota <= size).all()
    assert quota.sum() == max(min(n, size.sum()), floor.sum())
    # Above the floors, no stratum is favoured over a larger one.
    lifted = quota > floor
    if lifted.sum() >= 2:
        ratios = quota[lifted] / size[lifted]
        assert ratios.max() - ratios.min() <= 1.0 / size[lifted].min() + 1e-9


def test_quota_inputs_are_checked() -> None:
    with pytest.raises(ConfigError):
        allocate_quotas([3, -1], 2)
    with pytest.raises(ConfigError):
        allocate_quotas([3], -1)


# -- samples --------------------------------------------------------------------------------


def test_same_seed_same_sample_and_another_seed_another(store: Store, tmp_path: Path) -> None:
    ingest_records(store, tmp_path, [record(f"q{i}", f"question {i}") for i in range(200)])
    spec = SampleSpec(window=DAY, n=20, seed=3)
    first = load_sample_queries(store, sample_window(store, spec).sample_id)
    again = load_sample_queries(store, sample_window(store, spec).sample_id)
    other = load_sample_queries(
        store, sample_window(store, SampleSpec(window=DAY, n=20, seed=4)).sample_id
    )
    assert len(first) == 20
    assert first["query_id"].tolist() == again["query_id"].tolist()
    assert set(first["query_id"]) != set(other["query_id"])


def test_sample_does_not_depend_on_ingest_order(tmp_path: Path) -> None:
    records = [record(f"q{i}", f"question {i}") for i in range(60)]
    drawn = []
    for name, ordered in (("forward", records), ("backward", records[::-1])):
        with Store.open(tmp_path / f"{name}.duckdb") as store:
            folder = tmp_path / name
            folder.mkdir()
            ingest_records(store, folder, ordered)
            sample = sample_window(store, SampleSpec(window=DAY, n=10, seed=11))
            drawn.append(load_sample_queries(store, sample.sample_id)["query_id"].tolist())
    assert drawn[0] == drawn[1]


def test_identical_queries_count_once_within_a_window(store: Store, tmp_path: Path) -> None:
    ingest_records(
        store,
        tmp_path,
        [
            record("q1", "Reset my password", hour=9),
            record("q2", "reset   my password ", hour=8),
            record("q3", "RESET MY PASSWORD", hour=11),
            record("q4", "reset my password", tenant="acme"),
            record("q5", "refund policy"),
        ],
    )
    sample = sample_window(store, SampleSpec(window=DAY, n=10, seed=0))
    assert (sample.n_records, sample.n_distinct, sample.n_sampled) == (5, 3, 3)
    rows = load_sample_queries(store, sample.sample_id)
    kept = dict(zip(rows["query_id"], rows["n_duplicates"], strict=True))
    # The earliest of the three duplicates represents them; the tenant's query is its own.
    assert kept == {"q2": 3, "q4": 1, "q5": 1}
    undeduped = sample_window(store, SampleSpec(window=DAY, n=10, seed=0, dedup=False))
    assert undeduped.n_sampled == 5


def test_window_bounds_are_half_open(store: Store, tmp_path: Path) -> None:
    ingest_records(
        store,
        tmp_path,
        [
            {"query_id": "before", "timestamp": "2026-11-20T23:59:59.999Z", "text": "a"},
            {"query_id": "first", "timestamp": "2026-11-21T00:00:00Z", "text": "b"},
            {"query_id": "last", "timestamp": "2026-11-21T23:59:59.999999Z", "text": "c"},
            {"query_id": "after", "timestamp": "2026-11-22T00:00:00Z", "text": "d"},
        ],
    )
    sample = sample_window(store, SampleSpec(window=DAY, n=10, seed=0))
    ids = set(load_sample_queries(store, sample.sample_id)["query_id"])
    assert ids == {"first", "last"}


def test_stratified_by_tenant_keeps_the_minimum_of_every_tenant(
    store: Store, tmp_path: Path
) -> None:
    records = [record(f"big{i}", f"big question {i}", tenant="big") for i in range(300)]
    records += [record(f"small{i}", f"small question {i}", tenant="small") for i in range(8)]
    records += [record(f"none{i}", f"untenanted {i}") for i in range(30)]
    ingest_records(store, tmp_path, records)
    spec = SampleSpec(
        window=DAY, n=20, seed=5, stratify_by=parse_stratification("tenant"), min_per_stratum=5
    )
    sample = sample_window(store, spec)
    # Sizes 30 (none), 300, 8; floors 5 each; the rest of 20 goes to the big tenant.
    assert sample.quotas == {"": 5, "big": 10, "small": 5}
    rows = load_sample_queries(store, sample.sample_id)
    counts = Counter(None if t is None else t for t in rows["tenant"])
    assert counts == {None: 5, "big": 10, "small": 5}
    assert sample.stratify_by == "tenant"


def test_stratified_by_a_tag(store: Store, tmp_path: Path) -> None:
    records = [record(f"fr{i}", f"question fr {i}", tags={"locale": "fr"}) for i in range(40)] + [
        record(f"de{i}", f"question de {i}", tags={"locale": "de"}) for i in range(4)
    ]
    ingest_records(store, tmp_path, records)
    spec = SampleSpec(
        window=DAY, n=10, seed=1, stratify_by=parse_stratification("tag:locale"), min_per_stratum=3
    )
    sample = sample_window(store, spec)
    assert sample.quotas == {"de": 3, "fr": 7}
    strata = Counter(load_sample_queries(store, sample.sample_id)["stratum"])
    assert strata == {"de": 3, "fr": 7}


def test_empty_window_and_bad_specs_are_refused(store: Store) -> None:
    with pytest.raises(ConfigError, match="holds no ingested traffic"):
        sample_window(store, SampleSpec(window=DAY, n=5, seed=0))
    with pytest.raises(ConfigError, match="at least 1"):
        SampleSpec(window=DAY, n=0, seed=0)
    with pytest.raises(ConfigError, match="stratify"):
        parse_stratification("tag:has space")
    with pytest.raises(ConfigError, match="stratify"):
        parse_stratification("user")


def test_samples_are_uniform_over_distinct_queries(store: Store, tmp_path: Path) -> None:
    """Over 100 seeds each of 20 distinct queries is drawn equally often (chi-square)."""
    ingest_records(store, tmp_path, [record(f"q{i:02d}", f"question {i}") for i in range(20)])
    counts: Counter[str] = Counter()
    seeds = 100
    for seed in range(seeds):
        drawn = draw_window_queries(store, start=DAY.start, end=DAY.end, seed=seed, limit=5)
        assert len(set(drawn["query_id"])) == 5
        counts.update(drawn["query_id"])
    observed = np.array([counts[f"q{i:02d}"] for i in range(20)])
    assert observed.sum() == seeds * 5
    assert chisquare(observed).pvalue > 0.001


def test_a_sample_larger_than_the_store_counts_is_refused_up_front() -> None:
    with pytest.raises(ConfigError, match="at most 2147483647, got 99999999999999999999"):
        SampleSpec(window=DAY, n=99999999999999999999, seed=0)
