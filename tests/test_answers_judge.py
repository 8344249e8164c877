"""The ragas LLM-judge path, against a local OpenAI-compatible endpoint on loopback.

Every test here talks to ``FakeJudge``: a small HTTP server this module starts on
127.0.0.1 that implements ``POST /v1/chat/completions`` deterministically. It reads the
ragas prompt it is sent and answers valid JSON: the answer's sentences as statements, and
a statement is supported (verdict 1) when its words all occur in the context. It can be
told to reply with malformed JSON, with HTTP 200 and a body that is no chat completion, to
stall past the client's timeout, or to fail with HTTP 500, and it counts the requests it
receives. No real LLM is involved: these tests check the plumbing (ragas wiring, caching,
retries, timeouts, malformed-JSON handling and unmeasured rows), not the quality of any
judge.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import httpx
import pytest
from loopback import JSONHandler, serving
from waiting import wait_until

from evalkit.answers import AnswerRecord, Unmeasured, score_answers
from evalkit.answers.cache import MemoryJudgeCache
from evalkit.answers.judge import (
    CallGuard,
    JudgeCallError,
    LLMJudge,
    NotACompletionError,
    RateLimiter,
    _require_completion,
)
from evalkit.batches import FLUSH_SECONDS
from evalkit.config import JudgeSettings
from evalkit.coroutines import run_sync
from evalkit.pipeline import score_and_store_answers
from evalkit.store import Store
from evalkit.store.access import StoreAccess
from evalkit.store.answers import answer_scores_frame, answer_summary_frame

pytestmark = [
    pytest.mark.slow,
    # instructor 1.3 compares its own deprecated Mode.FUNCTIONS on every reply.
    pytest.mark.filterwarnings("ignore:FUNCTIONS is deprecated:DeprecationWarning"),
]

_WORD = re.compile(r"[a-z0-9]+")


def _words(text: str) -> set[str]:
    return set(_WORD.findall(text.lower()))


@dataclass
class FakeJudge:
    """State of the loopback judge: its mode and the requests it received."""

    mode: str = "ok"
    stall_seconds: float = 3.0
    fail_first: int = 0
    requests: list[dict[str, object]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""
    hang_on: str | None = None  # requests whose prompt holds this wait for ``released``
    hang_after: int | None = None  # requests after this many wait for ``released``
    fail_on: str | None = None  # requests whose prompt holds this fail with HTTP 500
    released: threading.Event = field(default_factory=threading.Event)
    answered: int = 0

    @property
    def calls(self) -> int:
        with self.lock:
            return len(self.requests)

    def reply(self, body: dict[str, object]) -> tuple[int, str]:
        """(HTTP status, body) for one chat-completions request."""
        with self.lock:
            self.requests.append(body)
            number = len(self.requests)
        if self.mode == "timeout":
            time.sleep(self.stall_seconds)
        hanging = self.hang_after is not None and number > self.hang_after
        if hanging or (self.hang_on is not None and self.hang_on in json.dumps(body)):
            self.released.wait(timeout=60)
        failing = self.fail_on is not None and self.fail_on in json.dumps(body)
        if self.mode == "error500" or number <= self.fail_first or failing:
            return 500, json.dumps({"error": {"message": "judge overloaded", "type": "server"}})
        if self.mode in NOT_COMPLETIONS:
            return 200, NOT_COMPLETIONS[self.mode]
        content = "this is { not json" if self.mode == "malformed" else self._content(body)
        completion = {
            "id": f"chatcmpl-{number}",
            "object": "chat.completion",
            "created": 0,
            "model": body.get("model", "fake"),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }
        return 200, json.dumps(completion)

    @staticmethod
    def _content(body: dict[str, object]) -> str:
        messages = body["messages"]
        assert isinstance(messages, list)
        prompt = str(messages[-1]["content"])
        given = json.loads(prompt.rsplit("input: ", 1)[1].rsplit("\nOutput:", 1)[0])
        if "answer" in given:
            statements = [s.strip() for s in re.split(r"(?<=\.)\s+", given["answer"]) if s]
            return json.dumps({"statements": statements})
        if "statements" in given:
            context = _words(given["context"])
            verdicts = [
                {
                    "statement": statement,
                    "reason": "all words occur in the context",
                    "verdict": int(_words(statement) <= context),
                }
                for statement in given["statements"]
            ]
            return json.dumps({"statements": verdicts})
        if "response" in given:
            question = "What does this say: " + " ".join(given["response"].split()[:6]) + "?"
            return json.dumps({"question": question, "noncommittal": 0})
        raise ValueError(f"unexpected prompt input {sorted(given)}")


NOT_COMPLETIONS = {
    "json-list": '["not", "a", "chat", "completion"]',
    "html": "<html><body>502 Bad Gateway from the proxy</body></html>",
    "no-choices": '{"id": "chatcmpl-0", "object": "chat.completion", "choices": []}',
}
"""HTTP 200 bodies that are not chat completions, by ``FakeJudge.mode``."""


@pytest.fixture
def fake_judge() -> Iterator[FakeJudge]:
    """A loopback OpenAI-compatible endpoint, started for one test and stopped after it."""
    state = FakeJudge()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            body = json.loads(self.rfile.read(length))
            if self.path.rstrip("/") != "/v1/chat/completions":
                status, payload = 404, json.dumps({"error": {"message": "not found"}})
            else:
                status, payload = state.reply(body)
            data = payload.encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                return  # the client gave up (timeout test)
            with state.lock:
                state.answered += 1

        def log_message(self, format: str, *args: object) -> None:
            pass

    with serving(Handler) as url:
        state.url = f"{url}/v1"
        try:
            yield state
        finally:
            state.released.set()


def open_store(path: Path) -> Store:
    """A fresh store whose migrations have created the answer tables."""
    return Store.open(path)


def judge_settings(judge: FakeJudge, **overrides: object) -> JudgeSettings:
    values: dict[str, object] = {
        "base_url": judge.url,
        "model": "fake-judge-1",
        "api_key_env": "EVALKIT_TEST_NO_SUCH_KEY",
        "timeout": 5.0,
        "max_retries": 1,
        "retry_backoff": 0.0,
        "concurrency": 4,
        "answer_relevancy": False,
    }
    values.update(overrides)
    return JudgeSettings(**values)  # type: ignore[arg-type]


CONTEXT = "The Eiffel Tower is in Paris. It was completed in 1889 for the World Fair."
RECORDS = (
    # Both statements occur in the context: faithfulness 1.
    AnswerRecord(
        id="full",
        question="Where is the Eiffel Tower and when was it completed?",
        answer="The Eiffel Tower is in Paris. It was completed in 1889.",
        contexts=(CONTEXT,),
    ),
    # One of two statements is supported: faithfulness 0.5.
    AnswerRecord(
        id="half",
        question="Where is the Eiffel Tower?",
        answer="The Eiffel Tower is in Paris. It is painted bright green.",
        contexts=(CONTEXT,),
    ),
    # No statement is supported: faithfulness 0.
    AnswerRecord(
        id="none",
        question="Who designed it?",
        answer="It was designed by Gustave Moreau in Lyon.",
        contexts=(CONTEXT,),
    ),
)


def test_ragas_faithfulness_through_the_loopback_judge(fake_judge: FakeJudge) -> None:
    """Plumbing: ragas' Faithfulness reaches the loopback judge and its verdicts come back."""
    result = score_answers(RECORDS, settings=judge_settings(fake_judge), cache=MemoryJudgeCache())
    values = {s.item_id: s.value for s in result.scores if s.metric == "faithfulness"}
    assert values == {"full": 1.0, "half": 0.5, "none": 0.0}
    assert {s.method for s in result.scores} == {"ragas-llm"}
    assert {s.judge_model for s in result.scores} == {"fake-judge-1"}
    version = result.scores[0].prompt_version
    assert version is not None
    assert version.startswith("ragas-0.4.3/faithfulness/")
    # Two LLM calls per answer: statements, then verdicts.
    assert fake_judge.calls == 6
    assert result.judge_calls == 6
    summary = result.summary("faithfulness")
    assert summary.mean == pytest.approx(0.5)
    assert (summary.n_measured, summary.n_unmeasured) == (3, 0)
    sent = fake_judge.requests[0]
    assert sent["model"] == "fake-judge-1"
    assert sent["temperature"] == 0.0


