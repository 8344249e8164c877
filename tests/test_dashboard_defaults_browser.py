"""The dashboard's defaults, time axes, colours and query diff in headless Chromium.

`evalkit dashboard` serves the planted-regression store of ``test_dashboard_defaults``
(relevant documents deleted from a real Chroma collection out of band, an audit that found
them missing, drift checks, an alert, traffic, answers). Without a click each page opens on
the story: Overview's card names the cause and the worst queries, Compare the worst series
against `evalkit explain`'s baseline, Query drill-down its worst query with the lost
document tagged by the audit, Drift the newest drifting check. Figures are read from the
Plotly figures in the page (``.js-plotly-plot`` elements). Every page is saved as a
screenshot under reports/dashboard/ (``defaults-*.png``).

Uses the Chromium fixtures of ``test_dashboard_browser`` (same requirements).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlparse

import pandas as pd
import pytest
from test_dashboard_browser import (  # noqa: F401  (fixture)
    SCREENSHOTS,
    _finished,
    _missing,
    _serving,
    browser,
)
from test_dashboard_defaults import StoryStore, shared_story_store

from evalkit.dashboard import charts

pytestmark = pytest.mark.slow

FIGURES_JS = """
return Array.from(document.querySelectorAll('.js-plotly-plot')).map(
    (plot) => ({data: plot.data, layout: {shapes: plot.layout.shapes || [],
                                          yaxis: plot.layout.yaxis || {}}}));
"""


@pytest.fixture(scope="module")
def served_story(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, StoryStore]]:
    """`evalkit dashboard` serving the planted-regression store."""
    reason = _missing()
    if reason:
        pytest.fail(f"{reason}; `make browser` installs Chromium and chromedriver")
    story = shared_story_store(tmp_path_factory)
    log = tmp_path_factory.mktemp("browser-story") / "dashboard.log"
    with _serving(story.path, log) as url:
        yield url, story


def _shot(driver: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"defaults-{name}.png"
    driver.set_window_size(1400, max(1200, _page_height(driver)))
    driver.save_screenshot(str(path))
    driver.set_window_size(1400, 2200)
    assert path.stat().st_size > 10_000


def _page_height(driver: Any) -> int:
    return int(
        driver.execute_script(
            "const main = document.querySelector('[data-testid=\"stMain\"]');"
            "return main ? main.scrollHeight + 80 : document.body.scrollHeight;"
        )
    )


def _asked(driver: Any) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlparse(str(driver.current_url)).query).items()}


def _figures(driver: Any) -> list[dict[str, Any]]:
    return list(driver.execute_script(FIGURES_JS))


def test_overview_shows_the_regression_its_cause_and_worst_queries(
    served_story: tuple[str, StoryStore],
    browser: Any,  # noqa: F811
) -> None:
    url, _ = served_story
    body = _finished(browser, "Overview", url=f"{url}/")
    assert "regression" in body
    assert "missing from index: 100% of the loss" in body
    assert "Index health: the audit's findings" in body
    worst = [line.split(" ")[0] for line in body.splitlines() if line.startswith("q0")]
    assert worst[:3] == ["q01", "q02", "q03"], worst
    assert "95% paired t-interval" in body
    cards = browser.find_elements("css selector", '[data-testid="stImage"] img')
    assert cards, "the card's sparkline"
    _shot(browser, "overview")


def test_compare_opens_on_the_worst_series_against_the_baseline_it_regressed_from(
    served_story: tuple[str, StoryStore],
    browser: Any,  # noqa: F811
) -> None:
    url, story = served_story
    body = _finished(browser, "Compare runs", url=f"{url}/compare")
    asked = _asked(browser)
    assert (asked["baseline"], asked["candidate"]) == (story.baseline, story.candidate)
    assert "decision: regression" in body
    assert "the Overview reports as regressed" in body
    assert "1. missing from index" in body
    _shot(browser, "compare")
    body = _finished(
        browser,
        "Compare runs",
        url=f"{url}/compare?baseline={story.candidate}&candidate={story.candidate}",
    )
    assert "same run" in body
    assert not browser.find_elements("css selector", '[data-testid="stMetricValue"]')
    browser.get(f"{url}/compare?candidate={story.traffic_run}")
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, 90).until(lambda d: "has no goldset" in d.page_source)
    body = str(browser.find_element("tag name", "body").text)
    assert f"run {story.traffic_run} has no goldset" in body
    assert "does not exist" not in body
    _shot(browser, "compare-traffic-run")


def test_query_drill_down_opens_on_the_worst_query_with_the_planted_deletion(
    served_story: tuple[str, StoryStore],
    browser: Any,  # noqa: F811
) -> None:
    url, story = served_story
    body = _finished(browser, "Query drill-down", charts=2, url=f"{url}/query")
    asked = _asked(browser)
    assert asked["run"] == story.candidate
    assert asked["baseline"] == story.baseline
    assert asked["query"] == "q01"
    assert (
        f"q01-b (grade 1, baseline rank 2): missing from the index per audit {story.audit} "
        "(orphaned_judgments)" in body
    )
    link = browser.find_element("link text", "Index health")
    assert f"audit={story.audit}" in str(link.get_attribute("href"))
    assert f"Baseline {story.baseline}" in body
    assert f"This run {story.candidate}" in body
    _shot(browser, "query")


def test_drift_opens_on_the_newest_drifting_check_with_one_colour_per_series(
    served_story: tuple[str, StoryStore],
    browser: Any,  # noqa: F811
) -> None:
    url, story = served_story
    _finished(browser, "Drift", charts=4, url=f"{url}/drift")
    assert _asked(browser)["check"] == story.drifting_check
    statistic, p_value = _figures(browser)[:2]

    def colours(figure: dict[str, Any]) -> dict[str, str]:
        return {
            trace["name"]: trace["line"]["color"]
            for trace in figure["data"]
            if trace.get("mode") != "markers" and not trace["name"].startswith("threshold ")
        }

    assert colours(statistic) == colours(p_value)
    assert set(colours(statistic)) == {"queries / mini", "documents / mini"}
    assert charts.BAD not in colours(statistic).values()
    crosses = [t for t in p_value["data"] if t["name"].startswith("drift ")]
    assert crosses
    assert {t["marker"]["color"] for t in crosses} == {charts.BAD}
    _shot(browser, "drift")


def _drawn_marker_widths(driver: Any, *, at_least: int) -> list[float]:
    """The on-screen widths of the drawn markers, once Plotly has laid out ``at_least`` of
    them at full size (a marker may be measured mid-draw, at zero width, otherwise)."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    def widths(d: Any) -> list[float]:
        points = d.find_elements("css selector", ".js-plotly-plot .scatterlayer path.point")
        return [float(point.size["width"]) for point in points]

    with contextlib.suppress(TimeoutException):  # the caller's assertion shows what was drawn
        WebDriverWait(driver, 10, poll_frequency=0.25).until(
            lambda d: len(drawn := widths(d)) >= at_least and min(drawn[:at_least]) > 0
        )
    return widths(driver)


