"""Configured secrets never reach the store, the CLI's output or its logs.

A real ``evalkit`` process runs against endpoints on loopback that echo what they were sent
(the request URL, the ``Authorization`` header) in their error bodies, as some proxies do.
Afterwards the DuckDB file's raw bytes, every text column of every table and the process's
output are searched for each secret and for the forms it travels in.
"""

from __future__ import annotations

import base64
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import duckdb
import pytest
from evalkit_process import fresh_env, run_evalkit
from loopback import JSONHandler, serving
from test_run_answers import JUDGMENTS, QUERIES, RESPONSES

from evalkit.redaction import mask_url, redact, url_secrets

URL_PASSWORD = "SECRETPW-url-pass"
QUERY_KEY = "SECRETKEY-query/key+1"
JUDGE_KEY = "sk-SECRETJUDGE-0123456789"
BASIC = base64.b64encode(f"user:{URL_PASSWORD}".encode()).decode()
FORBIDDEN = [URL_PASSWORD, QUERY_KEY, quote(QUERY_KEY, safe=""), JUDGE_KEY, BASIC, "SECRET"]
# Under /flaky, the retriever rejects these queries, echoing what it was sent.
FAILING = {"q2", "q4"}


class _EchoingHandler(JSONHandler):
    """A retriever under /search (failing some queries under /flaky), a judge under /judge.

    Both echo what they were sent in their error bodies.
    """

    def do_POST(self) -> None:
        body = self.read_json()
        auth = self.headers.get("Authorization", "")
        if self.path.startswith("/judge"):
            message = f"invalid api key: {auth} (sent to {self.path})"
            self.send_json({"error": {"message": message, "type": "auth"}}, 401)
        elif self.path.startswith("/flaky") and body["query_id"] in FAILING:
            self.send_body(f"rejected {self.path} with Authorization: {auth}".encode(), 400)
        else:
            self.send_json(RESPONSES.get(body["query_id"], {"results": []}))


@pytest.fixture
def echoing_server() -> Iterator[int]:
    with serving(_EchoingHandler) as url:
        yield int(url.rsplit(":", 1)[1])


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    environment = fresh_env(
        tmp_path / "home", EVALKIT_LOG_LEVEL="DEBUG", EVALKIT_TEST_JUDGE_KEY=JUDGE_KEY
    )
    folder = tmp_path / "bridges"
    folder.mkdir()
    (folder / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in QUERIES))
    (folder / "judgments.jsonl").write_text(
        "".join(
            json.dumps({"query_id": q, "doc_id": d, "relevance": 1}) + "\n" for q, d in JUDGMENTS
        )
    )
    imported = evalkit(environment, "goldset", "import", str(folder), "--name", "bridges")
    assert imported.returncode == 0, imported.stderr
    return environment


