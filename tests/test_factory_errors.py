"""A user's factory that cannot reach its store exits 3, like every retriever that cannot be
reached; a factory called wrongly stays bad input (2); a ``retrieve()`` that returns the
wrong type is refused saying what it must return. Through real ``evalkit`` processes."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import duckdb
import pytest
from chroma_server import free_port
from evalkit_in_process import invoke_evalkit
from evalkit_process import fresh_env, run_evalkit

from evalkit.retrievers.plugins import unreachable

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "goldsets" / "demo"

HOOK = '''
import socket

import httpx
import psycopg

from evalkit.records import QueryResult
from evalkit.retrievers.base import ranked_docs

PORT = {port}


def refused():
    with socket.create_connection(("127.0.0.1", PORT), timeout=5):
        pass


def over_http():
    httpx.get(f"http://127.0.0.1:{{PORT}}/search", timeout=5)


def postgres():
    psycopg.connect(f"postgresql://rag@127.0.0.1:{{PORT}}/rag", connect_timeout=5)


class SearchUnavailable(Exception):
    """A client library's own error, raised from the socket's."""


def wrapped():
    try:
        refused()
    except OSError as error:
        raise SearchUnavailable("search cluster is down") from error


def needs_an_index(index):
    return None


def bad_value():
    raise ValueError("index name must be lowercase")


class Answers:
    def __init__(self, answer):
        self.answer = answer

    def retrieve(self, queries, k):
        return self.answer(queries)


def returns_text():
    return Answers(lambda queries: "d0001 d0002")


def returns_dicts():
    return Answers(lambda queries: [{{"query_id": q.id, "docs": []}} for q in queries])


def returns_one_short():
    return Answers(
        lambda queries: [
            QueryResult(query_id=q.id, docs=ranked_docs(["d0001"], [1.0]), latency_ms=1.0)
            for q in queries[1:]
        ]
    )


class Down(Answers):
    def check(self):
        refused()


def check_refused():
    return Down(lambda queries: [])


def _first_demo_doc(queries):
    return [
        QueryResult(query_id=q.id, docs=ranked_docs(["d0001"], [1.0]), latency_ms=1.0)
        for q in queries
    ]


class BrokenDescribe(Answers):
    def describe(self):
        raise RuntimeError("describe broke")


def describe_raises():
    return BrokenDescribe(_first_demo_doc)


class BrokenClose(Answers):
    def close(self):
        raise RuntimeError("close failed")


def close_raises():
    return BrokenClose(_first_demo_doc)


class FiltersItself(Answers):
    def describe(self):
        return {{"kind": "own", "where_key": "tenant"}}


def filters_itself():
    return FiltersItself(_first_demo_doc)


def blind():
    return Answers(_first_demo_doc)
'''


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with the user's module (every factory aims at a closed loopback port) and
    a store holding the demo goldset."""
    cwd = tmp_path_factory.mktemp("factories")
    (cwd / "hooks.py").write_text(HOOK.format(port=free_port()), encoding="utf-8")
    done = invoke_evalkit(
        "goldset", "import", str(DEMO), "--name", "demo", env=fresh_env(cwd / "home"), cwd=cwd
    )
    assert done.returncode == 0, done.stderr
    return cwd


