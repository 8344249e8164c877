"""Waiting on a condition instead of the wall clock: poll, with a deadline that fails the test."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest


def wait_until(
    predicate: Callable[[], bool], *, timeout: float = 30.0, what: str = "", interval: float = 0.05
) -> None:
    """Poll ``predicate`` every ``interval`` seconds until it holds; fail the test after
    ``timeout`` seconds, naming ``what`` it waited for."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout} s waiting for {what or predicate}")
