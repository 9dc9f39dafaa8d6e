"""Request validation: botocore's shapes walked in full, then the service's documented rules.

botocore's own ``ParamValidator`` checks required members, types and minimum lengths only; the model's ``max`` and
``pattern`` live in ``shape.metadata``, so this module walks the shapes itself. Every problem is reported with its
path in the request (``eventList[3].properties``, list indices from 0) and never with the offending value, since
most members are marked sensitive.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from functools import cache
from typing import Any

from botocore.model import ListShape, Shape, StructureShape

from emulator.operations import Operation


class RequestInvalid(Exception):
    """The request breaks the model or a documented rule; answered as InvalidInputException."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        count = len(problems)
        super().__init__(f"{count} validation error{'s' if count > 1 else ''} detected: " + "; ".join(problems))


# An unescaped ``$`` (preceded by an even number of backslashes).
_END_ANCHOR = re.compile(r"(?<!\\)((?:\\\\)*)\$")


@cache
def _pattern(expression: str) -> re.Pattern[str]:
    # NOTE: the model's patterns are ECMAScript regular expressions (Smithy), where ``$`` matches only at the end
    # of the input; Python's ``$`` also matches before a final newline, which would let "source\n" through
    # ``^[\x20-\x7E]*[\x21-\x7E]+[\x20-\x7E]*$``. ``\Z`` is the ECMAScript meaning.
    # The control plane's model (personalize) also uses the Unicode property class \p{ASCII}, which Python's re
    # does not know.
    expression = expression.replace("\\p{ASCII}", "[\\x00-\\x7F]")
    return re.compile(_END_ANCHOR.sub(r"\1\\Z", expression))


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_shape(shape: Shape, value: Any, path: str, problems: list[str]) -> None:
    """Append to ``problems`` every way ``value`` (decoded JSON) breaks ``shape`` and its metadata."""
    kind = shape.type_name
    if kind == "structure":
        _check_structure(shape, value, path, problems)  # type: ignore[arg-type]
    elif kind == "list":
        _check_list(shape, value, path, problems)  # type: ignore[arg-type]
    elif kind == "string":
        _check_string(shape, value, path, problems)
    elif kind in ("float", "double"):
        if not _is_number(value) or not math.isfinite(value):
            problems.append(f"{path}: must be a finite number")
    elif kind in ("integer", "long"):
        if not isinstance(value, int) or isinstance(value, bool):
            problems.append(f"{path}: must be an integer")
    elif kind == "boolean":
        if not isinstance(value, bool):
            problems.append(f"{path}: must be a boolean")
    elif kind == "timestamp":
        # NOTE: rest-json timestamps travel as epoch seconds; botocore sends whole seconds, the JavaScript SDK v2
        # fractions (1795978246.729). Both are accepted.
        if not _is_number(value) or not math.isfinite(value) or value < 0:
            problems.append(f"{path}: must be a timestamp in epoch seconds")
    else:  # pragma: no cover - the personalize-events model uses no other type
        problems.append(f"{path}: unsupported type {kind}")


def _check_structure(shape: StructureShape, value: Any, path: str, problems: list[str]) -> None:
    if not isinstance(value, dict):
        problems.append(f"{path or 'request'}: must be an object")
        return
    prefix = f"{path}." if path else ""
    # NOTE: AWS JSON services treat an explicit null like an absent member.
    present = {name: member for name, member in value.items() if member is not None}
    for name in shape.required_members:
        if name not in present:
            problems.append(f"{prefix}{name}: required member is missing")
    for name, member in present.items():
        if name not in shape.members:
            # Assumption: the real service may ignore unknown members; refusing them catches producer typos
            # (boto3 itself cannot send one).
            problems.append(f"{prefix}{name}: unknown member")
            continue
        check_shape(shape.members[name], member, f"{prefix}{name}", problems)


def _check_list(shape: ListShape, value: Any, path: str, problems: list[str]) -> None:
    if not isinstance(value, list):
        problems.append(f"{path}: must be a list")
        return
    _check_size(shape, len(value), path, "items", problems)
    for index, member in enumerate(value):
        check_shape(shape.member, member, f"{path}[{index}]", problems)


def _check_string(shape: Shape, value: Any, path: str, problems: list[str]) -> None:
    if not isinstance(value, str):
        problems.append(f"{path}: must be a string")
        return
    _check_size(shape, len(value), path, "characters", problems)
    pattern = shape.metadata.get("pattern")
    if pattern is not None and not _pattern(pattern).search(value):
        problems.append(f"{path}: must match pattern {pattern}")


