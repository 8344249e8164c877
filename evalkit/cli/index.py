"""``evalkit index``: load a corpus into a Chroma collection, idempotently, or build a BM25
index of it in a directory (``--kind bm25``)."""

from __future__ import annotations

import time
from dataclasses import asdict
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from evalkit.cli._app import app
from evalkit.cli._options import Format
from evalkit.cli._output import (
    OutputFormat,
    console,
    emit_json,
    key_values,
    progress_bar,
    say,
    settings,
)
from evalkit.cli._retriever import ChromaUrl, chroma_collection_name, parse_options
from evalkit.errors import ConfigError, InputError
from evalkit.extras import require_all


class IndexKind(StrEnum):
    """What ``evalkit index`` builds."""

    chroma = "chroma"
    bm25 = "bm25"


@app.command("index")
def index(
    corpus: Annotated[
        Path,
        typer.Option(
            help="A JSONL corpus file, a BEIR folder (its corpus.jsonl) or a folder of document "
            "files (.txt, .md, .html, ...)."
        ),
    ],
    collection: Annotated[
        str | None,
        typer.Option(
            help="Chroma collection to create or update (3-512 letters, digits, '.', '_', '-').",
            callback=chroma_collection_name,
        ),
    ] = None,
    kind: Annotated[
        IndexKind,
        typer.Option(
            "--kind",
            help="chroma: embed into a Chroma collection (--collection); bm25: a BM25 index "
            "in a directory (--out), for `--retriever bm25 --option index=DIR`.",
        ),
    ] = IndexKind.chroma,
    out: Annotated[
        Path | None,
        typer.Option(
            help="With --kind bm25: the directory to write the index to (an index there is "
            "replaced)."
        ),
    ] = None,
    option: Annotated[
        list[str] | None,
        typer.Option(
            "--option",
            metavar="KEY=VALUE",
            help="With --kind bm25, an option of the index, repeatable: method, k1, b, delta, "
            "stemmer, stopwords (see above).",
        ),
    ] = None,
    chroma_url: ChromaUrl = None,
    rebuild: Annotated[
        bool,
        typer.Option(
            help="Delete and rebuild the collection (needed when the embedding model changed)."
        ),
    ] = False,
    prune: Annotated[
        bool, typer.Option(help="Delete indexed documents that the corpus no longer holds.")
    ] = False,
    output: Format = OutputFormat.table,
) -> None:
    """Embed a corpus and upsert it into a Chroma collection (cosine distance), or build a
    BM25 index of it (--kind bm25).

    Re-running on the same corpus writes nothing; a changed document is re-embedded. --kind
    bm25 replaces an index at --out (docs/retrievers.md, "Indexing" and "BM25").

    Example: evalkit index --corpus goldsets/demo/corpus.jsonl --collection demo

    Example: evalkit index --kind bm25 --corpus goldsets/demo/corpus.jsonl --out .evalkit/bm25/demo
    """
    if kind is IndexKind.bm25:
        chroma_only = {
            "--collection": collection is not None,
            "--chroma-url": chroma_url is not None,
            "--rebuild": rebuild,
            "--prune": prune,
        }
        given = [name for name, used in chroma_only.items() if used]
        if given:
            raise ConfigError(
                f"{', '.join(given)} {'is' if len(given) == 1 else 'are'} for a Chroma index; a "
                "bm25 index is written to --out DIR and replaced as a whole"
            )
        _index_bm25(corpus, out, parse_options(option) or {}, output)
        return
    if out is not None or option:
        raise ConfigError(
            "--out and --option are for --kind bm25; a Chroma index takes --collection"
        )
    if collection is None:
        raise ConfigError("name the Chroma collection to index into: --collection NAME")
    _index_chroma(corpus, collection, chroma_url, rebuild=rebuild, prune=prune, output=output)


