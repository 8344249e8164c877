"""How long ``evalkit index`` takes when the document vectors are already cached, against
the same command embedding every document.

Named peer: the same ``evalkit index`` command with an empty vector cache, timed side by side
in this run. Each run is a whole process on the demo corpus (330 documents, the bundled
MiniLM on ONNX Runtime) into a fresh collection of a fresh embedded Chroma store, as a user
waits for it: first with an empty ``vectors/`` folder (every document embedded), then into
another fresh collection with the vectors the first run cached, then once more into a third.
The ONNX export of the model comes from the machine's cache in every run, so only the
vectors differ. It prints wall and CPU seconds, their ratios, and whether the collections
hold the same vectors to the bit.

Run: ``.venv/bin/python benchmarks/vector_cache.py [--corpus goldsets/demo/corpus.jsonl]``.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from evalkit.embedding.onnx import default_cache_dir

REPO = Path(__file__).resolve().parents[1]
EVALKIT = [sys.executable, "-m", "evalkit"]


def timed_index(corpus: Path, collection: str, env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU (user + system) seconds of one ``evalkit index`` process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(
        [*EVALKIT, "index", "--corpus", str(corpus), "--collection", collection],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        sys.exit(f"evalkit index failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    return wall, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def collection_vectors(home: Path, collection: str) -> dict[str, np.ndarray]:
    """The vectors of an embedded Chroma collection under ``home``, by document id."""
    import chromadb

    client = chromadb.PersistentClient(path=str(home / "chroma"))
    got = client.get_collection(collection).get(include=["embeddings"])
    return {
        doc_id: np.asarray(vector, dtype=np.float32)
        for doc_id, vector in zip(got["ids"], got["embeddings"], strict=True)
    }


def main() -> int:
    """Index the corpus three times, print the table; exit 1 when the vectors differ."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=REPO / "goldsets" / "demo" / "corpus.jsonl")
    args = parser.parse_args()
    corpus = args.corpus.resolve()
    with tempfile.TemporaryDirectory(prefix="evalkit-vector-cache-") as scratch:
        home, cache = Path(scratch) / "home", Path(scratch) / "cache"
        cache.mkdir()
        for kept in ("onnx", "digests"):
            machine = default_cache_dir() / kept
            machine.mkdir(parents=True, exist_ok=True)
            (cache / kept).symlink_to(machine, target_is_directory=True)
        env = {
            **os.environ,
            "EVALKIT_HOME": str(home),
            "EVALKIT_CACHE_DIR": str(cache),
            "HF_HUB_OFFLINE": "1",
        }
        env.pop("EVALKIT_CONFIG", None)
        env.pop("EVALKIT_CHROMA_URL", None)
        cold = timed_index(corpus, "cold", env)
        warm = timed_index(corpus, "warm", env)
        again = timed_index(corpus, "again", env)
        vectors = {name: collection_vectors(home, name) for name in ("cold", "warm", "again")}
    same = all(
        vectors["cold"].keys() == vectors[name].keys()
        and all(np.array_equal(vectors["cold"][doc], vectors[name][doc]) for doc in vectors[name])
        for name in ("warm", "again")
    )
    load = os.getloadavg()[0]
    print(f"evalkit index of {corpus.name} ({len(vectors['cold'])} documents), load {load:.1f}")
    print(f"{'run':<34}{'wall s':>8}{'CPU s':>8}")
    print(f"{'empty cache (the peer)':<34}{cold[0]:>8.2f}{cold[1]:>8.2f}")
    print(f"{'vectors cached':<34}{warm[0]:>8.2f}{warm[1]:>8.2f}")
    print(f"{'vectors cached, again':<34}{again[0]:>8.2f}{again[1]:>8.2f}")
    best = min(warm, again)
    print(
        f"cached: {cold[0] / best[0]:.1f}x faster (wall), {cold[1] / best[1]:.1f}x less CPU; "
        f"the collections' vectors equal to the bit: {same}"
    )
    # A cache that hands back other vectors is not faster, it is wrong.
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
