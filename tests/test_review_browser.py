"""The review queue's page in headless Chromium: a reviewer signs, grades three draft items
with the keyboard alone, publishes, and the new goldset version is in the store with exactly
those grades; a second reviewer's reviews show their agreement; a read-only dashboard saves
nothing.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from test_dashboard_browser import (  # noqa: F401  (fixture)
    BUSY,
    SCREENSHOTS,
    _cells,
    _serving,
    browser,
)

from evalkit.clock import utc_now
from evalkit.pipeline.review import ingest_draft, record_review
from evalkit.records.review import Verdict
from evalkit.store import Store
from evalkit.store.goldsets import list_goldsets, load_stored_goldset
from evalkit.store.review import item_reviews, list_items

pytestmark = pytest.mark.slow

PAGE_SECONDS = 90
GOLDSET = "support"
DRAFT = {
    "g1": (
        "What does telomerase do in cancer cells?",
        {"d1": "Telomerase extends telomeres.", "d2": "Telomeres shorten."},
    ),
    "g2": ("How long is the refund window for annual plans?", {"d3": "Refunds within 30 days."}),
    "g3": (
        "Which protein marks senescent cells?",
        {"d4": "p16INK4a marks senescence.", "d5": "Senescent cells secrete SASP."},
    ),
}
KEYS = {"g1": "30", "g2": "2", "g3": "21"}
"""The grades the reviewer types for each query's documents, in their order."""


def _write_draft(directory: Path) -> Path:
    directory.mkdir(parents=True)
    queries, judgments, corpus = [], [], []
    for query_id, (text, documents) in DRAFT.items():
        queries.append({"id": query_id, "text": text, "tags": ["generated"]})
        for doc_id, body in documents.items():
            judgments.append({"query_id": query_id, "doc_id": doc_id, "relevance": None})
            corpus.append({"id": doc_id, "text": body})
    for name, lines in (("queries", queries), ("judgments", judgments), ("corpus", corpus)):
        (directory / f"{name}.jsonl").write_text(
            "".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8"
        )
    return directory


@pytest.fixture
def queued_store(tmp_path: Path) -> Path:
    """A store whose review queue holds the three draft items of goldset ``support``."""
    path = tmp_path / "evalkit.duckdb"
    with Store.open(path) as store:
        ingest_draft(store, _write_draft(tmp_path / "draft"), goldset=GOLDSET)
    return path


