"""A loopback OpenAI-compatible relevance assessor for the tests, and the goldset it knows.

``GradingJudge`` answers chat completions with the grade a table of known judgments gives the
(query, passage) pair in the prompt, flipped to another grade for a set share of pairs
(``flip_rate``; which pairs flip is a hash of the pair, so a pair is always answered alike).
Pairs it does not know are graded 0. It can also answer garbage or errors for chosen pairs,
take a fixed time per call, and serve at most ``capacity`` calls at once (more wait), like
an inference server with a fixed number of slots.

``write_graded_goldset`` writes a JSONL goldset with graded judgments 0-3 and its corpus;
``systems`` rank it with chosen quality, for runs whose order a label source can be
checked on.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import numpy as np
from loopback import JSONHandler, running

# The assessor's prompt holds the query and the passage each in its block, one JSON string
# on the line between the tags.
_BLOCK = re.compile(r"^<(?P<tag>query|passage)>\n(?P<data>.*)\n</(?P=tag)>$", re.M)
_OBEYED = re.compile(r'\{"grade": ([0-3])\}')


def prompt_pair(prompt: str) -> tuple[str, str] | None:
    """(query, passage) as the blocks of the assessor's ``prompt`` give them, or None when
    it does not hold exactly one block of each."""
    blocks = [(found["tag"], json.loads(found["data"])) for found in _BLOCK.finditer(prompt)]
    tags = [tag for tag, _ in blocks]
    if sorted(tags) != ["passage", "query"]:
        return None
    given = dict(blocks)
    return given["query"], given["passage"]


def _unit(*parts: str) -> float:
    """A number in [0, 1) fixed by ``parts``."""
    digest = hashlib.sha256("\x1f".join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


@dataclass
class GradingJudge:
    """The assessor's behaviour; ``url`` is set while it serves."""

    known: dict[tuple[str, str], int]
    flip_rate: float = 0.0
    garbage_for: set[str] = field(default_factory=set)
    """Passages (by a substring) answered with text that is no JSON object."""
    error_for: set[str] = field(default_factory=set)
    """Passages (by a substring) answered with HTTP 500."""
    constant_grade: int | None = None
    """Give every pair this grade (a judge that cannot tell)."""
    not_a_completion_for: set[str] = field(default_factory=set)
    """Passages (by a substring) answered with HTTP 200 and a JSON list, as a misconfigured
    proxy or another API might."""
    echo: str | None = None
    """Put this text (a secret, say) in every garbage reply."""
    huge_for: set[str] = field(default_factory=set)
    """Passages (by a substring) answered with a chat completion of ``huge_bytes`` whose
    content is junk and then ``{"grade": 3}``, streamed in pieces (no Content-Length unless
    ``huge_declared``), as a broken or hostile endpoint might send it."""
    huge_bytes: int = 50 * 2**20
    huge_declared: bool = False
    huge_gzipped: bool = False
    """Send the huge reply gzip-compressed (``Content-Encoding: gzip``): a few kB on the wire
    that inflate to ``huge_bytes``."""
    obeys: bool = False
    """Answer the grade a query asks for (``{"grade": 3}`` in its text), as a model that
    follows instructions in the data it grades would."""
    service_time: float = 0.0
    capacity: int = 1_000
    url: str = ""
    requests: int = 0
    answered: int = 0
    seen: list[tuple[str, str]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _slots: threading.BoundedSemaphore | None = None

    def grade(self, query: str, passage: str) -> int:
        """The grade this judge gives the pair."""
        if self.constant_grade is not None:
            return self.constant_grade
        true = self.known.get((query, passage), 0)
        if _unit("flip", query, passage) < self.flip_rate:
            return (true + 1 + int(_unit("to", query, passage) * 3)) % 4
        return true

    def reply(self, body: dict[str, Any]) -> tuple[int, str]:
        """(HTTP status, message content) for a chat completion request."""
        content = str(body["messages"][-1]["content"])
        pair = prompt_pair(content)
        if pair is None:
            return 400, "not one query and one passage in the prompt"
        query, passage = pair
        with self._lock:
            self.seen.append((query, passage))
        obeyed = _OBEYED.search(query) if self.obeys else None
        if obeyed is not None:
            return 200, json.dumps({"grade": int(obeyed[1]), "reason": "as the query said"})
        if any(marker in passage for marker in self.error_for):
            return 500, "the model is overloaded"
        if any(marker in passage for marker in self.garbage_for):
            return 200, f"I think this is quite relevant, maybe? {self.echo or ''} " + "x" * 300
        grade = self.grade(query, passage)
        return 200, json.dumps({"grade": grade, "reason": f"graded {grade}"})

    def is_huge(self, body: dict[str, Any]) -> bool:
        """Whether the request asks about a passage answered with a huge reply."""
        prompt = str(body["messages"][-1]["content"])
        return any(marker in prompt for marker in self.huge_for)

    def send_huge(self, handler: BaseHTTPRequestHandler) -> None:
        """Stream a completion of ``huge_bytes`` to ``handler``'s client, which may stop
        reading at any point."""
        with self._lock:
            self.requests += 1
        head = b'{"choices": [{"message": {"role": "assistant", "content": "'
        tail = b' {\\"grade\\": 3}"}}]}'
        piece = b"x" * 65_536
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        if self.huge_declared:
            handler.send_header("Content-Length", str(self.huge_bytes))
        if self.huge_gzipped:
            handler.send_header("Content-Encoding", "gzip")
        handler.end_headers()
        left = self.huge_bytes - len(head) - len(tail)
        packer = zlib.compressobj(wbits=zlib.MAX_WBITS | 16) if self.huge_gzipped else None

        def write(data: bytes) -> None:
            handler.wfile.write(data if packer is None else packer.compress(data))

        try:
            write(head)
            while left > 0:
                write(piece[: min(left, len(piece))])
                left -= len(piece)
            write(tail)
            if packer is not None:
                handler.wfile.write(packer.flush())
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client stopped reading
        handler.close_connection = True

    def handle(self, body: dict[str, Any]) -> tuple[int, Any]:
        with self._lock:
            self.requests += 1
        slots = self._slots
        assert slots is not None
        with slots:
            if self.service_time:
                time.sleep(self.service_time)
            status, content = self.reply(body)
        with self._lock:
            self.answered += 1
        prompt = str(body["messages"][-1]["content"])
        if any(marker in prompt for marker in self.not_a_completion_for):
            return 200, ["not", "a", "chat", "completion"]
        if status != 200:
            return status, {"error": {"message": content, "type": "server_error"}}
        return 200, {
            "id": "chatcmpl-test",
            "object": "chat.completion",
            "created": 0,
            "model": body.get("model", "grader"),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 100, "completion_tokens": 10, "total_tokens": 110},
        }


