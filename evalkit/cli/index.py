"""``evalkit index``: load a corpus into a Chroma collection, idempotently."""

from __future__ import annotations

from dataclasses import asdict
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
    settings,
)
from evalkit.cli._retriever import ChromaUrl, chroma_collection_name
from evalkit.errors import ConfigError
from evalkit.extras import require_all


@app.command("index")
def index(
    corpus: Annotated[Path, typer.Option(help="A JSONL corpus file or a BEIR folder.")],
    collection: Annotated[
        str,
        typer.Option(
            help="Chroma collection to create or update (3-512 letters, digits, '.', '_', '-').",
            callback=chroma_collection_name,
        ),
    ],
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
    """Embed a corpus and upsert it into a Chroma collection (cosine distance).

    Re-running on the same corpus writes nothing; a changed document is re-embedded. The
    model fingerprint and a content hash per document are stored with the collection.

    Example: evalkit index --corpus goldsets/demo/corpus.jsonl --collection demo
    """
    from evalkit.embedding import build_query_embedder, local_model_modules
    from evalkit.goldset import count_documents, iter_corpus
    from evalkit.retrievers.chroma_client import close_client, open_chroma_client
    from evalkit.retrievers.indexing import index_corpus

    config = settings()
    require_all(("chromadb", *local_model_modules(config)), "`evalkit index`")
    embedder = build_query_embedder(config)
    if embedder is None:
        raise ConfigError(
            "evalkit index embeds the corpus: set [embedder] kind to sentence-transformers "
            "(EVALKIT_MODEL_PATH) or openai; kind none is for retrievers that embed themselves"
        )
    url = chroma_url or config.chroma_url
    client = open_chroma_client(path=None if url else config.resolved_chroma_path, url=url)
    total = count_documents(corpus)
    try:
        with progress_bar(f"indexing {corpus.name}", enabled=output is OutputFormat.table) as bar:
            report = index_corpus(
                client,
                iter_corpus(corpus),
                embedder,
                collection_name=collection,
                batch_size=config.embed_batch_size,
                total=total,
                progress=bar,
                rebuild=rebuild,
                prune=prune,
            )
    finally:
        close_client(client)
    data = asdict(report)
    if output is OutputFormat.json:
        emit_json(data)
        return
    console.print(key_values(f"collection {collection}", data))
