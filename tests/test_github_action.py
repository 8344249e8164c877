"""The composite GitHub Action (action.yml), run step by step as GitHub's runner runs it.

No local runner of GitHub Actions runs here (nektos act needs a Docker daemon and fetches
actions/setup-python and actions/cache from GitHub), so this file is the runner: it reads
action.yml, evaluates each step's ``if:`` and ``${{ }}`` expressions, runs the ``run:``
steps with bash (``bash --noprofile --norc -eo pipefail``, as ``shell: bash`` does) in a
user's repository laid out in tmp_path (a keyword retriever behind a factory, a JSONL
goldset, evalkit.toml with a [retriever] table), gives each step GITHUB_OUTPUT,
GITHUB_STEP_SUMMARY and GITHUB_ENV files, and emulates actions/cache/save and restore on a
local folder keyed as the real cache is (exact key, then the newest entry under a
restore-key prefix). setup-python and the install step are skipped: the venv already has
evalkit, and the install script's choices are tested in its dry-run mode.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from loopback import running

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / ".github" / "actions" / "evalkit-gate"
ACTION: dict[str, Any] = yaml.safe_load((REPO / "action.yml").read_text(encoding="utf-8"))
WORKFLOW: dict[str, Any] = yaml.safe_load(
    (REPO / ".github" / "workflows" / "retrieval-gate.yml").read_text(encoding="utf-8")
)
BIN = Path(sys.executable).parent
READ_ONLY = "ghs_read_only_token"
MAIN_SHA = "1" * 40
PR_SHA = "2" * 40
PR_BRANCH = "faster-search"
N_QUERIES = 60

# -- the user's repository -------------------------------------------------------------------

HOOK = '''
"""search_app/evalkit_hook.py: the search service's keyword retriever, for evalkit."""

import json
from pathlib import Path

from evalkit.records import QueryResult
from evalkit.retrievers.base import ranked_docs

INDEX = Path(__file__).with_name("index.json")  # built by `python3 -m search_app.build_index`


class KeywordSearch:
    """Scores a document by the query words it contains. The corpus is split over three
    shards and only the first ``shards`` are searched; ``missing`` documents are not in the
    index; every ``fail_every``-th query times out."""

    def __init__(self, shards, missing, fail_every):
        self.docs = [
            (doc["id"], set(doc["terms"]))
            for doc in json.loads(INDEX.read_text())
            if doc["shard"] < shards and doc["id"] not in missing
        ]
        self.fail_every = fail_every

    def retrieve(self, queries, k):
        results = []
        for query in queries:
            number = int(query.id.lstrip("q"))
            if self.fail_every and number % self.fail_every == 0:
                results.append(QueryResult(query.id, (), 0.1, error="TimeoutError: shard 2"))
                continue
            words = set(query.text.split())
            scored = sorted(
                (len(words & terms), doc_id) for doc_id, terms in self.docs if words & terms
            )
            scored.sort(key=lambda pair: -pair[0])
            top = scored[:k]
            docs = ranked_docs([doc_id for _, doc_id in top], [float(s) for s, _ in top])
            results.append(QueryResult(query.id, docs, 0.1))
        return results


def make(shards=3, missing=(), fail_every=0):
    return KeywordSearch(shards, set(missing), fail_every)
