"""dashboards/: the Grafana dashboard and the Prometheus rules, read by real parsers
(``json``, Prometheus's own ``promtool``), and every metric and label they name checked
against what a real ``evalkit serve`` exposes on ``/metrics``.

promtool comes with Debian's prometheus package (``make promtool``, which ``make unit``
runs); without it these tests skip, saying so, except under CI, where they fail.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from evalkit.scheduler.health import metric_families
from evalkit.store.alerts import AlertCount
from evalkit.store.runs import LatestAggregate

DASHBOARDS = Path(__file__).resolve().parent.parent / "dashboards"
GRAFANA = DASHBOARDS / "evalkit-grafana.json"
RULES = DASHBOARDS / "evalkit-rules.yml"
RULE_TESTS = DASHBOARDS / "evalkit-rules.test.yml"
PROMETHEUS_CONFIG = DASHBOARDS / "prometheus.yml"

TARGET_LABELS = {"instance", "job"}
"""Labels Prometheus adds to every scraped series."""
PROMETHEUS_OWN = {"up"}
"""Series Prometheus makes itself for each target."""
GRAFANA_VARIABLES = {
    "$__rate_interval": "5m",
    "$instance": ".*",
    "$goldset": ".*",
    "$measure": ".*",
}

_METRIC = re.compile(r"\b(evalkit_[a-z0-9_]+|up)\b(?:\s*\{([^}]*)\})?")
_MATCHER = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)")
_GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
_TEMPLATE_LABEL = re.compile(r"\$labels\.([a-zA-Z_][a-zA-Z0-9_]*)")


def prometheus_tool(name: str) -> str:
    """The path of ``promtool`` or ``prometheus``; skip (fail under CI) without it."""
    found = shutil.which(name)
    if found is None:
        reason = f"{name} is not installed: `make promtool` installs Debian's prometheus package"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return found


def promtool() -> str:
    return prometheus_tool("promtool")


def run_promtool(*args: str, cwd: Path = DASHBOARDS) -> str:
    done = subprocess.run(
        [promtool(), *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(GRAFANA.read_text())
    return loaded


def panels() -> list[dict[str, Any]]:
    return [panel for panel in dashboard()["panels"] if panel["type"] != "row"]


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL) of every panel's targets and of the template variables'
    queries."""
    queries = [
        (panel["title"], target["expr"]) for panel in panels() for target in panel["targets"]
    ]
    for variable in dashboard()["templating"]["list"]:
        if variable["type"] == "query":
            found = re.fullmatch(r"label_values\((\w+), *(\w+)\)", variable["query"]["query"])
            assert found, variable
            queries.append((f"variable {variable['name']}", f"group by ({found[2]}) ({found[1]})"))
    return queries


def rules() -> list[dict[str, Any]]:
    return [
        rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]
    ]


def concrete(expr: str) -> str:
    """A dashboard query with Grafana's variables replaced by values Prometheus reads."""
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    assert "$" not in expr, expr
    return expr


def test_the_rules_pass_promtool_check() -> None:
    assert f"SUCCESS: {len(rules())} rules found" in run_promtool("check", "rules", RULES.name)


def test_the_rules_unit_tests_pass_and_cover_every_alert() -> None:
    assert "SUCCESS" in run_promtool("test", "rules", RULE_TESTS.name)
    tested = {
        case["alertname"]
        for test in yaml.safe_load(RULE_TESTS.read_text())["tests"]
        for case in test["alert_rule_test"]
        if case["exp_alerts"]
    }
    assert tested == {rule["alert"] for rule in rules()}


def test_the_example_prometheus_config_loads_the_rules() -> None:
    out = run_promtool("check", "config", PROMETHEUS_CONFIG.name)
    assert "SUCCESS: 1 rule files found" in out
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    assert config["scrape_configs"][0]["honor_labels"] is True


def test_every_dashboard_query_parses_as_promql(tmp_path: Path) -> None:
    """Each query becomes a recording rule, so Prometheus's own parser reads it."""
    recorded = {
        "groups": [
            {
                "name": "grafana-queries",
                "rules": [
                    {"record": f"grafana:query_{number}", "expr": concrete(expr)}
                    for number, (_, expr) in enumerate(dashboard_queries())
                ],
            }
        ]
    }
    path = tmp_path / "queries.yml"
    path.write_text(yaml.safe_dump(recorded))
    out = run_promtool("check", "rules", str(path), cwd=tmp_path)
    assert f"SUCCESS: {len(dashboard_queries())} rules found" in out


