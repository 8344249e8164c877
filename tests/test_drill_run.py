"""A drill of the user's own monitoring (``evalkit drill``), end to end.

The demo corpus in embedded Chroma with the bundled MiniLM, the demo goldset stored, and an
evalkit.toml whose nightly goldset_replay job reads the collection and whose
precision_regression rule (Page-Hinkley) watches nDCG@10. Quiet cycles raise nothing; the
deletion of a third of the relevant documents is caught on its first cycle and resolves within
six cycles of the restore (4 here: Page-Hinkley's memory of the drop); the live collection is
the same after the drill; its runs stay in the drill's store. A drill killed with SIGKILL
leaves its copy, which the next drill removes; one stopped by SIGTERM removes its own.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from chroma_server import ChromaServer, chroma_server_fixture  # noqa: F401
from demo_index import cached_minilm, demo_documents, demo_goldset

from evalkit.cli import invoke
from evalkit.config import load_settings
from evalkit.drill.incidents import INCIDENTS
from evalkit.drill.scratch import DRILL_PREFIX
from evalkit.retrievers.chroma_client import close_client, contents_fingerprint, open_chroma_client
from evalkit.retrievers.indexing import index_corpus
from evalkit.scheduler.drill import DrillReport, DrillRequest, run_drill
from evalkit.store import Store
from evalkit.store.goldsets import save_goldset

pytestmark = pytest.mark.slow

CONFIG = """
[[jobs]]
name = "nightly"
kind = "goldset_replay"
goldset = "demo"
collection = "demo-kb"
k = 10
measures = ["ndcg@10", "recall@10"]
cron = "0 2 * * *"

[[alerts.rules]]
name = "ndcg-drop"
kind = "precision_regression"
goldset = "demo"
measures = ["ndcg@10"]
method = "page_hinkley"
warmup = 2
"""
JOB_FAILURE_RULE = """
[[alerts.rules]]
name = "job-failed"
kind = "job_failure"
"""


INDEX_INCIDENTS = (
    "deletion",
    "duplicates",
    "stale_content",
    "model_mismatch",
    "chunking_drift",
    "ann_degradation",
)


def on_the_retriever_table(config: str) -> str:
    """``config`` with its jobs reading the ``[retriever]`` table's index, not demo-kb."""
    return config.replace('collection = "demo-kb"\n', "")


