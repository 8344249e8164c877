"""The dashboard in a real browser: `evalkit dashboard` serves the seeded store, headless
Chromium loads every page, the main figures must be rendered, and each page is saved as a
screenshot under reports/dashboard/.

Needs Debian's ``chromium`` and ``chromium-driver`` and the ``selenium`` package; the test
fails, saying which is missing, where they are not installed (`make browser` installs them).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from urllib.parse import urljoin

import httpx
import pytest
from test_dashboard_seed import (
    DEGRADED_NDCG,
    SERIES_A,
    SeededStore,
    seed_mixed_store,
    shared_scale_store,
    shared_seeded_store,
)

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
SCREENSHOTS = REPO / "reports" / "dashboard"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1400,2200",
)
STARTUP_SECONDS = 90.0
PAGE_SECONDS = 90.0


def _missing() -> str | None:
    if not Path(CHROMIUM).is_file():
        return "Debian's chromium is not installed (apt-get install chromium)"
    if not Path(CHROMEDRIVER).is_file():
        return "chromedriver is not installed (apt-get install chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "the selenium package is not installed"
    return None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def _serving(store: Path, log: Path, extra: tuple[str, ...] = ()) -> Iterator[str]:
    """`evalkit dashboard` (with ``extra`` options) serving ``store`` on a free loopback
    port; yields its URL."""
    port = _free_port()
    with log.open("w", encoding="utf-8") as output:
        server = subprocess.Popen(
            [sys.executable, "-m", "evalkit", "dashboard", "--port", str(port), *extra],
            env={**os.environ, "EVALKIT_STORE_PATH": str(store)},
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            try:
                if httpx.get(f"{url}/_stcore/health", timeout=2.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the dashboard did not start:\n{log.read_text(encoding='utf-8')}")
            time.sleep(0.3)
        yield url
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, SeededStore]]:
    """`evalkit dashboard` serving the seeded store on a free loopback port."""
    reason = _missing()
    if reason:
        pytest.fail(f"{reason}; `make browser` installs Chromium and chromedriver")
    seeded = shared_seeded_store(tmp_path_factory)
    log = tmp_path_factory.mktemp("browser-log") / "dashboard.log"
    with _serving(seeded.path, log) as url:
        yield url, seeded


@pytest.fixture(scope="module")
def served_mixed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    """`evalkit dashboard` serving a store whose series changed k and measures, with
    partial runs and NULL aggregates."""
    reason = _missing()
    if reason:
        pytest.fail(f"{reason}; `make browser` installs Chromium and chromedriver")
    directory = tmp_path_factory.mktemp("browser-mixed")
    runs = seed_mixed_store(directory / "evalkit.duckdb")
    with _serving(directory / "evalkit.duckdb", directory / "dashboard.log") as url:
        yield url, runs


@contextlib.contextmanager
def chromium_driver() -> Iterator[object]:
    """Headless Debian Chromium driven by chromedriver, with a fresh profile; quit after."""
    reason = _missing()
    if reason:
        pytest.fail(f"{reason}; `make browser` installs Chromium and chromedriver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    profile = tempfile.mkdtemp(prefix="evalkit-chromium-")
    options.add_argument(f"--user-data-dir={profile}")
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Headless Chromium for a module's pages, quit after them. A start and quit costs about
    a CPU-second; a Chromium kept for the session cost far more: idle, 2.7 CPU-s a minute,
    and 11 a minute while it showed a page whose dashboard had stopped, which its script
    kept trying to reconnect to until the session ended."""
    with chromium_driver() as driver:
        yield driver


