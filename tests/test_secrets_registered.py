"""Secrets of the settings are masked from the start of a process, in every form they travel.

A real ``evalkit serve`` whose first and only job is a ``command`` that fails printing the
``[retriever] options`` secrets (which no retriever has been built to register): the job's
row, the alert it raises, both log sinks and the service's own log keep the message, masked.
A real HTTP retriever on loopback echoes the bearer key base64-encoded in its errors, at
each of the three positions a key can start at in base64: the store and ``runs show`` keep
the echo, masked.
"""

from __future__ import annotations

import base64
import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import duckdb
import httpx
import pytest
from evalkit_process import fresh_env, run_evalkit
from loopback import JSONHandler, serving
from test_scheduler_support import popen_serve, serves_fixture  # noqa: F401
from waiting import wait_until

from evalkit.cli import invoke
from evalkit.config import parse_settings
from evalkit.config.secrets import settings_secrets
from evalkit.redaction import (
    Redactor,
    is_secret_name,
    masked_excerpt,
    option_secrets,
    redact,
    register_secrets,
    secret_forms,
)

API_KEY = "sk-live-7Hq2RkW9pZ4mXv8N"
DB_PASSWORD = "Pg-p4ss-Ur8sQ2Lm"
DSN = f"postgresql://reader:{DB_PASSWORD}@127.0.0.1:1/rag"
BASIC = base64.b64encode(f"reader:{DB_PASSWORD}".encode()).decode()
BEARER_ECHO = base64.b64encode(f"Authorization: Bearer {API_KEY}".encode()).decode()
LEAKED = [API_KEY, DB_PASSWORD, BASIC, BEARER_ECHO]
STARTUP = 120.0


def leaks_in(text: str) -> list[str]:
    return [secret for secret in LEAKED if secret in text]


def test_options_that_name_a_field_are_not_taken_for_secrets() -> None:
    options = {
        "where_key": "tenant",
        "id_payload_key": "doc_id",
        "api_key": "sk-live-1234",
        "headers": {"X-Api-Key": "hdr-5678"},
        "nested": {"tenant_key": "org", "signing_key": "sign-9012"},
    }
    assert option_secrets(options) == {"sk-live-1234", "hdr-5678", "sign-9012"}


@pytest.mark.parametrize(
    "name", ["bearer", "session", "session_id", "Cookie", "sig", "sig_key", "x-sig", "signature"]
)
def test_bearer_session_cookie_and_signature_options_are_secrets(name: str) -> None:
    assert is_secret_name(name)
    assert option_secrets({name: "value-1234"}) == {"value-1234"}


@pytest.mark.parametrize(
    "name",
    [
        "design",
        "signal",
        "signals_k",
        "assign",
        "where_key",
        # Settings, not secrets: masking them changed a factory retriever's id (its series
        # split and a pinned alert baseline stopped finding candidates) and masked their
        # values ("read", "s3v4") wherever they appeared in output.
        "use_session",
        "session_pool_size",
        "reuse_sessions",
        "cookie_domain",
        "signature_version",
        "sig_figs",
    ],
)
def test_sig_inside_a_word_does_not_make_a_secret(name: str) -> None:
    assert not is_secret_name(name)


def test_base64_forms_are_masked_wherever_the_secret_starts() -> None:
    for prefix in ("", "B", "Be", "Bearer ", "reader:", '{"key": "'):
        for suffix in ("", "x", "xy", '"}'):
            encoded = base64.b64encode(f"{prefix}{API_KEY}{suffix}".encode()).decode()
            for alphabet in (encoded, encoded.replace("+", "-").replace("/", "_")):
                masked = redact(f"echo {alphabet}", [API_KEY])
                assert "***" in masked, (prefix, suffix)
                assert base64.b64encode(API_KEY.encode()).decode()[:8] not in masked
    # Unrelated base64 is left alone.
    other = base64.b64encode(b"nothing to hide here").decode()
    assert redact(other, [API_KEY]) == other
    assert all(len(form) >= 4 for form in secret_forms(API_KEY))


def test_the_retriever_tokens_of_the_environment_are_settings_secrets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EVALKIT_HTTP_RETRIEVER_TOKEN", "sk-http-token-3Jd8")
    monkeypatch.setenv("EVALKIT_CHROMA_TOKEN", "ch-token-7Pq2")
    found = settings_secrets(parse_settings({}, Path("evalkit.toml")))
    assert {"sk-http-token-3Jd8", "ch-token-7Pq2"} <= found


