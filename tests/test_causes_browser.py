"""Probable causes in a real browser: a store whose index lost relevant documents (and an
audit that found them missing) is served by `evalkit dashboard`; from the Overview, the
regressed series leads to Compare runs, whose panel names "missing from the index" first,
and its link opens Index health on that audit with the documents shown.

Uses the Chromium fixtures of ``test_dashboard_browser`` (same requirements).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from test_causes import REMOVED, seed_removed_documents
from test_dashboard_browser import (  # noqa: F401  (fixture)
    BUSY,
    PAGE_SECONDS,
    SCREENSHOTS,
    _missing,
    _serving,
    browser,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def served_removed(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[str, dict[str, str]]]:
    """`evalkit dashboard` serving the store with documents removed from the index."""
    reason = _missing()
    if reason:
        pytest.fail(f"{reason}; `make browser` installs Chromium and chromedriver")
    directory = tmp_path_factory.mktemp("browser-causes")
    ids = seed_removed_documents(directory / "evalkit.duckdb")
    with _serving(directory / "evalkit.duckdb", directory / "dashboard.log") as url:
        yield url, ids


def _click_link(driver, text: str):  # type: ignore[no-untyped-def]
    """Click the page link whose text is ``text`` (waiting until it is drawn)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def found(d):  # type: ignore[no-untyped-def]
        links = [
            link
            for link in d.find_elements(By.CSS_SELECTOR, '[data-testid="stPageLink-NavLink"]')
            if text in link.text
        ]
        return links[0] if links else False

    link = WebDriverWait(driver, PAGE_SECONDS, poll_frequency=0.25).until(found)
    href = str(link.get_attribute("href"))
    link.click()
    return href


def _wait_for(driver, text: str) -> str:  # type: ignore[no-untyped-def]
    """Wait until the page's text holds ``text`` and the script has finished; the text."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def shown(d) -> bool:  # type: ignore[no-untyped-def]
        running = d.find_elements(By.CSS_SELECTOR, BUSY)
        return not running and text in d.find_element(By.TAG_NAME, "body").text

    WebDriverWait(driver, PAGE_SECONDS, poll_frequency=0.25).until(shown)
    time.sleep(1.0)
    WebDriverWait(driver, PAGE_SECONDS, poll_frequency=0.25).until(shown)
    assert not driver.find_elements(By.CSS_SELECTOR, '[data-testid="stException"]')
    return str(driver.find_element(By.TAG_NAME, "body").text)


def test_overview_to_the_cause_and_the_page_that_proves_it(
    served_removed: tuple[str, dict[str, str]],
    browser: object,  # noqa: F811
) -> None:
    url, ids = served_removed
    driver = browser
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    driver.get(f"{url}/")  # type: ignore[attr-defined]
    overview = _wait_for(driver, "Compare with baseline")
    assert "regression" in overview

    _click_link(driver, "Compare with baseline")
    body = _wait_for(driver, "Probable causes")
    current = str(driver.current_url)  # type: ignore[attr-defined]
    assert f"baseline={ids['baseline']}" in current
    assert f"candidate={ids['candidate']}" in current
    causes = body[body.index("Probable causes") :]
    assert causes.index("missing from the index") < causes.index("index changed")
    assert "1. missing from index" in causes
    assert (
        "7 of the 7 relevant documents lost by the 7 queries that dropped are missing from "
        "the index" in causes
    )
    assert "100% of the loss" in causes
    driver.save_screenshot(str(SCREENSHOTS / "compare-causes.png"))  # type: ignore[attr-defined]

    href = _click_link(driver, "Index health: the audit's findings")
    assert f"audit={ids['audit']}" in href
    body = _wait_for(driver, "orphaned_judgments: affected documents and queries")
    assert f"audit={ids['audit']}" in str(driver.current_url)  # type: ignore[attr-defined]
    assert f"Findings of audit {ids['audit']}" in body
    shown = body[body.index("orphaned_judgments: affected documents") :]
    for doc in REMOVED:
        assert doc in shown, (doc, shown[:1000])
    driver.save_screenshot(str(SCREENSHOTS / "index-health-from-causes.png"))  # type: ignore[attr-defined]
