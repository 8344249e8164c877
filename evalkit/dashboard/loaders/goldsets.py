"""The Goldsets page's data: stored versions and the judgment coverage of their runs."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from evalkit.store import Store
from evalkit.store.dashboard.goldsets import goldset_coverage_frame, goldset_versions_frame

__all__ = ["GoldsetsData", "goldsets"]


@dataclass(frozen=True, slots=True)
class GoldsetsData:
    """Stored goldset versions and the judgment coverage of their newest runs."""

    versions: pd.DataFrame
    coverage: pd.DataFrame
    depth: int


def goldsets(store: Store, *, depth: int = 10) -> GoldsetsData:
    """Goldset versions with sizes, and judged@depth / judged@k of each newest run."""
    return GoldsetsData(
        versions=goldset_versions_frame(store),
        coverage=goldset_coverage_frame(store, depth=depth),
        depth=depth,
    )
