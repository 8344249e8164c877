"""Whose embeddings: the query embedder is chosen ([embedder]), not assumed.

Against real parts: an OpenAI-compatible ``/v1/embeddings`` server on 127.0.0.1 that embeds
with the bundled MiniLM (or a second, genuinely different sentence-transformers model), and
real ``python -m evalkit`` processes indexing and replaying the demo goldset.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import REPO_ROOT
from demo_index import DEMO_DIR, Reference, chroma_reference, demo_goldset, minilm
from loopback import JSONHandler, serving

from evalkit.cli import invoke
from evalkit.config import EmbedderKind, EmbedderSettings, Settings
from evalkit.embedding import (
    CANARY_TEXTS,
    Embedder,
    EndpointEmbedder,
    LazyEmbedder,
    build_query_embedder,
    default_model_path,
    load_embedder,
)
from evalkit.errors import ConfigError, EmbeddingError, RetrieverError
from evalkit.retrievers import ChromaRetriever

API_KEY = "sk-evalkit-test-4f9c2a7e1b"
KEY_ENV = "EVALKIT_TEST_EMBEDDINGS_KEY"
OTHER_MODEL = "minilm-dense256"


@dataclass
class EmbeddingServer:
    """What the test server saw, and the failures it is told to give first."""

    url: str
    models: dict[str, Embedder]
    requests: list[dict[str, Any]] = field(default_factory=list)
    authorizations: list[str | None] = field(default_factory=list)
    scripted: list[tuple[int, dict[str, str], bytes]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self) -> None:
        with self.lock:
            self.requests.clear()
            self.authorizations.clear()
            self.scripted.clear()


def _handler(server: EmbeddingServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            request = json.loads(self.rfile.read(length))
            with server.lock:
                server.requests.append(request)
                server.authorizations.append(self.headers.get("Authorization"))
                scripted = server.scripted.pop(0) if server.scripted else None
            if scripted is not None:
                status, headers, body = scripted
                self._send(status, body, headers)
                return
            if self.path != "/v1/embeddings":
                self._send(404, b'{"error": "not found"}')
                return
            model = server.models.get(request.get("model"))
            if model is None:
                self._send(400, b'{"error": {"message": "unknown model"}}')
                return
            vectors = model.embed(request["input"])
            # Served in reverse order: a client must order by "index", as the API says.
            data = [
                {"object": "embedding", "index": i, "embedding": vectors[i].tolist()}
                for i in reversed(range(len(vectors)))
            ]
            body = {"object": "list", "data": data, "model": request["model"]}
            self._send(200, json.dumps(body).encode())

    return Handler


@pytest.fixture(scope="session")
def other_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A genuinely different local model: MiniLM with a seeded 384->256 projection on top."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Dense, Normalize

    model = SentenceTransformer(str(default_model_path()), device="cpu", local_files_only=True)
    torch.manual_seed(15)
    model.append(Dense(384, 256))
    model.append(Normalize())
    directory = tmp_path_factory.mktemp("models") / OTHER_MODEL
    model.save(str(directory))
    return directory


@pytest.fixture(scope="session")
def embedding_server(other_model_dir: Path) -> Iterator[EmbeddingServer]:
    """An OpenAI-compatible /v1/embeddings server on loopback serving real embeddings."""
    models = {"all-MiniLM-L6-v2": minilm(), OTHER_MODEL: load_embedder(other_model_dir)}
    state = EmbeddingServer(url="", models=models)
    with serving(_handler(state)) as url:
        state.url = f"{url}/v1"
        yield state


@pytest.fixture(scope="session")
def demo_home(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Reference]:
    """An EVALKIT_HOME with the demo goldset imported and the demo corpus indexed locally
    (MiniLM) into Chroma collection ``demo``, and the reference run over it."""
    home = tmp_path_factory.mktemp("embedders") / "home"
    reference = chroma_reference(home)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EVALKIT_HOME", str(home))
        patch.delenv("EVALKIT_CONFIG", raising=False)
        assert invoke(["goldset", "import", str(DEMO_DIR), "--name", "demo", "-o", "json"]) == 0
    return home, reference


@pytest.fixture
def server(embedding_server: EmbeddingServer) -> EmbeddingServer:
    embedding_server.reset()
    return embedding_server


def endpoint(server: EmbeddingServer, model: str = "all-MiniLM-L6-v2", **kwargs: Any):  # type: ignore[no-untyped-def]
    kwargs.setdefault("backoff", 0.0)
    return EndpointEmbedder(server.url, model, **kwargs)


@pytest.mark.slow
def test_endpoint_embeds_as_the_local_model_and_fingerprints_the_same(
    server: EmbeddingServer,
) -> None:
    texts = [query.text for query in demo_goldset().queries[:20]]
    remote = endpoint(server, api_key=API_KEY, batch_size=7)
    assert server.requests == []  # lazy: nothing is asked before first use
    vectors = remote.embed(texts)
    local = minilm().embed(texts)
    assert vectors.shape == local.shape == (20, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert float(np.min(np.sum(vectors * local, axis=1))) > 0.999
    assert [len(request["input"]) for request in server.requests] == [7, 7, 6]
    assert all(request["encoding_format"] == "float" for request in server.requests)
    assert "dimensions" not in server.requests[0]
    assert set(server.authorizations) == {f"Bearer {API_KEY}"}

    assert remote.name == "all-MiniLM-L6-v2"
    assert remote.dimension == 384
    assert remote.fingerprint.matches(minilm().fingerprint)
    assert remote.fingerprint.canary_similarity(minilm().fingerprint) >= 0.999


@pytest.mark.slow
def test_a_different_model_behind_the_endpoint_is_detected(
    server: EmbeddingServer, demo_home: tuple[Path, Reference]
) -> None:
    other = endpoint(server, OTHER_MODEL)
    assert other.dimension == 256
    assert not other.fingerprint.matches(minilm().fingerprint)

    _, reference = demo_home
    with (
        pytest.raises(RetrieverError, match="different dimensions"),
        ChromaRetriever.embedded(reference.chroma_path, "demo", other),
    ):
        pass
    same = ChromaRetriever.embedded(
        reference.chroma_path, "demo", endpoint(server, api_key=API_KEY)
    )
    with same:
        results = same.retrieve(demo_goldset().queries[:3], 10)
        assert same.describe()["model"] == "all-MiniLM-L6-v2"
        assert API_KEY not in json.dumps(same.describe(), default=str)
    assert all(result.error is None and len(result.docs) == 10 for result in results)


def test_dimensions_is_asked_for_when_set(server: EmbeddingServer) -> None:
    endpoint(server, dimensions=384).embed(["a"])
    assert server.requests[0]["dimensions"] == 384


def test_503_then_success_is_retried_honouring_retry_after(server: EmbeddingServer) -> None:
    server.scripted.append((503, {"Retry-After": "0"}, b'{"error": "warming up"}'))
    server.scripted.append((429, {"Retry-After": "0"}, b'{"error": "slow down"}'))
    vectors = endpoint(server, retries=3).embed(["How do I reset my password?"])
    assert vectors.shape == (1, 384)
    assert len(server.requests) == 3


def test_retries_are_bounded_and_the_error_names_the_url(server: EmbeddingServer) -> None:
    server.scripted.extend([(503, {}, b"down")] * 3)
    with pytest.raises(EmbeddingError, match=r"127\.0\.0\.1:\d+/v1/embeddings: HTTP 503"):
        endpoint(server, retries=2).embed(["a"])
    assert len(server.requests) == 3


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"<html>oops</html>", "malformed response"),
        (b'{"data": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nests arrays and objects too"),
        (b'{"data": [{"index": 0, "embedding": [0.1, 0.2]}]}', "1 embeddings for 2 inputs"),
        (
            b'{"data": [{"index": 0, "embedding": [0.1, 0.2]}, '
            b'{"index": 0, "embedding": [0.3, 0.4]}]}',
            "out of range or repeated",
        ),
        (
            b'{"data": [{"index": 0, "embedding": [0.1, 0.2]}, {"index": 1, "embedding": [0.3]}]}',
            "of one length",
        ),
        (
            b'{"data": [{"index": 0, "embedding": [0.0, 0.0]}, '
            b'{"index": 1, "embedding": [0.3, 0.1]}]}',
            "zero vector",
        ),
    ],
)
def test_a_malformed_response_is_an_embedding_error_naming_the_url(
    server: EmbeddingServer, body: bytes, problem: str
) -> None:
    server.scripted.append((200, {}, body))
    with pytest.raises(EmbeddingError) as raised:
        endpoint(server).embed(["a", "b"])
    message = str(raised.value)
    assert f"{server.url}/embeddings" in message
    assert problem in message
    assert len(server.requests) == 1  # a malformed answer is not retried


def test_a_client_error_is_not_retried_and_the_key_is_not_shown(
    server: EmbeddingServer,
) -> None:
    server.scripted.append((401, {}, f'{{"error": "bad key {API_KEY}"}}'.encode()))
    with pytest.raises(EmbeddingError, match="HTTP 401") as raised:
        endpoint(server, api_key=API_KEY).embed(["a"])
    assert API_KEY not in str(raised.value)
    assert len(server.requests) == 1


class _KeyEchoAtTheCut(JSONHandler):
    """Refuses with the key echoed where the error's 200 characters of body end (the
    padding before it is the request's first input)."""

    def do_POST(self) -> None:
        pad = self.read_json()["input"][0]
        self.send_body(f"{pad} bad key {self.headers['Authorization']}".encode(), 401)