def _settled(driver, *, text: str | None = None) -> str:  # type: ignore[no-untyped-def]
    """Wait until the page's script has finished (and ``text`` is shown); the page text."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def done(d) -> bool:  # type: ignore[no-untyped-def]
        if d.find_elements(By.CSS_SELECTOR, BUSY):
            return False
        shown = d.find_elements(
            By.CSS_SELECTOR, '[data-testid="stMetricValue"], [data-testid="stException"]'
        )
        body = d.find_element(By.TAG_NAME, "body").text
        return bool(shown) and (text is None or text in body)

    WebDriverWait(driver, PAGE_SECONDS, poll_frequency=0.2).until(done)
    time.sleep(0.3)
    WebDriverWait(driver, PAGE_SECONDS, poll_frequency=0.2).until(done)
    assert not driver.find_elements(By.CSS_SELECTOR, '[data-testid="stException"]')
    return str(driver.find_element(By.TAG_NAME, "body").text)


def _current_query(driver) -> str:  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.by import By

    heading = driver.find_element(By.CSS_SELECTOR, '[data-testid="stHeading"] h3')
    return str(heading.text).strip()


def _press(driver, key: str) -> None:  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.action_chains import ActionChains

    driver.execute_script("document.activeElement && document.activeElement.blur()")
    ActionChains(driver).send_keys(key).perform()
    _settled(driver)


def _sign(driver, name: str) -> None:  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    field = driver.find_element(By.CSS_SELECTOR, 'input[aria-label^="Reviewer"]')
    field.send_keys(name)
    field.send_keys(Keys.TAB)
    _settled(driver)


def test_three_items_graded_with_the_keyboard_are_published_as_a_new_version(
    queued_store: Path,
    browser: object,  # noqa: F811
    tmp_path: Path,
) -> None:
    from selenium.webdriver.common.by import By

    texts = {text: query_id for query_id, (text, _) in DRAFT.items()}
    with _serving(queued_store, tmp_path / "dashboard.log") as url:
        browser.get(f"{url}/review")  # type: ignore[attr-defined]
        _settled(browser)
        _sign(browser, "ann")
        graded = []
        for _ in DRAFT:
            query_id = texts[_current_query(browser)]
            for key in KEYS[query_id]:
                _press(browser, key)
            _press(browser, "a")
            body = _settled(browser, text="Accepted item")
            assert "as ann" in body
            graded.append(query_id)
        assert sorted(graded) == sorted(DRAFT)
        assert "Nothing left for you to review" in _settled(browser)

        with Store.open(queued_store) as store:
            items = list_items(store, goldset=GOLDSET)
            for queued in items:
                record_review(
                    store,
                    queued.item.item_id,
                    reviewer="bob",
                    verdict=Verdict.accept,
                    grades={doc.doc_id: 2 for doc in queued.item.documents},
                )
        browser.get(f"{url}/review")  # type: ignore[attr-defined]
        body = _settled(browser, text="ann / bob")
        assert "Agreement needs two reviewers" not in body

        browser.find_element(  # type: ignore[attr-defined]
            By.XPATH, "//button[contains(., 'Publish the accepted items')]"
        ).click()
        body = _settled(browser, text=f"Published {GOLDSET}")
        browser.save_screenshot(str(tmp_path / "review.png"))  # type: ignore[attr-defined]

    with Store.open(queued_store, read_only=True) as store:
        versions = [row for row in list_goldsets(store) if row.name == GOLDSET]
        assert len(versions) == 1
        goldset = load_stored_goldset(store, GOLDSET)
        reviews = item_reviews(store, goldset=GOLDSET)
    assert goldset.version in body
    judged = {(j.query_id, j.doc_id): j.relevance for j in goldset.judgments}
    # ann and bob both accepted; each document's grade is the lower median of their two.
    expected = {}
    for query_id, (_, documents) in DRAFT.items():
        for doc_id, key in zip(documents, KEYS[query_id], strict=True):
            expected[(query_id, doc_id)] = min(int(key), 2)
    assert judged == expected
    assert {q.text for q in goldset.queries} == set(texts)
    signed = {review.reviewer for records in reviews.values() for review in records}
    assert signed == {"ann", "bob"}
    assert all(
        review.reviewed_at <= utc_now() for records in reviews.values() for review in records
    )


def test_a_read_only_dashboard_shows_the_queue_and_saves_nothing(
    queued_store: Path,
    browser: object,  # noqa: F811
    tmp_path: Path,
) -> None:
    from selenium.webdriver.common.by import By

    with _serving(queued_store, tmp_path / "dashboard.log", extra=("--read-only",)) as url:
        browser.get(f"{url}/review")  # type: ignore[attr-defined]
        body = _settled(browser, text="read-only")
        assert "Store (read-only)" in body
        accept = browser.find_element(  # type: ignore[attr-defined]
            By.XPATH, "//button[contains(., 'Accept and save')]"
        )
        assert not accept.is_enabled()
        _press(browser, "2")
        _press(browser, "a")
    with Store.open(queued_store, read_only=True) as store:
        assert item_reviews(store, goldset=GOLDSET) == {}
        assert [queued.status for queued in list_items(store, goldset=GOLDSET)] == ["open"] * 3


def test_a_review_saved_on_a_read_only_mount_says_not_saved(
    queued_store: Path,
    browser: object,  # noqa: F811
    tmp_path: Path,
) -> None:
    """A container mounting the store read-only (errno 30, not the PermissionError of a
    file of another user) replaced the review page by a traceback when a review was saved,
    losing the reviewer's grades."""
    import os
    import shutil
    import subprocess

    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("a read-only bind mount needs root")
    mount = tmp_path / "ro"
    mount.mkdir()
    binds = (
        ["mount", "--bind", str(queued_store.parent), str(mount)],
        ["mount", "-o", "remount,ro,bind", str(mount)],
    )
    for command in binds:
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            subprocess.run(["umount", "-l", str(mount)], check=False)
            pytest.skip(f"cannot bind-mount read-only here: {done.stderr.strip()}")
    try:
        with _serving(mount / queued_store.name, tmp_path / "dashboard.log") as url:
            browser.get(f"{url}/review")  # type: ignore[attr-defined]
            _settled(browser)
            _sign(browser, "ann")
            texts = {text: query_id for query_id, (text, _) in DRAFT.items()}
            for key in KEYS[texts[_current_query(browser)]]:
                _press(browser, key)
            _press(browser, "a")
            body = _settled(browser, text="Not saved")
            assert "Read-only file system" in body
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)
    with Store.open(queued_store, read_only=True) as store:
        assert item_reviews(store, goldset=GOLDSET) == {}


def _websocket_handshake(url: str, host: str) -> str:
    """The status line the dashboard at ``url`` answers a browser's WebSocket handshake
    with, the request naming ``host`` (its Host and Origin), as a page of that site whose
    name was rebound to this address would send it."""
    port = urlsplit(url).port
    assert port is not None
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET /_stcore/stream HTTP/1.1\r\nHost: {host}\r\nOrigin: http://{host}\r\n"
        "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Protocol: streamlit\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
        connection.sendall(request.encode())
        return connection.recv(4096).decode("latin-1").split("\r\n", 1)[0]


