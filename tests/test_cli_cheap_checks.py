"""Every argument and reachability check comes before the embedding model loads.

Each case runs the real ``evalkit`` CLI in a subprocess whose EVALKIT_MODEL_PATH is an empty
directory: the directory exists, so nothing refuses it up front, but loading a model from it
fails loudly ("cannot load the embedding model"). A command that reports the wrong input
with its own error therefore did not try to load the model first; one that loads the model
before its cheap checks reports the model error instead (and spends the seconds torch and
the weights take).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from evalkit_in_process import invoke_evalkit
from query_log import logged_query, write_query_log

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "goldsets" / "demo"
MODEL_LOAD_ERROR = "cannot load the embedding model"


class Evalkit:
    """``python -m evalkit`` with a fresh EVALKIT_HOME and a model path that cannot load."""

    def __init__(self, root: Path) -> None:
        self.home = root / "home"
        self.broken_model = root / "not-a-model"
        self.broken_model.mkdir(parents=True)
        self.env = {
            **os.environ,
            "EVALKIT_HOME": str(self.home),
            "EVALKIT_MODEL_PATH": str(self.broken_model),
            "PYTHONPATH": str(REPO),
        }
        for name in ("EVALKIT_CONFIG", "EVALKIT_CHROMA_URL", "EVALKIT_CHROMA_PATH"):
            self.env.pop(name, None)
        self.cwd = root

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "evalkit", *args],
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    def in_process(self, *args: str) -> subprocess.CompletedProcess[str]:
        """The same command run in this process, for the steps that only set a case up."""
        return invoke_evalkit(*args, env=self.env, cwd=self.cwd)


@pytest.fixture(scope="module")
def demo_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home with the demo goldset imported as ``demo``, made once for the module."""
    tool = Evalkit(tmp_path_factory.mktemp("demo-home"))
    imported = tool.in_process("goldset", "import", str(DEMO), "--name", "demo")
    assert imported.returncode == 0, imported.stderr
    return tool.home


@pytest.fixture
def evalkit(tmp_path: Path, demo_home: Path) -> Evalkit:
    """The tool on a copy of ``demo_home``, which the case may change."""
    tool = Evalkit(tmp_path)
    shutil.copytree(demo_home, tool.home)
    return tool


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def refused(done: subprocess.CompletedProcess[str], code: int, message: str) -> None:
    assert MODEL_LOAD_ERROR not in done.stderr, done.stderr
    assert message in done.stderr, done.stderr
    assert done.returncode == code, done.stderr


def test_the_broken_model_path_does_fail_loudly_once_a_model_is_needed(
    evalkit: Evalkit,
) -> None:
    """The marker works: a command that must embed reports the model error."""
    done = evalkit("index", "--corpus", str(DEMO / "corpus.jsonl"), "--collection", "demo")
    assert MODEL_LOAD_ERROR in done.stderr
    assert done.returncode != 0


def test_run_reports_a_missing_collection_before_loading_the_model(evalkit: Evalkit) -> None:
    done = evalkit("run", "--goldset", "demo", "--collection", "nosuch")
    refused(done, 2, "Chroma collection 'nosuch' does not exist")


def test_run_reports_an_unreachable_chroma_server_before_loading_the_model(
    evalkit: Evalkit,
) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    done = evalkit("run", "--goldset", "demo", "--collection", "demo", "--chroma-url", url)
    refused(done, 3, f"cannot reach the Chroma server at {url}")


def test_run_reports_a_missing_goldset_before_loading_the_model(evalkit: Evalkit) -> None:
    done = evalkit("run", "--goldset", "nosuch", "--collection", "nosuch")
    refused(done, 2, "no goldset named 'nosuch'")