def test_cache_makes_the_second_evaluation_free(fake_judge: FakeJudge, tmp_path: Path) -> None:
    """Loopback judge: re-scoring the same answers sends zero requests to the judge."""
    store = open_store(tmp_path / "evalkit.duckdb")
    settings = judge_settings(fake_judge)
    first = score_and_store_answers(RECORDS, store=store, settings=settings)
    calls_after_first = fake_judge.calls
    second = score_and_store_answers(RECORDS, store=store, settings=settings)
    assert calls_after_first == 6
    assert fake_judge.calls == calls_after_first
    assert second.judge_calls == 0
    assert second.cache_hits == 3
    assert [s.value for s in second.scores] == [s.value for s in first.scores]
    # A changed context is a different judgment: only that answer goes to the judge again.
    changed = (*RECORDS[:2], AnswerRecord(**{**_fields(RECORDS[2]), "contexts": ("Other.",)}))
    third = score_and_store_answers(changed, store=store, settings=settings)
    assert fake_judge.calls == calls_after_first + 2
    assert third.cache_hits == 2
    stored = answer_scores_frame(store, str(second.scoring_id))
    assert len(stored) == 3
    assert set(stored["judge_model"]) == {"fake-judge-1"}
    assert stored["prompt_version"].str.startswith("ragas-").all()
    store.close()


def test_cache_file_is_shared_across_stores(fake_judge: FakeJudge, tmp_path: Path) -> None:
    """Loopback judge: with cache_path set, a second store re-uses the first one's judgments."""
    open_store(tmp_path / "judge-cache.duckdb").close()
    settings = judge_settings(fake_judge, cache_path=tmp_path / "judge-cache.duckdb")
    for name in ("first.duckdb", "second.duckdb"):
        store = open_store(tmp_path / name)
        score_and_store_answers(RECORDS[:1], store=store, settings=settings)
        store.close()
    assert fake_judge.calls == 2