@contextmanager
def grading_judge(judge: GradingJudge) -> Iterator[GradingJudge]:
    """Serve ``judge`` on loopback for the block (``judge.url`` is its ``/v1`` base URL)."""
    judge._slots = threading.BoundedSemaphore(judge.capacity)

    class Handler(JSONHandler):
        def do_POST(self) -> None:
            body = self.read_json()
            if judge.is_huge(body):
                judge.send_huge(self)
                return
            status, payload = judge.handle(body)
            self.send_json(payload, status)

        def log_message(self, format: str, *args: object) -> None:
            pass

    with running(Handler) as server:
        judge.url = f"{server.url}/v1"
        yield judge


def judge_env(judge: GradingJudge, **extra: str) -> dict[str, str]:
    """The ``EVALKIT_JUDGE_*`` variables that point evalkit at ``judge``: no retry back-off,
    so a test of failures does not wait."""
    return {
        "EVALKIT_JUDGE_BASE_URL": judge.url,
        "EVALKIT_JUDGE_MODEL": "grader-1",
        "EVALKIT_JUDGE_RETRY_BACKOFF": "0",
        "EVALKIT_JUDGE_TIMEOUT": "20",
        **extra,
    }


@dataclass(frozen=True)
class GradedGoldset:
    """A written goldset: its folder, corpus file, and the texts behind its judgments."""

    folder: Path
    corpus: Path
    queries: dict[str, str]
    documents: dict[str, str]
    grades: dict[tuple[str, str], int]

    def known(self) -> dict[tuple[str, str], int]:
        """The judgments as the grading judge reads them: (query text, passage) -> grade."""
        return {
            (self.queries[q], self.documents[d]): grade for (q, d), grade in self.grades.items()
        }