def _render(driver, url: str, *, charts: int, expecting: Sequence[str] = ()) -> list[str]:  # type: ignore[no-untyped-def]
    """Load ``url``, wait until the script has finished with its metrics (and ``charts``
    Plotly charts) drawn, and until the ``expecting`` values are among them (a page draws
    its metrics over several moments); return the metric values shown."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url)

    def shown(d) -> list[str]:  # type: ignore[no-untyped-def]
        return [e.text for e in d.find_elements(By.CSS_SELECTOR, '[data-testid="stMetricValue"]')]

    def settled(d) -> bool:  # type: ignore[no-untyped-def]
        running = d.find_elements(By.CSS_SELECTOR, BUSY)
        values = shown(d)
        drawn = d.find_elements(By.CSS_SELECTOR, ".js-plotly-plot .main-svg")
        return not running and bool(values) and len(drawn) >= charts

    WebDriverWait(driver, PAGE_SECONDS, poll_frequency=0.25).until(settled)
    with contextlib.suppress(TimeoutException):  # the caller's assertion shows what was drawn
        WebDriverWait(driver, PAGE_SECONDS, poll_frequency=0.25).until(
            lambda d: settled(d) and all(value in shown(d) for value in expecting)
        )
    assert not driver.find_elements(By.CSS_SELECTOR, '[data-testid="stException"]')
    errors = driver.find_elements(By.CSS_SELECTOR, '[data-testid="stAlertContentError"]')
    assert not errors, [e.text for e in errors]
    return shown(driver)


def test_every_page_renders_its_figures_in_chromium(
    served: tuple[str, SeededStore], browser: object
) -> None:
    url, seeded = served
    degraded = f"{DEGRADED_NDCG:.4f}"
    pages = {
        "overview": ("", 0, [degraded, "1.0000"]),
        "quality": ("quality?goldset=mini&measure=recall%4010", 1, ["0.5000"]),
        "compare": (
            f"compare?goldset=mini&baseline={seeded.runs['A1']}&candidate={seeded.runs['A3']}",
            0,
            [degraded],
        ),
        "query": (f"query?goldset=mini&run={seeded.runs['A3']}&query=q01", 0, ["5"]),
        "goldsets": ("goldsets", 1, ["15 queries"]),
        "drift": (f"drift?check={seeded.drift_check}", 4, ["2", "4"]),  # drifting now, checks
        "traffic": ("traffic?window=2026-11-20", 6, ["20", "0.250", "0.500"]),
        "answers": ("answers", 2, ["0.583"]),
        "index_health": ("index_health", 1, ["51"]),
        "alerts": ("alerts", 0, ["1"]),
    }
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for name, (path, charts, expected) in pages.items():
        shown = _render(browser, f"{url}/{path}", charts=charts, expecting=expected)
        for value in expected:
            assert value in shown, (name, value, shown)
        if name == "overview":
            body = browser.find_element("tag name", "body").text  # type: ignore[attr-defined]
            assert f"mini x {SERIES_A}" in body
        browser.save_screenshot(str(SCREENSHOTS / f"{name}.png"))  # type: ignore[attr-defined]
        assert (SCREENSHOTS / f"{name}.png").stat().st_size > 10_000


def _settle(driver, url: str) -> str:  # type: ignore[no-untyped-def]
    """Load ``url``, wait until the script has finished and drawn an alert, a chart or a
    metric; return the page's text."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url)

    def settled(d) -> bool:  # type: ignore[no-untyped-def]
        running = d.find_elements(By.CSS_SELECTOR, BUSY)
        shown = d.find_elements(
            By.CSS_SELECTOR,
            '[data-testid="stAlert"], [data-testid="stException"], .js-plotly-plot .main-svg',
        )
        return not running and bool(shown)

    WebDriverWait(driver, PAGE_SECONDS, poll_frequency=0.25).until(settled)
    time.sleep(1.0)  # let the last script run settle its URL and elements
    WebDriverWait(driver, PAGE_SECONDS, poll_frequency=0.25).until(settled)
    assert not driver.find_elements(By.CSS_SELECTOR, '[data-testid="stException"]')
    body = str(driver.find_element(By.TAG_NAME, "body").text)
    assert "Traceback" not in body, body[:2000]
    assert "NAType" not in body, body[:2000]
    return body


