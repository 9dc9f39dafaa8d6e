"""The building blocks of the configuration schema: field types that check their own form, and the base model.

A field's annotation carries its check (``Annotated[int, integer(1, 10)]``); a failed check raises
:func:`invalid`, whose message says what was expected and what was received, and whose ``at`` names keys below the
one being validated. infrastructure/config_loader.py turns these errors into ``personalize.<path>: <message>``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, model_validator
from pydantic_core import PydanticCustomError

# CloudWatch Logs accepts only these retention values (days), named as aws_logs.RetentionDays names them.
LOG_RETENTION_NAMES = dict(
    zip(
        (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653),
        ("ONE_DAY", "THREE_DAYS", "FIVE_DAYS", "ONE_WEEK", "TWO_WEEKS", "ONE_MONTH", "TWO_MONTHS", "THREE_MONTHS",
         "FOUR_MONTHS", "FIVE_MONTHS", "SIX_MONTHS", "ONE_YEAR", "THIRTEEN_MONTHS", "EIGHTEEN_MONTHS", "TWO_YEARS",
         "THREE_YEARS", "FIVE_YEARS", "SIX_YEARS", "SEVEN_YEARS", "EIGHT_YEARS", "NINE_YEARS", "TEN_YEARS"),
        strict=True,
    )
)  # fmt: skip


def invalid(message: str, at: str = "") -> PydanticCustomError:
    """A configuration error: ``message`` says what was expected and got; ``at`` is the key path below the
    model or field that raises it (``function.reservedConcurrency``)."""
    return PydanticCustomError("personalize_config", "{message}", {"message": message, "at": at})


def show(value: object) -> str:
    """How an error shows the value it received."""
    text = "nothing" if value is None else json.dumps(value)
    return text if len(text) <= 200 else f"{text[:200]}... ({len(text)} characters)"


# -- field types: the check is part of the annotation --


def _checked(check: Callable[[Any], bool], form: str, *, optional: bool = False) -> BeforeValidator:
    """A check of the value's form; ``optional`` fields also take JSON ``null`` (= not set)."""

    def validate(value: Any) -> Any:
        if value is None and optional:
            return None
        if not check(value):
            raise invalid(f"expected {form}, got {show(value)}")
        return value

    return BeforeValidator(validate)


def integer(low: int, high: int, *, optional: bool = False) -> BeforeValidator:
    """An integer from ``low`` to ``high`` (a JSON ``true`` is not 1)."""
    return _checked(
        lambda v: not isinstance(v, bool) and isinstance(v, int) and low <= v <= high,
        f"an integer from {low} to {high}",
        optional=optional,
    )


def number(low: float, high: float, *, optional: bool = False) -> BeforeValidator:
    """A number from ``low`` to ``high``."""
    return _checked(
        lambda v: not isinstance(v, bool) and isinstance(v, int | float) and low <= v <= high,
        f"a number from {low:g} to {high:g}",
        optional=optional,
    )


def matching(pattern: re.Pattern[str], form: str, *, optional: bool = False) -> BeforeValidator:
    """A string matching ``pattern``, described as ``form`` in errors."""
    return _checked(lambda v: isinstance(v, str) and pattern.match(v) is not None, form, optional=optional)


def one_of(*choices: object) -> BeforeValidator:
    """One of ``choices``."""
    return _checked(lambda v: v in choices, f"one of {', '.join(map(str, choices))}")


BOOLEAN = _checked(lambda v: isinstance(v, bool), "true or false")
LOG_RETENTION = _checked(
    lambda v: not isinstance(v, bool) and v in LOG_RETENTION_NAMES,
    f"one of CloudWatch Logs' retention values ({', '.join(map(str, LOG_RETENTION_NAMES))})",
)


def _source_switch(value: Any) -> Any:
    """A source is ``true`` (its defaults), an object (its settings), or ``false``/absent (not used)."""
    if value is None or value is False:
        return None
    if value is True:
        return {}
    if isinstance(value, Mapping):
        return value
    raise invalid(f"expected true, false or a JSON object, got {show(value)}")


SOURCE_SWITCH = BeforeValidator(_source_switch)


class Schema(BaseModel):
    """A JSON object of the configuration: only its declared keys (by their camelCase alias), nothing else."""

    model_config = ConfigDict(extra="forbid", populate_by_name=False, validate_default=False)

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            raise invalid(f"expected a JSON object, got {show(data)}")
        allowed = [field.alias or name for name, field in cls.model_fields.items()]
        for key in data:
            if key not in allowed:
                raise invalid(f"unknown key; expected one of {', '.join(allowed)}", at=str(key))
        return data
