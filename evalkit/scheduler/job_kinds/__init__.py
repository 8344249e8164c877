"""The job kinds of ``evalkit serve``, by what they run.

``evalkit.scheduler.jobs`` registers them in ``JOB_KINDS``; ``base`` holds what every kind
shares (the context, the outcome, the kind record, the parameter bases).

- ``evaluation``: ``goldset_replay``, ``answers``, ``sweep``;
- ``traffic``: ``traffic_ingest``, ``traffic``;
- ``checks``: ``drift_check``, ``audit``, ``freshness``;
- ``upkeep``: ``retention``, ``command``.
"""