def test_the_grafana_dashboard_is_well_formed() -> None:
    board = dashboard()
    assert board["uid"] == "evalkit-serve"
    assert board["title"] == "evalkit"
    assert board["schemaVersion"] >= 36
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    variables = {variable["name"] for variable in board["templating"]["list"]}
    assert {"datasource", "instance", "goldset", "measure"} <= variables
    taken: set[tuple[int, int]] = set()
    for panel in board["panels"]:
        box = panel["gridPos"]
        assert box["x"] >= 0, panel["title"]
        assert box["x"] + box["w"] <= 24, panel["title"]
        cells = {
            (x, y)
            for x in range(box["x"], box["x"] + box["w"])
            for y in range(box["y"], box["y"] + box["h"])
        }
        assert not cells & taken, f"{panel['title']} overlaps another panel"
        taken |= cells
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["targets"], panel["title"]
        refs = [target["refId"] for target in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]
        for target in panel["targets"]:
            used = set(re.findall(r"\$(\w+)", target["expr"])) - {"__rate_interval"}
            assert used <= variables, (panel["title"], used - variables)


def named_in(expr: str) -> tuple[dict[str, set[str]], set[str]]:
    """The metrics ``expr`` names, each with the labels its selector matches on, and the
    labels it groups by."""
    metrics: dict[str, set[str]] = {}
    for name, matchers in _METRIC.findall(expr):
        metrics.setdefault(name, set()).update(_MATCHER.findall(matchers or ""))
    grouped = {
        label.strip()
        for clause in _GROUPING.findall(expr)
        for label in clause.split(",")
        if label.strip()
    }
    return metrics, grouped