@pytest.fixture(scope="module")
def demo_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with the evalkit.toml above and a home (``.evalkit``) holding the demo
    goldset and the demo corpus in collection demo-kb."""
    folder = tmp_path_factory.mktemp("drill")
    (folder / "evalkit.toml").write_text(CONFIG, encoding="utf-8")
    home = folder / ".evalkit"
    client = open_chroma_client(path=home / "chroma")
    try:
        index_corpus(client, demo_documents(), cached_minilm(), collection_name="demo-kb")
    finally:
        close_client(client)
    with Store.open(home / "evalkit.duckdb") as store:
        save_goldset(store, demo_goldset())
    return folder


@pytest.fixture
def in_demo_home(demo_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("EVALKIT_CONFIG", str(demo_home / "evalkit.toml"))
    monkeypatch.setenv("EVALKIT_HOME", str(demo_home / ".evalkit"))
    monkeypatch.chdir(demo_home)
    return demo_home


def _collections(home: Path) -> list[str]:
    client = open_chroma_client(path=home / ".evalkit" / "chroma")
    try:
        return sorted(collection.name for collection in client.list_collections())
    finally:
        close_client(client)


def _live_fingerprint(home: Path) -> str:
    client = open_chroma_client(path=home / ".evalkit" / "chroma")
    try:
        return contents_fingerprint(client.get_collection("demo-kb", embedding_function=None))
    finally:
        close_client(client)


def test_a_deletion_is_caught_on_its_first_cycle_and_the_live_collection_is_untouched(
    in_demo_home: Path,
) -> None:
    before = _live_fingerprint(in_demo_home)
    user = load_settings()
    report = run_drill(
        user,
        DrillRequest(incidents=(("deletion", 0.34),), quiet_cycles=3, cycles=6, drill_id="t1"),
    )

    assert report.false_alarms == ()
    [deletion] = report.incidents
    assert deletion.injected is not None
    assert deletion.injected.incident == "deletion"
    assert deletion.first_alert == ("ndcg-drop", 1), deletion
    before_ndcg, after_ndcg = deletion.effect["ndcg@10"]
    assert before_ndcg is not None
    assert after_ndcg is not None
    assert after_ndcg < before_ndcg
    # No audit job: explain names the relevant documents no query retrieves any more, a hint
    # behind the changed index, which can account for the whole loss.
    assert (deletion.top_cause, deletion.cause_rank) == ("index_changed", 2), deletion
    assert deletion.audit_findings == {}
    # Page-Hinkley remembers the drop: the restored level takes a few runs to clear it.
    assert deletion.resolved_after is not None
    assert 1 <= deletion.resolved_after <= 6
    assert report.exit_code == 0
    assert report.copies == {"demo-kb": f"{DRILL_PREFIX}t1-demo-kb"}

    assert _collections(in_demo_home) == ["demo-kb"]
    assert _live_fingerprint(in_demo_home) == before
    with Store.open(user.resolved_store_path, read_only=True) as store:
        assert store.fetch("SELECT count(*) FROM runs")[0][0] == 0, "no drill run in the live store"
    with Store.open(Path(report.store), read_only=True) as store:
        # 3 quiet cycles, 1 with the incident, then the cycles until it resolved.
        runs = store.fetch("SELECT count(*) FROM runs")[0][0]
        assert runs == 3 + 1 + deletion.resolved_after
    folder = Path(report.folder)
    assert json.loads((folder / "report.json").read_text(encoding="utf-8")) == report.to_dict()
    markdown = (folder / "report.md").read_text(encoding="utf-8")
    assert (
        "| deletion | 0.34 | cycle 1 | ndcg-drop | index_changed (expected cause ranked 2) |"
        in (markdown)
    )
    assert f"- deletion: ndcg@10 {before_ndcg:.4f} -> {after_ndcg:.4f}" in markdown


def test_an_incident_no_rule_can_see_is_reported_as_not_covered_and_fails_the_drill(
    in_demo_home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    blind = in_demo_home / "blind.toml"
    blind.write_text(
        CONFIG.split("[[alerts.rules]]", maxsplit=1)[0]
        + '[[alerts.rules]]\nname = "failed-jobs"\nkind = "job_failure"\n',
        encoding="utf-8",
    )
    monkeypatch.setenv("EVALKIT_CONFIG", str(blind))
    code = invoke(["drill", "--incident", "stale_content", "--format", "json"])
    data = json.loads(capsys.readouterr().out)
    assert code == 1
    [gap] = data["incidents"]
    assert (gap["covered"], gap["detected"], gap["injected"]) == (False, False, None)
    assert gap["gap"] == (
        "not covered: no [[alerts.rules]] entry of kind 'precision_regression' or "
        "'audit_findings'; e.g. a 'precision_regression' rule over a 'goldset_replay' job"
    )


def test_the_command_exits_1_on_an_incident_not_caught_and_names_what_it_injected(
    in_demo_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = invoke(["drill", "--incident", "duplicates:0.01", "--cycles", "1", "--format", "json"])
    data = json.loads(capsys.readouterr().out)
    assert code == 1
    [missed] = data["incidents"]
    assert (missed["incident"], missed["detected"], missed["first_alert"]) == (
        "duplicates",
        False,
        None,
    )
    # At least one of the relevant documents, and 1 % of the rest.
    assert missed["injected"] == "re-added 3 documents under new ids"
    assert data["exit_code"] == 1
    assert invoke(["drill", "--incident", "fire"]) == 2
    assert "unknown incident 'fire'; the incidents are: deletion, duplicates" in (
        capsys.readouterr().err
    )


def _drill_process(home: Path) -> subprocess.Popen[str]:
    environment = {
        **os.environ,
        "EVALKIT_CONFIG": str(home / "evalkit.toml"),
        "EVALKIT_HOME": str(home / ".evalkit"),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "evalkit", "drill", "--quiet-cycles", "50", "--cycles", "5"],
        cwd=home,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_copy(home: Path, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 300
    while len(_collections(home)) < 2:
        assert process.poll() is None, process.communicate()[1]
        assert time.monotonic() < deadline, "the drill made no copy"
        time.sleep(0.2)


def test_sigterm_removes_the_copy_and_after_sigkill_the_next_drill_does(
    in_demo_home: Path,
) -> None:
    before = _live_fingerprint(in_demo_home)
    stopped = _drill_process(in_demo_home)
    _wait_for_copy(in_demo_home, stopped)
    stopped.send_signal(signal.SIGTERM)
    assert stopped.wait(timeout=120) == 128 + signal.SIGTERM
    assert _collections(in_demo_home) == ["demo-kb"]

    killed = _drill_process(in_demo_home)
    _wait_for_copy(in_demo_home, killed)
    killed.kill()
    killed.wait(timeout=60)
    [left] = [name for name in _collections(in_demo_home) if name.startswith(DRILL_PREFIX)]
    drills = in_demo_home / ".evalkit" / "drills"
    unfinished = [folder for folder in drills.iterdir() if not (folder / "report.json").exists()]
    # The killed drill's, with no report: it swept the stopped one's when it started.
    assert len(unfinished) == 1, unfinished
    report = run_drill(
        load_settings(),
        DrillRequest(incidents=(("deletion", 0.34),), quiet_cycles=2, cycles=1, recovery_cycles=1),
    )
    assert report.incidents[0].detected
    assert left not in _collections(in_demo_home)
    assert not any(folder.exists() for folder in unfinished)
    assert all((folder / "report.json").is_file() for folder in drills.iterdir())
    assert _collections(in_demo_home) == ["demo-kb"]
    assert _live_fingerprint(in_demo_home) == before


EXPECTED_CAUSES = {
    "deletion": (("index-health", 1), "missing_from_index", 1),
    "duplicates": (("index-health", 1), "crowded_by_duplicates", 1),
    "stale_content": (("index-health", 1), "stale_documents", 1),
    "model_mismatch": (("ndcg-drop", 1), "index_model_mismatch", 1),
    "chunking_drift": (("index-health", 1), "missing_from_index", 1),
    "ann_degradation": (("index-health", 1), "retriever_changed", 1),
}
"""Per incident of the audited drill: its first alert (rule, cycle), the cause ``explain``
named first and the injected cause's rank."""

