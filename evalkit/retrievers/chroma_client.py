"""Chroma clients and collections, and the metadata evalkit keeps in them.

evalkit always embeds with its own model and hands Chroma vectors: collections are opened
with ``embedding_function=None``, so Chroma's default embedding function, which would
download an ONNX model, is never built or called. What evalkit writes into a collection's
and each document's metadata (the model fingerprint, ``evalkit_index_fingerprint``,
``evalkit_indexed_at``, ``evalkit_content_hash``, ``evalkit_title``): docs/retrievers.md,
"What evalkit writes into Chroma". A run records ``contents_fingerprint``, which also covers
what was written to the collection without evalkit.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import re
import threading
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlsplit

import numpy as np

from evalkit.config.secrets import CHROMA_TOKEN_ENV
from evalkit.embedding import ModelFingerprint
from evalkit.errors import CollectionNotFoundError, ConfigError, RetrieverError
from evalkit.redaction import mask_url
from evalkit.retrievers.base import describe_exception, redact

if TYPE_CHECKING:
    from chromadb.api import ClientAPI
    from chromadb.api.client import Client
    from chromadb.api.collection_configuration import UpdateCollectionConfiguration
    from chromadb.api.models.Collection import Collection

    from evalkit.config import Settings

__all__ = [
    "CHROMA_TOKEN_ENV",
    "CONTENT_HASH_KEY",
    "INDEXED_AT_KEY",
    "INDEXING_STARTED_KEY",
    "INDEX_FINGERPRINT_KEY",
    "TITLE_KEY",
    "ChromaLocation",
    "check_collection_name",
    "close_client",
    "collection_name_problem",
    "collection_space",
    "configured_collection",
    "contents_fingerprint",
    "find_collection",
    "get_collection",
    "index_fingerprint",
    "model_mismatch_detail",
    "open_chroma_client",
    "parse_chroma_url",
    "set_hnsw_configuration",
]


CONTENT_HASH_KEY = "evalkit_content_hash"
TITLE_KEY = "evalkit_title"
INDEX_FINGERPRINT_KEY = "evalkit_index_fingerprint"
INDEXED_AT_KEY = "evalkit_indexed_at"
INDEXING_STARTED_KEY = "evalkit_indexing_started"
"""When an ``evalkit index`` that is writing to the collection started; removed when it
finishes, so a collection that still has it holds a corpus only in part (an indexing stopped
by Ctrl-C, kill -9 or a crash)."""

_DEFAULT_PORTS = {"http": 8000, "https": 443}
_NAME = re.compile(r"[a-zA-Z0-9](?:[a-zA-Z0-9._-]*[a-zA-Z0-9])?")
# Documents read at each end of a collection for its contents fingerprint.
FINGERPRINT_SAMPLE = 32
# Chroma's own default when a collection names no space.
_CHROMA_DEFAULT_SPACE = "l2"


@dataclass(frozen=True, slots=True)
class ChromaLocation:
    """Where a collection lives: ``chroma-embedded`` at ``path``, ``chroma-http`` at ``url``."""

    kind: str
    path: str | None = None
    url: str | None = None


def collection_name_problem(name: str) -> str | None:
    """Which of Chroma's rules for collection names ``name`` breaks, or None when it is
    valid: 3 to 512 characters from ``[a-zA-Z0-9._-]``, starting and ending with a letter
    or digit, no ``..``, not an IPv4 address (Chroma refuses such a name at any request)."""
    if not 3 <= len(name) <= 512:
        return f"it has {len(name)} characters; Chroma needs 3 to 512"
    if not _NAME.fullmatch(name):
        return (
            "Chroma allows only letters, digits, '.', '_' and '-', and a letter or digit "
            "first and last"
        )
    if ".." in name:
        return "Chroma refuses two consecutive periods (..)"
    try:
        ipaddress.IPv4Address(name)
    except ValueError:
        return None
    return "Chroma refuses a name that is an IPv4 address"


def check_collection_name(name: str) -> str:
    """``name`` when Chroma accepts it as a collection name; ConfigError naming the broken
    rule (before any work: Chroma itself would refuse it only at the first request)."""
    problem = collection_name_problem(name)
    if problem is not None:
        raise ConfigError(
            f"Chroma collection name {name!r} is not valid: {problem}. Use 3-512 letters, "
            "digits, '.', '_' or '-', starting and ending with a letter or digit, "
            "e.g. 'support-kb'."
        )
    return name


def parse_chroma_url(url: str) -> tuple[str, int, bool]:
    """``(host, port, ssl)`` of a Chroma server URL such as ``http://127.0.0.1:8000``.

    The port defaults to 8000 for http and 443 for https. Raises ``ConfigError`` for
    anything else (no scheme, a path, credentials in the URL).
    """
    expected = "expected http://HOST:PORT or https://HOST[:PORT]"
    # The URL may carry a token (?token=...) or a password: errors show it masked.
    shown = mask_url(url.strip())
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as error:
        raise ConfigError(f"Chroma URL {shown!r} does not parse ({error}); {expected}") from error
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise ConfigError(f"Chroma URL {shown!r} is not an http(s) URL with a host; {expected}")
    if parts.username or parts.password:
        raise ConfigError(
            f"Chroma URL for host {parts.hostname} carries credentials; remove them and set "
            f"{CHROMA_TOKEN_ENV} instead"
        )
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ConfigError(f"Chroma URL {shown!r} has a path or query; {expected}")
    return parts.hostname, port or _DEFAULT_PORTS[parts.scheme], parts.scheme == "https"


def _chroma_settings() -> Any:
    from chromadb.config import Settings

    return Settings(anonymized_telemetry=False)


_EMBEDDED_OPENING = threading.Lock()


def open_chroma_client(
    *,
    path: Path | str | None = None,
    url: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Client:
    """Open an embedded Chroma store at ``path`` or connect to a Chroma server at ``url``.

    Exactly one of them must be given. For a server, ``headers`` are sent with every
    request, and a token in ``EVALKIT_CHROMA_TOKEN`` becomes ``Authorization: Bearer``.
    Raises ``RetrieverError`` when the store cannot be opened or the server not reached.
    The client is chromadb's own, with ``close()`` (and ``with``); ``close_client`` also
    closes a server client's connection pools at once.
    """
    if (path is None) == (url is None):
        raise ConfigError(
            "give exactly one of a Chroma path (embedded store) or a Chroma server URL"
        )
    import chromadb

    if url is not None:
        host, port, ssl = parse_chroma_url(url)
        sent_headers = dict(headers or {})
        token = os.environ.get(CHROMA_TOKEN_ENV)
        if token and not any(name.lower() == "authorization" for name in sent_headers):
            sent_headers["Authorization"] = f"Bearer {token}"
        try:
            # chromadb types its factories as the ClientAPI interface, which has no close();
            # what they return is its Client class, which has.
            return cast(
                "Client",
                chromadb.HttpClient(
                    host=host,
                    port=port,
                    ssl=ssl,
                    headers=sent_headers or None,
                    settings=_chroma_settings(),
                ),
            )
        except Exception as error:  # the client raises ValueError, httpx and Chroma errors
            reason = redact(describe_exception(error), sent_headers.values())
            if _refused_credentials(error):
                # It was reached: "start one with chroma run" would send the user astray.
                advice = (
                    f"the token in {CHROMA_TOKEN_ENV} was sent (as Authorization: Bearer); "
                    "check that the server accepts it"
                    if token
                    else f"no token was sent: set {CHROMA_TOKEN_ENV} to one it accepts (sent "
                    "as Authorization: Bearer)"
                )
                raise RetrieverError(
                    f"the Chroma server at {mask_url(url)} refused the request: {reason}; {advice}."
                ) from error
            raise RetrieverError(
                f"cannot reach the Chroma server at {mask_url(url)}: {reason}. Start one with "
                "`chroma run --path DIR --host 127.0.0.1 --port PORT`, or correct the URL "
                "(EVALKIT_CHROMA_URL)."
            ) from error
    store = Path(str(path))
    try:
        # Chroma's first open of a store in a process is not thread-safe: two threads
        # opening at once both fail (a KeyError and an AttributeError inside Chroma).
        with _EMBEDDED_OPENING:
            return cast(
                "Client", chromadb.PersistentClient(path=str(store), settings=_chroma_settings())
            )
    except Exception as error:  # sqlite, filesystem and Chroma errors alike
        raise RetrieverError(
            f"cannot open the embedded Chroma store at {store}: {describe_exception(error)}. "
            "Check that the path (EVALKIT_CHROMA_PATH) is a writable directory that no other "
            "process holds open."
        ) from error


@contextmanager
def configured_collection(
    settings: Settings, name: str, url: str | None = None
) -> Iterator[Collection]:
    """The Chroma collection ``name`` on ``url`` (default: the settings' server, else their
    embedded path); its client is closed on leaving."""
    where = url or settings.chroma_url
    client = open_chroma_client(path=None if where else settings.resolved_chroma_path, url=where)
    try:
        yield get_collection(client, name)
    finally:
        close_client(client)


def _refused_credentials(error: Exception) -> bool:
    """Whether the server (or a proxy before it) answered 401 or 403: Chroma's own auth
    errors, or a plain body chromadb re-raises with the status's name in it."""
    from chromadb.errors import AuthorizationError, ChromaAuthError

    if isinstance(error, AuthorizationError | ChromaAuthError):
        return True
    text = str(error)
    return any(word in text for word in ("Unauthorized", "Forbidden", "Authorization Required"))