def test_an_excerpt_is_cut_after_masking_so_no_part_of_a_secret_is_left() -> None:
    mask = Redactor([API_KEY])
    text = f"head {API_KEY} tail"
    for limit in range(len(text) + 1):
        for tail in (False, True):
            kept = masked_excerpt(text, limit, tail=tail, mask=mask)
            assert len(kept) <= limit
            assert not any(API_KEY[i : i + 3] in kept for i in range(len(API_KEY) - 2))
    assert masked_excerpt(text, 8, mask=mask) == "head ***"
    assert masked_excerpt(text, 8, tail=True, mask=mask) == "*** tail"
    assert masked_excerpt(text, 0, tail=True, mask=mask) == ""


# -- a command job of `evalkit serve` ----------------------------------------------------


def leaky_setup(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """evalkit.toml with the secrets in [retriever] options and a failing command job that
    prints them; the child environment; the log sink's file."""
    home = tmp_path / "home"
    sink_file = tmp_path / "alerts.jsonl"
    config = tmp_path / "evalkit.toml"
    leak = (
        "import os, sys; "
        "sys.stderr.write('auth failed: api_key=' + os.environ['LEAK_KEY'] + ' dsn='"
        " + os.environ['LEAK_DSN'] + ' basic ' + os.environ['LEAK_BASIC']"
        " + ' echo ' + os.environ['LEAK_ECHO'] + chr(10)); sys.exit(3)"
    )
    config.write_text(
        f"""
[scheduler]
health_port = 0
shutdown_grace = "2s"

[retriever]
factory = "not_imported_by_a_command_job:make"
options = {{ api_key = "{API_KEY}", dsn = "{DSN}", top_k = 5 }}

[[jobs]]
name = "leaky"
kind = "command"
command = [{json.dumps(sys.executable)}, "-c", {json.dumps(leak)}]

[alerts]
retry_initial = 0
retry_max = 0
deliver_interval = 0.2

[[alerts.sinks]]
name = "file"
kind = "log"
path = {json.dumps(str(sink_file))}

[[alerts.sinks]]
name = "logged"
kind = "log"

[[alerts.rules]]
name = "jobs"
kind = "job_failure"
cooldown = 0
""",
        encoding="utf-8",
    )
    env = fresh_env(
        home,
        EVALKIT_CONFIG=str(config),
        LEAK_KEY=API_KEY,
        LEAK_DSN=DSN,
        LEAK_BASIC=BASIC,
        LEAK_ECHO=BEARER_ECHO,
    )
    return env, sink_file


@pytest.mark.slow
def test_jobs_run_of_a_leaking_command_job_masks_its_output_and_the_store(
    tmp_path: Path,
) -> None:
    env, _ = leaky_setup(tmp_path)
    ran = run_evalkit("jobs", "run", "leaky", "--format", "json", env=env)
    assert ran.returncode == 1, ran.stderr
    assert "job leaky failed: " in ran.stderr
    assert "api_key=***" in json.loads(ran.stdout)["error"]
    assert leaks_in(ran.stdout + ran.stderr) == []
    assert_store_has_no(tmp_path / "home" / "evalkit.duckdb")


@pytest.mark.slow
def test_a_command_job_leaking_retriever_option_secrets_is_masked_everywhere(
    tmp_path: Path, serves: list[object]
) -> None:
    env, sink_file = leaky_setup(tmp_path)
    home = tmp_path / "home"
    log = tmp_path / "serve.log"
    process = popen_serve(log, env, tmp_path)
    serves.append(type("Started", (), {"process": process})())
    info = home / "evalkit.duckdb.serve.json"

    def started() -> bool:
        assert process.poll() is None, log.read_text()
        try:
            return bool(json.loads(info.read_text())["pid"] == process.pid)
        except (OSError, ValueError, KeyError):
            return False

    wait_until(started, timeout=STARTUP, what="evalkit serve to start")
    url = json.loads(info.read_text())["url"]
    ran = httpx.post(f"{url}/jobs/leaky/run", params={"wait": 60}, timeout=90).json()
    assert ran["job_run"]["status"] == "failed"
    wait_until(lambda: sink_file.exists() and sink_file.read_text().strip() != "", timeout=60)
    wait_until(lambda: "alert firing" in log.read_text(), timeout=60)
    process.terminate()
    assert process.wait(timeout=90) == 0

    # The message itself was kept, with every secret masked.
    error = ran["job_run"]["error"]
    assert "auth failed: api_key=***" in error
    assert "reader:***@" in error or "dsn=postgresql://" in error
    assert leaks_in(error) == []
    with duckdb.connect(str(home / "evalkit.duckdb"), read_only=True) as connection:
        (stored,) = connection.execute("SELECT error FROM job_runs").fetchone() or (None,)
        alerts = connection.execute("SELECT CAST(evidence AS VARCHAR) FROM alerts").fetchall()
    assert stored is not None
    assert "api_key=***" in stored
    assert alerts
    assert all("api_key=***" in evidence for (evidence,) in alerts)
    assert leaks_in(sink_file.read_text()) == []
    assert "api_key=***" in sink_file.read_text()
    served = log.read_text()
    assert "job leaky failed" in served
    assert leaks_in(served) == []
    assert_store_has_no(home / "evalkit.duckdb")


@pytest.mark.slow
def test_a_command_job_echoing_the_retriever_tokens_of_the_environment_is_masked(
    tmp_path: Path,
) -> None:
    tokens = {
        "EVALKIT_HTTP_RETRIEVER_TOKEN": "sk-http-LEAK-5Tz1",
        "EVALKIT_CHROMA_TOKEN": "ch-LEAK-8Kw3",
    }
    echo = (
        "import os, sys; sys.exit('denied: ' + os.environ['EVALKIT_HTTP_RETRIEVER_TOKEN']"
        " + ' ' + os.environ['EVALKIT_CHROMA_TOKEN'])"
    )
    config = tmp_path / "evalkit.toml"
    config.write_text(
        f"""
[[jobs]]
name = "echo"
kind = "command"
command = [{json.dumps(sys.executable)}, "-c", {json.dumps(echo)}]
""",
        encoding="utf-8",
    )
    home = tmp_path / "home"
    env = fresh_env(home, EVALKIT_CONFIG=str(config), **tokens)
    ran = run_evalkit("jobs", "run", "echo", "--format", "json", env=env)
    assert ran.returncode == 1, ran.stderr
    assert json.loads(ran.stdout)["error"].endswith("denied: *** ***")
    store = (home / "evalkit.duckdb").read_bytes()
    for token in tokens.values():
        assert token not in ran.stdout + ran.stderr
        assert token.encode() not in store


def test_every_command_masks_its_log_lines(capsys: pytest.CaptureFixture[str]) -> None:
    secret = "sk-LOGLINE-2Vb7"
    register_secrets([secret])
    logger = logging.getLogger("evalkit")
    saved = logger.handlers[:]
    logger.handlers.clear()
    try:
        assert invoke(["--version"]) == 0
        logging.getLogger("evalkit.alerts.outbox").warning("not delivered: %s", secret)
        try:
            raise ConnectionError(f"refused https://hook.test/?token={secret}")
        except ConnectionError:
            logging.getLogger("evalkit.scheduler.runner").exception("job failed")
    finally:
        logger.handlers[:] = saved
    err = capsys.readouterr().err
    assert "not delivered: ***" in err
    assert "ConnectionError: refused https://hook.test/?token=***" in err
    assert secret not in err


@pytest.mark.slow
def test_a_sink_failure_quoting_another_sink_s_token_is_masked_on_stderr(
    tmp_path: Path,
) -> None:
    token = "Bearer hookLEAK-9Qs4"
    sink_echo = "import os, sys; sys.exit('sink failed: ' + os.environ['HOOK_AUTH'])"
    config = tmp_path / "evalkit.toml"
    config.write_text(
        f"""
[[alerts.sinks]]
name = "hdr"
kind = "webhook"
url = "http://127.0.0.1:9/hook"
headers_env = {{ Authorization = "HOOK_AUTH" }}
retries = 0

[[alerts.sinks]]
name = "cmd"
kind = "command"
command = [{json.dumps(sys.executable)}, "-c", {json.dumps(sink_echo)}]

[[alerts.rules]]
name = "jobs"
kind = "job_failure"

[[jobs]]
name = "broken"
kind = "command"
command = [{json.dumps(sys.executable)}, "-c", "raise SystemExit(2)"]
""",
        encoding="utf-8",
    )
    env = fresh_env(tmp_path / "home", EVALKIT_CONFIG=str(config), HOOK_AUTH=token)
    ran = run_evalkit("jobs", "run", "broken", env=env)
    assert "not delivered to cmd" in ran.stderr, ran.stderr
    assert "sink failed: ***" in ran.stderr
    assert "hookLEAK" not in ran.stdout + ran.stderr


def assert_store_has_no(store: Path) -> None:
    assert not any(secret.encode() in store.read_bytes() for secret in LEAKED)
    with duckdb.connect(str(store), read_only=True) as connection:
        columns = connection.execute(
            "SELECT table_name, column_name FROM information_schema.columns"
            " WHERE data_type = 'VARCHAR' OR data_type = 'JSON'"
        ).fetchall()
        for table, column in columns:
            for (value,) in connection.execute(f'SELECT "{column}" FROM "{table}"').fetchall():
                assert leaks_in(str(value)) == [], f"{table}.{column}"


# -- an HTTP retriever that echoes the bearer key in base64 -------------------------------


class _Base64Echo(JSONHandler):
    """Refuses every query, echoing its Authorization header base64-encoded after a prefix
    of 0, 1 or 2 bytes (by query), so the key starts at each base64 position."""

    def do_POST(self) -> None:
        body = self.read_json()
        if not body["query_id"].startswith("q"):  # evalkit's reachability check
            self.send_json({"results": []})
            return
        shift = "ab"[: int(body["query_id"].removeprefix("q")) % 3]
        echoed = f"{shift}Authorization: {self.headers.get('Authorization', '')}"
        text = f"bad credentials (received {base64.b64encode(echoed.encode()).decode()})"
        self.send_body(text.encode(), 403, content_type="text/plain")


@pytest.fixture
def base64_echo() -> Iterator[str]:
    with serving(_Base64Echo) as url:
        yield f"{url}/search"


@pytest.mark.slow
def test_a_bearer_key_echoed_in_base64_is_masked_in_the_store_and_runs_show(
    tmp_path: Path, base64_echo: str
) -> None:
    home = tmp_path / "home"
    env = fresh_env(home, EVALKIT_HTTP_RETRIEVER_TOKEN=API_KEY, EVALKIT_HTTP_RETRIES="0")
    folder = tmp_path / "gs"
    folder.mkdir()
    ids = [f"q{number}" for number in range(6)]
    (folder / "queries.jsonl").write_text(
        "".join(json.dumps({"id": qid, "text": f"question {qid}"}) + "\n" for qid in ids)
    )
    (folder / "judgments.jsonl").write_text(
        "".join(json.dumps({"query_id": qid, "doc_id": "d1", "relevance": 1}) + "\n" for qid in ids)
    )
    assert run_evalkit("goldset", "import", str(folder), "--name", "gs", env=env).returncode == 0
    run = run_evalkit(
        "run", "--goldset", "gs", "--http-retriever", base64_echo, "--k", "5", env=env
    )
    assert run.returncode == 3, run.stderr
    with duckdb.connect(str(home / "evalkit.duckdb"), read_only=True) as connection:
        (run_id,) = connection.execute("SELECT run_id FROM runs").fetchone() or (None,)
        errors = [
            error
            for (error,) in connection.execute(
                "SELECT error FROM run_queries WHERE error IS NOT NULL"
            ).fetchall()
        ]
    assert len(errors) == len(ids)
    assert all("bad credentials (received " in error and "***" in error for error in errors)
    shown = run_evalkit("runs", "show", str(run_id), "--format", "json", env=env)
    assert shown.returncode == 0, shown.stderr
    key_runs = {base64.b64encode(f"{p}{API_KEY}".encode()).decode()[4:16] for p in ("", "a", "ab")}
    for text in (*errors, shown.stdout, run.stdout, run.stderr):
        assert API_KEY not in text
        assert not any(run_piece in text for run_piece in key_runs), text
    assert_no_secret_in(home)


def assert_no_secret_in(home: Path) -> None:
    """No plain or base64 form of the key in any file of the store or any stored text."""
    forms = [API_KEY, *(f for f in secret_forms(API_KEY) if f != API_KEY)]
    for path in home.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert not any(form.encode() in data for form in forms), path