SINK = """
[[alerts.sinks]]
name = "oncall"
kind = "webhook"
url = "{url}"
secret_env = "EVALKIT_DRILL_TEST_SECRET"
"""

AUDITED = """
[[jobs]]
name = "health"
kind = "audit"
collection = "demo-kb"
goldset = "demo"
cron = "0 3 * * *"

[[alerts.rules]]
name = "index-health"
kind = "audit_findings"

[[alerts.rules]]
name = "wrong-model"
kind = "model_mismatch"
"""


def test_a_gate_rule_compares_with_the_quiet_copy_and_one_that_cannot_be_evaluated_is_named(
    in_demo_home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A gate rule pins a baseline run of the user's store, which the drill's store lacks:
    the drill pins the first quiet cycle's run of its goldset instead. A gate rule of a
    goldset no job replays cannot be evaluated, and the report says so and why."""
    pinned = in_demo_home / "pinned.toml"
    gate = '[[alerts.rules]]\nname = "{name}"\nkind = "precision_regression"\n'
    gate += (
        'goldset = "{goldset}"\nmeasures = ["ndcg@10"]\nbaseline_run = "20260101T000000-abcdef"\n'
    )
    pinned.write_text(
        CONFIG.split("[[alerts.rules]]", maxsplit=1)[0]
        + gate.format(name="gate", goldset="demo")
        + gate.format(name="elsewhere", goldset="other"),
        encoding="utf-8",
    )
    monkeypatch.setenv("EVALKIT_CONFIG", str(pinned))
    code = invoke(
        ["drill", "--incident", "deletion:0.34", "--quiet-cycles", "1", "--cycles", "1",
         "--recovery-cycles", "1"]
    )  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "warning: rule elsewhere could not be evaluated, so it could not fire: " in captured.err
    assert "warning: rule gate " not in captured.err
    reports = [
        json.loads(path.read_text(encoding="utf-8"))
        for path in (in_demo_home / ".evalkit" / "drills").glob("*/report.json")
    ]
    [report] = [report for report in reports if "elsewhere" in report["rule_errors"]]
    [deletion] = report["incidents"]
    assert deletion["first_alert"] == {"rule": "gate", "cycle": 1}
    assert "20260101T000000-abcdef" in report["rule_errors"]["elsewhere"]


@dataclass(frozen=True)
class AuditedDrill:
    """The audited drill's report, the live collection's fingerprint before and after it,
    and what its configured webhook received (it was not given ``--deliver``)."""

    report: DrillReport
    before: str
    after: str
    undelivered: list[Any]


@pytest.fixture(scope="module")
def audited_drill(demo_home: Path) -> AuditedDrill:
    """The docs' recommended monitoring (a nightly replay with a Page-Hinkley rule, an
    audit job with the audit_findings and model_mismatch rules, a webhook sink) against
    every incident that changes the index, at its default severity (latency needs a Chroma
    server, ingestion lag a freshness job, query drift a traffic job: tested below). One
    drill, read by the tests of its report, its page and its deliveries."""
    from test_scheduler_support import SECRET, Receiver

    receiver = Receiver().start()
    audited = demo_home / "audited.toml"
    audited.write_text(CONFIG + AUDITED + SINK.format(url=receiver.url), encoding="utf-8")
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("EVALKIT_CONFIG", str(audited))
            patch.setenv("EVALKIT_HOME", str(demo_home / ".evalkit"))
            patch.setenv("EVALKIT_DRILL_TEST_SECRET", SECRET)
            patch.chdir(demo_home)
            before = _live_fingerprint(demo_home)
            report = run_drill(
                load_settings(),
                DrillRequest(
                    incidents=tuple((name, None) for name in INDEX_INCIDENTS),
                    quiet_cycles=2,
                    drill_id="audited",
                ),
            )
            after = _live_fingerprint(demo_home)
    finally:
        receiver.stop()
    return AuditedDrill(report, before, after, receiver.all())


def test_with_an_audit_job_each_incident_is_caught_at_once_and_its_cause_named_first(
    audited_drill: AuditedDrill,
) -> None:
    """Every incident that changes the index is caught on its first cycle, the audit names
    its finding and ``explain`` its cause first; each alert resolves after the restore and
    the live collection is unchanged."""
    changing_the_index = {
        name for name, kind in INCIDENTS.items() if kind.inject is not None and not kind.catch_up
    }
    assert set(INDEX_INCIDENTS) == changing_the_index
    report = audited_drill.report
    assert report.false_alarms == ()
    found = {
        result.incident: (result.first_alert, result.top_cause, result.cause_rank)
        for result in report.incidents
    }
    assert found == EXPECTED_CAUSES, report.to_markdown()
    findings = {result.incident: set(result.audit_findings) for result in report.incidents}
    assert "orphaned_judgments" in findings["deletion"]
    assert "exact_duplicates" in findings["duplicates"]
    assert "content_replaced" in findings["stale_content"]
    assert "vectors_from_another_model" in findings["model_mismatch"]
    assert "orphaned_judgments" in findings["chunking_drift"]
    assert findings["ann_degradation"] == {"low_ann_recall"}
    for result in report.incidents:
        assert result.carried == (), "every incident's alerts resolved before the next one"
        assert result.resolved_after is not None, result
        before_ndcg, after_ndcg = result.effect["ndcg@10"]
        assert before_ndcg is not None
        assert after_ndcg is not None
        assert after_ndcg < before_ndcg
    assert audited_drill.after == audited_drill.before


def test_the_drills_page_shows_a_drills_report_in_chromium(
    in_demo_home: Path, audited_drill: AuditedDrill, tmp_path: Path
) -> None:
    """The Drills page of `evalkit dashboard`, in headless Chromium, on a real drill's report:
    its counts, its table (what was caught, when, naming which cause) and its effects."""
    from test_dashboard_browser import SCREENSHOTS, _cells, _render, _serving, chromium_driver

    store = Path(audited_drill.report.store)
    with _serving(store, tmp_path / "dashboard.log") as url, chromium_driver() as browser:
        shown = _render(browser, f"{url}/drills?drill=audited", charts=0, expecting=["6 of 6"])
        assert shown == ["6 of 6", "6 of 6", "0"], shown
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(SCREENSHOTS / "drills.png"))  # type: ignore[attr-defined]
        assert _cells(browser, "Cause named first") == [
            cause for _, cause, _ in EXPECTED_CAUSES.values()
        ]
        assert _cells(browser, "Caught at cycle") == ["1"] * len(INDEX_INCIDENTS)
        assert _cells(browser, "Measure") == ["ndcg@10", "recall@10"] * len(INDEX_INCIDENTS)


def test_deliver_sends_the_drills_alerts_to_a_real_webhook_and_without_it_nothing_goes(
    in_demo_home: Path,
    audited_drill: AuditedDrill,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The configured webhook sink gets the drill's alerts, signed, firing then resolved,
    their subjects naming the drill's copy, only with --deliver: the audited drill, whose
    configuration has the sink too, sent nothing."""
    from test_scheduler_support import SECRET, Receiver

    assert audited_drill.undelivered == [], "a drill delivers nothing unless asked to"
    receiver = Receiver().start()
    try:
        sinked = in_demo_home / "sinked.toml"
        sinked.write_text(CONFIG + SINK.format(url=receiver.url), encoding="utf-8")
        monkeypatch.setenv("EVALKIT_CONFIG", str(sinked))
        monkeypatch.setenv("EVALKIT_DRILL_TEST_SECRET", SECRET)
        drill = ["drill", "--incident", "deletion:0.34", "--quiet-cycles", "2", "--cycles", "1"]
        assert invoke([*drill, "--deliver"]) == 0
        assert "delivered 2 notifications to the configured sinks" in capsys.readouterr().err
        got = receiver.accepted()
        assert [(r.payload["rule"], r.payload["status"]) for r in got] == [
            ("ndcg-drop", "firing"),
            ("ndcg-drop", "resolved"),
        ]
        assert all(r.signature_valid for r in got), "signed with the sink's secret"
        assert all(DRILL_PREFIX in r.payload["subject"] for r in got), got[0].payload
    finally:
        receiver.stop()


