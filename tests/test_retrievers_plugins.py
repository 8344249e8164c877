"""The user's own retriever: ``--retriever module:factory``, ``[retriever] factory`` and
plug-in packages (entry-point group ``evalkit.retrievers``), replayed by real ``evalkit``
processes on the demo goldset, and every way a factory can be wrong."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from query_log import logged_query, write_query_log

from evalkit.cli import invoke
from evalkit.config import Settings, load_settings, parse_settings
from evalkit.errors import ConfigError, RetrieverError
from evalkit.records import Query, QueryResult, ScoredDoc
from evalkit.redaction import redact_known
from evalkit.retrievers import PluginRetriever, RetrieverOptions, build_retriever
from evalkit.retrievers.langchain import LangChainRetriever
from evalkit.retrievers.llamaindex import LlamaIndexRetriever
from evalkit.retrievers.plugins import FactorySource, adapt_retriever
from evalkit.scheduler import JobRunner, service_config
from evalkit.store import Store
from evalkit.store.access import StoreAccess
from evalkit.store.runs import get_run, list_runs

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "goldsets" / "demo"

# A search service's evalkit hook: a factory over evalkit's own Chroma index of the demo
# corpus, whose figures must equal the Chroma run's exactly, and a model-free one that ranks
# each query's judged documents perfectly but fails every n-th query.
USER_MODULE = '''
"""A search service's evalkit hook."""

from evalkit.config import load_settings
from evalkit.embedding import LazyEmbedder
from evalkit.goldset import load_goldset
from evalkit.records import QueryResult
from evalkit.retrievers import ChromaRetriever
from evalkit.retrievers.base import ranked_docs


def make(collection="demo"):
    settings = load_settings()
    return ChromaRetriever.embedded(
        settings.resolved_chroma_path, collection, LazyEmbedder(settings.model_path)
    )


class Flaky:
    """Only retrieve(): evalkit cannot fingerprint the model of what it does not call."""

    def __init__(self, goldset, every):
        self.ranked = {}
        for judgment in sorted(load_goldset(goldset, name="demo").judgments,
                               key=lambda judgment: -judgment.relevance):
            if judgment.relevance > 0:
                self.ranked.setdefault(judgment.query_id, []).append(judgment)
        self.every = every

    def retrieve(self, queries, k):
        results = []
        for query in queries:
            if int(query.id.lstrip("q")) % self.every == 0:
                results.append(QueryResult(query_id=query.id, docs=(), latency_ms=1.0,
                                           error="TimeoutError: shard 3 did not answer"))
                continue
            judged = self.ranked.get(query.id, [])[:k]
            docs = ranked_docs([j.doc_id for j in judged], [j.relevance for j in judged])
            results.append(QueryResult(query_id=query.id, docs=docs, latency_ms=1.0))
        return results


def make_flaky(goldset, every=5, api_key=None):
    return Flaky(goldset, every)
