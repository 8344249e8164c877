"""Released migrations are frozen: their SQL never changes, and every path to today's schema
ends at the same schema.

A store file that ran migration N keeps what N's SQL made; editing N's text later would give
new stores another schema than upgraded ones, silently. So each released migration's SQL is
pinned here by its SHA-256. A schema change is a new migration at the end of ``MIGRATIONS``,
whose hash is added below when it is released.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import duckdb
import pytest
from test_store import finish_two_query_run, result, small_goldset, spec

from evalkit.cli import invoke
from evalkit.errors import StoreError
from evalkit.store import MIGRATIONS, Store
from evalkit.store import store as store_module
from evalkit.store.alerts import list_alerts
from evalkit.store.goldsets import save_goldset
from evalkit.store.migrations import Migration
from evalkit.store.runs import add_query_results, create_run

RELEASED: dict[int, tuple[str, str]] = {
    1: (
        "goldsets_runs_metrics",
        "e7f7683b1137f00d93bef3b9ab029cf521b99014bad4157adc4eea186ea48639",
    ),
    2: ("drift_checks", "33d42196a106b8cb9d4b19877d36910e592ed223c1760e202b6efdc706fa294f"),
    3: ("traffic", "eb28e22ce5d205536b53437dc06795fe4e9d2c3c339f20ec053a4714887b4d56"),
    4: ("answer_scores", "7ce6cd5e7427d7d6f8d9a9c6590b2f039e6aa1a518918bf006f0773485e1d269"),
    5: ("audit", "acc20b5be034268b7965f14fd4b1b6a9539134c3163e8850105d1f104732e871"),
    6: (
        "alerts_outbox_job_runs",
        "436af35ac9e848641f97c0868ddad9d2be063348a6df6dbb9a6568195572793b",
    ),
    7: ("run_query_duplicates", "0c2dac1df0be2cc6f58c46ab8e4b023bcf38d3242190997db5c845b6a9b5c34a"),
    8: ("answer_items", "cd3c445ec3047f54004503f4aceb41c71d84206471fa0f6fb3c95b038c838756"),
    9: ("context_embeddings", "7c92fe3f44b6bfc480d34e89fdef8a82c1e12beebb668090d11ae29e5e83db75"),
    10: ("traffic_spans", "7b12fe51e30af0b24bbfdca1914c8d08ca09986bd1e27d7f4a85456a03d95257"),
    11: ("run_shards", "5ba5cd4c23e71ebfd2efb42cdfccce5579e1dfa1ee64745cd6cefb238f24d419"),
    12: ("run_imports", "7aebe9455cdf6d0b4f6f90d9b2dc84bcf9295202daa1c2c5108a7c8e55011f88"),
    13: ("judging", "114f27b4b8447f515e2b2b2a19d844745677e5476ad1d3b69e487d3f603ee6ec"),
    14: ("goldset_spans", "60b3239287044bcfb38f8d7437b1ef637d248b969d30d7c186373b9b136bc449"),
    15: ("review_queue", "57a25cb261518f109cf5a9afe19b01773a88ee5734b1d4628c1d468eb21eb07d"),
    16: ("run_tags", "29c4c8193073c9a7428a8f62bd55de6212f65243bbb59cbaf40a26eb46877159"),
    17: ("run_index_size", "8b6198edd3ac4328b9e852225abf1ed9fb00dce1d5af5a854467b48292707178"),
    18: ("freshness", "934525a94d24dd7e1e6bd871c3eb6d386094d3c6aefad1f91f7ca774c6b6d60a"),
    19: (
        "repair_edited_migrations",
        "6d96c44680195e292ada0719dec772fe6dd5ba218d3f1b51a8c99039317b5f8c",
    ),
    20: ("review_sources", "e3833847b238a97425d2824fcbb7e2a22bca130c8f4f4b3041cfc0f026616aee"),
    21: ("judge_calls", "37c339dd16ffd18b8ff76a6131dfaba6706394c68b1d38221b96ce7929f86681"),
    22: (
        "goldset_current_since",
        "7cac47dbeb761bfec90c207225e744811215f0421f0d6c778b317abead142ca3",
    ),
    23: (
        "review_sources_backfill",
        "6413227a9220b6ab477fae2cd6a3f67ba721ffaac378ba5d43d3bd9aa004cecb",
    ),
    24: ("model_canaries", "aadf258e9e7ea57f5cb09d11a93e1d506c44aead814d9098a23b1f7ca75e6b8d"),
    25: (
        "review_source_emails",
        "26bf98f7308c16b84b9d58ea68d0100f74022f296f52f1798e034b2e9ca2b331",
    ),
    26: ("judged_pool_flags", "f5896ac1f98d0a049e1064f66c878149fa58872a73a074a06214f1f199ba337b"),
    27: ("window_ndcg_judged", "b848081902af6d0650cf33b60cb7695353ee51cdca36036fb7fb446aab2cfe8d"),
    28: ("slices", "5ddf456d650a79e002af5796f68d9d493f162dedcdbb8cb99ba4203402922d5e"),
}

SCHEMA_QUERIES = {
    "columns": (
        "SELECT table_name, column_index, column_name, data_type, is_nullable, column_default"
        " FROM duckdb_columns() WHERE schema_name = 'main' AND table_name <> 'schema_migrations'"
        " ORDER BY table_name, column_index"
    ),
    "constraints": (
        "SELECT table_name, constraint_type, constraint_text FROM duckdb_constraints()"
        " WHERE schema_name = 'main' AND table_name <> 'schema_migrations'"
        " ORDER BY ALL"
    ),
    "indexes": (
        "SELECT table_name, index_name, sql FROM duckdb_indexes()"
        " WHERE schema_name = 'main' ORDER BY ALL"
    ),
    "sequences": (
        "SELECT sequence_name, start_value, increment_by FROM duckdb_sequences()"
        " WHERE schema_name = 'main' ORDER BY ALL"
    ),
    "views": (
        "SELECT view_name, sql FROM duckdb_views()"
        " WHERE schema_name = 'main' AND NOT internal ORDER BY ALL"
    ),
}


def digest(sql: str) -> str:
    return hashlib.sha256(sql.encode("utf-8")).hexdigest()


def schema_of(store: Store) -> dict[str, list[tuple[object, ...]]]:
    return {part: store.fetch(query) for part, query in SCHEMA_QUERIES.items()}


def test_migrations_are_numbered_one_to_n_without_gaps() -> None:
    assert [m.number for m in MIGRATIONS] == list(range(1, len(MIGRATIONS) + 1))


@pytest.mark.parametrize("migration", MIGRATIONS, ids=lambda m: f"{m.number}-{m.name}")
def test_a_released_migration_keeps_its_name_and_sql(migration: Migration) -> None:
    assert migration.number in RELEASED, (
        f"migration {migration.number} ({migration.name}) has no pinned hash: when it is "
        f"released, add {migration.number}: ({migration.name!r}, {digest(migration.sql)!r}) "
        "to RELEASED in tests/test_migrations_frozen.py"
    )
    name, expected = RELEASED[migration.number]
    assert migration.name == name
    assert digest(migration.sql) == expected, (
        f"the SQL of released migration {migration.number} ({migration.name}) changed: stores "
        "that already ran it keep the old schema. Put the change in a new migration instead."
    )


def test_every_released_migration_is_still_there() -> None:
    assert set(RELEASED) <= {m.number for m in MIGRATIONS}


@pytest.mark.parametrize("applied", range(1, len(MIGRATIONS)))
def test_an_upgraded_store_has_the_schema_of_a_fresh_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, applied: int
) -> None:
    with Store.open(tmp_path / "fresh.duckdb") as fresh:
        expected = schema_of(fresh)

    old = tmp_path / "old.duckdb"
    with monkeypatch.context() as older_release:
        older_release.setattr(store_module, "MIGRATIONS", MIGRATIONS[:applied])
        with Store.open(old) as store:
            assert store.schema_version() == applied
    with Store.open(old) as upgraded:
        assert upgraded.schema_version() == MIGRATIONS[-1].number
        assert schema_of(upgraded) == expected


def edited(number: int, *removed: str) -> Migration:
    """Migration ``number`` as it was before it was frozen, without the lines ``removed``."""
    migration = MIGRATIONS[number - 1]
    lines = [line for line in migration.sql.splitlines() if not any(r in line for r in removed)]
    return Migration(migration.number, migration.name, "\n".join(lines))


def test_a_store_of_the_edited_migrations_gets_the_columns_they_hold_today(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stores written while migrations 6 and 8 lacked alerts.sequence and answer_items.run_id
    were at schema 18 without them: every alert command failed with a Binder Error, and
    retention could not reach the answer texts of a run."""
    path = tmp_path / "window.duckdb"
    window = list(MIGRATIONS[:18])
    window[5] = edited(6, "alert_sequence", "sequence BIGINT", "Raising order")
    window[7] = edited(8, "    run_id VARCHAR,")
    with monkeypatch.context() as then:
        then.setattr(store_module, "MIGRATIONS", tuple(window))
        with Store.open(path) as store, store.transaction() as con:
            for alert_id, fired in (("a1", "2026-01-01"), ("a2", "2026-01-02")):
                con.execute(
                    "INSERT INTO alerts VALUES (?, 'r', 'k', 'd', 's', 'firing', 'warning',"
                    " 't', 'sum', '{}', '[]', ?, ?, 0)",
                    [alert_id, fired, fired],
                )
            con.execute(
                "INSERT INTO answer_scorings VALUES"
                " ('sc1', 'run1', NULL, '2026-01-01', '2026-01-01', 1, 0, 0, NULL)"
            )
            con.execute("INSERT INTO answer_items VALUES ('sc1', 'i1', 'q', 'a', [], [], NULL)")
    with Store.open(path) as upgraded:
        assert [a.alert_id for a in list_alerts(upgraded)] == ["a2", "a1"]
        assert upgraded.fetch(
            "SELECT is_nullable FROM duckdb_columns()"
            " WHERE table_name = 'alerts' AND column_name = 'sequence'"
        ) == [(False,)]
        assert upgraded.fetch("SELECT scoring_id, run_id FROM answer_items") == [("sc1", "run1")]
        save_alert_row(upgraded)
        assert upgraded.fetch("SELECT alert_id, sequence FROM alerts ORDER BY sequence") == [
            ("a1", 1),
            ("a2", 2),
            ("a3", 3),
        ]


