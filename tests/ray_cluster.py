"""A local Ray instance for the Ray engine's tests: 2 CPUs, no dashboard, nothing reported."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator

from evalkit.engines.ray import LOCAL_RAY_ENV, WORKER_ENV


@contextlib.contextmanager
def start_ray() -> Iterator[str]:
    """Start Ray in this process (the engine then uses this session) and stop it after."""
    import ray

    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    # As the engine starts a local instance: actors at the tests' niceness, not below it.
    os.environ.update(LOCAL_RAY_ENV)
    context = ray.init(
        num_cpus=2,
        include_dashboard=False,
        logging_level=logging.WARNING,
        log_to_driver=False,
        runtime_env={"env_vars": WORKER_ENV},
    )
    try:
        yield str(context.address_info["gcs_address"])
    finally:
        ray.shutdown()
