"""The retrievers package's public surface and its small shared helpers."""

from __future__ import annotations

import inspect
import subprocess
import sys

import numpy as np
import pytest

import evalkit.retrievers
from evalkit.embedding import ModelFingerprint
from evalkit.errors import ConfigError
from evalkit.records import ScoredDoc
from evalkit.retrievers import index_fingerprint
from evalkit.retrievers.base import describe_exception, ranked_docs, redact, validate_k
from evalkit.retrievers.chroma import SCORE_FROM_DISTANCE

MODEL = ModelFingerprint("m", 4, "abcdef0123456789")


def test_every_public_name_exists_and_is_documented() -> None:
    for name in evalkit.retrievers.__all__:
        value = getattr(evalkit.retrievers, name)
        if inspect.isclass(value) or inspect.isfunction(value):
            assert inspect.getdoc(value), name


def test_importing_the_package_does_not_import_chroma_or_torch() -> None:
    probe = (
        "import sys, evalkit.retrievers; "
        "print(sorted(m for m in ('chromadb', 'torch') if m in sys.modules))"
    )
    output = subprocess.run(
        [sys.executable, "-c", probe], check=True, capture_output=True, text=True
    ).stdout
    assert output.strip() == "[]"


def test_index_fingerprint_depends_on_content_not_order() -> None:
    hashes = {"d1": "h1", "d2": "h2", "d3": "h3"}
    same = index_fingerprint(dict(reversed(list(hashes.items()))), MODEL)
    assert index_fingerprint(hashes, MODEL) == same
    assert index_fingerprint({**hashes, "d2": "changed"}, MODEL) != same
    assert index_fingerprint({"d1": "h1", "d2": "h2"}, MODEL) != same
    other_model = ModelFingerprint("m", 4, "ffffffffffffffff")
    assert index_fingerprint(hashes, other_model) != same
    # ids and hashes are kept apart: moving a character across them changes the hash
    assert index_fingerprint({"ab": "c"}, MODEL) != index_fingerprint({"a": "bc"}, MODEL)
    assert len(index_fingerprint({}, MODEL)) == 64


@pytest.mark.parametrize(
    ("space", "distances", "scores"),
    [
        ("cosine", [0.0, 0.25, 1.0, 2.0], [1.0, 0.75, 0.0, -1.0]),
        ("ip", [0.0, 0.5, 1.5], [1.0, 0.5, -0.5]),
        ("l2", [0.0, 0.5, 2.0, 4.0], [1.0, 0.75, 0.0, -1.0]),
    ],
)
def test_distances_become_cosine_scores(
    space: str, distances: list[float], scores: list[float]
) -> None:
    converted = SCORE_FROM_DISTANCE[space](np.asarray(distances))
    assert converted.tolist() == pytest.approx(scores)


def test_l2_score_of_unit_vectors_is_their_cosine() -> None:
    rng = np.random.default_rng(5)
    a, b = rng.normal(size=(2, 16))
    a /= np.linalg.norm(a)
    b /= np.linalg.norm(b)
    squared_l2 = float(np.sum((a - b) ** 2))
    score = SCORE_FROM_DISTANCE["l2"](np.asarray([squared_l2]))[0]
    assert score == pytest.approx(float(a @ b))


def test_ranked_docs_numbers_from_one() -> None:
    assert ranked_docs(["x", "y"], [0.9, 0.4]) == (ScoredDoc("x", 0.9, 1), ScoredDoc("y", 0.4, 2))
    assert ranked_docs([], []) == ()
    with pytest.raises(ValueError, match="zip"):
        ranked_docs(["x"], [])


@pytest.mark.parametrize("k", [0, -3, 2.5, True, "10"])
def test_validate_k_refuses_non_positive_integers(k: object) -> None:
    with pytest.raises(ConfigError, match="k must be a positive integer"):
        validate_k(k)  # type: ignore[arg-type]


def test_redact_and_describe_exception() -> None:
    text = "token abcd1234 and Bearer abcd1234; short x"
    assert redact(text, ["abcd1234", "x"]) == "token *** and Bearer ***; short x"
    assert describe_exception(TimeoutError("read timed out")) == "TimeoutError: read timed out"
    assert describe_exception(KeyError()) == "KeyError"