def save_alert_row(store: Store) -> None:
    with store.transaction() as con:
        con.execute(
            "INSERT INTO alerts (alert_id, rule, kind, dedup_key, subject, status, severity,"
            " title, summary, evidence, links, fired_at, created_at, n_sinks) VALUES"
            " ('a3', 'r', 'k', 'd', 's', 'firing', 'warning', 't', 'sum', '{}', '[]',"
            " '2026-01-03', '2026-01-03', 0)"
        )


def test_a_store_a_newer_evalkit_migrated_is_refused_for_reading_and_writing(
    tmp_path: Path,
) -> None:
    """A store with a migration this evalkit does not know was opened without a word, and
    written into a schema it did not know."""
    path = tmp_path / "newer.duckdb"
    latest = MIGRATIONS[-1].number
    with Store.open(path) as store, store.transaction() as con:
        con.execute(
            "INSERT INTO schema_migrations VALUES (?, 'from_the_future', now())", [latest + 1]
        )
    for read_only in (False, True):
        with pytest.raises(StoreError, match=rf"schema version {latest + 1}, newer than this "):
            Store.open(path, read_only=read_only)


def test_reviews_imported_before_migration_20_get_their_label_studio_user_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reviews a release at schema 19 imported from Label Studio kept no user id, so a later
    import naming that user otherwise (--annotator 4=ben) counted them as a second reviewer."""
    path = tmp_path / "old.duckdb"
    with monkeypatch.context() as older_release:
        older_release.setattr(store_module, "MIGRATIONS", MIGRATIONS[:19])
        with Store.open(path) as old, old.transaction() as con:
            for review_id, reviewer in (
                ("rev-1", "label-studio-user-4"),
                ("rev-2", "label-studio-user-12"),
                ("rev-3", "ana@example.com"),
                ("rev-4", "label-studio-user-4b"),
            ):
                con.execute(
                    "INSERT INTO reviews VALUES (?, 'item', ?, '2026-11-26 10:00', 'accept',"
                    " '{}', NULL, '')",
                    [review_id, reviewer],
                )
    with Store.open(path) as upgraded:
        assert upgraded.fetch(
            "SELECT review_id, source_tool, source_annotation_id, source_user_id FROM reviews"
            " ORDER BY review_id"
        ) == [
            ("rev-1", "label-studio", None, "4"),
            ("rev-2", "label-studio", None, "12"),
            ("rev-3", None, None, None),
            ("rev-4", None, None, None),
        ]


def test_reviews_imported_by_email_before_migration_25_keep_their_email(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Label Studio's JSON-MIN export names an annotator by email, its JSON export by user id:
    the store kept only the id, so the same person imported from each was two reviewers."""
    path = tmp_path / "old.duckdb"
    with monkeypatch.context() as older_release:
        older_release.setattr(store_module, "MIGRATIONS", MIGRATIONS[:24])
        with Store.open(path) as old, old.transaction() as con:
            for review_id, reviewer, tool, user in (
                ("rev-1", "ana@example.com", "label-studio", None),  # JSON-MIN
                ("rev-2", "Bo@Example.com", "label-studio", "9"),  # a user object's email
                ("rev-3", "label-studio-user-4", "label-studio", "4"),
                ("rev-4", "ann@example.com", None, None),  # `evalkit review grade`
                ("rev-5", "ben", "label-studio", "5"),  # --annotator 5=ben
            ):
                con.execute(
                    "INSERT INTO reviews VALUES (?, 'item', ?, '2026-11-26 10:00', 'accept',"
                    " '{}', NULL, '', ?, NULL, ?)",
                    [review_id, reviewer, tool, user],
                )
    with Store.open(path) as upgraded:
        assert upgraded.fetch(
            "SELECT review_id, source_user_id, source_user_email FROM reviews ORDER BY review_id"
        ) == [
            ("rev-1", None, "ana@example.com"),
            ("rev-2", "9", "Bo@Example.com"),
            ("rev-3", "4", None),
            ("rev-4", None, None),
            ("rev-5", "5", None),
        ]