def close_client(client: ClientAPI) -> None:
    """Release a Chroma client's resources (files of an embedded store, HTTP pools)."""
    # ``close`` exists on the concrete clients but not on the ClientAPI interface.
    close = getattr(client, "close", None)
    if callable(close):
        close()
    _close_http_pools(client)


def _close_http_pools(client: ClientAPI) -> None:
    # chromadb's ``close`` stops an HttpClient's system, and its internal admin client's,
    # but leaves their httpx pools open, so the server's sockets linger until garbage
    # collection. Close each pool once its system is stopped.
    from chromadb.api.shared_system_client import SharedSystemClient

    for owner in (client, getattr(client, "_admin_client", None)):
        session = getattr(getattr(owner, "_server", None), "_session", None)
        if getattr(owner, "_identifier", None) in SharedSystemClient._identifier_to_system:
            continue
        session_close = getattr(session, "close", None)
        if callable(session_close):
            session_close()


def _collection_names(client: ClientAPI) -> list[str]:
    try:
        return sorted(collection.name for collection in client.list_collections())
    except Exception:  # listing only decorates an error message that is already on its way
        return []


def get_collection(client: ClientAPI, name: str) -> Collection:
    """Open the collection ``name`` without an embedding function.

    Raises ``ConfigError`` for a name Chroma refuses (``check_collection_name``) and
    ``CollectionNotFoundError`` listing the existing collections when it does not exist.
    """
    from chromadb.errors import NotFoundError as ChromaNotFoundError

    check_collection_name(name)
    try:
        return client.get_collection(name=name, embedding_function=None)
    except ChromaNotFoundError as error:
        existing = ", ".join(_collection_names(client)) or "none"
        raise CollectionNotFoundError(
            f"Chroma collection '{name}' does not exist (existing collections: {existing}). "
            f"Index a corpus into it first (`evalkit index --corpus FILE --collection {name}`) "
            "or name an existing collection."
        ) from error
    except Exception as error:  # invalid names, connection and server errors
        raise RetrieverError(
            f"cannot open Chroma collection '{name}': {describe_exception(error)}"
        ) from error