def test_both_methods_are_stored_side_by_side(fake_judge: FakeJudge) -> None:
    """Loopback judge and the offline method on the same answers, each under its own name."""
    result = score_answers(
        RECORDS, settings=judge_settings(fake_judge, method="both"), cache=MemoryJudgeCache()
    )
    llm = result.summary("faithfulness", "ragas-llm")
    offline = result.summary("faithfulness", "offline-embedding")
    assert (llm.n_measured, offline.n_measured) == (3, 3)
    assert llm.mean == pytest.approx(0.5)
    assert offline.judge_model == "sentence-transformers/all-MiniLM-L6-v2"
    with pytest.raises(KeyError, match="2 summaries"):
        result.summary("faithfulness")


def _fields(record: AnswerRecord) -> dict[str, object]:
    return {name: getattr(record, name) for name in record.__dataclass_fields__}


def test_malformed_json_is_retried_then_unmeasured(fake_judge: FakeJudge, tmp_path: Path) -> None:
    """Loopback judge replying non-JSON: each call is retried, then the row is unmeasured."""
    fake_judge.mode = "malformed"
    store = open_store(tmp_path / "evalkit.duckdb")
    result = score_and_store_answers(
        RECORDS, store=store, settings=judge_settings(fake_judge, max_retries=2)
    )
    assert all(s.value is None for s in result.scores)
    assert {s.unmeasured_reason for s in result.scores} == {"judge_malformed_output"}
    assert all("3 attempts" in str(s.detail) for s in result.scores)
    # The reply itself is quoted: instructor parsed only what stands between braces (nothing).
    assert result.scores[0].detail == (
        "reply is not the JSON asked for (Invalid JSON: EOF while parsing a value at line 1 "
        "column 0): 'this is { not json' (3 attempts)"
    )
    # The first call (statements) fails three times per answer; the verdict call never runs.
    assert fake_judge.calls == 3 * len(RECORDS)
    summary = result.summary("faithfulness")
    assert summary.mean is None
    assert (summary.n_measured, summary.n_unmeasured) == (0, 3)
    assert summary.unmeasured_by_reason == {"judge_malformed_output": 3}
    frame = answer_summary_frame(store, str(result.scoring_id))
    row = frame.iloc[0]
    assert row["mean"] is None or (isinstance(row["mean"], float) and math.isnan(row["mean"]))
    assert (row["n_measured"], row["n_unmeasured"]) == (0, 3)
    # Failures are not cached: a repaired judge is asked again next time.
    fake_judge.mode = "ok"
    again = score_and_store_answers(RECORDS, store=store, settings=judge_settings(fake_judge))
    assert again.cache_hits == 0
    assert again.summary("faithfulness").mean == pytest.approx(0.5)
    store.close()


def test_timeout_is_unmeasured_and_the_average_stays_finite(fake_judge: FakeJudge) -> None:
    """Loopback judge stalling past the timeout: rows unmeasured, the mean of the rest holds."""
    fake_judge.mode = "timeout"
    fake_judge.stall_seconds = 2.0
    settings = judge_settings(fake_judge, timeout=0.3, max_retries=0)
    result = score_answers(RECORDS[:1], settings=settings, cache=MemoryJudgeCache())
    [score] = result.scores
    assert score.value is None
    assert score.unmeasured_reason == "judge_timeout"
    assert result.summary("faithfulness").mean is None
    assert fake_judge.calls == 1


def test_server_errors_are_retried(fake_judge: FakeJudge) -> None:
    """Loopback judge failing its first two requests with HTTP 500: retries recover them."""
    fake_judge.fail_first = 2
    result = score_answers(
        RECORDS[:1],
        settings=judge_settings(fake_judge, max_retries=2, concurrency=1),
        cache=MemoryJudgeCache(),
    )
    assert result.scores[0].value == 1.0
    assert fake_judge.calls == 4  # two failures, then statements and verdicts


def test_persistent_server_error_is_unmeasured_with_its_status(fake_judge: FakeJudge) -> None:
    """Loopback judge always answering HTTP 500: the reason and the status are kept."""
    fake_judge.mode = "error500"
    result = score_answers(
        RECORDS[:2], settings=judge_settings(fake_judge, max_retries=1), cache=MemoryJudgeCache()
    )
    assert [s.unmeasured_reason for s in result.scores] == ["judge_error", "judge_error"]
    assert "HTTP 500" in str(result.scores[0].detail)
    assert fake_judge.calls == 4


