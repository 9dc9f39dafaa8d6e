"""Without the MovieLens data set: its tests skip with the reason, CI makes them fail, the benchmark says why.

The data set is kept outside the repository (licence), so a fresh clone has none; where it is meant to be present
(``REQUIRE_SHARED_DATA``), a missing file must not pass unnoticed as a skip.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import movielens
from tests.support.datasets import REQUIRE_VARIABLE, movielens_file

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_a_missing_file_skips_with_what_is_needed_and_where_to_get_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN an empty data folder and no requirement
    monkeypatch.delenv(REQUIRE_VARIABLE, raising=False)

    # WHEN a test asks for the ratings
    with pytest.raises(pytest.skip.Exception) as skipped:
        movielens_file("ratings.csv.gz", tmp_path)

    # THEN it is skipped with the file, the folder and the download
    assert "ratings.csv.gz" in str(skipped.value)
    assert str(tmp_path) in str(skipped.value)
    assert "grouplens.org" in str(skipped.value)


def test_a_missing_file_fails_when_the_data_is_required(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN CI's requirement and an empty data folder
    monkeypatch.setenv(REQUIRE_VARIABLE, "1")

    # WHEN a test asks for the ratings THEN it fails (no silent skip) naming the variable
    with pytest.raises(pytest.fail.Exception, match=REQUIRE_VARIABLE):
        movielens_file("ratings.csv.gz", tmp_path)


def test_a_present_file_is_returned(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN the file in the folder, with the requirement set
    monkeypatch.setenv(REQUIRE_VARIABLE, "1")
    (tmp_path / "ratings.csv.gz").write_bytes(b"")

    # WHEN / THEN its path comes back
    assert movielens_file("ratings.csv.gz", tmp_path) == tmp_path / "ratings.csv.gz"


def test_the_benchmark_without_data_says_in_one_line_what_it_needs(tmp_path: Path) -> None:
    # GIVEN a data folder without MovieLens
    env = {**os.environ, "BENCH_DATA_DIR": str(tmp_path / "nowhere")}

    # WHEN scenarios that read MovieLens are asked for by name
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks",
            "--quick",
            "--only",
            "prepare",
            "files",
            "--output",
            str(tmp_path / "out.json"),
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    # THEN they stop with exit 2 and one line naming the scenario, the files, the download and the variable;
    # nothing is written (a full run skips them with that line and runs the scenarios that make their own data)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "Traceback" not in done.stderr
    for needed in ("prepare", "ratings.csv.gz", "movies.csv.gz", movielens.SOURCE, "BENCH_DATA_DIR"):
        assert needed in lines[0]
    assert not (tmp_path / "out.json").exists()