def test_quality_of_a_measure_some_runs_did_not_store_renders_in_chromium(
    served_mixed: tuple[str, dict[str, str]], browser: object
) -> None:
    url, runs = served_mixed
    body = _settle(browser, f"{url}/quality?goldset=demo&measure=recall%40100")
    assert "stored no recall@100" in body
    assert runs["k10"] in body
    driver = browser
    assert driver.find_elements("css selector", ".js-plotly-plot .main-svg")  # type: ignore[attr-defined]
    assert "measure=recall%40100" in driver.current_url  # type: ignore[attr-defined]
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(SCREENSHOTS / "quality-mixed.png"))  # type: ignore[attr-defined]


def test_bad_compare_and_query_links_say_they_do_not_exist_in_chromium(
    served_mixed: tuple[str, dict[str, str]], browser: object
) -> None:
    url, runs = served_mixed
    driver = browser
    links = {
        "compare-bad-link": ("compare?baseline=nope&candidate=nope", "baseline=nope"),
        "query-bad-run": ("query?goldset=demo&run=nope&query=q01", "run=nope"),
        "query-bad-query": (f"query?goldset=demo&run={runs['k100']}&query=nope", "query=nope"),
    }
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for name, (path, param) in links.items():
        body = _settle(driver, f"{url}/{path}")
        assert "does not exist" in body, (name, body[:2000])
        assert param in driver.current_url, (name, driver.current_url)  # type: ignore[attr-defined]
        assert not driver.find_elements("css selector", '[data-testid="stMetricValue"]')  # type: ignore[attr-defined]
        assert not driver.find_elements("css selector", '[data-testid="stDataFrame"]')  # type: ignore[attr-defined]
        for other in runs.values():
            assert other not in driver.current_url or other == runs["k100"], name  # type: ignore[attr-defined]
        driver.save_screenshot(str(SCREENSHOTS / f"{name}.png"))  # type: ignore[attr-defined]


BUSY = '[data-testid="stStatusWidget"], [data-testid="stSkeleton"]'
"""What a page shows while it is still drawing: the running script's status widget, and the
skeleton standing in for an element whose code has not loaded yet (Streamlit loads a page
link's, a table's, a chart's code on first use; on a loaded machine a page once finished its
script with its links still skeletons)."""

FINISHED_JS = """
const [title, charts, busy] = arguments;
if (document.readyState !== 'complete') return false;
const app = document.querySelector('[data-testid="stApp"]');
if (!app || app.getAttribute('data-test-script-state') !== 'notRunning') return false;
if (document.querySelector(busy)) return false;
if (document.querySelector('[data-stale="true"]')) return false;
const heading = document.querySelector('h1');
if (!heading || heading.textContent.trim() !== title) return false;
return document.querySelectorAll('.js-plotly-plot .main-svg').length >= charts;
"""


