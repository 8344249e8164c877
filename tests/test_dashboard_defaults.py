"""The dashboard's defaults and its visual language, on a store with a planted regression.

``seed_story_store`` indexes a small corpus into a real embedded Chroma collection, replays
the goldset through evalkit's own pipeline, deletes three relevant documents from the
collection behind evalkit's back (as an outside process would), replays it again, and lets a
real audit find them missing; beside that, a steady HTTP series, drift checks (the newest
one ok, an older one drifting), an alert, two traffic windows and an answer scoring. The
tests here open pages with Streamlit's AppTest and check the figures and charts the pages
build; ``test_dashboard_defaults_browser`` serves the same store to Chromium.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import pytest
from test_dashboard_pages import frame_with, metrics, open_page, use_store  # noqa: F401
from test_dashboard_seed import (
    HTTP_URL,
    _seed_answers,
    _seed_traffic,
    document_text,
    goldset,
    perfect,
    query_ids,
    store_run,
)

from evalkit.causes import previous_run
from evalkit.clock import utc_now
from evalkit.dashboard import charts, formats
from evalkit.embedding import ModelFingerprint
from evalkit.goldset.model import Goldset
from evalkit.records import Document
from evalkit.records.audit import AuditReport, CheckOutcome
from evalkit.store import Store
from evalkit.store.audit import save_audit
from evalkit.store.goldsets import save_goldset
from evalkit.store.runs import get_run

N_TOPICS = 14
DELETED = tuple(f"{q}-b" for q in query_ids(7))
"""Relevant documents deleted from the Chroma collection between the two replays: half
the queries lose their grade-1 document."""
DIMENSION = N_TOPICS + 2
ANGLES = {"a": 0.2, "b": 0.5, "n": 0.8}
"""How far each judged document of a topic lies from its query: grade 2, grade 1, then the
judged non-relevant one, in that order for the retriever."""
STEADY = f"http:{HTTP_URL}"


class TopicEmbedder:
    """A query about topic NN to the unit vector of dimension NN; a document of the topic
    at its angle (``ANGLES``) from it, so that the collection ranks a > b > n for it."""

    name = "topic-model"
    dimension = DIMENSION

    @property
    def fingerprint(self) -> ModelFingerprint:
        return ModelFingerprint(self.name, DIMENSION, "topic-model-v1")

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        return np.asarray([self._vector(text) for text in texts], dtype=np.float32)

    def _vector(self, text: str) -> npt.NDArray[np.float64]:
        vector = np.zeros(DIMENSION)
        query = re.search(r"topic (\d+)", text)
        document = re.search(r"q(\d+)-([abn])", text)
        if document is not None:
            angle = ANGLES[document.group(2)]
            vector[int(document.group(1)) - 1] = np.cos(angle)
            vector[N_TOPICS] = np.sin(angle)
        elif query is not None:
            vector[int(query.group(1)) - 1] = 1.0
        else:
            vector[N_TOPICS + 1] = 1.0
        return vector / np.linalg.norm(vector)


@dataclass(frozen=True)
class StoryStore:
    """The store with a planted regression, and the ids the tests look for."""

    path: Path
    baseline: str
    candidate: str
    steady: tuple[str, str]
    audit: str
    drifting_check: str
    newest_check: str
    alert: str
    alert_at: pd.Timestamp
    traffic_run: str


def _documents() -> list[Document]:
    return [
        Document(id=f"{q}-{suffix}", text=document_text(f"{q}-{suffix}"))
        for q in query_ids(N_TOPICS)
        for suffix in "abn"
    ] + [Document(id=f"x{i}", text=f"filler document number {i}") for i in range(8)]


def _delete_out_of_band(chroma: Path, doc_ids: Sequence[str]) -> None:
    """Delete documents with chromadb itself, as a process other than evalkit would."""
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    client = chromadb.PersistentClient(
        path=str(chroma), settings=ChromaSettings(anonymized_telemetry=False)
    )
    try:
        collection = client.get_collection("mini", embedding_function=None)
        before = collection.count()
        collection.delete(ids=list(doc_ids))
        assert collection.count() == before - len(doc_ids)
    finally:
        client.close()


def _replay(store: Store, chroma: Path, embedder: TopicEmbedder) -> str:
    from evalkit.pipeline import evaluate_goldset
    from evalkit.records.requests import GoldsetRunRequest
    from evalkit.retrievers import ChromaRetriever

    with ChromaRetriever.embedded(chroma, "mini", embedder) as retriever:
        outcome = evaluate_goldset(
            store, goldset(N_TOPICS), retriever, GoldsetRunRequest(k=10, answers=False)
        )
    return outcome.run.run_id


def seed_story_store(directory: Path) -> StoryStore:
    """Write the store with the planted regression under ``directory`` (see the module)."""
    from evalkit.audit import AuditConfig
    from evalkit.config import parse_settings
    from evalkit.pipeline.audit import audit_collection
    from evalkit.records.drift import DriftCheck
    from evalkit.retrievers.chroma_client import close_client, open_chroma_client
    from evalkit.retrievers.indexing import index_corpus
    from evalkit.store.alerts import StoredAlert, StoredAlertState, save_alert
    from evalkit.store.drift import save_drift_check
    from evalkit.store.goldsets import save_goldset

    directory.mkdir(parents=True, exist_ok=True)
    chroma = directory / "chroma"
    embedder = TopicEmbedder()
    client = open_chroma_client(path=chroma)
    try:
        index_corpus(client, _documents(), embedder, collection_name="mini")
    finally:
        close_client(client)
    gold = goldset(N_TOPICS)
    with Store.open(directory / "evalkit.duckdb") as store:
        save_goldset(store, gold)
        steady = tuple(_perfect_http_run(store, gold) for _ in range(2))
        baseline = _replay(store, chroma, embedder)
        drifting = save_drift_check(
            store,
            DriftCheck(
                stream="queries",
                subject="mini",
                finding="drift",
                method="ks",
                is_drift=True,
                reference="2026-11-19",
                current="2026-11-20",
                statistic=0.71,
                p_value=2e-6,
                threshold=0.05,
            ),
        ).check_id
        _delete_out_of_band(chroma, DELETED)
        candidate = _replay(store, chroma, embedder)
        settings = parse_settings({"home": str(directory)}, directory / "evalkit.toml")
        audit = audit_collection(
            store,
            "mini",
            settings=settings,
            config=AuditConfig(checks=("orphans",)),
            embedder=None,
            goldset="mini",
        ).audit_id
        assert audit is not None
        newest = save_drift_check(
            store,
            DriftCheck(
                stream="documents",
                subject="mini",
                finding="ok",
                method="mmd",
                is_drift=False,
                statistic=0.02,
                p_value=0.41,
                threshold=0.05,
            ),
        ).check_id
        fired = get_run(store, candidate).started_at + timedelta(milliseconds=1500)
        alert = StoredAlert(
            alert_id="20261125T064500-story01",
            rule="precision-drop",
            kind="precision_regression",
            dedup_key="precision-drop:mini",
            subject="mini",
            status="firing",
            severity="critical",
            title="ndcg@10 regressed on mini",
            summary="ndcg@10 dropped",
            evidence={"measure": "ndcg@10", "candidate_run": candidate, "baseline_run": baseline},
            links={},
            fired_at=fired,
            created_at=fired,
            n_sinks=0,
        )
        save_alert(
            store,
            alert,
            state=StoredAlertState(
                dedup_key=alert.dedup_key,
                rule=alert.rule,
                subject=alert.subject,
                active=True,
                severity="critical",
                since=fired,
                last_evaluated_at=fired,
                notified_status="firing",
                last_alert_id=alert.alert_id,
            ),
            sinks=[],
        )
        traffic = _seed_traffic(store, directory / "traffic.jsonl")
        _seed_answers(store, baseline)
        _seed_answers(store, traffic[1])
    return StoryStore(
        path=directory / "evalkit.duckdb",
        baseline=baseline,
        candidate=candidate,
        steady=(steady[0], steady[1]),
        audit=audit,
        drifting_check=drifting,
        newest_check=newest,
        alert=alert.alert_id,
        alert_at=pd.Timestamp(fired),
        traffic_run=traffic[1],
    )


_SHARED: dict[str, StoryStore] = {}


def shared_story_store(factory: pytest.TempPathFactory) -> StoryStore:
    """The planted-regression store, written once per test session (no test writes to it)."""
    if "store" not in _SHARED:
        _SHARED["store"] = seed_story_store(factory.getbasetemp() / "dashboard-story")
    return _SHARED["store"]


@pytest.fixture
def story(tmp_path_factory: pytest.TempPathFactory) -> StoryStore:
    """The shared planted-regression store."""
    return shared_story_store(tmp_path_factory)


def test_the_planted_deletion_is_a_regression_explain_traces_to_the_audit(
    story: StoryStore,
) -> None:
    from evalkit.causes import explain_runs
    from evalkit.records.requests import PairedTestSettings

    with Store.open(story.path, read_only=True) as store:
        before, after = get_run(store, story.baseline), get_run(store, story.candidate)
        assert previous_run(store, after).run_id == story.baseline
        explanation = explain_runs(store, story.candidate, test=PairedTestSettings(resamples=200))
    assert before.aggregates["ndcg@10"] == pytest.approx(1.0)
    assert after.aggregates["ndcg@10"] < 1.0
    assert before.spec.index_fingerprint != after.spec.index_fingerprint
    assert explanation.top is not None
    assert explanation.top.kind == "missing_from_index"
    assert explanation.top.score == pytest.approx(1.0)


def test_compare_opens_on_the_worst_series_against_the_baseline_it_regressed_from(
    story: StoryStore,
    use_store: Callable[[Path], None],  # noqa: F811
) -> None:
    use_store(story.path)
    app = open_page("compare")
    assert app.query_params["candidate"] == story.candidate
    assert app.query_params["baseline"] == story.baseline
    assert app.query_params["goldset"] == "mini"
    assert any("the Overview reports as regressed" in c.value for c in app.caption)
    table = frame_with(app, "p_permutation").set_index("measure")
    assert table.loc["ndcg@10", "decision"] == "regression"
    first = frame_with(app, "lost").iloc[0]
    assert first["lost"] == "q01-b"
    assert first["query_id"].endswith(f"&baseline={story.baseline}&query=q01")


def test_compare_refuses_a_run_with_itself_and_a_traffic_run(
    story: StoryStore,
    use_store: Callable[[Path], None],  # noqa: F811
) -> None:
    use_store(story.path)
    app = open_page("compare", baseline=story.candidate, candidate=story.candidate)
    assert any("same run" in w.value for w in app.warning)
    assert not app.metric
    app = open_page_allowing_errors("compare", candidate=story.traffic_run)
    said = " ".join(e.value for e in app.error)
    assert f"(?candidate={story.traffic_run})" in said
    assert "has no goldset" in said
    assert "does not exist" not in said


def open_page_allowing_errors(page: str, **params: str):  # type: ignore[no-untyped-def]
    """``open_page`` for a page expected to show an error message (never an exception)."""
    from streamlit.testing.v1 import AppTest
    from test_dashboard_pages import APP, TIMEOUT

    app = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    for name, value in params.items():
        app.query_params[name] = value
    app.switch_page(f"views/{page}.py").run()
    assert not app.exception, [e.value for e in app.exception]
    return app


def _perfect_http_run(store: Store, gold: Goldset, **settings: Any) -> str:
    """A stored run of an HTTP retriever ranking every query perfectly; its id."""
    return store_run(
        store,
        gold,
        {q: perfect(q) for q in query_ids(N_TOPICS)},
        retriever_kind="http",
        config={"kind": "http", "url": HTTP_URL},
        collection=None,
        model_fingerprint="fp-1",
        index_fingerprint=None,
        **settings,
    )


@pytest.mark.slow
def test_a_one_run_series_is_not_compared_with_itself(
    tmp_path: Path,
    use_store: Callable[[Path], None],  # noqa: F811
) -> None:
    from evalkit.store.goldsets import save_goldset

    path = tmp_path / "evalkit.duckdb"
    with Store.open(path) as store:
        gold = goldset(N_TOPICS)
        save_goldset(store, gold)
        only = _perfect_http_run(store, gold)
    use_store(path)
    app = open_page("compare")
    said = " ".join(i.value for i in app.info)
    assert f"run {only} is the only finished run" in said
    assert "compared with itself" in said
    assert not app.metric
    assert not app.dataframe
    # Nor on the Overview: a series of one run is new, not a pass with a change of 0.
    app = open_page("overview")
    shown = metrics(app)
    assert (shown["new"][0], shown["pass"][0]) == ("1", "0")
    row = frame_with(app, "compare").iloc[0]
    assert pd.isna(row["delta"])
    assert frame_with(app, "decision").iloc[0]["status"] == "new"
    figures = frame_with(app, "ndcg@10 latest")
    assert figures.filter(like="delta").isna().all(axis=None)
    # Quality over time links no run to a comparison with itself.
    app = open_page("quality", goldset="mini", measure="ndcg@10")
    assert frame_with(app, "ci_low")["compare"].isna().all()
    [card] = app.metric
    assert card.proto.delta == ""
    assert "the baseline: no later run yet" in card.proto.delta_description
    # The Leaderboard says what would give it two runs to rank.
    app = open_page("leaderboard")
    assert any("has 1 finished run" in i.value for i in app.info)
    # Alerts: nothing was ever raised, which is not "nothing is firing".
    app = open_page("alerts")
    said = " ".join(c.value for c in app.caption)
    assert "No alert has been raised yet. `evalkit alerts evaluate`" in said
    assert "No condition is firing" not in said
    assert "No job has run yet: `evalkit serve`" in said


def test_query_drill_down_opens_on_the_worst_query_with_its_diff(
    story: StoryStore,
    use_store: Callable[[Path], None],  # noqa: F811
) -> None:
    use_store(story.path)
    app = open_page("query")
    assert app.query_params["run"] == story.candidate
    assert app.query_params["baseline"] == story.baseline
    assert app.query_params["query"] == "q01"
    lost = [m.value for m in app.markdown if m.value.startswith("- **q01-b**")]
    assert lost == [
        f"- **q01-b** (grade 1, baseline rank 2): missing from the index per audit "
        f"{story.audit} (orphaned_judgments) ([Index health](./index_health?collection=mini"
        f"&audit={story.audit}&finding=orphaned_judgments))"
    ]
    before = frame_with(app, "candidate_rank").set_index("doc_id")
    after = frame_with(app, "baseline_rank").set_index("doc_id")
    assert before.loc["q01-b", "grade"] == 1
    assert pd.isna(before.loc["q01-b", "candidate_rank"])
    assert before.loc["q01-a", "relevant"] == "✓"
    assert "q01-b" not in after.index
    assert after.loc["q01-a", "baseline_rank"] == 1
    assert after.loc["q01-n", "grade"] == 0


def test_drift_opens_on_the_newest_drifting_check_and_colours_series_alike(
    story: StoryStore,
    use_store: Callable[[Path], None],  # noqa: F811
) -> None:
    use_store(story.path)
    app = open_page("drift")
    assert app.query_params["check"] == story.drifting_check
    statistic, p_value = (json.loads(c.proto.spec) for c in app.get("plotly_chart")[:2])
    assert series_colours_of(statistic) == series_colours_of(p_value)
    assert len(set(series_colours_of(statistic).values())) == 2
    crosses = [t for t in p_value["data"] if t["name"].startswith("drift ")]
    assert {t["marker"]["color"] for t in crosses} == {charts.BAD}
    assert charts.BAD not in series_colours_of(statistic).values()
    thresholds = [t for t in p_value["data"] if t["name"].startswith("threshold ")]
    assert {y for t in thresholds for y in t["y"]} == {0.05}
    assert {t["line"]["color"] for t in thresholds} == {charts.BAD}


def series_colours_of(figure: dict[str, object]) -> dict[str, str]:
    """Series name -> line colour of a figure's JSON (its lines, not its markers of drift)."""
    return {
        str(trace["name"]): str(trace["line"]["color"])
        for trace in figure["data"]  # type: ignore[attr-defined]
        if "line" in trace
        and "color" in trace["line"]
        and trace.get("mode") != "markers"
        and not str(trace["name"]).startswith("threshold ")
    }