def _check_size(shape: Shape, size: int, path: str, unit: str, problems: list[str]) -> None:
    low, high = shape.metadata.get("min"), shape.metadata.get("max")
    if low is not None and size < low:
        problems.append(f"{path}: must have at least {low} {unit}, has {size}")
    if high is not None and size > high:
        problems.append(f"{path}: must have at most {high} {unit}, has {size}")


def camel_case(field_name: str) -> str:
    """Properties key of an Avro field: ``NUMBER_OF_RATINGS`` -> ``numberOfRatings``, ``genre`` -> ``genre``."""
    if "_" not in field_name and not field_name.isupper():
        return field_name[:1].lower() + field_name[1:]
    first, *rest = field_name.lower().split("_")
    return first + "".join(part.capitalize() for part in rest)


def schema_property_keys(schema: Mapping[str, Any]) -> frozenset[str]:
    """The properties keys an Avro record schema allows (camelCase of its field names)."""
    return frozenset(camel_case(field["name"]) for field in schema.get("fields", ()))


def _check_properties(
    text: str, path: str, forbidden: frozenset[str], allowed: frozenset[str] | None, problems: list[str]
) -> None:
    try:
        # NOTE: Python's json module accepts NaN and Infinity, which are not JSON (RFC 8259).
        decoded = json.loads(text, parse_constant=_reject_constant)
    except ValueError:
        problems.append(f"{path}: must be a JSON object string, is not valid JSON")
        return
    if isinstance(decoded, str):
        # NOTE: SDKs that JSON-encode properties themselves (JavaScript v2, jsonvalue) double-encode an
        # already-encoded string: the service receives a string literal, not an object.
        problems.append(f"{path}: must be a JSON object string, is a JSON string literal (double-encoded?)")
        return
    if not isinstance(decoded, dict):
        problems.append(f"{path}: must be a JSON object string, is a JSON {type(decoded).__name__}")
        return
    refused = sorted(key for key in decoded if key.lower() in forbidden)
    if refused:
        problems.append(f"{path}: keys {refused} are reserved and cannot be properties (case-insensitive)")
    if allowed is not None:
        unknown = sorted(key for key in decoded if key not in allowed)
        if unknown:
            problems.append(f"{path}: keys {unknown} are not fields of the dataset schema")


def validate_request(
    operation: Operation,
    body: Any,
    *,
    schema: Mapping[str, Any] | None = None,
    max_element_bytes: int | None = None,
) -> None:
    """Raise ``RequestInvalid`` naming every problem of ``body`` (the decoded JSON request).

    Parameters
    ----------
    operation
        The operation called.
    body
        The decoded JSON body; the request is one unit: any invalid element rejects the whole call.
    schema
        Optional Avro schema whose fields are the only allowed ``properties`` keys.
    max_element_bytes
        Optional cap on each element's serialised size (the 10 KB event size quota).
    """
    problems: list[str] = []
    check_shape(operation.input_shape, body, "", problems)
    elements = body.get(operation.list_member) if isinstance(body, dict) else None
    if isinstance(elements, list):
        allowed = schema_property_keys(schema) if schema is not None else None
        for index, element in enumerate(elements):
            path = f"{operation.list_member}[{index}]"
            if not isinstance(element, dict):
                continue
            properties = element.get("properties")
            if isinstance(properties, str) and properties:
                _check_properties(
                    properties, f"{path}.properties", operation.forbidden_property_keys, allowed, problems
                )
            if max_element_bytes is not None:
                size = len(json.dumps(element, separators=(",", ":"), ensure_ascii=False).encode())
                if size > max_element_bytes:
                    problems.append(f"{path}: is {size} bytes, the maximum is {max_element_bytes}")
    if problems:
        raise RequestInvalid(problems)


def element_count(operation: Operation, body: Any) -> int:
    """Number of elements in a request body (0 when it has no list)."""
    elements = body.get(operation.list_member) if isinstance(body, dict) else None
    return len(elements) if isinstance(elements, list) else 0


def request_members(operation: Operation, body: Mapping[str, Any]) -> dict[str, Any]:
    """Request-level members other than the element list (what the store keeps beside each element)."""
    return {name: value for name, value in body.items() if name != operation.list_member}
