"""The installed command: pyproject's console script names the CLI's main, and the progress line it draws."""

from __future__ import annotations

import io
import tomllib
from importlib import import_module
from pathlib import Path

import pytest

from ingest_cli.main import main
from ingest_cli.output import Progress

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_the_console_script_is_the_cli_main() -> None:
    # GIVEN the project's metadata
    scripts = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["scripts"]

    # WHEN the script's target is imported
    module, _, name = scripts["personalize-ingest"].partition(":")

    # THEN it is the command line's entry point
    assert getattr(import_module(module), name) is main


def test_without_a_command_it_lists_the_commands_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    help_text = capsys.readouterr().err
    for command in ("validate", "replay", "redrive", "backfill", "status", "exit codes"):
        assert command in help_text


def test_the_progress_line_shows_rows_rate_and_eta_when_the_total_is_known() -> None:
    # GIVEN a progress display on a non-terminal stream, drawing at every step
    stream = io.StringIO()
    progress = Progress("backfill", 1_000, stream, enabled=True, interval_s=0)
    progress.started -= 10  # ten seconds ago: 100 rows make 10 records/s

    # WHEN 100 of 1,000 rows are done
    progress.advance(100, delivered=98)

    # THEN the line says how far, how fast and how long is left
    line = stream.getvalue().strip()
    assert line.startswith("backfill: 100/1,000 rows (10%)")
    assert "delivered 98" in line
    assert "ETA 1m" in line
    assert "records/s" in line


def test_a_disabled_progress_line_prints_nothing() -> None:
    stream = io.StringIO()
    progress = Progress("validate", None, stream, enabled=False)
    progress.advance(5)
    progress.finish()
    assert stream.getvalue() == ""
