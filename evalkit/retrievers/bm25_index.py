"""Building a BM25 index of a corpus with bm25s, saved to a directory that runs load.

bm25s weighs every (term, document) pair when the index is built, so the variant and its
parameters are fixed then (docs/retrievers.md, "BM25"). Documents are stored in code point
order of their ids, so the retriever breaks ties by doc id descending, as trec_eval ranks,
without looking ids up. The directory is written beside its destination and renamed onto
it, so a run never loads a half-written index; a directory holding anything but an evalkit
BM25 index is never overwritten.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import secrets
import shutil
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from itertools import islice, pairwise
from pathlib import Path
from typing import Any

import bm25s
import numpy as np
import numpy.typing as npt

from evalkit.errors import ConfigError, InputError
from evalkit.extras import require
from evalkit.goldset import content_hash
from evalkit.records import Document
from evalkit.retrievers.indexing import ProgressCallback

__all__ = [
    "BM25_METHODS",
    "DOC_IDS",
    "INDEX_TIME_OPTIONS",
    "MANIFEST",
    "STEMMERS",
    "STOPWORDS",
    "Bm25Index",
    "Bm25IndexReport",
    "Bm25Parameters",
    "build_bm25_index",
    "load_bm25_index",
    "query_tokenizer",
]

MANIFEST = "evalkit-bm25.json"
DOC_IDS = "evalkit-doc-ids.json"
FORMAT = 1
"""Version of the directory layout; an index of another format is rebuilt, not read."""

BM25_METHODS = ("robertson", "lucene", "atire", "bm25l", "bm25+")
"""The BM25 variants of bm25s (Kamphuis et al., 2020): how term frequency and idf are
weighed. ``lucene`` is Lucene's (and Elasticsearch's) BM25."""
STEMMERS = ("english", "none")
STOPWORDS = ("en", "none")
INDEX_TIME_OPTIONS = ("method", "k1", "b", "delta", "stemmer", "stopwords")
"""Options fixed when an index is built: a run of that index may repeat them, not change them."""

_TOKENIZE_BATCH = 2048

Tokenizer = Callable[[Sequence[str]], list[list[str]]]
"""Texts -> each one's terms, stopwords dropped and the rest stemmed."""


