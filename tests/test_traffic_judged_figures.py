"""Judged figures where users look at traffic: `evalkit traffic windows` (table and JSON) and
the Traffic page's judged precision chart, on the seeded store's two windows judged by two
assessors (``test_dashboard_seed.JUDGED_PRECISION``), seeded without an LLM."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from test_dashboard_pages import open_page
from test_dashboard_seed import (
    AGREEMENT,
    ASSESSOR,
    JUDGED_PRECISION,
    OTHER_ASSESSOR,
    WINDOWS,
    K,
    SeededStore,
    finish_unscored_run,
    shared_seeded_store,
)
from traffic_windows import day_window_summary

from evalkit.cli import invoke
from evalkit.cli.judge import ASSESSOR_BIAS_NOTE
from evalkit.clock import utc_now
from evalkit.dashboard import loaders
from evalkit.dashboard.loaders.shared import AREA_HINTS
from evalkit.store import RunSpec, Store
from evalkit.store.dashboard.traffic import traffic_judged_frame
from evalkit.store.judging import JudgedFigure, save_run_figures
from evalkit.store.runs import create_run
from evalkit.store.traffic import save_traffic_replay

AGREEMENT_SUMMARY = "kappa 0.71 [0.60, 0.80] on 40 pairs of mini"
TITLE = "Judged precision@10 over time (assessor labels)"


@pytest.fixture
def seeded(tmp_path_factory: pytest.TempPathFactory) -> SeededStore:
    return shared_seeded_store(tmp_path_factory)


@pytest.fixture
def copy_of(tmp_path: Path) -> Callable[[SeededStore], Path]:
    """A copy of the seeded store that a test may change."""

    def copy(seeded: SeededStore) -> Path:
        target = tmp_path / "copy" / "evalkit.duckdb"
        target.parent.mkdir()
        shutil.copyfile(seeded.path, target)
        return target

    return copy


@pytest.fixture
def use_store(monkeypatch: pytest.MonkeyPatch) -> Callable[[Path], None]:
    """Point the CLI and the dashboard at a store (EVALKIT_STORE_PATH)."""
    monkeypatch.delenv("EVALKIT_CONFIG", raising=False)

    def point(path: Path) -> None:
        monkeypatch.setenv("EVALKIT_STORE_PATH", str(path))

    return point


def _figure(run_id: str, labeller: str, value: float, **fields: Any) -> JudgedFigure:
    return JudgedFigure(
        run_id=run_id,
        source=fields.get("source", "assessor"),
        labeller=labeller,
        measure=fields.get("measure", "precision@10"),
        value=value,
        low=value - 0.1,
        high=value + 0.1,
        n_queries=20,
        judged_share=1.0,
        status="complete",
        agreement_id=fields.get("agreement_id"),
        computed_at=utc_now(),
        details={},
    )


def _replay_again(path: Path, window: str) -> str:
    """A newer replay of ``window`` (one query), its run id."""
    with Store.open(path) as store:
        run_id = create_run(
            store,
            RunSpec(
                kind="traffic",
                retriever_kind="chroma-embedded",
                k=K,
                measures=(),
                evalkit_version="test",
                collection="mini",
            ),
        )
        per_query = pd.DataFrame(
            {
                "query_id": ["t1-00"],
                "tenant": ["acme"],
                "stratum": ["acme"],
                "failed": [False],
                "n_results": [K],
                "top1_score": [0.8],
                "n_logged": [2],
                "overlap_at_k": [1.0],
                "rbo": [1.0],
            }
        )
        summary = day_window_summary(run_id, window, computed_at=utc_now(), volume=20)
        save_traffic_replay(store, summary=summary, per_query=per_query)
        finish_unscored_run(store, run_id, 1)
    return run_id


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    capsys.readouterr()
    code = invoke(["traffic", "windows", *args])
    return code, capsys.readouterr().out


# The store's query and the loader


def test_each_assessor_s_precision_per_window_and_source_and_nothing_else(
    seeded: SeededStore,
) -> None:
    with Store.open(seeded.path, read_only=True) as store:
        frame = traffic_judged_frame(store, window_labels=list(WINDOWS))
        second = traffic_judged_frame(store, window_labels=[WINDOWS[1]])
        ndcg = traffic_judged_frame(
            store, window_labels=list(WINDOWS), measure_prefix="ndcg_judged@"
        )
        none = traffic_judged_frame(store, window_labels=[])
    got = {
        (row.labeller, row.source, row.window_label): (
            row.value,
            row.low,
            row.high,
            row.judged_share,
        )
        for row in frame.itertuples()
    }
    assert got.keys() == JUDGED_PRECISION.keys()  # no estimate, no nDCG
    for key, expected in JUDGED_PRECISION.items():
        assert got[key] == pytest.approx(expected)
    assert list(frame["window_label"]) == sorted(frame["window_label"])
    assert set(frame["measure"]) == {"precision@10"}
    assert set(frame["retriever"]) == {"chroma-embedded:mini"}
    mine = frame[frame["labeller"] == ASSESSOR]
    assert set(mine["agreement_id"]) == {AGREEMENT}
    assert frame[frame["labeller"] == OTHER_ASSESSOR]["agreement_id"].isna().all()
    assert set(second["window_label"]) == {WINDOWS[1]}
    assert len(second) == 3
    assert set(ndcg["measure"]) == {"ndcg_judged@10"}
    assert len(ndcg) == len(JUDGED_PRECISION)
    assert none.empty


def test_a_window_shows_each_assessor_s_newest_judged_replay(
    seeded: SeededStore, copy_of: Callable[[SeededStore], Path]
) -> None:
    path = copy_of(seeded)
    newer = _replay_again(path, WINDOWS[1])
    with Store.open(path) as store:
        save_run_figures(store, [_figure(newer, ASSESSOR, 0.3, agreement_id=AGREEMENT)])
        frame = traffic_judged_frame(store, window_labels=[WINDOWS[1]])
    by = frame.set_index(["labeller", "source"])
    assert by.loc[(ASSESSOR, "assessor"), "value"] == pytest.approx(0.3)
    assert by.loc[(ASSESSOR, "assessor"), "run_id"] == newer
    # The newer replay was not judged by the other assessor, nor on the logged top-k.
    assert by.loc[(OTHER_ASSESSOR, "assessor"), "value"] == pytest.approx(0.4)
    assert by.loc[(ASSESSOR, "assessor_logged"), "value"] == pytest.approx(0.5)


def test_the_traffic_loader_carries_the_judged_figures_and_their_agreement(
    seeded: SeededStore,
) -> None:
    with Store.open(seeded.path, read_only=True) as store:
        data = loaders.traffic.traffic(store)
        one = loaders.traffic.traffic(store, windows=1)
    assert data.judged is not None
    assert len(data.judged) == len(JUDGED_PRECISION)
    assert data.agreements == {AGREEMENT: AGREEMENT_SUMMARY}
    assert one.judged is not None
    assert set(one.judged["window_label"]) == {WINDOWS[1]}  # only the windows shown


def test_a_store_without_the_judging_tables_has_no_judged_frame(
    seeded: SeededStore, copy_of: Callable[[SeededStore], Path]
) -> None:
    path = copy_of(seeded)
    with Store.open(path) as store, store.transaction() as con:
        con.execute("DROP TABLE judged_run_figures; DROP TABLE judge_agreements")
    with Store.open(path, read_only=True) as store:
        data = loaders.traffic.traffic(store)
    assert data.judged is None
    assert data.agreements == {}
    assert list(data.windows["window_label"]) == list(WINDOWS)


# evalkit traffic windows


def test_traffic_windows_lists_each_assessor_s_judged_precision(
    seeded: SeededStore, use_store: Callable[[Path], None], capsys: pytest.CaptureFixture[str]
) -> None:
    use_store(seeded.path)
    code, out = _cli(capsys)
    assert code == 0
    lines = out.splitlines()
    header = next(line for line in lines if "window" in line and "churn" in line)
    assert "precision@10 [95% CI]" in header
    assert "judged" in header
    assert "assessor" in header
    first = next(line for line in lines if WINDOWS[0] in line)
    assert "0.600 [0.500, 0.700]" in first
    assert "100.0%" in first
    assert ASSESSOR in first
    # Window two: one line per assessor in the same row, never one merged figure.
    second = lines.index(next(line for line in lines if WINDOWS[1] in line))
    assert "0.450 [0.350, 0.550]" in lines[second]
    assert "95.0%" in lines[second]
    assert ASSESSOR in lines[second]
    assert "0.400 [0.300, 0.500]" in lines[second + 1]
    assert "50.0%" in lines[second + 1]
    assert OTHER_ASSESSOR in lines[second + 1]
    assert "0.550 [0.450, 0.650]" not in out  # the logged top-k: in the JSON only
    assert f"assessor {ASSESSOR}: {AGREEMENT_SUMMARY} ({AGREEMENT})" in out
    assert f"assessor {OTHER_ASSESSOR}: agreement not measured" in out
    # A high kappa on a balanced sample does not bound an absolute figure's bias.
    assert " ".join(ASSESSOR_BIAS_NOTE.split()) in " ".join(out.split())


def test_traffic_windows_json_lists_every_judged_figure_with_its_agreement(
    seeded: SeededStore, use_store: Callable[[Path], None], capsys: pytest.CaptureFixture[str]
) -> None:
    use_store(seeded.path)
    code, out = _cli(capsys, "--format", "json")
    assert code == 0
    windows = {entry["window"]: entry for entry in json.loads(out)}
    assert list(windows) == [WINDOWS[1], WINDOWS[0]]  # newest first, as before
    judged = windows[WINDOWS[1]]["judged"]
    assert {(f["labeller"], f["source"], f["measure"]) for f in judged} == {
        (labeller, source, measure)
        for labeller, source, window in JUDGED_PRECISION
        if window == WINDOWS[1]
        for measure in ("ndcg_judged@10", "precision@10")
    }
    assert all(f["source"] != "estimate" for f in judged)
    precision = {(f["labeller"], f["source"]): f for f in judged if f["measure"] == "precision@10"}
    mine = precision[(ASSESSOR, "assessor")]
    assert (mine["value"], mine["low"], mine["high"], mine["judged_share"]) == pytest.approx(
        JUDGED_PRECISION[(ASSESSOR, "assessor", WINDOWS[1])]
    )
    assert (mine["status"], mine["agreement_id"]) == ("partial", AGREEMENT)
    assert mine["agreement"] == AGREEMENT_SUMMARY
    assert mine["run_id"] == seeded.traffic_runs[1]
    assert datetime.fromisoformat(mine["computed_at"])
    other = precision[(OTHER_ASSESSOR, "assessor")]
    assert (other["agreement_id"], other["agreement"]) == (None, "agreement not measured")
    assert len(windows[WINDOWS[0]]["judged"]) == 4
    assert windows[WINDOWS[0]]["summary"]["run_id"] == seeded.traffic_runs[0]


def test_traffic_windows_without_judged_figures_prints_what_it_printed_before(
    seeded: SeededStore,
    copy_of: Callable[[SeededStore], Path],
    use_store: Callable[[Path], None],
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = copy_of(seeded)
    with Store.open(path) as store, store.transaction() as con:
        con.execute("DELETE FROM judged_run_figures")
    use_store(path)
    code, out = _cli(capsys)
    assert code == 0
    header = next(line for line in out.splitlines() if "window" in line and "churn" in line)
    assert header.rstrip().endswith("churn ┃")
    assert "assessor" not in out
    code, out = _cli(capsys, "--format", "json")
    assert code == 0
    assert [entry["judged"] for entry in json.loads(out)] == [[], []]


# The Traffic page


def _judged_chart(app: Any) -> dict[str, Any]:
    for element in app.get("plotly_chart"):
        chart = json.loads(element.proto.spec)
        if chart["layout"]["title"]["text"] == TITLE:
            return dict(chart)
    raise AssertionError(f"no chart titled {TITLE!r}")


def test_the_traffic_page_draws_judged_precision_per_assessor_with_bands(
    seeded: SeededStore, use_store: Callable[[Path], None]
) -> None:
    use_store(seeded.path)
    app = open_page("traffic")
    assert not [m.value for m in app.markdown if "per-window charts" in m.value]
    chart = _judged_chart(app)
    lines = {t["name"]: t for t in chart["data"] if t.get("mode") == "lines+markers"}
    assert set(lines) == {
        f"{ASSESSOR} (replayed)",
        f"{ASSESSOR} (logged by production)",
        f"{OTHER_ASSESSOR} (replayed)",
    }
    assert lines[f"{ASSESSOR} (replayed)"]["y"] == pytest.approx([0.6, 0.45])
    assert lines[f"{ASSESSOR} (logged by production)"]["y"] == pytest.approx([0.55, 0.5])
    assert lines[f"{ASSESSOR} (logged by production)"]["line"]["dash"] == "dash"
    assert lines[f"{OTHER_ASSESSOR} (replayed)"]["y"] == pytest.approx([0.4])
    assert lines[f"{ASSESSOR} (replayed)"]["customdata"][0][0] == seeded.traffic_runs[0]
    bands = {t["name"]: t for t in chart["data"] if t.get("fill") == "toself"}
    assert bands[f"{ASSESSOR} replayed 95% CI"]["y"] == pytest.approx([0.7, 0.55, 0.35, 0.5])
    assert len(bands) == 2
    # One window: its interval is an error bar, not a band.
    lone = lines[f"{OTHER_ASSESSOR} (replayed)"]["error_y"]
    assert (lone["array"], lone["arrayminus"]) == (pytest.approx([0.1]), pytest.approx([0.1]))
    assert "error_y" not in lines[f"{ASSESSOR} (replayed)"]
    captions = [c.value for c in app.caption]
    assert (
        f"Assessor `{ASSESSOR}`: {AGREEMENT_SUMMARY} ({AGREEMENT}). Judged share in window "
        f"{WINDOWS[1]}: 95.0% replayed (partial), 90.0% logged by production (partial)."
    ) in captions
    assert any(
        c.startswith(f"Assessor `{OTHER_ASSESSOR}`: agreement not measured")
        and c.endswith("50.0% replayed (partial).")
        for c in captions
    )


def test_the_traffic_page_says_when_no_window_was_judged(
    seeded: SeededStore,
    copy_of: Callable[[SeededStore], Path],
    use_store: Callable[[Path], None],
) -> None:
    path = copy_of(seeded)
    with Store.open(path) as store, store.transaction() as con:
        con.execute("DELETE FROM judged_run_figures")
    use_store(path)
    app = open_page("traffic")
    assert any(c.value.startswith("No traffic window shown here was judged") for c in app.caption)
    titles = [json.loads(e.proto.spec)["layout"]["title"]["text"] for e in app.get("plotly_chart")]
    assert TITLE not in titles
    assert len(titles) == 5


def test_the_traffic_page_of_a_store_without_the_judging_tables_says_what_makes_them(
    seeded: SeededStore,
    copy_of: Callable[[SeededStore], Path],
    use_store: Callable[[Path], None],
) -> None:
    path = copy_of(seeded)
    with Store.open(path) as store, store.transaction() as con:
        con.execute("DROP TABLE judged_run_figures; DROP TABLE judge_agreements")
    use_store(path)
    app = open_page("traffic")
    assert AREA_HINTS["judging"] in [c.value for c in app.caption]
