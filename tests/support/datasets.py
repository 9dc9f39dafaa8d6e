"""Data sets kept outside the repository: tests needing them skip on a machine without them, unless told not to.

MovieLens small lives in ``../shared/data/movielens-small`` beside the repository (or ``BENCH_DATA_DIR``);
its licence keeps it out of the project, so a fresh clone has no copy and its tests skip with the reason.
Where the data is meant to be present (``.ci/run`` exports ``REQUIRE_SHARED_DATA=1`` when ``../shared/data``
exists) a missing file fails the test instead, so the tests cannot silently stop running.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from benchmarks import movielens

REQUIRE_VARIABLE = "REQUIRE_SHARED_DATA"


def movielens_file(name: str, data_dir: Path | None = None) -> Path:
    """The path of MovieLens file ``name`` (e.g. ``ratings.csv.gz``); skips (or fails when required) if absent."""
    folder = movielens.DATA_DIR if data_dir is None else data_dir
    path = folder / name
    if path.exists():
        return path
    reason = (
        f"needs {name} of MovieLens small in {folder} (data set kept outside the repository: {movielens.SOURCE})"
    )
    if os.environ.get(REQUIRE_VARIABLE, "") not in ("", "0"):
        pytest.fail(f"{reason}; {REQUIRE_VARIABLE} is set, so it must be present", pytrace=False)
    pytest.skip(reason)
