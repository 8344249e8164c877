"""Query topics on real text: SciFact's claims as the reference window, then a window with
Vaswani's physics queries mixed in. The refitted set finds physics as a new topic, named by
its terms; the share test flags the grown slice; over windows drawn from one population the
Benjamini-Hochberg correction keeps false flags at its rate."""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path

import numpy as np
import pytest
from demo_index import minilm

from evalkit.drift.slices import SlicedQuery, SliceFigures, slice_changes, slice_figures
from evalkit.drift.topics import OUTSIDE, TopicSet, fit_topics, match_topics, topic_slice
from evalkit.errors import ConfigError

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
SCIFACT = SHARED / "beir_scifact" / "queries.jsonl"
VASWANI = SHARED / "vaswani_npl" / "tests" / "fixtures" / "vaswani_npl" / "query-text.trec"


@cache
def queries() -> tuple[list[str], list[str]]:
    """SciFact's claims and Vaswani's queries (lower-cased: NPL's are in capitals)."""
    claims = [json.loads(line)["text"] for line in SCIFACT.read_text().splitlines()]
    topics = re.findall(r"<title>\s*(.*?)\s*</title>", VASWANI.read_text(), re.DOTALL)
    return claims, [" ".join(text.split()).lower() for text in topics]


@cache
def vectors(texts: tuple[str, ...]) -> np.ndarray:
    return minilm().embed(list(texts))


MODEL = "minilm-test"


def _window(labels: np.ndarray) -> list:
    """The slice figures of a window whose queries are in the topics ``labels``."""
    return slice_figures(
        [
            SlicedQuery(str(n), (topic_slice(int(label)),), None, False)
            for n, label in enumerate(labels)
        ]
    )


def _counted(counts: np.ndarray) -> list[SliceFigures]:
    """A window's slices by their query counts alone (what the share test reads)."""
    total = int(counts.sum())
    return [
        SliceFigures(name, int(n), total, n / total, 0.0, 1.0, *[None] * 7)
        for name, n in [("all", total), *((f"topic:{i}", c) for i, c in enumerate(counts))]
        if n
    ]


pytestmark = pytest.mark.skipif(not SCIFACT.is_file(), reason="../shared/data is not present")


def test_a_foreign_domain_is_a_new_topic_named_by_its_terms_and_its_share_flagged() -> None:
    claims, physics = queries()
    reference = tuple(claims[:400])
    mixed = tuple(claims[400:700] + physics)
    topics = fit_topics(vectors(reference), reference, model_fingerprint=MODEL, seed=0)
    assert 2 <= len(topics.topics) <= 40
    assert sum(topic.reference_share for topic in topics.topics) == pytest.approx(1.0)
    assert (
        topics.version
        == fit_topics(vectors(reference), reference, model_fingerprint=MODEL, seed=0).version
    )

    # Against the reference topics, physics is outside every one of them: against a window
    # of unseen claims, that slice grew, and no other did (the others' shares shrank by the
    # quarter of the window physics took).
    labels = topics.assign(vectors(mixed), MODEL)
    baseline = topics.assign(vectors(tuple(claims[700:1000])), MODEL)
    assert np.mean(labels[len(claims[400:700]) :] == OUTSIDE) > 0.8
    assert np.mean(baseline == OUTSIDE) < 0.1, "a few unseen claims of the domain, too"
    changes = slice_changes(_window(baseline), _window(labels))
    assert [change.slice for change in changes if change.grew] == ["topic:outside"]

    # Refitted on the mixed window: physics is a topic of its own, new against the old set.
    refit = fit_topics(vectors(mixed), mixed, model_fingerprint=MODEL, seed=0)
    match = match_topics(topics, refit)
    refit_labels = refit.assign(vectors(mixed), MODEL)
    is_physics = np.arange(len(mixed)) >= len(claims[400:700])
    foreign = [
        n
        for n in range(len(refit.topics))
        if (refit_labels == n).any() and is_physics[refit_labels == n].mean() > 0.8
    ]
    assert foreign, [topic.terms for topic in refit.topics]
    assert np.isin(refit_labels[is_physics], foreign).mean() > 0.8
    for number in foreign:
        topic = refit.topics[number]
        assert number in match.new, (match, topic)
        # Named by words of the physics queries, distinctive of them.
        words = [set(re.findall(r"[a-z]+", query)) for query in physics]
        claimed = [set(re.findall(r"[a-z]+", claim.lower())) for claim in claims[400:700]]
        for term in topic.terms[:3]:
            assert sum(term in w for w in words) > sum(term in w for w in claimed), topic
        assert set(topic.central_queries) <= set(mixed[len(claims[400:700]) :])
    domain = [n for n in range(len(refit.topics)) if n not in foreign]
    assert sum(n in match.same for n in domain) >= len(domain) * 0.7, match


def test_a_set_matches_itself_and_refuses_vectors_of_another_model() -> None:
    claims, _ = queries()
    texts = tuple(claims[:200])
    topics = fit_topics(vectors(texts), texts, model_fingerprint=MODEL, n_topics=6, seed=1)
    match = match_topics(topics, topics)
    assert match.same == {n: n for n in range(6)}
    assert (match.new, match.gone) == ((), ())
    with pytest.raises(ConfigError, match="fit the topics again with this model"):
        topics.assign(vectors(texts), "another-model")
    with pytest.raises(ConfigError, match="topics need at least 20"):
        fit_topics(vectors(texts[:5]), texts[:5], model_fingerprint=MODEL)
    with pytest.raises(ConfigError, match="n_topics must be between 2 and 100"):
        fit_topics(vectors(texts), texts, model_fingerprint=MODEL, n_topics=101)


def test_the_reference_window_is_outside_as_often_as_unseen_queries_of_its_population() -> None:
    claims, _ = queries()
    reference = tuple(claims[:400])
    topics = fit_topics(vectors(reference), reference, model_fingerprint=MODEL, seed=0)
    in_sample = np.mean(topics.assign(vectors(reference), MODEL) == OUTSIDE)
    held_out = np.mean(topics.assign(vectors(reference), MODEL, reference=True) == OUTSIDE)
    unseen = np.mean(topics.assign(vectors(tuple(claims[400:1000])), MODEL) == OUTSIDE)
    # Measured against centroids they made, reference queries are almost never outside;
    # each left out of its own, they are outside about as often as unseen claims.
    assert in_sample < held_out
    assert abs(held_out - unseen) < 0.05, (in_sample, held_out, unseen)
    assert TopicSet.from_dict(topics.to_dict()).version == topics.version


def test_over_windows_of_one_population_false_flags_stay_within_the_rate() -> None:
    rng = np.random.default_rng(7)
    shares = rng.dirichlet(np.ones(30))
    windows = 400
    flagged_windows = 0
    for _ in range(windows):
        reference = rng.multinomial(2000, shares)
        current = rng.multinomial(2000, shares)
        changes = slice_changes(_counted(reference), _counted(current), false_discovery_rate=0.05)
        flagged_windows += any(change.grew or change.shrank for change in changes)
    # Every slice unchanged: a window with any flag is a false discovery, and BH holds its
    # rate (0.05) for such windows; the bound leaves room for 400 windows' sampling error.
    assert flagged_windows / windows <= 0.08, flagged_windows