def test_quality_draws_the_alert_at_its_exact_time_and_by_run_index(
    story: StoryStore,
    use_store: Callable[[Path], None],  # noqa: F811
) -> None:
    use_store(story.path)
    app = open_page("quality", goldset="mini", measure="ndcg@10")
    figure = json.loads(app.get("plotly_chart")[0].proto.spec)
    (marker,) = [t for t in figure["data"] if t["name"] == "event: alert"]
    (line,) = [t for t in figure["data"] if t["name"] == "event line: alert"]
    assert pd.Timestamp(marker["x"][0]) == story.alert_at
    assert pd.Timestamp(line["x"][0]) == pd.Timestamp(line["x"][1]) == story.alert_at
    runs = [t for t in figure["data"] if t.get("mode") == "lines+markers"]
    assert all(t["marker"]["size"] >= 9 for t in runs)
    app = open_page("quality", goldset="mini", measure="ndcg@10", x="run index")
    figure = json.loads(app.get("plotly_chart")[0].proto.spec)
    drawn = sorted(x for t in figure["data"] if t.get("mode") == "lines+markers" for x in t["x"])
    assert drawn == [1.0, 2.0, 3.0, 4.0]
    (marker,) = [t for t in figure["data"] if t["name"] == "event: alert"]
    assert marker["x"] == [4.5]  # after the candidate, the fourth run, before any other