@pytest.mark.parametrize("into_the_key", [1, 6, len(API_KEY) - 1])
def test_a_key_echoed_across_the_error_length_is_masked_whole(into_the_key: int) -> None:
    pad = "x" * (200 - len(" bad key Bearer ") - into_the_key)
    with serving(_KeyEchoAtTheCut) as url:
        embedder = EndpointEmbedder(f"{url}/v1", "m", api_key=API_KEY, retries=0)
        with pytest.raises(EmbeddingError, match="HTTP 401") as raised:
            embedder.embed([pad])
    message = str(raised.value)
    assert "bad key Bearer *" in message
    assert API_KEY[:3] not in message


def test_build_query_embedder_per_kind(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, API_KEY)
    chosen = build_query_embedder(
        Settings(
            embedder=EmbedderSettings(
                kind=EmbedderKind.openai,
                url="http://127.0.0.1:9/v1",
                model="text-embedding-3-small",
                api_key_env=KEY_ENV,
            )
        )
    )
    assert isinstance(chosen, EndpointEmbedder)
    assert chosen.name == "text-embedding-3-small"
    assert chosen.url == "http://127.0.0.1:9/v1/embeddings"
    assert isinstance(build_query_embedder(Settings()), LazyEmbedder)
    assert build_query_embedder(Settings(embedder=EmbedderSettings(kind=EmbedderKind.none))) is None
    with pytest.raises(ConfigError, match="url"):
        build_query_embedder(Settings(embedder=EmbedderSettings(kind=EmbedderKind.openai)))
    with pytest.raises(ConfigError, match="http:// or https://"):
        EndpointEmbedder("127.0.0.1:8080", "m")


