"""Freshness: how long a change at the source takes to become retrievable.

``sources`` reads the changes a source has made since the last check (change tables read
incrementally from a stored position, or a corpus's documents by their ``updated_at``);
``passages`` picks the probe query of a changed document; ``lag`` tells from the versions an
index holds (``evalkit.retrievers.versions``) which changes it reflects and since when, and
summarises the lags; ``probe`` queries any retriever with each change's passage until the
document comes back. ``evalkit.pipeline.check_freshness`` puts them together and stores the
check (docs/freshness.md).
"""