def _finished(driver, title: str, *, charts: int = 0, url: str | None = None) -> str:  # type: ignore[no-untyped-def]
    """Open ``url`` (else stay), wait until page ``title`` has finished drawing its
    ``charts`` Plotly charts and stays so; return the page's text."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    if url is not None:
        driver.get(url)
    for _ in range(2):  # still finished a moment later: the script run has settled
        WebDriverWait(driver, PAGE_SECONDS, poll_frequency=0.25).until(
            lambda d: d.execute_script(FINISHED_JS, title, charts, BUSY)
        )
        time.sleep(0.5)
    assert not driver.find_elements(By.CSS_SELECTOR, '[data-testid="stException"]')
    errors = driver.find_elements(By.CSS_SELECTOR, '[data-testid="stAlertContentError"]')
    assert not errors, [e.text for e in errors]
    body = str(driver.find_element(By.TAG_NAME, "body").text)
    assert "Traceback" not in body, body[:2000]
    assert "NAType" not in body, body[:2000]
    return body


def _cells(driver, column: str) -> list[str]:  # type: ignore[no-untyped-def]
    """The visible cells of ``column`` in the first table on the page that has it (the
    grids' accessible tables)."""
    for table in driver.find_elements("css selector", '[data-testid="stDataFrame"] table'):
        headers = [
            str(h.get_attribute("textContent")) for h in table.find_elements("css selector", "th")
        ]
        if column in headers:
            index = headers.index(column) + 1
            cells = table.find_elements("css selector", f'td[aria-colindex="{index}"]')
            return [str(c.get_attribute("textContent")) for c in cells]
    raise AssertionError(f"no table with column {column!r}")


@pytest.fixture(scope="module")
def served_scale(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """`evalkit dashboard` over the benchmark's store shape (20 series, 1,000 alerts)."""
    reason = _missing()
    if reason:
        pytest.fail(f"{reason}; `make browser` installs Chromium and chromedriver")
    path = shared_scale_store(tmp_path_factory)
    log = tmp_path_factory.mktemp("browser-scale") / "dashboard.log"
    with _serving(path, log) as url:
        yield url, path


def test_every_page_of_a_store_with_twenty_series_renders_in_chromium(
    served_scale: tuple[str, Path], browser: object
) -> None:
    from evalkit.dashboard import loaders
    from evalkit.store import Store

    url, path = served_scale
    with Store.open(path, read_only=True) as store:
        runs = loaders.shared.runs(store, goldset="gold0")
        ranked = loaders.overview.overview(store, measure="ndcg@10").series
    run = str(runs.iloc[0]["run_id"])
    same = runs[runs["retriever"] == runs.iloc[0]["retriever"]]
    worst = ranked.iloc[0]
    pages = {
        "overview": ("Overview", "", 0, ["20 series (of 20)"]),
        "quality": ("Quality over time", "quality?goldset=gold0&measure=ndcg%4010", 1, []),
        "compare": (
            "Compare runs",
            f"compare?goldset=gold0&baseline={same.iloc[-1]['run_id']}&candidate={run}",
            0,
            ["queries 1-50 of 100"],
        ),
        "query": (
            "Query drill-down",
            f"query?goldset=gold0&run={run}&query=q000",
            2,
            ["This query's values per run", "Rank of each relevant document per run"],
        ),
        "goldsets": ("Goldsets", "goldsets", 1, []),
        "drift": ("Drift", "drift", 4, ["checks 1-50 of 2,000", "2,000"]),
        "traffic": ("Traffic", "traffic", 5, ["Showing the newest 30 of 60 replayed windows"]),
        "answers": ("Answers", "answers", 1, []),
        "index_health": ("Index health", "index_health", 1, ["shares", "counts"]),
        "alerts": ("Alerts", "alerts", 0, ["1,000", "alerts 1-50 of 1,000"]),
    }
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for name, (title, target, charts, expected) in pages.items():
        body = _finished(browser, title, charts=charts, url=f"{url}/{target}")
        for text in expected:
            assert text in body, (name, text, body[:3000])
        browser.save_screenshot(str(SCREENSHOTS / f"scale-{name}.png"))  # type: ignore[attr-defined]
        if name == "overview":
            assert _cells(browser, "ndcg@10, last 30 runs")  # the sparklines
            series = _cells(browser, "Series")
            assert series[0] == f"{worst['goldset_name']} x {worst['retriever']}", series


def test_a_run_point_on_quality_opens_compare_against_its_baseline_in_chromium(
    served_scale: tuple[str, Path], browser: object
) -> None:
    from urllib.parse import parse_qs, urlparse

    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.support.ui import WebDriverWait

    from evalkit.dashboard import loaders
    from evalkit.store import Store

    url, path = served_scale
    with Store.open(path, read_only=True) as store:
        runs = loaders.shared.runs(store, goldset="gold0")
    driver = browser
    _finished(driver, "Quality over time", charts=1, url=f"{url}/quality?goldset=gold0")
    points = driver.find_elements(  # type: ignore[attr-defined]
        "css selector", ".js-plotly-plot .scatterlayer .trace:nth-of-type(2) path.point"
    )
    assert len(points) == 10, len(points)  # the first series' runs
    ActionChains(driver).move_to_element(points[-1]).pause(0.5).click().perform()
    WebDriverWait(driver, PAGE_SECONDS).until(lambda d: "/compare" in d.current_url)
    body = _finished(driver, "Compare runs")
    asked = {k: v[0] for k, v in parse_qs(urlparse(driver.current_url).query).items()}  # type: ignore[attr-defined]
    candidate = runs[runs["run_id"] == asked["candidate"]].iloc[0]
    same = runs[runs["retriever"] == candidate["retriever"]].sort_values("started_at")
    assert asked["baseline"] == same.iloc[0]["run_id"]  # the series' baseline
    assert asked["goldset"] == "gold0"
    assert "decision:" in body


def test_a_regression_on_overview_leads_to_its_cause_and_its_queries_in_chromium(
    served: tuple[str, SeededStore], browser: object
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    url, seeded = served
    driver = browser
    _finished(driver, "Overview", url=f"{url}/")
    links = driver.find_elements(By.PARTIAL_LINK_TEXT, "Compare with baseline")  # type: ignore[attr-defined]
    assert links, "the regressed series links to Compare"
    links[0].click()
    WebDriverWait(driver, PAGE_SECONDS).until(lambda d: "/compare" in d.current_url)
    body = _finished(driver, "Compare runs")
    current = driver.current_url  # type: ignore[attr-defined]
    assert f"baseline={seeded.runs['A1']}" in current
    assert f"candidate={seeded.runs['A3']}" in current
    assert "decision: regression" in body
    lost = _cells(driver, "Lost relevant documents")
    links = _cells(driver, "Query")
    assert lost[0] == "q01-b"  # the cause: the query lost its relevant document b
    # The query id links to that query in the candidate run beside the baseline; follow it
    # as the browser would.
    assert links[0] == (
        f"./query?goldset=mini&run={seeded.runs['A3']}&baseline={seeded.runs['A1']}&query=q01"
    )
    target = urljoin(current, links[0])
    assert target.startswith(f"{url}/query?")
    body = _finished(driver, "Query drill-down", charts=2, url=target)
    assert "q01: " in body
    assert "Relevant but not retrieved: q01-b" in body
    assert f"Against baseline {seeded.runs['A1']}" in body
    assert "q01-b (grade 1, baseline rank 2): " in body


def test_every_page_of_the_mixed_store_renders_in_chromium(
    served_mixed: tuple[str, dict[str, str]], browser: object
) -> None:
    url, runs = served_mixed
    pages = {
        "Overview": "",
        "Quality over time": "quality?goldset=demo&measure=ndcg%4010",
        "Compare runs": f"compare?goldset=demo&baseline={runs['k10']}&candidate={runs['partial']}",
        "Query drill-down": f"query?goldset=demo&run={runs['partial']}&query=q01",
        "Goldsets": "goldsets",
        "Drift": "drift",
        "Traffic": "traffic",
        "Answers": "answers",
        "Index health": "index_health",
        "Alerts": "alerts",
    }
    for title, target in pages.items():
        body = _finished(browser, title, url=f"{url}/{target}")
        assert body.strip(), title


def test_a_deep_link_as_a_fresh_dashboard_s_first_request_opens_the_app_in_chromium(
    tmp_path_factory: pytest.TempPathFactory, browser: object
) -> None:
    """An alert's link is often the first request a dashboard gets after it started: the
    page must open inside the app (its navigation, the store's caption), not as a bare
    script of a pages directory with file names in the sidebar."""
    from selenium.webdriver.common.by import By

    reason = _missing()
    if reason:
        pytest.fail(f"{reason}; `make browser` installs Chromium and chromedriver")
    seeded = shared_seeded_store(tmp_path_factory)
    log = tmp_path_factory.mktemp("browser-deep-link") / "dashboard.log"
    with _serving(seeded.path, log) as url:
        body = _finished(
            browser,
            "Quality over time",
            charts=1,
            url=f"{url}/quality?goldset=mini&measure=recall%4010",
        )
        links = [
            str(link.get_attribute("textContent"))
            for link in browser.find_elements(  # type: ignore[attr-defined]
                By.CSS_SELECTOR, '[data-testid="stSidebarNavLink"]'
            )
        ]
        assert any(text.endswith("Quality over time") for text in links), links
        assert not any(text.endswith("quality") for text in links), links
        assert "Store (reviews saved)" in body


HOSTILE_QUERY = "**bold**_it_ \u202eexe.txt"
HOSTILE_TEXT = "**PWNED** :red[red text] [click me](https://evil.example/md) | a | b |"
HOSTILE_DOC = '<a href="https://evil.example/phish">click here</a>'


@pytest.fixture(scope="module")
def served_hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, str]]:
    """`evalkit dashboard` serving a goldset whose query id, query text and relevant
    document id are Markdown, HTML and a bidirectional override, as a production log can
    hold; yields (url, baseline run, candidate run)."""
    from test_dashboard_seed import store_run

    from evalkit.goldset.model import Goldset
    from evalkit.records import Judgment, Query
    from evalkit.store import Store
    from evalkit.store.goldsets import save_goldset

    reason = _missing()
    if reason:
        pytest.fail(f"{reason}; `make browser` installs Chromium and chromedriver")
    directory = tmp_path_factory.mktemp("browser-hostile")
    path = directory / "evalkit.duckdb"
    gold = Goldset.build(
        "hostile",
        [Query(HOSTILE_QUERY, HOSTILE_TEXT), Query("plain", "a plain question")],
        [
            Judgment(HOSTILE_QUERY, HOSTILE_DOC, 2),
            Judgment(HOSTILE_QUERY, "kept", 1),
            Judgment("plain", "p1", 1),
        ],
    )
    common = {
        "retriever_kind": "list",
        "config": {"kind": "list"},
        "collection": None,
        "model_fingerprint": "m",
        "index_fingerprint": None,
    }
    with Store.open(path) as store:
        save_goldset(store, gold)
        found = {HOSTILE_QUERY: [HOSTILE_DOC, "kept"], "plain": ["p1", "x2"]}
        baseline = store_run(store, gold, found, **common)  # type: ignore[arg-type]
        lost = {HOSTILE_QUERY: ["x1", "kept"], "plain": ["p1", "x2"]}
        candidate = store_run(store, gold, lost, **common)  # type: ignore[arg-type]
    with _serving(path, directory / "dashboard.log") as url:
        yield url, baseline, candidate


def test_users_data_is_shown_as_text_not_as_markdown_or_html_in_chromium(
    served_hostile: tuple[str, str, str], browser: object
) -> None:
    """A query id, query text and document id from a production log are shown as they are:
    no link, bold text or table made of them, no Plotly legend link, and a bidirectional
    override shown as an escape instead of reversing the text around it."""
    from urllib.parse import quote

    from selenium.webdriver.common.by import By

    url, baseline, candidate = served_hostile
    page = (
        f"{url}/query?goldset=hostile&run={candidate}&baseline={baseline}"
        f"&query={quote(HOSTILE_QUERY)}"
    )
    body = _settle(browser, page)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SCREENSHOTS / "query-hostile.png"))  # type: ignore[attr-defined]
    # A URL written out in the text may be autolinked, showing where it goes; no link may
    # hide its target behind other words (Markdown `[click me](...)`, HTML `<a href>`).
    hidden = [
        (a.text, a.get_attribute("href"))
        for a in browser.find_elements(By.TAG_NAME, "a")  # type: ignore[attr-defined]
        if "evil.example" in (a.get_attribute("href") or "")
        and not a.text.startswith("https://evil.example/")
    ]
    assert hidden == []
    strong = [
        e.text
        for e in browser.find_elements(By.CSS_SELECTOR, "strong, b")  # type: ignore[attr-defined]
    ]
    assert not any("PWNED" in text or text == "bold" for text in strong), strong
    assert "**PWNED** :red[red text] [click me](https://evil.example/md)" in body
    assert "\\u202eexe.txt" in body
    assert "\u202e" not in body
    assert not browser.find_elements(By.CSS_SELECTOR, '[data-testid="stMarkdown"] table')  # type: ignore[attr-defined]
    legend = " ".join(
        e.text
        for e in browser.find_elements(By.CSS_SELECTOR, ".js-plotly-plot .legendtext")  # type: ignore[attr-defined]
    )
    assert HOSTILE_DOC in legend, legend