def test_window_ndcg_stored_before_migration_27_is_ndcg_judged_and_goldset_ndcg_keeps_its_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A traffic window's nDCG (ideal from its judged top k) was stored as ndcg@k, the name
    of a goldset run's trec_eval nDCG (ideal from all judgments): one name, two series."""
    path = tmp_path / "old.duckdb"
    with monkeypatch.context() as older_release:
        older_release.setattr(store_module, "MIGRATIONS", MIGRATIONS[:26])
        with Store.open(path) as old, old.transaction() as con:
            con.execute(
                "INSERT INTO traffic_window_summaries (run_id, sample_id, window_label,"
                " window_start, window_end, computed_at, k, compare_k, rbo_p, volume,"
                " n_distinct, n_replayed, n_failed, low_confidence_threshold, n_compared,"
                " n_embeddings) VALUES ('window-run', 's', '2026-11-21', '2026-11-21',"
                " '2026-11-22', '2026-11-22', 10, 10, 0.9, 40, 40, 40, 0, 0.3, 0, 0)"
            )
            for run_id, source, measure in (
                ("window-run", "assessor", "ndcg@10"),
                ("window-run", "assessor_logged", "ndcg@10"),
                ("window-run", "assessor", "precision@10"),
                ("window-run", "estimate", "precision@10"),
                ("goldset-run", "holes_filled", "ndcg@10"),
                ("goldset-run", "holes_filled", "recall@10"),
            ):
                con.execute(
                    "INSERT INTO judged_run_figures VALUES (?, ?, 'judge@v1', ?, 0.5, 0.4, 0.6,"
                    " 40, 1.0, 'complete', NULL, '2026-11-22', '{}')",
                    [run_id, source, measure],
                )
    with Store.open(path) as upgraded:
        assert upgraded.fetch(
            "SELECT run_id, source, measure, value FROM judged_run_figures ORDER BY ALL"
        ) == [
            ("goldset-run", "holes_filled", "ndcg@10", 0.5),
            ("goldset-run", "holes_filled", "recall@10", 0.5),
            ("window-run", "assessor", "ndcg_judged@10", 0.5),
            ("window-run", "assessor", "precision@10", 0.5),
            ("window-run", "assessor_logged", "ndcg_judged@10", 0.5),
            ("window-run", "estimate", "precision@10", 0.5),
        ]