def test_overview_card_shows_the_cause_and_the_worst_queries(
    story: StoryStore,
    use_store: Callable[[Path], None],  # noqa: F811
) -> None:
    use_store(story.path)
    app = open_page("overview")
    badges = [b.proto.body for b in app.get("badge")] if app.get("badge") else []
    text = " ".join([*map(str, badges), *(c.value for c in app.caption)])
    assert "Probable cause" in text
    links = [link.proto.label for link in app.get("page_link")]
    assert "Index health: the audit's findings" in links
    worst = [label for label in links if re.match(r"q0\d ", label)]
    assert [label.split(" ")[0] for label in worst] == ["q01", "q02", "q03"]
    ranked = frame_with(app, "trend")
    trend = ranked.set_index("retriever")["trend"]
    assert charts.STATUS_COLOURS["regression"].encode() in _svg(trend["chroma-embedded:mini"])
    assert charts.BAD.encode() not in _svg(trend[STEADY])


def _svg(url: str) -> bytes:
    import base64

    return base64.b64decode(url.split(",", 1)[1])


def test_formats_for_people() -> None:
    assert formats.fmt_p(1.5e-6) == "< 0.001"
    assert formats.fmt_p(0.0123) == "0.012"
    assert formats.fmt_p(None) == formats.DASH
    assert formats.plural(1, "day") == "1 day"
    assert formats.plural(2, "day") == "2 days"
    assert formats.plural(1_000, "query", "queries") == "1,000 queries"
    assert formats.fmt(None) == formats.DASH
    assert formats.column_format("relevance").kind == "grade"
    assert formats.column_format("n_evaluated").kind == "count"
    assert formats.column_format("p_value").kind == "p"
    assert formats.column_format("ndcg@10 delta").label == "ndcg@10 delta"
    assert formats.column_format("latency_p50").label == "Replay latency p50"
    assert formats.column_format("logged_latency_p50").label == "Production latency p50"


