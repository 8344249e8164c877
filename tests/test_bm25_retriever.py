"""The built-in ``bm25`` retriever kind (bm25s): its index built from a corpus and saved to a
directory, loaded back, scored exactly as bm25s scores, SciFact's published nDCG@10
reproduced, and ``evalkit index --kind bm25`` / ``evalkit run --retriever bm25`` end to end
on a real store."""

from __future__ import annotations

import json
from pathlib import Path

import bm25s
import numpy as np
import pandas as pd
import pytest
import Stemmer
from conftest import REPO_ROOT

from evalkit.cli import invoke
from evalkit.config import Settings, load_settings
from evalkit.errors import ConfigError, InputError
from evalkit.goldset import iter_corpus, load_goldset
from evalkit.metrics import Evaluator
from evalkit.records import Document, Query
from evalkit.retrievers import RetrieverOptions, build_retriever
from evalkit.retrievers.bm25 import Bm25Retriever
from evalkit.retrievers.bm25_index import (
    BM25_METHODS,
    MANIFEST,
    Bm25Parameters,
    build_bm25_index,
    load_bm25_index,
)
from evalkit.store import Store
from evalkit.store.runs import get_run, run_results

DEMO = REPO_ROOT / "goldsets" / "demo"

# BEIR SciFact test, nDCG@10 of BM25: the BEIR paper's Lucene BM25 (Elasticsearch, title and
# text) and bm25s's own benchmark (xhluca/bm25-benchmarks, method lucene, k1 1.2, b 0.75,
# English stopwords and Snowball stemmer), both rounded to three places. docs/retrievers.md
# says why the two differ and what the tolerances allow for.
BEIR_PUBLISHED = 0.665
BM25S_PUBLISHED = 0.680
MEASURED = 0.6791
TOLERANCE_BEIR = 0.02
TOLERANCE_BM25S = 0.005


NO_CORPUS = (
    "holds no documents: neither corpus.jsonl (a BEIR corpus) nor a document file (.htm, .html, "
    ".markdown, .md, .rst, .txt; subfolders included) was found in it"
)


def write_corpus(path: Path, documents: list[dict[str, str]]) -> Path:
    path.write_text("".join(json.dumps(document) + "\n" for document in documents))
    return path


SMALL = [
    {"id": "d10", "title": "Rotating keys", "text": "Rotate an API key from the console."},
    {"id": "d2", "title": "Billing", "text": "Invoices are sent monthly; billing questions."},
    {"id": "b", "title": "Shipping", "text": "Parcels ship within two days of the order."},
    {"id": "a", "title": "Shipping", "text": "Parcels ship within two days of the order."},
    {"id": "ü-1", "title": "", "text": "Keys, keys and more keys: rotating them often helps."},
]


@pytest.fixture
def small_index(tmp_path: Path) -> Path:
    corpus = write_corpus(tmp_path / "corpus.jsonl", SMALL)
    build_bm25_index(iter_corpus(corpus), tmp_path / "index")
    return tmp_path / "index"


def test_a_small_corpus_is_indexed_and_searched(small_index: Path) -> None:
    with Bm25Retriever.open(small_index) as retriever:
        [keys, shipping, nothing] = retriever.retrieve(
            [
                Query(id="q1", text="How do I rotate a key?"),
                Query(id="q2", text="when do parcels ship"),
                Query(id="q3", text="the of and"),  # stopwords only
            ],
            10,
        )
        # Stemming makes "rotate" match "Rotating" and "rotating", "key" match "keys".
        assert {doc.doc_id for doc in keys.docs} == {"d10", "ü-1"}
        assert [doc.rank for doc in keys.docs] == [1, 2]
        assert keys.docs[0].score >= keys.docs[1].score > 0
        assert keys.error is None
        assert keys.latency_ms >= 0
        # Two identical documents tie: the higher doc id comes first, as trec_eval ranks them.
        assert [doc.doc_id for doc in shipping.docs] == ["b", "a"]
        assert shipping.docs[0].score == shipping.docs[1].score
        assert [doc.doc_id for doc in retriever.retrieve([Query("q", "parcels")], 1)[0].docs] == [
            "b"
        ]
        # A query with no indexed term returns nothing, and is not an error.
        assert nothing.docs == ()
        assert nothing.error is None
        described = retriever.describe()
        assert described["kind"] == "bm25"
        assert described["path"] == str(small_index.resolve())
        assert described["documents"] == 5
        assert (described["method"], described["k1"], described["b"]) == ("lucene", 1.2, 0.75)
        assert (described["stemmer"], described["stopwords"]) == ("english", "en")
        assert retriever.model_fingerprint() is None
        fingerprint = retriever.index_fingerprint()
        assert fingerprint is not None
        assert len(fingerprint) == 64
    with pytest.raises(ConfigError, match="k must be a positive integer"):
        Bm25Retriever.open(small_index).retrieve([Query("q", "keys")], 0)


