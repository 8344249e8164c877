"""The job kinds of ``evalkit serve``, by what they run (``evaluation``, ``traffic``,
``checks``, ``upkeep``); ``base`` holds what every kind shares, and
``evalkit.scheduler.jobs`` registers them in ``JOB_KINDS``.
"""