@pytest.mark.parametrize("mode", sorted(NOT_COMPLETIONS))
def test_a_reply_that_is_not_a_chat_completion_is_retried(fake_judge: FakeJudge, mode: str) -> None:
    """Loopback judge answering HTTP 200 with a JSON list, an HTML page or no choice: each
    call is asked again like a 5xx, and the detail says what came back, as the relevance
    assessor's does (not an internal AttributeError or IndexError of the client)."""
    fake_judge.mode = mode
    result = score_answers(
        RECORDS[:2], settings=judge_settings(fake_judge, max_retries=1), cache=MemoryJudgeCache()
    )
    assert [s.unmeasured_reason for s in result.scores] == ["judge_error", "judge_error"]
    assert fake_judge.calls == 4
    assert result.scores[0].detail == (
        "HTTP 200, but the body is not a chat completion ({'choices': [{'message': "
        f"{{'content': ...}}}}]}}): {NOT_COMPLETIONS[mode]!r} (2 attempts)"
    )


def test_a_judgment_stopped_between_its_calls_pays_only_for_the_rest(
    fake_judge: FakeJudge, tmp_path: Path
) -> None:
    """Loopback judge answering the statements calls but failing every verdicts call: the
    statements are kept, so the next scoring sends only the verdicts calls; once the
    judgments are cached, their calls' outputs are dropped."""
    store = open_store(tmp_path / "evalkit.duckdb")
    fake_judge.fail_on = "World Fair"  # in the context, which only the verdicts prompt holds
    settings = judge_settings(fake_judge, max_retries=0)
    failed = score_and_store_answers(RECORDS, store=store, settings=settings)
    assert {s.unmeasured_reason for s in failed.scores} == {"judge_error"}
    assert fake_judge.calls == 6
    assert store.fetch("SELECT count(*) FROM judge_calls") == [(3,)]

    fake_judge.fail_on = None
    again = score_and_store_answers(RECORDS, store=store, settings=settings)
    assert fake_judge.calls == 6 + 3
    assert (again.judge_calls, again.cache_hits) == (3, 0)
    values = {s.item_id: s.value for s in again.scores}
    assert values == {"full": 1.0, "half": 0.5, "none": 0.0}
    assert store.fetch("SELECT count(*) FROM judge_calls") == [(0,)]
    assert store.fetch("SELECT count(*) FROM judge_cache") == [(3,)]
    store.close()


def test_an_answers_second_call_follows_its_first(fake_judge: FakeJudge) -> None:
    """One call at a time: each answer's verdicts are asked right after its statements, not
    after every other answer's statements, so a scoring stopped part-way has whole
    judgments."""
    score_answers(
        RECORDS, settings=judge_settings(fake_judge, concurrency=1), cache=MemoryJudgeCache()
    )
    kinds = [
        "verdicts" if "World Fair" in json.dumps(request) else "statements"
        for request in fake_judge.requests
    ]
    assert kinds == ["statements", "verdicts"] * 3


def test_progress_advances_with_each_answer_judged(fake_judge: FakeJudge) -> None:
    """The LLM judge reports (answers done, in all) as each answer is judged, a cached one
    at once; with both methods each answer counts once for each."""
    seen: list[tuple[int, int]] = []
    cache = MemoryJudgeCache()
    settings = judge_settings(fake_judge, concurrency=1)
    score_answers(RECORDS[:1], settings=settings, cache=cache)
    score_answers(RECORDS, settings=settings, cache=cache, progress=lambda *p: seen.append(p))
    assert seen == [(1, 3), (2, 3), (3, 3)]

    seen.clear()
    both = judge_settings(fake_judge, concurrency=1, method="both")
    score_answers(
        RECORDS, settings=both, cache=MemoryJudgeCache(), progress=lambda *p: seen.append(p)
    )
    assert seen[-4:] == [(3, 6), (4, 6), (5, 6), (6, 6)]
    assert seen == sorted(seen)


def test_repeats_report_their_spread(fake_judge: FakeJudge) -> None:
    """Loopback judge (deterministic): three repeats agree, so the spread is 0."""
    result = score_answers(
        RECORDS[1:2], settings=judge_settings(fake_judge, repeats=3), cache=MemoryJudgeCache()
    )
    [score] = result.scores
    assert (score.value, score.n_repeats, score.spread) == (0.5, 3, 0.0)
    assert fake_judge.calls == 6


def test_unmeasured_inputs_never_reach_the_judge(fake_judge: FakeJudge) -> None:
    """Empty answer, empty contexts, empty question: unmeasured before any request is sent."""
    records = [
        AnswerRecord(id="no-answer", question="q?", answer="  ", contexts=(CONTEXT,)),
        AnswerRecord(id="no-context", question="q?", answer="Paris.", contexts=()),
        AnswerRecord(id="no-question", question="", answer="Paris.", contexts=(CONTEXT,)),
        RECORDS[0],
    ]
    result = score_answers(records, settings=judge_settings(fake_judge), cache=MemoryJudgeCache())
    reasons = {s.item_id: s.unmeasured_reason for s in result.scores}
    assert reasons == {
        "no-answer": Unmeasured.empty_answer,
        "no-context": Unmeasured.empty_contexts,
        "no-question": Unmeasured.empty_question,
        "full": None,
    }
    summary = result.summary("faithfulness")
    assert (summary.mean, summary.n_measured, summary.n_unmeasured) == (1.0, 1, 3)
    assert fake_judge.calls == 2