def find_collection(client: ClientAPI, name: str) -> Collection | None:
    """Open the collection ``name`` without an embedding function, or ``None`` when missing;
    ConfigError for a name Chroma refuses."""
    from chromadb.errors import NotFoundError as ChromaNotFoundError

    check_collection_name(name)
    try:
        return client.get_collection(name=name, embedding_function=None)
    except ChromaNotFoundError:
        return None
    except Exception as error:  # invalid names, connection and server errors
        raise RetrieverError(
            f"cannot open Chroma collection '{name}': {describe_exception(error)}"
        ) from error


def set_hnsw_configuration(collection: Collection, settings: Mapping[str, int]) -> None:
    """Change HNSW settings of a collection's configuration (``ef_search``,
    ``sync_threshold``); a store's searcher keeps the values it was opened with."""
    with warnings.catch_warnings():
        # Chroma re-reads the whole configuration, warning that a collection opened
        # without an embedding function (as evalkit opens them all) has a legacy one.
        warnings.filterwarnings(
            "ignore", message="legacy embedding function config", category=DeprecationWarning
        )
        collection.modify(
            configuration=cast("UpdateCollectionConfiguration", {"hnsw": dict(settings)})
        )


def collection_space(collection: Collection) -> str:
    """The distance space (``cosine``, ``ip`` or ``l2``) of a collection's vector index."""
    configuration = collection.configuration_json or {}
    for index_kind in ("hnsw", "spann"):
        section = configuration.get(index_kind)
        if isinstance(section, dict) and section.get("space"):
            return str(section["space"])
    metadata = collection.metadata or {}
    return str(metadata.get("hnsw:space", _CHROMA_DEFAULT_SPACE))