def evalkit(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return run_evalkit(*args, env=env)


def assert_no_secret(home: Path, *outputs: str) -> None:
    """No secret in the output, in any file under ``home`` or in any stored text."""
    for output in outputs:
        for secret in FORBIDDEN:
            assert secret not in output
    files = [path for path in home.rglob("*") if path.is_file()]
    assert any(path.suffix == ".duckdb" for path in files)
    for path in files:
        data = path.read_bytes()
        for secret in FORBIDDEN:
            assert secret.encode() not in data, f"{secret!r} in {path}"
    with duckdb.connect(str(home / "evalkit.duckdb"), read_only=True) as connection:
        columns = connection.execute(
            "SELECT table_name, column_name FROM information_schema.columns"
            " WHERE data_type = 'VARCHAR' OR data_type = 'JSON'"
        ).fetchall()
        assert ("runs", "retriever_config") in columns
        for table, column in columns:
            values = connection.execute(f'SELECT "{column}" FROM "{table}"').fetchall()
            for (value,) in values:
                for secret in FORBIDDEN:
                    assert secret not in str(value), f"{secret!r} in {table}.{column}"


@pytest.mark.slow
def test_retriever_url_credentials_are_masked_everywhere(
    echoing_server: int, env: dict[str, str]
) -> None:
    url = (
        f"http://user:{URL_PASSWORD}@127.0.0.1:{echoing_server}/flaky"
        f"?api_key={quote(QUERY_KEY, safe='')}&tenant=acme"
    )
    run = evalkit(env, "run", "--goldset", "bridges", "--http-retriever", url, "--k", "5")
    assert run.returncode == 3, run.stderr
    home = Path(env["EVALKIT_HOME"])
    with duckdb.connect(str(home / "evalkit.duckdb"), read_only=True) as connection:
        status, config = connection.execute(
            "SELECT status, retriever_config FROM runs"
        ).fetchone() or (None, "{}")
        errors = connection.execute(
            "SELECT error FROM run_queries WHERE error IS NOT NULL ORDER BY query_id"
        ).fetchall()
    # The endpoint did echo, and the echo is kept, masked.
    assert status == "partial"
    assert len(errors) == len(FAILING)
    assert all("Authorization: Basic ***" in error and "api_key=" in error for (error,) in errors)
    assert "api_key=***" in json.loads(config)["url"]
    assert "tenant=acme" in json.loads(config)["url"]
    assert_no_secret(home, run.stdout, run.stderr)


@pytest.mark.slow
def test_judge_api_key_echoed_in_an_error_is_masked_everywhere(
    echoing_server: int, env: dict[str, str]
) -> None:
    judge = {
        "BASE_URL": f"http://127.0.0.1:{echoing_server}/judge/v1",
        "MODEL": "echo-judge",
        "API_KEY_ENV": "EVALKIT_TEST_JUDGE_KEY",
        "TIMEOUT": "5",
        "MAX_RETRIES": "0",
        "RETRY_BACKOFF": "0",
        "ANSWER_RELEVANCY": "false",
    }
    env.update({f"EVALKIT_JUDGE_{name}": value for name, value in judge.items()})
    url = f"http://127.0.0.1:{echoing_server}/search"
    run = evalkit(env, "run", "--goldset", "bridges", "--http-retriever", url, "--k", "5")
    assert run.returncode == 0, run.stderr
    home = Path(env["EVALKIT_HOME"])
    with duckdb.connect(str(home / "evalkit.duckdb"), read_only=True) as connection:
        details = connection.execute(
            "SELECT detail FROM answer_scores WHERE unmeasured_reason = 'judge_error'"
        ).fetchall()
    # The judge refused with the key in its body; the stored reason keeps the rest.
    assert details
    assert all("invalid api key: Bearer ***" in detail for (detail,) in details)
    assert_no_secret(home, run.stdout, run.stderr)


def test_url_secrets_cover_the_forms_a_url_secret_travels_in() -> None:
    url = f"https://user:{URL_PASSWORD}@example.test/s?api_key={quote(QUERY_KEY, safe='')}&q=1"
    secrets = url_secrets(url)
    text = f"{URL_PASSWORD} {QUERY_KEY} {quote(QUERY_KEY, safe='')} Basic {BASIC} q=1"
    assert redact(text, secrets) == "*** *** *** Basic *** q=1"
    assert mask_url(url) == "https://example.test/s?api_key=***&q=1"


def test_presigned_and_function_key_parameters_are_masked() -> None:
    url = (
        "https://bucket.s3.amazonaws.com/doc?X-Amz-Credential=AKIAEXAMPLE%2F20240101"
        "&X-Amz-Security-Token=FwoGZXIvYXdzEXAMPLE&X-Amz-Signature=abcdef0123456789"
        "&x-goog-signature=9f8e7d6c5b4a&X-Goog-Credential=svc%40proj&code=fnKeyEXAMPLE0123456789aZ==&v=2"
    )
    masked = mask_url(url)
    for secret in ("AKIAEXAMPLE", "FwoGZXIvYXdz", "abcdef0123", "9f8e7d6c", "svc", "fnKeyEX"):
        assert secret not in masked
    assert masked.endswith("&code=***&v=2")
    assert {"abcdef0123456789", "fnKeyEXAMPLE0123456789aZ=="} <= url_secrets(url)
    # "code" is also an everyday parameter: a short value is masked in its URL only, not
    # in every text printed afterwards.
    assert mask_url("https://api.test/v1?code=prod") == "https://api.test/v1?code=***"
    assert url_secrets("https://api.test/v1?code=prod") == set()


def test_query_parameters_are_secrets_by_the_rule_for_option_names() -> None:
    """Azure API Management's ``subscription-key`` and GitLab's ``private_token`` were kept
    in clear in a stored retriever URL: only names on a fixed list were masked."""
    url = (
        "https://api.test/search?subscription-key=AzureSecret111&private_token=GitlabSecret222"
        "&apitoken=TokSecret333&ACCESS_KEY=AkSecret444&where_key=tenant&q=1"
    )
    assert mask_url(url) == (
        "https://api.test/search?subscription-key=***&private_token=***&apitoken=***"
        "&ACCESS_KEY=***&where_key=tenant&q=1"
    )
    assert {"AzureSecret111", "GitlabSecret222", "TokSecret333", "AkSecret444"} <= url_secrets(url)
    assert "tenant" not in url_secrets(url)