def test_answer_relevancy_uses_the_judge_and_the_local_embedder(fake_judge: FakeJudge) -> None:
    """Loopback judge: ragas AnswerRelevancy asks three questions per answer (strictness 3)."""
    from evalkit.embedding import load_embedder

    settings = judge_settings(fake_judge, answer_relevancy=True)
    result = score_answers(
        RECORDS[:1], settings=settings, cache=MemoryJudgeCache(), embedder=load_embedder()
    )
    relevancy = result.summary("answer_relevancy", "ragas-llm")
    assert relevancy.n_measured == 1
    assert relevancy.mean is not None
    assert 0.0 < relevancy.mean <= 1.0
    assert relevancy.prompt_version is not None
    assert relevancy.prompt_version.endswith("all-MiniLM-L6-v2")
    assert fake_judge.calls == 2 + 3


def test_call_guard_limits_concurrency_and_counts_calls() -> None:
    """The guard never lets more calls run at once than allowed, and counts each attempt."""
    guard = CallGuard(timeout=5.0, max_retries=0, retry_backoff=0.0, concurrency=2)
    running = 0
    peak = 0

    async def work() -> int:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio_sleep(0.01)
        running -= 1
        return 1

    async def main() -> list[int]:
        import asyncio

        return list(await asyncio.gather(*(guard.call(work) for _ in range(7))))

    assert run_sync(main) == [1] * 7
    assert peak == 2
    assert guard.calls == 7


async def asyncio_sleep(seconds: float) -> None:
    import asyncio

    await asyncio.sleep(seconds)


def test_call_guard_gives_up_with_the_reason() -> None:
    """A call that keeps failing becomes a JudgeCallError after 1 + max_retries attempts."""
    guard = CallGuard(timeout=5.0, max_retries=2, retry_backoff=0.0, concurrency=1)

    async def broken() -> int:
        raise TimeoutError

    async def main() -> int:
        return await guard.call(broken)

    with pytest.raises(JudgeCallError) as caught:
        run_sync(main)
    assert caught.value.reason == Unmeasured.judge_timeout
    assert "3 attempts" in caught.value.detail
    assert guard.calls == 3


def test_rate_limiter_spaces_call_starts() -> None:
    """At 600 calls a minute, starts are 0.1 s apart: the limiter sleeps exactly the gap."""
    now = 100.0
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    limiter = RateLimiter(per_minute=600, clock=lambda: now, sleep=fake_sleep)

    async def main() -> None:
        for _ in range(4):
            await limiter.wait()

    run_sync(main)
    # All four calls arrive at t=100: they may start at 100.0, 100.1, 100.2 and 100.3.
    assert slept == pytest.approx([0.1, 0.2, 0.3])


def test_judge_requires_configuration() -> None:
    """No base_url/model: the LLM judge refuses to start with a message saying what to set."""
    from evalkit.errors import ConfigError

    with pytest.raises(ConfigError, match="base_url and model"):
        LLMJudge(JudgeSettings(base_url=None, model=None))


def _judge_environment(judge: FakeJudge, home: Path) -> dict[str, str]:
    """The environment of an evalkit process whose [judge] is ``judge``."""
    return {
        **os.environ,
        "EVALKIT_HOME": str(home),
        "EVALKIT_JUDGE_BASE_URL": judge.url,
        "EVALKIT_JUDGE_MODEL": "fake-judge-1",
        "EVALKIT_JUDGE_API_KEY_ENV": "EVALKIT_TEST_JUDGE_KEY",
        "EVALKIT_TEST_JUDGE_KEY": "sk-test",
        "EVALKIT_JUDGE_ANSWER_RELEVANCY": "false",
        "EVALKIT_JUDGE_MAX_RETRIES": "1",
        "EVALKIT_JUDGE_RETRY_BACKOFF": "0",
    }


def _answers_file(path: Path) -> Path:
    path.write_text("".join(json.dumps(_fields(record)) + "\n" for record in RECORDS))
    return path


def _score_command(answers: Path) -> list[str]:
    return [sys.executable, "-m", "evalkit", "answers", "score", str(answers), "--method", "llm"]


