"""Check a normalised element against botocore's service model of ``personalize-events``.

Every limit comes from the model: required members, member types, ``min`` / ``max`` lengths, list sizes and
``pattern`` from each shape's metadata. The shapes are walked once per entity and compiled into
:class:`MemberRule` trees; checking a record then costs a few microseconds.

# NOTE: botocore's own ``ParamValidator`` checks required members, types and minimums only (``max`` and
# ``pattern`` are left to the service) and costs ~40 us per element; the client runs it again on every call.
# The rules here check the same things plus ``max`` and ``pattern``, so a record that passes them also passes the
# client's validation (tests/unit/test_validation.py cross-checks the two).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from botocore.model import ListShape, ServiceModel, Shape, StructureShape

from personalize_ingest.clients import botocore_session
from personalize_ingest.entities import Entity
from personalize_ingest.model import RecordRejected

SERVICE_NAME = "personalize-events"

# Stable reject codes (docs/records.md lists them with their meaning).
INVALID_JSON = "invalid_json"
NOT_AN_OBJECT = "not_an_object"
MIXED_STYLES = "mixed_styles"
UNKNOWN_FIELD = "unknown_field"
MISSING_FIELD = "missing_field"
INVALID_TYPE = "invalid_type"
TOO_LONG = "too_long"
TOO_SHORT = "too_short"
TOO_MANY_IMPRESSIONS = "too_many_impressions"
TOO_MANY_VALUES = "too_many_values"
OUT_OF_RANGE = "out_of_range"
PATTERN_MISMATCH = "pattern_mismatch"
INVALID_TIMESTAMP = "invalid_timestamp"
INVALID_PROPERTIES = "invalid_properties"
FORBIDDEN_PROPERTY = "forbidden_property"

_NUMBER_TYPES = frozenset({"float", "double", "integer", "long"})
_EXPECTED = {
    "string": "a string",
    "float": "a number",
    "double": "a number",
    "integer": "an integer",
    "long": "an integer",
    "boolean": "a boolean",
    "timestamp": "a timestamp",
    "list": "an array",
    "structure": "an object",
    "map": "an object",
}


def describe(value: object) -> str:
    """Name the JSON type of ``value`` with its article ("a number", "an array"), never its content."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return f"a {type(value).__name__}"


@cache
def service_model() -> ServiceModel:
    """botocore's model of ``personalize-events``, loaded once per process (~30 ms)."""
    return botocore_session().get_service_model(SERVICE_NAME)


@dataclass(frozen=True, slots=True)
class MemberRule:
    """What the model says about one member: its type, limits and, for lists and structures, their parts."""

    name: str
    type_name: str
    minimum: int | float | None = None
    maximum: int | float | None = None
    pattern: re.Pattern[str] | None = None
    item: MemberRule | None = None
    members: Mapping[str, MemberRule] = field(default_factory=dict)
    required: tuple[str, ...] = ()

    @classmethod
    def from_shape(cls, name: str, shape: Shape) -> MemberRule:
        """Compile ``shape`` (and the shapes it contains) into a rule."""
        meta = shape.metadata
        pattern = meta.get("pattern")
        item = cls.from_shape(f"{name}[]", shape.member) if isinstance(shape, ListShape) else None
        members: dict[str, MemberRule] = {}
        required: tuple[str, ...] = ()
        if isinstance(shape, StructureShape):
            members = {key: cls.from_shape(key, member) for key, member in shape.members.items()}
            required = tuple(shape.required_members)
        return cls(
            name=name,
            type_name=shape.type_name,
            minimum=meta.get("min"),
            maximum=meta.get("max"),
            # NOTE: Smithy patterns are ECMA-262 and unanchored; the ones in this model compile as Python regular
            # expressions and are applied with search(), as the service does.
            pattern=re.compile(pattern) if pattern else None,
            item=item,
            members=members,
            required=required,
        )

    def check(self, value: Any, label: str) -> None:
        """Raise :class:`RecordRejected` when ``value`` breaks this rule; ``label`` names it in the reason."""
        kind = self.type_name
        if kind == "string":
            if not isinstance(value, str):
                raise _wrong_type(label, kind, value)
            size = len(value)
            if (self.maximum is not None and size > self.maximum) or (
                self.minimum is not None and size < self.minimum
            ):
                self._check_size(size, label, "is {} characters", TOO_LONG)
            if self.pattern is not None and self.pattern.search(value) is None:
                raise RecordRejected(
                    PATTERN_MISMATCH, f"{label} does not match the pattern {self.pattern.pattern} of the API"
                )
        elif kind in _NUMBER_TYPES:
            integral = kind in ("integer", "long")
            if isinstance(value, bool) or not isinstance(value, int if integral else int | float):
                raise _wrong_type(label, kind, value)
            if isinstance(value, float) and not math.isfinite(value):
                raise RecordRejected(INVALID_TYPE, f"{label} must be a finite number")
            if self.minimum is not None and value < self.minimum:
                raise RecordRejected(OUT_OF_RANGE, f"{label} is below the minimum of {self.minimum}")
            if self.maximum is not None and value > self.maximum:
                raise RecordRejected(OUT_OF_RANGE, f"{label} is above the maximum of {self.maximum}")
        elif kind == "timestamp":
            # Normalisation always hands epoch seconds as a float here.
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise _wrong_type(label, kind, value)
        elif kind == "boolean":
            if not isinstance(value, bool):
                raise _wrong_type(label, kind, value)
        elif kind == "list":
            if not isinstance(value, list):
                raise _wrong_type(label, kind, value)
            too_many = TOO_MANY_IMPRESSIONS if self.name == "impression" else TOO_MANY_VALUES
            self._check_size(len(value), label, "has {} entries", too_many)
            if self.item is not None:
                for index, entry in enumerate(value):
                    self.item.check(entry, f"{label}[{index}]")
        elif kind == "structure":
            if not isinstance(value, dict):
                raise _wrong_type(label, kind, value)
            check_members(self.members, self.required, value, label)
        elif kind == "map" and not isinstance(value, dict):
            raise _wrong_type(label, kind, value)

    def _check_size(self, size: int, label: str, measured: str, too_big: str) -> None:
        if self.maximum is not None and size > self.maximum:
            raise RecordRejected(too_big, f"{label} {measured.format(size)}; the maximum is {self.maximum}")
        if self.minimum is not None and size < self.minimum:
            raise RecordRejected(TOO_SHORT, f"{label} {measured.format(size)}; the minimum is {self.minimum}")


