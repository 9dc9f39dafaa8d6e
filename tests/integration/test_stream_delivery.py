"""Streams under stress, through the handler: Kinesis checkpoint order, later rounds, empty batches, bad text.

Assertions are on what the emulator stored and answered, the rejects queue and the batch response.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest

from emulator.testing import EmulatorHandle
from tests.integration.test_handlers import VALID, Stack, build_stack
from tests.support import factories as f


@pytest.fixture
def stack(moto_env: str, emulator: EmulatorHandle, monkeypatch: pytest.MonkeyPatch) -> Stack:
    return build_stack(emulator, monkeypatch)


def session_events(count: int) -> list[dict[str, Any]]:
    """``count`` events of ``count`` sessions (one call each), item ids naming their position."""
    return [
        VALID["events"] | {"sessionId": f"s-{n}", "userId": f"u-{n}", "itemId": f"i-{n}"} for n in range(count)
    ]


def with_a_long_session_last(short: int, long: int) -> list[dict[str, Any]]:
    """``short`` one-event sessions, then one session of ``long`` events: the longest lane holds the latest
    records, so a schedule that started long lanes first would not deliver a prefix of the shard."""
    tail = [
        VALID["events"] | {"sessionId": "s-long", "userId": "u-long", "itemId": f"i-{short + n}"}
        for n in range(long)
    ]
    return session_events(short) + tail


def test_an_empty_batch_gets_an_empty_response_without_calls(stack: Stack) -> None:
    # GIVEN the events function
    handler = stack.configure("events")

    # WHEN invoked with an empty Records list (a console test event, a replay tool)
    response = handler({"Records": []}, f.FakeLambdaContext())

    # THEN nothing failed and nothing was called
    assert response == {"batchItemFailures": []}
    assert stack.emulator.calls() == []


def test_kinesis_sends_the_earliest_records_first_and_nothing_after_the_first_one_not_sent(stack: Stack) -> None:
    # GIVEN 12 one-event sessions then a 30-event session, 3 delivery threads, and time that runs out once the
    # service saw 6 calls
    handler = stack.configure("events", MAX_CONCURRENT_CALLS="3", CALLS_PER_SECOND="0")
    event = f.kinesis_event(with_a_long_session_last(12, 30))
    emulator = stack.emulator
    context = f.FakeLambdaContext(clock=lambda: 120_000 if len(emulator.calls()) < 6 else 4_000)

    # WHEN handled
    response = handler(event, context)

    # THEN what was stored is a prefix of the shard: records 0..k-1, and nothing after
    stored = sorted(int(e["itemId"][2:]) for e in emulator.elements("events"))
    k = len(stored)
    assert 6 <= k < 12
    assert stored == list(range(k))
    # THEN the response names every record from k on, so Kinesis replays from the first record not stored
    sequence_numbers = [r["kinesis"]["sequenceNumber"] for r in event["Records"]]
    assert response == {"batchItemFailures": [{"itemIdentifier": s} for s in sequence_numbers[k:]]}


def test_a_slow_shard_moves_forward_on_every_retry(stack: Stack) -> None:
    # GIVEN a service answering in 150 ms, two delivery threads, invocations of 0.9 s before a 0.2 s margin, and
    # a batch of 10 one-event sessions followed by a 30-event session
    stack.emulator.set_faults(latency_ms=150)
    handler = stack.configure("events", MAX_CONCURRENT_CALLS="2", CALLS_PER_SECOND="0", DEADLINE_MARGIN_MS="200")
    records = f.kinesis_event(with_a_long_session_last(10, 30))["Records"]

    # WHEN Kinesis retries from the lowest reported sequence number until the batch is done
    prefixes: list[int] = []
    remaining = records
    for _ in range(40):
        started = _monotonic_ms()
        context = f.FakeLambdaContext(clock=lambda started=started: 900 - (_monotonic_ms() - started))
        response = handler({"Records": remaining}, context)
        failed = [failure["itemIdentifier"] for failure in response["batchItemFailures"]]
        prefixes.append(
            len(records) - len(remaining) + (len(remaining) if not failed else _index(remaining, failed))
        )
        if not failed:
            break
        remaining = remaining[_index(remaining, failed) :]

    # THEN every invocation checkpointed further than the one before, and the batch completed
    assert prefixes[-1] == 40
    assert len(prefixes) > 1
    assert all(later > earlier for earlier, later in itertools.pairwise(prefixes))
    stored = {e["itemId"] for e in stack.emulator.elements("events")}
    assert stored == {f"i-{n}" for n in range(40)}


def test_throttled_calls_get_a_second_pass_before_records_are_reported(stack: Stack) -> None:
    # GIVEN every PutEvents attempt throttled until 8 attempts were refused, one attempt per call
    stack.emulator.set_faults(throttle_rate=1.0, seed=1)
    handler = stack.configure("events", MAX_ATTEMPTS="1", CALLS_PER_SECOND="0", MAX_CONCURRENT_CALLS="2")
    event = f.kinesis_event(session_events(4))
    emulator = stack.emulator

    def clock() -> int:
        if len(emulator.calls()) >= 4 and emulator.faults()["throttleRate"] > 0:
            emulator.set_faults(throttle_rate=0.0)
        return 120_000

    # WHEN handled (the throttling stops after the first pass)
    response = handler(event, f.FakeLambdaContext(clock=clock))

    # THEN the later round delivered every record and nothing is reported
    assert response == {"batchItemFailures": []}
    calls = emulator.calls("PutEvents")
    assert [c["status"] for c in calls[:4]] == [400] * 4
    assert sorted(e["itemId"] for e in emulator.elements("events")) == [f"i-{n}" for n in range(4)]


def test_a_lone_surrogate_is_rejected_and_its_neighbours_delivered(stack: Stack) -> None:
    # GIVEN a Kinesis batch whose middle record carries half of a surrogate pair in its item id
    handler = stack.configure("events")
    bad = (
        '{"sessionId": "s-1", "userId": "u-1", "eventType": "click", "itemId": "i-\\ud800", "sentAt": 1764400000}'
    )
    event = f.kinesis_event([VALID["events"], bad, VALID["events"] | {"itemId": "i-10"}])

    # WHEN handled
    response = handler(event, f.FakeLambdaContext())

    # THEN the neighbours are stored, the bad record is set aside naming the field, and nothing failed
    assert response == {"batchItemFailures": []}
    assert sorted(e["itemId"] for e in stack.emulator.elements("events")) == ["i-10", "i-9"]
    (reject,) = stack.rejects()
    assert reject["code"] == "invalid_unicode"
    assert reject["reason"].startswith("itemId holds a lone UTF-16 surrogate")
    assert json.loads(json.dumps(reject["record"])) == reject["record"]


def _index(records: list[dict[str, Any]], failed: list[str]) -> int:
    sequence_numbers = [r["kinesis"]["sequenceNumber"] for r in records]
    return min(sequence_numbers.index(s) for s in failed)


def _monotonic_ms() -> int:
    import time

    return int(time.monotonic() * 1000)
