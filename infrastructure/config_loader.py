"""Where the configuration comes from, and how its errors read.

Three ways, in this order of precedence:

- ``-c personalizeConfig=path/to/file.json``: a JSON file (pretty-printed or not), relative to the directory the
  CDK CLI runs the app in (the project root); it replaces the ``personalize`` context of cdk.json;
- ``-c personalize='{...}'``: inline JSON on one line (the CDK CLI passes a ``-c`` value only up to its first line
  break, so ``"$(cat file.json)"`` of a pretty-printed file arrives cut: use the file option);
- the ``personalize`` object in cdk.json's context.

A JSON error shows where (line, column, the line with a caret) and what was received; a schema error names the
key by its full path, the expected form and the value received (infrastructure/config.py).
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import ValidationError

from infrastructure.config import CONTEXT_KEY, IngestConfig
from infrastructure.config_fields import show

FILE_CONTEXT_KEY = "personalizeConfig"


class ConfigError(ValueError):
    """The configuration is invalid; the message names the key (or file position), the expected form and what
    was received."""


def load(context: object, config_file: object = None, *, base: Path | None = None) -> IngestConfig:
    """The configuration from a file named by ``personalizeConfig`` when given, else from the context value.

    Parameters
    ----------
    context
        ``node.try_get_context("personalize")``: a JSON object, or a JSON string of one (``-c`` passes strings).
    config_file
        ``node.try_get_context("personalizeConfig")``: a path, or None.
    base
        Directory a relative path is read from (default: the current directory, where the CDK CLI runs the app).

    Raises
    ------
    ConfigError
        naming the file position or key, the expected form and what was received.
    """
    if config_file is None:
        return parse(context)
    if not isinstance(config_file, str) or not config_file.strip():
        raise ConfigError(f"{FILE_CONTEXT_KEY}: expected the path of a JSON file, got {show(config_file)}")
    path = Path(config_file)
    if not path.is_absolute():
        path = (base or Path.cwd()) / path
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{FILE_CONTEXT_KEY}: cannot read {path} ({exc.strerror or exc})") from None
    return parse(decode(text, f"the file {path}"))


def parse(context: object) -> IngestConfig:
    """Validate one ``personalize`` value (object, or JSON text of one) against the schema.

    Raises
    ------
    ConfigError
        naming the offending key by its full path, the expected form and what was received.
    """
    if isinstance(context, str):
        context = decode(context, f"-c {CONTEXT_KEY}=...")
    if context is None:
        raise ConfigError(
            f"{CONTEXT_KEY}: missing; expected a JSON object in cdk.json's context, -c {CONTEXT_KEY}='{{...}}' or "
            f"-c {FILE_CONTEXT_KEY}=path/to/file.json"
        )
    try:
        return IngestConfig.model_validate(context)
    except ValidationError as exc:
        raise ConfigError(describe(exc)) from None


def decode(text: str, source: str) -> object:
    """JSON text -> value; an error shows the position, the line with a caret and what was received."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        lines = text.splitlines() or [""]
        line = lines[min(exc.lineno, len(lines)) - 1]
        message = (
            f"{CONTEXT_KEY}: expected a JSON object, got invalid JSON from {source} ({exc.msg} at line "
            f"{exc.lineno}, column {exc.colno}):\n    {line}\n    {' ' * (exc.colno - 1)}^\n"
            f"received {len(text)} characters: {show(text)}"
        )
        if source.startswith("-c") and exc.msg.startswith(("Expecting", "Unterminated")) and "\n" not in text:
            message += (
                f"\nThe CDK CLI passes a -c value only up to its first line break: for a pretty-printed file use "
                f"-c {FILE_CONTEXT_KEY}=path/to/file.json"
            )
        raise ConfigError(message) from None


def describe(error: ValidationError) -> str:
    """pydantic's errors as ``personalize.<path>: <expected form>, got <value>``, one a line (first one first)."""
    lines = []
    for item in error.errors():
        context = item.get("ctx") or {}
        path = [CONTEXT_KEY, *(str(part) for part in item["loc"])]
        if context.get("at"):
            path += str(context["at"]).split(".")
        kind = item["type"]
        if kind == "personalize_config":
            message = str(context["message"])
        elif kind == "missing":
            message = "missing; it is required"
        elif kind in ("model_type", "model_attributes_type", "dict_type"):
            message = f"expected a JSON object, got {show(item.get('input'))}"
        else:  # a rule of pydantic's own (should not happen: every field checks its form itself)
            message = f"{item['msg']}, got {show(item.get('input'))}"
        lines.append(f"{'.'.join(path)}: {message}")
    return "\n".join(lines)