@pytest.mark.parametrize(
    ("depth", "message"),
    [
        ("0", "k must be a positive integer (documents per query), got 0"),
        ("99999999999", "k must be at most 2147483647 (documents per query), got 99999999999"),
    ],
)
def test_run_refuses_a_depth_it_cannot_replay_or_store_before_loading_the_model(
    evalkit: Evalkit, depth: str, message: str
) -> None:
    """0 is not taken for "the default depth", nor a 64-bit depth left to the store."""
    done = evalkit("run", "--goldset", "demo", "--collection", "demo", "--k", depth)
    refused(done, 2, message)
    assert json.loads(evalkit.in_process("runs", "list", "--format", "json").stdout) == []


def test_audit_reports_a_missing_goldset_before_loading_the_model(evalkit: Evalkit) -> None:
    done = evalkit("audit", "--collection", "demo", "--goldset", "nosuch", "--format", "json")
    refused(done, 2, "no goldset named 'nosuch'")


def test_audit_reports_a_missing_collection_before_loading_the_model(evalkit: Evalkit) -> None:
    done = evalkit("audit", "--collection", "nosuch", "--format", "json")
    refused(done, 2, "Chroma collection 'nosuch' does not exist")


def test_run_reports_a_closed_http_port_before_loading_the_model(
    evalkit: Evalkit,
) -> None:
    url = f"http://127.0.0.1:{closed_port()}/search"
    done = evalkit("run", "--goldset", "demo", "--http-retriever", url)
    refused(done, 3, "does not answer a probe query")


@pytest.fixture
def sampled_traffic(evalkit: Evalkit, tmp_path: Path) -> Evalkit:
    """One day of two tenants' traffic, ingested and sampled; an empty collection ``kbase``."""
    import chromadb
    from chromadb.config import Settings

    client = chromadb.PersistentClient(
        path=str(evalkit.home / "chroma"), settings=Settings(anonymized_telemetry=False)
    )
    client.create_collection(
        name="kbase", embedding_function=None, configuration={"hnsw": {"space": "cosine"}}
    )
    logs = write_query_log(
        tmp_path,
        (
            logged_query(index, tenant=tenant, results=["d1"])
            for index, tenant in enumerate(["acme", "acme", "globex", "globex"])
        ),
    )
    for step in (
        ("traffic", "ingest", str(logs)),
        ("traffic", "sample", "--window", "2026-11-21", "--n", "4", "--seed", "1"),
    ):
        done = evalkit.in_process(*step)
        assert done.returncode == 0, done.stderr
    return evalkit


def test_traffic_replay_refuses_a_tenant_blind_retriever_before_loading_the_model(
    sampled_traffic: Evalkit,
) -> None:
    done = sampled_traffic("traffic", "replay", "--window", "2026-11-21", "--collection", "kbase")
    refused(done, 2, "--where-key")


def test_traffic_replay_reports_a_closed_http_port_before_loading_the_model(
    sampled_traffic: Evalkit,
) -> None:
    url = f"http://127.0.0.1:{closed_port()}/search"
    done = sampled_traffic("traffic", "replay", "--window", "2026-11-21", "--http-retriever", url)
    refused(done, 3, "does not answer a probe query")


def test_traffic_replay_refuses_k_zero_as_k_not_as_compare_k(sampled_traffic: Evalkit) -> None:
    done = sampled_traffic(
        "traffic", "replay", "--window", "2026-11-21", "--collection", "kbase", "--k", "0"
    )
    refused(done, 2, "k must be a positive integer (documents per query), got 0")


def test_traffic_replay_checks_the_model_after_the_cheap_checks_and_before_recording_a_run(
    sampled_traffic: Evalkit,
) -> None:
    """Deferred past the tenant check, the model check still runs before a run is stored."""
    done = sampled_traffic(
        "traffic", "replay", "--window", "2026-11-21", "--collection", "kbase", "--where-key", "t"
    )
    assert MODEL_LOAD_ERROR in done.stderr
    assert done.returncode != 0
    runs = sampled_traffic.in_process("runs", "list", "--format", "json")
    assert json.loads(runs.stdout) == []