def test_a_store_of_one_run_dates_its_point_on_quality_in_chromium(
    tmp_path: Path, browser: object
) -> None:
    """After `make demo` the store holds one run and no event: the chart's time axis, drawn
    on the empty event strip, had no label at all (and a lone point no interval)."""
    from selenium.webdriver.common.by import By
    from test_dashboard_seed import goldset, perfect, query_ids, store_run

    from evalkit.store import Store
    from evalkit.store.goldsets import save_goldset

    reason = _missing()
    if reason:
        pytest.fail(f"{reason}; `make browser` installs Chromium and chromedriver")
    path = tmp_path / "evalkit.duckdb"
    gold = goldset(6)
    with Store.open(path) as store:
        save_goldset(store, gold)
        store_run(
            store,
            gold,
            {q: perfect(q) for q in query_ids(6)},
            retriever_kind="list",
            config={"kind": "list"},
            collection=None,
            model_fingerprint="m",
            index_fingerprint=None,
        )
    with _serving(path, tmp_path / "dashboard.log") as url:
        _render(browser, f"{url}/quality?goldset=mini&measure=ndcg%4010", charts=1)
        # The time axis is the event strip's (x2), under the measure's.
        axis_ticks = ".js-plotly-plot .xtick text, .js-plotly-plot .x2tick text"
        ticks = [e.text for e in browser.find_elements(By.CSS_SELECTOR, axis_ticks)]  # type: ignore[attr-defined]
        bars = browser.find_elements(By.CSS_SELECTOR, ".js-plotly-plot .errorbar")  # type: ignore[attr-defined]
    assert any(re.search(r"\d\d:\d\d", tick) for tick in ticks), ticks
    assert not any(re.search(r"\d\d:\d\d:\d\d\.\d", tick) for tick in ticks), ticks
    assert bars