def _store_with_two_runs(path: Path) -> tuple[str, str]:
    """A current store holding a goldset and two finished runs of it; their ids."""
    goldset = small_goldset()
    run_ids = []
    with Store.open(path) as store:
        save_goldset(store, goldset)
        for ranked in ((("d1", "d2"), ("d3",)), (("d2", "d1"), ("d4", "d3"))):
            run_id = create_run(store, spec(goldset_version=goldset.version))
            add_query_results(store, run_id, [result("q1", *ranked[0]), result("q2", *ranked[1])])
            finish_two_query_run(store, run_id)
            run_ids.append(run_id)
    return run_ids[0], run_ids[1]


def _copy_what_an_older_schema_holds(source: Path, older: Path) -> None:
    """Copy every row of ``source`` into the older-schema store ``older``: the columns it
    has, as an evalkit of that schema wrote them; the later columns are left to migrate."""
    with duckdb.connect(str(older)) as con:
        con.execute(f"ATTACH '{source}' AS source (READ_ONLY)")
        tables = [
            row[0]
            for row in con.execute(
                "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database()"
                " AND table_name <> 'schema_migrations'"
            ).fetchall()
        ]
        for table in tables:
            older_columns = {
                row[0]
                for row in con.execute(
                    "SELECT column_name FROM duckdb_columns()"
                    " WHERE database_name = current_database() AND table_name = ?",
                    [table],
                ).fetchall()
            }
            source_columns = [
                row[0]
                for row in con.execute(
                    "SELECT column_name FROM duckdb_columns()"
                    " WHERE database_name = 'source' AND table_name = ? ORDER BY column_index",
                    [table],
                ).fetchall()
            ]
            columns = ", ".join(c for c in source_columns if c in older_columns)
            con.execute(f"INSERT INTO {table} ({columns}) SELECT {columns} FROM source.{table}")


