"""The one settings tree: where it is read from, in what order, and how problems are worded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from evalkit.alerts import alerts_config
from evalkit.cli import invoke
from evalkit.config import (
    AlertsSettings,
    JobConfig,
    JudgeSettings,
    RuleConfig,
    SchedulerSettings,
    ScoringMethod,
    Settings,
    SinkConfig,
    load_settings,
    parse_settings,
)
from evalkit.config.sources import toml_lines
from evalkit.errors import ConfigError
from evalkit.scheduler import service_config

FULL = """
k = 5

[judge]
base_url = "http://127.0.0.1:9/v1"
model = "m-file"
concurrency = 2

[scheduler]
timezone = "Europe/Paris"

[[jobs]]
name = "nightly"
kind = "command"
command = ["true"]
cron = "0 2 * * *"

[alerts]
retry_initial = "30s"

[[alerts.sinks]]
name = "log-it"
kind = "log"

[[alerts.rules]]
name = "failures"
kind = "job_failure"
cooldown = "2h"
"""


def test_every_table_is_a_typed_sub_model_of_one_tree(evalkit_home: Path) -> None:
    Path("evalkit.toml").write_text(FULL, encoding="utf-8")
    settings = load_settings()
    assert settings.config_file == Path("evalkit.toml")
    assert isinstance(settings.judge, JudgeSettings)
    assert (settings.judge.model, settings.judge.concurrency) == ("m-file", 2)
    assert isinstance(settings.scheduler, SchedulerSettings)
    assert settings.scheduler.timezone == "Europe/Paris"
    assert [type(job) for job in settings.jobs] == [JobConfig]
    assert settings.jobs[0].params == {"command": ["true"]}
    assert isinstance(settings.alerts, AlertsSettings)
    assert settings.alerts.retry_initial == 30.0
    assert [type(rule) for rule in settings.alerts.rules] == [RuleConfig]
    assert settings.alerts.rules[0].cooldown == 7200.0
    assert [type(sink) for sink in settings.alerts.sinks] == [SinkConfig]
    service = service_config(settings)
    assert [job.schedule for job in service.jobs] == ["cron 0 2 * * *"]
    assert service.alerts == alerts_config(settings)
    assert [rule.name for rule in service.alerts.rules] == ["failures"]


def test_arguments_beat_the_environment_which_beats_the_file_field_by_field(
    evalkit_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    Path("evalkit.toml").write_text(FULL, encoding="utf-8")
    monkeypatch.setenv("EVALKIT_K", "7")
    monkeypatch.setenv("EVALKIT_JUDGE_MODEL", "m-env")
    monkeypatch.setenv("evalkit_judge_repeats", "3")
    settings = load_settings(judge={"concurrency": 6, "method": None}, relevance_threshold=None)
    assert settings.k == 7
    assert settings.relevance_threshold == 1
    assert settings.judge.base_url == "http://127.0.0.1:9/v1"  # the file's, kept
    assert settings.judge.model == "m-env"
    assert settings.judge.repeats == 3
    assert settings.judge.concurrency == 6
    assert settings.judge.method is ScoringMethod.auto
    assert load_settings(k=9, judge={"method": "offline"}).judge.method is ScoringMethod.offline
    assert load_settings(k=9).k == 9


def test_the_service_tables_come_from_the_file_only(
    evalkit_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EVALKIT_SCHEDULER", '{"health_port": 1}')
    monkeypatch.setenv("EVALKIT_JOBS", '[{"name": "x", "kind": "command"}]')
    monkeypatch.setenv("EVALKIT_ALERTS", '{"dashboard_url": "http://x"}')
    settings = load_settings()
    assert settings.scheduler.health_port == 8765
    assert settings.jobs == []
    assert settings.alerts.dashboard_url is None


def test_one_rule_finds_the_file(
    evalkit_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert load_settings().k == 100  # no file at all: the defaults
    elsewhere = tmp_path / "conf" / "other.toml"
    elsewhere.parent.mkdir()
    elsewhere.write_text("k = 12\n", encoding="utf-8")
    Path("evalkit.toml").write_text("k = 11\n", encoding="utf-8")
    assert load_settings().k == 11
    monkeypatch.setenv("EVALKIT_CONFIG", str(elsewhere))
    settings = load_settings()
    assert (settings.k, settings.config_file) == (12, elsewhere)
    monkeypatch.setenv("EVALKIT_CONFIG", str(tmp_path / "missing.toml"))
    with pytest.raises(ConfigError, match=r"EVALKIT_CONFIG=.*missing\.toml: no such file"):
        load_settings()


def test_problems_in_several_tables_are_all_named_with_their_source(evalkit_home: Path) -> None:
    Path("evalkit.toml").write_text(
        'k = 0\n[judge]\nrepeats = 0\n[scheduler]\ntimezone = "Mars/Olympus"\n'
        '[[jobs]]\nname = "nightly"\nkind = "command"\ninterval = "soon"\n'
        '[[alerts.rules]]\nname = "r"\nkind = "job_failure"\ncooldown = "later"\n',
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as caught:
        load_settings()
    lines = str(caught.value).splitlines()
    assert len(lines) == 5
    # Every value is the file's, so each is named by its line.
    assert lines[0].startswith("evalkit.toml: line 1, field 'k': ")
    assert lines[1].startswith("evalkit.toml: [judge]: line 3, field 'repeats': ")
    assert lines[2].startswith("evalkit.toml: [scheduler]: line 5, field 'timezone': ")
    assert lines[3].startswith("evalkit.toml: [[jobs]] #1 'nightly': line 9, field 'interval': ")
    assert lines[4].startswith("evalkit.toml: [[alerts.rules]] #1 'r': line 13, field 'cooldown': ")


def test_a_retriever_option_that_is_not_a_finite_number_is_named(evalkit_home: Path) -> None:
    """TOML reads nan and inf as floats; the retriever's id (JSON) has no spelling for them."""
    Path("evalkit.toml").write_text(
        '[retriever]\nfactory = "m:f"\n[retriever.options]\nalpha = 0.5\nweights = [1.0, nan]\n',
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert "field 'retriever.options'" in str(caught.value)
    assert "option weights[1] is nan: an option must be a finite number" in str(caught.value)
    Path("evalkit.toml").write_text(
        '[retriever]\nfactory = "m:f"\n[retriever.options]\nalpha = "nan"\n', encoding="utf-8"
    )
    assert load_settings().retriever.options == {"alpha": "nan"}


def test_a_value_a_variable_may_have_set_is_named_by_its_source_not_a_line(
    evalkit_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """EVALKIT_* variables win over the file: a bad value they set is named by the variable
    (it was named as "from arguments, EVALKIT_* variables or evalkit.toml"), spelt as the
    environment spells it; an argument wins over both."""
    Path("evalkit.toml").write_text("k = 5\n[judge]\nrepeats = 2\n", encoding="utf-8")
    monkeypatch.setenv("EVALKIT_K", "0")
    monkeypatch.setenv("evalkit_judge_repeats", "0")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert str(caught.value).splitlines() == [
        "environment variable EVALKIT_K: Input should be greater than or equal to 1",
        "environment variable evalkit_judge_repeats: Input should be greater than or equal to 1",
    ]
    assert load_settings(k=7, judge={"repeats": 3}).k == 7
    with pytest.raises(ConfigError) as caught:
        load_settings(k=0, judge={"repeats": 3})
    assert str(caught.value).startswith(
        "invalid settings (from arguments, EVALKIT_* variables or evalkit.toml): k: "
    )


def test_toml_lines_follow_tables_arrays_and_values_over_several_lines(tmp_path: Path) -> None:
    path = tmp_path / "evalkit.toml"
    path.write_text(
        "k = 10  # [not a table]\n"
        'notes = """\nk = 99\n[fake]\n"""\n'
        "[retriever]\n"
        'options = { a = 1,\n  b = "]" }\n'
        '"quoted key" = 2\n'
        "[[jobs]]\nname = 'a'\n"
        "[[jobs]]\nname = 'b'\nretriever_options = [\n  1,\n  2,\n]\ncron = '* * * * *'\n"
        "[[alerts.rules]]\nname = 'r'\n",
        encoding="utf-8",
    )
    lines = toml_lines(path)
    assert lines[("k",)] == 1
    assert ("fake",) not in lines
    assert lines[("retriever",)] == 6
    assert lines[("retriever", "options")] == 7
    assert lines[("retriever", "quoted key")] == 9
    assert (lines[("jobs", 0, "name")], lines[("jobs", 1, "name")]) == (11, 13)
    assert lines[("jobs", 1, "cron")] == 18
    assert lines[("alerts", "rules", 0, "name")] == 20
    assert (lines[("jobs",)], lines[("alerts", "rules")]) == (10, 19)  # the arrays: first entry
    assert toml_lines(tmp_path / "missing.toml") == {}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            'k = 5\n\n[[job]]\nname = "a"\n',
            "evalkit.toml: line 3, field 'job': Extra inputs are not permitted; "
            "did you mean 'jobs'?",
        ),
        (
            '[alerts]\nretry_initial = 3\n\n[[alerts.rule]]\nname = "r"\n',
            "evalkit.toml: [alerts]: line 4, field 'rule': Extra inputs are not permitted; "
            "did you mean 'rules'?",
        ),
        (
            '[[alerts.sink]]\nname = "s"\n',
            "evalkit.toml: [alerts]: line 1, field 'sink': Extra inputs are not permitted; "
            "did you mean 'sinks'?",
        ),
        (
            '[judge]\nmodle = "m"\n',
            "evalkit.toml: [judge]: line 2, field 'modle': Extra inputs are not permitted; "
            "did you mean 'model'?",
        ),
        (
            "[retriever.pgvector]\nhnsw_ef_serch = 40\n",
            "evalkit.toml: line 2, field 'retriever.pgvector.hnsw_ef_serch': Extra inputs are "
            "not permitted; did you mean 'hnsw_ef_search'?",
        ),
        ("zzz = 1\n", "evalkit.toml: line 1, field 'zzz': Extra inputs are not permitted"),
    ],
)
def test_a_misspelt_key_or_array_of_tables_is_named_by_its_line_with_the_likely_name(
    evalkit_home: Path, monkeypatch: pytest.MonkeyPatch, text: str, message: str
) -> None:
    monkeypatch.setenv("EVALKIT_JOB", "x")  # names no setting: it cannot have set `job`
    Path("evalkit.toml").write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert str(caught.value) == message


