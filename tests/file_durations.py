"""Per-file test durations, used only to start the slowest test files first.

pytest-xdist hands each worker a whole file (``--dist loadfile``) and, by default, starts the
files with the most tests first; a slow file of few tests (a Ray cluster, a browser) then
starts last and runs alone while the other worker idles. ``tests/durations.json`` holds each
file's measured seconds and ``conftest.pytest_collection_modifyitems`` starts the files in
that order (``make unit`` passes ``--no-loadscope-reorder``). Refresh it from a whole run:

    make unit PYTEST_ADDOPTS=--durations=0 | python tests/file_durations.py > tests/durations.json
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter

DURATION = re.compile(r"^([\d.]+)s (?:call|setup|teardown)\s+(tests/[^:]+)::")


def file_seconds(lines: list[str], *, at_least: float = 5.0) -> dict[str, int]:
    """Each test file's summed durations from ``--durations=0`` lines, the files of at least
    ``at_least`` seconds, slowest first."""
    seconds: Counter[str] = Counter()
    for line in lines:
        if match := DURATION.match(line):
            seconds[match[2]] += float(match[1])
    return {name: round(total) for name, total in seconds.most_common() if total >= at_least}


if __name__ == "__main__":
    json.dump(file_seconds(sys.stdin.readlines()), sys.stdout, indent=1)
    print()
