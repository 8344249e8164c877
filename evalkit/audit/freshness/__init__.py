"""Freshness: how long a change at the source takes to become retrievable.

``sources`` reads the changes, ``passages`` picks a changed document's probe query, ``lag``
tells which changes an index reflects and since when, and ``probe`` queries any retriever
until the document comes back; ``evalkit.pipeline.check_freshness`` puts them together
(docs/freshness.md).
"""