@pytest.mark.slow
@pytest.mark.parametrize("applied", [6, 11, 18])
def test_runs_an_older_evalkit_stored_read_back_as_a_current_one_stores_them(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    applied: int,
) -> None:
    """The schema test above checks the tables an upgrade makes, not the rows an older
    evalkit left in them: columns added later are NULL (or their default) in those rows,
    and `runs show`, `compare` and `runs export` must read them as a current evalkit's."""
    (tmp_path / "fresh").mkdir()
    (tmp_path / "older").mkdir()
    fresh = tmp_path / "fresh" / "evalkit.duckdb"
    older = tmp_path / "older" / "evalkit.duckdb"
    baseline, candidate = _store_with_two_runs(fresh)
    with monkeypatch.context() as older_release:
        older_release.setattr(store_module, "MIGRATIONS", MIGRATIONS[:applied])
        Store.open(older).close()
    _copy_what_an_older_schema_holds(fresh, older)
    monkeypatch.delenv("EVALKIT_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    readings = []
    for path in (fresh, older):
        monkeypatch.setenv("EVALKIT_STORE_PATH", str(path))
        assert invoke(["store", "migrate"]) == 0
        capsys.readouterr()
        outputs = []
        for command in (
            ["runs", "show", baseline, "--format", "json"],
            ["runs", "list", "--format", "json"],
            ["goldset", "list", "--format", "json"],
            ["compare", baseline, candidate, "--format", "json"],
            ["runs", "export", candidate, "--format", "jsonl"],
        ):
            assert invoke(command) == 0, capsys.readouterr().err
            outputs.append(capsys.readouterr().out)
        readings.append(outputs)
    assert readings[1] == readings[0]