def test_a_misspelt_field_of_a_job_is_given_the_likely_name(evalkit_home: Path) -> None:
    """A job's own fields and its kind's are checked together, after the kinds are known."""
    Path("evalkit.toml").write_text(
        '[[jobs]]\nname = "a"\nkind = "retention"\ncrn = "0 2 * * *"\nkeep_lates = 3\n',
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as caught:
        service_config(load_settings())
    assert str(caught.value) == (
        "evalkit.toml: [[jobs]] #1 'a' (kind retention): line 4, field 'crn': Extra inputs "
        "are not permitted; did you mean 'cron'?; line 5, field 'keep_lates': Extra inputs "
        "are not permitted; did you mean 'keep_latest'?"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("jobs = 3\n", "`jobs` must be an array of tables ([[jobs]])"),
        ("jobs = [3]\n", "[[jobs]] #1 must be a table, got int"),
        ("scheduler = 1\n", "`scheduler` must be a table ([scheduler])"),
        ("[alerts]\nrules = 2\n", "`alerts.rules` must be an array of tables"),
    ],
)
def test_a_table_that_is_not_a_table_is_named(evalkit_home: Path, text: str, message: str) -> None:
    Path("evalkit.toml").write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert str(caught.value).startswith("evalkit.toml: ")
    assert message in str(caught.value)