def index_fingerprint(hashes: Mapping[str, str], model: ModelFingerprint) -> str:
    """SHA-256 over the model fingerprint and every sorted (document id, content hash) pair."""
    digest = hashlib.sha256()
    digest.update(f"model:{model.canary_hash}:{model.dimension}\n".encode())
    for doc_id in sorted(hashes):
        digest.update(json.dumps([doc_id, hashes[doc_id]], ensure_ascii=False).encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()


def contents_fingerprint(collection: Collection) -> str:
    """SHA-256 of what the collection holds now, read in three small requests.

    Covers the stored ``evalkit_index_fingerprint``, the count, and the first and last
    ``FINGERPRINT_SAMPLE`` documents in storage order: it sees any ``evalkit index`` change,
    deletions and appends, but an in-place overwrite only of a sampled document.
    """
    metadata = collection.metadata or {}
    count = collection.count()
    digest = hashlib.sha256()
    digest.update(f"chroma:{metadata.get(INDEX_FINGERPRINT_KEY)}:{count}\n".encode())
    sample = FINGERPRINT_SAMPLE
    offsets = [0] if count <= 2 * sample else [0, count - sample]
    limit = 2 * sample if count <= 2 * sample else sample
    for offset in offsets:
        page = collection.get(
            limit=limit, offset=offset, include=["documents", "metadatas", "embeddings"]
        )
        documents = page.get("documents") or []
        metadatas = page.get("metadatas") or []
        embeddings = page.get("embeddings")
        for position, doc_id in enumerate(page.get("ids") or []):
            text = documents[position] if position < len(documents) else None
            meta = metadatas[position] if position < len(metadatas) else None
            if meta is not None and INDEXED_AT_KEY in meta:
                # When a document was written is not what it holds: two indexings of one
                # corpus hold the same.
                meta = {key: value for key, value in meta.items() if key != INDEXED_AT_KEY}
            digest.update(
                json.dumps([doc_id, text, meta], sort_keys=True, default=str).encode("utf-8")
            )
            if embeddings is not None and position < len(embeddings):
                digest.update(np.asarray(embeddings[position], dtype=np.float32).tobytes())
            digest.update(b"\n")
    return digest.hexdigest()


def _fingerprint_summary(fingerprint: ModelFingerprint) -> str:
    return (
        f"{fingerprint.name} (dimension {fingerprint.dimension}, "
        f"fingerprint {fingerprint.canary_hash})"
    )


def model_mismatch_detail(stored: ModelFingerprint, current: ModelFingerprint) -> str:
    """Names both models and how close their canaries are, for a mismatch error."""
    similarity = stored.canary_similarity(current)
    closeness = "" if similarity is None else f"; lowest canary cosine {similarity:.4f}"
    return (
        f"indexed with {_fingerprint_summary(stored)}, but the embedder is "
        f"{_fingerprint_summary(current)}{closeness}"
    )
