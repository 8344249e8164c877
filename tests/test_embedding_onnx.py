"""The bundled MiniLM on ONNX Runtime: exported once from the local weights, embeds within
1e-5 cosine of torch, loads in a later process without torch, and falls back to torch for
models it cannot run exactly."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_dashboard_seed import goldset, perfect, query_ids, store_run

from evalkit.causes import explain_runs
from evalkit.config import Settings
from evalkit.embedding import (
    EmbedBackend,
    Embedder,
    LazyEmbedder,
    default_model_path,
    load_embedder,
)
from evalkit.embedding import onnx as onnx_embedding
from evalkit.embedding.fingerprint import ModelFingerprint
from evalkit.errors import ConfigError, EmbeddingError
from evalkit.records.requests import PairedTestSettings
from evalkit.store import Store
from evalkit.store.dashboard.quality import series_points_frame
from evalkit.store.goldsets import save_goldset
from evalkit.store.runs import RunSpec, create_run, get_run

pytestmark = pytest.mark.slow

DEMO = Path(__file__).resolve().parents[1] / "goldsets" / "demo"


def demo_texts() -> list[str]:
    """Real queries and documents of the demo goldset, plus the awkward cases."""
    queries = [json.loads(line)["text"] for line in (DEMO / "queries.jsonl").open()]
    documents = [json.loads(line)["text"] for line in (DEMO / "corpus.jsonl").open()]
    awkward = [
        "",
        "a",
        "Ünïcödé — 数据检索 and émojis 🙂",
        " ".join(["truncation"] * 700),  # far past the model's 256 tokens
    ]
    return queries[:40] + documents[:40] + awkward


@pytest.fixture(scope="module")
def onnx_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("evalkit-cache")


@pytest.fixture(scope="module")
def onnx_embedder(onnx_cache: Path) -> Embedder:
    return load_embedder(backend=EmbedBackend.onnx, cache_dir=onnx_cache)


@pytest.fixture(scope="module")
def torch_embedder() -> Embedder:
    return load_embedder(backend=EmbedBackend.torch)


def test_the_export_is_made_once_from_the_local_weights(
    onnx_embedder: Embedder, onnx_cache: Path
) -> None:
    assert onnx_embedder.backend == "onnxruntime"
    exports = list(onnx_cache.glob("onnx/*/model.onnx"))
    assert len(exports) == 1
    assert not list(onnx_cache.glob("onnx/*/*.partial"))
    layout = onnx_embedding.onnx_layout(default_model_path())
    assert layout is not None
    assert exports[0] == onnx_embedding.onnx_model_file(layout, onnx_cache)


def test_onnx_embeds_within_1e5_cosine_of_torch(
    onnx_embedder: Embedder, torch_embedder: Embedder
) -> None:
    texts = demo_texts()
    ours = onnx_embedder.embed(texts)
    theirs = torch_embedder.embed(texts)
    assert ours.shape == theirs.shape == (len(texts), 384)
    assert ours.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-6)
    cosine = np.sum(ours.astype(np.float64) * theirs, axis=1)
    assert float(np.max(1.0 - cosine)) <= 1e-5
    # Batching pads texts to the longest of their batch; the result must not depend on it.
    one_by_one = np.concatenate([onnx_embedder.embed([text]) for text in texts[-6:]])
    np.testing.assert_allclose(one_by_one, ours[-6:], atol=1e-5)


def test_both_backends_are_the_same_model_to_the_fingerprint(
    onnx_embedder: Embedder, torch_embedder: Embedder
) -> None:
    assert onnx_embedder.fingerprint.name == torch_embedder.fingerprint.name
    assert onnx_embedder.fingerprint.matches(torch_embedder.fingerprint)
    similarity = onnx_embedder.fingerprint.canary_similarity(torch_embedder.fingerprint)
    assert similarity is not None
    assert similarity > 0.9999


class _Embedded:
    """A retriever as a run sees it: it names its query model."""

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder

    def model_fingerprint(self) -> ModelFingerprint:
        return self.embedder.fingerprint

    def describe(self) -> dict[str, str]:
        return {"kind": "embedded", "backend": self.embedder.backend}


def test_runs_on_both_backends_are_of_one_query_model(
    onnx_embedder: Embedder, torch_embedder: Embedder, store: Store
) -> None:
    """Runs replayed with EVALKIT_EMBED_BACKEND=torch then onnx scored the same, and
    `evalkit explain` named a query model change between them: the two backends round a
    canary value apart, and runs were compared by the hash of the rounded canaries."""
    stored = [
        get_run(
            store,
            create_run(
                store,
                RunSpec.for_retriever(_Embedded(embedder), kind="goldset", k=10, n_queries=1),
            ),
        ).spec
        for embedder in (torch_embedder, onnx_embedder)
    ]
    assert [spec.model_canaries for spec in stored] == [
        torch_embedder.fingerprint.canary_vectors,
        onnx_embedder.fingerprint.canary_vectors,
    ]
    assert stored[0].same_query_model(stored[1]) is True

    gold = goldset(12)
    save_goldset(store, gold)
    runs = [
        store_run(
            store,
            gold,
            {q: perfect(q) for q in query_ids(12)},
            retriever_kind="chroma-embedded",
            config={"kind": "chroma-embedded", "collection": "mini"},
            collection="mini",
            model_fingerprint=embedder.fingerprint.canary_hash,
            model_canaries=embedder.fingerprint.canary_vectors,
            index_fingerprint="idx-1",
        )
        for embedder in (torch_embedder, onnx_embedder)
    ]
    explanation = explain_runs(
        store, runs[1], baseline=runs[0], test=PairedTestSettings(resamples=200)
    )
    assert "query_model_changed" not in [cause.kind for cause in explanation.causes]
    points = series_points_frame(store, goldset="mini", measure="ndcg@10")
    assert points["model_changed"].tolist() == [False, False]


def test_a_later_process_embeds_without_importing_torch(
    onnx_embedder: Embedder, onnx_cache: Path
) -> None:
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from evalkit.embedding import load_embedder\n"
        f"embedder = load_embedder(cache_dir=Path({str(onnx_cache)!r}))\n"
        "vector = embedder.embed(['a'])\n"
        "heavy = [m for m in ('torch', 'sentence_transformers', 'transformers') "
        "if m in sys.modules]\n"
        "print(embedder.backend, vector.shape[1], heavy)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300
    )
    assert done.stdout.split(maxsplit=2) == ["onnxruntime", "384", "[]\n"]


_MODEL_VARIABLES = (
    "HF_HUB_OFFLINE",
    "TRANSFORMERS_OFFLINE",
    "HF_HUB_DISABLE_PROGRESS_BARS",
    "TRANSFORMERS_VERBOSITY",
    "TOKENIZERS_PARALLELISM",
)


def without_model_variables() -> dict[str, str]:
    """This process's environment without the variables that steer Hugging Face's libraries
    (the suite's conftest sets some)."""
    return {name: value for name, value in os.environ.items() if name not in _MODEL_VARIABLES}


_NO_NETWORK = """
import json, os, socket, sys
from pathlib import Path

tried = []

def refuse(*args, **kwargs):
    tried.append(repr(args[:2]))
    raise OSError("no network here")

socket.socket.connect = refuse
socket.getaddrinfo = refuse
names = sys.argv[1].split(",")
before = {name: os.environ.get(name) for name in names}
from evalkit.embedding import load_embedder
embedder = load_embedder(backend=sys.argv[2], cache_dir=Path(sys.argv[3]))
shape = list(embedder.embed(["a query", "a document"]).shape)
after = {name: os.environ.get(name) for name in names}
from huggingface_hub import constants
print(json.dumps({
    "backend": embedder.backend,
    "shape": shape,
    "changed": {name: value for name, value in after.items() if value != before[name]},
    "hub_offline": constants.HF_HUB_OFFLINE,
    "tried": tried,
}))
"""


@pytest.mark.parametrize(("backend", "loaded_by"), [("torch", "torch"), ("onnx", "onnxruntime")])
def test_loading_the_model_reaches_no_network_and_leaves_the_environment_alone(
    backend: str, loaded_by: str, tmp_path: Path
) -> None:
    """In a notebook, loading evalkit's model set HF_HUB_OFFLINE for good: the user's own
    downloads (a SentenceTransformer from the hub) were refused as offline afterwards."""
    done = subprocess.run(
        [sys.executable, "-c", _NO_NETWORK, ",".join(_MODEL_VARIABLES), backend, str(tmp_path)],
        capture_output=True,
        text=True,
        env=without_model_variables(),
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    loaded = json.loads(done.stdout)
    assert loaded["backend"] == loaded_by  # on onnx, exported from the local weights first
    assert loaded["shape"] == [2, 384]
    assert loaded["tried"] == []
    assert loaded["changed"] == {}
    assert loaded["hub_offline"] is False


def test_the_command_line_keeps_its_models_offline() -> None:
    """The command line is evalkit's own process: it stays offline and quiet as before."""
    code = (
        "import os, sys\n"
        "from evalkit.cli import invoke\n"
        "invoke(['--version'])\n"
        f"print(','.join(os.environ.get(name, '-') for name in {_MODEL_VARIABLES!r}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=without_model_variables(),
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "1,1,1,error,false"


def test_settings_choose_the_backend_and_the_cache(onnx_cache: Path) -> None:
    chosen = LazyEmbedder.from_settings(Settings(embed_backend="torch", cache_dir=onnx_cache))
    assert chosen.load().backend == "torch"
    default = LazyEmbedder.from_settings(Settings(cache_dir=onnx_cache))
    assert default.load().backend == "onnxruntime"


def copy_model_with(tmp_path: Path, pooling: dict[str, bool]) -> Path:
    """The bundled model's directory, copied with another pooling configuration."""
    copied = tmp_path / "model"
    shutil.copytree(default_model_path(), copied)
    config = copied / "1_Pooling" / "config.json"
    settings = json.loads(config.read_text())
    settings.update(pooling)
    config.write_text(json.dumps(settings))
    return copied


def test_a_model_it_cannot_run_exactly_stays_on_torch(tmp_path: Path) -> None:
    cls_pooled = copy_model_with(
        tmp_path, {"pooling_mode_mean_tokens": False, "pooling_mode_cls_token": True}
    )
    assert onnx_embedding.onnx_layout(cls_pooled) is None
    cache = tmp_path / "cache"
    automatic = load_embedder(cls_pooled, cache_dir=cache)
    assert automatic.backend == "torch"
    assert not cache.exists()
    with pytest.raises(ConfigError, match="not one evalkit runs on ONNX Runtime"):
        load_embedder(cls_pooled, backend=EmbedBackend.onnx, cache_dir=cache)


def test_an_export_that_deviates_is_rejected_once_and_torch_is_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    model = copy_model_with(tmp_path, {})
    cache = tmp_path / "cache"
    monkeypatch.setattr(onnx_embedding, "MAX_COSINE_DEVIATION", -1.0)
    with caplog.at_level("WARNING", logger="evalkit.embedding.onnx"):
        rejected = load_embedder(model, cache_dir=cache)
    assert rejected.backend == "torch"
    assert "away (1 - cosine) from sentence-transformers" in caplog.text
    assert list(cache.glob("onnx/*/rejected.json"))
    assert not list(cache.glob("onnx/*/model.onnx"))
    assert not list(cache.glob("onnx/*/*.partial"))
    # The rejection is remembered: no second export is tried, even with the limit restored,
    # and asking for ONNX Runtime says why and how to retry.
    monkeypatch.setattr(onnx_embedding, "MAX_COSINE_DEVIATION", 1e-5)
    assert onnx_embedding.onnx_model_for(model, cache, ["a"], required=False) is None
    retry = r"refused the ONNX export .*rejected\.json to try again"
    with pytest.raises(EmbeddingError, match=retry):
        onnx_embedding.onnx_model_for(model, cache, ["a"], required=True)
    # A rejection made by another evalkit version is not binding: its check may have differed.
    (rejection,) = cache.glob("onnx/*/rejected.json")
    rejection.write_text(json.dumps({"evalkit": "0.0.1", "max_cosine_deviation": 1.0}))
    retried = onnx_embedding.onnx_model_for(model, cache, ["a", "two words"], required=False)
    assert retried is not None
    assert list(cache.glob("onnx/*/model.onnx"))


def test_a_broken_cached_export_is_named_and_torch_is_used(
    tmp_path: Path, onnx_embedder: Embedder, onnx_cache: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = tmp_path / "cache"
    shutil.copytree(onnx_cache, cache)
    (exported,) = cache.glob("onnx/*/model.onnx")
    exported.write_bytes(exported.read_bytes()[:1000])  # as a disk that filled up would leave it
    with caplog.at_level("WARNING", logger="evalkit.embedding.onnx"):
        fallback = load_embedder(cache_dir=cache)
    assert fallback.backend == "torch"
    assert f"ONNX Runtime cannot load {exported}" in caplog.text
    assert "delete it to export the model again" in caplog.text
    with pytest.raises(EmbeddingError, match="cannot load"):
        onnx_embedding.onnx_model_for(default_model_path(), cache, ["a"], required=True)


def test_two_processes_exporting_at_once_share_one_export(tmp_path: Path) -> None:
    """The second waits for the first's export and loads it; a killed export's partial file
    is swept, never loaded."""
    layout = onnx_embedding.onnx_layout(default_model_path())
    assert layout is not None
    target = onnx_embedding.onnx_model_file(layout, tmp_path)
    target.parent.mkdir(parents=True, exist_ok=True)
    (target.parent / ".model.killed.partial").write_bytes(b"half an export")
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from evalkit.embedding import load_embedder\n"
        f"embedder = load_embedder(cache_dir=Path({str(tmp_path)!r}))\n"
        "print(embedder.backend, round(float(embedder.embed(['a'])[0][0]), 4))\n"
    )
    started = [
        subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [process.communicate(timeout=600)[0].split() for process in started]
    assert [process.returncode for process in started] == [0, 0]
    assert outputs[0] == outputs[1]
    assert outputs[0][0] == "onnxruntime"
    assert list(tmp_path.glob("onnx/*/model.onnx")) == [target]
    assert not list(tmp_path.glob("onnx/*/*.partial"))


def test_without_the_onnx_package_it_embeds_with_torch(tmp_path: Path) -> None:
    code = (
        "import logging, sys\n"
        "from pathlib import Path\n"
        "sys.modules['onnx'] = None\n"
        "logging.basicConfig(level=logging.WARNING)\n"
        "from evalkit.embedding import load_embedder\n"
        f"embedder = load_embedder(cache_dir=Path({str(tmp_path)!r}))\n"
        "print(embedder.backend, embedder.embed(['a']).shape[1])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300
    )
    assert done.stdout.split() == ["torch", "384"]
    assert "the onnx package is not installed" in done.stderr
    assert not list(tmp_path.glob("onnx/*/model.onnx"))


@pytest.mark.parametrize(("given", "threads"), [("1", 1), ("3", 3), (None, 0), ("all", 0)])
def test_onnx_runtime_takes_its_thread_count_from_omp_num_threads(
    onnx_embedder: Embedder,
    onnx_cache: Path,
    monkeypatch: pytest.MonkeyPatch,
    given: str | None,
    threads: int,
) -> None:
    """ONNX Runtime does not read OMP_NUM_THREADS as torch and BLAS do; a process capped by
    it is capped on ONNX Runtime too (0, one thread per core, when it is unset or not a
    number)."""
    layout = onnx_embedding.onnx_layout(default_model_path())
    assert layout is not None
    if given is None:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    else:
        monkeypatch.setenv("OMP_NUM_THREADS", given)
    model = onnx_embedding.OnnxSentenceModel(
        layout, onnx_embedding.onnx_model_file(layout, onnx_cache)
    )
    assert model._session.get_session_options().intra_op_num_threads == threads
    assert model.encode(["a query"]).shape == (1, 384)