def test_a_store_path_set_in_the_environment_still_gets_no_drill_run(
    in_demo_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """EVALKIT_STORE_PATH, as the docs suggest setting it, outranks the file's tables: a
    drill whose own store came through the tables wrote its runs into the user's store."""
    live = in_demo_home / ".evalkit" / "evalkit.duckdb"
    monkeypatch.setenv("EVALKIT_STORE_PATH", str(live))
    user = load_settings()
    assert user.resolved_store_path == live
    report = run_drill(
        user,
        DrillRequest(incidents=(("deletion", 0.34),), quiet_cycles=1, cycles=1, recovery_cycles=1),
    )
    assert Path(report.store) != live
    with Store.open(live, read_only=True) as store:
        assert store.fetch("SELECT count(*) FROM runs")[0][0] == 0
        assert store.fetch("SELECT count(*) FROM alerts")[0][0] == 0
    with Store.open(Path(report.store), read_only=True) as store:
        assert store.fetch("SELECT count(*) FROM runs")[0][0] >= 2


LATENCY_RULE = """
[[alerts.rules]]
name = "slower"
kind = "latency_regression"
goldset = "demo"
warmup = 5
reference_runs = 5
max_increase = "50%"
"""


@pytest.mark.usefixtures("served_first")
def test_latency_is_played_by_a_proxy_in_front_of_a_chroma_server_and_not_on_embedded_chroma(
    in_demo_home: Path,
    chroma_server: ChromaServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Every search of the jobs' Chroma server 10 times slower, through a loopback proxy: the
    latency rule fires and resolves once the proxy is back to the server's speed; the
    collections on the server are copies, as ever, made in the server the job names of its
    own (chroma_url) while the settings name embedded Chroma. On embedded Chroma it cannot
    be played, and the report says so. (Twice as slow was caught on an idle machine, and
    missed under a loaded CI run, where the quiet runs' own spread is wider:
    docs/drills.md.)"""
    slowed = in_demo_home / "slowed.toml"
    slowed.write_text(CONFIG.split("[[alerts.rules]]", maxsplit=1)[0] + LATENCY_RULE)
    monkeypatch.setenv("EVALKIT_CONFIG", str(slowed))
    assert invoke(["drill", "--incident", "latency", "--format", "json"]) == 1
    [embedded] = json.loads(capsys.readouterr().out)["incidents"]
    assert embedded["gap"].startswith("not injectable: the jobs read embedded Chroma")

    client = open_chroma_client(url=chroma_server.url)
    try:
        with contextlib.suppress(Exception):
            client.delete_collection("demo-kb")
        index_corpus(client, demo_documents(), cached_minilm(), collection_name="demo-kb")
    finally:
        close_client(client)
    # The settings name embedded Chroma; the job reads the server of its own chroma_url:
    # the drill copies the collection there and slows that server.
    on_server = in_demo_home / "slowed-server.toml"
    on_server.write_text(
        slowed.read_text().replace(
            'collection = "demo-kb"\n',
            f'collection = "demo-kb"\nchroma_url = "{chroma_server.url}"\n',
        )
    )
    monkeypatch.setenv("EVALKIT_CONFIG", str(on_server))
    report = run_drill(
        load_settings(),
        DrillRequest(incidents=(("latency", 10.0),), quiet_cycles=6, cycles=3, recovery_cycles=6),
    )
    [latency] = report.incidents
    assert latency.injected is not None
    assert latency.injected.summary == "every search of the Chroma server 10x slower"
    assert latency.first_alert is not None, report.to_markdown()
    assert latency.first_alert[0] == "slower"
    assert latency.resolved_after is not None, report.to_markdown()
    assert report.copies == {"demo-kb": f"{DRILL_PREFIX}{report.drill_id}-demo-kb"}
    client = open_chroma_client(url=chroma_server.url)
    try:
        assert not [c.name for c in client.list_collections() if c.name.startswith(DRILL_PREFIX)]
    finally:
        close_client(client)


def test_a_rule_whose_warm_up_the_quiet_cycles_do_not_cover_is_noted(
    in_demo_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Page-Hinkley warms up over 2 runs (the config's warmup): one quiet cycle leaves the
    first incident's run in its warm-up, and the drill says so rather than only missing."""
    code = invoke(
        ["drill", "--incident", "deletion:0.34", "--quiet-cycles", "1", "--cycles", "1",
         "--recovery-cycles", "1"]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1
    assert (
        "note: rule ndcg-drop warms up over 2 runs, more than the drill's 1 quiet cycles: its "
        "warm-up takes in the first incident's runs (give --quiet-cycles 2 or more)"
    ) in " ".join(err.split())
    drill = ["drill", "--incident", "deletion:0.34", "--recovery-cycles", "1"]
    assert invoke([*drill, "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["notes"] == []


FRESHNESS = """
[[jobs]]
name = "fresh"
kind = "freshness"
collection = "demo-kb"
{source}
cron = "*/10 * * * *"

[[alerts.rules]]
name = "lagging"
kind = "freshness_lag"
"""

TRAFFIC = """
[[jobs]]
name = "traffic"
kind = "traffic"
collection = "demo-kb"
paths = ["{log}"]
tenant_isolation = {isolation}
cron = "0 4 * * *"

[[jobs]]
name = "queries-drift"
kind = "drift_check"
stream = "queries"
cron = "0 5 * * *"

[[alerts.rules]]
name = "queries-moved"
kind = "embedding_drift"
streams = ["queries"]

[[alerts.rules]]
name = "unanswerable"
kind = "low_confidence_rate"
"""


def test_ingestion_lag_and_query_drift_are_caught_by_freshness_and_traffic_monitoring(
    in_demo_home: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Ingestion lag: the drill writes changes dated 24 hours back into a change table of
    its own, which the freshness job reads besides the user's, and withholds them from the
    copy; the oldest unreflected change waits longer than the 6-hour objective. The restore
    takes them in (their texts), the check finds them reflected, the alert resolves, and the
    goldset's figures never moved.

    Query drift: the traffic job replays a day of traffic a cycle, logged by the drill (the
    goldset's queries, as the live store logged none), pinned to that day's window; 40 % of
    a day's queries become everyday questions, which the retriever finds nothing close to:
    the queries' drift check and the low-confidence rule fire on the first cycle and resolve
    once the days are clean again. The user's change table and traffic log are not read."""
    source = tmp_path / "source-changes.jsonl"
    source.touch()
    user_log = tmp_path / "user-traffic.jsonl"
    user_log.write_text(
        json.dumps({"query_id": "u1", "timestamp": "2026-01-01T00:00:00Z", "text": "mine"}) + "\n",
        encoding="utf-8",
    )
    config = in_demo_home / "fresh.toml"
    config.write_text(
        CONFIG
        + FRESHNESS.format(source=f'changes = ["{source}"]')
        + TRAFFIC.format(log=user_log, isolation="false"),
        encoding="utf-8",
    )
    monkeypatch.setenv("EVALKIT_CONFIG", str(config))
    before = _live_fingerprint(in_demo_home)
    report = run_drill(
        load_settings(),
        DrillRequest(
            incidents=(("ingestion_lag", 24.0), ("query_drift", 0.4), ("deletion", 0.34)),
            quiet_cycles=3,
            drill_id="lag",
        ),
    )

    assert report.false_alarms == ()
    assert report.notes == ()
    lag, drift, deletion = report.incidents
    assert lag.injected is not None
    assert lag.first_alert == ("lagging", 1), report.to_markdown()
    assert lag.alerts == ("lagging",)
    assert lag.resolved_after is not None, lag
    ndcg_before, ndcg_after = lag.effect["ndcg@10"]
    assert ndcg_after == ndcg_before, "withheld changes move no figure"
    withheld = lag.injected.withheld
    assert len(withheld) == len(lag.injected.documents) > 0
    assert lag.injected.summary == (
        f"{len(withheld)} source changes withheld from the index for 24 hours"
    )
    written = [
        json.loads(line)
        for line in (Path(report.folder) / "changes.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    assert {row["doc_id"]: row["content"] for row in written} == withheld
    for row in written:
        assert row["content"].endswith(" (revised)")
        waited = time.time() - datetime.fromisoformat(row["updated_at"]).timestamp()
        assert 24 * 3600 - 600 < waited < 24 * 3600 + 600

    assert drift.carried == ()
    assert drift.first_alert is not None
    assert drift.first_alert[1] == 1, report.to_markdown()
    assert drift.alerts == ("queries-moved", "unanswerable"), report.to_markdown()
    assert drift.resolved_after is not None
    assert drift.injected is not None
    assert drift.injected.summary == "40% of each day's traffic from another domain"
    logged = [
        json.loads(line)
        for line in (Path(report.folder) / "traffic.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    by_day: dict[str, list[str]] = {}
    for line in logged:
        by_day.setdefault(line["timestamp"][:10], []).append(line["text"])
    days = sorted(by_day)
    goldset = {query.text for query in demo_goldset().queries}
    drifted = 3 + 1 + lag.resolved_after  # the first day after the lag's recovery
    for number, day in enumerate(days):
        foreign = [text for text in by_day[day] if text not in goldset]
        assert len(by_day[day]) == len(goldset)
        assert len(foreign) == (round(0.4 * len(goldset)) if number == drifted else 0), day
    with Store.open(Path(report.store), read_only=True) as store:
        windows = store.fetch(
            "SELECT DISTINCT window_label FROM traffic_samples ORDER BY window_label"
        )
    assert [row[0] for row in windows] == days, "each cycle replayed its own day"
    assert "mine" not in {line["text"] for line in logged}

    # After each restore every alert had resolved, so the deletion raised its own.
    assert deletion.carried == ()
    assert deletion.first_alert == ("ndcg-drop", 1), deletion
    assert source.read_text(encoding="utf-8") == "", "the user's change table is only read"
    assert _live_fingerprint(in_demo_home) == before


def test_what_the_configuration_cannot_play_is_reported_and_a_failing_job_noted(
    in_demo_home: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A freshness job reading a corpus has no change table to add withheld changes to: the
    ingestion lag is not injectable. The goldset's queries have tenants and the collection
    is searched without a tenant key: the traffic job refuses to replay them with tenant
    isolation on, so the query drift goes uncaught, the job's error is reported with it,
    and the quiet cycles' failure is noted."""
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(
        json.dumps({"id": "d1", "text": "one", "metadata": {"updated_at": "2026-01-01T00:00:00Z"}})
        + "\n",
        encoding="utf-8",
    )
    user_log = tmp_path / "none.jsonl"
    user_log.touch()
    config = in_demo_home / "unplayable.toml"
    config.write_text(
        CONFIG
        + FRESHNESS.format(source=f'corpus = "{corpus}"')
        + TRAFFIC.format(log=user_log, isolation="true"),
        encoding="utf-8",
    )
    monkeypatch.setenv("EVALKIT_CONFIG", str(config))
    report = run_drill(
        load_settings(),
        DrillRequest(
            incidents=(("ingestion_lag", None), ("query_drift", None)),
            quiet_cycles=2,
            cycles=1,
            recovery_cycles=1,
        ),
    )
    lag, drift = report.incidents
    assert lag.injected is None
    assert lag.gap is not None
    assert lag.gap.startswith("not injectable: no freshness job reads change tables"), lag.gap
    assert drift.first_alert is None
    assert "does not filter by tenant" in drift.failed_jobs["traffic"]
    [note] = report.notes
    assert note.startswith("job traffic failed in the quiet cycles, so what it feeds was not ")
    assert report.exit_code == 1
