"""The probable-causes panel with Streamlit's AppTest on the shared seeded store: Compare
runs of A1 -> A3 (new query model, rebuilt index, new goldset version, grade-1 documents
returned nowhere) names them with their shares, and Alerts says when an alert names no
runs."""

from __future__ import annotations

from test_dashboard_pages import open_page, seeded, use_store  # noqa: F401  (fixtures)
from test_dashboard_seed import SeededStore


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
    assert "the judgments of 0 compared queries differ" in text
    assert "1 queries added" in text


def test_alerts_say_why_an_alert_has_no_causes(
    seeded: SeededStore,  # noqa: F811
    use_store,  # noqa: F811
) -> None:
    use_store(seeded.path)
    app = open_page("alerts", alert=seeded.alert)
    assert any("names no candidate run" in info.value for info in app.info)
