"""A loopback OpenAI-compatible endpoint that writes questions from the passages it is given.

``WritingJudge`` reads the passage (or the two passages) out of evalkit's generation prompt
and answers deterministically: a question made from the first long sentence of each passage,
that sentence as the answer, and the sentence quoted as evidence. A factoid question keeps
the sentence's words; a paraphrase changes every content word (``matter`` -> ``matterish``)
so that it shares none with the passage; a multi-passage question joins both passages'
sentences. Passages named by a marker (a substring) can be answered instead with a reply
that is no JSON object (``malformed``; once only: ``malformed_once``), with a quote that is
not in the passage (``misquote``), or with a paraphrase that copies the passage
(``copying``; once only: ``copying_once``); ``duplicate`` makes every factoid the same
question; ``respace`` quotes with its whitespace changed; ``echo`` puts a text (a secret)
into every malformed reply.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from loopback import JSONHandler, running

_ONE = re.compile(r"\nPassage:\n(?P<a>.*?)\n\nReply with", re.S)
_TWO = re.compile(r"\nPassage 1:\n(?P<a>.*?)\n\nPassage 2:\n(?P<b>.*?)\n\nReply with", re.S)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_WORDS = re.compile(r"[A-Za-z]{4,}")


def first_sentence(passage: str) -> str:
    """The first sentence of ``passage`` of 40 characters or more (else the first)."""
    sentences = [s.strip() for s in _SENTENCE_END.split(passage.strip()) if s.strip()]
    return next((s for s in sentences if len(s) >= 40), sentences[0])


def _words(sentence: str, count: int = 8) -> list[str]:
    return _WORDS.findall(sentence)[:count]


@dataclass
class WritingJudge:
    """The endpoint's behaviour; ``url`` is set while it serves."""

    malformed: set[str] = field(default_factory=set)
    malformed_once: set[str] = field(default_factory=set)
    misquote: set[str] = field(default_factory=set)
    copying: set[str] = field(default_factory=set)
    copying_once: set[str] = field(default_factory=set)
    duplicate: bool = False
    respace: bool = False
    echo: str = ""
    url: str = ""
    requests: int = 0
    bodies: list[dict[str, Any]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def content(self, body: dict[str, Any]) -> str:
        """The reply's text for a chat completion request."""
        messages = body["messages"]
        prompt = str(messages[1]["content"])
        asked_again = len(messages) > 2
        two = _TWO.search(prompt)
        one = _ONE.search(prompt)
        passages = [two["a"], two["b"]] if two else [one["a"]] if one else []
        if not passages:
            return "no passage in the prompt"

        def marker_of(markers: set[str]) -> bool:
            return any(marker in passage for marker in markers for passage in passages)

        if marker_of(self.malformed) or (marker_of(self.malformed_once) and not asked_again):
            return f"Here is a fine question about it, I think. {self.echo} " + "x" * 300
        sentences = [first_sentence(passage) for passage in passages]
        quotes = list(sentences)
        if self.respace:
            quotes = [re.sub(" ", "  \n ", quote, count=3) for quote in quotes]
        if marker_of(self.misquote):
            quotes = ["This sentence stands in no passage of the corpus at all."]
        if two:
            question = (
                f"How does {' '.join(_words(sentences[0], 5))} relate to "
                f"{' '.join(_words(sentences[1], 5))}?"
            )
        elif "as few of the passage's own words" in prompt:
            copying = marker_of(self.copying) or (marker_of(self.copying_once) and not asked_again)
            words = _words(sentences[0])
            if copying:
                question = f"What about {' '.join(words)}?"
            else:
                question = f"Whatever about {' '.join(w.lower() + 'ish' for w in words)}?"
        elif self.duplicate:
            question = "What is the main finding reported in this study?"
        else:
            question = f"What is reported about {' '.join(_words(sentences[0]))}?"
        return json.dumps({"question": question, "answer": sentences[0], "evidence": quotes})

    def handle(self, body: dict[str, Any]) -> dict[str, Any]:
        """The chat completion response to ``body``."""
        with self._lock:
            self.requests += 1
            self.bodies.append(body)
        content = self.content(body)
        return {
            "id": "chatcmpl-" + hashlib.sha256(content.encode()).hexdigest()[:8],
            "object": "chat.completion",
            "created": 0,
            "model": body.get("model", "writer"),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120},
        }


@contextmanager
def writing_judge(judge: WritingJudge) -> Iterator[WritingJudge]:
    """Serve ``judge`` on loopback for the block (``judge.url`` is its ``/v1`` base URL)."""

    class Handler(JSONHandler):
        def do_POST(self) -> None:
            self.send_json(judge.handle(self.read_json()))

    with running(Handler) as server:
        judge.url = f"{server.url}/v1"
        yield judge