def test_one_colour_per_series_and_no_red_among_them() -> None:
    names = [f"series {i}" for i in range(30)]
    colours = charts.series_colours(names)
    assert colours == charts.series_colours(reversed(names))
    assert not {charts.BAD, charts.WARNING} & set(charts.PALETTE)
    assert len(set(charts.PALETTE)) == len(charts.PALETTE)


def test_answers_are_drawn_on_the_traffic_day(
    story: StoryStore,
    use_store: Callable[[Path], None],  # noqa: F811
) -> None:
    from evalkit.dashboard.loaders.answers import answers

    with Store.open(story.path, read_only=True) as store:
        series = answers(store).series
    replayed = series[series["run_id"] == story.traffic_run]
    assert set(replayed["answered_from"]) == {"traffic window"}
    assert set(replayed["answered_on"]) == {pd.Timestamp("2026-11-20")}
    scored = series[series["run_id"] == story.baseline]
    assert set(scored["answered_from"]) == {"scored"}
    use_store(story.path)
    app = open_page("answers")
    figure = json.loads(app.get("plotly_chart")[0].proto.spec)
    days = {pd.Timestamp(x).normalize() for trace in figure["data"] for x in trace["x"]}
    assert pd.Timestamp("2026-11-20") in days


def test_reference_lines_and_log_axes_of_window_charts() -> None:
    frame = pd.DataFrame(
        {"window_label": ["2026-11-19", "2026-11-20"], "latency_p50": [2.6, 2.7]}
        | {"logged_latency_p50": [213.0, 220.0], "low_confidence_share": [0.1, 0.3]}
    )
    latency = charts.lines_chart(
        frame,
        x="window_label",
        columns=["latency_p50", "logged_latency_p50"],
        title="latency",
        y_title="ms",
        names={"latency_p50": "replay latency p50", "logged_latency_p50": "production p50"},
        log_y=True,
    )
    assert latency.layout.yaxis.type == "log"
    assert latency.layout.xaxis.type == "category"
    assert [t.name for t in latency.data] == ["replay latency p50", "production p50"]
    shares = charts.lines_chart(
        frame,
        x="window_label",
        columns=["low_confidence_share"],
        title="shares",
        y_title="share",
        references=[(0.2, "alert low-confidence")],
    )
    (line,) = shares.layout.shapes
    assert (line.y0, line.y1, line.line.color) == (0.2, 0.2, charts.BAD)


