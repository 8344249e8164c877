"""Slices end to end through the CLI, on real text against an embedded Chroma collection:
SciFact's claims as traffic for three days, then a day with Vaswani's physics queries mixed
in. The physics queries are found as a topic slice that grew, named by their terms, mostly
out of scope (a content gap) and queued for review; the days of SciFact alone flag nothing.
Then a goldset run's measures per tag equal the measures of each tag's queries alone."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_store_docs import ShuffledJudgments

from evalkit.cli import invoke
from evalkit.drift.slices import ALL, SlicedQuery, slice_changes, slice_figures
from evalkit.goldset import load_goldset
from evalkit.judging.window import mean_interval
from evalkit.metrics import Evaluator
from evalkit.pipeline import evaluate_goldset
from evalkit.records.requests import GoldsetRunRequest
from evalkit.store import Store
from evalkit.store.goldsets import save_goldset
from evalkit.store.review import list_items
from evalkit.store.runs import run_results

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
SCIFACT = SHARED / "beir_scifact"
VASWANI = SHARED / "vaswani_npl" / "tests" / "fixtures" / "vaswani_npl" / "query-text.trec"
DEMO = Path(__file__).resolve().parents[1] / "goldsets" / "demo"
DAYS = ("2026-11-02", "2026-11-03", "2026-11-04", "2026-11-05")
PER_DAY = 150
FOREIGN_SHARE = 0.3


def cli(capsys: pytest.CaptureFixture[str], *args: str, expect: int | None = 0) -> Any:
    capsys.readouterr()
    code = invoke([*args, "--format", "json"])
    captured = capsys.readouterr()
    if expect is not None:
        assert code == expect, captured.err + captured.out
    return json.loads(captured.out) if captured.out.strip() else None


def _scifact(tmp_path: Path) -> tuple[Path, list[str], list[str]]:
    """A BEIR folder of SciFact's test claims over the titles of their judged abstracts and
    1,000 others (titles: quick to embed), and the training claims for traffic."""
    test_qrels = (SCIFACT / "qrels" / "test.tsv").read_text().splitlines()
    judged = {line.split()[1] for line in test_qrels[1:]}
    rng = random.Random(0)
    corpus = [json.loads(line) for line in (SCIFACT / "corpus.jsonl").read_text().splitlines()]
    others = [d for d in corpus if d["_id"] not in judged]
    kept = [d for d in corpus if d["_id"] in judged] + rng.sample(others, 1000)
    folder = tmp_path / "scifact"
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text(
        "".join(json.dumps({"_id": d["_id"], "title": "", "text": d["title"]}) + "\n" for d in kept)
    )
    (folder / "qrels" / "test.tsv").write_text("\n".join(test_qrels) + "\n")
    queries = [json.loads(line) for line in (SCIFACT / "queries.jsonl").read_text().splitlines()]
    test_ids = {line.split()[0] for line in test_qrels[1:]}
    (folder / "queries.jsonl").write_text(
        "".join(json.dumps(q) + "\n" for q in queries if q["_id"] in test_ids)
    )
    train = [q["text"] for q in queries if q["_id"] not in test_ids]
    physics = re.findall(r"<title>\s*(.*?)\s*</title>", VASWANI.read_text(), re.DOTALL)
    return folder, train, [" ".join(text.split()).lower() for text in physics]


def _traffic(path: Path, claims: list[str], physics: list[str]) -> None:
    rng = random.Random(1)
    rng.shuffle(claims)
    lines = []
    for day_number, day in enumerate(DAYS):
        foreign = round(PER_DAY * FOREIGN_SHARE) if day == DAYS[-1] else 0
        texts = claims[day_number * PER_DAY : (day_number + 1) * PER_DAY - foreign]
        texts += rng.sample(physics, foreign)
        for n, text in enumerate(texts):
            tenant = "acme" if n % 2 else "globex"
            lines.append(
                {
                    "query_id": f"{day}-{n}",
                    "timestamp": f"{day}T{n % 24:02d}:{n % 60:02d}:00Z",
                    "text": text,
                    "tenant": tenant,
                    "tags": {"locale": "en" if n % 3 else "de"},
                }
            )
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))


@pytest.fixture(scope="module")
def sliced_store(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A store with the goldset run, four replayed days and each day's slices."""
    if not SCIFACT.is_dir():
        pytest.skip("../shared/data is not present")
    tmp = tmp_path_factory.mktemp("slices")
    monkey = pytest.MonkeyPatch()
    monkey.setenv("EVALKIT_HOME", str(tmp / "home"))
    monkey.delenv("EVALKIT_CONFIG", raising=False)
    monkey.delenv("EVALKIT_CHROMA_URL", raising=False)
    monkey.chdir(tmp)
    folder, claims, physics = _scifact(tmp)
    _traffic(tmp / "traffic.jsonl", claims, physics)

    def run(*args: str, expect: int | None = 0) -> Any:
        import contextlib
        import io

        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = invoke([*args, "--format", "json"])
        if expect is not None:
            assert code == expect, out.getvalue()[-2000:]
        return json.loads(out.getvalue()) if out.getvalue().strip() else None

    run("index", "--corpus", str(folder), "--collection", "scifact-titles")
    run(
        "run", "--goldset", str(folder), "--goldset-format", "beir",
        "--collection", "scifact-titles", "--k", "10",
    )  # fmt: skip
    run("traffic", "ingest", str(tmp / "traffic.jsonl"))
    slices = {}
    for day in DAYS:
        run("traffic", "sample", "--window", day, "--n", str(PER_DAY))
        replayed = run(
            "traffic", "replay", "--window", day, "--collection", "scifact-titles",
            "--estimate", "--no-tenant-isolation", "--slices",
        )  # fmt: skip
        slices[day] = replayed["slices"]
        # Sliced once more on its own: the stored figures are the replay's.
        assert (
            run("traffic", "slices", "--window", day, expect=None)["figures"]
            == (slices[day]["figures"])
        )
    yield {"home": tmp / "home", "slices": slices, "run": run, "tmp": tmp}
    monkey.undo()


