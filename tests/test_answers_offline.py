"""The offline faithfulness method: its kernels by hand, and the method on real text."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from evalkit.answers import AnswerRecord, OfflineFaithfulness, score_answers
from evalkit.answers.offline import (
    DEFAULT_CALIBRATION,
    DEFAULT_SUPPORT_MODEL,
    IDENTITY_CALIBRATION,
    Calibration,
    ClaimSupport,
    SupportModel,
    best_similarity,
    claim_token_features,
    context_units,
    fitted_parameters,
    sentence_units,
)
from evalkit.answers.records import Unmeasured
from evalkit.answers.sentences import split_claims, split_sentences, strip_markup
from evalkit.config import JudgeSettings, ScoringMethod
from evalkit.embedding import Embedder
from evalkit.store import Store
from evalkit.store.answers import StoreEmbeddingCache


def test_split_sentences_keeps_abbreviations_and_strips_list_markers() -> None:
    text = (
        "Dr. Smith moved to the U.S. in 1999. He works for NASA! Does he?\n"
        "1. First point here.\n- Second point here"
    )
    assert split_sentences(text) == [
        "Dr. Smith moved to the U.S. in 1999.",
        "He works for NASA!",
        "Does he?",
        "First point here.",
        "Second point here",
    ]


def test_split_claims_drops_lead_ins_and_fragments() -> None:
    answer = "Here are the main reasons:\n1. Prices rose sharply.\nYes.\n2. Wages fell in 2020."
    assert split_claims(answer) == ["Prices rose sharply.", "Wages fell in 2020."]
    assert split_claims("") == []
    assert split_claims("Sure thing.") == []


INLINE_LIST_ANSWER = (
    "Causes of male infertility include: 1. Low sperm count 2. Low semen quality "
    "3. Blocked ducts that carry sperm."
)
MARKDOWN_ANSWER = (
    "## Why teams pick it\n\n"
    "**Customization:** Users can change the layout of the dashboard [1].\n"
    "- **Speed**: queries return in under 2 seconds [2, 3].\n"
    "**Pricing**\n"
    "The basic plan costs 10 dollars a month.[^4]\n\n"
    "| Plan | Price | Storage |\n|---|---:|---|\n| Basic | 10 dollars | 5 GB of space |"
)


def test_inline_numbered_list_items_are_claims_without_their_markers() -> None:
    # Cut at ". " alone, this gave "Low sperm count 2." and "Low semen quality 3.": list
    # numbers the contexts were then asked to contain.
    assert split_claims(INLINE_LIST_ANSWER) == [
        "Low sperm count",
        "Low semen quality",
        "Blocked ducts that carry sperm.",
    ]
    # A year before a period is not a list marker; a lone marker is not a claim.
    assert split_claims("He was born in 1999. He moved to Paris in 2004.") == [
        "He was born in 1999.",
        "He moved to Paris in 2004.",
    ]


def test_markdown_structure_is_not_claim_text() -> None:
    assert split_claims(MARKDOWN_ANSWER) == [
        "Users can change the layout of the dashboard.",
        "queries return in under 2 seconds.",
        "The basic plan costs 10 dollars a month.",
        "Basic, 10 dollars, 5 GB of space",
    ]
    assert strip_markup("See [the docs](https://x.test/d) for *more* on `evalkit run`.") == (
        "See the docs for more on evalkit run."
    )


def test_structure_takes_no_number_or_name_from_the_contexts() -> None:
    contexts = [
        "Men may be infertile because of a low sperm count or low semen quality. "
        "Blocked ducts that carry sperm are another cause.",
        "Users can change the layout of the dashboard. Queries return in under 2 seconds. "
        "The basic plan costs 10 dollars a month and gives 5 GB of space.",
    ]
    claims = split_claims(INLINE_LIST_ANSWER) + split_claims(MARKDOWN_ANSWER)
    coverage, salient, _ = claim_token_features(claims, contexts)
    np.testing.assert_allclose(salient, np.ones(len(claims)))
    np.testing.assert_allclose(coverage, np.ones(len(claims)))


def test_context_units_are_sentences_and_adjacent_pairs() -> None:
    units = context_units(["A is one. B is two. C is three.", "", "D is four."])
    assert units == [
        "A is one.",
        "B is two.",
        "C is three.",
        "A is one. B is two.",
        "B is two. C is three.",
        "D is four.",
    ]


def test_best_similarity_by_hand() -> None:
    claims = np.array([[1.0, 0.0], [0.6, 0.8]])
    units = np.array([[0.0, 1.0], [0.8, 0.6]])
    # claim 0: max(0, 0.8) = 0.8; claim 1: max(0.8, 0.48 + 0.48) = 0.96
    np.testing.assert_allclose(best_similarity(claims, units), [0.8, 0.96])
    np.testing.assert_allclose(best_similarity(claims, np.zeros((0, 2))), [0.0, 0.0])
    assert best_similarity(np.zeros((0, 2)), units).shape == (0,)


def test_claim_token_features_by_hand() -> None:
    contexts = ["The bridge opened in 1932 in Sydney.", "Engineers celebrated."]
    claims = [
        # content words: bridge, opened, 1932, sydney -> all present; salient: 1932, Sydney
        "The bridge opened in 1932 in Sydney.",
        # content words: bridge, opened, 1950, melbourne -> 2 of 4; salient: 1950, Melbourne
        "The bridge opened in 1950 in Melbourne.",
        # content words: engineering, celebrations -> stems "engine", "celebr" both present
        "Engineering celebrations happened.",
        # only stopwords and no salient word: both shares default to 1, weight 1
        "It is what it is.",
    ]
    coverage, salient, weights = claim_token_features(claims, contexts)
    # claim 2 also has "happened" (stem "happen"), absent: 2 of 3
    np.testing.assert_allclose(coverage, [1.0, 0.5, 2 / 3, 1.0])
    np.testing.assert_allclose(salient, [1.0, 0.0, 1.0, 1.0])
    np.testing.assert_allclose(weights, [4, 4, 3, 1])


def test_support_model_is_a_logistic_of_the_three_signals() -> None:
    model = SupportModel(intercept=-1.0, similarity=2.0, coverage=1.0, salient=0.5)
    probability = model.probability(
        np.array([0.5, 0.0]), np.array([1.0, 0.0]), np.array([0.0, 2.0])
    )
    # logits: -1 + 1 + 1 + 0 = 1 and -1 + 0 + 0 + 1 = 0
    np.testing.assert_allclose(probability, [1 / (1 + math.exp(-1)), 0.5])


def test_claim_support_score_is_the_weighted_share() -> None:
    support = ClaimSupport(
        claims=("a", "b", "c"),
        similarity=np.zeros(3),
        coverage=np.zeros(3),
        salient=np.zeros(3),
        probability=np.array([0.9, 0.2, 0.6]),
        weights=np.array([1.0, 2.0, 1.0]),
        threshold=0.5,
    )
    assert support.score == pytest.approx((0.9 + 0.4 + 0.6) / 4)
    assert support.supported.tolist() == [True, False, True]


def test_threshold_must_be_a_probability() -> None:
    with pytest.raises(ValueError, match="probability"):
        OfflineFaithfulness(threshold=1.5)


CONTEXTS = (
    "The Sydney Harbour Bridge is a steel arch bridge in Sydney, Australia. "
    "It was opened in 1932 after eight years of construction. "
    "The bridge carries rail, vehicle, bicycle and pedestrian traffic.",
    "The bridge was designed and built by the British firm Dorman Long of Middlesbrough.",
)


@pytest.fixture(scope="module")
def offline() -> OfflineFaithfulness:
    return OfflineFaithfulness()


@pytest.mark.slow
def test_offline_method_on_real_text(offline: OfflineFaithfulness) -> None:
    records = [
        AnswerRecord(
            id="faithful",
            question="When did the Sydney Harbour Bridge open?",
            answer="The Sydney Harbour Bridge opened in 1932 after eight years of construction. "
            "It was built by Dorman Long of Middlesbrough.",
            contexts=CONTEXTS,
        ),
        AnswerRecord(
            id="half",
            question="When did the Sydney Harbour Bridge open?",
            answer="The Sydney Harbour Bridge opened in 1932 after eight years of construction. "
            "Its toll revenue funds the Melbourne opera house every winter.",
            contexts=CONTEXTS,
        ),
        AnswerRecord(
            id="unfaithful",
            question="When did the Sydney Harbour Bridge open?",
            answer="Photosynthesis converts light into chemical energy in plants. "
            "Chlorophyll absorbs mostly blue and red light.",
            contexts=CONTEXTS,
        ),
    ]
    [faithful, half, unfaithful] = offline.analyse(records)
    assert isinstance(faithful, ClaimSupport)
    assert isinstance(half, ClaimSupport)
    assert isinstance(unfaithful, ClaimSupport)
    assert faithful.supported.tolist() == [True, True]
    assert half.supported.tolist() == [True, False]
    assert unfaithful.supported.tolist() == [False, False]
    # Calibrated: these supported claims sit around 0.96 (0.75 before calibration).
    assert faithful.score > 0.6
    assert unfaithful.score < 0.1
    assert faithful.score > half.score > unfaithful.score
    scores = offline.score(records)
    assert [s.n_claims for s in scores] == [2, 2, 2]
    assert [s.n_supported for s in scores] == [2, 1, 0]
    assert {s.method for s in scores} == {"offline-embedding"}
    assert {s.judge_model for s in scores} == {"sentence-transformers/all-MiniLM-L6-v2"}
    assert {s.prompt_version for s in scores} == {"offline-v3/threshold=0.5"}


@pytest.mark.slow
def test_unmeasured_answers_are_counted_not_averaged(offline: OfflineFaithfulness) -> None:
    question = "When did the bridge open?"
    records = [
        AnswerRecord(
            id="ok", question=question, answer="It was opened in 1932.", contexts=CONTEXTS
        ),
        AnswerRecord(id="empty", question=question, answer="   ", contexts=CONTEXTS),
        AnswerRecord(id="no-context", question=question, answer="It opened in 1932.", contexts=()),
        AnswerRecord(
            id="blank-context", question=question, answer="It opened in 1932.", contexts=("  ",)
        ),
        AnswerRecord(id="no-claim", question=question, answer="Yes.", contexts=CONTEXTS),
    ]
    result = score_answers(
        records, settings=JudgeSettings(method=ScoringMethod.offline), offline=offline
    )
    reasons = {s.item_id: s.unmeasured_reason for s in result.scores}
    assert reasons == {
        "ok": None,
        "empty": Unmeasured.empty_answer,
        "no-context": Unmeasured.empty_contexts,
        "blank-context": Unmeasured.empty_contexts,
        "no-claim": Unmeasured.no_claims,
    }
    summary = result.summary("faithfulness", "offline-embedding")
    [measured] = [s.value for s in result.scores if s.value is not None]
    assert summary.mean == pytest.approx(measured)
    assert (summary.n_measured, summary.n_unmeasured, summary.n_total) == (1, 4, 5)
    assert summary.unmeasured_by_reason == {"empty_answer": 1, "empty_contexts": 2, "no_claims": 1}
    assert result.judge_calls == 0


@pytest.mark.slow
def test_nothing_measured_gives_no_mean_rather_than_nan(offline: OfflineFaithfulness) -> None:
    records = [AnswerRecord(id="x", question="q?", answer="", contexts=CONTEXTS)]
    result = score_answers(records, settings=JudgeSettings(method="offline"), offline=offline)
    assert result.summary("faithfulness").mean is None


@pytest.mark.slow
@pytest.mark.shared_data
def test_clapnq_answers_score_higher_with_their_own_passage(
    shared_data: Path, offline: OfflineFaithfulness
) -> None:
    """Real annotated answers: with their gold passage vs with another question's passage."""
    path = shared_data / "clapnq" / "annotated_data" / "dev" / "clapnq_dev_answerable.jsonl"
    rows = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            if row["output"][0]["answer"].strip():
                rows.append(row)
            if len(rows) == 6:
                break
    own = [
        AnswerRecord(
            id=str(row["id"]),
            question=row["input"],
            answer=row["output"][0]["answer"],
            contexts=(row["passages"][0]["text"],),
        )
        for row in rows
    ]
    wrong = [
        AnswerRecord(
            id=f"{record.id}-wrong",
            question=record.question,
            answer=record.answer,
            contexts=own[(index + 1) % len(own)].contexts,
        )
        for index, record in enumerate(own)
    ]
    scores = {s.item_id: s.value for s in offline.score(own + wrong)}
    for record in own:
        faithful, unfaithful = scores[record.id], scores[f"{record.id}-wrong"]
        assert faithful is not None
        assert unfaithful is not None
        assert faithful > 0.5 > unfaithful, record.id


