"""A tiny goldset and the HTTP retriever that answers it perfectly, for gate tests.

Query ``qN`` has three relevant documents ``relN_0..2``; the retriever returns them in
order, so a run against it scores 1 on every measure. Import what a test module needs:
``from gate_inputs import retriever_endpoint, write_goldset_files``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from pathlib import Path

from loopback import serving


def write_goldset_files(folder: Path, n_queries: int = 40) -> Path:
    """Write ``queries.jsonl`` and ``judgments.jsonl`` of an evalkit JSONL goldset."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "queries.jsonl").write_text(
        "".join(
            json.dumps({"id": f"q{q}", "text": f"question {q}"}) + "\n" for q in range(n_queries)
        )
    )
    (folder / "judgments.jsonl").write_text(
        "".join(
            json.dumps({"query_id": f"q{q}", "doc_id": f"rel{q}_{r}", "relevance": 1}) + "\n"
            for q in range(n_queries)
            for r in range(3)
        )
    )
    return folder


class PerfectRetriever(BaseHTTPRequestHandler):
    """An HTTP retriever answering query ``qN`` with ``relN_0..2``."""

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        number = str(body["query_id"])[1:]
        results = [{"id": f"rel{number}_{r}", "score": 1.0 - r / 10} for r in range(3)]
        payload = json.dumps({"results": results}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def retriever_endpoint(handler: type[BaseHTTPRequestHandler] = PerfectRetriever) -> Iterator[str]:
    """Serve ``handler`` on loopback for the block; yields its search URL."""
    with serving(handler) as url:
        yield f"{url}/search"