def test_a_config_file_that_is_not_utf8_or_is_a_folder_is_named_not_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    latin1 = tmp_path / "latin1.toml"
    latin1.write_bytes('[[jobs]]\nname = "caf\u00e9"\n'.encode("latin-1"))
    monkeypatch.setenv("EVALKIT_CONFIG", str(latin1))
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert str(caught.value) == (
        f"{latin1}: not valid UTF-8 text, as TOML must be: line 2, byte 12 (0xe9); "
        "save the file as UTF-8"
    )
    monkeypatch.setenv("EVALKIT_CONFIG", str(tmp_path))
    with pytest.raises(ConfigError, match=r"EVALKIT_CONFIG=.*: a folder, not a file"):
        load_settings()
    monkeypatch.delenv("EVALKIT_CONFIG")
    monkeypatch.chdir(tmp_path)
    Path("evalkit.toml").mkdir()
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert str(caught.value) == "evalkit.toml: a folder, not a file"


def test_a_config_file_starting_with_a_byte_order_mark_is_read_with_its_lines(
    evalkit_home: Path,
) -> None:
    """Windows editors save UTF-8 with a byte order mark; TOML parsers refuse it."""
    Path("evalkit.toml").write_bytes(b"\xef\xbb\xbfk = 5\n[judge]\nrepeats = 2\n")
    settings = load_settings()
    assert (settings.k, settings.judge.repeats) == (5, 2)
    Path("evalkit.toml").write_bytes(b"\xef\xbb\xbfkk = 5\n")
    with pytest.raises(ConfigError, match=r"^evalkit\.toml: line 1, field 'kk': "):
        load_settings()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "k = true\n",
            "evalkit.toml: line 1, field 'k': Input should be a valid integer, not a boolean",
        ),
        (
            'relevance_threshold = "2"\n',
            "evalkit.toml: line 1, field 'relevance_threshold': Input should be a valid "
            "integer, not a string (write it without quotes)",
        ),
        (
            "[judge]\ntemperature = false\n",
            "evalkit.toml: [judge]: line 2, field 'temperature': Input should be a valid "
            "number, not a boolean",
        ),
        (
            "[scheduler]\ncoalesce = 1\n",
            "evalkit.toml: [scheduler]: line 2, field 'coalesce': Input should be a valid "
            "boolean, not an integer",
        ),
        (
            '[retriever.pgvector]\nhnsw_ef_search = "40"\n',
            "evalkit.toml: line 2, field 'retriever.pgvector.hnsw_ef_search': Input should be "
            "a valid integer, not a string (write it without quotes)",
        ),
        (
            '[[alerts.rules]]\nname = "r"\nkind = "job_failure"\nenabled = "yes"\n',
            "evalkit.toml: [[alerts.rules]] #1 'r': line 4, field 'enabled': Input should be a "
            "valid boolean, not a string",
        ),
    ],
)
def test_a_file_value_of_another_toml_type_than_its_field_is_refused(
    evalkit_home: Path, monkeypatch: pytest.MonkeyPatch, text: str, message: str
) -> None:
    """TOML is typed: a string or a boolean is not read as the number it might spell."""
    monkeypatch.setenv("EVALKIT_K", "7")  # a variable set too does not hide the file's line
    Path("evalkit.toml").write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert str(caught.value) == message


