"""End to end through the CLI against real retrievers: embedded Chroma, a `chroma run`
server on loopback, and an HTTP endpoint that fails some queries."""

from __future__ import annotations

import json
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from chroma_server import ChromaServer, chroma_server_fixture  # noqa: F401
from loopback import serving

from evalkit.cli import invoke
from evalkit.embedding import load_embedder
from evalkit.goldset import load_goldset
from evalkit.metrics import Evaluator, parse_measures
from evalkit.retrievers import open_chroma_client
from evalkit.store import Store
from evalkit.store.runs import run_results

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "goldsets" / "demo"

NO_CORPUS = (
    "holds no documents: neither corpus.jsonl (a BEIR corpus) nor a document file (.htm, .html, "
    ".markdown, .md, .rst, .txt; subfolders included) was found in it"
)


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = invoke(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def cli_json(capsys: pytest.CaptureFixture[str], *args: str, expect: int = 0) -> dict:
    output = [] if "-o" in args else ["--format", "json"]
    code, out, err = cli(capsys, *args, *output)
    assert code == expect, err
    return json.loads(out)


def exact_search_ndcg(collection: object, depth: int = 10) -> float:
    """nDCG@10 of exact brute-force cosine search over the collection's own vectors."""
    stored = collection.get(include=["embeddings"])  # type: ignore[attr-defined]
    doc_ids = np.asarray(stored["ids"])
    vectors = np.asarray(stored["embeddings"], dtype=np.float32)
    goldset = load_goldset(DEMO, name="demo")
    queries = load_embedder().embed([q.text for q in goldset.queries])
    scores = queries @ vectors.T
    top = np.argsort(-scores, axis=1)[:, :depth]
    run = pd.DataFrame(
        {
            "query_id": np.repeat([q.id for q in goldset.queries], depth),
            "doc_id": doc_ids[top].ravel(),
            "score": np.take_along_axis(scores, top, axis=1).ravel(),
        }
    )
    evaluator = Evaluator(list(goldset.judgments), parse_measures(["ndcg@10"]))
    return evaluator.evaluate(run, complete=True).aggregate["ndcg@10"]


@pytest.fixture(scope="module")
def demo_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("demo-home")


def test_demo_flow_embedded_chroma(
    demo_home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EVALKIT_HOME", str(demo_home))
    imported = cli_json(capsys, "goldset", "import", str(DEMO), "--name", "demo", "-o", "json")
    assert imported["queries"] == 129

    first = cli_json(
        capsys, "index", "--corpus", str(DEMO / "corpus.jsonl"), "--collection", "demo"
    )
    assert (first["added"], first["updated"], first["total"]) == (330, 0, 330)
    again = cli_json(
        capsys, "index", "--corpus", str(DEMO / "corpus.jsonl"), "--collection", "demo"
    )
    assert (again["added"], again["updated"], again["unchanged"]) == (0, 0, 330)
    assert again["index_fingerprint"] == first["index_fingerprint"]

    run = cli_json(capsys, "run", "--goldset", "demo", "--collection", "demo", "--k", "100")
    assert run["status"] == "complete"
    assert run["n_evaluated"] == 129
    assert run["goldset_version"] == imported["version"]
    assert run["model"]["name"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert run["index_fingerprint"]
    for measure in ("ndcg@10", "recall@100", "map@100", "mrr@10", "hit_rate@10", "r_precision"):
        assert 0.0 < run["aggregates"][measure] <= 1.0

    # Chroma's HNSW answer agrees with exact search over the same vectors.
    from evalkit.retrievers.chroma_client import (
        contents_fingerprint,
        get_collection,
        open_chroma_client,
    )

    client = open_chroma_client(path=demo_home / "chroma")
    collection = get_collection(client, "demo")
    exact = exact_search_ndcg(collection)
    assert run["aggregates"]["ndcg@10"] == pytest.approx(exact, abs=0.01)
    # The run records what the collection holds (evalkit's own fingerprint among it).
    assert run["index_fingerprint"] == contents_fingerprint(collection)

    # The stored run, exported as a TREC file and scored by `evalkit score`, gives the
    # same figures: store, export and scorer agree.
    shown = cli_json(capsys, "runs", "show", run["run_id"][:12], "--per-query")
    assert shown["aggregates"] == run["aggregates"]
    assert len(shown["per_query"]) == 129
    trec_run = demo_home / "run.trec"
    code, _, _ = cli(capsys, "runs", "export", run["run_id"], "--trec", str(trec_run))
    assert code == 0
    qrels = demo_home / "qrels.txt"
    goldset = load_goldset(DEMO, name="demo")
    qrels.write_text(
        "".join(f"{j.query_id} 0 {j.doc_id} {j.relevance}\n" for j in goldset.judgments)
    )
    scored = cli_json(
        capsys,
        "score",
        "--qrels",
        str(qrels),
        "--run",
        str(trec_run),
        "-m",
        "ndcg@10",
        "-m",
        "recall@100",
        "--complete",
    )
    assert scored["aggregate"]["ndcg@10"] == pytest.approx(run["aggregates"]["ndcg@10"], abs=1e-9)
    assert scored["aggregate"]["recall@100"] == pytest.approx(
        run["aggregates"]["recall@100"], abs=1e-9
    )
    listed = cli_json(capsys, "runs", "list", "--goldset", "demo")
    assert [r["run_id"] for r in listed] == [run["run_id"]]


def test_demo_flow_against_a_chroma_server(
    chroma_server: ChromaServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EVALKIT_HOME", str(tmp_path / "home"))
    url = chroma_server.url
    cli_json(capsys, "goldset", "import", str(DEMO), "--name", "demo", "-o", "json")
    indexed = cli_json(
        capsys,
        "index",
        "--corpus",
        str(DEMO / "corpus.jsonl"),
        "--collection",
        "demo-srv",
        "--chroma-url",
        url,
    )
    assert indexed["added"] == 330
    run = cli_json(
        capsys,
        "run",
        "--goldset",
        "demo",
        "--collection",
        "demo-srv",
        "--chroma-url",
        url,
        "--k",
        "20",
        "-m",
        "ndcg@10",
        "-m",
        "recall@20",
    )
    assert run["status"] == "complete"
    assert run["retriever"] == "chroma-http"
    assert 0.5 < run["aggregates"]["ndcg@10"] < 1.0

    code, _, err = cli(
        capsys, "run", "--goldset", "demo", "--collection", "missing", "--chroma-url", url
    )
    assert code == 2  # a collection the user named that is not there: bad input
    assert "demo-srv" in err  # the error lists the collections that do exist


class _Handler(BaseHTTPRequestHandler):
    """A retriever endpoint: ranks two fixed documents; always fails query q3."""

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if body["query_id"] == "q3":
            self.send_response(500)
            self.end_headers()
            return
        payload = json.dumps({"results": [{"id": "a", "score": 0.9}, {"id": "b", "score": 0.5}]})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(payload.encode())

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def http_endpoint() -> Iterator[str]:
    with serving(_Handler) as url:
        yield f"{url}/search"


def test_http_retriever_failing_some_queries_gives_a_partial_run(
    http_endpoint: str,
    tmp_path: Path,
    evalkit_home: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder = tmp_path / "gs"
    folder.mkdir()
    (folder / "queries.jsonl").write_text(
        "".join(json.dumps({"id": f"q{i}", "text": f"question {i}"}) + "\n" for i in range(1, 5))
    )
    (folder / "judgments.jsonl").write_text(
        "".join(
            json.dumps({"query_id": f"q{i}", "doc_id": "a", "relevance": 1}) + "\n"
            for i in range(1, 5)
        )
    )
    cli(capsys, "goldset", "import", str(folder), "--name", "g")
    run = cli_json(
        capsys,
        "run",
        "--goldset",
        "g",
        "--http-retriever",
        http_endpoint,
        "--k",
        "10",
        "-m",
        "mrr",
        expect=3,
    )
    assert run["status"] == "partial"
    assert run["n_failed"] == 1
    assert run["n_evaluated"] == 3
    assert run["aggregates"] == {"mrr": 1.0}
    assert "500" in run["error"]


def test_a_corpus_refused_at_its_end_leaves_no_collection(
    evalkit_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A document repeated at the end of the corpus was found after 5 batches were written:
    exit 2, and a collection of the documents before it that runs then searched."""
    lines = (DEMO / "corpus.jsonl").read_text(encoding="utf-8").splitlines()
    corpus = evalkit_home.parent / "corpus.jsonl"
    corpus.write_text("\n".join([*lines, lines[0]]) + "\n", encoding="utf-8")
    code, _, err = cli(capsys, "index", "--corpus", str(corpus), "--collection", "twice")
    assert code == 2
    assert f"corpus.jsonl:{len(lines) + 1} field 'id'" in err
    assert "appears more than once" in err
    assert "`--format json`" in err
    client = open_chroma_client(path=evalkit_home / "chroma")
    assert "twice" not in {c.name for c in client.list_collections()}


def test_a_folder_without_a_corpus_says_what_was_looked_for(
    evalkit_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = evalkit_home.parent / "goldset"
    folder.mkdir()
    (folder / "queries.jsonl").write_text('{"id": "q1", "text": "t"}\n', encoding="utf-8")
    code, _, err = cli(capsys, "index", "--corpus", str(folder), "--collection", "none")
    assert code == 2
    assert " ".join(err.split()) == f"error: {folder}: {NO_CORPUS}; there is nothing to index"


def test_a_run_on_a_collection_whose_indexing_was_stopped_says_it_is_partial(
    evalkit_home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C (or kill -9) in the middle of `evalkit index` left a collection of the
    documents written so far, which later runs searched as if it were the corpus and stored
    as `complete` with no word: a retrieval regression that was only half an index."""
    from evalkit.retrievers import indexing

    write = indexing._write
    calls = []

    def stopped_on_the_third_batch(*args: object, **kwargs: object) -> None:
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        write(*args, **kwargs)  # type: ignore[arg-type]

    assert cli(capsys, "goldset", "import", str(DEMO), "--name", "demo")[0] == 0
    index = ["index", "--corpus", str(DEMO / "corpus.jsonl"), "--collection", "half"]
    with monkeypatch.context() as patched:
        patched.setattr(indexing, "_write", stopped_on_the_third_batch)
        code, _, err = cli(capsys, *index)
    assert code == 130, err
    run = ["run", "--goldset", "demo", "--collection", "half", "--k", "10"]
    partial = cli_json(capsys, *run)
    assert partial["status"] == "complete"
    assert partial["retriever_config"]["unfinished_indexing"]
    code, _, err = cli(capsys, *run)
    assert code == 0
    assert "warning: collection half was partly indexed: an `evalkit index` that started at" in (
        " ".join(err.split())
    )
    code, out, _ = cli(capsys, "runs", "show", partial["run_id"])
    assert "partly indexed" in out

    finished = cli_json(capsys, *index)
    assert finished["total"] == 330
    whole = cli_json(capsys, *run)
    assert "unfinished_indexing" not in whole["retriever_config"]
    assert whole["aggregates"]["ndcg@10"] > partial["aggregates"]["ndcg@10"]
    code, _, err = cli(capsys, *run)
    assert "partly indexed" not in err
    unchanged = cli_json(capsys, *index)
    assert unchanged["unchanged"] == 330
    client = open_chroma_client(path=evalkit_home / "chroma")
    assert "evalkit_indexing_started" not in (client.get_collection("half").metadata or {})


def test_two_runs_on_a_collection_evalkit_indexed_store_the_same_results(
    evalkit_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Chroma saves an embedded collection's search graph every 1,000 records written and
    inserts the records written since anew, in no fixed order, at each opening: the demo's
    330 documents made another graph, and other candidates at ef_search 10, for every run."""
    (evalkit_home.parent / "evalkit.toml").write_text(
        "[retriever.chroma]\nef_search = 10\n", encoding="utf-8"
    )
    assert cli(capsys, "goldset", "import", str(DEMO), "--name", "demo")[0] == 0
    indexed = cli_json(
        capsys, "index", "--corpus", str(DEMO / "corpus.jsonl"), "--collection", "demo"
    )
    assert indexed["added"] == 330
    run = ["run", "--goldset", "demo", "--collection", "demo", "--k", "10"]
    first, second = cli_json(capsys, *run), cli_json(capsys, *run)
    assert first["retriever_config"]["ef_search"] == 10
    with Store.open(evalkit_home / "evalkit.duckdb") as store:
        first_docs, second_docs = (
            run_results(store, done["run_id"])[["query_id", "rank", "doc_id"]]
            for done in (first, second)
        )
    assert len(first_docs) == 1290
    pd.testing.assert_frame_equal(first_docs, second_docs)
    assert second["aggregates"] == first["aggregates"]
    client = open_chroma_client(path=evalkit_home / "chroma")
    # The collection's own sync_threshold is back: later writes are saved as often as before.
    assert client.get_collection("demo").configuration_json["hnsw"]["sync_threshold"] == 1000
