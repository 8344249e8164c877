"""How fast the bundled MiniLM embeds texts on this machine, by text length: what an index
or an audit's re-embedding check (`--model-sample 0`) waits for.

Texts: BEIR SciFact abstracts (title + abstract, as `evalkit index` embeds a document), the
demo corpus's pages and SciFact's test queries. For each set it prints the characters and
the tokens per text (the model's own tokenizer; MiniLM reads at most 256 tokens, and the
share of texts cut there), then the texts embedded a second and the CPU seconds per text,
with the model loaded and warm (its canaries embedded first), in batches of 64 as evalkit
embeds. The machine (CPU, cores) and its load average before and after are printed beside
them: on a shared machine the rate moves with the load, so quote them together.

Run: ``.venv/bin/python benchmarks/reembedding.py [--sample 512] [--backend onnx|torch]``
(SciFact is read from ``../shared/data/beir_scifact``; ``--sample 0`` embeds all 5,183).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from evalkit.config import EmbedBackend
from evalkit.embedding import default_model_path, load_embedder
from evalkit.goldset import iter_corpus

REPO = Path(__file__).resolve().parents[1]
SCIFACT = REPO.parent / "shared" / "data" / "beir_scifact"
DEMO = REPO / "goldsets" / "demo" / "corpus.jsonl"
WINDOW = 256


def cpu_name() -> str:
    """The CPU model as /proc/cpuinfo names it (else the platform's word for it)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def token_counts(texts: Sequence[str]) -> list[int]:
    """Tokens per text, special tokens included, before the model's 256-token cut."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(default_model_path() / "tokenizer.json"))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return [len(encoding.ids) for encoding in tokenizer.encode_batch(list(texts))]


def measure(name: str, texts: Sequence[str], backend: EmbedBackend) -> dict[str, object]:
    """Embed ``texts`` once with the model warm; the figures of one row."""
    embedder = load_embedder(backend=backend)
    embedder.fingerprint  # noqa: B018 -- loads the model and embeds its canaries
    tokens = token_counts(texts)
    load_before = os.getloadavg()[0]
    cpu, wall = time.process_time(), time.perf_counter()
    vectors = embedder.embed(texts)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    assert vectors.shape == (len(texts), embedder.dimension)
    return {
        "texts": name,
        "backend": embedder.backend,
        "n": len(texts),
        "chars_mean": round(statistics.fmean(len(text) for text in texts)),
        "chars_median": round(statistics.median(len(text) for text in texts)),
        "tokens_mean": round(statistics.fmean(tokens)),
        "tokens_median": round(statistics.median(tokens)),
        "cut_at_256": round(sum(count > WINDOW for count in tokens) / len(tokens), 3),
        "seconds": round(wall, 2),
        "texts_per_second": round(len(texts) / wall, 1),
        "cpu_ms_per_text": round(1000 * cpu / len(texts), 1),
        "load_before": round(load_before, 2),
        "load_after": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample", type=int, default=512, help="SciFact abstracts (0: all)")
    parser.add_argument("--backend", choices=["onnx", "torch"], default="onnx")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not (SCIFACT / "corpus.jsonl").exists():
        raise SystemExit(f"{SCIFACT} is absent: this benchmark reads BEIR SciFact from it")
    abstracts = [document.content for document in iter_corpus(SCIFACT)]
    if args.sample:
        rows = np.random.default_rng(args.seed).choice(len(abstracts), args.sample, replace=False)
        abstracts = [abstracts[row] for row in sorted(rows)]
    demo = [document.content for document in iter_corpus(DEMO)]
    with (SCIFACT / "queries.jsonl").open(encoding="utf-8") as lines:
        queries = [json.loads(line)["text"] for line in lines][:300]
    print(f"machine: {cpu_name()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    backend = EmbedBackend(args.backend)
    for name, texts in (
        ("scifact abstracts", abstracts),
        ("demo pages", demo),
        ("scifact queries", queries),
    ):
        print(json.dumps(measure(name, texts, backend)), flush=True)


if __name__ == "__main__":
    main()
