"""A sentence-transformers BERT model run by ONNX Runtime instead of torch.

ONNX Runtime starts in a fraction of the time torch takes to import. The graph is exported
once per model from its local weights, and kept only when it embeds check texts within
``MAX_COSINE_DEVIATION`` of torch; only a mean-pooled BERT encoder runs this way
(docs/retrievers.md, "ONNX Runtime or torch").
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import json
import logging
import math
import os
import threading
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from evalkit import __version__
from evalkit.errors import ConfigError, EmbeddingError
from evalkit.extras import require
from evalkit.files import create_beside

__all__ = [
    "EXPORT_FORMAT",
    "MAX_COSINE_DEVIATION",
    "OnnxLayout",
    "OnnxSentenceModel",
    "default_cache_dir",
    "export_onnx",
    "onnx_layout",
    "onnx_model_file",
    "onnx_model_for",
]

log = logging.getLogger(__name__)

EXPORT_FORMAT = 2
"""Bumped whenever the exported graph changes, so older cached exports are not reused."""

MAX_COSINE_DEVIATION = 1e-5
"""An export is kept only if every check text's embedding is this close (1 - cosine) to
the torch model's."""

_TRANSFORMER = "sentence_transformers.models.Transformer"
_POOLING = "sentence_transformers.models.Pooling"
_NORMALIZE = "sentence_transformers.models.Normalize"
_POOLING_MODES = (
    "pooling_mode_cls_token",
    "pooling_mode_max_tokens",
    "pooling_mode_mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens",
    "pooling_mode_lasttoken",
)
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
_LONG_CHECK_TEXT = " ".join(["retrieval evaluation"] * 400)
"""Longer than any model's window: the check covers truncation too."""

_export_lock = threading.Lock()


@dataclass(frozen=True, slots=True)
class OnnxLayout:
    """What evalkit reads from a model directory to run it on ONNX Runtime."""

    model_dir: Path
    weights: Path
    dimension: int
    max_seq_length: int
    lower_case: bool


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def onnx_layout(model_dir: Path) -> OnnxLayout | None:
    """The layout of ``model_dir`` when it is a BERT + mean-pooling sentence-transformers
    model with a fast tokenizer and safetensors weights, and no prompts or other input
    processing of sentence-transformers' own; None for anything else."""
    modules = _read_json(model_dir / "modules.json")
    if not isinstance(modules, list) or not modules:
        return None
    kinds = [module.get("type") if isinstance(module, dict) else None for module in modules]
    if kinds[:2] != [_TRANSFORMER, _POOLING] or any(kind != _NORMALIZE for kind in kinds[2:]):
        return None
    if modules[0].get("path", "") != "":
        return None
    pooling = _read_json(model_dir / str(modules[1].get("path", "")) / "config.json")
    if not isinstance(pooling, dict) or pooling.get("pooling_mode_mean_tokens") is not True:
        return None
    if any(pooling.get(mode) for mode in _POOLING_MODES) or pooling.get("include_prompt") is False:
        return None
    st_config = _read_json(model_dir / "config_sentence_transformers.json")
    if isinstance(st_config, dict) and (
        st_config.get("prompts") or st_config.get("default_prompt_name")
    ):
        return None
    config = _read_json(model_dir / "config.json")
    if not isinstance(config, dict) or config.get("model_type") != "bert":
        return None
    weights = model_dir / "model.safetensors"
    if not weights.is_file() or not (model_dir / "tokenizer.json").is_file():
        return None
    bert = _read_json(model_dir / "sentence_bert_config.json")
    bert = bert if isinstance(bert, dict) else {}
    tokenizer_config = _read_json(model_dir / "tokenizer_config.json")
    tokenizer_config = tokenizer_config if isinstance(tokenizer_config, dict) else {}
    try:
        positions = int(config.get("max_position_embeddings", 512))
        window = int(tokenizer_config.get("model_max_length") or positions)
        max_seq_length = int(bert.get("max_seq_length") or min(window, positions))
        dimension = int(config["hidden_size"])
    except (KeyError, TypeError, ValueError):
        return None
    return OnnxLayout(
        model_dir=model_dir,
        weights=weights,
        dimension=dimension,
        max_seq_length=min(max_seq_length, positions),
        lower_case=bool(bert.get("do_lower_case", False)),
    )


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/evalkit``, else ``~/.cache/evalkit``."""
    base = os.environ.get("XDG_CACHE_HOME")
    return (Path(base) if base else Path.home() / ".cache") / "evalkit"


def _weights_digest(layout: OnnxLayout, cache_dir: Path) -> str:
    """SHA-256 of the weights file and config.json, computed once per file version.

    Hashing 90 MB costs a fraction of a second, so the digest is kept under ``cache_dir``
    keyed by the file's path, size, modification time and inode: a changed file (a
    fine-tune saved over it, a reinstall) is hashed again."""
    stat = layout.weights.stat()
    identity = f"{layout.weights.resolve()}:{stat.st_size}:{stat.st_mtime_ns}:{stat.st_ino}"
    remembered = cache_dir / "digests" / hashlib.sha256(identity.encode()).hexdigest()[:32]
    try:
        return remembered.read_text(encoding="ascii").strip()
    except OSError:
        pass
    digest = hashlib.sha256(f"evalkit-onnx:{EXPORT_FORMAT}\n".encode())
    digest.update((layout.model_dir / "config.json").read_bytes())
    with layout.weights.open("rb") as handle:
        digest.update(hashlib.file_digest(handle, "sha256").digest())
    found = digest.hexdigest()[:24]
    with contextlib.suppress(OSError):
        remembered.parent.mkdir(parents=True, exist_ok=True)
        _write_atomically(remembered, found.encode("ascii"))
    return found


def onnx_model_file(layout: OnnxLayout, cache_dir: Path) -> Path:
    """Where the export of ``layout``'s model lives (or will live) under ``cache_dir``."""
    return cache_dir / "onnx" / _weights_digest(layout, cache_dir) / "model.onnx"