def test_a_connection_naming_another_host_is_refused_and_saves_nothing(
    queued_store: Path, tmp_path: Path
) -> None:
    """DNS rebinding: a page of rebind.example whose name now resolves to 127.0.0.1 is, for
    the browser, the same origin as the dashboard; only the Host header tells. The
    dashboard's WebSocket (every script run, every save) answers the names it listens on
    and the --allowed-host ones, and refuses any other."""
    with _serving(
        queued_store, tmp_path / "dashboard.log", extra=("--allowed-host", "dash.example.com")
    ) as url:
        port = urlsplit(url).port
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"dash.example.com:{port}"):
            assert _websocket_handshake(url, host).split()[1] == "101", host
        for host in (f"rebind.example:{port}", f"127.0.0.1.rebind.example:{port}"):
            assert _websocket_handshake(url, host).split()[1] == "403", host
    assert "Rejecting WebSocket connection" in (tmp_path / "dashboard.log").read_text()
    with Store.open(queued_store, read_only=True) as store:
        assert item_reviews(store, goldset=GOLDSET) == {}


def test_queued_text_and_reviewer_names_are_shown_as_text_in_chromium(
    tmp_path: Path,
    browser: object,  # noqa: F811
) -> None:
    """A query from traffic, an item's reason, document ids, a suggester's and reviewers'
    names holding Markdown images and links: the page shows them as written, makes no
    request to where they point and draws no image, nor a link hiding its target."""
    from loopback import running
    from selenium.webdriver.common.by import By

    from evalkit.records import Query
    from evalkit.records.review import ReviewDocument, ReviewItem, ReviewOrigin, ReviewRecord
    from evalkit.store.review import add_review, save_items

    fetched: list[str] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            fetched.append(self.path)
            self.send_response(404)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    with running(Receiver) as receiver:
        base = receiver.url

        def hostile(field: str) -> str:
            return f"{field} ![x]({base}/{field}.png) [x]({base}/{field})"

        item = ReviewItem(
            item_id="hostile-item",
            goldset="hostile",
            origin=ReviewOrigin.traffic,
            query=Query("q1", hostile("query")),
            documents=(
                ReviewDocument(hostile("doc"), "a passage", 2, hostile("suggester")),
                ReviewDocument("plain-doc", "another passage"),
            ),
            reason=hostile("reason"),
        )
        path = tmp_path / "evalkit.duckdb"
        grades = {document.doc_id: 1 for document in item.documents}
        with Store.open(path) as store:
            save_items(store, [item])
            record_review(
                store,
                item.item_id,
                reviewer=hostile("reviewer_a"),
                verdict=Verdict.accept,
                grades=grades,
            )
            # A name stored before names were checked: a right-to-left override in it.
            overridden = ReviewRecord(
                item.item_id,
                hostile("reviewer_b") + " \u202egpj.exe",
                Verdict.accept,
                grades,
                utc_now(),
            )
            add_review(store, overridden)
        with _serving(path, tmp_path / "dashboard.log") as url:
            browser.get(f"{url}/review?goldset=hostile")  # type: ignore[attr-defined]
            shown = _settled(browser, text="reviewer_a")
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            browser.save_screenshot(str(SCREENSHOTS / "review-hostile-item.png"))  # type: ignore[attr-defined]
            _sign(browser, hostile("signer"))
            _press(browser, "2")
            _press(browser, "1")
            _press(browser, "a")
            shown += _settled(browser, text="Accepted item")
            agreement = _cells(browser, "Reviewers")
            time.sleep(1.0)  # an image the page asked for has been fetched by now
            browser.save_screenshot(str(SCREENSHOTS / "review-hostile.png"))  # type: ignore[attr-defined]
            # A URL written out may be autolinked, its text its target (as on every page);
            # no link may hide where it goes behind other words.
            links = [
                (a.get_attribute("textContent"), a.get_attribute("href"))
                for a in browser.find_elements(By.TAG_NAME, "a")  # type: ignore[attr-defined]
            ]
            images = [
                image.get_attribute("src")
                for image in browser.find_elements(By.TAG_NAME, "img")  # type: ignore[attr-defined]
                if base in (image.get_attribute("src") or "")
            ]
    assert fetched == []
    assert [(text, href) for text, href in links if base in href and text != href] == []
    assert images == []
    for field in ("query", "reason", "doc", "suggester", "reviewer_a", "signer"):
        assert f"{field} ![x]({base}/{field}.png) [x]({base}/{field})" in shown, field
    assert "\\u202egpj.exe" in shown
    assert "\u202e" not in shown
    assert any("\\u202egpj.exe" in cell for cell in agreement), agreement
    assert not any("\u202e" in cell for cell in agreement), agreement
