"""The request records refuse what no workflow can do, wherever they are built from."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from evalkit.cli import invoke
from evalkit.config import Settings
from evalkit.errors import ConfigError
from evalkit.metrics import parse_measures
from evalkit.records.requests import (
    MAX_K,
    AgreementRequest,
    FusionRequest,
    GatePolicy,
    GoldsetRunRequest,
    JudgingRequest,
    LeaderboardRequest,
    TrafficReplayRequest,
    validate_k,
)


@pytest.mark.parametrize("k", [0, -1, MAX_K + 1, True, 2.5])
def test_a_depth_outside_one_to_max_k_is_refused(k: object) -> None:
    with pytest.raises(ConfigError, match="k must be"):
        validate_k(k)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="k must be"):
        GoldsetRunRequest(k=k)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="k must be"):
        TrafficReplayRequest(k=k)  # type: ignore[arg-type]


def test_the_deepest_storable_depth_is_accepted() -> None:
    assert GoldsetRunRequest(k=MAX_K).k == MAX_K


def test_k_zero_is_refused_not_taken_for_the_settings_default() -> None:
    settings = Settings(k=50)
    assert GoldsetRunRequest.from_settings(settings).k == 50
    assert GoldsetRunRequest.from_settings(settings, k=7).k == 7
    with pytest.raises(ConfigError, match="k must be a positive integer"):
        GoldsetRunRequest.from_settings(settings, k=0)


def test_a_settings_k_deeper_than_the_store_keeps_is_refused() -> None:
    with pytest.raises(ValueError, match="less than or equal to 2147483647"):
        Settings(k=MAX_K + 1)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"k": 5, "compare_k": 6}, "compare_k must be between 1 and k=5, got 6"),
        ({"k": 5, "compare_k": 0}, "compare_k must be between 1 and k=5, got 0"),
        ({"low_confidence_threshold": math.nan}, "must be a finite score, got nan"),
        ({"low_confidence_threshold": math.inf}, "must be a finite score, got inf"),
        ({"embedding_sample_size": -1}, "embedding sample size must be >= 0, got -1"),
        ({"rbo_p": 1.0}, r"rbo_p must be in \(0, 1\) \(RBO's persistence\), got 1.0"),
        ({"rbo_p": 0.0}, r"rbo_p must be in \(0, 1\)"),
        ({"batch_size": 0}, r"batch_size must be an integer of at least 1 \(queries sent"),
    ],
)
def test_a_traffic_replay_request_names_the_setting_it_refuses(
    fields: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        TrafficReplayRequest(**fields)  # type: ignore[arg-type]


def test_one_measure_may_be_given_as_its_name_alone() -> None:
    """`GoldsetRunRequest(k=10, measures="ndcg@10")` was split into characters and refused
    as `unknown measure 'n'`; the pytest plugin and the paired test took one name as one."""
    assert GoldsetRunRequest(k=10, measures="ndcg@10").measures == ("ndcg@10",)  # type: ignore[arg-type]
    assert GoldsetRunRequest(k=10, measures=["mrr", "map"]).measures == ("mrr", "map")  # type: ignore[arg-type]
    assert GoldsetRunRequest.from_settings(Settings(), measures="mrr").measures == ("mrr",)
    assert GatePolicy(measures="recall@10").measures == ("recall@10",)  # type: ignore[arg-type]
    assert LeaderboardRequest(measures="map").measures == ("map",)  # type: ignore[arg-type]
    assert FusionRequest(run_ids=("a", "b"), measures="mrr").measures == ("mrr",)  # type: ignore[arg-type]
    assert [str(m) for m in parse_measures("P@10")] == ["precision@10"]


def test_a_fusion_request_refuses_its_runs_as_one_string() -> None:
    with pytest.raises(ConfigError, match="run_ids is one string"):
        FusionRequest(run_ids="20261126T000000-abcdef")  # type: ignore[arg-type]
    assert FusionRequest(run_ids=["a", "b"]).run_ids == ("a", "b")  # type: ignore[arg-type]


@pytest.mark.parametrize("batch_size", [0, -3, 2.5, True])
def test_a_goldset_run_request_refuses_a_batch_size_no_replay_can_send(batch_size: object) -> None:
    """batch_size=0 was accepted, then the run crashed (`range() arg 3 must not be zero`)
    and was stored failed."""
    with pytest.raises(ConfigError, match="batch_size must be an integer of at least 1"):
        GoldsetRunRequest(k=10, batch_size=batch_size)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"k": 0}, "k must be a positive integer"),
        ({"max_judgments": -1}, r"max_judgments must be an integer of at least 0 \(new pairs"),
    ],
)
def test_a_judging_request_names_the_setting_it_refuses(
    fields: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        JudgingRequest(**fields)  # type: ignore[arg-type]
    assert JudgingRequest(max_judgments=0).max_judgments == 0  # a dry plan of what is pooled


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"k": 0}, "k must be a positive integer"),
        ({"sample": 0}, "sample must be an integer of at least 1"),
        ({"tau_queries": 0}, "tau_queries must be an integer of at least 1"),
        ({"max_runs": -1}, "max_runs must be an integer of at least 0"),
        ({"resamples": 0}, "resamples must be an integer of at least 1"),
        ({"assessor_threshold": 4}, "assessor_threshold must be a grade from 0 to 3, got 4"),
        ({"confidence": 1.0}, r"confidence must be in \(0, 1\), got 1.0"),
    ],
)
def test_an_agreement_request_names_the_setting_it_refuses(
    fields: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        AgreementRequest(**fields)  # type: ignore[arg-type]


def test_a_negative_low_confidence_threshold_suits_scores_that_can_be_negative() -> None:
    assert TrafficReplayRequest(low_confidence_threshold=-5.0).low_confidence_threshold == -5.0


@pytest.mark.parametrize("seed", ["-1", "9223372036854775808"])
@pytest.mark.parametrize(
    "command",
    [
        ["drift", "embeddings", "--reference", "a.npy", "--current", "b.npy"],
        ["drift", "documents", "--collection", "demo"],
        ["audit", "--collection", "demo"],
        ["traffic", "sample", "--window", "2026-11-21"],
        ["compare", "r1", "r2"],
    ],
    ids=lambda command: " ".join(command[:2]),
)
def test_a_seed_below_zero_or_beyond_64_bits_is_misuse_before_anything_runs(
    command: list[str], seed: str, evalkit_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """numpy refuses a negative seed and the store a seed past 64 bits: both after the work."""
    assert invoke([*command, "--seed", seed]) == 2
    assert "Invalid value for '--seed'" in capsys.readouterr().err