def test_the_canaries_are_fingerprinted_once(server: EmbeddingServer) -> None:
    remote = endpoint(server)
    first = remote.fingerprint
    assert remote.fingerprint is first
    assert sum(len(request["input"]) for request in server.requests) == len(CANARY_TEXTS)


# --- real evalkit processes ------------------------------------------------------------


def evalkit(
    home: Path, *args: str, config: Path | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    """``python -m evalkit ARGS`` in a fresh environment over ``home`` (this tree's code)."""
    ambient = ("EVALKIT_CHROMA_URL", "EVALKIT_MODEL_PATH", "EVALKIT_CONFIG")
    environment = {name: value for name, value in os.environ.items() if name not in ambient}
    environment.update(
        EVALKIT_HOME=str(home),
        PYTHONPATH=str(REPO_ROOT),
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        ANONYMIZED_TELEMETRY="False",
        **env,
    )
    if config is not None:
        environment["EVALKIT_CONFIG"] = str(config)
    return subprocess.run(
        [sys.executable, "-m", "evalkit", *args],
        capture_output=True,
        text=True,
        env=environment,
        cwd=home.parent,
        timeout=300,
        check=False,
    )


def run_json(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.slow
def test_a_collection_built_with_another_local_model_is_evaluated_with_it(
    other_model_dir: Path,
    demo_home: tuple[Path, Reference],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    home, _ = demo_home
    other = {"EVALKIT_MODEL_PATH": str(other_model_dir)}
    # Indexing and the refusal run in this process, which has torch and sentence-transformers
    # loaded already; the evaluation with the other model is a real process of its own.
    for name in ("EVALKIT_CHROMA_URL", "EVALKIT_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("EVALKIT_HOME", str(home))
    monkeypatch.setenv("EVALKIT_MODEL_PATH", str(other_model_dir))
    corpus = str(DEMO_DIR / "corpus.jsonl")
    index = ["index", "--corpus", corpus, "--collection", "dense256", "--format", "json"]
    assert invoke(index) == 0
    indexed = json.loads(capsys.readouterr().out)
    assert indexed["added"] == 330

    run = run_json(
        evalkit(
            home,
            "run",
            "--goldset",
            "demo",
            "--collection",
            "dense256",
            "--k",
            "10",
            "--format",
            "json",
            **other,
        )
    )
    assert run["status"] == "complete"
    assert run["model"]["name"] == OTHER_MODEL
    assert run["model"]["dimension"] == 256
    assert run["aggregates"]["ndcg@10"] > 0.0

    monkeypatch.delenv("EVALKIT_MODEL_PATH")
    code = invoke(["run", "--goldset", "demo", "--collection", "dense256", "--k", "10"])
    refused = capsys.readouterr()
    # An embedding-model failure exits 3 (docs/cli.md), as every other model mismatch does.
    assert code == 3, refused.err
    assert "different dimensions" in refused.err
    assert "256" in refused.err
    assert "384" in refused.err


@pytest.mark.slow
def test_a_run_through_the_endpoint_scores_as_the_local_run_and_never_shows_the_key(
    server: EmbeddingServer, demo_home: tuple[Path, Reference], tmp_path: Path
) -> None:
    home, reference = demo_home  # indexed and replayed locally with MiniLM
    assert reference.chroma_path == home / "chroma"
    config = tmp_path / "evalkit.toml"
    config.write_text(
        "[embedder]\n"
        'kind = "openai"\n'
        f'url = "{server.url}"\n'
        'model = "all-MiniLM-L6-v2"\n'
        f'api_key_env = "{KEY_ENV}"\n'
    )
    done = evalkit(
        home,
        "run",
        "--goldset",
        "demo",
        "--collection",
        "demo",
        "--k",
        "10",
        "--format",
        "json",
        config=config,
        **{KEY_ENV: API_KEY},
    )
    run = run_json(done)
    assert run["status"] == "complete"
    assert run["aggregates"]["ndcg@10"] == pytest.approx(reference.ndcg10, abs=1e-6)
    assert server.requests
    assert set(server.authorizations) == {f"Bearer {API_KEY}"}

    for text in (done.stdout, done.stderr):
        assert API_KEY not in text
    for stored in home.rglob("*.duckdb*"):
        assert API_KEY.encode() not in stored.read_bytes()


@pytest.mark.slow
def test_evalkit_index_embeds_with_the_endpoint_when_embedder_says_so(
    server: EmbeddingServer,
    demo_home: tuple[Path, Reference],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from evalkit.embedding import ModelFingerprint
    from evalkit.retrievers.chroma_client import close_client, get_collection, open_chroma_client

    home, _ = demo_home
    corpus = tmp_path / "corpus.jsonl"
    lines = (DEMO_DIR / "corpus.jsonl").read_text(encoding="utf-8").splitlines()[:12]
    corpus.write_text("\n".join(lines) + "\n", encoding="utf-8")
    config = tmp_path / "evalkit.toml"
    config.write_text(
        f'[embedder]\nkind = "openai"\nurl = "{server.url}"\nmodel = "{OTHER_MODEL}"\n'
    )
    monkeypatch.setenv("EVALKIT_HOME", str(home))
    monkeypatch.setenv("EVALKIT_CONFIG", str(config))
    # A cache of its own: no other test's vectors of this model spare it a request.
    monkeypatch.setenv("EVALKIT_CACHE_DIR", str(tmp_path / "cache"))
    assert invoke(["index", "--corpus", str(corpus), "--collection", "via-endpoint"]) == 0
    capsys.readouterr()
    assert sum(len(request["input"]) for request in server.requests) == 12 + len(CANARY_TEXTS)

    client = open_chroma_client(path=home / "chroma")
    try:
        metadata = get_collection(client, "via-endpoint").metadata
    finally:
        close_client(client)
    stored = ModelFingerprint.from_metadata(dict(metadata or {}))
    assert stored is not None
    assert stored.name == OTHER_MODEL
    assert stored.dimension == 256
    assert stored.matches(server.models[OTHER_MODEL].fingerprint)

    config.write_text('[embedder]\nkind = "none"\n')
    assert invoke(["index", "--corpus", str(corpus), "--collection", "via-endpoint"]) == 2
    assert "kind none" in capsys.readouterr().err


@pytest.mark.slow
def test_the_model_check_uses_the_chosen_embedder(
    server: EmbeddingServer,
    demo_home: tuple[Path, Reference],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    home, _ = demo_home  # the demo collection, indexed locally with MiniLM
    config = tmp_path / "evalkit.toml"
    monkeypatch.setenv("EVALKIT_HOME", str(home))
    monkeypatch.setenv("EVALKIT_CONFIG", str(config))
    check = ["drift", "model", "--collection", "demo", "--format", "json"]

    config.write_text(
        f'[embedder]\nkind = "openai"\nurl = "{server.url}"\nmodel = "all-MiniLM-L6-v2"\n'
    )
    assert invoke(check) == 0
    same = json.loads(capsys.readouterr().out)
    assert same["finding"] == "ok"
    assert same["query_model"]["name"] == "all-MiniLM-L6-v2"
    assert server.requests, "the canaries went to the endpoint, not to a local model"

    config.write_text(
        f'[embedder]\nkind = "openai"\nurl = "{server.url}"\nmodel = "{OTHER_MODEL}"\n'
    )
    assert invoke(check) == 1
    other = json.loads(capsys.readouterr().out)
    assert other["finding"] == "model_mismatch"
    assert other["query_model"]["name"] == OTHER_MODEL
    assert other["query_model"]["dimension"] == 256

    config.write_text('[embedder]\nkind = "none"\n')
    assert invoke(check) == 2
    assert "kind is none" in capsys.readouterr().err