@pytest.fixture(scope="module")
def serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real ``evalkit serve`` (OTLP receiver on) whose job ``prune`` has run once: the
    URL of its health endpoint."""
    root = tmp_path_factory.mktemp("serve")
    (root / "evalkit.toml").write_text(
        "[scheduler]\nhealth_port = 0\n\n[otlp]\nreceiver = true\nport = 0\n\n"
        '[[jobs]]\nname = "prune"\nkind = "retention"\ninterval = "1h"\n'
    )
    env = {
        **os.environ,
        "EVALKIT_HOME": str(root / "home"),
        "EVALKIT_CONFIG": str(root / "evalkit.toml"),
    }
    env.pop("EVALKIT_STORE_PATH", None)
    log = root / "serve.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "evalkit", "serve"],
            cwd=root,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        url = _service_url(root / "home" / "evalkit.duckdb.serve.json", process, log)
        ran = httpx.post(f"{url}/jobs/prune/run", params={"wait": 60}, timeout=90)
        assert ran.status_code == 200, ran.text
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=90)


@pytest.fixture(scope="module")
def scraped(serve: str) -> str:
    """The ``/metrics`` text of that service."""
    return httpx.get(f"{serve}/metrics", timeout=10).text


@pytest.fixture(scope="module")
def exposed(scraped: str) -> dict[str, set[str]]:
    """Every metric the service exposes, with its labels; the families that need stored
    runs and alerts to have a sample take their labels from the collector the service
    builds (``metric_families``)."""
    text = scraped
    labels: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        names = {family.name, f"{family.name}_total"} if family.type == "counter" else {family.name}
        for name in names:
            labels.setdefault(name, set())
        for sample in family.samples:
            labels.setdefault(sample.name, set()).update(sample.labels)
    now = datetime.now(UTC)
    built = metric_families(
        jobs=[],
        last={},
        running={},
        next_runs={},
        runs_total=Counter(),
        overlaps=Counter(),
        misfires=Counter(),
        aggregates=[LatestAggregate("demo", "nightly", "r1", "complete", now, "ndcg@10", 0.5)],
        alerts=[AlertCount("ndcg-drop", "critical", "firing", 1)],
        firing={("ndcg-drop", "critical"): 1},
        outbox={("pager", "pending"): 1},
        deliveries=Counter(),
        rule_errors={"precision-watch": "boom"},
        up=True,
        now=now,
    )
    for family in built:
        assert family.name in labels or f"{family.name}_total" in labels, family.name
        for sample in family.samples:
            labels.setdefault(sample.name, set()).update(sample.labels)
    return labels


def _service_url(info: Path, process: subprocess.Popen[bytes], log: Path) -> str:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"evalkit serve exited with {process.returncode}:\n{log.read_text()}")
        try:
            found = json.loads(info.read_text())
            if found["pid"] == process.pid:
                return str(found["url"])
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.1)
    pytest.fail(f"evalkit serve did not start:\n{log.read_text()}")


def _check_names(where: str, expr: str, exposed: dict[str, set[str]]) -> set[str]:
    """Fail unless every metric and matched label of ``expr`` is exposed; the labels the
    expression's series carry (theirs and the target's)."""
    metrics, grouped = named_in(expr)
    assert metrics, f"{where}: names no metric: {expr}"
    carried = set(TARGET_LABELS)
    for name, matched in metrics.items():
        if name in PROMETHEUS_OWN:
            continue
        assert name in exposed, f"{where}: {name} is not on /metrics"
        unknown = matched - exposed[name] - TARGET_LABELS
        assert not unknown, f"{where}: {name} has no label {sorted(unknown)}"
        carried |= exposed[name]
    assert grouped <= carried, (
        f"{where}: groups by {sorted(grouped - carried)}, which no series has"
    )
    return carried


@pytest.mark.slow
def test_every_metric_and_label_of_the_dashboard_is_on_metrics(
    exposed: dict[str, set[str]],
) -> None:
    named: set[str] = set()
    for title, expr in dashboard_queries():
        _check_names(f"panel {title!r}", expr, exposed)
        named |= set(named_in(expr)[0])
    # A counter's family is exposed as NAME_total: its bare NAME counts as shown with it.
    missing = {
        name
        for name in exposed
        if name.startswith("evalkit_") and name not in named and f"{name}_total" not in named
    }
    assert not missing, f"metrics of evalkit serve that no panel shows: {sorted(missing)}"


def test_every_metric_and_label_of_the_rules_is_on_metrics(exposed: dict[str, set[str]]) -> None:
    for rule in rules():
        carried = _check_names(f"rule {rule['alert']}", rule["expr"], exposed)
        templates = " ".join([*rule.get("annotations", {}).values(), *rule["labels"].values()])
        used = set(_TEMPLATE_LABEL.findall(templates))
        assert used <= carried, f"rule {rule['alert']}: $labels.{sorted(used - carried)}"


@pytest.mark.slow
def test_prometheus_scraping_evalkit_serve_answers_every_panel_and_rule(
    serve: str, scraped: str, tmp_path: Path
) -> None:
    """The example configuration, pointed at a real ``evalkit serve``, in a real Prometheus:
    evalkit's job label survives the scrape, every panel's query runs, those over series the
    service has answer with data, and every rule evaluates."""
    binary = prometheus_tool("prometheus")
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    config["scrape_configs"][0]["static_configs"] = [{"targets": [serve.removeprefix("http://")]}]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    shutil.copy(RULES, tmp_path / RULES.name)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    api = f"http://127.0.0.1:{port}/api/v1"
    log = tmp_path / "prometheus.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={tmp_path / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp_path / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            cwd=tmp_path,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:

        def query(expr: str) -> list[dict[str, Any]]:
            answer = httpx.get(f"{api}/query", params={"query": expr}, timeout=10).json()
            assert answer["status"] == "success", (expr, answer)
            result: list[dict[str, Any]] = answer["data"]["result"]
            return result

        deadline = time.monotonic() + 60
        kept: list[dict[str, Any]] = []
        while time.monotonic() < deadline and not kept:
            if process.poll() is not None:
                pytest.fail(f"prometheus exited:\n{log.read_text()}")
            with contextlib.suppress(httpx.HTTPError):
                # Until it is ready Prometheus answers queries with a plain-text 503.
                ready = httpx.get(f"http://127.0.0.1:{port}/-/ready", timeout=10).is_success
                # Three scrapes at least, so that rate() and increase() have two samples.
                if ready and query("count_over_time(evalkit_up[1m]) >= 3"):
                    kept = query('evalkit_job_last_run_success{job="prune"}')
            time.sleep(0.5)
        assert kept, f"evalkit's job label did not survive the scrape:\n{log.read_text()}"
        sampled = {
            sample.name
            for family in text_string_to_metric_families(scraped)
            for sample in family.samples
        }
        for title, expr in dashboard_queries():
            result = query(concrete(expr))
            metrics = set(named_in(expr)[0]) - PROMETHEUS_OWN
            if metrics <= sampled:
                assert result, f"panel {title!r} shows nothing: {expr}"
        groups = httpx.get(f"{api}/rules", timeout=10).json()["data"]["groups"]
        evaluated = {rule["name"]: rule["health"] for group in groups for rule in group["rules"]}
        assert evaluated == dict.fromkeys((rule["alert"] for rule in rules()), "ok")
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