'''


@dataclass(frozen=True)
class Demo:
    root: Path
    home: Path
    chroma_run_id: str
    chroma_ndcg: float
    n_queries: int


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    """The demo goldset imported and indexed into embedded Chroma, and its Chroma run."""
    root = tmp_path_factory.mktemp("plugins")
    home = root / "home"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EVALKIT_HOME", str(home))
        patch.delenv("EVALKIT_CONFIG", raising=False)
        patch.delenv("EVALKIT_CHROMA_URL", raising=False)
        patch.chdir(root)
        assert invoke(["goldset", "import", str(DEMO), "--name", "demo", "-o", "json"]) == 0
        corpus = str(DEMO / "corpus.jsonl")
        assert (
            invoke(["index", "--corpus", corpus, "--collection", "demo", "--format", "json"]) == 0
        )
        assert invoke(["run", "--goldset", "demo", "--collection", "demo", "--format", "json"]) == 0
        store_path = load_settings().resolved_store_path
    with Store.open(store_path, read_only=True) as store:
        (run,) = list_runs(store, goldset="demo")
    ndcg = run.aggregates["ndcg@10"]
    assert ndcg is not None
    assert ndcg > 0.3
    return Demo(
        root=root, home=home, chroma_run_id=run.run_id, chroma_ndcg=ndcg, n_queries=run.n_queries
    )


@dataclass
class Project:
    """A directory holding the user's module, where ``evalkit`` subprocesses run."""

    cwd: Path
    env: dict[str, str]

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "evalkit", *args],
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    def json(self, *args: str, expect: int = 0) -> dict[str, Any]:
        done = self(*args, "--format", "json")
        assert done.returncode == expect, done.stderr
        result: dict[str, Any] = json.loads(done.stdout)
        return result


def project_env(home: Path, *, pythonpath: Sequence[Path] = ()) -> dict[str, str]:
    env = {
        **os.environ,
        "EVALKIT_HOME": str(home),
        "PYTHONPATH": os.pathsep.join(str(path) for path in (REPO, *pythonpath)),
    }
    for name in ("EVALKIT_CONFIG", "EVALKIT_CHROMA_URL", "EVALKIT_CHROMA_PATH"):
        env.pop(name, None)
    return env


@pytest.fixture
def project(demo: Demo, tmp_path: Path) -> Project:
    (tmp_path / "mysearch.py").write_text(USER_MODULE)
    return Project(cwd=tmp_path, env=project_env(demo.home))


# -- run and gate replay the user's factory ------------------------------------------------


def test_run_replays_a_module_factory_with_the_chroma_runs_figures(
    demo: Demo, project: Project
) -> None:
    run = project.json("run", "--goldset", "demo", "--retriever", "mysearch:make")
    assert run["status"] == "complete"
    assert run["n_evaluated"] == demo.n_queries
    assert run["aggregates"]["ndcg@10"] == demo.chroma_ndcg
    assert run["retriever"] == "factory"
    config = run["retriever_config"]
    assert config["factory"] == "mysearch:make"
    assert config["class"] == "evalkit.retrievers.chroma.ChromaRetriever"
    assert config["adapter"] == "chroma-embedded"
    assert run["collection"] == "demo"
    # A factory returning evalkit's Chroma retriever keeps its model check and fingerprint.
    assert run["model"]["name"] == "sentence-transformers/all-MiniLM-L6-v2"


def test_gate_replays_a_module_factory_as_its_live_candidate(demo: Demo, project: Project) -> None:
    done = project(
        "gate",
        "--baseline",
        demo.chroma_run_id,
        "--goldset",
        "demo",
        "--retriever",
        "mysearch:make",
        "-m",
        "ndcg@10",
        "--resamples",
        "1000",
        "--format",
        "json",
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["decision"] == "pass"
    assert report["metrics"]["ndcg@10"]["delta"] == 0.0
    assert report["metrics"]["ndcg@10"]["n"] == demo.n_queries


def test_a_factory_from_the_retriever_table_whose_queries_partly_fail_gives_a_partial_run(
    demo: Demo, tmp_path: Path
) -> None:
    # The module sits beside evalkit.toml, not in the directory evalkit runs in.
    config_dir = tmp_path / "service"
    config_dir.mkdir()
    (config_dir / "flakysearch.py").write_text(USER_MODULE)
    (config_dir / "evalkit.toml").write_text(
        textwrap.dedent(
            """
            [retriever]
            factory = "flakysearch:make_flaky"
            options = {{ goldset = "{DEMO}", every = 4, api_key = "sk-live-0123456789" }}
            """
        ).format(DEMO=DEMO)
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**project_env(demo.home), "EVALKIT_CONFIG": str(config_dir / "evalkit.toml")}
    done = Project(cwd=elsewhere, env=env)("run", "--goldset", "demo")
    assert done.returncode == 3, done.stderr
    failed = sum(1 for n in range(1, demo.n_queries + 1) if n % 4 == 0)
    assert f"{demo.n_queries - failed} evaluated of {demo.n_queries}, {failed} failed" in (
        done.stdout
    )
    assert "partial" in done.stdout
    assert "shard 3 did not answer" in done.stdout
    # What the factory returned has no model_fingerprint(): the run says so.
    assert "not fingerprinted (the retriever encodes queries itself, or does not embed)" in (
        done.stdout
    )
    assert "flakysearch:make_flaky returning flakysearch.Flaky" in done.stdout
    assert "sk-live-0123456789" not in done.stdout + done.stderr
    with Store.open(load_store_path(demo.home), read_only=True) as store:
        (run,) = list_runs(store, status="partial")
    assert run.n_failed == failed
    assert run.spec.model_name is None
    options = run.spec.retriever_config["options"]
    assert options == {"goldset": str(DEMO), "every": 4, "api_key": "***"}
    assert run.aggregates["ndcg@10"] == pytest.approx(1.0)  # the answered queries only


def load_store_path(home: Path) -> Path:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EVALKIT_HOME", str(home))
        return load_settings().resolved_store_path


# -- a plug-in package --------------------------------------------------------------------

PLUGIN_PACKAGE = '''
"""A vector store's evalkit plug-in (here: evalkit's own Chroma index of the demo)."""