@pytest.mark.slow
def test_the_first_day_fits_the_topics_and_its_own_queries_are_held_out(
    sliced_store: dict,
) -> None:
    first = sliced_store["slices"][DAYS[0]]
    topics = first["topics"]
    assert topics["reference_window"] == DAYS[0]
    assert 2 <= len(topics["topics"]) <= 40
    assert all(topic["terms"] for topic in topics["topics"])
    assert first["baseline_window"] == DAYS[0]
    figures = {f["slice"]: f for f in first["figures"]}
    # Each reference query measured against its topic without it: some fall outside, as
    # unseen claims do (measured against centroids they made, almost none would).
    assert 0 < figures["topic:outside"]["n_queries"] < 0.2 * figures["all"]["n_queries"]
    topic_shares = sum(f["share"] for name, f in figures.items() if name.startswith("topic:"))
    assert topic_shares == pytest.approx(1.0)


@pytest.mark.slow
def test_days_of_one_population_flag_no_slice(sliced_store: dict) -> None:
    for day in DAYS[1:3]:
        sliced = sliced_store["slices"][day]
        assert sliced["topics"]["version"] == sliced_store["slices"][DAYS[0]]["topics"]["version"]
        flagged = [c["slice"] for c in sliced["changes"] if c["grew"] or c["dropped"]]
        assert flagged == [], (day, flagged)
        assert sliced["content_gaps"] == []
        whole = sliced["figures"][0]
        assert whole["slice"] == ALL
        # The floor lets through 95 % of the goldset's answerable claims; traffic of the same
        # population is out of scope at about the rate of unanswerable claims, far from most.
        assert whole["out_of_scope_share"] < 0.3
        assert whole["precision"]["source"] == "estimate"


