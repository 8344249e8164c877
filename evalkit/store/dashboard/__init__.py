"""Read-only queries behind the dashboard: every aggregation it shows, done in DuckDB.

One module per dashboard page, as ``evalkit.dashboard.loaders`` and ``evalkit.dashboard.views``
are split (``overview``, ``quality``, ``query``, ``goldsets``, ``drift``, ``traffic``,
``answers``, ``index_health``, ``alerts``), and ``shared`` for what several pages read (the
tables a store holds, run pickers, plain frames). Each function takes an open ``Store`` (the
dashboard opens it read-only) and returns a DataFrame, or a small value. Nothing here writes.
Values the user picks (a goldset, a run, a search text) are always passed as ``?``
parameters, never formatted into the SQL.

A *series* is one goldset evaluated by one retriever: runs are grouped by goldset name and
by the retriever's subject, ``kind:collection`` (or ``kind:url`` / ``kind:path``, or the
bare kind), the same key ``evalkit drift precision`` uses. Tables of later areas (traffic,
answers, audit, alerts, drift) may be missing from a store; ``shared.existing_tables`` says
which are there, and callers ask before querying them.
"""