def _y_ticks(driver, figure, path: Path, axis: str = "y") -> list[str]:  # type: ignore[no-untyped-def]
    """The ``axis`` (y or x) tick labels Plotly draws for ``figure`` in Chromium (from a static
    page)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    figure.write_html(path, include_plotlyjs=True, full_html=True)
    driver.get(path.as_uri())
    WebDriverWait(driver, PAGE_SECONDS, poll_frequency=0.25).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, f".js-plotly-plot .{axis}tick text")
    )
    return [
        e.text for e in driver.find_elements(By.CSS_SELECTOR, f".js-plotly-plot .{axis}tick text")
    ]


def test_latency_log_axes_label_their_ticks_with_whole_numbers_in_chromium(
    tmp_path: Path, browser: object
) -> None:
    """A log axis across more than a decade labelled the ticks between powers of ten by
    their first digit alone: Traffic's replay latency of 20-45 ms read "2-4" beside
    production's 200-400 ms, and Index health's the same."""
    import pandas as pd

    from evalkit.dashboard import charts
    from evalkit.dashboard.index_latency import latency_size_chart

    reason = _missing()
    if reason:
        pytest.fail(f"{reason}; `make browser` installs Chromium and chromedriver")
    windows = pd.DataFrame(
        {
            "window": ["2026-11-24", "2026-11-25", "2026-11-26"],
            "latency_p50": [29.0, 48.0, 20.0],
            "logged_latency_p95": [390.0, 385.0, 380.0],
        }
    )
    traffic = charts.lines_chart(
        windows,
        x="window",
        columns=["latency_p50", "logged_latency_p95"],
        title="Replay and production latency percentiles",
        y_title="latency (ms, log scale)",
        log_y=True,
    )
    assert _y_ticks(browser, traffic, tmp_path / "traffic.html") == ["20", "50", "100", "200"]
    runs = pd.DataFrame(
        {
            "retriever": ["bm25", "chroma", "chroma"],
            "run_id": ["r1", "r2", "r3"],
            "started_at": ["2026-11-27"] * 3,
            "n_latencies": [122] * 3,
            "index_documents": [1405, 1405, 1422],
            "latency_p50": [0.2, 0.9, 7.0],
            "latency_p95": [0.45, 80.0, 60.0],
        }
    )
    index = latency_size_chart(runs)
    assert _y_ticks(browser, index, tmp_path / "index.html") == [
        "0.2",
        "0.5",
        "1",
        "2",
        "5",
        "10",
        "20",
        "50",
        "100",
    ]
    # Runs all at one index size: Plotly's auto ticks read "329.5 documents".
    same_size = runs.assign(index_documents=330)
    assert _y_ticks(browser, latency_size_chart(same_size), tmp_path / "same.html", "x") == [
        "329",
        "330",
        "331",
    ]
    # Within one decade Plotly's evenly spaced ticks read as whole numbers already.
    narrow = charts.lines_chart(
        windows.iloc[[0, 2]],
        x="window",
        columns=["latency_p50"],
        log_y=True,
        title="t",
        y_title="ms",
    )
    assert _y_ticks(browser, narrow, tmp_path / "narrow.html")[:3] == ["20", "21", "22"]


def _by_sidebar(driver, title: str, *, charts: int = 0) -> str:  # type: ignore[no-untyped-def]
    """Open page ``title`` by its sidebar link, as a user moves between pages; its text."""
    from selenium.webdriver.common.by import By

    links = driver.find_elements(By.CSS_SELECTOR, '[data-testid="stSidebarNavLink"]')
    next(link for link in links if str(link.get_attribute("textContent")).endswith(title)).click()
    return _finished(driver, title, charts=charts)


def test_a_page_left_by_the_sidebar_reopens_on_its_choices_in_chromium(
    served: tuple[str, SeededStore], browser: object
) -> None:
    """Quality over time at recall@10 by run index, left for the Overview by the sidebar and
    reopened by it, came back on ndcg@10 by time: the sidebar's links drop the URL's
    parameters, which the pickers follow."""
    from urllib.parse import parse_qs, urlparse

    url, _ = served

    def asked() -> dict[str, str]:
        query = urlparse(str(browser.current_url)).query  # type: ignore[attr-defined]
        return {k: v[0] for k, v in parse_qs(query).items()}

    _finished(
        browser,
        "Quality over time",
        charts=1,
        url=f"{url}/quality?goldset=mini&measure=recall%4010&x=run+index",
    )
    _by_sidebar(browser, "Overview")
    assert asked()["measure"] == "ndcg@10"  # the Overview's own choice
    body = _by_sidebar(browser, "Quality over time", charts=1)
    assert (asked()["measure"], asked()["x"]) == ("recall@10", "run index")
    assert "Latest recall@10 of each series" in body
    # A link (an alert's, a shared one) opens on its own choices.
    _finished(browser, "Quality over time", charts=1, url=f"{url}/quality?goldset=mini")
    assert asked()["measure"] == "ndcg@10"
