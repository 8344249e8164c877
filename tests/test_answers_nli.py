"""offline-nli: a local cross-encoder the tests build, save and load (never a download)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import REPO_ROOT

from evalkit.answers import AnswerRecord, score_answers
from evalkit.answers.nli import NLIFaithfulness, premises
from evalkit.answers.offline import claim_token_features
from evalkit.answers.sentences import split_claims
from evalkit.config import JudgeSettings, ScoringMethod
from evalkit.errors import ConfigError
from evalkit.store import Store

CONTEXTS = (
    "The Sydney Harbour Bridge is a steel arch bridge in Sydney. "
    "It was opened in 1932 after eight years of construction.",
    "The bridge was built by Dorman Long of Middlesbrough.",
)
ANSWER = (
    "The Sydney Harbour Bridge opened in 1932.\n"
    "- **Builder:** Dorman Long of Middlesbrough built the bridge [1]."
)


@pytest.fixture(scope="session")
def tiny_nli(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny BERT sequence classifier with NLI labels and a word-level vocabulary."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-nli")
    words = sorted(
        {w.lower() for text in (*CONTEXTS, ANSWER) for w in text.replace(".", " . ").split()}
    )
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    BertTokenizerFast(vocab_file=str(folder / "vocab.txt")).save_pretrained(folder)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=128,
        num_labels=3,
        id2label={0: "contradiction", 1: "neutral", 2: "entailment"},
        label2id={"contradiction": 0, "neutral": 1, "entailment": 2},
    )
    torch.manual_seed(0)
    BertForSequenceClassification(config).save_pretrained(folder)
    return folder


def test_premises_are_runs_of_whole_sentences() -> None:
    text = "One two three four. Five six seven. Eight nine ten eleven twelve."
    assert premises(text, max_words=7) == [
        "One two three four. Five six seven.",
        "Eight nine ten eleven twelve.",
    ]
    assert premises(text, max_words=2) == [
        "One two three four.",
        "Five six seven.",
        "Eight nine ten eleven twelve.",
    ]
    assert premises("   ", max_words=5) == []


def test_supported_label_is_read_from_the_model_labels(tmp_path: Path) -> None:
    method = NLIFaithfulness(tmp_path)

    def config(id2label: dict[int, str]) -> SimpleNamespace:
        return SimpleNamespace(num_labels=len(id2label), id2label=id2label)

    assert method._supported_label(SimpleNamespace(num_labels=1, id2label={0: "x"})) is None
    assert method._supported_label(config({0: "ENTAILMENT", 1: "NEUTRAL", 2: "x"})) == 0
    assert method._supported_label(config({0: "unsupported", 1: "supported"})) == 1
    assert method._supported_label(config({0: "LABEL_0", 1: "LABEL_1"})) == 1
    with pytest.raises(ConfigError, match="names the supported class"):
        method._supported_label(config({0: "LABEL_0", 1: "LABEL_1", 2: "LABEL_2"}))


def test_a_hub_name_or_missing_directory_is_a_config_error(tmp_path: Path) -> None:
    record = AnswerRecord(id="a", question="q?", answer=ANSWER, contexts=CONTEXTS)
    for path in (tmp_path / "absent", Path("vectara/hallucination_evaluation_model")):
        with pytest.raises(ConfigError, match="never downloads"):
            NLIFaithfulness(path).score([record])


@pytest.mark.slow
def test_scores_are_the_models_best_entailment_per_claim(tiny_nli: Path) -> None:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    method = NLIFaithfulness(tiny_nli, premise_words=12)
    record = AnswerRecord(id="a", question="Who built it?", answer=ANSWER, contexts=CONTEXTS)
    [score] = method.score([record])

    claims = split_claims(ANSWER)
    assert claims == [
        "The Sydney Harbour Bridge opened in 1932.",
        "Dorman Long of Middlesbrough built the bridge.",
    ]
    chunks = [p for c in CONTEXTS for p in premises(c, max_words=12)]
    assert len(chunks) == 3
    tokenizer = AutoTokenizer.from_pretrained(tiny_nli)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_nli).eval()
    best = []
    with torch.inference_mode():
        for claim in claims:
            encoded = tokenizer(chunks, [claim] * len(chunks), padding=True, return_tensors="pt")
            entailment = torch.softmax(model(**encoded).logits, dim=-1)[:, 2]
            best.append(float(entailment.max()))
    _, _, weights = claim_token_features(claims, CONTEXTS)
    assert score.value == pytest.approx(float(np.average(best, weights=weights)), abs=1e-6)
    assert score.n_claims == 2
    assert score.n_supported == sum(p >= 0.5 for p in best)
    assert (score.method, score.judge_model, score.prompt_version) == (
        "offline-nli",
        tiny_nli.name,
        "nli-v1/threshold=0.5",
    )


def test_score_answers_uses_the_configured_local_model(tiny_nli: Path) -> None:
    records = [
        AnswerRecord(id="ok", question="q?", answer=ANSWER, contexts=CONTEXTS),
        AnswerRecord(id="no-context", question="q?", answer=ANSWER, contexts=()),
        AnswerRecord(id="no-claim", question="q?", answer="Yes.", contexts=CONTEXTS),
    ]
    settings = JudgeSettings(method=ScoringMethod.offline, nli_model_path=tiny_nli)
    result = score_answers(records, settings=settings)
    assert {s.method for s in result.scores} == {"offline-nli"}
    assert {s.item_id: s.unmeasured_reason for s in result.scores} == {
        "ok": None,
        "no-context": "empty_contexts",
        "no-claim": "no_claims",
    }
    summary = result.summary("faithfulness", "offline-nli")
    assert (summary.n_measured, summary.n_unmeasured) == (1, 2)


@pytest.mark.slow
def test_cli_scores_and_stores_with_the_local_model(tiny_nli: Path, tmp_path: Path) -> None:
    answers = tmp_path / "answers.jsonl"
    line = {"id": "a", "question": "Who built it?", "answer": ANSWER, "contexts": list(CONTEXTS)}
    answers.write_text(json.dumps(line) + "\n", encoding="utf-8")
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT),
        "EVALKIT_HOME": str(tmp_path / "home"),
        "EVALKIT_JUDGE_NLI_MODEL_PATH": str(tiny_nli),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }
    done = subprocess.run(
        [sys.executable, "-m", "evalkit", "answers", "score", str(answers), "--format", "json"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    [summary] = [s for s in data["summaries"] if s["metric"] == "faithfulness"]
    assert summary["method"] == "offline-nli"
    assert summary["n_measured"] == 1
    with Store.open(tmp_path / "home" / "evalkit.duckdb", read_only=True) as store:
        [(method, model)] = store.fetch("SELECT method, judge_model FROM answer_scores")
    assert (method, model) == ("offline-nli", tiny_nli.name)