from evalkit.config import load_settings
from evalkit.embedding import LazyEmbedder
from evalkit.retrievers import ChromaRetriever


def make_retriever(collection="demo"):
    settings = load_settings()
    return ChromaRetriever.embedded(
        settings.resolved_chroma_path, collection, LazyEmbedder(settings.model_path)
    )
'''


@pytest.fixture
def plugin_site(demo: Demo, tmp_path: Path) -> Project:
    """An installed distribution declaring two retriever plug-ins, ``demostore`` and one
    that clashes with the built-in ``chroma``; importlib.metadata finds it on PYTHONPATH."""
    site = tmp_path / "site"
    package = site / "demostore_plugin"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(PLUGIN_PACKAGE)
    info = site / "demostore_plugin-0.3.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: demostore-plugin\nVersion: 0.3.0\n"
    )
    (info / "entry_points.txt").write_text(
        "[evalkit.retrievers]\n"
        "demostore = demostore_plugin:make_retriever\n"
        "chroma = demostore_plugin:make_retriever\n"
    )
    (info / "RECORD").write_text("")
    cwd = tmp_path / "work"
    cwd.mkdir()
    return Project(cwd=cwd, env=project_env(demo.home, pythonpath=[site]))


def test_an_installed_plug_in_is_replayed_by_its_name(demo: Demo, plugin_site: Project) -> None:
    run = plugin_site.json("run", "--goldset", "demo", "--retriever", "demostore")
    assert run["status"] == "complete"
    assert run["aggregates"]["ndcg@10"] == demo.chroma_ndcg
    assert run["retriever"] == "demostore"
    config = run["retriever_config"]
    assert config["plugin"] == "demostore"
    assert config["distribution"] == "demostore-plugin 0.3.0"
    assert config["factory"] == "demostore_plugin:make_retriever"


def test_unknown_kinds_list_the_built_in_and_installed_ones(plugin_site: Project) -> None:
    done = plugin_site("run", "--goldset", "demo", "--retriever", "nope")
    assert done.returncode == 2
    assert "unknown retriever kind 'nope'" in done.stderr
    assert "built-in kinds: bm25, chroma, http" in done.stderr
    assert "installed plug-ins (entry-point group evalkit.retrievers): chroma, demostore" in (
        done.stderr
    )


def test_a_built_in_kind_wins_over_a_plug_in_of_the_same_name(plugin_site: Project) -> None:
    done = plugin_site("run", "--goldset", "demo", "--retriever", "chroma")
    # The built-in Chroma kind was built: it asks for its collection (the plug-in would not).
    assert done.returncode == 2
    assert "name the Chroma collection" in done.stderr
    assert "the retriever plug-in 'chroma' of demostore-plugin 0.3.0" in done.stderr
    assert "is not used" in done.stderr


# -- every way a factory can be wrong ------------------------------------------------------

BROKEN = {
    "import_fails": "import no_such_dependency_xyz\n",
    "raises_on_import": "raise RuntimeError('the index config is missing')\n",
    "no_attribute": "def other():\n    return None\n",
    "not_callable": "make = 'chroma'\n",
    "factory_raises": "def make(**options):\n    raise ValueError(f'no index named {options}')\n",
    "returns_a_dict": "def make():\n    return {'docs': []}\n",
    "raises_retriever_error": (
        "from evalkit.errors import RetrieverError\n"
        "def make():\n    raise RetrieverError('search.internal:9200 refused the connection')\n"
    ),
}


@pytest.mark.parametrize(
    ("case", "spec", "code", "expected"),
    [
        (
            "import_fails",
            "{module}:make",
            2,
            [
                "retriever factory '{module}:make'",
                "module '{module}'",
                "attribute 'make'",
                "ModuleNotFoundError: No module named 'no_such_dependency_xyz'",
            ],
        ),
        ("missing", "no_such_module_abc:make", 2, ["cannot import module 'no_such_module_abc'"]),
        (
            "raises_on_import",
            "{module}:make",
            2,
            ["cannot import module '{module}'", "RuntimeError: the index config is missing"],
        ),
        (
            "no_attribute",
            "{module}:make",
            2,
            ["module '{module}' has no attribute 'make'"],
        ),
        ("not_callable", "{module}:make", 2, ["is a str, not a function", "must be a callable"]),
        (
            "factory_raises",
            "{module}:make",
            2,
            ["attribute 'make'", "raised ValueError: no index named {{}}"],
        ),
        (
            "returns_a_dict",
            "{module}:make",
            2,
            [
                "returned builtins.dict, which is not a retriever",
                "it must return an evalkit Retriever",
                "langchain_core.retrievers.BaseRetriever",
            ],
        ),
        (
            "raises_retriever_error",
            "{module}:make",
            3,
            ["retriever factory '{module}:make'", "search.internal:9200 refused the connection"],
        ),
        ("not_a_spec", "{module}:", 2, ["is not module:attribute"]),
    ],
)
def test_a_broken_factory_is_refused_naming_module_attribute_and_what_it_must_return(
    demo: Demo,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    case: str,
    spec: str,
    code: int,
    expected: list[str],
) -> None:
    module = f"broken_{case}_{tmp_path.name.replace('-', '_')}"
    if case in BROKEN:
        (tmp_path / f"{module}.py").write_text(BROKEN[case])
    monkeypatch.setenv("EVALKIT_HOME", str(demo.home))
    monkeypatch.delenv("EVALKIT_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    exit_code = invoke(["run", "--goldset", "demo", "--retriever", spec.format(module=module)])
    err = " ".join(capsys.readouterr().err.split())
    assert exit_code == code, err
    for part in expected:
        assert part.format(module=module) in err
    if case != "raises_retriever_error":  # the factory's own evalkit error keeps its text
        assert "an evalkit Retriever (an object with retrieve(queries, k)" in err
        assert "a langchain_core.retrievers.BaseRetriever or a llama_index.core" in err


# -- adapting what a factory returns -------------------------------------------------------


class _OnlyRetrieve:
    def retrieve(self, queries: Sequence[Query], k: int) -> list[QueryResult]:
        return [
            QueryResult(
                query_id=query.id,
                docs=(ScoredDoc(doc_id=f"{query.id}-doc", score=1.0, rank=1),),
                latency_ms=0.1,
            )
            for query in queries
        ]


def _source() -> FactorySource:
    return FactorySource(module="mymod", attribute="make")


@pytest.fixture
def settings(evalkit_home: Path) -> Settings:
    return load_settings()


def test_a_retriever_with_only_retrieve_is_filled_in(settings: Settings) -> None:
    made = _OnlyRetrieve()
    retriever = PluginRetriever(adapt_retriever(made, _source(), settings), made, _source(), {})
    (result,) = retriever.retrieve([Query(id="q1", text="x")], 5)
    assert result.docs[0].doc_id == "q1-doc"
    assert retriever.model_fingerprint() is None
    assert retriever.index_fingerprint() is None
    retriever.check()
    retriever.close()
    assert retriever.describe() == {
        "kind": "factory",
        "factory": "mymod:make",
        "class": f"{__name__}._OnlyRetrieve",
        "options": {},
    }


def test_a_langchain_retriever_is_wrapped_in_the_langchain_adapter(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from langchain_core.documents import Document
    from langchain_core.retrievers import BaseRetriever

    class Keyword(BaseRetriever):
        def _get_relevant_documents(self, query: str, *, run_manager: Any) -> list[Document]:
            return [Document(page_content=query, id="d1")]

    configured = settings.model_copy(
        update={
            "retriever": settings.retriever.model_copy(
                update={"id_key": "doc_id", "concurrency": 3}
            )
        }
    )
    adapted = adapt_retriever(Keyword(), _source(), configured)
    assert isinstance(adapted, LangChainRetriever)
    described = adapted.describe()
    assert (described["id_key"], described["concurrency"]) == ("doc_id", 3)
    assert described["retriever"].endswith("Keyword")
    # A where_key reaches the adapter, which refuses it for a retriever that cannot filter.
    with pytest.raises(ConfigError, match="cannot be told a query's tenant"):
        adapt_retriever(Keyword(), _source(), configured, where_key="tenant")


def test_a_llamaindex_retriever_is_wrapped_in_the_llamaindex_adapter(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from llama_index.core.base.base_retriever import BaseRetriever
    from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

    class Fixed(BaseRetriever):
        def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
            return [NodeWithScore(node=TextNode(text="x", id_="n1"), score=1.0)]

    # LlamaIndex retrievers have a retrieve() of their own: they must not pass as evalkit's.
    adapted = adapt_retriever(Fixed(), _source(), settings)
    assert isinstance(adapted, LlamaIndexRetriever)
    described = adapted.describe()
    assert (described["id_key"], described["concurrency"]) == (None, 8)
    assert [doc.doc_id for doc in adapted.retrieve([Query("q", "x")], 5)[0].docs] == ["n1"]


def test_a_langchain_factory_is_replayed_through_the_real_adapter(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = f"lc_hook_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{module}.py").write_text(
        textwrap.dedent(
            """
            from langchain_core.documents import Document
            from langchain_core.retrievers import BaseRetriever

            class Echo(BaseRetriever):
                def _get_relevant_documents(self, query, *, run_manager):
                    return [Document(page_content=query, id=f"doc-{query}")]

            def make():
                return Echo()
            """
        )
    )
    monkeypatch.chdir(tmp_path)
    retriever = build_retriever(RetrieverOptions(retriever=f"{module}:make"), settings)
    (result,) = retriever.retrieve([Query(id="q1", text="vacation")], 3)
    assert result.ok
    assert [doc.doc_id for doc in result.docs] == ["doc-vacation"]
    assert retriever.describe()["class"] == f"{module}.Echo"
    assert retriever.model_fingerprint() is None


def test_table_options_go_only_to_the_retriever_the_table_names(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = f"opts_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{module}.py").write_text(
        "class R:\n"
        "    def __init__(self, **options):\n        self.options = options\n"
        "    def retrieve(self, queries, k):\n        return []\n"
        "def make(**options):\n    return R(**options)\n"
    )
    monkeypatch.chdir(tmp_path)
    table = settings.retriever.model_copy(
        update={"factory": f"{module}:make", "options": {"index": "prod"}}
    )
    configured = settings.model_copy(update={"retriever": table})
    named = build_retriever(RetrieverOptions(), configured)
    assert isinstance(named, PluginRetriever)
    assert named.made.options == {"index": "prod"}  # type: ignore[attr-defined]
    same = build_retriever(RetrieverOptions(retriever=f"{module}:make"), configured)
    assert same.made.options == {"index": "prod"}  # type: ignore[attr-defined]
    other = build_retriever(RetrieverOptions(retriever=f"{module}:R"), configured)
    assert other.made.options == {}  # type: ignore[attr-defined]
    given = build_retriever(
        RetrieverOptions(retriever=f"{module}:make", factory_options={"index": "staging"}),
        configured,
    )
    assert given.made.options == {"index": "staging"}  # type: ignore[attr-defined]


# -- audit and the scheduler's jobs --------------------------------------------------------


def test_audit_refuses_a_retriever_it_cannot_read_and_says_what_to_run(
    evalkit_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert invoke(["audit", "--retriever", "mysearch:make"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "evalkit can read them from chroma, qdrant, pgvector" in err
    assert "evalkit run --retriever mysearch:make" in err
    (evalkit_home.parent / "evalkit.toml").write_text('[retriever]\nkind = "bm25"\n')
    assert invoke(["audit"]) == 2
    assert "the retriever 'bm25' is not one" in capsys.readouterr().err
    assert invoke(["audit", "--retriever", "pgvector", "--collection", "docs"]) == 2
    assert "a pgvector audit takes no --collection NAME" in capsys.readouterr().err


def test_a_scheduled_job_replays_a_factory_and_jobs_naming_none_use_the_retriever_table(
    demo: Demo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = f"job_hook_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{module}.py").write_text(USER_MODULE)
    monkeypatch.setenv("EVALKIT_HOME", str(demo.home))
    monkeypatch.delenv("EVALKIT_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    data = {
        "home": str(demo.home),
        "retriever": {
            "factory": f"{module}:make_flaky",
            "options": {"goldset": str(DEMO), "every": 1000},
        },
        "jobs": [
            {
                "name": "nightly-factory",
                "kind": "goldset_replay",
                "goldset": "demo",
                "retriever": f"{module}:make",
                "retriever_options": {"collection": "demo"},
            },
            {"name": "nightly-table", "kind": "goldset_replay", "goldset": "demo"},
        ],
    }
    settings = parse_settings(data, tmp_path / "evalkit.toml")
    config = service_config(settings)
    runner = JobRunner(
        config,
        settings=settings,
        session=StoreAccess(settings.resolved_store_path, wait=30, program="test"),
    )
    by_factory = runner.run("nightly-factory")
    by_table = runner.run("nightly-table")
    assert by_factory is not None
    assert by_table is not None
    assert by_factory.status == "succeeded", by_factory.error
    assert by_table.status == "succeeded", by_table.error
    with Store.open(settings.resolved_store_path, read_only=True) as store:
        factory_run = get_run(store, by_factory.summary["run_id"])
        table_run = get_run(store, by_table.summary["run_id"])
    assert factory_run.aggregates["ndcg@10"] == demo.chroma_ndcg
    assert factory_run.spec.retriever_config["factory"] == f"{module}:make"
    assert factory_run.spec.label == "nightly-factory"
    assert table_run.aggregates["ndcg@10"] == pytest.approx(1.0)
    assert table_run.spec.retriever_config["class"] == f"{module}.Flaky"
    assert table_run.spec.retriever_config["options"] == {"goldset": str(DEMO), "every": 1000}


def test_a_job_naming_no_retriever_without_a_retriever_table_is_refused_on_reading() -> None:
    data = {"jobs": [{"name": "nightly", "kind": "goldset_replay", "goldset": "demo"}]}
    with pytest.raises(ConfigError) as raised:
        service_config(parse_settings(data, Path("/srv/evalkit.toml")))
    message = str(raised.value)
    assert message.startswith("/srv/evalkit.toml: [[jobs]] #1 'nightly'")
    assert "name the retriever" in message
    sampling_only = {
        "jobs": [{"name": "sample", "kind": "traffic", "paths": ["logs"], "replay": False}]
    }
    assert service_config(parse_settings(sampling_only, Path("/srv/evalkit.toml"))).jobs


# -- traffic replay ------------------------------------------------------------------------

TENANT_MODULE = '''
from evalkit.records import QueryResult
from evalkit.retrievers.base import ranked_docs