@pytest.mark.slow
def test_the_foreign_topic_is_found_named_out_of_scope_and_a_content_gap(
    sliced_store: dict,
) -> None:
    sliced = sliced_store["slices"][DAYS[-1]]
    figures = {f["slice"]: f for f in sliced["figures"]}
    gaps = sliced["content_gaps"]
    assert gaps, sliced["changes"][:3]
    gap = figures[gaps[0]]
    assert gap["out_of_scope_share"] >= 0.5
    terms = set(gap["details"]["window_terms"])
    physics_terms = {
        "electron", "electrons", "plasma", "magnetic", "field", "fields", "theory", "waves",
        "wave", "frequency", "circuits", "circuit", "energy", "nuclear", "ionosphere",
        "ionospheric", "scattering", "transistor",
    }  # fmt: skip
    assert terms & physics_terms, terms
    change = next(c for c in sliced["changes"] if c["slice"] == gaps[0])
    assert change["grew"]
    assert change["share_q"] <= 0.05
    # Nothing else: the planted slice (and the tenants and tags, drawn at random) only.
    others = [
        c["slice"]
        for c in sliced["changes"]
        if (c["grew"] or c["dropped"]) and c["slice"] not in gaps
    ]
    assert len(others) <= 1, others
    # The whole window's out-of-scope share grew with the foreign queries.
    assert (
        figures[ALL]["out_of_scope_share"]
        > sliced_store["slices"][DAYS[1]]["figures"][0]["out_of_scope_share"]
    )


@pytest.mark.slow
def test_gaps_go_to_the_review_queue_as_drafts_with_no_document(sliced_store: dict) -> None:
    run = sliced_store["run"]
    listed = run("traffic", "gaps", "--window", DAYS[-1], "--queue-for", "scifact")
    assert listed["gaps"]
    assert listed["queued"]["added"] >= 1
    with Store.open(sliced_store["home"] / "evalkit.duckdb", read_only=True) as store:
        items = list_items(store, goldset="scifact")
    gap_items = [item for item in items if "content-gap" in item.item.query.tags]
    assert gap_items
    assert all(item.item.documents == () for item in gap_items)
    assert all(item.item.reason.startswith("content gap") for item in gap_items)
    again = run("traffic", "gaps", "--window", DAYS[-1], "--queue-for", "scifact")
    assert again["queued"]["added"] == 0
    # Listing the gaps leaves the window's other slices stored.
    sliced = run("traffic", "slices", "--window", DAYS[-1], expect=None)
    assert any(f["slice"].startswith("tenant:") for f in sliced["figures"])
    assert any(f["slice"].startswith("tag:locale=") for f in sliced["figures"])


@pytest.mark.slow
def test_slices_are_stored_and_a_refit_maps_the_old_topics(sliced_store: dict) -> None:
    run = sliced_store["run"]
    refitted = run("traffic", "slices", "--window", DAYS[1], "--refit", expect=None)
    topics = refitted["topics"]
    assert topics["reference_window"] == DAYS[1]
    assert topics["previous_version"] == sliced_store["slices"][DAYS[0]]["topics"]["version"]
    matched = topics["matched"]
    assert len(matched["same"]) >= len(topics["topics"]) // 2
    assert any("refitted" in note for note in refitted["notes"])
    # Back to the first window: the first set is the current one again, and stays so.
    back = run("traffic", "slices", "--window", DAYS[2], "--reference", DAYS[0], expect=None)
    first_version = sliced_store["slices"][DAYS[0]]["topics"]["version"]
    assert back["topics"]["version"] == first_version
    again = run("traffic", "slices", "--window", DAYS[2], expect=None)
    assert again["topics"]["version"] == first_version
    # The rules below read the refit on the second day.
    run("traffic", "slices", "--window", DAYS[1], "--refit", expect=None)


# --- a goldset run's slices: the exact measures of each slice's queries alone ----------------