def check_members(
    rules: Mapping[str, MemberRule],
    required: tuple[str, ...],
    values: Mapping[str, Any],
    parent: str = "",
    labels: Mapping[str, str] | None = None,
) -> None:
    """Check a structure's members: required ones present, no unknown ones, each within its rule.

    Parameters
    ----------
    rules, required
        The structure's compiled member rules and required member names.
    values
        The structure as it will be sent.
    parent
        Label of the enclosing structure for nested members (``metricAttribution``); empty at the top.
    labels
        The record's own names of top-level members (``ITEM_ID`` for ``itemId`` in a bulk-style record).

    Raises
    ------
    RecordRejected
        For the first member that breaks a rule.
    """
    prefix = f"{parent}." if parent else ""
    for name in required:
        if values.get(name) is None:
            label = labels.get(name, name) if labels else name
            raise RecordRejected(MISSING_FIELD, f"{prefix}{label} is required but missing")
    for name, value in values.items():
        rule = rules.get(name)
        label = labels.get(name, name) if labels else name
        if prefix:
            label = prefix + label
        if rule is None:
            raise RecordRejected(UNKNOWN_FIELD, f"{label} is not a field of {parent or 'this element'}")
        rule.check(value, label)


def _wrong_type(label: str, type_name: str, value: object) -> RecordRejected:
    expected = _EXPECTED.get(type_name, type_name)
    return RecordRejected(INVALID_TYPE, f"{label} must be {expected}, got {describe(value)}")


@dataclass(frozen=True, slots=True)
class ElementRules:
    """The compiled rules of one entity: its element shape, plus PutEvents' request-level members."""

    entity: Entity
    element: Mapping[str, MemberRule]
    element_required: tuple[str, ...]
    request: Mapping[str, MemberRule]
    """Request members that come from the record (``sessionId``, ``userId`` for events), not the whole request."""
    request_required: tuple[str, ...]

    def check(
        self,
        element: Mapping[str, Any],
        request: Mapping[str, Any] | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> None:
        """Check one element (and its request-level fields) against the model.

        Raises
        ------
        RecordRejected
            ``missing_field``, ``invalid_type``, ``too_long``, ``too_short``, ``too_many_impressions``,
            ``pattern_mismatch`` ... naming the field and the rule.
        """
        if self.request:
            check_members(self.request, self.request_required, request or {}, labels=labels)
        check_members(self.element, self.element_required, element, labels=labels)


@cache
def rules_for(entity: Entity) -> ElementRules:
    """Compile (once per process) the model's rules for ``entity``."""
    model = service_model()
    element_shape = model.shape_for(entity.element_shape)
    assert isinstance(element_shape, StructureShape)
    element = MemberRule.from_shape(entity.element_shape, element_shape)
    input_shape = model.operation_model(entity.operation).input_shape
    assert input_shape is not None
    request = {name: MemberRule.from_shape(name, input_shape.members[name]) for name in entity.request_members}
    return ElementRules(
        entity=entity,
        element=element.members,
        element_required=element.required,
        request=request,
        request_required=tuple(name for name in input_shape.required_members if name in request),
    )
