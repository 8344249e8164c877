"""How long a user waits for `evalkit run` on BEIR SciFact (test split, 300 queries), against
the floor of the work itself.

Named peer (the floor): the embedding of the 300 queries with the bundled MiniLM plus the
Chroma searches of the same collection, timed alone in this process with the model already
loaded. Against it: the whole `evalkit run --goldset scifact --collection scifact --k 100`
process as a user starts it (Python start, imports, model load, replay, metrics, store
write), the median of --repeat runs, side by side in this run. Target (issue 16): within 2x
of the floor. The floor embeds with evalkit's default backend (ONNX Runtime), which made it
about 3x faster than it was on torch; the floor on torch is printed beside it, and so is a
second peer: a bare script doing the same work (import chromadb, open the collection, load
the model, embed, search) as a whole process, i.e. what evalkit adds over the least a user
could run. The start-up parts are printed too, each a whole process: a bare Python start,
`evalkit --version`, and loading the model on ONNX Runtime and on torch.

The goldset import and the indexing are set-up, done once under --home and not timed.

    .venv/bin/python benchmarks/run_end_to_end.py [--home DIR] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

SCIFACT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "beir_scifact"
EVALKIT = Path(sys.executable).with_name("evalkit")
SPLIT = ("--split", "test", "--name", "scifact")
RUN = ("--goldset", "scifact", "--collection", "scifact")


def wall(command: list[str], env: dict[str, str], repeat: int) -> float:
    """Median wall seconds of ``command`` as a whole process over ``repeat`` runs."""
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        subprocess.run(command, env=env, check=True, capture_output=True)
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def floor_seconds(home: Path, k: int, repeat: int, backend: str) -> float:
    """Median seconds of embedding the queries and searching Chroma, model loaded."""
    from evalkit.embedding import load_embedder
    from evalkit.goldset import load_goldset
    from evalkit.retrievers.chroma_client import close_client, get_collection, open_chroma_client

    goldset = load_goldset(SCIFACT, format="beir", split="test", name="scifact")
    texts = [query.text for query in goldset.queries]
    embedder = load_embedder(backend=backend)
    client = open_chroma_client(path=home / "chroma")
    collection = get_collection(client, "scifact")
    embedder.embed(texts[:8])
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        vectors = embedder.embed(texts)
        collection.query(query_embeddings=vectors, n_results=k, include=["distances"])
        times.append(time.perf_counter() - began)
    close_client(client)
    return statistics.median(times)


BARE_SCRIPT = """
import json, sys
from pathlib import Path
import chromadb
from evalkit.embedding import load_embedder
queries = [json.loads(line) for line in (Path(sys.argv[1]) / "queries.jsonl").open()]
wanted = {line.split("\\t")[0] for line in (Path(sys.argv[1]) / "qrels" / "test.tsv").open()}
texts = [query["text"] for query in queries if query["_id"] in wanted]
collection = chromadb.PersistentClient(path=sys.argv[2]).get_collection("scifact")
vectors = load_embedder().embed(texts)
collection.query(query_embeddings=vectors, n_results=int(sys.argv[3]), include=["distances"])
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, default=Path("reports/bench-run"))
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if not SCIFACT.is_dir():
        print(f"skipped: {SCIFACT} is not present")
        return 0
    home: Path = args.home.resolve()
    home.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "EVALKIT_HOME": str(home)}
    print("set-up (not timed): goldset import and indexing of 5,183 abstracts into Chroma")
    subprocess.run(
        [str(EVALKIT), "goldset", "import", "--format", "beir", str(SCIFACT), *SPLIT],
        env=env,
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [str(EVALKIT), "index", "--corpus", str(SCIFACT), "--collection", "scifact"],
        env=env,
        check=True,
        capture_output=True,
    )

    floor = floor_seconds(home, args.k, args.repeat, "auto")
    torch_floor = floor_seconds(home, args.k, args.repeat, "torch")
    bare = wall(
        [sys.executable, "-c", BARE_SCRIPT, str(SCIFACT), str(home / "chroma"), str(args.k)],
        env,
        args.repeat,
    )
    run = wall(
        [str(EVALKIT), "run", *RUN, "--k", str(args.k), "--format", "json"],
        env,
        args.repeat,
    )
    python = wall([sys.executable, "-c", "pass"], env, args.repeat)
    version = wall([str(EVALKIT), "--version"], env, args.repeat)
    load = "from evalkit.embedding import load_embedder; load_embedder(backend={!r}).embed(['a'])"
    model = wall([sys.executable, "-c", load.format("auto")], env, args.repeat)
    torch_model = wall([sys.executable, "-c", load.format("torch")], env, args.repeat)
    print(f"floor: embed 300 queries + Chroma searches, model loaded   {floor:7.2f} s")
    print(f"evalkit run, whole process                                {run:7.2f} s")
    print(f"  of which a bare Python start                            {python:7.2f} s")
    print(f"  evalkit --version (the CLI's own start)                 {version:7.2f} s")
    print(f"  loading the model on ONNX Runtime (the default)         {model:7.2f} s")
    print(f"  loading it on torch (sentence-transformers), for scale  {torch_model:7.2f} s")
    print(f"floor with the model on torch (as evalkit embedded before) {torch_floor:7.2f} s")
    print(f"a bare script doing the same work, whole process          {bare:7.2f} s")
    print(f"evalkit run / floor: {run / floor:.2f}x (target <= 2x)")
    print(f"evalkit run / torch floor: {run / torch_floor:.2f}x")
    print(f"evalkit run / bare script: {run / bare:.2f}x")
    print("load average (1, 5, 15 min): {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
