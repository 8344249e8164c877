"""Incident drills: failures injected into a scratch copy of the user's index, with the
user's own jobs and rules run against it (``evalkit drill``)."""