@dataclass(frozen=True, slots=True)
class Bm25Parameters:
    """How a BM25 index weighs terms and what counts as one.

    The defaults are Lucene's BM25 (``k1`` 1.2, ``b`` 0.75, as Elasticsearch and the BEIR
    paper's BM25 baseline use) over English words, stopwords dropped and the rest stemmed.
    ``delta`` only matters to ``bm25l`` and ``bm25+``.
    """

    method: str = "lucene"
    k1: float = 1.2
    b: float = 0.75
    delta: float = 0.5
    stemmer: str = "english"
    stopwords: str = "en"

    def __post_init__(self) -> None:
        _check_choice("method", self.method, BM25_METHODS)
        _check_choice("stemmer", self.stemmer, STEMMERS)
        _check_choice("stopwords", self.stopwords, STOPWORDS)
        for name, value, upper in (
            ("k1", self.k1, None),
            ("b", self.b, 1.0),
            ("delta", self.delta, None),
        ):
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
            ):
                raise ConfigError(f"bm25 option {name} must be a number, got {value!r}")
            if value < 0 or (upper is not None and value > upper):
                bounds = f"between 0 and {upper:g}" if upper is not None else "0 or more"
                raise ConfigError(f"bm25 option {name} must be {bounds}, got {value!r}")

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> Bm25Parameters:
        """The parameters that ``options`` (a subset of ``INDEX_TIME_OPTIONS``) set; the
        defaults for the rest. ConfigError naming the option for an unknown key or value."""
        unknown = sorted(set(options) - set(INDEX_TIME_OPTIONS))
        if unknown:
            raise ConfigError(
                f"unknown bm25 index option {', '.join(unknown)}; the index options are "
                f"{', '.join(INDEX_TIME_OPTIONS)}"
            )
        values: dict[str, Any] = {}
        for key, value in options.items():
            if key in ("k1", "b", "delta") and isinstance(value, str):
                values[key] = _number(key, value)
            else:
                values[key] = value
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """The parameters as JSON-ready values."""
        return {
            **asdict(self),
            "k1": float(self.k1),
            "b": float(self.b),
            "delta": float(self.delta),
        }

    def differences(self, options: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
        """``{option: (asked, built with)}`` for each index-time option in ``options`` whose
        value is not the one these parameters hold."""
        asked = Bm25Parameters.from_options(
            {key: value for key, value in options.items() if key in INDEX_TIME_OPTIONS}
        ).to_dict()
        built = self.to_dict()
        return {
            key: (options[key], built[key])
            for key in INDEX_TIME_OPTIONS
            if key in options and asked[key] != built[key]
        }


@dataclass(frozen=True, slots=True)
class Bm25IndexReport:
    """What ``build_bm25_index`` wrote: where, how many documents and distinct terms, the
    index fingerprint, with which parameters, and whether an index was replaced."""

    path: str
    documents: int
    terms: int
    index_fingerprint: str
    parameters: dict[str, Any]
    replaced: bool
    seconds: float


@dataclass(frozen=True, slots=True)
class Bm25Index:
    """A BM25 index loaded from its directory: the bm25s model, the doc ids in index order
    (ascending), the parameters it was built with and its fingerprint."""

    path: Path
    model: bm25s.BM25
    doc_ids: tuple[str, ...]
    parameters: Bm25Parameters
    fingerprint: str
    built_at: str
    bm25s_version: str

    @property
    def postings(self) -> tuple[npt.NDArray[np.int64], npt.NDArray[Any]]:
        """(start offsets per term id, document positions): the documents holding term
        ``t`` are ``positions[starts[t]:starts[t + 1]]``."""
        scores = self.model.scores
        return np.asarray(scores["indptr"], dtype=np.int64), scores["indices"]


def query_tokenizer(parameters: Bm25Parameters) -> Tokenizer:
    """The tokenizer of ``parameters``: bm25s's, with their stopwords and stemmer.

    MissingExtraError (the ``lexical`` extra) when the English stemmer's PyStemmer is not
    installed.
    """
    stemmer = (
        require("Stemmer", "the bm25 English stemmer").Stemmer("english")
        if parameters.stemmer == "english"
        else None
    )
    stopwords = None if parameters.stopwords == "none" else parameters.stopwords

    def tokenize(texts: Sequence[str]) -> list[list[str]]:
        if not texts:
            return []
        tokens = bm25s.tokenize(
            list(texts),
            stopwords=stopwords,
            stemmer=stemmer,
            return_ids=False,
            show_progress=False,
        )
        return [list(terms) for terms in tokens]

    return tokenize


def build_bm25_index(
    documents: Iterable[Document],
    out: Path | str,
    parameters: Bm25Parameters | None = None,
    *,
    total: int | None = None,
    progress: ProgressCallback | None = None,
) -> Bm25IndexReport:
    """Index ``documents`` with BM25 and save the index to the directory ``out``.

    Documents are tokenised a batch at a time (their term ids are held, not their texts);
    an index already at ``out`` is replaced once the new one is complete.

    Raises ``ConfigError`` when ``out`` is a file or a directory holding anything but an
    evalkit BM25 index, and ``InputError`` for a corpus without documents or with a
    repeated id (a corpus read with ``iter_corpus`` reports those with file and line).
    """
    chosen = parameters or Bm25Parameters()
    target = Path(out)
    replaced = _check_target(target)
    tokenize = query_tokenizer(chosen)
    start = time.perf_counter()
    vocabulary: dict[str, int] = {}
    ids: list[str] = []
    hashes: list[str] = []
    terms: list[list[int]] = []
    for batch in _batches(documents, _TOKENIZE_BATCH):
        for tokens in tokenize([document.content for document in batch]):
            terms.append([vocabulary.setdefault(token, len(vocabulary)) for token in tokens])
        ids.extend(document.id for document in batch)
        hashes.extend(content_hash(document) for document in batch)
        if progress is not None:
            progress(len(ids), total)
    if not ids:
        raise InputError("the corpus holds no documents; nothing to index")
    order = sorted(range(len(ids)), key=ids.__getitem__)
    sorted_ids = [ids[i] for i in order]
    for previous, current in pairwise(sorted_ids):
        if previous == current:
            raise InputError(
                f"document id '{current}' appears more than once in the corpus; ids must be unique"
            )
    if not vocabulary:
        raise InputError(
            "no document of the corpus holds a term to index (each word is a stopword or a "
            "single character); nothing to index"
        )
    fingerprint = _fingerprint(chosen, sorted_ids, [hashes[i] for i in order])
    model = bm25s.BM25(
        k1=chosen.k1, b=chosen.b, delta=chosen.delta, method=chosen.method, backend="numpy"
    )
    term_count = len(vocabulary)
    model.index(([terms[i] for i in order], vocabulary), show_progress=False)
    manifest = {
        "format": FORMAT,
        "parameters": chosen.to_dict(),
        "documents": len(sorted_ids),
        "terms": term_count,
        "index_fingerprint": fingerprint,
        "bm25s_version": bm25s.__version__,
        "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    _save(target, model, sorted_ids, manifest)
    return Bm25IndexReport(
        path=str(target),
        documents=len(sorted_ids),
        terms=term_count,
        index_fingerprint=fingerprint,
        parameters=chosen.to_dict(),
        replaced=replaced,
        seconds=time.perf_counter() - start,
    )


def load_bm25_index(path: Path | str) -> Bm25Index:
    """The BM25 index saved in the directory ``path``.

    ConfigError saying how to build one when ``path`` does not exist or holds no evalkit
    BM25 index (or one of another format), and naming the file when one is unreadable.
    """
    location = Path(path)
    if location.is_file() and location.parent.joinpath(MANIFEST).is_file():
        raise ConfigError(
            f"bm25 index {location} is a file of the index; give its folder, {location.parent}"
        )
    if location.is_dir() and not location.joinpath(MANIFEST).exists() and any(location.iterdir()):
        # Building into a folder that holds other files is refused: name a new one.
        raise ConfigError(
            f"bm25 index {location} is a folder of other files, not an evalkit BM25 index; "
            "build one with `evalkit index --kind bm25 --corpus CORPUS --out NEW_FOLDER` and "
            "give that folder"
        )
    hint = f"build it with `evalkit index --kind bm25 --corpus CORPUS --out {location}`"
    if not location.is_dir():
        what = "is not a folder" if location.exists() else "does not exist"
        raise ConfigError(f"bm25 index {location} {what}; {hint}")
    manifest = _read_json(location / MANIFEST, hint)
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ConfigError(
            f"bm25 index {location}: {MANIFEST} is not an evalkit BM25 index of format "
            f"{FORMAT}; rebuild it ({hint})"
        )
    doc_ids = _read_json(location / DOC_IDS, hint)
    try:
        parameters = Bm25Parameters(**manifest["parameters"])
        fingerprint = str(manifest["index_fingerprint"])
        built_at = str(manifest["built_at"])
        version = str(manifest["bm25s_version"])
        if not isinstance(doc_ids, list) or len(doc_ids) != manifest["documents"]:
            raise ValueError(f"{DOC_IDS} does not list {manifest['documents']} documents")
        model = bm25s.BM25.load(location, load_corpus=False, show_progress=False)
    except (KeyError, TypeError, ValueError, OSError, ConfigError) as error:
        raise ConfigError(
            f"bm25 index {location} cannot be read ({error}); rebuild it ({hint})"
        ) from error
    if model.scores["num_docs"] != len(doc_ids):
        raise ConfigError(
            f"bm25 index {location} holds {model.scores['num_docs']} documents but "
            f"{DOC_IDS} lists {len(doc_ids)}; rebuild it ({hint})"
        )
    return Bm25Index(
        path=location,
        model=model,
        doc_ids=tuple(str(doc_id) for doc_id in doc_ids),
        parameters=parameters,
        fingerprint=fingerprint,
        built_at=built_at,
        bm25s_version=version,
    )


def _check_choice(name: str, value: object, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ConfigError(f"unknown bm25 {name} {value!r}; use one of: {', '.join(choices)}")


def _number(name: str, text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ConfigError(f"bm25 option {name} must be a number, got {text!r}") from None


def _batches(documents: Iterable[Document], size: int) -> Iterator[list[Document]]:
    iterator = iter(documents)
    while batch := list(islice(iterator, size)):
        yield batch


def _fingerprint(parameters: Bm25Parameters, doc_ids: Sequence[str], hashes: Sequence[str]) -> str:
    """SHA-256 over the parameters and every (doc id, content hash) pair in id order: it
    changes exactly when what is indexed, or how, changes."""
    digest = hashlib.sha256(json.dumps(parameters.to_dict(), sort_keys=True).encode("utf-8"))
    for doc_id, document_hash in zip(doc_ids, hashes, strict=True):
        digest.update(f"\n{doc_id}\t{document_hash}".encode())
    return digest.hexdigest()


def _check_target(target: Path) -> bool:
    """Whether ``target`` holds an index to replace; ConfigError when it may not be written."""
    if not target.exists():
        return False
    if not target.is_dir():
        raise ConfigError(f"`out` {target} is a file; give a directory for the bm25 index")
    if (target / MANIFEST).is_file():
        return True
    if any(target.iterdir()):
        raise ConfigError(
            f"`out` {target} holds files that are not an evalkit bm25 index; give a new or "
            "empty directory (an index is replaced as a whole)"
        )
    return False


def _save(target: Path, model: bm25s.BM25, doc_ids: list[str], manifest: dict[str, Any]) -> None:
    """Write the index beside ``target`` and rename it onto it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = _new_directory(target, ".partial")
    try:
        model.save(partial, show_progress=False)
        (partial / DOC_IDS).write_text(json.dumps(doc_ids, ensure_ascii=False), encoding="utf-8")
        (partial / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        if target.exists():
            previous = _new_directory(target, ".old")
            previous.rmdir()
            os.replace(target, previous)
            os.replace(partial, target)
            shutil.rmtree(previous, ignore_errors=True)
        else:
            os.replace(partial, target)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise


def _new_directory(target: Path, suffix: str) -> Path:
    """A new empty directory beside ``target``, mode 0777 less the umask."""
    while True:
        candidate = target.with_name(f".{target.name}.{secrets.token_hex(6)}{suffix}")
        with contextlib.suppress(FileExistsError):
            candidate.mkdir()
            return candidate


def _read_json(path: Path, hint: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"{path.parent} holds no evalkit bm25 index ({path.name} is missing); {hint}"
        ) from None
    except (OSError, ValueError) as error:
        raise ConfigError(f"bm25 index file {path} cannot be read ({error}); {hint}") from error