def _columns(app, column: str) -> dict[str, dict[str, object]]:  # type: ignore[no-untyped-def]
    """The column settings (header, format, width) of the first table having ``column``."""
    for element in app.dataframe:
        if column in element.value.columns:
            assert element.proto.placeholder == formats.DASH
            return dict(json.loads(element.proto.columns))
    raise AssertionError(f"no dataframe with column {column!r}")


@pytest.mark.slow
def test_tables_have_human_headers_formats_and_say_which_interval(
    story: StoryStore,
    use_store: Callable[[Path], None],  # noqa: F811
) -> None:
    use_store(story.path)
    overview = _columns(open_page("overview"), "ci_low")
    assert overview["ci_low"]["label"] == "95% CI low (paired t)"
    assert overview["p_adjusted"]["type_config"]["format"] == "%.2e"
    assert overview["n_runs"]["type_config"]["format"] == "%d"
    assert overview["history"] == {"hidden": True}
    compare = _columns(open_page("compare"), "p_permutation")
    assert compare["ci_low"]["label"] == "95% CI low (bootstrap)"
    assert compare["p_permutation"]["label"] == "p (permutation)"
    assert compare["p_permutation"]["type_config"]["format"] == "%.2e"
    app = open_page("query", goldset="mini", run=story.candidate, query="q01")
    results = _columns(app, "evaluated_rank")
    assert results["relevance"]["label"] == "Grade"
    assert results["relevance"]["type_config"]["format"] == "%d"
    assert results["doc_id"]["width"] >= len("Document") * 8
    app = open_page("compare", goldset="mini", baseline=story.baseline, candidate=story.candidate)
    assert "Evidence (7 rows)" in [e.label for e in app.expander]
    # The query drift planted between the runs: a note, as a goldset's queries stay the same.
    (note,) = [box.value for box in app.info if "drift check of the queries" in box.value]
    assert note.startswith(
        f"1 drift check of the queries between the runs found drift; newest {story.drifting_check}"
    )


