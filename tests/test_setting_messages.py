"""Library errors name settings; the CLI renders them with the flags it has always shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from evalkit.cli._output import with_flags
from evalkit.config import JudgeSettings
from evalkit.errors import ConfigError, InputError
from evalkit.goldset import load_goldset
from evalkit.goldset.formats import export_goldset
from evalkit.goldset.model import Goldset, check_goldset_name
from evalkit.judging.coverage import parse_mix
from evalkit.pipeline.answer_scores import answer_settings
from evalkit.pipeline.goldset_remap import GoldsetRemapRequest
from evalkit.pipeline.leaderboard import select_runs
from evalkit.pipeline.review import record_review
from evalkit.records import Judgment, Query
from evalkit.records.freshness import FreshnessRequest
from evalkit.records.review import Verdict
from evalkit.store import Store


def test_freshness_source_names_settings_and_the_cli_its_flags() -> None:
    with pytest.raises(ConfigError) as raised:
        FreshnessRequest()
    assert str(raised.value) == (
        "name the source of the changes: change tables (`changes`) or a corpus (`corpus`), not both"
    )
    assert with_flags(str(raised.value)) == (
        "name the source of the changes: change tables (--changes PATH, repeatable) or a "
        "corpus (--corpus PATH), not both"
    )


def test_trec_without_topics_names_the_setting_and_the_cli_its_flag(tmp_path: Path) -> None:
    qrels = tmp_path / "qrels.txt"
    qrels.write_text("q1 0 d1 1\n")
    with pytest.raises(ConfigError) as raised:
        load_goldset(qrels, format="trec")
    assert str(raised.value).endswith("pass it as `topics`")
    assert with_flags(str(raised.value)).endswith(
        "pass it: --topics FILE on the command line, topics=FILE in Python"
    )


def test_export_into_a_full_folder_names_the_setting_and_the_cli_its_flag(
    tmp_path: Path,
) -> None:
    goldset = Goldset.build(
        "g", [Query(id="q1", text="kelp")], [Judgment(query_id="q1", doc_id="d1", relevance=1)]
    )
    (tmp_path / "held.txt").write_text("x")
    with pytest.raises(InputError) as raised:
        export_goldset(goldset, tmp_path)
    assert "or pass overwrite to replace the files" in str(raised.value)
    assert "or pass --overwrite to replace the files" in with_flags(str(raised.value))


@pytest.mark.parametrize(
    ("message", "shown"),
    [
        (
            "key holding the tenant (`where_key`), or replay without tenant isolation on "
            "purpose (`tenant_isolation = false`) for a single-tenant index.",
            "key holding the tenant (--where-key), or replay without tenant isolation on "
            "purpose (--no-tenant-isolation) for a single-tenant index.",
        ),
        (
            "already holds a goldset draft; choose another directory or pass `overwrite`",
            "already holds a goldset draft; choose another directory or pass --overwrite",
        ),
        ("give qrels or goldset, not both", "give --qrels or --goldset, not both"),
    ],
)
def test_traffic_refusals_show_their_flags_in_the_cli(message: str, shown: str) -> None:
    assert with_flags(message) == shown


def test_goldset_name_refusal_names_settings_and_the_cli_its_flags() -> None:
    with pytest.raises(ConfigError) as raised:
        check_goldset_name("a/b")
    assert str(raised.value) == (
        "goldset name 'a/b' is spelt as a path, so `goldset` would read it as one; "
        "give a name such as 'support-faq' (`name`)"
    )
    assert with_flags(str(raised.value)) == (
        "goldset name 'a/b' is spelt as a path, so --goldset would read it as one; "
        "give a name such as 'support-faq' (--name)"
    )


@pytest.mark.parametrize(
    ("mix", "message"),
    [
        ("factoid=0", "`mix`: give at least one kind a weight above 0"),
        ("opinion=1", "`mix`: unknown kind 'opinion'; use factoid, paraphrase, multi"),
    ],
)
def test_a_question_mix_names_the_setting_and_the_cli_its_flag(mix: str, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_mix(mix)
    assert str(raised.value) == message
    assert with_flags(str(raised.value)) == message.replace("`mix`", "--mix")


def test_remap_and_leaderboard_options_name_their_settings_and_the_cli_its_flags(
    tmp_path: Path,
) -> None:
    with pytest.raises(ConfigError) as overlap:
        GoldsetRemapRequest(goldset="g", corpus=tmp_path / "c.jsonl", min_overlap=0.0)
    assert str(overlap.value) == "`min_overlap` must be in (0, 1], got 0.0"
    assert with_flags(str(overlap.value)) == "--min-overlap must be in (0, 1], got 0.0"
    with Store.open(tmp_path / "s.duckdb") as store:
        with pytest.raises(ConfigError) as unnamed:
            select_runs(store, goldset="g")
        with pytest.raises(ConfigError) as too_few:
            select_runs(store, goldset="g", last=1)
    assert with_flags(str(unnamed.value)) == (
        "name the runs, or give --goldset NAME with --last N, or --tag TAG"
    )
    assert str(too_few.value) == "`last` must be at least 2 to compare runs, not 1"
    assert with_flags(str(too_few.value)) == "--last must be at least 2 to compare runs, not 1"


def test_answer_scoring_without_a_judge_names_the_setting_and_the_cli_its_flag() -> None:
    with pytest.raises(ConfigError) as raised:
        answer_settings(JudgeSettings(method="llm"))
    assert str(raised.value).endswith("or turn answer scoring off (`answers = false`)")
    assert with_flags(str(raised.value)).endswith("or turn answer scoring off (--no-answers)")


def test_a_rejection_with_grades_names_the_settings_and_the_cli_its_flags(store: Store) -> None:
    with pytest.raises(InputError) as raised:
        record_review(store, "item-1", reviewer="ana", verdict=Verdict.reject, grades={"d1": 2})
    assert str(raised.value).endswith("give either verdict `reject` or `grades`")
    assert with_flags(str(raised.value)).endswith("give either --reject or --grade")
