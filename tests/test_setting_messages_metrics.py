"""Refusals raised by fusion and explain name settings; the CLI shows its flags."""

from __future__ import annotations

import pytest
from test_dashboard_seed import goldset, perfect, query_ids, store_run

from evalkit.causes import explain_runs
from evalkit.cli._output import with_flags
from evalkit.errors import ConfigError, InputError
from evalkit.metrics.fusion import Fusion
from evalkit.store import Store
from evalkit.store.goldsets import save_goldset


@pytest.mark.parametrize(
    ("arguments", "setting", "flag"),
    [
        (
            {"method": "rrf", "params": {"weights": 1.0}},
            "(weights are given apart: `weights` per run)",
            "(weights are given apart: --weight per run)",
        ),
        (
            {"method": "combgmnz"},
            "give it (`params` gamma=VALUE) or fit it on the goldset (`optimize`)",
            "give it (--param gamma=VALUE) or fit it on the goldset (--optimize)",
        ),
        (
            {"method": "wsum"},
            "(`weights`, in the order the runs are named), or fit them on the goldset (`optimize`)",
            "(--weight, in the order the runs are named), or fit them on the goldset (--optimize)",
        ),
        (
            {"method": "wsum", "weights": (1.0,), "n_runs": 2},
            "give one `weights` entry per run, in the order the runs are named",
            "give one --weight per run, in the order the runs are named",
        ),
    ],
)
def test_fusion_refusals_name_the_settings(
    arguments: dict[str, object], setting: str, flag: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        Fusion.of(**arguments)  # type: ignore[arg-type]
    assert setting in str(raised.value)
    assert flag in with_flags(str(raised.value))


def test_explain_refusals_name_the_settings(store: Store) -> None:
    gold = goldset(3)
    save_goldset(store, gold)
    rankings = {q: perfect(q) for q in query_ids(3)}

    def stored(measure: str) -> str:
        return store_run(
            store,
            gold,
            rankings,
            retriever_kind="chroma-embedded",
            config={"kind": "chroma-embedded", "path": "/x/chroma", "collection": "mini"},
            collection="mini",
            model_fingerprint="fp-1",
            index_fingerprint="idx-1",
            measures=(measure,),
        )

    run = stored("ndcg@10")
    with pytest.raises(ConfigError) as no_baseline:
        explain_runs(store, run)
    assert str(no_baseline.value).endswith("name the baseline (`baseline`)")
    assert with_flags(str(no_baseline.value)).endswith("name the baseline (--baseline RUN)")

    other = stored("recall@10")
    with pytest.raises(InputError) as no_measure:
        explain_runs(store, other, baseline=run)
    assert str(no_measure.value).endswith("share no stored measure: name one (`measures`)")
    assert with_flags(str(no_measure.value)).endswith("share no stored measure: name one with -m")