def _start_scoring(answers: Path, env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    """`evalkit answers score ANSWERS --method llm ARGS`, started, its output piped."""
    return subprocess.Popen(
        [*_score_command(answers), *args],
        env=env,
        cwd=answers.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _score(answers: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`evalkit answers score ANSWERS --method llm --format json`, run to its end."""
    return subprocess.run(
        [*_score_command(answers), "--format", "json"],
        check=False,
        env=env,
        cwd=answers.parent,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_judge_that_answers_nothing_fails_the_scoring(
    fake_judge: FakeJudge, tmp_path: Path
) -> None:
    """`answers score --method llm` with a judge failing every call exits 3 (a CI job must
    not pass with nothing measured) and stores no scoring; a judge that answers some calls
    still gives a stored scoring with the rest counted as unmeasured."""
    fake_judge.mode = "error500"
    answers = _answers_file(tmp_path / "answers.jsonl")
    env = _judge_environment(fake_judge, tmp_path / "home")
    failed = _score(answers, env)
    assert failed.returncode == 3, failed.stderr
    assert "the judge gave none of the 3 judgments asked for (judge_error 3" in failed.stderr
    assert "HTTP 500" in failed.stderr
    stored = tmp_path / "home" / "evalkit.duckdb"
    if stored.exists():
        with Store.open(stored, read_only=True) as store:
            assert store.fetch("SELECT count(*) FROM answer_scorings") == [(0,)]

    fake_judge.mode = "ok"
    fake_judge.fail_on = "Gustave Moreau"  # the third answer's calls fail
    scored = _score(answers, env)
    assert scored.returncode == 0, scored.stderr
    [summary] = json.loads(scored.stdout)["summaries"]
    assert (summary["n_measured"], summary["unmeasured_by_reason"]) == (2, {"judge_error": 1})


def test_judgments_answered_before_sigterm_are_kept(fake_judge: FakeJudge, tmp_path: Path) -> None:
    """SIGTERM mid-scoring (a cancelled CI job): exit 143, and the judgments already
    answered are in the cache, so the rerun sends only the calls of the answer that was
    still waiting."""
    fake_judge.hang_on = "Gustave Moreau"  # the third answer's calls wait until released
    answers = _answers_file(tmp_path / "answers.jsonl")
    env = _judge_environment(fake_judge, tmp_path / "home")
    process = _start_scoring(answers, env)
    err = _terminate_once_two_judgments_are_kept(
        process, fake_judge, tmp_path / "home" / "evalkit.duckdb"
    )
    assert "terminated (SIGTERM)" in err

    fake_judge.hang_on = None
    fake_judge.released.set()
    sent_before = fake_judge.calls
    rerun = _score(answers, env)
    assert rerun.returncode == 0, rerun.stderr
    result = json.loads(rerun.stdout)
    assert fake_judge.calls - sent_before == 2
    assert (result["judge_calls"], result["cache_hits"]) == (2, 2)
    assert result["summaries"][0]["mean"] == pytest.approx(0.5)


def _terminate_once_two_judgments_are_kept(
    process: subprocess.Popen[str], judge: FakeJudge, store_path: Path
) -> str:
    """SIGTERM ``process`` once two answers are judged and kept while the third one's call
    waits; it must exit 143. Returns its stderr."""
    try:
        # Two answers are judged (statements, then verdicts) and the third one's call waits.
        _wait_for_calls(process, judge, answered=4, received=5)
        # Answered is not yet kept: the two judgments reach the cache with the scoring's
        # next write, which SIGTERM could otherwise overtake.
        wait_until(
            lambda: _cached_judgments(store_path) == 2,
            timeout=60,
            what="2 cached judgments",
            interval=0.5,
        )
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 143, err
    return err


def _cached_judgments(store_path: Path) -> int:
    """The judge cache's rows, counted under the store's writer lock. Poll it slowly: the
    scoring waits only 1 s for the store to keep its outputs, and a poll that took the lock
    back every few milliseconds could starve it (then they are kept only at its end)."""
    with StoreAccess(store_path, wait=10, program="test").writer("counting") as store:
        return int(store.fetch("SELECT count(*) FROM judge_cache")[0][0])


def _wait_for_calls(
    process: subprocess.Popen[str], judge: FakeJudge, *, answered: int, received: int
) -> None:
    """Wait until ``judge`` has answered ``answered`` calls and received ``received``,
    while ``process`` keeps running."""
    deadline = time.monotonic() + 240
    while judge.answered < answered or judge.calls < received:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the judge never got the calls"
        time.sleep(0.05)


def test_answers_score_lets_another_writer_have_the_store_while_the_judge_works(
    fake_judge: FakeJudge, tmp_path: Path
) -> None:
    """`evalkit answers score` held the store while every judge call was in flight, so
    `evalkit runs list`, any writer and `evalkit serve` waited for a slow judge; it now
    opens the store to read and add to the judge's cache and to store the scores."""
    fake_judge.hang_after = 0
    answers = _answers_file(tmp_path / "answers.jsonl")
    env = _judge_environment(fake_judge, tmp_path / "home")
    store_path = tmp_path / "home" / "evalkit.duckdb"
    scoring = _start_scoring(answers, env, "--format", "json")
    try:
        _wait_for_calls(scoring, fake_judge, answered=0, received=1)
        with StoreAccess(store_path, wait=1, program="test").writer("a writer") as store:
            store.fetch("SELECT count(*) FROM judge_cache")
    finally:
        fake_judge.released.set()
        out, err = scoring.communicate(timeout=120)
    assert scoring.returncode == 0, err
    result = json.loads(out)
    with Store.open(store_path, read_only=True) as store:
        stored = store.fetch("SELECT scoring_id FROM answer_scorings")
    assert stored == [(result["scoring_id"],)]
    assert result["summaries"][0]["mean"] == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("cache_file", "failed"),
    [
        # The judge's cache in a file of its own: only the scores need the store.
        (True, "were scored but their scores could not be stored, and are not stored"),
        # In the store: keeping the last judgment's outputs waits first.
        (False, "could not be scored, and no scores are stored"),
    ],
)
def test_answer_scores_the_store_refuses_at_the_end_are_said_not_stored(
    fake_judge: FakeJudge, tmp_path: Path, cache_file: bool, failed: str
) -> None:
    """The store busy past the wait as the scoring ends: `answers score` said only "waited
    1 s for the store"; it says the scores are not stored and what the judge's cache keeps,
    and the rerun, once the store is free, sends only the calls whose outputs were lost."""
    fake_judge.hang_on = "Gustave Moreau"  # the third answer's calls wait until released
    answers = _answers_file(tmp_path / "answers.jsonl")
    env = {**_judge_environment(fake_judge, tmp_path / "home"), "EVALKIT_STORE_WAIT": "1"}
    store_path = tmp_path / "home" / "evalkit.duckdb"
    if cache_file:
        env["EVALKIT_JUDGE_CACHE_PATH"] = str(tmp_path / "judge-cache.duckdb")
    scoring = _start_scoring(answers, env)
    try:
        _wait_for_calls(scoring, fake_judge, answered=4, received=5)
        if not cache_file:  # the scoring keeps its own cache file open
            wait_until(
                lambda: _cached_judgments(store_path) == 2,
                timeout=60,
                what="2 cached judgments",
                interval=0.5,
            )
        with StoreAccess(store_path, wait=10, program="test").writer("a long write"):
            fake_judge.released.set()
            _, err = scoring.communicate(timeout=120)
    finally:
        fake_judge.released.set()
        scoring.kill()
    assert scoring.returncode == 3, err
    assert (
        f"the answers of {answers} {failed}: waited 1 s for the store {store_path}"
    ) in " ".join(err.split())
    assert (
        "; the judge's outputs that reached its cache are kept, so scoring the same answers "
        "again sends it only the other calls"
    ) in " ".join(err.split())
    with Store.open(store_path, read_only=True) as store:
        assert store.fetch("SELECT count(*) FROM answer_scorings") == [(0,)]

    sent_before = fake_judge.calls
    rerun = _score(answers, env)
    assert rerun.returncode == 0, rerun.stderr
    assert (fake_judge.calls - sent_before, json.loads(rerun.stdout)["cache_hits"]) == (
        (0, 3) if cache_file else (2, 2)  # the third answer's outputs were never kept
    )


def test_kill_9_keeps_the_calls_the_judge_answered(fake_judge: FakeJudge, tmp_path: Path) -> None:
    """`kill -9` mid-scoring, one call at a time: the judge answered five calls (two whole
    judgments and the third answer's statements) and holds the sixth; every answered output
    was stored within ``FLUSH_SECONDS``, so the rerun sends only the sixth call."""
    fake_judge.hang_after = 5
    answers = _answers_file(tmp_path / "answers.jsonl")
    env = {**_judge_environment(fake_judge, tmp_path / "home"), "EVALKIT_JUDGE_CONCURRENCY": "1"}
    process = subprocess.Popen(
        _score_command(answers),
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for_calls(process, fake_judge, answered=5, received=6)
        # What the process was promised: the last output answered is stored by now.
        stored_by = time.monotonic() + FLUSH_SECONDS + 1.0
        while time.monotonic() < stored_by:
            assert process.poll() is None, process.communicate()
            time.sleep(0.05)
        process.kill()
        process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == -signal.SIGKILL

    fake_judge.hang_after = None
    fake_judge.released.set()
    rerun = _score(answers, env)
    assert rerun.returncode == 0, rerun.stderr
    result = json.loads(rerun.stdout)
    assert fake_judge.calls == 6 + 1
    assert (result["judge_calls"], result["cache_hits"]) == (1, 2)
    assert result["summaries"][0]["mean"] == pytest.approx(0.5)


def test_a_reply_nested_too_deeply_to_read_is_not_a_completion() -> None:
    """Read as JSON it raised RecursionError, which the openai client does not retry."""
    request = httpx.Request("POST", "http://127.0.0.1:9/v1/chat/completions")
    response = httpx.Response(200, content=b"[" * 100_000 + b"]" * 100_000, request=request)
    with pytest.raises(NotACompletionError):
        asyncio.run(_require_completion(response))


class RagEndpoint(JSONHandler):
    """A loopback RAG endpoint: RECORDS' answer and passage for the query of their id."""

    def do_POST(self) -> None:
        body = self.read_json()
        record = RECORDS_BY_ID.get(str(body["query_id"]))
        if record is None:  # the retriever's probe query
            self.send_json({"results": []})
            return
        passages = [{"id": f"{record.id}-p{n}", "text": c} for n, c in enumerate(record.contexts)]
        self.send_json({"results": passages, "answer": record.answer})


RECORDS_BY_ID = {record.id: record for record in RECORDS}


def _rag_goldset(folder: Path) -> Path:
    """A goldset of RECORDS' questions, each judged relevant to its own first passage."""
    folder.mkdir()
    queries = [{"id": record.id, "text": record.question} for record in RECORDS]
    judgments = [
        {"query_id": record.id, "doc_id": f"{record.id}-p0", "relevance": 1} for record in RECORDS
    ]
    (folder / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries))
    (folder / "judgments.jsonl").write_text("".join(json.dumps(j) + "\n" for j in judgments))
    return folder


def _start_rag_run(
    goldset: Path, url: str, env: dict[str, str], *args: str
) -> subprocess.Popen[str]:
    """`evalkit run --goldset GOLDSET --http-retriever URL --k 3 ARGS`, started, its output
    piped."""
    return subprocess.Popen(
        [
            sys.executable, "-m", "evalkit", "run", "--goldset", str(goldset),
            "--http-retriever", url, "--k", "3", *args,
        ],
        env=env,
        cwd=goldset.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip


def test_a_goldset_run_lets_another_writer_have_the_store_while_the_judge_scores_its_answers(
    fake_judge: FakeJudge, tmp_path: Path
) -> None:
    """`evalkit run` on a RAG endpoint scored the answers inside the stretch that records the
    run, so `evalkit runs list` and every writer waited for the judge; the run is now
    recorded first and its answers scored after, with the store opened only to read and add
    to the judge's cache and to store the scores."""
    fake_judge.hang_after = 0
    env = _judge_environment(fake_judge, tmp_path / "home")
    store_path = tmp_path / "home" / "evalkit.duckdb"
    with serving(RagEndpoint) as url:
        run = _start_rag_run(_rag_goldset(tmp_path / "rag"), url, env, "--format", "json")
        try:
            _wait_for_calls(run, fake_judge, answered=0, received=1)
            with StoreAccess(store_path, wait=1, program="test").writer("a writer") as store:
                [(status,)] = store.fetch("SELECT status FROM runs")
        finally:
            fake_judge.released.set()
            out, err = run.communicate(timeout=120)
    assert run.returncode == 0, err
    assert status == "complete"
    result = json.loads(out)
    answers = result["answers"]
    assert answers["summaries"][0]["mean"] == pytest.approx(0.5)
    with Store.open(store_path, read_only=True) as store:
        stored = store.fetch("SELECT scoring_id, run_id FROM answer_scorings")
    assert stored == [(answers["scoring_id"], result["run_id"])]


def test_a_goldset_run_shows_its_answers_being_scored_after_its_replay(
    fake_judge: FakeJudge, tmp_path: Path
) -> None:
    """While the judge scored a RAG run's answers, the run showed only its replay's
    `finishing` line, however long the judge took."""
    env = _judge_environment(fake_judge, tmp_path / "home")
    with serving(RagEndpoint) as url:
        run = _start_rag_run(_rag_goldset(tmp_path / "rag"), url, env)
        _, err = run.communicate(timeout=300)
    assert run.returncode == 0, err
    lines = err.splitlines()
    replayed = [i for i, line in enumerate(lines) if line.startswith("replaying ")]
    scored = [i for i, line in enumerate(lines) if line.startswith("scoring answers: ")]
    assert replayed, err
    assert scored, err
    assert max(replayed) < min(scored)
    assert lines[scored[-1]].startswith("scoring answers: 3/3 (100%)")


def test_a_goldset_run_stopped_while_its_answers_are_scored_stays_recorded(
    fake_judge: FakeJudge, tmp_path: Path
) -> None:
    """SIGTERM while the judge scores the answers of `evalkit run`: exit 143, the run stays
    recorded complete without answer scores (and says so), the judgments answered are in
    the cache, and the rerun sends only the calls of the answer that was still waiting."""
    fake_judge.hang_on = "Gustave Moreau"  # the third answer's calls wait until released
    env = _judge_environment(fake_judge, tmp_path / "home")
    store_path = tmp_path / "home" / "evalkit.duckdb"
    goldset = _rag_goldset(tmp_path / "rag")
    with serving(RagEndpoint) as url:
        run = _start_rag_run(goldset, url, env)
        err = _terminate_once_two_judgments_are_kept(run, fake_judge, store_path)
        with Store.open(store_path, read_only=True) as store:
            [(run_id, status)] = store.fetch("SELECT run_id, status FROM runs")
            assert store.fetch("SELECT count(*) FROM answer_scorings") == [(0,)]
        assert status == "complete"
        assert (
            f"run {run_id} is recorded as it finished, but its answers were not scored: no "
            "answer scores are stored for it; the judge's outputs that reached its cache are "
            "kept, so scoring the same answers again sends it only the other calls"
        ) in " ".join(err.split())

        fake_judge.hang_on = None
        fake_judge.released.set()
        sent_before = fake_judge.calls
        rerun = _start_rag_run(goldset, url, env, "--format", "json")
        out, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err
    answers = json.loads(out)["answers"]
    assert fake_judge.calls - sent_before == 2
    assert (answers["judge_calls"], answers["cache_hits"]) == (2, 2)
    assert answers["summaries"][0]["mean"] == pytest.approx(0.5)
