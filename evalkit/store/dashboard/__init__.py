"""Read-only queries behind the dashboard: every aggregation it shows, done in DuckDB.

One module per dashboard page, and ``shared`` for what several pages read. Each function
takes an open ``Store`` and returns a DataFrame or a small value; nothing here writes. Values
the user picks are always ``?`` parameters, never formatted into the SQL. A *series* is one
goldset evaluated by one retriever's subject (``kind:collection``, ...), the key ``evalkit
drift precision`` uses. Tables of later areas may be missing from a store: callers ask
``shared.existing_tables`` first.
"""