def test_the_saved_index_loads_back_and_is_rebuilt_as_a_whole(
    small_index: Path, tmp_path: Path
) -> None:
    queries = [Query(id="q1", text="rotate keys"), Query(id="q2", text="billing invoices")]
    first = Bm25Retriever.open(small_index)
    second = Bm25Retriever(load_bm25_index(small_index))
    assert [r.docs for r in first.retrieve(queries, 5)] == [
        r.docs for r in second.retrieve(queries, 5)
    ]
    fingerprint = first.index_fingerprint()

    corpus = tmp_path / "corpus.jsonl"
    report = build_bm25_index(iter_corpus(corpus), small_index)
    assert report.replaced
    assert report.index_fingerprint == fingerprint  # same corpus, same parameters
    assert (report.documents, report.parameters["method"]) == (5, "lucene")

    changed = [*SMALL[:-1], {**SMALL[-1], "text": "Keys rotate weekly."}]
    write_corpus(corpus, changed)
    assert build_bm25_index(iter_corpus(corpus), small_index).index_fingerprint != fingerprint
    robertson = build_bm25_index(
        iter_corpus(corpus), tmp_path / "robertson", Bm25Parameters(method="robertson")
    )
    assert robertson.index_fingerprint not in (fingerprint, report.index_fingerprint)
    assert Bm25Retriever.open(tmp_path / "robertson").describe()["method"] == "robertson"
    # Nothing is left beside the index.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus.jsonl", "index", "robertson"]


def test_bad_indexes_and_corpora_are_refused_with_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"does not exist; build it with `evalkit index --kind"):
        load_bm25_index(tmp_path / "nosuch")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=rf"holds no evalkit bm25 index \({MANIFEST} is missing"):
        load_bm25_index(tmp_path / "empty")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    corpus = write_corpus(tmp_path / "corpus.jsonl", SMALL)
    with pytest.raises(ConfigError, match="holds files that are not an evalkit bm25 index"):
        build_bm25_index(iter_corpus(corpus), tmp_path / "other")
    assert (tmp_path / "other" / "notes.txt").read_text() == "mine"
    # Read from, that folder is named as one of other files, without suggesting a build
    # into it (which is refused, just above).
    with pytest.raises(ConfigError, match="is a folder of other files") as other:
        load_bm25_index(tmp_path / "other")
    assert "--out NEW_FOLDER" in str(other.value)
    built = build_bm25_index(iter_corpus(corpus), tmp_path / "built")
    assert built is not None
    with pytest.raises(ConfigError, match="is a file of the index; give its folder"):
        load_bm25_index(tmp_path / "built" / MANIFEST)
    with pytest.raises(InputError, match="holds no documents"):
        build_bm25_index([], tmp_path / "none")
    with pytest.raises(InputError, match="'a' appears more than once"):
        build_bm25_index(
            [Document(id="a", text="one"), Document(id="a", text="two")], tmp_path / "dup"
        )
    with pytest.raises(ConfigError, match=r"unknown bm25 method 'bm26'; use one of: robertson"):
        Bm25Parameters.from_options({"method": "bm26"})
    with pytest.raises(ConfigError, match="bm25 option b must be between 0 and 1"):
        Bm25Parameters.from_options({"b": "1.5"})
    with pytest.raises(ConfigError, match="unknown bm25 index option top"):
        Bm25Parameters.from_options({"top": 3})


def random_corpus(rng: np.random.Generator, n: int) -> list[Document]:
    words = [f"w{i:02d}x" for i in range(60)]
    # Zipf-like word frequencies give both common and rare terms.
    weights = 1.0 / np.arange(1, len(words) + 1)
    weights /= weights.sum()
    return [
        Document(
            id=f"doc{i:03d}",
            text=" ".join(rng.choice(words, size=int(rng.integers(3, 40)), p=weights)),
        )
        for i in range(n)
    ]