class CountingEmbedder:
    """The real embedder, counting the texts it is asked to embed."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.name = inner.name
        self.dimension = inner.dimension
        self.fingerprint = inner.fingerprint
        self.texts: list[str] = []

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        self.texts.extend(texts)
        return self.inner.embed(texts)


def shared_context_records(prefix: str) -> list[AnswerRecord]:
    answers = [
        "The Sydney Harbour Bridge opened in 1932.",
        "It was built by Dorman Long of Middlesbrough.",
        "The bridge carries rail and pedestrian traffic.",
    ]
    return [
        AnswerRecord(id=f"{prefix}{i}", question="About the bridge?", answer=a, contexts=CONTEXTS)
        for i, a in enumerate(answers)
    ]


def test_sentence_units_are_sentences_then_normalised_pair_sums() -> None:
    sentences = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    units = sentence_units(sentences)
    half = math.sqrt(0.5)
    np.testing.assert_allclose(units, [[1, 0], [0, 1], [0, 1], [half, half], [0, 1]])
    np.testing.assert_allclose(sentence_units(sentences[:1]), sentences[:1])


@pytest.mark.slow
def test_contexts_are_embedded_once_within_and_across_scorings(
    offline: OfflineFaithfulness, tmp_path: Path
) -> None:
    counting = CountingEmbedder(offline.embedder)
    method = OfflineFaithfulness(counting)  # type: ignore[arg-type]
    context_sentences = {s for context in CONTEXTS for s in split_sentences(context)}
    with Store.open(tmp_path / "evalkit.duckdb") as store:
        cache = StoreEmbeddingCache(store)
        first = method.score(shared_context_records("a"), cache=cache)
        # Three answers share the contexts: each context sentence is embedded once.
        embedded = [t for t in counting.texts if t in context_sentences]
        assert sorted(embedded) == sorted(context_sentences)
        counting.texts.clear()
        # A new process (a new method object, empty memory) scoring again: the store has them.
        again = OfflineFaithfulness(counting).score(  # type: ignore[arg-type]
            shared_context_records("b"), cache=cache
        )
        assert not [t for t in counting.texts if t in context_sentences]
        assert [s.value for s in again] == pytest.approx([s.value for s in first])
        [(n_rows,)] = store.fetch("SELECT count(*) FROM context_embeddings")
        assert n_rows == len(CONTEXTS)
    # The cached vectors give the scores a cold, uncached scoring gives.
    cold = OfflineFaithfulness(offline.embedder).score(shared_context_records("c"))
    assert [s.value for s in cold] == pytest.approx([s.value for s in first], abs=1e-6)


@pytest.mark.slow
def test_legacy_units_keep_the_offline_v1_signals(offline: OfflineFaithfulness) -> None:
    """The benchmark's reference path embeds pair texts; the new one sums sentence vectors."""
    records = shared_context_records("l")
    legacy = OfflineFaithfulness(offline.embedder, legacy_units=True).analyse(records)
    current = offline.analyse(records)
    for old, new in zip(legacy, current, strict=True):
        assert isinstance(old, ClaimSupport)
        assert isinstance(new, ClaimSupport)
        claims = offline.embedder.embed(list(old.claims)).astype(np.float64)
        units = offline.embedder.embed(context_units(CONTEXTS)).astype(np.float64)
        np.testing.assert_allclose(old.similarity, best_similarity(claims, units), atol=1e-5)
        # Both find the sentence a claim was taken from; they differ on pairs only.
        np.testing.assert_allclose(new.similarity, old.similarity, atol=0.1)
        assert (new.similarity > 0.75).all()