def _write_atomically(target: Path, data: bytes) -> None:
    """``data`` into ``target`` through a temporary file beside it, synced, then renamed."""
    handle, name = create_beside(target)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(name, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)


def _rejection_file(model_file: Path) -> Path:
    return model_file.with_name("rejected.json")


def _rejection(model_file: Path) -> dict[str, Any] | None:
    """This evalkit version's refusal of the export, if it made one; another version tries
    again (its exporter or check may differ)."""
    rejection = _read_json(_rejection_file(model_file))
    if isinstance(rejection, dict) and rejection.get("evalkit") == __version__:
        return rejection
    return None


class OnnxSentenceModel:
    """An exported model on ONNX Runtime with its tokenizer: ``encode`` as sentence-transformers
    does it (length-sorted batches, truncation to ``max_seq_length``, mean pooling)."""

    backend = "onnxruntime"

    def __init__(self, layout: OnnxLayout, model_file: Path) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        # ONNX Runtime's threads busy-wait between calls by default: with the model embedding
        # ahead in the background while the command's own thread imports and opens the store
        # and the retriever, the spinning takes the cores that work needs (measured: 300
        # queries 3.2 s spinning, 2.5 s not, beside a busy core).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        # ONNX Runtime takes a thread per core and does not read OMP_NUM_THREADS, which torch
        # and the BLAS libraries do: a process capped below the cores (a container's CPU
        # limit, test workers sharing the cores) is capped here too.
        threads = os.environ.get("OMP_NUM_THREADS", "")
        if threads.isdigit() and int(threads) > 0:
            options.intra_op_num_threads = int(threads)
        self._session = onnxruntime.InferenceSession(
            str(model_file), options, providers=["CPUExecutionProvider"]
        )
        self._tokenizer = _tokenizer(layout)
        self._layout = layout

    def get_embedding_dimension(self) -> int:
        """Length of the vectors the model makes."""
        return self._layout.dimension

    @property
    def max_seq_length(self) -> int:
        """Tokens of a text the model reads; the rest is cut off."""
        return self._layout.max_seq_length

    def encode(
        self,
        sentences: list[str],
        *,
        batch_size: int = 64,
        normalize_embeddings: bool = True,
        convert_to_numpy: bool = True,
        show_progress_bar: bool = False,
    ) -> npt.NDArray[np.float32]:
        """Embed ``sentences``: an (n, dimension) float32 array, unit length when asked."""
        del convert_to_numpy, show_progress_bar
        texts = [text.lower() for text in sentences] if self._layout.lower_case else sentences
        order = np.argsort([-len(text) for text in texts], kind="stable")
        vectors = np.empty((len(texts), self._layout.dimension), dtype=np.float32)
        for start in range(0, len(texts), batch_size):
            chosen = order[start : start + batch_size]
            vectors[chosen] = self.pooled([texts[i] for i in chosen])
        if normalize_embeddings:
            norms = np.linalg.norm(vectors, axis=1, keepdims=True)
            vectors /= np.maximum(norms, 1e-12)
        return vectors

    def pooled(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """The mean-pooled token embeddings of one batch, not normalised."""
        encodings = self._tokenizer.encode_batch(list(texts))
        feed = {
            "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
            "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
        }
        (pooled,) = self._session.run(["pooled"], feed)
        return np.asarray(pooled, dtype=np.float32)


def export_onnx(layout: OnnxLayout, model_file: Path, check_texts: Sequence[str]) -> float:
    """Export ``layout``'s model from its local weights to ``model_file`` (atomically).

    The export embeds ``check_texts`` (and a text longer than the model's window), one at a
    time and in one padded batch, beside sentence-transformers' own ``encode`` of the same
    model; when any embedding is further than ``MAX_COSINE_DEVIATION`` (or not a number), the
    file is not kept, a ``rejected.json`` beside it records why, and ``EmbeddingError`` is
    raised. Returns the largest deviation seen. Needs torch, transformers, onnx and
    sentence-transformers (the ``embed`` extra). The caller holds the export lock.
    """
    import torch
    from sentence_transformers import SentenceTransformer
    from transformers import AutoModel

    class MeanPooled(torch.nn.Module):
        def __init__(self, encoder: torch.nn.Module) -> None:
            super().__init__()
            self.encoder = encoder

        def forward(
            self,
            input_ids: torch.Tensor,
            attention_mask: torch.Tensor,
            token_type_ids: torch.Tensor,
        ) -> torch.Tensor:
            hidden = self.encoder(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            summed: torch.Tensor = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return summed

    encoder = AutoModel.from_pretrained(
        layout.model_dir, local_files_only=True, attn_implementation="eager"
    )
    # eval() on the wrapper: the exporter restores the wrapper's training flag recursively
    # afterwards, which would turn dropout back on in the encoder.
    pooled_model = MeanPooled(encoder).eval()
    tokenizer = _tokenizer(layout)
    sample = tokenizer.encode_batch(["evalkit", "a longer sample sentence for the trace"])
    inputs = {
        "input_ids": torch.tensor([e.ids for e in sample]),
        "attention_mask": torch.tensor([e.attention_mask for e in sample]),
        "token_type_ids": torch.tensor([e.type_ids for e in sample]),
    }
    dynamic = {name: {0: "batch", 1: "tokens"} for name in _INPUTS}
    model_file.parent.mkdir(parents=True, exist_ok=True)
    handle, partial = create_beside(model_file)
    os.close(handle)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            # The tracer warns about shape-dependent Python in transformers' own code; the
            # check below is what decides whether the graph is right.
            warnings.simplefilter("ignore")
            torch.onnx.export(
                pooled_model,
                tuple(inputs[name] for name in _INPUTS),
                str(partial),
                input_names=list(_INPUTS),
                output_names=["pooled"],
                dynamic_axes={**dynamic, "pooled": {0: "batch"}},
                opset_version=17,
                dynamo=False,
            )
        reference = SentenceTransformer(str(layout.model_dir), device="cpu", local_files_only=True)
        deviation = _deviation(layout, partial, reference, [*check_texts, _LONG_CHECK_TEXT])
        if not deviation <= MAX_COSINE_DEVIATION:
            record = {
                "evalkit": __version__,
                "max_cosine_deviation": deviation,
                "limit": MAX_COSINE_DEVIATION,
            }
            _write_atomically(_rejection_file(model_file), json.dumps(record).encode())
            raise EmbeddingError(
                f"the ONNX export of {layout.model_dir} embeds up to {deviation:.2e} away "
                f"(1 - cosine) from sentence-transformers, above {MAX_COSINE_DEVIATION:g}"
            )
        with partial.open("rb") as exported:
            os.fsync(exported.fileno())
        os.replace(partial, model_file)
    finally:
        partial.unlink(missing_ok=True)
    return deviation


def _tokenizer(layout: OnnxLayout) -> Any:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(layout.model_dir / "tokenizer.json"))
    tokenizer.enable_truncation(max_length=layout.max_seq_length)
    pad_token = "[PAD]"
    pad_id = tokenizer.token_to_id(pad_token)
    tokenizer.enable_padding(pad_id=0 if pad_id is None else pad_id, pad_token=pad_token)
    return tokenizer


def _deviation(
    layout: OnnxLayout, exported: Path, reference: Any, check_texts: Sequence[str]
) -> float:
    """Largest 1 - cosine between the export's embeddings of ``check_texts`` (in one padded
    batch, and one at a time) and sentence-transformers' ``reference.encode`` of them; NaN
    when either side is not a finite number."""
    onnx_model = OnnxSentenceModel(layout, exported)
    texts = list(check_texts)
    ours = np.concatenate(
        [onnx_model.encode(texts, batch_size=len(texts)), onnx_model.encode(texts, batch_size=1)]
    ).astype(np.float64)
    theirs = np.asarray(reference.encode(texts, normalize_embeddings=True), dtype=np.float64)
    theirs = np.concatenate([theirs, theirs])
    if not (np.all(np.isfinite(ours)) and np.all(np.isfinite(theirs))):
        return math.nan
    return float(np.max(1.0 - np.sum(ours * theirs, axis=1)))


@contextlib.contextmanager
def _exclusive(directory: Path) -> Iterator[None]:
    """This thread and process alone in ``directory`` (other processes wait their turn)."""
    directory.mkdir(parents=True, exist_ok=True)
    with _export_lock, (directory / ".lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _unusable(model_dir: Path, reason: str, *, required: bool) -> None:
    """Say why ONNX Runtime cannot run the model: an error when it was asked for, else one
    log line (torch is used)."""
    if required:
        raise EmbeddingError(
            f"embed_backend = onnx, but {reason}; use embed_backend = auto or torch"
        )
    log.warning("%s; embedding %s with torch instead", reason, model_dir)


def onnx_model_for(
    model_dir: Path, cache_dir: Path, check_texts: Sequence[str], *, required: bool
) -> OnnxSentenceModel | None:
    """The model in ``model_dir`` on ONNX Runtime, exporting it into ``cache_dir`` first if
    needed; None when it cannot run there (``required``: raise saying why instead).

    A model of another layout, a missing package or an unwritable cache is not tried; an
    export this evalkit version refused is not tried again (``rejected.json`` says why);
    a cached file that ONNX Runtime cannot load is named so it can be deleted.
    """
    layout = onnx_layout(model_dir)
    if layout is None:
        if required:
            raise ConfigError(
                f"embed_backend = onnx, but the model in {model_dir} is not one evalkit runs "
                "on ONNX Runtime (a BERT encoder with mean pooling, a tokenizer.json, no "
                "prompts); use embed_backend = auto or torch"
            )
        return None
    missing = [
        name for name in ("onnxruntime", "tokenizers") if importlib.util.find_spec(name) is None
    ]
    if missing:
        if required:
            require(missing[0], "embed_backend = onnx")
        return None
    try:
        model_file = onnx_model_file(layout, cache_dir)
        with _exclusive(model_file.parent):
            rejection = _rejection(model_file)
            if rejection is not None:
                why = rejection.get("export_failed") or (
                    f"1 - cosine {rejection.get('max_cosine_deviation')}"
                )
                _unusable(
                    model_dir,
                    f"this evalkit refused the ONNX export of {model_dir} ({why}; delete "
                    f"{_rejection_file(model_file)} to try again)",
                    required=required,
                )
                return None
            if not model_file.is_file():
                for stale in model_file.parent.glob(".model.*.partial"):
                    stale.unlink(missing_ok=True)  # left by an export that was killed
                if importlib.util.find_spec("onnx") is None:
                    _unusable(model_dir, "the onnx package is not installed", required=required)
                    return None
                try:
                    deviation = export_onnx(layout, model_file, check_texts)
                except EmbeddingError as error:
                    _unusable(model_dir, str(error), required=required)
                    return None
                except OSError:
                    raise
                except Exception as error:  # exporters raise many library-specific types
                    # The same exporter fails the same way next time: remembered like a
                    # refused check, so later processes do not pay a torch load for it.
                    reason = f"{type(error).__name__}: {error}"
                    record = {"evalkit": __version__, "export_failed": reason}
                    _write_atomically(_rejection_file(model_file), json.dumps(record).encode())
                    _unusable(
                        model_dir, f"could not export it to ONNX ({reason})", required=required
                    )
                    return None
                log.info("exported %s to %s (deviation %.1e)", model_dir, model_file, deviation)
    except OSError as error:
        _unusable(
            model_dir, f"the cache {cache_dir} cannot be written ({error})", required=required
        )
        return None
    try:
        return OnnxSentenceModel(layout, model_file)
    except Exception as error:  # onnxruntime raises its own types for a broken file
        _unusable(
            model_dir,
            f"ONNX Runtime cannot load {model_file} ({type(error).__name__}: {error}); delete "
            "it to export the model again",
            required=required,
        )
        return None