def evalkit(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_evalkit(*args, env=fresh_env(cwd / "home", PYTHONPATH=str(REPO)), cwd=cwd)


def run(project: Path, factory: str) -> tuple[int, str, dict[str, Any]]:
    done = evalkit(
        project, "run", "--goldset", "demo", "--retriever", f"hooks:{factory}", "--format", "json"
    )
    return done.returncode, " ".join(done.stderr.split()), json.loads(done.stdout)


def refused(project: Path, factory: str, *, code: int, error: str) -> str:
    """What ``run`` of ``factory`` said on stderr (on one line), once its exit code and the
    type of its JSON error are checked."""
    exit_code, said, data = run(project, factory)
    assert exit_code == code, said
    assert data["error"]["type"] == error
    return said


@pytest.mark.parametrize(
    ("factory", "raised"),
    [
        ("refused", "ConnectionRefusedError"),
        ("over_http", "ConnectError"),
        ("postgres", "OperationalError"),
        ("wrapped", "SearchUnavailable: search cluster is down"),
    ],
)
def test_a_factory_that_cannot_reach_its_store_exits_3(
    project: Path, factory: str, raised: str
) -> None:
    said = refused(project, factory, code=3, error="RetrieverError")
    assert f"retriever factory 'hooks:{factory}'" in said
    assert raised in said
    assert "cannot be reached" in said


@pytest.mark.parametrize(
    ("factory", "raised"),
    [
        ("needs_an_index", "TypeError"),
        ("bad_value", "ValueError: index name must be lowercase"),
    ],
)
def test_a_factory_called_wrongly_stays_bad_input(project: Path, factory: str, raised: str) -> None:
    said = refused(project, factory, code=2, error="ConfigError")
    assert raised in said
    assert "cannot be reached" not in said


def test_a_check_that_cannot_reach_its_store_exits_3_naming_the_factory(project: Path) -> None:
    said = refused(project, "check_refused", code=3, error="RetrieverError")
    assert "retriever factory 'hooks:check_refused'" in said
    assert "check() raised ConnectionRefusedError" in said


@pytest.mark.parametrize(
    ("factory", "returned"),
    [
        ("returns_text", "retrieve() returned a str"),
        ("returns_dicts", "retrieve() returned a list whose item 0 is a dict, not a QueryResult"),
    ],
)
def test_a_retrieve_of_the_wrong_type_says_what_it_must_return(
    project: Path, factory: str, returned: str
) -> None:
    said = refused(project, factory, code=2, error="ConfigError")
    assert f"retriever factory 'hooks:{factory}'" in said
    assert returned in said
    assert "must return a list of evalkit.records.QueryResult, one per query" in said
    assert "AttributeError" not in said
    with duckdb.connect(str(project / "home" / "evalkit.duckdb"), read_only=True) as store:
        [(status, error)] = store.execute(
            "SELECT status, error FROM runs WHERE retriever_config->>'factory' = ?",
            [f"hooks:{factory}"],
        ).fetchall()
    assert status == "failed"
    assert returned in error


def test_results_for_other_queries_fail_those_batches_saying_what_to_return(
    project: Path,
) -> None:
    code, said, data = run(project, "returns_one_short")
    assert code == 3, said
    assert data["status"] == "failed"
    assert "one per query, in the order given" in data["error"]


@pytest.mark.slow
def test_where_key_on_a_retriever_of_one_s_own_that_cannot_filter_is_refused(
    project: Path,
) -> None:
    """It was dropped without a word: the run replayed every tenant's documents for each
    query and recorded no where_key, while isolation had been asked for."""
    tenant = ("--where-key", "tenant", "--format", "json")
    done = evalkit(project, "run", "--goldset", "demo", "--retriever", "hooks:blind", *tenant)
    assert done.returncode == 2, done.stderr
    said = " ".join(done.stderr.split())
    assert (
        "--where-key tenant: retriever factory 'hooks:blind' returned a retriever of your" in said
    )
    assert "report the key as 'where_key' in its describe()" in said
    own = evalkit(
        project, "run", "--goldset", "demo", "--retriever", "hooks:filters_itself", *tenant
    )
    assert own.returncode == 0, own.stderr
    empty = evalkit(project, "run", "--goldset", "demo", "--collection", "demo", "--where-key", "")
    assert empty.returncode == 2
    assert "--where-key is empty" in empty.stderr


def test_what_counts_as_unreachable() -> None:
    class ServiceUnavailableError(Exception):
        pass

    assert unreachable(ConnectionResetError())
    assert unreachable(TimeoutError())
    assert unreachable(ServiceUnavailableError("503"))
    wrapped = RuntimeError("lost the search cluster")
    wrapped.__cause__ = BrokenPipeError()
    assert unreachable(wrapped)
    assert not unreachable(ValueError("bad option"))
    assert not unreachable(TypeError("make() got an unexpected keyword argument 'x'"))
    assert not unreachable(KeyError("index"))


def test_a_describe_that_raises_exits_3_naming_the_factory(project: Path) -> None:
    said = refused(project, "describe_raises", code=3, error="RetrieverError")
    assert "retriever factory 'hooks:describe_raises': describe() raised RuntimeError" in said
    assert "Traceback" not in said


def test_a_close_that_raises_after_the_run_is_stored_is_a_warning(project: Path) -> None:
    """close() comes after the run is stored: it used to turn a complete run into a
    traceback and exit 1."""
    code, said, data = run(project, "close_raises")
    assert code == 0, said
    assert data["status"] == "complete"
    assert "close() raised RuntimeError: close failed; what was stored stands" in said
    assert "Traceback" not in said