@pytest.mark.slow
def test_progress_is_reported_after_each_batch(offline: OfflineFaithfulness) -> None:
    calls: list[tuple[int, int]] = []
    method = OfflineFaithfulness(offline.embedder, batch_records=2)
    records = shared_context_records("p") + shared_context_records("q")[:2]
    result = score_answers(
        records,
        settings=JudgeSettings(method=ScoringMethod.offline),
        offline=method,
        progress=lambda done, total: calls.append((done, total)),
    )
    assert calls == [(2, 5), (4, 5), (5, 5)]
    assert result.summary("faithfulness").n_measured == 5


@pytest.mark.slow
def test_list_and_markdown_answers_are_not_penalised(offline: OfflineFaithfulness) -> None:
    """Supported claims in an inline list or under bold headings score as supported."""
    records = [
        AnswerRecord(
            id="list",
            question="What causes male infertility?",
            answer=INLINE_LIST_ANSWER,
            contexts=(
                "Men may be infertile because of a low sperm count or low semen quality. "
                "Blocked ducts that carry sperm are another cause.",
            ),
        ),
        AnswerRecord(
            id="markdown",
            question="Why do teams pick it?",
            answer=MARKDOWN_ANSWER,
            contexts=(
                "Users can change the layout of the dashboard. Queries return in under 2 "
                "seconds. The basic plan costs 10 dollars a month and gives 5 GB of space.",
            ),
        ),
    ]
    for score in offline.score(records):
        assert score.value is not None
        assert score.value > 0.9, score.item_id
        assert score.n_supported == score.n_claims


