"""A sentence-transformers BERT model run by ONNX Runtime instead of torch.

Importing torch and sentence-transformers and building the model takes several seconds of
every process that embeds, often more than embedding a few hundred queries. ONNX Runtime and
the ``tokenizers`` library start in a fraction of a second and embed at least as fast on a
CPU. The ONNX graph is exported from the model's own local weights (never downloaded), once
per model, into evalkit's cache directory, and kept only when it embeds a set of check texts
within ``MAX_COSINE_DEVIATION`` of the torch model; later processes load it without torch.

Only the layout evalkit can reproduce exactly is run this way: a BERT encoder followed by
mean pooling (and optionally a Normalize module), as the bundled all-MiniLM-L6-v2 is. Any
other model directory (CLS pooling, extra Dense layers, another architecture) stays on
sentence-transformers.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from evalkit import __version__
from evalkit.errors import EmbeddingError

__all__ = [
    "EXPORT_FORMAT",
    "MAX_COSINE_DEVIATION",
    "OnnxLayout",
    "OnnxSentenceModel",
    "default_cache_dir",
    "export_onnx",
    "exported_model",
    "onnx_layout",
    "onnx_model_file",
]

log = logging.getLogger(__name__)

EXPORT_FORMAT = 1
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
_HEAD_BYTES = 1 << 20


@dataclass(frozen=True, slots=True)
class OnnxLayout:
    """What evalkit reads from a model directory to run it on ONNX Runtime."""

    model_dir: Path
    weights: Path
    dimension: int
    max_seq_length: int
    lower_case: bool

    @property
    def key(self) -> str:
        """Identity of the weights and the export format: the cache folder's name.

        The weights' size and their first and last MiB stand for the whole file (reading
        90 MB on every start would cost what this path saves)."""
        digest = hashlib.sha256(f"evalkit-onnx:{EXPORT_FORMAT}\n".encode())
        digest.update((self.model_dir / "config.json").read_bytes())
        size = self.weights.stat().st_size
        digest.update(f"{self.weights.name}:{size}\n".encode())
        with self.weights.open("rb") as handle:
            digest.update(handle.read(_HEAD_BYTES))
            handle.seek(max(0, size - _HEAD_BYTES))
            digest.update(handle.read(_HEAD_BYTES))
        return digest.hexdigest()[:20]


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def onnx_layout(model_dir: Path) -> OnnxLayout | None:
    """The layout of ``model_dir`` when it is a BERT + mean-pooling sentence-transformers
    model with a fast tokenizer and safetensors weights; None for anything else."""
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
    if any(pooling.get(mode) for mode in _POOLING_MODES):
        return None
    config = _read_json(model_dir / "config.json")
    if not isinstance(config, dict) or config.get("model_type") != "bert":
        return None
    weights = model_dir / "model.safetensors"
    if not weights.is_file() or not (model_dir / "tokenizer.json").is_file():
        return None
    bert = _read_json(model_dir / "sentence_bert_config.json")
    bert = bert if isinstance(bert, dict) else {}
    positions = int(config.get("max_position_embeddings", 512))
    max_seq_length = int(bert.get("max_seq_length") or positions)
    return OnnxLayout(
        model_dir=model_dir,
        weights=weights,
        dimension=int(config["hidden_size"]),
        max_seq_length=min(max_seq_length, positions),
        lower_case=bool(bert.get("do_lower_case", False)),
    )


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/evalkit``, else ``~/.cache/evalkit``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "evalkit"


def onnx_model_file(layout: OnnxLayout, cache_dir: Path) -> Path:
    """Where the export of ``layout``'s model lives (or will live) under ``cache_dir``."""
    return cache_dir / "onnx" / layout.key / "model.onnx"


def _rejection_file(model_file: Path) -> Path:
    return model_file.with_name("rejected.json")


def _rejected_by_this_version(model_file: Path) -> bool:
    """Whether this evalkit already refused this export; another version tries again (its
    exporter or check may differ)."""
    rejection = _read_json(_rejection_file(model_file))
    return isinstance(rejection, dict) and rejection.get("evalkit") == __version__


