"""Property-based: malformed records and payloads among valid neighbours, through the events handler.

Whatever the malformed payloads are (arbitrary bytes, text, JSON that is not an object, objects of unknown
fields, valid events with one field broken, KPL-looking garbage), the handler never raises, every valid neighbour
is stored, every malformed payload reaches the rejects queue with a code and a reason naming what is wrong, and
nothing is reported failed.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emulator.testing import EmulatorHandle
from personalize_ingest.sources import KPL_MAGIC
from tests.integration.test_handlers import VALID, Stack, build_stack
from tests.support import factories as f

EVENT_FIELDS = {"eventId", "eventType", "eventValue", "itemId", "properties", "sentAt", "recommendationId",
                "impression", "metricAttribution", "sessionId", "userId"}  # fmt: skip
CODE = re.compile(r"^[a-z][a-z0-9_]*$")

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
unknown_keys = st.text(min_size=1, max_size=12).filter(lambda key: key not in EVENT_FIELDS and not key.isupper())
broken_fields = st.sampled_from(
    [
        {"eventType": 42},
        {"eventType": ""},
        {"itemId": "x" * 300},
        {"sentAt": "yesterday"},
        {"sentAt": float("inf")},
        {"properties": "not a JSON object"},
        {"properties": {"userId": "reserved"}},
        {"properties": {"nested": {"too": "deep"}}},
        {"impression": ["i"] * 30},
        {"itemId": "i-\ud800"},
        {"eventTyp": "click"},
        {"sessionId": None, "userId": None},
    ]
)


@st.composite
def malformed_payloads(draw: st.DrawFn) -> bytes:
    """One payload (Kinesis data / SQS body) that must be rejected."""
    kind = draw(st.sampled_from(["bytes", "text", "not_an_object", "unknown_fields", "broken_event", "kpl"]))
    if kind == "bytes":
        raw = draw(st.binary(min_size=1, max_size=40))
        return raw if not raw.startswith(KPL_MAGIC) else b"x" + raw
    if kind == "text":
        text = draw(st.text(min_size=1, max_size=40))
        try:
            json.loads(text)
        except ValueError:
            return text.encode("utf-8", "surrogatepass")
        return b"not json: " + text.encode("utf-8", "surrogatepass")
    if kind == "not_an_object":
        value = draw(json_scalars | st.lists(json_scalars, min_size=1, max_size=3))
        return json.dumps(value).encode()
    if kind == "unknown_fields":
        value = draw(st.dictionaries(unknown_keys, json_values, min_size=1, max_size=4))
        return json.dumps(value).encode()
    if kind == "broken_event":
        broken = {**VALID["events"], **draw(broken_fields)}
        if "eventTyp" in broken:
            broken.pop("eventType")
        return json.dumps({k: v for k, v in broken.items() if v is not None}, allow_nan=True).encode()
    return KPL_MAGIC + draw(st.binary(min_size=0, max_size=40))


batches = st.lists(st.tuples(st.booleans(), malformed_payloads()), min_size=1, max_size=8)
"""(valid?, malformed payload) per position: a valid event where the flag is set, else the malformed payload."""


@pytest.fixture
def stack(moto_env: str, emulator: EmulatorHandle, monkeypatch: pytest.MonkeyPatch) -> Stack:
    return build_stack(emulator, monkeypatch)


def _payloads(batch: list[tuple[bool, bytes]]) -> tuple[list[bytes], dict[int, str]]:
    payloads: list[bytes] = []
    valid: dict[int, str] = {}
    for position, (is_valid, malformed) in enumerate(batch):
        if is_valid:
            valid[position] = f"valid-{position}"
            payloads.append(json.dumps(VALID["events"] | {"itemId": valid[position]}).encode())
        else:
            payloads.append(malformed)
    return payloads, valid


def _check(stack: Stack, response: Any, valid: dict[int, str], malformed: set[str], key: str) -> None:
    # THEN nothing is reported failed: every record ended delivered or set aside
    assert response == {"batchItemFailures": []}
    # THEN every valid neighbour is stored, and nothing else
    assert sorted(e["itemId"] for e in stack.emulator.elements("events")) == sorted(valid.values())
    # THEN every malformed payload reached the rejects queue with a code and a reason, and no valid one did
    rejects = stack.rejects()
    rejected_items = {r["source"][key] for r in rejects}
    assert rejected_items == malformed
    for reject in rejects:
        assert CODE.match(reject["code"]), reject
        assert len(reject["reason"]) > 10, reject


@settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(batch=batches)
def test_kinesis_malformed_records_are_rejected_and_neighbours_delivered(
    stack: Stack, batch: list[tuple[bool, bytes]]
) -> None:
    # GIVEN a Kinesis batch mixing valid events and malformed payloads
    stack.emulator.reset()
    stack.rejects()
    handler = stack.configure("events")
    payloads, valid = _payloads(batch)
    event = f.kinesis_event(payloads)
    sequence_numbers = [r["kinesis"]["sequenceNumber"] for r in event["Records"]]
    malformed = {sequence_numbers[p] for p in range(len(payloads)) if p not in valid}

    # WHEN handled (it must not raise)
    response = handler(event, f.FakeLambdaContext())

    # THEN
    _check(stack, response, valid, malformed, "sequenceNumber")


@settings(
    max_examples=20,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(batch=batches)
def test_sqs_malformed_bodies_are_rejected_and_neighbours_delivered(
    stack: Stack, batch: list[tuple[bool, bytes]]
) -> None:
    # GIVEN an SQS batch mixing valid events and malformed bodies (SQS bodies are text: bytes decoded leniently)
    stack.emulator.reset()
    stack.rejects()
    handler = stack.configure("events")
    payloads, valid = _payloads(batch)
    messages = [f.sqs_message(p.decode("utf-8", "replace"), f"m-{n}") for n, p in enumerate(payloads)]
    malformed = {f"m-{p}" for p in range(len(payloads)) if p not in valid}

    # WHEN handled (it must not raise)
    response = handler(f.sqs_event(messages), f.FakeLambdaContext())

    # THEN
    _check(stack, response, valid, malformed, "messageId")