def test_a_chart_of_one_moment_spans_a_day_either_side() -> None:
    """Plotly spans a few milliseconds around a lone moment and labels the axis with them."""
    moment = pd.Timestamp("2026-11-26 17:11:59")
    history = pd.DataFrame({"measured_at": [moment], "name": ["duplicate_share"], "value": [0.1]})
    figure = charts.measurements_chart(history, title="audit")
    day = pd.Timedelta(days=1)
    assert [pd.Timestamp(x) for x in figure.layout.xaxis.range] == [moment - day, moment + day]
    history = pd.concat([history, history.assign(measured_at=moment + day)])
    assert charts.measurements_chart(history, title="audit").layout.xaxis.range is None


def test_the_threshold_of_one_drift_check_spans_the_axis() -> None:
    """With one check, the red significance line ran from its time to the same time."""
    moment = pd.Timestamp("2026-11-26 17:39:00")
    checks = pd.DataFrame(
        {
            "check_id": ["c1"],
            "created_at": [moment],
            "stream": ["documents"],
            "subject": ["demo"],
            "method": ["mmd"],
            "finding": ["ok"],
            "is_drift": [False],
            "statistic": [0.01],
            "p_value": [0.4],
            "threshold": [0.05],
        }
    )
    figure = charts.drift_chart(checks, value="p_value")
    (line,) = [trace for trace in figure.data if trace.name == "threshold documents"]
    day = pd.Timedelta(days=1)
    assert [pd.Timestamp(x) for x in line.x] == [moment - day, moment + day]
    assert [pd.Timestamp(x) for x in figure.layout.xaxis.range] == [moment - day, moment + day]