'''


BUILD_INDEX = """
import json
from pathlib import Path

here = Path(__file__).parent
docs = [json.loads(line) for line in (here / "corpus.jsonl").read_text().splitlines()]
index = [{"id": d["id"], "terms": d["text"].split(), "shard": d["shard"]} for d in docs]
(here / "index.json").write_text(json.dumps(index))
"""


def write_user_repo(root: Path) -> None:
    """A search service's repository: its retriever hook, a goldset and evalkit.toml."""
    app = root / "search_app"
    app.mkdir(parents=True)
    (app / "__init__.py").write_text("")
    (app / "evalkit_hook.py").write_text(HOOK)
    (app / "build_index.py").write_text(BUILD_INDEX)
    corpus = [
        {"id": f"d{q}_{r}", "text": text, "shard": (q + r) % 3}
        for q in range(N_QUERIES)
        for r, text in enumerate(
            (f"topic{q} alpha{q} beta{q}", f"topic{q} alpha{q}", f"topic{q} beta{q}")
        )
    ] + [{"id": f"noise{i}", "text": "help desk", "shard": 0} for i in range(5)]
    (app / "corpus.jsonl").write_text("".join(json.dumps(doc) + "\n" for doc in corpus))
    goldset = root / "goldsets" / "support"
    goldset.mkdir(parents=True)
    (goldset / "queries.jsonl").write_text(
        "".join(
            json.dumps({"id": f"q{q}", "text": f"help with topic{q} alpha{q} beta{q}"}) + "\n"
            for q in range(N_QUERIES)
        )
    )
    (goldset / "judgments.jsonl").write_text(
        "".join(
            json.dumps({"query_id": f"q{q}", "doc_id": f"d{q}_{r}", "relevance": 1 + (r == 0)})
            + "\n"
            for q in range(N_QUERIES)
            for r in range(3)
        )
    )
    configure(root, {})


def configure(root: Path, options: Mapping[str, object]) -> None:
    """evalkit.toml naming the hook, with ``options`` for it (the pull request's change)."""
    inline = ", ".join(f"{key} = {json.dumps(value)}" for key, value in options.items())
    (root / "evalkit.toml").write_text(
        "k = 10\n\n[retriever]\n"
        'factory = "search_app.evalkit_hook:make"\n'
        f"options = {{ {inline} }}\n"
    )


# -- a runner of composite actions -----------------------------------------------------------

_EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}", re.DOTALL)
_TOKEN = re.compile(
    r"\s*(?:('(?:[^']|'')*')|(&&|\|\||==|!=|!|\(|\))|([A-Za-z_][\w.-]*)(\(\))?|(\d+(?:\.\d+)?))"
)
_STATUS_FUNCTIONS = ("always()", "success()", "failure()", "cancelled()")


def lookup(contexts: Mapping[str, Any], path: str) -> Any:
    value: Any = contexts
    for part in path.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return "" if value is None else value


def evaluate(expression: str, contexts: Mapping[str, Any], *, failed: bool) -> Any:
    """A GitHub expression: literals, context paths, ==, !=, !, &&, ||, parentheses and the
    status functions (what action.yml uses; anything else is refused)."""
    python = []
    position = 0
    text = expression.strip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise ValueError(f"cannot read the expression {text!r} at {position}")
        position = match.end()
        string, operator, name, call, number = match.groups()
        if string is not None:
            python.append(repr(string[1:-1].replace("''", "'")))
        elif operator is not None:
            python.append({"&&": " and ", "||": " or ", "!": " not "}.get(operator, operator))
        elif call:
            statuses = {"always": True, "success": not failed, "failure": failed}
            python.append(repr(statuses[name]))
        elif name in ("true", "false", "null"):
            python.append({"true": "True", "false": "False", "null": "None"}[name])
        elif name is not None:
            python.append(repr(lookup(contexts, name)))
        else:
            python.append(number)
    return eval("".join(python), {"__builtins__": {}})


def interpolate(text: str, contexts: Mapping[str, Any]) -> str:
    def value(match: re.Match[str]) -> str:
        result = evaluate(match.group(1), contexts, failed=False)
        if isinstance(result, bool):
            return str(result).lower()
        return "" if result is None else str(result)

    return _EXPRESSION.sub(value, text)


def read_outputs(path: Path) -> dict[str, str]:
    """GITHUB_OUTPUT's ``name=value`` lines and ``name<<DELIMITER`` blocks."""
    outputs: dict[str, str] = {}
    lines = iter(path.read_text(encoding="utf-8").splitlines())
    for line in lines:
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delimiter = line.split("<<", 1)
            block = []
            for inner in lines:
                if inner == delimiter:
                    break
                block.append(inner)
            outputs[name] = "\n".join(block)
        elif line:
            name, value = line.split("=", 1)
            outputs[name] = value
    return outputs


@dataclass
class Outcome:
    """One run of the action: its exit code (the first failed step's), outputs and files."""

    code: int
    outputs: dict[str, str]
    steps: dict[str, dict[str, Any]]
    log: str
    summary: str
    ran: list[str] = field(default_factory=list)

    def annotations(self, level: str) -> list[str]:
        return re.findall(rf"^::{level}::(.*)$", self.log, flags=re.MULTILINE)


@dataclass
class Runner:
    """Runs action.yml's steps for one event in a workspace, each run on a fresh "machine"
    (its own HOME and RUNNER_TEMP under ``root``), with a local actions cache."""

    cache: Path
    root: Path
    api_url: str = "http://127.0.0.1:9"
    saved: int = 0
    home: Path = field(init=False)
    temp: Path = field(init=False)

    def run(
        self,
        workspace: Path,
        inputs: Mapping[str, str],
        *,
        event: str,
        ref_name: str,
        sha: str,
        pull_request: int | None = None,
    ) -> Outcome:
        machine = Path(tempfile.mkdtemp(prefix="machine-", dir=self.root))
        self.home, self.temp = machine / "home", machine / "temp"
        self.home.mkdir()
        self.temp.mkdir()
        event_payload: dict[str, Any] = {"repository": {"default_branch": "main"}}
        if pull_request is not None:
            event_payload["pull_request"] = {"number": pull_request}
        github = {
            "event_name": event,
            "ref_name": ref_name,
            "sha": sha,
            "repository": "acme/search",
            "token": "ghs_test_token",
            "action_path": str(REPO),
            "workspace": str(workspace),
            "api_url": self.api_url,
            "event": event_payload,
        }
        contexts: dict[str, Any] = {"github": github, "steps": {}, "env": {}}
        contexts["runner"] = {"temp": str(self.temp), "os": "Linux"}
        declared = ACTION["inputs"]
        unknown = set(inputs) - set(declared)
        assert not unknown, f"inputs action.yml does not declare: {unknown}"
        contexts["inputs"] = {
            name: inputs.get(name, interpolate(str(spec.get("default", "")), contexts))
            for name, spec in declared.items()
        }
        event_file = self.temp / "event.json"
        event_file.write_text(json.dumps(event_payload))
        base_env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("EVALKIT_", "GITHUB_", "RUNNER_"))
        }
        base_env.update(
            PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}",
            HOME=str(self.home),
            HF_HUB_OFFLINE="1",
            TRANSFORMERS_OFFLINE="1",
            ANONYMIZED_TELEMETRY="False",
            GITHUB_ACTIONS="true",
            GITHUB_EVENT_NAME=event,
            GITHUB_EVENT_PATH=str(event_file),
            GITHUB_REF_NAME=ref_name,
            GITHUB_SHA=sha,
            GITHUB_REPOSITORY="acme/search",
            GITHUB_API_URL=self.api_url.rstrip("/"),
            GITHUB_WORKSPACE=str(workspace),
            GITHUB_ACTION_PATH=str(REPO),
            RUNNER_TEMP=str(self.temp),
        )
        if event == "pull_request":
            base_env["GITHUB_HEAD_REF"] = PR_BRANCH
        summary = self.temp / "summary.md"
        summary.write_text("")
        failed = 0
        log: list[str] = []
        ran: list[str] = []
        for index, step in enumerate(ACTION["runs"]["steps"]):
            step_id = step.get("id", f"step{index}")
            condition = _EXPRESSION.sub(r"\1", str(step.get("if", "success()")))
            if not any(function in condition for function in _STATUS_FUNCTIONS):
                condition = f"success() && ({condition})"
            if not evaluate(condition, contexts, failed=bool(failed)):
                contexts["steps"][step_id] = {"outcome": "skipped", "outputs": {}}
                continue
            ran.append(step["name"])
            code, outputs = 0, {}
            if "uses" in step:
                outputs = self.uses(step, contexts)
            elif step_id != "install":
                code, outputs, text = self.bash(index, step, contexts, workspace, base_env, summary)
                log.append(text)
            contexts["steps"][step_id] = {
                "outcome": "failure" if code else "success",
                "outputs": outputs,
            }
            failed = failed or code
        action_outputs = {
            name: interpolate(spec["value"], contexts) for name, spec in ACTION["outputs"].items()
        }
        return Outcome(
            code=failed,
            outputs=action_outputs,
            steps=contexts["steps"],
            log="\n".join(log),
            summary=summary.read_text(encoding="utf-8"),
            ran=ran,
        )

    def bash(
        self,
        index: int,
        step: Mapping[str, Any],
        contexts: Mapping[str, Any],
        workspace: Path,
        base_env: Mapping[str, str],
        summary: Path,
    ) -> tuple[int, dict[str, str], str]:
        assert step.get("shell") == "bash", f"step {step['name']!r} must say shell: bash"
        files = {name: self.temp / f"{name}-{index}" for name in ("output", "env")}
        for path in files.values():
            path.write_text("")
        env = {
            **base_env,
            **{key: interpolate(str(value), contexts) for key, value in step["env"].items()},
            "GITHUB_OUTPUT": str(files["output"]),
            "GITHUB_ENV": str(files["env"]),
            "GITHUB_STEP_SUMMARY": str(summary),
        }
        script = self.temp / f"step-{index}.sh"
        script.write_text(interpolate(step["run"], contexts))
        cwd = workspace / interpolate(step.get("working-directory", "."), contexts)
        done = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        return done.returncode, read_outputs(files["output"]), done.stdout + done.stderr

    def uses(self, step: Mapping[str, Any], contexts: Mapping[str, Any]) -> dict[str, str]:
        action = step["uses"]
        given = {key: interpolate(str(value), contexts) for key, value in step["with"].items()}
        if action == "actions/setup-python@v5":
            assert set(given) == {"python-version"}
            return {}
        assert set(given) <= {"path", "key", "restore-keys"}, given
        path = Path(given["path"].replace("~", str(self.home), 1))
        key = given["key"]
        if action == "actions/cache/save@v4":
            entry = self.cache / key
            assert path.is_dir(), f"the cache step saves {path}, which does not exist"
            if not entry.exists():
                shutil.copytree(path, entry)
                self.saved += 1
                os.utime(entry, ns=(self.saved, self.saved))
            return {}
        assert action == "actions/cache/restore@v4", f"unexpected action {action}"
        prefixes = [line.strip() for line in given.get("restore-keys", "").splitlines()]
        match = self.cache / key if (self.cache / key).is_dir() else None
        for prefix in filter(None, prefixes):
            if match is None:
                entries = [e for e in self.cache.iterdir() if e.name.startswith(prefix)]
                match = max(entries, key=lambda e: e.stat().st_mtime_ns, default=None)
        if match is None:
            return {"cache-hit": "", "cache-primary-key": key, "cache-matched-key": ""}
        shutil.copytree(match, path, dirs_exist_ok=True)
        return {
            "cache-hit": str(match.name == key).lower(),
            "cache-primary-key": key,
            "cache-matched-key": match.name,
        }


# -- a loopback stand-in for GitHub's REST API ---------------------------------------------


class _GitHubApi(BaseHTTPRequestHandler):
    """Issue comments of pull request 7 of acme/search; every request is recorded."""

    def _send(self, status: int, payload: object) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _record(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        request = {
            "method": self.command,
            "path": self.path,
            "authorization": self.headers.get("Authorization"),
            "body": body,
        }
        self.server.requests.append(request)  # type: ignore[attr-defined]
        return request

    def do_GET(self) -> None:
        self._record()
        if self.path.startswith("/repos/acme/search/issues/7/comments"):
            self._send(200, self.server.comments)  # type: ignore[attr-defined]
        else:
            self._send(404, {"message": "Not Found"})

    def do_POST(self) -> None:
        request = self._record()
        if request["authorization"] == f"Bearer {READ_ONLY}":
            self._send(403, {"message": "Resource not accessible by integration"})
            return
        comments = self.server.comments  # type: ignore[attr-defined]
        comment = {"id": 1000 + len(comments), "body": request["body"]["body"]}
        comments.append(comment)
        self._send(201, comment)

    def do_PATCH(self) -> None:
        request = self._record()
        comment_id = int(self.path.rsplit("/", 1)[1])
        for comment in self.server.comments:  # type: ignore[attr-defined]
            if comment["id"] == comment_id:
                comment["body"] = request["body"]["body"]
                self._send(200, comment)
                return
        self._send(404, {"message": "Not Found"})

    def log_message(self, format: str, *args: object) -> None:
        pass


def api_url(server: ThreadingHTTPServer) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


@pytest.fixture
def github_api() -> Iterator[ThreadingHTTPServer]:
    with running(_GitHubApi) as server:
        server.requests = []  # type: ignore[attr-defined]
        server.comments = []  # type: ignore[attr-defined]
        yield server


# -- scenarios -------------------------------------------------------------------------------

GATE_INPUTS = {
    "goldset": "goldsets/support",
    "before-run": "python3 -m search_app.build_index",
    "measures": "ndcg@10, recall@10",
    "resamples": "2000",
}


@dataclass(frozen=True)
class Project:
    template: Path
    runner: Runner


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    root = tmp_path_factory.mktemp("action")
    template = root / "template"
    write_user_repo(template)
    (root / "cache").mkdir()
    return Project(template, Runner(cache=root / "cache", root=root))


def checkout(project: Project, where: Path, options: Mapping[str, object] | None = None) -> Path:
    """A fresh clone of the user's repository, its retriever configured with ``options``."""
    shutil.copytree(project.template, where)
    if options is not None:
        configure(where, options)
    return where


@pytest.fixture(scope="module")
def main_push(project: Project, tmp_path_factory: pytest.TempPathFactory) -> Outcome:
    workspace = checkout(project, tmp_path_factory.mktemp("main") / "repo")
    return project.runner.run(workspace, GATE_INPUTS, event="push", ref_name="main", sha=MAIN_SHA)


def pull_request(
    project: Project,
    where: Path,
    options: Mapping[str, object] | None = None,
    runner: Runner | None = None,
    sha: str = PR_SHA,
    **inputs: str,
) -> Outcome:
    return (runner or project.runner).run(
        checkout(project, where / "repo", options),
        {**GATE_INPUTS, **inputs},
        event="pull_request",
        ref_name="7/merge",
        sha=sha,
        pull_request=7,
    )


@pytest.fixture(scope="module")
def worse(
    project: Project, main_push: Outcome, tmp_path_factory: pytest.TempPathFactory
) -> Outcome:
    """A pull request that searches two of the three shards."""
    return pull_request(project, tmp_path_factory.mktemp("worse"), {"shards": 2})


@pytest.mark.slow
def test_a_push_to_main_stores_the_baseline_in_the_cache(
    project: Project, main_push: Outcome
) -> None:
    assert main_push.code == 0, main_push.log
    key = f"evalkit-baseline-support-{MAIN_SHA}"
    assert main_push.outputs["decision"] == "baseline-stored"
    assert main_push.outputs["baseline-key"] == key
    assert main_push.steps["restore"]["outcome"] == "skipped"
    assert "Save the baseline" in main_push.ran
    entry = project.runner.cache / key
    lines = (entry / "baseline.run").read_text().splitlines()
    assert {line.split()[0] for line in lines} == {f"q{q}" for q in range(N_QUERIES)}
    assert lines[0].split()[:4] == ["q0", "Q0", "d0_0", "1"]
    meta = json.loads((entry / "baseline.json").read_text())
    assert meta["run"]["run_id"] == main_push.outputs["run-id"]
    assert meta["run"]["k"] == 10
    # The run export, which the gate imports with the run's provenance.
    exported = json.loads((entry / "run" / "run.json").read_text())
    assert exported["run_id"] == main_push.outputs["run-id"]
    assert exported["retriever_config"]["factory"] == "search_app.evalkit_hook:make"
    assert {p.name for p in (entry / "run").glob("*.parquet")} >= {
        "results.parquet",
        "queries.parquet",
        "judgments.parquet",
    }
    assert meta["commit"] == MAIN_SHA
    assert "### evalkit baseline" in main_push.summary
    assert f"baseline `{key}`" in main_push.summary
    assert "| ndcg@10 | 1.0000 |" in main_push.summary
    assert "| recall@10 | 1.0000 |" in main_push.summary


@pytest.mark.slow
def test_a_pull_request_with_the_same_retriever_passes_and_comments_nothing(
    project: Project, main_push: Outcome, tmp_path: Path, github_api: ThreadingHTTPServer
) -> None:
    runner = Runner(cache=project.runner.cache, root=tmp_path, api_url=api_url(github_api))
    same = pull_request(project, tmp_path, runner=runner)
    assert same.code == 0, same.log
    assert same.outputs["decision"] == "pass"
    assert same.outputs["baseline-key"] == f"evalkit-baseline-support-{MAIN_SHA}"
    assert same.steps["restore"]["outputs"]["cache-hit"] == "false"
    run_id = same.outputs["run-id"]
    assert run_id
    assert run_id != main_push.outputs["run-id"]
    assert Path(same.outputs["junit"]).is_file()
    assert Path(same.outputs["markdown"]).read_text() == same.summary
    assert "**Gate: PASS**" in same.summary
    assert f"Candidate: run `{run_id}`" in same.summary
    assert f"Baseline: run `{main_push.outputs['run-id']}` of `main`" in same.summary
    assert same.steps["comment"]["outcome"] == "skipped"
    assert same.annotations("warning") == []
    assert github_api.requests == []  # type: ignore[attr-defined]


@pytest.mark.slow
def test_a_pull_request_with_a_worse_retriever_fails_with_junit_and_markdown(
    worse: Outcome,
) -> None:
    assert worse.code == 1, worse.log
    assert worse.outputs["decision"] == "regression"
    (error,) = worse.annotations("error")
    assert error.startswith("retrieval regression against the baseline of main - ndcg@10")
    suite = ET.parse(worse.outputs["junit"]).getroot()
    assert (suite.get("tests"), suite.get("failures")) == ("2", "2")
    assert "**Gate: REGRESSION**" in worse.summary
    assert "#### Largest drops in ndcg@10" in worse.summary
    assert "Save the baseline" not in worse.ran


def test_the_summary_and_the_gates_json_name_the_probable_causes(worse: Outcome) -> None:
    # The baseline is main's run export: the gate imports it as a stored run, so
    # `evalkit explain`'s causes come with the verdict.
    gated = json.loads((Path(worse.outputs["junit"]).parent / "gate.json").read_text())
    causes = gated["probable_causes"]
    assert causes is not None
    assert causes["baseline"] == gated["baseline"]
    (absent,) = [c for c in causes["causes"] if c["kind"] == "absent_from_results"]
    assert absent["statement"].startswith("probably missing from the index: 60 of the 60")
    assert "### Probable causes" in worse.summary
    assert "probably missing from the index: 60 of the 60 relevant documents" in worse.summary
    assert "Probable causes need the baseline's run export" not in worse.summary


@pytest.mark.slow
def test_a_cached_trec_run_file_is_still_a_baseline(
    project: Project, main_push: Outcome, tmp_path: Path
) -> None:
    # A cache an older version of the action wrote: the TREC run file and its facts only.
    (tmp_path / "cache").mkdir()
    key = f"evalkit-baseline-support-{MAIN_SHA}"
    shutil.copytree(project.runner.cache / key, tmp_path / "cache" / key)
    shutil.rmtree(tmp_path / "cache" / key / "run")
    runner = Runner(cache=tmp_path / "cache", root=tmp_path)
    gated = pull_request(project, tmp_path, {"shards": 2}, runner=runner)
    assert gated.code == 1, gated.log
    assert gated.outputs["decision"] == "regression"
    assert "**Gate: REGRESSION**" in gated.summary
    assert "### Probable causes" not in gated.summary
    assert "Probable causes need the baseline's run export, which this cached baseline" in (
        gated.summary
    )


def test_the_gate_junit_names_the_goldset_file_and_carries_the_time(worse: Outcome) -> None:
    # Written by `evalkit gate` itself (to_junit_xml's time and file), for CI reporters.
    suite = ET.parse(worse.outputs["junit"]).getroot()
    cases = list(suite.iter("testcase"))
    assert float(suite.get("time", "0")) > 0
    assert sum(float(case.get("time", "nan")) for case in cases) == pytest.approx(
        float(suite.get("time", "0")), abs=0.002
    )
    queries = "goldsets/support/queries.jsonl"
    assert [element.get("file") for element in [suite, *cases]] == [queries] * 3


@pytest.mark.parametrize("cached", ["run export", "TREC run file"])
@pytest.mark.slow
def test_a_pull_request_that_adds_and_removes_goldset_queries_leaves_them_out_and_says_so(
    project: Project, main_push: Outcome, tmp_path: Path, cached: str
) -> None:
    # The added query scores in the candidate: counted as 0 in the baseline, it would be a gain.
    # The removed one vanished from the comparison, which said both runs had the same queries.
    (tmp_path / "cache").mkdir()
    key = f"evalkit-baseline-support-{MAIN_SHA}"
    shutil.copytree(project.runner.cache / key, tmp_path / "cache" / key)
    if cached == "TREC run file":
        shutil.rmtree(tmp_path / "cache" / key / "run")
    (tmp_path / "pr").mkdir()
    workspace = checkout(project, tmp_path / "pr" / "repo")
    goldset = workspace / "goldsets" / "support"
    for name in ("queries.jsonl", "judgments.jsonl"):
        kept = [line for line in (goldset / name).read_text().splitlines() if '"q59"' not in line]
        (goldset / name).write_text("".join(line + "\n" for line in kept))
    with (goldset / "queries.jsonl").open("a") as queries:
        queries.write(json.dumps({"id": "q60", "text": "help with topic0 alpha0"}) + "\n")
    with (goldset / "judgments.jsonl").open("a") as judgments:
        judgments.write(json.dumps({"query_id": "q60", "doc_id": "d0_1", "relevance": 1}) + "\n")
    changed = Runner(cache=tmp_path / "cache", root=tmp_path).run(
        workspace, GATE_INPUTS, event="pull_request", ref_name="7/merge", sha=PR_SHA
    )
    assert changed.code == 0, changed.log
    (warning,) = changed.annotations("warning")
    assert warning.startswith("the goldset goldsets/support changed since the baseline was stored")
    assert warning.endswith(
        "both runs are scored on this revision's judgments; a query added since has no "
        "baseline results and one removed since has no candidate results: both are left out "
        "of the comparison (the summary lists them)"
    )
    gated = json.loads((Path(changed.outputs["junit"]).parent / "gate.json").read_text())
    assert (gated["n_shared"], gated["only_in_candidate"]) == (N_QUERIES - 1, ["q60"])
    assert gated["only_in_baseline"] == ["q59"]
    assert gated["metrics"]["ndcg@10"]["delta"] == 0.0
    assert (
        "Compared on the 59 queries both runs share; 2 left out: 1 only in the baseline (q59); "
        "1 only in the candidate (q60). The baseline holds 60 queries, the candidate 60."
    ) in changed.summary.splitlines()


@pytest.mark.slow
def test_a_first_run_is_cached_and_gates_its_branch_until_main_has_a_baseline(
    project: Project, tmp_path: Path
) -> None:
    (tmp_path / "cache").mkdir()
    runner = Runner(cache=tmp_path / "cache", root=tmp_path)
    first = pull_request(project, tmp_path / "1", {"shards": 2}, runner=runner)
    assert first.code == 0, first.log
    assert first.outputs["decision"] == "no-baseline"
    (notice,) = first.annotations("notice")
    assert notice.startswith(
        "first run: no baseline on main yet; the candidate was stored, the gate passes"
    )
    key = f"evalkit-first-run-support-{PR_SHA}"
    assert f"run {first.outputs['run-id']}, cached as {key}: later runs on {PR_BRANCH}" in notice
    assert first.outputs["junit"] == ""
    assert first.outputs["baseline-key"] == key
    assert "**Gate: PASS (first run)**" in first.summary
    assert [first.steps[s]["outcome"] for s in ("save", "save-first-run")] == [
        "skipped",
        "success",
    ]
    # Kept in the cache as a baseline is, under a key no restore of main's baseline matches.
    assert [entry.name for entry in runner.cache.iterdir()] == [key]
    lines = (runner.cache / key / "baseline.run").read_text().splitlines()
    assert lines[0].startswith("q0 Q0 ")
    meta = json.loads((runner.cache / key / "baseline.json").read_text())
    assert (meta["origin"], meta["branch"]) == ("first-run", PR_BRANCH)
    assert meta["run"]["run_id"] == first.outputs["run-id"]

    # The next push to the pull request is gated against its first run.
    later = pull_request(project, tmp_path / "2", {"shards": 1}, runner=runner, sha="3" * 40)
    assert later.code == 1, later.log
    assert later.outputs["decision"] == "regression"
    assert later.steps["restore"]["outputs"]["cache-matched-key"] == ""
    assert later.steps["restore-first-run"]["outputs"]["cache-matched-key"] == key
    assert later.outputs["baseline-key"] == key
    (notice,) = later.annotations("notice")
    assert notice.startswith(f"no baseline on main yet: gated against the first run on {PR_BRANCH}")
    (error,) = later.annotations("error")
    assert error.startswith(f"retrieval regression against the first run on {PR_BRANCH}")
    assert f"Baseline: run `{first.outputs['run-id']}` of `{PR_BRANCH}`" in later.summary
    assert "Save the first run" not in later.ran

    # Once main stores its baseline, the pull request is gated against main's.
    workspace = checkout(project, tmp_path / "main" / "repo")
    main = runner.run(workspace, GATE_INPUTS, event="push", ref_name="main", sha=MAIN_SHA)
    assert main.code == 0, main.log
    gated = pull_request(project, tmp_path / "3", {"shards": 2}, runner=runner, sha="4" * 40)
    assert gated.code == 1, gated.log
    assert gated.outputs["baseline-key"] == f"evalkit-baseline-support-{MAIN_SHA}"
    assert gated.steps["restore-first-run"]["outcome"] == "skipped"
    assert gated.annotations("notice") == []
    (error,) = gated.annotations("error")
    assert error.startswith("retrieval regression against the baseline of main")


@pytest.mark.slow
def test_comment_on_posts_one_comment_then_updates_it(
    project: Project, main_push: Outcome, tmp_path: Path, github_api: ThreadingHTTPServer
) -> None:
    runner = Runner(cache=project.runner.cache, root=tmp_path, api_url=api_url(github_api))
    requests: list[dict[str, Any]] = github_api.requests  # type: ignore[attr-defined]
    first = pull_request(project, tmp_path / "1", {"shards": 2}, runner=runner, comment="true")
    assert first.code == 1
    writes = [request for request in requests if request["method"] != "GET"]
    assert [(r["method"], r["path"]) for r in writes] == [
        ("POST", "/repos/acme/search/issues/7/comments")
    ]
    assert {request["authorization"] for request in requests} == {"Bearer ghs_test_token"}
    body = writes[0]["body"]["body"]
    assert body.startswith("<!-- evalkit-gate: support -->\n### evalkit gate")
    assert Path(first.outputs["markdown"]).read_text() in body
    assert "### Probable causes" in body
    assert "probably missing from the index" in body
    assert "ghs_test_token" not in first.log

    requests.clear()
    second = pull_request(project, tmp_path / "2", runner=runner, comment="true")
    assert second.code == 0
    writes = [request for request in requests if request["method"] != "GET"]
    assert [(r["method"], r["path"]) for r in writes] == [
        ("PATCH", "/repos/acme/search/issues/comments/1000")
    ]
    comments = github_api.comments  # type: ignore[attr-defined]
    assert len(comments) == 1
    assert "**Gate: PASS**" in comments[0]["body"]


@pytest.mark.slow
def test_a_comment_the_token_may_not_write_is_a_warning_not_a_failure(
    project: Project, main_push: Outcome, tmp_path: Path, github_api: ThreadingHTTPServer
) -> None:
    runner = Runner(cache=project.runner.cache, root=tmp_path, api_url=api_url(github_api))
    same = pull_request(
        project, tmp_path, runner=runner, comment="true", **{"github-token": READ_ONLY}
    )
    assert same.code == 0, same.log
    assert same.outputs["decision"] == "pass"
    (warning,) = same.annotations("warning")
    assert warning.startswith("could not comment on pull request #7 (HTTP 403)")
    assert "pull-requests: write" in warning
    assert github_api.comments == []  # type: ignore[attr-defined]


@pytest.mark.slow
def test_a_partial_run_on_main_is_not_stored_as_the_baseline(
    project: Project, tmp_path: Path
) -> None:
    (tmp_path / "cache").mkdir()
    runner = Runner(cache=tmp_path / "cache", root=tmp_path)
    workspace = checkout(project, tmp_path / "repo", {"fail_every": 7})
    partial = runner.run(workspace, GATE_INPUTS, event="push", ref_name="main", sha=MAIN_SHA)
    assert partial.code == 3
    (error,) = partial.annotations("error")
    assert "is partial (9 of 60 queries failed; first: TimeoutError: shard 2)." in error
    assert "--per-query" in error
    assert "Save the baseline" not in partial.ran
    assert list(runner.cache.iterdir()) == []


@pytest.mark.slow
def test_an_inconclusive_gate_fails_or_warns_as_configured(
    project: Project, main_push: Outcome, tmp_path: Path
) -> None:
    # Two queries lose their best document: too few to decide at a minimum effect of 0.01.
    options = {"missing": ["d3_0", "d4_0"]}
    strict = pull_request(project, tmp_path / "1", options, measures="ndcg@10")
    assert (strict.code, strict.outputs["decision"]) == (4, "inconclusive")
    assert "on-inconclusive: pass turns this into a warning" in strict.annotations("error")[0]
    lenient = pull_request(
        project, tmp_path / "2", options, measures="ndcg@10", **{"on-inconclusive": "pass"}
    )
    assert (lenient.code, lenient.outputs["decision"]) == (0, "inconclusive")
    assert lenient.annotations("warning")[0].startswith("the gate is inconclusive (passed")


@pytest.mark.slow
def test_a_gate_on_one_changed_query_is_inconclusive_with_an_unbounded_interval(
    project: Project, tmp_path: Path
) -> None:
    # One shared query that changed: the interval is unbounded, its bounds null in the JSON.
    (tmp_path / "cache").mkdir()
    runner = Runner(cache=tmp_path / "cache", root=tmp_path)

    def one_query(where: Path, options: Mapping[str, object] | None = None) -> Path:
        workspace = checkout(project, where / "repo", options)
        goldset = workspace / "goldsets" / "support"
        for name in ("queries.jsonl", "judgments.jsonl"):
            lines = (goldset / name).read_text().splitlines(keepends=True)
            (goldset / name).write_text("".join(line for line in lines if '"q0"' in line))
        return workspace

    main = runner.run(
        one_query(tmp_path / "main"), GATE_INPUTS, event="push", ref_name="main", sha=MAIN_SHA
    )
    assert main.code == 0, main.log
    worse = {"missing": ["d0_0"]}
    outcomes = {
        policy: runner.run(
            one_query(tmp_path / policy, worse),
            {**GATE_INPUTS, "measures": "ndcg@10", "on-inconclusive": policy},
            event="pull_request",
            ref_name="7/merge",
            sha=PR_SHA,
        )
        for policy in ("fail", "pass")
    }
    gated = json.loads((Path(outcomes["fail"].outputs["junit"]).parent / "gate.json").read_text())
    assert (gated["metrics"]["ndcg@10"]["ci_low"], gated["metrics"]["ndcg@10"]["ci_high"]) == (
        None,
        None,
    )
    verdict = "ndcg@10 inconclusive: 1.0000 -> 0.5209 (delta -0.4791, CI [-inf, +inf])"
    strict, lenient = outcomes["fail"], outcomes["pass"]
    assert (strict.code, strict.outputs["decision"]) == (4, "inconclusive")
    (error,) = strict.annotations("error")
    assert error.endswith(f"(on-inconclusive: pass turns this into a warning) - {verdict}")
    assert "Traceback" not in strict.log
    assert (lenient.code, lenient.outputs["decision"]) == (0, "inconclusive")
    (warning,) = lenient.annotations("warning")
    assert warning == f"the gate is inconclusive (passed, on-inconclusive: pass) - {verdict}"


# -- the action's file and its scripts -------------------------------------------------------


def referenced(text: str, context: str) -> set[str]:
    return set(re.findall(rf"\b{context}\.([\w-]+)", text))


def test_every_input_and_step_output_used_is_declared_and_every_script_exists() -> None:
    text = (REPO / "action.yml").read_text()
    assert ACTION["runs"]["using"] == "composite"
    assert referenced(text, "inputs") <= set(ACTION["inputs"])
    ids = [step.get("id") for step in ACTION["runs"]["steps"]]
    for index, step in enumerate(ACTION["runs"]["steps"]):
        used = set(re.findall(r"steps\.([\w-]+)\.", yaml.safe_dump(step)))
        assert used <= set(ids[:index]), f"{step['name']} reads a later or unknown step: {used}"
        if "run" not in step or step["id"] == "before":
            continue
        (script,) = re.findall(r'"\$GITHUB_ACTION_PATH/([^"]+)"', step["run"])
        path = REPO / script
        assert path.is_file(), script
        # Every INPUT_* and step value a script reads is given to it by its step.
        wanted = set(re.findall(r"\$\{?(INPUT_[A-Z_]+)", path.read_text()))
        assert wanted <= set(step["env"]), f"{script} reads {wanted - set(step['env'])}"
    evaluate_script = (SCRIPTS / "evaluate.sh").read_text()
    written = set(re.findall(r"set_output ([\w-]+)", evaluate_script))
    for name, spec in ACTION["outputs"].items():
        (step_output,) = re.findall(r"steps\.evaluate\.outputs\.([\w-]+)", spec["value"])
        assert step_output in written, name


def test_the_scripts_are_strict_bash() -> None:
    for script in sorted(SCRIPTS.glob("*.sh")):
        text = script.read_text()
        if script.name != "lib.sh":
            assert "set -euo pipefail" in text, script.name
        done = subprocess.run(
            ["bash", "-n", str(script)], capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, done.stderr


def install(extras: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPTS / "install.sh")],
        env={
            **os.environ,
            "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
            "EVALKIT_DRY_RUN": "1",
            "EVALKIT_SOURCE": str(REPO),
            "INPUT_EXTRAS": extras,
            **env,
        },
        capture_output=True,
        text=True,
        check=False,
    )


def test_install_puts_torchs_cpu_build_first_only_for_extras_that_embed() -> None:
    pinned = next(
        line
        for line in (REPO / "constraints.txt").read_text().splitlines()
        if line.startswith("torch==")
    )
    cpu = f"pip install {pinned} --index-url https://download.pytorch.org/whl/cpu"
    for extras in ("embed", "chroma embed", "answers", "all"):
        done = install(extras)
        assert done.returncode == 0, done.stderr
        first, second = done.stdout.splitlines()
        assert first == cpu
        assert second.startswith(f"pip install -c {REPO}/constraints.txt {REPO}\\[")
    for extras in ("", "chroma", "pgvector,qdrant"):
        (only,) = install(extras).stdout.splitlines()
        assert "torch" not in only
    assert install("").stdout == f"pip install -c {REPO}/constraints.txt {REPO}\n"
    assert install("pgvector,qdrant").stdout.endswith("\\[pgvector\\,qdrant\\]\n")


def test_install_a_published_version_with_the_extras_bounds_and_the_users_packages() -> None:
    with open(REPO / "pyproject.toml", "rb") as handle:
        embed = tomllib.load(handle)["project"]["optional-dependencies"]["embed"]
    bound = next(spec for spec in embed if spec.startswith("torch"))
    quoted = bound.replace(">", "\\>").replace("<", "\\<").replace(",", "\\,")
    done = install(
        "embed", INPUT_EVALKIT_VERSION="0.2.0", INPUT_PIP_ARGS="-r requirements.txt ./search"
    )
    torch, evalkit = done.stdout.splitlines()
    assert torch == f"pip install {quoted} --index-url https://download.pytorch.org/whl/cpu"
    assert evalkit == "pip install evalkit-retrieval\\[embed\\]==0.2.0 -r requirements.txt ./search"
    unconstrained = install("", INPUT_CONSTRAINTS="false").stdout
    assert unconstrained == f"pip install {REPO}\n"


def test_install_refuses_an_unknown_extra_and_names_the_real_ones() -> None:
    done = install("chrome")
    assert done.returncode == 2
    with open(REPO / "pyproject.toml", "rb") as handle:
        extras = set(tomllib.load(handle)["project"]["optional-dependencies"]) - {"dev"}
    message = done.stdout.strip()
    assert message.startswith("::error::unknown evalkit extra 'chrome'; the extras are: ")
    assert set(message.rsplit(": ", 1)[1].split()) == extras


@pytest.mark.parametrize(
    ("event", "ref_name", "inputs", "mode"),
    [
        ("push", "main", {}, "store"),
        ("push", "feature", {}, "gate"),
        ("pull_request", "7/merge", {}, "gate"),
        ("schedule", "main", {}, "store"),
        ("push", "main", {"INPUT_MODE": "gate"}, "gate"),
        ("push", "release", {"INPUT_BASELINE_BRANCH": "release"}, "store"),
    ],
)
def test_prepare_stores_on_pushes_to_the_baseline_branch_and_gates_the_rest(
    tmp_path: Path, event: str, ref_name: str, inputs: dict[str, str], mode: str
) -> None:
    (tmp_path / "gold set-v1").mkdir()
    (tmp_path / "out").touch()
    done = subprocess.run(
        ["bash", str(SCRIPTS / "prepare.sh")],
        cwd=tmp_path,
        env={
            "PATH": os.environ["PATH"],
            "GITHUB_OUTPUT": str(tmp_path / "out"),
            "GITHUB_EVENT_NAME": event,
            "GITHUB_REF_NAME": ref_name,
            "GITHUB_SHA": PR_SHA,
            "RUNNER_TEMP": str(tmp_path),
            "DEFAULT_BRANCH": "main",
            "INPUT_GOLDSET": "gold set-v1",
            **inputs,
        },
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    outputs = read_outputs(tmp_path / "out")
    assert outputs["mode"] == mode
    assert outputs["goldset-name"] == "gold set-v1"
    # Names are kept to letters, digits, dots and underscores: no key is another's prefix.
    assert outputs["key"] == f"evalkit-baseline-gold_set_v1-{PR_SHA}"
    assert outputs["restore-key"] == "evalkit-baseline-gold_set_v1-"
    assert outputs["first-run-key"] == f"evalkit-first-run-gold_set_v1-{PR_SHA}"
    assert outputs["first-run-restore-key"] == "evalkit-first-run-gold_set_v1-"
    assert outputs["cache-path"] == "~/.cache/evalkit/baselines/gold_set_v1"
    assert Path(outputs["report-dir"]).is_dir()


def test_prepare_refuses_a_goldset_that_is_not_there(tmp_path: Path) -> None:
    done = subprocess.run(
        ["bash", str(SCRIPTS / "prepare.sh")],
        cwd=tmp_path,
        env={"PATH": os.environ["PATH"], "GITHUB_SHA": PR_SHA, "INPUT_GOLDSET": "goldsets/x"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert done.stdout.startswith("::error::goldset goldsets/x does not exist")


def test_the_example_workflow_uses_this_action_with_minimal_permissions() -> None:
    assert set(WORKFLOW[True]) == {"pull_request", "push"}  # PyYAML reads `on:` as True
    assert WORKFLOW[True]["push"]["branches"] == ["main"]
    assert WORKFLOW["permissions"] == {"contents": "read"}
    (job,) = WORKFLOW["jobs"].values()
    uses = [step.get("uses") for step in job["steps"]]
    assert uses[0] == "actions/checkout@v4"
    (gate,) = [step for step in job["steps"] if step.get("uses") == "./"]
    assert set(gate["with"]) <= set(ACTION["inputs"])
    assert gate["with"]["goldset"]
    upload = next(step for step in job["steps"] if step.get("uses") == "actions/upload-artifact@v4")
    assert "steps.gate.outputs.junit" in upload["with"]["path"]
    assert "always()" in upload["if"]
