"""`make` alone: the list of targets, nothing run (a fresh clone's first command must not start a benchmark)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="GNU make is not installed")


def test_make_without_a_target_lists_the_targets_and_runs_none() -> None:
    # WHEN `make` runs without a target, dry (so nothing could run even if a recipe were chosen)
    dry = subprocess.run(["make", "-n"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=True)
    done = subprocess.run(["make"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=True)

    # THEN nothing is installed, tested or measured: it prints the targets, each with a description
    for command in ("pip install", "-m pytest", "-m benchmarks", "cdk synth", "-m local"):
        assert command not in dry.stdout
    listed = dict(re.findall(r"^  (\S+)\s+(.+)$", done.stdout, flags=re.MULTILINE))
    for target in ("help", "install", "test", "lint", "demo", "synth", "deploy", "bench", "clean", "up", "down"):
        assert listed.get(target), f"{target} missing from `make`:\n{done.stdout}"