def test_a_goldset_run_s_measures_per_tag_equal_each_tag_s_queries_alone(
    evalkit_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    goldset = load_goldset(DEMO, name="demo")
    tags = {tag for query in goldset.queries for tag in query.tags}
    assert len(tags) >= 2
    evalkit_home.mkdir(parents=True, exist_ok=True)
    store_path = evalkit_home / "evalkit.duckdb"
    with Store.open(store_path) as store:
        save_goldset(store, goldset)
        run = evaluate_goldset(
            store, goldset, ShuffledJudgments(goldset, 3), GoldsetRunRequest(k=10, answers=False)
        ).run
        results = run_results(store, run.run_id)
    shown = cli(capsys, "runs", "show", run.run_id, "--by", "tag")
    by_slice = {s["slice"]: s for s in shown["slices"]["slices"]}
    assert set(by_slice) == {f"tag:{tag}" for tag in tags}
    for tag in tags:
        members = {q.id for q in goldset.queries if tag in q.tags}
        exact = Evaluator(
            [j for j in goldset.judgments if j.query_id in members],
            run.spec.measures,
            relevance_threshold=run.spec.relevance_threshold,
        ).evaluate(results[results["query_id"].isin(members)], query_ids=members)
        shown_slice = by_slice[f"tag:{tag}"]
        assert shown_slice["n_queries"] == exact.n_queries
        assert set(shown_slice["measures"]) == set(exact.aggregate)
        for measure, value in exact.aggregate.items():
            assert shown_slice["measures"][measure]["value"] == pytest.approx(value, abs=1e-12)
            low, high = (
                shown_slice["measures"][measure]["low"],
                shown_slice["measures"][measure]["high"],
            )
            assert low <= value <= high


def test_runs_show_by_an_unknown_slicing_says_what_works(
    evalkit_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    goldset = load_goldset(DEMO, name="demo")
    evalkit_home.mkdir(parents=True, exist_ok=True)
    with Store.open(evalkit_home / "evalkit.duckdb") as store:
        save_goldset(store, goldset)
        run = evaluate_goldset(
            store, goldset, ShuffledJudgments(goldset, 3), GoldsetRunRequest(k=10, answers=False)
        ).run
    capsys.readouterr()
    assert invoke(["runs", "show", run.run_id, "--by", "colour"]) == 2
    assert "use tag, tag:KEY, tenant or topic" in capsys.readouterr().err
    assert invoke(["runs", "show", run.run_id, "--by", "topic"]) == 2
    assert "no topics are fitted yet" in capsys.readouterr().err


# --- the tests and their correction, on counts -----------------------------------------------


def _window(counts: dict[str, int]) -> list[SlicedQuery]:
    return [
        SlicedQuery(f"{name}-{n}", (name,), None, False)
        for name, count in counts.items()
        for n in range(count)
    ]


def test_a_slice_s_share_is_of_its_family_and_a_family_sliced_once_is_not_tested() -> None:
    # Half the queries embedded (a topic each), all with a tenant, a third tagged.
    queries = [
        SlicedQuery(
            f"q{n}",
            ((f"topic:{n % 3}",) if n % 2 else ())
            + (f"tenant:{n % 2}",)
            + (("tag:locale=de",) if n % 3 == 0 else ()),
            None,
            False,
        )
        for n in range(600)
    ]
    figures = {f.slice: f for f in slice_figures(queries)}
    assert sum(f.share for n, f in figures.items() if n.startswith("topic:")) == pytest.approx(1)
    assert figures["topic:1"].n_family == 300
    assert figures["tenant:0"].share == pytest.approx(0.5)
    assert figures["tag:locale=de"].share == 1.0
    # A window sliced by topic alone against one sliced by all: only topics are tested.
    topics_only = [
        SlicedQuery(q.query_id, tuple(s for s in q.slices if s.startswith("topic:")), None, False)
        for q in queries
    ]
    changes = slice_changes(slice_figures(topics_only), slice_figures(queries))
    assert {c.slice for c in changes} == {"topic:0", "topic:1", "topic:2"}
    assert not any(c.grew or c.shrank for c in changes)


def test_a_slice_that_grew_is_flagged_and_the_others_are_not() -> None:
    before = slice_figures(_window({"topic:0": 100, "topic:1": 100, "topic:2": 100}))
    after = slice_figures(
        _window({"topic:0": 100, "topic:1": 100, "topic:2": 100, "topic:outside": 60})
    )
    changes = {c.slice: c for c in slice_changes(before, after)}
    assert changes["topic:outside"].grew
    assert changes["topic:outside"].baseline_share == 0.0
    assert not any(c.grew for name, c in changes.items() if name != "topic:outside")


def test_a_slice_whose_precision_dropped_is_flagged_only_from_one_source() -> None:
    def window(precision: float, source: str = "assessor") -> list[Any]:
        queries = [
            SlicedQuery(f"q{n}", (f"topic:{n % 2}",), False, False, None,
                        (1.0 if n % 10 < precision * 10 else 0.0) if n % 2 else 0.5)
            for n in range(400)
        ]  # fmt: skip
        return slice_figures(queries, precision_of=(source, "judge@1", "precision@10"))

    changes = {c.slice: c for c in slice_changes(window(0.8), window(0.3))}
    assert changes["topic:1"].dropped
    assert not changes["topic:0"].dropped
    mixed = {c.slice: c for c in slice_changes(window(0.8), window(0.3, source="estimate"))}
    assert mixed["topic:1"].drop_p is None
    assert not mixed["topic:1"].dropped


@pytest.mark.slow
def test_the_rules_fire_on_the_grown_slice_and_link_the_slices_page(sliced_store: dict) -> None:
    config = sliced_store["tmp"] / "evalkit.toml"
    config.write_text(
        '[alerts]\ndashboard_url = "http://127.0.0.1:8501"\n'
        '[[alerts.rules]]\nname = "new-topic"\nkind = "slice_emerged"\nout_of_scope_only = true\n'
        '[[alerts.rules]]\nname = "slice-precision"\nkind = "slice_precision_drop"\n'
        "min_drop = 0.02\n"
    )
    run = sliced_store["run"]
    # The newest sliced window is the mixed day (the refit above sliced an older one); a
    # content gap exits 1, as a CI step would want, and the quiet days 0.
    run("traffic", "slices", "--window", DAYS[1], expect=0)
    run("traffic", "slices", "--window", DAYS[-1], expect=1)
    evaluated = run("alerts", "evaluate", "--no-deliver", "--rule", "new-topic")
    fired = [alert for alert in evaluated["alerts"] if alert["status"] == "firing"]
    assert [alert["subject"] for alert in fired] == ["slice|topic:outside"], fired
    link = fired[0]["links"]["dashboard"]
    assert link.startswith("http://127.0.0.1:8501/slices?")
    assert f"window={DAYS[-1]}" in link
    assert "slice=topic%3Aoutside" in link
    assert "content gap" in fired[0]["title"]


@pytest.mark.slow
def test_the_slices_page_opens_the_alert_s_slice(
    sliced_store: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    from streamlit.testing.v1 import AppTest
    from test_dashboard_pages import APP, TIMEOUT

    monkeypatch.setenv("EVALKIT_STORE_PATH", str(sliced_store["home"] / "evalkit.duckdb"))
    monkeypatch.delenv("EVALKIT_CONFIG", raising=False)
    app = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    app.query_params["window"] = DAYS[-1]
    app.query_params["slice"] = "topic:outside"
    app.switch_page("views/slices.py").run()
    assert not app.exception, [e.value for e in app.exception]
    assert not app.error, [e.value for e in app.error]
    shown = {m.label: m.value for m in app.metric}
    assert shown["content gaps"] == "1"
    assert app.selectbox[0].value == DAYS[-1]
    assert app.selectbox[1].value == "topic:outside"
    assert any("Content gap" in m.value and "outside" in m.value for m in app.markdown)
    table = next(d.value for d in app.dataframe if "out of scope" in d.value.columns)
    assert any("content gap" in str(change) for change in table["change"])
    # A slice the window does not have is refused, never replaced by another.
    stale = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    stale.query_params["window"] = DAYS[0]
    stale.query_params["slice"] = "topic:99"
    stale.switch_page("views/slices.py").run()
    assert any("does not exist" in e.value for e in stale.error)


@pytest.mark.slow
def test_the_slices_page_renders_in_chromium(sliced_store: dict, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from test_dashboard_browser import _render, _serving, chromium_driver

    store = sliced_store["home"] / "evalkit.duckdb"
    with _serving(store, tmp_path / "dashboard.log") as url, chromium_driver() as driver:
        shown = _render(driver, f"{url}/slices?window={DAYS[-1]}&slice=topic%3Aoutside", charts=2)
        driver.save_screenshot(str(tmp_path / "slices.png"))
        text = driver.find_element(By.TAG_NAME, "body").text
    assert "1" in shown  # one content gap
    assert "Content gap: topic:outside" in text
    assert (tmp_path / "slices.png").stat().st_size > 10_000


def test_a_slice_whose_estimates_differ_only_by_rounding_has_a_finite_interval() -> None:
    # Queries whose scores fall on one plateau of the calibration get one estimate, up to
    # rounding: their variance of 1e-35 once gave a NaN interval, and a NaN p-value that
    # the Benjamini-Hochberg correction refuses.
    queries = [
        SlicedQuery(f"q{n}", ("topic:0",), False, False, None, 0.05 + (n % 2) * 1e-13)
        for n in range(40)
    ]
    (whole, topic) = slice_figures(
        queries, precision_of=("estimate", "calibration:r", "precision@10")
    )
    assert topic.precision is not None
    assert 0 <= topic.precision.low <= 0.05 <= topic.precision.high <= 1
    nearly = np.full(40, 0.05)
    nearly[0] += 1e-8  # a real, if tiny, spread: an interval of almost no width
    low, high = mean_interval(nearly)
    assert low <= nearly.mean() <= high
    assert high - low < 1e-5
    assert slice_changes([whole, topic], [whole, topic])[0].drop_p is not None


@pytest.mark.slow
def test_a_goldset_run_by_topic_embeds_its_queries_into_the_traffic_topics(
    sliced_store: dict,
) -> None:
    with Store.open(sliced_store["home"] / "evalkit.duckdb", read_only=True) as store:
        (run_id,) = store.fetch("SELECT run_id FROM runs WHERE kind = 'goldset'")[0]
        values = store.fetch_frame(
            "SELECT query_id, value FROM query_metrics WHERE run_id = ? AND measure = 'ndcg@10'",
            [run_id],
        ).set_index("query_id")["value"]
    shown = sliced_store["run"]("runs", "show", run_id, "--by", "topic")
    topics = shown["slices"]["slices"]
    assert all(s["slice"].startswith("topic:") for s in topics)
    assert sum(s["n_queries"] for s in topics) == len(values)
    # The goldset's claims are the traffic's domain: few fall outside every topic.
    outside = sum(s["n_queries"] for s in topics if s["slice"] == "topic:outside")
    assert outside < 0.2 * len(values)
    assert values.mean() == pytest.approx(
        sum(s["measures"]["ndcg@10"]["value"] * s["n_queries"] for s in topics) / len(values)
    )


@pytest.mark.slow
def test_a_judged_window_takes_the_assessor_s_precision_and_its_zero_grades_as_out_of_scope(
    sliced_store: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    from relevance_judge import GradingJudge, grading_judge, judge_env

    claims = set(_scifact(sliced_store["tmp"] / "again")[1])

    class ClaimsJudge(GradingJudge):
        def grade(self, query: str, passage: str) -> int:
            return 2 if query in claims else 0

    run = sliced_store["run"]
    run_id = sliced_store["slices"][DAYS[-1]]["run_id"]
    with grading_judge(ClaimsJudge(known={})) as judge:
        for name, value in judge_env(judge).items():
            monkeypatch.setenv(name, value)
        run(
            "judge", "traffic", run_id, "--collection", "scifact-titles",
            "--max-judgments", "600",
        )  # fmt: skip
    sliced = run("traffic", "slices", "--window", DAYS[-1], expect=None)
    whole = sliced["figures"][0]
    assert whole["precision"]["source"] == "assessor"
    assert whole["precision"]["labeller"].startswith("grader-1")
    assert 0 < whole["precision"]["n_queries"] < whole["n_queries"]
    # The baseline day has estimates only: never compared with the assessor's figures.
    assert all(change["drop_p"] is None for change in sliced["changes"])
    with Store.open(sliced_store["home"] / "evalkit.duckdb", read_only=True) as store:
        graded = dict(
            store.fetch(
                "SELECT query_id, value FROM judged_query_values"
                " WHERE run_id = ? AND measure = 'max_grade@10'",
                [run_id],
            )
        )
        texts = dict(store.fetch("SELECT query_id, text FROM traffic_records"))
    assert graded
    zero = [q for q, grade in graded.items() if grade == 0]
    assert zero
    assert all(texts[q] not in claims for q in zero)
    outside = next(f for f in sliced["figures"] if f["slice"] == "topic:outside")
    assert outside["out_of_scope_share"] >= 0.9