def test_variables_arguments_and_values_written_as_strings_are_still_converted(
    evalkit_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Variables are text; durations, sizes, paths and enums are strings in TOML."""
    Path("evalkit.toml").write_text(
        'home = "h"\nhttp_timeout = 3\nembed_backend = "onnx"\nstore_memory_limit = "2GB"\n'
        '[scheduler]\nmisfire_grace_time = "5m"\n[judge]\nmethod = "offline"\n'
        '[alerts]\nretry_initial = 30\n[[alerts.sinks]]\nname = "s"\nkind = "log"\n'
        'min_severity = "critical"\n[retriever]\nfactory = "m:f"\noptions = { top = "7" }\n',
        encoding="utf-8",
    )
    monkeypatch.setenv("EVALKIT_K", "7")
    monkeypatch.setenv("EVALKIT_JUDGE_ANSWER_RELEVANCY", "true")
    settings = load_settings(relevance_threshold="2")
    assert (settings.k, settings.relevance_threshold, settings.http_timeout) == (7, 2, 3.0)
    assert settings.judge.answer_relevancy is True
    assert settings.scheduler.misfire_grace_time == 300.0
    assert settings.retriever.options == {"top": "7"}  # the factory's to read, as written


@pytest.mark.parametrize(
    ("spool", "request_bytes", "expected"),
    [
        ('"2MiB"', '"16 MiB"', (2 * 1024**2, 16 * 1024**2)),
        ('"1GB"', '"64KiB"', (10**9, 64 * 1024)),
        ("65536", "262144", (65536, 262144)),
        ('"1.5GiB"', '"2048"', (3 * 1024**3 // 2, 2048)),
    ],
)
def test_otlp_sizes_are_strings_with_a_unit_or_integers_of_bytes(
    evalkit_home: Path, spool: str, request_bytes: str, expected: tuple[int, int]
) -> None:
    Path("evalkit.toml").write_text(
        f"[otlp]\nspool_max_bytes = {spool}\nmax_request_bytes = {request_bytes}\n",
        encoding="utf-8",
    )
    otlp = load_settings().otlp
    assert (otlp.spool_max_bytes, otlp.max_request_bytes) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            '"2 lots"',
            "evalkit.toml: line 2, field 'otlp.spool_max_bytes': Value error, '2 lots' is not "
            "a size: give bytes (65536) or a string such as '64KiB', '16MiB', '1GiB'",
        ),
        (
            '"1KiB"',
            "evalkit.toml: line 2, field 'otlp.spool_max_bytes': Input should be greater than "
            "or equal to 65536",
        ),
        (
            "true",
            "evalkit.toml: line 2, field 'otlp.spool_max_bytes': Value error, a size is a "
            "number of bytes or a string such as '16MiB'",
        ),
    ],
)
def test_an_otlp_size_that_is_not_one_is_named_by_its_line(
    evalkit_home: Path, value: str, message: str
) -> None:
    Path("evalkit.toml").write_text(f"[otlp]\nspool_max_bytes = {value}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert str(caught.value) == message


def test_a_job_s_field_of_another_toml_type_is_refused(evalkit_home: Path) -> None:
    Path("evalkit.toml").write_text(
        '[[jobs]]\nname = "a"\nkind = "retention"\nkeep_latest = "3"\nkeep_days = "30d"\n',
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as caught:
        service_config(load_settings())
    assert str(caught.value) == (
        "evalkit.toml: [[jobs]] #1 'a' (kind retention): line 4, field 'keep_latest': "
        "Input should be a valid integer, not a string (write it without quotes)"
    )


def test_a_drift_check_s_field_of_another_toml_type_is_refused(evalkit_home: Path) -> None:
    """The drift check's method default depends on its stream; its fields are still typed."""
    Path("evalkit.toml").write_text(
        '[[jobs]]\nname = "a"\nkind = "drift_check"\nstream = "metric"\ngoldset = "g"\n'
        'warmup = "6"\n',
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as caught:
        service_config(load_settings())
    assert str(caught.value) == (
        "evalkit.toml: [[jobs]] #1 'a' (kind drift_check): line 6, field 'warmup': "
        "Input should be a valid integer, not a string (write it without quotes)"
    )


def test_a_job_due_more_often_than_once_a_second_is_refused(tmp_path: Path) -> None:
    job = {"name": "fast", "kind": "command", "command": ["true"], "interval": "1ms"}
    with pytest.raises(ConfigError, match="interval must be at least 1s"):
        parse_settings({"jobs": [job]}, tmp_path / "evalkit.toml")


def test_a_file_that_is_not_toml_is_an_error_every_command_reports(tmp_path: Path) -> None:
    (tmp_path / "evalkit.toml").write_text("k = [\n", encoding="utf-8")
    env = {key: value for key, value in os.environ.items() if not key.startswith("EVALKIT_")}
    done = subprocess.run(
        [sys.executable, "-m", "evalkit", "runs", "list"],
        cwd=tmp_path,
        env={**env, "EVALKIT_HOME": str(tmp_path / "home")},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "evalkit.toml: not valid TOML" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_bad_field_of_a_job_s_kind_is_named_by_its_line(evalkit_home: Path) -> None:
    Path("evalkit.toml").write_text(
        '[[jobs]]\nname = "a"\nkind = "retention"\n\n[[jobs]]\nname = "b"\n'
        'kind = "retention"\nkeep_latest = "x"\n',
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as caught:
        service_config(load_settings())
    assert str(caught.value).startswith(
        "evalkit.toml: [[jobs]] #2 'b' (kind retention): line 8, field 'keep_latest': "
    )


def test_a_webhook_sink_url_that_is_not_http_is_named_by_its_field_and_line(
    evalkit_home: Path,
) -> None:
    """It was reported on the sink's table header as field '(table)'."""
    Path("evalkit.toml").write_text(
        '[alerts]\n\n[[alerts.sinks]]\nname = "hook"\nkind = "webhook"\n'
        'url = "ftp://user:pw@host/x"\n',
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as caught:
        alerts_config(load_settings())
    assert str(caught.value) == (
        "evalkit.toml: [[alerts.sinks]] #1 'hook' (kind webhook): line 6, field 'url': "
        "Value error, url must be an http:// or https:// URL with a host"
    )


def test_a_job_failure_rule_naming_no_configured_job_is_refused_with_the_likely_one(
    evalkit_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """It was accepted and watched nothing, for good, while a rule's unknown sink is refused;
    a rule's sinks are now named by their line too."""
    jobs = '[[jobs]]\nname = "nightly"\nkind = "retention"\n\n'
    rule = '[[alerts.rules]]\nname = "r"\nkind = "job_failure"\n'
    Path("evalkit.toml").write_text(
        f'{jobs}[alerts]\n\n{rule}jobs = ["nightly", "nighlty"]\n', encoding="utf-8"
    )
    assert invoke(["jobs", "list", "--format", "json"]) == 2
    assert json.loads(capsys.readouterr().out)["error"]["message"] == (
        "evalkit.toml: [[alerts.rules]] #1 'r' (kind job_failure): line 10, field 'jobs': "
        "no job named 'nighlty'; did you mean 'nightly'? (configured: nightly)"
    )
    Path("evalkit.toml").write_text(
        f'{jobs}[[alerts.sinks]]\nname = "log"\nkind = "log"\n\n{rule}sinks = ["logs"]\n',
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as caught:
        alerts_config(load_settings())
    assert str(caught.value) == (
        "evalkit.toml: [[alerts.rules]] #1 'r' (kind job_failure): line 12, field 'sinks': "
        "no sink named 'logs'; did you mean 'log'? (configured: log)"
    )
    # A file with no [[jobs]] evaluates rules over jobs that another file configures.
    Path("evalkit.toml").write_text(f'{rule}jobs = ["nightly"]\n', encoding="utf-8")
    assert alerts_config(load_settings()).rules[0].params.jobs == ["nightly"]  # type: ignore[attr-defined]
    Path("evalkit.toml").write_text(f"{jobs}{rule}jobs = []\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"line 8, field 'jobs': List should have at least"):
        alerts_config(load_settings())


def test_a_job_s_retriever_option_that_is_not_a_finite_number_is_named(
    evalkit_home: Path,
) -> None:
    Path("evalkit.toml").write_text(
        '[[jobs]]\nname = "nightly"\nkind = "goldset_replay"\ngoldset = "demo"\n'
        'interval = "1h"\nretriever = "m:f"\nretriever_options = { alpha = inf }\n',
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as caught:
        service_config(load_settings())
    assert str(caught.value).startswith(
        "evalkit.toml: [[jobs]] #1 'nightly' (kind goldset_replay): line 7, "
        "field 'retriever_options': Value error, option alpha is inf"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '[judge]\nmodel = "m"\nbase_url = "127.0.0.1:11434/v1"\n',
            "evalkit.toml: [judge]: line 3, field 'base_url': Value error, '127.0.0.1:11434/v1': "
            "must be an http:// or https:// URL; write http://127.0.0.1:11434/v1",
        ),
        (
            '[alerts]\ndashboard_url = "dash.example.com:8501"\n',
            "evalkit.toml: [alerts]: line 2, field 'dashboard_url': Value error, "
            "'dash.example.com:8501': must be an http:// or https:// URL; "
            "write http://dash.example.com:8501",
        ),
        (
            'chroma_url = "http://user:pw@:8000"\n',
            "evalkit.toml: line 1, field 'chroma_url': Value error, 'http://:8000': names no host",
        ),
        (
            '[embedder]\nkind = "openai"\nmodel = "e"\nurl = "localhost:8080/v1"\n',
            "evalkit.toml: line 4, field 'embedder.url': Value error, 'localhost:8080/v1': "
            "must be an http:// or https:// URL; write http://localhost:8080/v1",
        ),
    ],
)
def test_a_url_setting_that_is_no_http_url_is_named_by_its_line(
    evalkit_home: Path, capsys: pytest.CaptureFixture[str], text: str, message: str
) -> None:
    """A judge URL without its scheme was taken, and every answer scored failed as 'cannot
    reach the judge' (exit 3, as for a server that is down); a dashboard URL without it made
    every alert's links unusable. They are refused when the settings are read (exit 2)."""
    Path("evalkit.toml").write_text(text, encoding="utf-8")
    Path("answers.jsonl").write_text(
        '{"question": "q", "answer": "a", "contexts": ["a"]}\n', encoding="utf-8"
    )
    command = ["answers", "score", "answers.jsonl", "--method", "llm", "--no-store"]
    assert invoke([*command, "--format", "json"]) == 2
    assert json.loads(capsys.readouterr().out)["error"]["message"] == message
    Path("evalkit.toml").write_text("", encoding="utf-8")
    assert load_settings(chroma_url="").chroma_url == ""


def test_an_unknown_kind_or_a_name_used_twice_is_named_by_its_lines(
    evalkit_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """They named the entry but not their lines, and a misspelt kind got no likely one."""
    Path("evalkit.toml").write_text(
        '[[jobs]]\nname = "a"\nkind = "retention"\n\n[[jobs]]\nname = "b"\nkind = "retension"\n',
        encoding="utf-8",
    )
    assert invoke(["jobs", "list", "--format", "json"]) == 2
    assert json.loads(capsys.readouterr().out)["error"]["message"] == (
        "evalkit.toml: [[jobs]] #2 'b': line 7, field 'kind': unknown kind 'retension'; did "
        "you mean 'retention'? (known kinds: answers, audit, command, drift_check, freshness, "
        "goldset_replay, retention, sweep, traffic, traffic_ingest)"
    )
    jobs = '[[jobs]]\nname = "a"\nkind = "retention"\n\n[[jobs]]\nkind = "retention"\nname = "a"\n'
    sinks = '[[alerts.sinks]]\nname = "s"\nkind = "log"\n'
    retries = '[alerts]\nretry_initial = "10m"\nretry_max = "1m"\n'
    assert _refused(jobs, service_config) == (
        "evalkit.toml: [[jobs]] #1 and #2: lines 2 and 7, field 'name': the name 'a' is used "
        "twice; give each entry its own"
    )
    assert _refused(f"{retries}\n{sinks}{sinks}", alerts_config) == (
        "evalkit.toml: [[alerts.sinks]] #1 and #2: lines 6 and 9, field 'name': the name 's' "
        "is used twice; give each entry its own"
    )
    assert _refused(retries, alerts_config) == (
        "evalkit.toml: [alerts]: line 3, field 'retry_max': must be >= retry_initial"
    )


def _refused(text: str, resolve: Callable[[Settings], object]) -> str:
    """The message of the ConfigError ``resolve`` raises over the settings of ``text``."""
    Path("evalkit.toml").write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        resolve(load_settings())
    return str(caught.value)


def test_a_number_that_is_not_finite_is_refused_where_seconds_or_rates_are_read(
    evalkit_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """TOML reads `inf` and `nan` as numbers: http_timeout = inf was taken, and every HTTP
    retriever request then failed with an OverflowError traceback (a socket time-out has no
    infinity)."""
    assert _refused(
        "http_timeout = inf\n[judge]\ntimeout = inf\nrequests_per_minute = nan\n", Settings
    ).splitlines() == [
        "evalkit.toml: line 1, field 'http_timeout': Input should be a finite number",
        "evalkit.toml: [judge]: line 3, field 'timeout': Input should be a finite number; "
        "line 4, field 'requests_per_minute': Input should be a finite number",
    ]
    assert _refused(
        '[[jobs]]\nname = "d"\nkind = "drift_check"\nalpha = nan\n', service_config
    ) == (
        "evalkit.toml: [[jobs]] #1 'd' (kind drift_check): line 4, field 'alpha': Input "
        "should be a finite number"
    )
    Path("evalkit.toml").write_text("", encoding="utf-8")
    monkeypatch.setenv("EVALKIT_STORE_WAIT", "inf")
    with pytest.raises(ConfigError, match=r"^environment variable EVALKIT_STORE_WAIT: Input"):
        load_settings()


@pytest.mark.parametrize(
    "variable", ["EVALKIT_HOME", "EVALKIT_STORE_PATH", "EVALKIT_CHROMA_PATH", "EVALKIT_CACHE_DIR"]
)
def test_an_empty_path_is_refused_not_read_as_the_working_directory(
    evalkit_home: Path, monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    """EVALKIT_HOME= (a CI variable left empty) put the store in whatever folder a command
    ran in, EVALKIT_STORE_PATH= named that folder as the store file."""
    monkeypatch.setenv(variable, "")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert str(caught.value) == (
        f"environment variable {variable}: Value error, an empty path, which would be the "
        "working directory: give a path, or leave the setting out (unset the variable) for "
        "its default"
    )
    monkeypatch.delenv(variable)
    assert _refused('[judge]\ncache_path = ""\n', Settings).startswith(
        "evalkit.toml: [judge]: line 2, field 'cache_path': Value error, an empty path"
    )