DOCS = {"acme": ["acme-1", "acme-2"], "globex": ["globex-1"]}


class ByTenant:
    """Each tenant's own documents; says so with where_key, as a tenant filter must."""

    def __init__(self, filtered):
        self.filtered = filtered

    def retrieve(self, queries, k):
        return [
            QueryResult(
                query_id=query.id,
                docs=ranked_docs(found, [1.0 / rank for rank in range(1, len(found) + 1)]),
                latency_ms=1.0,
            )
            for query in queries
            for found in [
                (DOCS[query.tenant] if self.filtered else sum(DOCS.values(), []))[:k]
            ]
        ]

    def describe(self):
        return {"kind": "bytenant", "where_key": "tenant" if self.filtered else None}


def make(filtered=True):
    return ByTenant(filtered)
'''


def test_traffic_replay_replays_a_factory_and_keeps_tenants_apart(
    evalkit_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    module = f"tenant_hook_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{module}.py").write_text(TENANT_MODULE)
    logs = write_query_log(
        tmp_path,
        (
            logged_query(index, tenant=tenant, results=[f"{tenant}-1"])
            for index, tenant in enumerate(["acme", "acme", "globex", "globex"])
        ),
    )
    assert invoke(["traffic", "ingest", str(logs)]) == 0
    assert invoke(["traffic", "sample", "--window", "2026-11-21", "--n", "4"]) == 0
    capsys.readouterr()
    replay = ["traffic", "replay", "--window", "2026-11-21", "--embed-sample", "0"]
    blind = [*replay, "--retriever", f"{module}:make", "--no-answers"]
    # The [retriever] options reach the factory: unfiltered, it is refused for tenants' traffic.
    (tmp_path / "evalkit.toml").write_text(
        f'[retriever]\nfactory = "{module}:make"\noptions = {{ filtered = false }}\n'
    )
    assert invoke(blind) == 2
    assert "does not filter by tenant" in capsys.readouterr().err
    (tmp_path / "evalkit.toml").unlink()
    code = invoke([*blind, "--format", "json"])
    out, err = capsys.readouterr()
    assert code == 0, out + err
    data = json.loads(out)
    run = data["run"]
    assert run["status"] == "complete"
    assert run["retriever"] == "factory"
    assert run["retriever_config"]["class"] == f"{module}.ByTenant"
    with Store.open(load_settings().resolved_store_path, read_only=True) as store:
        from evalkit.store.runs import run_results

        results = run_results(store, run["run_id"])
    tenants_seen = results.groupby("query_id")["doc_id"].agg(
        lambda ids: {doc_id.split("-")[0] for doc_id in ids}
    )
    assert len(tenants_seen) == 4
    assert all(len(seen) == 1 for seen in tenants_seen), "a query saw another tenant's document"
    assert set().union(*tenants_seen) == {"acme", "globex"}


def test_secret_options_are_masked_in_errors_and_in_what_the_run_records(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = f"secret_hook_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{module}.py").write_text(
        "class R:\n"
        "    def retrieve(self, queries, k):\n        return []\n"
        "def make(dsn, token, conn='', fail=False):\n"
        "    if fail:\n"
        "        raise ConnectionError(f'cannot reach {dsn} or {conn} with {token}')\n"
        "    return R()\n"
    )
    monkeypatch.chdir(tmp_path)
    options = {
        "dsn": "postgresql://rag:hunter2secret@db.internal/rag",
        "token": "tok-abcdef123",
        # libpq's key=value form: configuration.md promises its password masked too
        "conn": "host=db.internal user=bob password=KvSecret777 port=5432",
    }
    table = settings.retriever.model_copy(update={"factory": f"{module}:make", "options": options})
    configured = settings.model_copy(update={"retriever": table})
    built = build_retriever(RetrieverOptions(), configured)
    assert built.describe()["options"] == {
        "dsn": "postgresql://db.internal/rag",
        "token": "***",
        "conn": "host=db.internal user=bob password=*** port=5432",
    }
    assert "KvSecret777" not in json.dumps(built.describe())
    with pytest.raises(RetrieverError) as raised:  # a ConnectionError: cannot be reached
        build_retriever(
            RetrieverOptions(retriever=f"{module}:make", factory_options={**options, "fail": True}),
            configured,
        )
    shown = redact_known(str(raised.value))
    assert "ConnectionError: cannot reach" in shown
    assert "hunter2secret" not in shown
    assert "tok-abcdef123" not in shown
    assert "KvSecret777" not in shown


def test_a_factory_retriever_is_checked_before_a_run_and_closed_when_the_check_fails(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = f"check_hook_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{module}.py").write_text(
        "from evalkit.errors import RetrieverError\n"
        "CLOSED = []\n"
        "class Down:\n"
        "    def retrieve(self, queries, k):\n        return []\n"
        "    def check(self):\n"
        "        raise RetrieverError('search.internal:9200 is not answering')\n"
        "    def close(self):\n        CLOSED.append(True)\n"
        "def make():\n    return Down()\n"
    )
    monkeypatch.chdir(tmp_path)
    with pytest.raises(RetrieverError, match="not answering"):
        build_retriever(RetrieverOptions(retriever=f"{module}:make"), settings)
    assert sys.modules[module].CLOSED == [True]
