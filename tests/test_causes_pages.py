"""The probable-causes panel with Streamlit's AppTest on the shared seeded store: Compare
runs of A1 -> A3 (new query model, rebuilt index, new goldset version, grade-1 documents
returned nowhere) names them with their shares; Drift shows them for a precision check and
Alerts says when an alert names no runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_causes import precision_check, seed_removed_documents
from test_dashboard_pages import open_page, seeded, use_store  # noqa: F401  (fixtures)
from test_dashboard_seed import SeededStore

from evalkit.store import Store


def _texts(app) -> str:  # type: ignore[no-untyped-def]
    return "\n".join(str(element.value) for element in app.markdown)


def test_compare_names_the_changes_between_the_runs_best_first(
    seeded: SeededStore,  # noqa: F811
    use_store,  # noqa: F811
) -> None:
    use_store(seeded.path)
    app = open_page(
        "compare", goldset="mini", baseline=seeded.runs["A1"], candidate=seeded.runs["A3"]
    )
    assert any(h.value == "Probable causes" for h in app.subheader)
    text = _texts(app)
    order = [text.index(f"**{n}. ") for n in (1, 2, 3, 4)]
    assert order == sorted(order)
    assert "**1. query model changed**" in text
    assert "**2. index changed**" in text
    assert "**3. absent from results**" in text
    assert "**4. goldset changed**" in text
    assert "canary fp-1) in the baseline" in text
    assert "no query both versions hold is judged otherwise" in text
    assert "1 queries added" in text


def test_alerts_say_why_an_alert_has_no_causes(
    seeded: SeededStore,  # noqa: F811
    use_store,  # noqa: F811
) -> None:
    use_store(seeded.path)
    app = open_page("alerts", alert=seeded.alert)
    assert any("names no candidate run" in info.value for info in app.info)


@pytest.mark.slow
def test_a_precision_drift_check_shows_the_causes_of_its_runs(
    tmp_path: Path,
    use_store,  # noqa: F811
) -> None:
    path = tmp_path / "evalkit.duckdb"
    ids = seed_removed_documents(path)
    with Store.open(path) as store:
        check = precision_check(store, ids["baseline"], ids["candidate"], "ndcg@10")
    use_store(path)
    app = open_page("drift", check=check)
    text = _texts(app)
    assert "**1. missing from index**" in text
    assert "7 of the 7 relevant documents lost by the 7 queries that dropped" in text
