"""A loopback HTTP retriever over the demo corpus that needs no model: documents ranked by
the words they share with the query. Deterministic, so two replays get the same rankings.

``delay`` seconds are spent on every query (to keep a replay running long enough to be
interrupted); the query ids in ``fail`` are answered 500.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

from demo_index import demo_documents
from loopback import serving

_WORD = re.compile(r"[a-z0-9]+")


def _words(text: str) -> set[str]:
    return set(_WORD.findall(text.lower()))


def rank(query: str, k: int) -> list[dict[str, Any]]:
    """The ``k`` demo documents sharing most words with ``query``, best first."""
    words = _words(query)
    scored = [
        (len(words & _words(document.content)) / (1 + len(words)), document.id)
        for document in demo_documents()
    ]
    scored.sort(key=lambda pair: (-pair[0], pair[1]))
    return [{"id": doc_id, "score": score} for score, doc_id in scored[:k]]


@contextlib.contextmanager
def overlap_retriever(*, delay: float = 0.0, fail: frozenset[str] = frozenset()) -> Iterator[str]:
    """Serve the retriever on 127.0.0.1; its URL for the block."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if delay:
                time.sleep(delay)
            if body.get("query_id") in fail:
                status, payload = 500, b"broken for this query"
            else:
                results = rank(str(body["query"]), int(body["k"]))
                status, payload = 200, json.dumps({"results": results}).encode()
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    with serving(Handler) as url:
        yield f"{url}/search"
