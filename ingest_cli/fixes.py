"""Fixes ``replay`` applies to rejected records before validating them again.

Two kinds, chosen by the ``--fix`` argument:

- a JSON mapping file (``fix.json``)::

      {"rename": {"TITEL": "TITLE"}, "set": {"EVENT_TYPE": "watch"}, "drop": ["DEBUG"]}

  applied in that order to records that are JSON objects or CSV rows (keys renamed, values set, keys removed);
- a Python callable, ``module:function`` or ``path/to/file.py:function``, called as ``function(record, reject)``
  with the record value and the whole reject message; it returns the fixed record, or None to leave the record
  where it is (not replayed).

A fix that raises leaves that record in place and is reported with its exception (exit 2).
"""

from __future__ import annotations

import copy
import importlib
import importlib.util
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

Fix = Callable[[Any, Mapping[str, Any]], Any]


class FixError(Exception):
    """The fix cannot be loaded, or it raised on a record (the message says which and why)."""


def load(spec: str | None) -> Fix | None:
    """The fix named by ``spec`` (see the module docstring); None when no fix is given."""
    if not spec:
        return None
    if spec.endswith(".json"):
        return _mapping(Path(spec))
    target, separator, name = spec.rpartition(":")
    if not separator or not target or not name:
        raise FixError(f"--fix {spec!r}: expected a .json mapping file, module:function or file.py:function")
    module = _module(target)
    function = getattr(module, name, None)
    if not callable(function):
        raise FixError(f"--fix {spec!r}: {target} has no callable {name!r}")
    return function


def apply(fix: Fix | None, record: Any, message: Mapping[str, Any]) -> Any:
    """``record`` after ``fix`` (a copy: the message is not changed); :class:`FixError` when the fix raises."""
    if fix is None:
        return record
    try:
        return fix(copy.deepcopy(record), message)
    except Exception as exc:  # any error of user code: the record is kept and the error reported
        raise FixError(f"the fix raised {type(exc).__name__}: {exc}") from exc


def _module(target: str) -> Any:
    if target.endswith(".py"):
        path = Path(target)
        if not path.is_file():
            raise FixError(f"--fix: no such file {target}")
        spec = importlib.util.spec_from_file_location(f"_replay_fix_{path.stem}", path)
        if spec is None or spec.loader is None:
            raise FixError(f"--fix: {target} cannot be loaded as Python")
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            raise FixError(f"--fix: loading {target} raised {type(exc).__name__}: {exc}") from exc
        return module
    try:
        return importlib.import_module(target)
    except Exception as exc:
        raise FixError(f"--fix: module {target} cannot be imported: {type(exc).__name__}: {exc}") from exc


def _mapping(path: Path) -> Fix:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise FixError(f"--fix: {path} cannot be read: {exc.strerror or exc}") from exc
    except ValueError as exc:
        raise FixError(f"--fix: {path} is not JSON: {exc}") from exc
    if not isinstance(document, dict) or set(document) - {"rename", "set", "drop"}:
        raise FixError(f'--fix: {path} must be an object with "rename", "set" and/or "drop"')
    rename: dict[str, str] = dict(document.get("rename") or {})
    values: dict[str, Any] = dict(document.get("set") or {})
    drop: list[str] = list(document.get("drop") or [])

    def fix(record: Any, _: Mapping[str, Any]) -> Any:
        if not isinstance(record, dict):
            raise TypeError(f"a mapping fix applies to JSON objects and CSV rows, not to {type(record).__name__}")
        fixed = {rename.get(key, key): value for key, value in record.items()}
        fixed.update(values)
        for key in drop:
            fixed.pop(key, None)
        return fixed

    return fix
