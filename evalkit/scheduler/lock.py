"""The lock and address of ``evalkit serve``: one service per store, found by CLI commands.

``<store>.serve.lock`` is held for the service's whole life, so CLI commands can tell a live
service from a stale ``<store>.serve.json`` (its address); the locks for writing the store
are ``evalkit.store.access``'s.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from evalkit.errors import StoreError
from evalkit.store.access import FileLock, store_sibling

__all__ = ["MAX_TRIGGER_WAIT", "ServiceInfo", "ServiceLock", "find_service", "trigger_wait"]

# A week: longer than any job should run, and well inside what a socket timeout or
# threading's wait can hold (1e12 seconds overflows them).
MAX_TRIGGER_WAIT = 7 * 24 * 3600.0


def trigger_wait(seconds: float) -> float:
    """``seconds`` if it is a wait for a job handed to ``evalkit serve`` (0 to a week);
    ValueError for a negative, non-finite or longer one."""
    if not math.isfinite(seconds) or not 0 <= seconds <= MAX_TRIGGER_WAIT:
        raise ValueError(
            f"{seconds:g} is not a wait in seconds from 0 to {MAX_TRIGGER_WAIT:g} (a week)"
        )
    return seconds


@dataclass(frozen=True, slots=True)
class ServiceInfo:
    """A running ``evalkit serve``: its process, the URL of its HTTP endpoint and of its
    OTLP receiver (None when off)."""

    pid: int
    url: str
    started_at: str
    loopback: bool
    otlp_url: str | None = None


class ServiceLock:
    """Held by ``evalkit serve`` for its whole life; publishes its address beside the store."""

    def __init__(self, store_path: Path) -> None:
        self._lock = FileLock(store_sibling(store_path, ".serve.lock"), program="evalkit serve")
        self.info_path = store_sibling(store_path, ".serve.json")

    def acquire(self, *, wait: float = 2.0) -> None:
        """Take the lock; StoreError naming the running service when another holds it."""
        if not self._lock.acquire(purpose="serving", wait=wait):
            running = _read_info(self.info_path)
            which = f"pid {running.pid} at {running.url}" if running else "another process"
            raise StoreError(
                f"evalkit serve is already running on this store ({which}); stop it first "
                "or point this one at another store"
            )

    def publish(self, info: ServiceInfo) -> None:
        """Write where the service listens (read by ``find_service``)."""
        temporary = self.info_path.with_suffix(".tmp")
        temporary.write_text(
            json.dumps(
                {
                    "pid": info.pid,
                    "url": info.url,
                    "started_at": info.started_at,
                    "loopback": info.loopback,
                    "otlp_url": info.otlp_url,
                }
            ),
            encoding="utf-8",
        )
        temporary.replace(self.info_path)

    def release(self) -> None:
        """Remove the address file and give the lock back."""
        try:
            self.info_path.unlink(missing_ok=True)
        finally:
            self._lock.release()


def _read_info(path: Path) -> ServiceInfo | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return ServiceInfo(
            pid=int(data["pid"]),
            url=str(data["url"]),
            started_at=str(data["started_at"]),
            loopback=bool(data["loopback"]),
            otlp_url=data.get("otlp_url"),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def find_service(store_path: Path) -> ServiceInfo | None:
    """The ``evalkit serve`` running on this store, or None (a stale address file is ignored)."""
    lock = FileLock(store_sibling(store_path, ".serve.lock"), program="probe")
    if not lock.path.exists() or not lock.is_held():
        return None
    return _read_info(store_sibling(store_path, ".serve.json"))
