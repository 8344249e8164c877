"""``map_requests``: a retriever's requests on a few threads, which an interruption does not
wait for."""

from __future__ import annotations

import linecache
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from evalkit.coroutines import map_requests


class _InterruptedError(Exception):
    pass


def _interrupt(signum: int, frame: object) -> None:
    raise _InterruptedError


@pytest.fixture
def interrupting_handler() -> Iterator[None]:
    previous = signal.signal(signal.SIGUSR1, _interrupt)
    yield
    signal.signal(signal.SIGUSR1, previous)


def _blocked_in_a_wait(thread: threading.Thread) -> bool:
    """Whether ``thread`` is blocked on a lock inside ``threading``'s waits: at the line
    that acquires it, and asleep."""
    frame = sys._current_frames()[thread.ident or 0]
    line = linecache.getline(frame.f_code.co_filename, frame.f_lineno)
    state = Path(f"/proc/self/task/{thread.native_id}/stat").read_text().rsplit(")", 1)[1]
    return "waiter.acquire(" in line and state.split()[0] == "S"


def test_results_come_in_the_order_of_the_items() -> None:
    answered = map_requests(lambda item, stopped: item * 2, [3, 1, 2], workers=2)
    assert answered == [6, 2, 4]


def test_a_request_that_raises_stops_the_others_starting() -> None:
    def ask(item: int, stopped: threading.Event) -> int:
        if item == 0:
            raise ValueError("endpoint gone")
        stopped.wait(30)
        return item

    with pytest.raises(ValueError, match="endpoint gone"):
        map_requests(ask, [0, 1], workers=2)


def test_a_signal_handed_to_another_thread_interrupts_the_wait(
    interrupting_handler: None,
) -> None:
    """The kernel may hand a process's signal to any of its threads, and a signal can land
    just before the waiting thread blocks: either way Python only notes it, and the waiting
    thread acts on it when it next wakes. A hung request must not be what wakes it."""
    in_flight = threading.Event()
    released = threading.Event()
    ended = threading.Event()
    states: list[bool] = []

    def ask(item: int, stopped: threading.Event) -> int:
        in_flight.set()
        released.wait(30)
        ended.set()
        return item

    def signal_from_another_thread() -> None:
        in_flight.wait(30)
        while not _blocked_in_a_wait(threading.main_thread()):
            released.wait(0.01)
        signal.raise_signal(signal.SIGUSR1)  # delivered to this thread, not the waiting one

    threading.Thread(target=signal_from_another_thread).start()
    try:
        with pytest.raises(_InterruptedError):
            map_requests(ask, [1], workers=1)
        states.append(ended.is_set())
    finally:
        released.set()
    assert states == [False], "the wait went on until the request ended"