@pytest.mark.parametrize("method", BM25_METHODS)
def test_scores_are_the_ones_bm25s_gives(method: str, tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    documents = random_corpus(rng, 300)
    queries = [
        Query(id=f"q{i}", text=" ".join(rng.choice([f"w{j:02d}x" for j in range(60)], size=3)))
        for i in range(40)
    ]
    build_bm25_index(documents, tmp_path / "index", Bm25Parameters(method=method, k1=1.5))
    ours = Bm25Retriever.open(tmp_path / "index").retrieve(queries, 10)

    # bm25s called directly, as its README does it, on the corpus in its own order.
    stemmer = Stemmer.Stemmer("english")
    ids = [document.id for document in documents]
    model = bm25s.BM25(method=method, k1=1.5, b=0.75)
    model.index(
        bm25s.tokenize([d.text for d in documents], stemmer=stemmer, show_progress=False),
        show_progress=False,
    )
    tokens = bm25s.tokenize(
        [q.text for q in queries], stemmer=stemmer, return_ids=False, show_progress=False
    )
    top, top_scores = model.retrieve(tokens, corpus=ids, k=10, show_progress=False)
    for query, result, terms, their_top, their_scores in zip(
        queries, ours, tokens, top, top_scores, strict=True
    ):
        every = {
            doc_id: float(score) for doc_id, score in zip(ids, model.get_scores(terms), strict=True)
        }
        words = set(query.text.split())
        holding = {d.id for d in documents if words & set(d.text.split())}
        assert len(result.docs) == min(10, len(holding))
        for doc in result.docs:
            assert doc.doc_id in holding
            assert doc.score == every[doc.doc_id]
        # Best first, equal scores by doc id descending, and nothing left out ranks higher.
        keys = [(doc.score, doc.doc_id) for doc in result.docs]
        assert keys == sorted(keys, reverse=True)
        left_out = [(every[doc_id], doc_id) for doc_id in holding - {d.doc_id for d in result.docs}]
        assert all(key < keys[-1] for key in left_out)
        if set(their_top) <= holding:
            assert [doc.score for doc in result.docs] == [float(v) for v in their_scores]


@pytest.mark.shared_data
@pytest.mark.slow
def test_scifact_ndcg_at_10_is_the_published_bm25_figure(shared_data: Path, tmp_path: Path) -> None:
    root = shared_data / "beir_scifact"
    report = build_bm25_index(iter_corpus(root), tmp_path / "scifact")
    assert report.documents == 5183
    gold = load_goldset(root, format="beir", split="test")
    results = Bm25Retriever.open(tmp_path / "scifact").retrieve(gold.queries, 100)
    assert all(result.error is None for result in results)
    run = pd.DataFrame(
        [(r.query_id, d.doc_id, d.score) for r in results for d in r.docs],
        columns=["query_id", "doc_id", "score"],
    )
    figures = Evaluator(gold.judgments, ["ndcg@10"]).evaluate(run, complete=True).aggregate
    ndcg = figures["ndcg@10"]
    assert ndcg == pytest.approx(BM25S_PUBLISHED, abs=TOLERANCE_BM25S)
    assert ndcg == pytest.approx(BEIR_PUBLISHED, abs=TOLERANCE_BEIR)
    assert ndcg == pytest.approx(MEASURED, abs=5e-5)


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = invoke(list(args))
    captured = capsys.readouterr()
    return code, captured.out, " ".join(captured.err.split())


def test_indexing_a_folder_without_a_corpus_says_what_was_looked_for(
    evalkit_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "goldset"
    folder.mkdir()
    (folder / "queries.jsonl").write_text('{"id": "q1", "text": "t"}\n', encoding="utf-8")
    code, _, err = cli(
        capsys, "index", "--kind", "bm25", "--corpus", str(folder), "--out", str(tmp_path / "i")
    )
    assert code == 2
    assert err == f"error: {folder}: {NO_CORPUS}; there is nothing to index"
    assert not (tmp_path / "i").exists()


@pytest.mark.slow
def test_index_and_run_end_to_end_store_a_bm25_run(
    evalkit_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bm25-demo"
    code, said, _ = cli(
        capsys, "index", "--kind", "bm25", "--corpus", str(DEMO / "corpus.jsonl"),
        "--out", str(out), "--option", "k1=0.9", "--option", "b=0.4", "--format", "json",
    )  # fmt: skip
    assert code == 0
    report = json.loads(said)
    assert report["documents"] == 330
    assert report["parameters"] == {
        "method": "lucene", "k1": 0.9, "b": 0.4, "delta": 0.5,
        "stemmer": "english", "stopwords": "en",
    }  # fmt: skip
    assert cli(capsys, "goldset", "import", str(DEMO), "--name", "demo")[0] == 0
    code, said, err = cli(
        capsys, "run", "--goldset", "demo", "--retriever", "bm25",
        "--option", f"index={out}", "--option", "b=0.4", "--k", "20", "--format", "json",
    )  # fmt: skip
    assert code == 0, err
    ran = json.loads(said)
    assert ran["status"] == "complete"
    assert ran["aggregates"]["ndcg@10"] > 0.3
    assert ran["index_size"] == {"documents": 330, "vectors": 0}
    # A lexical index retrieves without vectors: no note that documents cannot be retrieved.
    assert "vector" not in err

    with Store.open(load_settings().resolved_store_path) as store:
        record = get_run(store, ran["run_id"])
        stored = run_results(store, ran["run_id"])
    assert record.spec.retriever_kind == "bm25"
    assert record.spec.index_fingerprint == report["index_fingerprint"]
    assert record.spec.model_fingerprint is None
    assert record.spec.retriever_config["path"] == str(out.resolve())
    assert record.retriever_id == f"bm25:{out.resolve()}"
    gold = load_goldset(DEMO, format="jsonl")
    direct = Bm25Retriever.open(out).retrieve(gold.queries, 20)
    expected = pd.DataFrame(
        [(r.query_id, d.rank, d.doc_id, d.score) for r in direct for d in r.docs],
        columns=["query_id", "rank", "doc_id", "score"],
    ).sort_values(["query_id", "rank"], ignore_index=True)
    pd.testing.assert_frame_equal(
        stored.reset_index(drop=True), expected, check_dtype=False, rtol=0, atol=0
    )


def test_the_retriever_table_names_a_bm25_index(
    evalkit_home: Path, small_index: Path, tmp_path: Path
) -> None:
    (tmp_path / "evalkit.toml").write_text(
        f'[retriever]\nkind = "bm25"\noptions = {{ index = {json.dumps(str(small_index))} }}\n'
    )
    settings = load_settings()
    retriever = build_retriever(RetrieverOptions(), settings)
    assert retriever.describe()["path"] == str(small_index.resolve())
    # --option replaces the table's options, as for a factory.
    with pytest.raises(ConfigError, match="needs its index directory"):
        build_retriever(RetrieverOptions(factory_options={"method": "lucene"}), settings)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--option", "method=bm26"],
            "unknown bm25 method 'bm26'; use one of: robertson, lucene, atire, bm25l, bm25+",
        ),
        (["--option", "index={nosuch}"], "does not exist; build it with `evalkit index --kind"),
        ([], "the bm25 retriever needs its index directory: --option index=DIR"),
        (["--option", "index={index}", "--option", "top=3"], "unknown bm25 option top"),
        (
            ["--option", "index={index}", "--option", "k1=2"],
            "was built with k1 1.2, not k1 2: BM25 weights are fixed when the index is built",
        ),
        (["--option", "index"], "--option 'index' is not KEY=VALUE"),
        (
            ["--option", "index={index}", "--where-key", "tenant"],
            "the bm25 retriever cannot filter by tenant",
        ),
    ],
    ids=["method", "no-index-dir", "no-index-option", "unknown", "k1-differs", "not-kv", "tenant"],
)
def test_bad_run_options_exit_2_saying_what_is_wrong(
    evalkit_home: Path,
    small_index: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    assert cli(capsys, "goldset", "import", str(DEMO), "--name", "demo")[0] == 0
    filled = [a.format(index=small_index, nosuch=tmp_path / "nosuch") for a in args]
    code, _, err = cli(capsys, "run", "--goldset", "demo", "--retriever", "bm25", *filled)
    assert code == 2
    assert message in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--kind", "bm25", "--out", "{out}", "--option", "method=bm26"], "unknown bm25 method"),
        (["--kind", "bm25"], "name the directory to write the bm25 index to: --out DIR"),
        (
            ["--kind", "bm25", "--out", "{out}", "--collection", "demo"],
            "--collection is for a Chroma index",
        ),
        (["--out", "{out}"], "--out and --option are for --kind bm25"),
        (["--kind", "bm26"], "Invalid value for '--kind'"),
    ],
    ids=["method", "no-out", "collection", "out-for-chroma", "kind"],
)
def test_bad_index_options_exit_2(
    evalkit_home: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    filled = [a.format(out=tmp_path / "out") for a in args]
    code, _, err = cli(capsys, "index", "--corpus", str(DEMO / "corpus.jsonl"), *filled)
    assert code == 2
    assert message in err
    assert not (tmp_path / "out").exists()


def test_options_for_a_kind_that_takes_none_are_refused(
    evalkit_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ConfigError, match=r"the http retriever takes no options \(index given\)"):
        build_retriever(
            RetrieverOptions(http_url="http://127.0.0.1:9", factory_options={"index": "x"}),
            Settings(),
        )
