"""Plain progress lines for logs (``ProgressLines``, ``progress_bar`` off a terminal): a line
at every further 10 % of the work and at least every interval while it runs."""

from __future__ import annotations

import time

import pytest

from evalkit.cli._output import ProgressLines, progress_bar


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def lines_for(clock: Clock, *, interval: float = 10.0) -> tuple[ProgressLines, list[str]]:
    written: list[str] = []
    progress = ProgressLines(
        "indexing c.jsonl", write=written.append, interval=interval, clock=clock
    )
    return progress, written


def test_a_line_at_each_further_tenth_of_the_work() -> None:
    clock = Clock()
    progress, written = lines_for(clock)
    for done in range(0, 1001, 25):
        clock.now += 0.1
        progress.update(done, 1000)
    progress.finish()
    shares = [line.split("(")[1].split(")")[0] for line in written]
    assert shares == [f"{tenth}0%" for tenth in range(1, 10)] + ["100%"]
    assert written[0] == "indexing c.jsonl: 100/1,000 (10%), 0:00:00, about 0:00:04 left\n"
    assert written[-1] == "indexing c.jsonl: 1,000/1,000 (100%), 0:00:04\n"


def test_a_batch_that_jumps_several_tenths_prints_one_line() -> None:
    clock = Clock()
    progress, written = lines_for(clock)
    progress.update(0, 330)
    progress.update(200, 330)
    progress.update(330, 330)
    assert [line.split(",")[0] for line in written] == [
        "indexing c.jsonl: 200/330 (61%)",
        "indexing c.jsonl: 330/330 (100%)",
    ]


def test_a_line_every_interval_while_the_work_is_slow() -> None:
    clock = Clock()
    progress, written = lines_for(clock)
    progress.tick()
    assert written == []
    clock.now += 10
    progress.tick()
    assert written == ["indexing c.jsonl: started, 0:00:10\n"]
    progress.update(5, 1000)
    clock.now += 9.5
    progress.tick()
    assert len(written) == 1
    clock.now += 0.5
    progress.tick()
    assert written[-1] == "indexing c.jsonl: 5/1,000 (0%), 0:00:20, about 1:06:20 left\n"
    # A tenth passed resets the wait: the next timed line is 10 s after it.
    clock.now += 5
    progress.update(100, 1000)
    clock.now += 6
    progress.tick()
    assert len(written) == 3
    clock.now += 4
    progress.tick()
    assert len(written) == 4


def test_work_of_unknown_size_shows_the_count_done() -> None:
    clock = Clock()
    progress, written = lines_for(clock)
    progress.update(300, None)
    assert written == []
    clock.now += 61
    progress.tick()
    assert written == ["indexing c.jsonl: 300 done, 0:01:01\n"]
    progress.update(400, None)
    progress.finish()
    assert written[-1] == "indexing c.jsonl: 400 done, 0:01:01\n"


def test_finish_prints_nothing_for_work_that_printed_nothing() -> None:
    progress, written = lines_for(Clock())
    progress.update(0, 10)
    progress.finish()
    assert written == []


def test_progress_bar_off_a_terminal_prints_lines_on_stderr_while_it_runs(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with progress_bar("replaying demo", enabled=True, interval=0.05) as update:
        assert update is not None
        update(3, 129)
        deadline = time.monotonic() + 10
        while "replaying demo: 3/129" not in capsys.readouterr().err:
            assert time.monotonic() < deadline, "no timed line within 10 s at a 0.05 s interval"
            time.sleep(0.02)
        update(129, 129)
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("replaying demo: 129/129 (100%), 0:00:00")
    assert err.count("\n") == 1


def test_a_later_stage_prints_its_own_lines_once_it_starts(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A RAG run's answers, judged after its replay, showed only the replay's `finishing`
    line for as long as the judge took, which read as stuck."""
    with progress_bar("replaying demo", enabled=True, interval=60) as update:
        assert update is not None
        answers = update.stage("scoring answers")
        update(129, 129)
        assert capsys.readouterr().err == "replaying demo: 129/129 (100%), 0:00:00\n"
        answers(0, 40)
        answers(40, 40)
    assert capsys.readouterr().err == "scoring answers: 40/40 (100%), 0:00:00\n"


def test_a_stage_never_reached_prints_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    with progress_bar("replaying demo", enabled=True, interval=60) as update:
        assert update is not None
        update.stage("scoring answers")
        update(129, 129)
    assert capsys.readouterr().err == "replaying demo: 129/129 (100%), 0:00:00\n"


def test_progress_bar_is_silent_when_disabled(capsys: pytest.CaptureFixture[str]) -> None:
    with progress_bar("replaying demo", enabled=False, interval=0.01) as update:
        assert update is None
        time.sleep(0.05)
    assert capsys.readouterr() == ("", "")


def test_time_after_the_work_is_done_is_said_as_finishing_not_the_same_line_again() -> None:
    """A 50,000-query run printed `(100%), 0:01:13` and ten seconds later `(100%), 0:01:23`
    while it scored and stored the run, which read as stuck."""
    clock = Clock()
    progress, written = lines_for(clock)
    clock.now += 73
    progress.update(1000, 1000)
    clock.now += 10
    progress.tick()
    progress.finish()
    assert written == [
        "indexing c.jsonl: 1,000/1,000 (100%), 0:01:13\n",
        "indexing c.jsonl: 1,000/1,000 (100%) in 0:01:13; finishing, 0:01:23\n",
    ]