def test_the_p_value_chart_joins_checks_of_one_method_only() -> None:
    """Two mmd checks and a ks check of the queries were drawn as one line, read as one
    detector's p-value falling."""
    moments = pd.date_range("2026-11-26 10:00", periods=3, freq="h")
    checks = pd.DataFrame(
        {
            "check_id": ["c1", "c2", "c3"],
            "created_at": moments,
            "stream": ["queries"] * 3,
            "subject": ["demo"] * 3,
            "method": ["mmd", "mmd", "ks"],
            "finding": ["ok", "ok", "drift"],
            "is_drift": [False, False, True],
            "statistic": [0.01, 0.02, 0.3],
            "p_value": [0.4, 0.3, 0.001],
            "threshold": [0.05] * 3,
        }
    )
    figure = charts.drift_chart(checks, value="p_value")
    lines = {trace.name: list(trace.y) for trace in figure.data if trace.mode != "markers"}
    assert lines["queries / demo (mmd)"] == [0.4, 0.3]
    assert lines["queries / demo (ks)"] == [0.001]
    dashes = {trace.line.dash for trace in figure.data if trace.name.startswith("queries / ")}
    assert len(dashes) == 2


def test_index_health_says_which_checks_an_audit_did_not_run(
    tmp_path: Path,
    use_store: Callable[[Path], None],  # noqa: F811
) -> None:
    """An audit without --source never looked at staleness: "found nothing" was read as
    "nothing is stale"."""
    path = tmp_path / "evalkit.duckdb"
    now = utc_now()
    with Store.open(path) as store:
        save_goldset(store, goldset(N_TOPICS))
        save_audit(
            store,
            AuditReport(
                collection="mini",
                location="/x/chroma",
                started_at=now,
                finished_at=now,
                n_documents=40,
                checks=(
                    CheckOutcome("duplicates", True, {"documents": 40.0}),
                    CheckOutcome("staleness", False, note="no source corpus given (--source)"),
                ),
                config={},
                seed=0,
                goldset_name="mini",
            ),
        )
    use_store(path)
    app = open_page("index_health")
    [warning] = app.warning
    # Markdown-escaped as users' data is: the browser shows "staleness: no source ...".
    assert warning.value.startswith("Not checked by this audit: staleness\\: no source corpus")
    assert [s.value for s in app.success] == ["The checks this audit ran found nothing."]


def test_a_change_of_k_is_an_event_of_quality_over_time(
    tmp_path: Path,
    use_store: Callable[[Path], None],  # noqa: F811
) -> None:
    """Probable causes send a changed k to Quality over time "whose events mark the
    change": they marked goldset, model and index changes only."""
    path = tmp_path / "evalkit.duckdb"
    with Store.open(path) as store:
        gold = goldset(N_TOPICS)
        save_goldset(store, gold)
        for k in (10, 5):
            later = _perfect_http_run(store, gold, k=k, measures=("ndcg@5",))
    use_store(path)
    app = open_page("quality", goldset="mini", measure="ndcg@5")
    events = frame_with(app, "description")
    assert list(events["kind"]) == ["k"]
    assert events.iloc[0]["description"] == f"k 10 -> 5 (run {later})"
    figure = json.loads(app.get("plotly_chart")[0].proto.spec)
    assert [t["name"] for t in figure["data"] if t["name"].startswith("event: ")] == ["event: k"]
