"""The dashboard in a real browser: `evalkit dashboard` serves the seeded store, headless
Chromium loads every page, the main figures must be rendered, and each page is saved as a
screenshot under reports/dashboard/.

Needs Debian's ``chromium`` and ``chromium-driver`` and the ``selenium`` package; the test
fails, saying which is missing, where they are not installed (`make browser` installs them).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from test_dashboard_seed import (
    DEGRADED_NDCG,
    SERIES_A,
    SeededStore,
    seed_mixed_store,
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
def _serving(store: Path, log: Path) -> Iterator[str]:
    """`evalkit dashboard` serving ``store`` on a free loopback port; yields its URL."""
    port = _free_port()
    with log.open("w", encoding="utf-8") as output:
        server = subprocess.Popen(
            [sys.executable, "-m", "evalkit", "dashboard", "--port", str(port)],
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


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Headless Debian Chromium driven by chromedriver, with a fresh profile."""
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


def _render(driver, url: str, *, charts: int) -> list[str]:  # type: ignore[no-untyped-def]
    """Load ``url``, wait until the script has finished with its metrics (and ``charts``
    Plotly charts) drawn; return the metric values shown."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url)

    def settled(d) -> bool:  # type: ignore[no-untyped-def]
        running = d.find_elements(By.CSS_SELECTOR, '[data-testid="stStatusWidget"]')
        values = d.find_elements(By.CSS_SELECTOR, '[data-testid="stMetricValue"]')
        drawn = d.find_elements(By.CSS_SELECTOR, ".js-plotly-plot .main-svg")
        return not running and bool(values) and len(drawn) >= charts

    WebDriverWait(driver, PAGE_SECONDS, poll_frequency=0.25).until(settled)
    assert not driver.find_elements(By.CSS_SELECTOR, '[data-testid="stException"]')
    errors = driver.find_elements(By.CSS_SELECTOR, '[data-testid="stAlertContentError"]')
    assert not errors, [e.text for e in errors]
    return [e.text for e in driver.find_elements(By.CSS_SELECTOR, '[data-testid="stMetricValue"]')]


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
        "drift": (f"drift?check={seeded.drift_check}", 4, ["drift"]),
        "traffic": ("traffic?window=2026-11-20", 5, ["20", "0.250", "0.500"]),
        "answers": ("answers", 2, ["0.583"]),
        "index_health": ("index_health", 1, ["51"]),
        "alerts": ("alerts", 0, ["1"]),
    }
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for name, (path, charts, expected) in pages.items():
        shown = _render(browser, f"{url}/{path}", charts=charts)
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
        running = d.find_elements(By.CSS_SELECTOR, '[data-testid="stStatusWidget"]')
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