def test_calibration_is_piecewise_linear_and_checked() -> None:
    calibration = Calibration(scores=(0.0, 0.5, 0.8, 1.0), probabilities=(0.0, 0.2, 0.9, 1.0))
    np.testing.assert_allclose(
        calibration.apply(np.array([0.0, 0.25, 0.65, 0.9, 1.0])), [0.0, 0.1, 0.55, 0.95, 1.0]
    )
    with pytest.raises(ValueError, match="non-decreasing"):
        Calibration(scores=(0.0, 1.0), probabilities=(0.5, 0.4))
    with pytest.raises(ValueError, match="as many"):
        Calibration(scores=(0.0, 1.0), probabilities=(0.5,))


def test_the_committed_fit_is_calibrated_and_says_where_it_comes_from() -> None:
    parameters = fitted_parameters()
    provenance = parameters["provenance"]
    assert provenance["script"] == "benchmarks/faithfulness.py --write"
    assert "CLAPNQ" in provenance["data"]
    assert {"support_model", "calibration", "held_out", "seed", "code_commit"} <= set(provenance)
    assert DEFAULT_CALIBRATION != IDENTITY_CALIBRATION
    assert SupportModel(**parameters["support_model"]) == DEFAULT_SUPPORT_MODEL
    # A claim the support model is sure of is certain; one it rejects is not supported.
    assert DEFAULT_CALIBRATION.apply(np.array([0.0, 1.0])).tolist() == [0.0, 1.0]