def _index_chroma(
    corpus: Path,
    collection: str,
    chroma_url: str | None,
    *,
    rebuild: bool,
    prune: bool,
    output: OutputFormat,
) -> None:
    from evalkit.embedding import build_document_embedder, close_embedder, local_model_modules
    from evalkit.goldset import iter_corpus, no_documents
    from evalkit.retrievers.chroma import restore_interrupted_ef_search
    from evalkit.retrievers.chroma_client import close_client, open_chroma_client
    from evalkit.retrievers.indexing import index_corpus, save_hnsw_graph

    config = settings()
    require_all(("chromadb", *local_model_modules(config)), "`evalkit index`")
    embedder = build_document_embedder(config)
    if embedder is None:
        raise ConfigError(
            "evalkit index embeds the corpus: set [embedder] kind to sentence-transformers "
            "(EVALKIT_MODEL_PATH) or openai; kind none is for retrievers that embed themselves"
        )
    # Read whole before anything is written: a malformed or repeated document found on the
    # way would otherwise leave a collection holding the documents before it.
    total = sum(1 for _ in iter_corpus(corpus))
    if not total:
        raise InputError(f"{no_documents(corpus)}; there is nothing to index", path=str(corpus))
    url = chroma_url or config.chroma_url
    if not url:
        restore_interrupted_ef_search(config.resolved_chroma_path, collection)
    shown = output is OutputFormat.table
    if shown:
        # Loading a local model takes seconds to tens of seconds, before the first batch.
        say(f"loading embedding model {embedder.name} ...")
    started = time.perf_counter()
    fingerprint = embedder.fingerprint
    if shown:
        say(
            f"embedding model {fingerprint.name} ({fingerprint.dimension} dimensions) ready "
            f"in {time.perf_counter() - started:.1f} s"
        )
    client = open_chroma_client(path=None if url else config.resolved_chroma_path, url=url)
    try:
        with progress_bar(f"indexing {corpus.name}", enabled=shown, total=total) as bar:
            report = index_corpus(
                client,
                iter_corpus(corpus),
                embedder,
                collection_name=collection,
                batch_size=config.embed_batch_size,
                total=total,
                progress=bar,
                pace=(lambda pace: say(pace.describe("embedding", "documents"))) if shown else None,
                rebuild=rebuild,
                prune=prune,
            )
    except Exception:
        raise
    except BaseException:
        # Ctrl-C or SIGTERM: the batches written stay, and the next run skips them.
        say(
            f"note: collection {collection} holds the documents indexed before the "
            "interruption, and runs against it will miss the others: run the same command "
            "again to finish it (documents already indexed are not embedded again)"
        )
        raise
    finally:
        close_client(client)
        close_embedder(embedder)
    if not url:
        # Records Chroma has not saved in the graph are inserted anew, in no fixed order, at
        # every opening of the store: each run would search another graph.
        save_hnsw_graph(config.resolved_chroma_path, collection)
    data = asdict(report)
    if output is OutputFormat.json:
        emit_json(data)
        return
    console.print(key_values(f"collection {collection}", data))


def _index_bm25(
    corpus: Path, out: Path | None, options: dict[str, object], output: OutputFormat
) -> None:
    if out is None:
        raise ConfigError("name the directory to write the bm25 index to: --out DIR")
    require_all(("bm25s",), "`evalkit index --kind bm25`")
    from evalkit.goldset import count_documents, iter_corpus, no_documents
    from evalkit.retrievers.bm25_index import Bm25Parameters, build_bm25_index

    parameters = Bm25Parameters.from_options(options)
    total = count_documents(corpus)
    if not total:
        raise InputError(f"{no_documents(corpus)}; there is nothing to index", path=str(corpus))
    with progress_bar(f"indexing {corpus.name}", enabled=output is OutputFormat.table) as bar:
        report = build_bm25_index(iter_corpus(corpus), out, parameters, total=total, progress=bar)
    data = asdict(report)
    if output is OutputFormat.json:
        emit_json(data)
        return
    shown = {key: value for key, value in data.items() if key != "parameters"}
    console.print(key_values(f"bm25 index {out}", {**shown, **report.parameters}))