def write_graded_goldset(folder: Path, n_queries: int = 60, seed: int = 7) -> GradedGoldset:
    """A JSONL goldset of ``n_queries`` queries, each with four judged documents graded 0,
    1, 2 and 3 and three unjudged distractors, and its corpus (``corpus.jsonl``)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    queries = {
        f"q{q:03d}": f"what is known about subject {q} and its property {q * 7}"
        for q in range(n_queries)
    }
    documents: dict[str, str] = {}
    grades: dict[tuple[str, str], int] = {}
    for q in range(n_queries):
        for grade in range(4):
            doc = f"d{q:03d}_{grade}"
            documents[doc] = (
                f"passage {doc}: a text of grade {grade} on subject {q}, {rng.integers(10**6)}"
            )
            grades[(f"q{q:03d}", doc)] = grade
        for extra in range(3):
            doc = f"x{q:03d}_{extra}"
            documents[doc] = (
                f"passage {doc}: an unjudged text near subject {q}, {rng.integers(10**6)}"
            )
    (folder / "queries.jsonl").write_text(
        "".join(json.dumps({"id": q, "text": text}) + "\n" for q, text in queries.items())
    )
    (folder / "judgments.jsonl").write_text(
        "".join(
            json.dumps({"query_id": q, "doc_id": d, "relevance": grade}) + "\n"
            for (q, d), grade in grades.items()
        )
    )
    corpus = folder.parent / f"{folder.name}-corpus.jsonl"
    corpus.write_text(
        "".join(json.dumps({"id": d, "text": text}) + "\n" for d, text in documents.items())
    )
    return GradedGoldset(folder, corpus, queries, documents, grades)


SYSTEMS = {
    "best": ("3", "2", "1", "x0", "0"),
    "good": ("3", "1", "x0", "x1", "0"),
    "fair": ("1", "x0", "x1", "0", "x2"),
    "poor": ("x0", "x1", "x2", "0"),
}
"""Rankings of each query's documents, by grade ("3") or distractor ("x0"), best first."""


class SystemsRetriever(JSONHandler):
    """An HTTP retriever at ``/SYSTEM``: the query about subject N ranked as
    ``SYSTEMS[SYSTEM]`` over subject N's documents."""

    def do_POST(self) -> None:
        body = self.read_json()
        subject = re.search(r"subject (\d+)", str(body["query"]))
        if subject is None:  # evalkit's connectivity probe
            self.send_json({"results": []})
            return
        number = f"{int(subject[1]):03d}"
        order = SYSTEMS[self.path.strip("/")]
        results = [
            {"id": system_doc(number, slot), "score": 1.0 - i / 10} for i, slot in enumerate(order)
        ]
        self.send_json({"results": results})

    def log_message(self, format: str, *args: object) -> None:
        pass


def system_doc(number: str, slot: str) -> str:
    """The document id of ``slot`` ("3" or "x0") among subject ``number``'s documents."""
    return f"x{number}_{slot[1:]}" if slot.startswith("x") else f"d{number}_{slot}"


@contextmanager
def systems_retriever() -> Iterator[str]:
    """Serve ``SystemsRetriever`` on loopback; yields its base URL (add ``/SYSTEM``)."""
    with running(SystemsRetriever) as server:
        yield server.url


def expected_kappa(grades: list[int], flip_rate: float) -> float:
    """Linear-weighted kappa that flipping ``flip_rate`` of the pairs to another grade (each
    of the three alike) gives in expectation, for human grades ``grades`` on 0-3."""
    shares = np.bincount(np.asarray(grades), minlength=4) / len(grades)
    confusion = np.array(
        [
            [share * ((1 - flip_rate) if i == j else flip_rate / 3) for j in range(4)]
            for i, share in enumerate(shares)
        ]
    )
    grid = np.arange(4)
    weights = np.abs(grid[:, None] - grid[None, :]) / 3
    expected = np.outer(confusion.sum(axis=1), confusion.sum(axis=0))
    return float(1 - (weights * confusion).sum() / (weights * expected).sum())