@pytest.mark.slow
@pytest.mark.shared_data
def test_faithful_clapnq_answers_average_close_to_one(
    shared_data: Path, offline: OfflineFaithfulness
) -> None:
    """Annotators' answers with the passage they were written from are fully faithful; the
    uncalibrated method gave them about 0.71 on average. Only questions the fit held out
    (an odd SHA-256 of the id, as benchmarks/faithfulness.py splits them)."""
    path = shared_data / "clapnq" / "annotated_data" / "dev" / "clapnq_dev_answerable.jsonl"
    records = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            held_out = int(hashlib.sha256(str(row["id"]).encode()).hexdigest(), 16) % 2 == 1
            if held_out and split_claims(row["output"][0]["answer"]):
                records.append(
                    AnswerRecord(
                        id=str(row["id"]),
                        question=row["input"],
                        answer=row["output"][0]["answer"],
                        contexts=(row["passages"][0]["text"],),
                    )
                )
            if len(records) == 30:
                break
    values = [s.value for s in offline.score(records)]
    assert None not in values
    assert float(np.mean(values)) > 0.85


@pytest.mark.slow
def test_a_huge_context_is_not_cached_and_the_others_are(
    tmp_path: Path,
) -> None:
    """One 2 MB context of 200,000 sentences made its vectors one 300 MB blob, which a store
    of bounded memory could not write: the scoring failed with DuckDB's out-of-memory error.
    A context over the limit is not cached (it is embedded again if scored again)."""
    rng = np.random.default_rng(3)
    with Store.open(tmp_path / "evalkit.duckdb", memory_limit="512MB") as store:
        cache = StoreEmbeddingCache(store)
        huge = np.zeros((360_000, 384), dtype=np.float32)  # 527 MiB of vectors
        many = {f"c{n}": rng.random((3_000, 384), dtype=np.float32) for n in range(12)}
        cache.put_many([("huge", huge), *many.items()])  # 53 MiB cached
        found = cache.get_many(["huge", *many])
        assert sorted(found) == sorted(many)
        assert all(np.array_equal(found[key], many[key]) for key in many)
