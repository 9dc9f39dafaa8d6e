"""``replay --fix``: mapping files and callables applied to rejected records, and how they fail."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ingest_cli import fixes

MESSAGE: dict[str, Any] = {"entity": "items", "code": "unknown_field", "reason": "...", "source": {}, "record": {}}


def test_a_mapping_renames_sets_and_drops_keys_without_changing_the_message(tmp_path: Path) -> None:
    # GIVEN a mapping file and a rejected CSV row
    path = tmp_path / "fix.json"
    path.write_text(json.dumps({"rename": {"TITEL": "TITLE"}, "set": {"GENRES": "Drama"}, "drop": ["DEBUG"]}))
    record = {"ITEM_ID": "i-1", "TITEL": "x", "DEBUG": "1"}

    # WHEN it is applied
    fixed = fixes.apply(fixes.load(str(path)), record, MESSAGE)

    # THEN the keys are renamed, set and dropped in a copy
    assert fixed == {"ITEM_ID": "i-1", "TITLE": "x", "GENRES": "Drama"}
    assert record == {"ITEM_ID": "i-1", "TITEL": "x", "DEBUG": "1"}


def test_a_mapping_on_a_record_that_is_not_an_object_is_a_fix_error(tmp_path: Path) -> None:
    path = tmp_path / "fix.json"
    path.write_text(json.dumps({"set": {"a": 1}}))
    with pytest.raises(fixes.FixError, match="applies to JSON objects and CSV rows, not to str"):
        fixes.apply(fixes.load(str(path)), "not json", MESSAGE)


def test_a_callable_from_a_file_gets_the_record_and_the_message(tmp_path: Path) -> None:
    # GIVEN a fix that copies the reject code into the record
    module = tmp_path / "repair.py"
    module.write_text("def fix(record, reject):\n    return {**record, 'code': reject['code']}\n")

    # WHEN loaded by path and applied
    fixed = fixes.apply(fixes.load(f"{module}:fix"), {"itemId": "i"}, MESSAGE)

    # THEN it saw both
    assert fixed == {"itemId": "i", "code": "unknown_field"}


def test_a_callable_that_raises_is_reported_with_its_exception(tmp_path: Path) -> None:
    module = tmp_path / "repair.py"
    module.write_text("def fix(record, reject):\n    raise KeyError('ITEM_ID')\n")
    with pytest.raises(fixes.FixError, match="the fix raised KeyError: 'ITEM_ID'"):
        fixes.apply(fixes.load(f"{module}:fix"), {}, MESSAGE)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("fix", "expected a .json mapping file, module:function or file.py:function"),
        ("missing.json", "missing.json cannot be read"),
        ("no_such_module_anywhere:fix", "module no_such_module_anywhere cannot be imported"),
        ("json:no_such_function", "json has no callable 'no_such_function'"),
        ("nowhere/repair.py:fix", "no such file nowhere/repair.py"),
    ],
)
def test_a_fix_that_cannot_be_loaded_says_why(spec: str, message: str) -> None:
    with pytest.raises(fixes.FixError, match=message.replace(".", r"\.")):
        fixes.load(spec)


def test_a_mapping_with_unknown_keys_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "fix.json"
    path.write_text(json.dumps({"rename": {}, "replace": {}}))
    with pytest.raises(fixes.FixError, match='must be an object with "rename", "set" and/or "drop"'):
        fixes.load(str(path))