class OnnxSentenceModel:
    """An exported model on ONNX Runtime with its tokenizer: ``encode`` as sentence-transformers
    does it (length-sorted batches, truncation to ``max_seq_length``, mean pooling)."""

    backend = "onnxruntime"

    def __init__(self, layout: OnnxLayout, model_file: Path) -> None:
        import onnxruntime
        from tokenizers import Tokenizer

        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        self._session = onnxruntime.InferenceSession(
            str(model_file), options, providers=["CPUExecutionProvider"]
        )
        tokenizer = Tokenizer.from_file(str(layout.model_dir / "tokenizer.json"))
        tokenizer.enable_truncation(max_length=layout.max_seq_length)
        pad_token = "[PAD]"
        pad_id = tokenizer.token_to_id(pad_token)
        tokenizer.enable_padding(pad_id=0 if pad_id is None else pad_id, pad_token=pad_token)
        self._tokenizer = tokenizer
        self._layout = layout

    def get_embedding_dimension(self) -> int:
        """Length of the vectors the model makes."""
        return self._layout.dimension

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

    The export is run on ``check_texts`` beside the torch model; when any embedding is
    further than ``MAX_COSINE_DEVIATION`` from torch's, the file is not kept, a
    ``rejected.json`` beside it records why, and ``EmbeddingError`` is raised. Returns the
    largest deviation seen. Needs torch, transformers and onnx (the ``embed`` extra).
    """
    import torch
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
    # afterwards, which would turn dropout back on in the encoder for the check below.
    pooled_model = MeanPooled(encoder).eval()
    model_file.parent.mkdir(parents=True, exist_ok=True)
    partial = model_file.with_name(f"{model_file.name}.{os.getpid()}.partial")
    sample = {
        "input_ids": torch.tensor([[101, 7592, 2088, 102, 0], [101, 1037, 2936, 6251, 102]]),
        "token_type_ids": torch.zeros((2, 5), dtype=torch.int64),
    }
    sample["attention_mask"] = (sample["input_ids"] != 0).to(torch.int64)
    dynamic = {name: {0: "batch", 1: "tokens"} for name in _INPUTS}
    try:
        with warnings.catch_warnings(), torch.no_grad():
            # The tracer warns about shape-dependent Python in transformers' own code; the
            # check below is what decides whether the graph is right.
            warnings.simplefilter("ignore")
            torch.onnx.export(
                pooled_model,
                tuple(sample[name] for name in _INPUTS),
                str(partial),
                input_names=list(_INPUTS),
                output_names=["pooled"],
                dynamic_axes={**dynamic, "pooled": {0: "batch"}},
                opset_version=17,
                dynamo=False,
            )
        deviation = _deviation(layout, partial, pooled_model, check_texts)
        if deviation > MAX_COSINE_DEVIATION:
            _rejection_file(model_file).write_text(
                json.dumps(
                    {
                        "evalkit": __version__,
                        "max_cosine_deviation": deviation,
                        "limit": MAX_COSINE_DEVIATION,
                    }
                ),
                encoding="utf-8",
            )
            raise EmbeddingError(
                f"the ONNX export of {layout.model_dir} embeds up to {deviation:.2e} away "
                f"(1 - cosine) from the torch model, above {MAX_COSINE_DEVIATION:g}"
            )
        os.replace(partial, model_file)
    finally:
        partial.unlink(missing_ok=True)
    return deviation


def _deviation(
    layout: OnnxLayout, exported: Path, torch_model: Any, check_texts: Sequence[str]
) -> float:
    import torch

    onnx_model = OnnxSentenceModel(layout, exported)
    texts = list(check_texts)
    # One batch pads every text to the longest; one text at a time pads none: both must agree.
    ours = np.concatenate(
        [onnx_model.encode(texts, batch_size=len(texts)), onnx_model.encode(texts, batch_size=1)]
    )
    theirs = []
    for text in texts:
        encoding = onnx_model._tokenizer.encode(text)
        with torch.no_grad():
            row = torch_model(
                torch.tensor([encoding.ids]),
                torch.tensor([encoding.attention_mask]),
                torch.tensor([encoding.type_ids]),
            )
        theirs.append(row.numpy()[0])
    reference = np.asarray(theirs, dtype=np.float64)
    reference /= np.linalg.norm(reference, axis=1, keepdims=True)
    reference = np.concatenate([reference, reference])
    return float(np.max(1.0 - np.sum(ours.astype(np.float64) * reference, axis=1)))


def exported_model(
    layout: OnnxLayout, cache_dir: Path, check_texts: Sequence[str]
) -> OnnxSentenceModel | None:
    """The model on ONNX Runtime, exported now if the cache lacks it; None when this model
    cannot be run that way here (an earlier export was rejected, or the export failed)."""
    model_file = onnx_model_file(layout, cache_dir)
    if _rejected_by_this_version(model_file):
        return None
    if not model_file.is_file():
        try:
            deviation = export_onnx(layout, model_file, check_texts)
        except EmbeddingError as error:
            log.warning("%s; embedding with torch instead", error)
            return None
        except Exception as error:  # exporters raise many library-specific types
            log.warning(
                "could not export %s to ONNX (%s: %s); embedding with torch instead",
                layout.model_dir,
                type(error).__name__,
                error,
            )
            return None
        log.info("exported %s to %s (deviation %.1e)", layout.model_dir, model_file, deviation)
    return OnnxSentenceModel(layout, model_file)
