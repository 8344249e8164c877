"""The public surface of evalkit.traffic."""

from __future__ import annotations

import subprocess
import sys

import pytest

import evalkit.traffic


def test_every_public_name_resolves() -> None:
    for name in evalkit.traffic.__all__:
        assert getattr(evalkit.traffic, name) is not None, name
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        _ = evalkit.traffic.nothing_here  # type: ignore[attr-defined]


def test_logging_a_query_does_not_load_the_store() -> None:
    probe = (
        "import sys, tempfile; from evalkit.traffic import log_query; "
        "log_query(tempfile.mktemp(), text='q', results=['a', ('b', 0.5), {'doc_id': 'c'}]); "
        "print(sorted(m for m in ('duckdb', 'pandas', 'pyarrow') if m in sys.modules))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], check=True, capture_output=True, text=True
    ).stdout.strip()
    assert loaded == "[]"