def test_quality_draws_events_at_their_exact_time(
    served_story: tuple[str, StoryStore],
    browser: Any,  # noqa: F811
) -> None:
    url, story = served_story
    _finished(
        browser, "Quality over time", charts=1, url=f"{url}/quality?goldset=mini&measure=ndcg%4010"
    )
    (figure,) = _figures(browser)
    by_name = {trace["name"]: trace for trace in figure["data"]}
    assert pd.Timestamp(by_name["event: alert"]["x"][0]) == story.alert_at
    line = by_name["event line: alert"]["x"]
    assert pd.Timestamp(line[0]) == pd.Timestamp(line[1]) == story.alert_at
    runs = [t for t in figure["data"] if t.get("mode") == "lines+markers"]
    assert len(runs) == 2
    assert all(t["marker"]["size"] >= 9 for t in runs)
    widths = _drawn_marker_widths(browser, at_least=4)
    assert all(width >= charts.MARKER_SIZE - 0.5 for width in widths[:4]), widths
    _shot(browser, "quality")
    _finished(
        browser,
        "Quality over time",
        charts=1,
        url=f"{url}/quality?goldset=mini&measure=ndcg%4010&x=run+index",
    )
    (figure,) = _figures(browser)
    by_name = {trace["name"]: trace for trace in figure["data"]}
    assert by_name["event: alert"]["x"] == [4.5]
    _shot(browser, "quality-run-index")


@pytest.mark.parametrize(
    ("name", "title", "path", "charts"),
    [
        ("goldsets", "Goldsets", "goldsets", 1),
        ("traffic", "Traffic", "traffic", 6),
        ("answers", "Answers", "answers", 1),
        ("index-health", "Index health", "index_health", 1),
        ("alerts", "Alerts", "alerts", 0),
        ("review", "Review queue", "review", 0),
    ],
)
def test_every_other_page_renders_and_is_saved(
    served_story: tuple[str, StoryStore],
    browser: Any,  # noqa: F811
    name: str,
    title: str,
    path: str,
    charts: int,
) -> None:
    url, _ = served_story
    body = _finished(browser, title, charts=charts, url=f"{url}/{path}")
    assert " None" not in body
    assert "1 days" not in body
    if name == "traffic":
        (_, latency, *_rest) = _figures(browser)
        names = {trace["name"] for trace in latency["data"]}
        assert {"replay latency p95", "production latency p95"} <= names
        assert latency["layout"]["yaxis"]["type"] == "log"
    _shot(browser, name)
