"""Delivery against the Personalize Events emulator over loopback HTTP, with an unmodified boto3 client.

Assertions are on what the emulator stored and answered, and on the delivery report.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import replace
from pathlib import Path
from typing import Any

import boto3
import pytest

from emulator.config import DEFAULT_ACTION_TRACKING_ID, DEFAULT_DATASET_ARNS, DEFAULT_TRACKING_ID
from emulator.testing import EmulatorHandle
from personalize_ingest.config import Settings
from personalize_ingest.deadline import Deadline
from personalize_ingest.delivery import MAX_EXTRA_ROUNDS, Deliverer
from personalize_ingest.entities import ACTION_INTERACTIONS, EVENTS, ITEMS, USERS, Entity
from personalize_ingest.latency import LATENCY_HEADROOM, ServiceLatency
from personalize_ingest.model import Prepared, Record, SourceRef
from tests.support.factories import FakeLambdaContext

STREAM_ARN = "arn:aws:kinesis:us-east-1:123456789012:stream/interactions"
SENT_AT = 1_764_400_000.0
FORBIDDEN_PROPERTIES = json.dumps({"userId": "not allowed inside properties"})


def settings_for(entity: Entity, target: str, **overrides: object) -> Settings:
    settings = Settings(
        entity=entity,
        target=target,
        rejects_queue_url=None,
        max_concurrent_calls=8,
        max_attempts=4,
        calls_per_second=entity.default_calls_per_second,
        deadline_margin_ms=5_000,
        default_event_type=None,
    )
    return replace(settings, **overrides)  # type: ignore[arg-type]


def deliverer(settings: Settings, remaining_ms: int = 120_000, client: Any = None) -> Deliverer:
    """A deliverer for an invocation with ``remaining_ms`` left (``client``: default, the container's own)."""
    deadline = Deadline(FakeLambdaContext(remaining_ms), settings.deadline_margin_ms, ServiceLatency())
    return Deliverer(settings, deadline, client)


def _record(position: int) -> Record:
    sequence = f"{49_590_000_000 + position}"
    return Record(
        item_id=sequence,
        source=SourceRef("aws:kinesis", arn=STREAM_ARN, sequence_number=sequence),
        value={},
        arrival_time=SENT_AT,
    )


def event(position: int, session_id: str, user_id: str | None = None, **element: object) -> Prepared:
    """An events record whose eventId names its source position (``e-<position>``)."""
    body: dict[str, object] = {
        "eventId": f"e-{position}",
        "eventType": "click",
        "itemId": f"i-{position}",
        "sentAt": SENT_AT,
    }
    body.update(element)
    return Prepared(_record(position), body, session_id=session_id, user_id=user_id)


def item(position: int, item_id: str, **element: object) -> Prepared:
    body: dict[str, object] = {"itemId": item_id, "properties": json.dumps({"version": str(position)})}
    body.update(element)
    return Prepared(_record(position), body, entity_id=item_id)


def event_ids(prepared: list[Prepared]) -> list[str]:
    return sorted(p.element["eventId"] for p in prepared)


def test_events_are_stored_once_in_calls_of_one_session_and_in_source_order(emulator: EmulatorHandle) -> None:
    # GIVEN 25 events of three sessions, interleaved (session s-0 has 9, s-1 has 8, s-2 has 8)
    prepared = [event(i, f"s-{i % 3}", f"u-{i % 3}") for i in range(25)]
    sessions = {f"e-{i}": f"s-{i % 3}" for i in range(25)}

    # WHEN they are delivered
    report = deliverer(settings_for(EVENTS, DEFAULT_TRACKING_ID)).deliver(prepared)

    # THEN every record is delivered, and stored exactly once
    assert event_ids(report.delivered) == sorted(sessions)
    assert (report.rejected, report.failed, report.superseded) == ([], [], [])
    stored = emulator.records("events")
    assert sorted(row["element"]["eventId"] for row in stored) == sorted(sessions)
    assert not any(row["duplicate"] for row in stored)
    # THEN every call carried at most 10 events of one session, under that session's id
    calls = emulator.calls("PutEvents")
    assert all(0 < call["elements"] <= 10 and call["status"] == 200 for call in calls)
    by_request: dict[str, set[str]] = defaultdict(set)
    for row in stored:
        assert row["request"]["sessionId"] == sessions[row["element"]["eventId"]]
        assert row["request"]["userId"] == sessions[row["element"]["eventId"]].replace("s-", "u-")
        by_request[row["requestId"]].add(row["request"]["sessionId"])
    assert all(len(session_ids) == 1 for session_ids in by_request.values())
    # THEN within a session, the service received the events in source order
    for session in ("s-0", "s-1", "s-2"):
        received = [row["element"]["eventId"] for row in stored if row["request"]["sessionId"] == session]
        assert received == [f"e-{i}" for i in range(25) if f"s-{i % 3}" == session]
    # THEN the report counts the calls the emulator answered
    assert report.api_calls == len(calls) == 3
    assert (report.retries, report.throttled_calls) == (0, 0)


def test_a_long_session_goes_in_order_over_several_calls(emulator: EmulatorHandle) -> None:
    # GIVEN 35 events of one session
    prepared = [event(i, "s-long", "u-1") for i in range(35)]

    # WHEN
    report = deliverer(settings_for(EVENTS, DEFAULT_TRACKING_ID)).deliver(prepared)

    # THEN four calls (10, 10, 10, 5), received one after another in source order
    assert len(report.delivered) == 35
    assert [call["elements"] for call in emulator.calls("PutEvents")] == [10, 10, 10, 5]
    assert [row["element"]["eventId"] for row in emulator.records("events")] == [f"e-{i}" for i in range(35)]


def test_only_the_latest_version_of_an_item_is_sent(emulator: EmulatorHandle) -> None:
    # GIVEN three versions of item "a" and one of "b"
    prepared = [item(0, "a"), item(1, "b"), item(2, "a"), item(3, "a")]

    # WHEN
    report = deliverer(settings_for(ITEMS, DEFAULT_DATASET_ARNS["ITEMS"])).deliver(prepared)

    # THEN the emulator holds "b" and version 3 of "a"; the older versions are reported superseded
    stored = {
        row["element"]["itemId"]: json.loads(row["element"]["properties"]) for row in emulator.records("items")
    }
    assert stored == {"a": {"version": "3"}, "b": {"version": "1"}}
    assert sorted(p.element["properties"] for p in report.superseded) == [
        json.dumps({"version": "0"}),
        json.dumps({"version": "2"}),
    ]
    assert len(report.delivered) == 2
    assert (report.rejected, report.failed) == ([], [])


def test_a_bad_record_among_good_ones_is_isolated_and_rejected(emulator: EmulatorHandle) -> None:
    # GIVEN 10 events of one session, the 7th refused by the service (forbidden key inside properties),
    # and 5 good events of another session
    prepared = [event(i, "s-1", "u-1") for i in range(10)] + [event(10 + i, "s-2", "u-2") for i in range(5)]
    prepared[6].element["properties"] = FORBIDDEN_PROPERTIES

    # WHEN
    report = deliverer(settings_for(EVENTS, DEFAULT_TRACKING_ID)).deliver(prepared)

    # THEN the bad record alone is rejected, with the service's message, and the 14 others are stored once
    assert [(p.element["eventId"], r.code) for p, r in report.rejected] == [("e-6", "service_rejected")]
    assert "InvalidInputException" in report.rejected[0][1].reason
    assert "properties" in report.rejected[0][1].reason
    good = sorted(f"e-{i}" for i in range(15) if i != 6)
    assert event_ids(report.delivered) == good
    assert report.failed == []
    stored = emulator.records("events")
    assert sorted(row["element"]["eventId"] for row in stored) == good
    # THEN session s-1 still reached the service in source order despite the splitting
    assert [row["element"]["eventId"] for row in stored if row["request"]["sessionId"] == "s-1"] == [
        f"e-{i}" for i in range(10) if i != 6
    ]
    refused = [call for call in emulator.calls("PutEvents") if call["errorCode"] == "InvalidInputException"]
    assert refused and all(call["status"] == 400 for call in refused)
    assert report.api_calls == len(emulator.calls("PutEvents"))


def test_a_record_refused_alone_is_rejected_when_an_earlier_chunk_was_accepted(emulator: EmulatorHandle) -> None:
    # GIVEN one invocation delivering an S3 file in two chunks: the first good, the second a single bad item
    delivery = deliverer(settings_for(ITEMS, DEFAULT_DATASET_ARNS["ITEMS"]))
    first = delivery.deliver([item(0, "good")])

    # WHEN the second chunk is delivered by the same deliverer
    second = delivery.deliver([item(1, "bad", properties="not a JSON object")])

    # THEN the target accepted something in this invocation, so the refused record is rejected
    assert len(first.delivered) == 1
    assert [(p.element["itemId"], r.code) for p, r in second.rejected] == [("bad", "service_rejected")]
    assert second.failed == []
    assert [row["element"]["itemId"] for row in emulator.records("items")] == ["good"]


def test_records_refused_while_nothing_is_accepted_fail_instead_of_being_rejected(
    emulator: EmulatorHandle,
) -> None:
    # GIVEN 3 action interactions the service refuses, and nothing accepted in this invocation
    prepared = [
        Prepared(
            _record(i),
            {
                "actionId": f"a-{i}",
                "sessionId": "s-1",
                "eventType": "Taken",
                "timestamp": SENT_AT,
                "properties": FORBIDDEN_PROPERTIES,
            },
        )
        for i in range(3)
    ]

    # WHEN
    report = deliverer(settings_for(ACTION_INTERACTIONS, DEFAULT_ACTION_TRACKING_ID)).deliver(prepared)

    # THEN nothing goes to the rejects (it may be the configuration): all three are failed, after being isolated
    assert report.rejected == []
    assert sorted(p.element["actionId"] for p, _ in report.failed) == ["a-0", "a-1", "a-2"]
    assert all("configuration problem" in reason for _, reason in report.failed)
    assert emulator.records("action_interactions") == []
    assert {call["elements"] for call in emulator.calls("PutActionInteractions")} == {1, 2, 3}


def test_a_target_that_refuses_everything_is_not_split_forever(emulator: EmulatorHandle) -> None:
    # GIVEN 200 events in 200 sessions, every one refused by the service
    prepared = [event(i, f"s-{i}", properties=FORBIDDEN_PROPERTIES) for i in range(200)]

    # WHEN
    report = deliverer(settings_for(EVENTS, DEFAULT_TRACKING_ID)).deliver(prepared)

    # THEN all are failed, none rejected, and delivery stopped long before one call per record
    assert report.rejected == []
    assert len(report.failed) == 200
    assert len(emulator.calls("PutEvents")) < 100
    assert report.api_calls == len(emulator.calls("PutEvents"))


@pytest.mark.parametrize("call_path", ["direct", "botocore"])
def test_each_answered_attempt_feeds_the_latency_tracker_and_only_successes_set_what_a_call_needs(
    emulator: EmulatorHandle, call_path: str
) -> None:
    # GIVEN a service that takes 100 ms per answer, and two cold trackers
    emulator.set_faults(latency={"distribution": "fixed", "ms": 100})
    settings = settings_for(ITEMS, DEFAULT_DATASET_ARNS["ITEMS"], call_path=call_path)
    accepting, refusing = ServiceLatency(), ServiceLatency()

    # WHEN one invocation's call is accepted and another's is refused
    accepted = Deliverer(settings, Deadline(FakeLambdaContext(120_000), 5_000, accepting)).deliver([item(0, "a")])
    refused = Deliverer(settings, Deadline(FakeLambdaContext(120_000), 5_000, refusing)).deliver(
        [item(1, "bad", properties="not a JSON object")]
    )

    # THEN the accepted attempt says what a call needs (100 ms at least, with headroom) and moves the average
    assert len(accepted.delivered) == 1
    assert accepting.need_s() >= 0.1 * LATENCY_HEADROOM
    assert accepting.seconds_per_call() >= 0.1
    # THEN the refused one moves only the average: a refusal is no measure of what a stored call needs
    assert len(refused.failed) == 1
    assert refusing.need_s() == 0.0
    assert refusing.seconds_per_call() >= 0.1


def test_an_unknown_tracking_id_fails_everything_and_stops_sending(emulator: EmulatorHandle) -> None:
    # GIVEN a tracking id the service does not know, and events of 30 sessions
    prepared = [event(i, f"s-{i}", f"u-{i}") for i in range(30)]
    settings = settings_for(EVENTS, "00000000-0000-4000-8000-000000000000", max_concurrent_calls=2)

    delivery = deliverer(settings)

    # WHEN
    report = delivery.deliver(prepared)

    # THEN every record is failed (for a retry once fixed), nothing rejected, nothing stored
    assert len(report.failed) == 30
    assert (report.rejected, report.delivered) == ([], [])
    assert all("ResourceNotFoundException" in reason for _, reason in report.failed)
    assert emulator.records("events") == []
    # THEN it stopped calling the target after the first answers instead of trying all 30 sessions
    assert 0 < len(emulator.calls("PutEvents")) < 30
    assert delivery.stop_reason is not None and "ResourceNotFoundException" in delivery.stop_reason

    # WHEN the same invocation delivers another chunk THEN nothing more is sent
    calls_before = len(emulator.calls())
    again = delivery.deliver([event(99, "s-99", "u-99")])
    assert len(again.failed) == 1 and len(emulator.calls()) == calls_before


def test_an_unknown_dataset_fails_everything_and_nothing_is_rejected(emulator: EmulatorHandle) -> None:
    # GIVEN a dataset ARN of a dataset group that does not exist
    missing = "arn:aws:personalize:us-east-1:123456789012:dataset/missing/USERS"
    prepared = [Prepared(_record(i), {"userId": f"u-{i}"}, entity_id=f"u-{i}") for i in range(25)]

    # WHEN
    report = deliverer(settings_for(USERS, missing, max_concurrent_calls=1)).deliver(prepared)

    # THEN
    assert len(report.failed) == 25
    assert (report.rejected, report.delivered) == ([], [])
    assert all(missing in reason for _, reason in report.failed)
    assert [call["errorCode"] for call in emulator.calls("PutUsers")] == ["ResourceNotFoundException"]


def test_credentials_the_service_refuses_fail_everything_and_stop_sending(emulator: EmulatorHandle) -> None:
    # GIVEN a client whose secret key is wrong (the signature does not match), handed in like any collaborator
    client = boto3.client("personalize-events", aws_access_key_id="testing", aws_secret_access_key="wrong")
    settings = settings_for(ITEMS, DEFAULT_DATASET_ARNS["ITEMS"], max_concurrent_calls=1)
    delivery = deliverer(settings, client=client)
    prepared = [item(i, f"i-{i}") for i in range(25)]

    # WHEN
    report = delivery.deliver(prepared)

    # THEN one call was answered 403, every record is failed (not rejected) and nothing more was sent
    calls = emulator.calls("PutItems")
    assert [call["status"] for call in calls] == [403]
    assert len(report.failed) == 25 and report.rejected == []
    assert delivery.stop_reason is not None and calls[0]["errorCode"] in delivery.stop_reason
    assert all(calls[0]["errorCode"] in reason for _, reason in report.failed)
    assert emulator.records("items") == []


def test_a_slow_service_times_out_by_the_deadline_not_after_botocore_60_s(emulator: EmulatorHandle) -> None:
    # GIVEN the service answers after 1.5 s, a 1 s margin (1 s per attempt) and 2 s of budget
    emulator.set_faults(latency_ms=1_500)
    settings = settings_for(EVENTS, DEFAULT_TRACKING_ID, max_attempts=2, deadline_margin_ms=1_000)
    prepared = [event(i, "s-1", "u-1") for i in range(3)]

    # WHEN
    report = deliverer(settings, remaining_ms=3_000).deliver(prepared)

    # THEN both attempts of every round timed out on the client (the clock stands still, so every later round
    # finds the same budget) and the records are failed with the reason
    assert len(report.failed) == 3
    assert all("timeout" in reason.lower() and "2 attempt(s)" in reason for _, reason in report.failed)
    assert report.rounds == 1 + MAX_EXTRA_ROUNDS
    assert (report.api_calls, report.retries) == (2 * report.rounds, report.rounds)
    # NOTE: the emulator stores a request before its (late) answer; eventIds make the re-sent copy a duplicate.
    sends = 2 * report.rounds
    assert [row["duplicate"] for row in emulator.records("events")] == [False] * 3 + [True] * 3 * (sends - 1)


def test_throttled_calls_are_retried_until_accepted(emulator: EmulatorHandle) -> None:
    # GIVEN a PutEvents quota of 5 calls/s and 8 sessions sent at once (no client-side rate limit)
    emulator.set_quota("PutEvents", 5)
    prepared = [event(i, f"s-{i}", f"u-{i}") for i in range(8)]
    settings = settings_for(EVENTS, DEFAULT_TRACKING_ID, calls_per_second=0, max_attempts=8)

    # WHEN
    report = deliverer(settings).deliver(prepared)

    # THEN the service throttled some attempts, botocore retried them, and every event is stored once
    calls = emulator.calls("PutEvents")
    throttled = [call for call in calls if call["errorCode"] == "ThrottlingException"]
    assert throttled
    assert event_ids(report.delivered) == sorted(f"e-{i}" for i in range(8))
    assert len(emulator.records("events")) == 8
    # THEN the report counts attempts, throttled attempts and retries as the emulator saw them
    assert report.api_calls == len(calls)
    assert report.throttled_calls == len(throttled)
    assert report.retries == len(calls) - 8


def test_server_errors_are_retried(emulator: EmulatorHandle) -> None:
    # GIVEN half of all answers are 500/503 (a fixed seed, and one session so the draws happen in order)
    emulator.set_faults(error_rate=0.5, seed=11)
    prepared = [event(i, "s-1", "u-1") for i in range(30)]
    settings = settings_for(EVENTS, DEFAULT_TRACKING_ID, max_attempts=8)

    # WHEN
    report = deliverer(settings).deliver(prepared)

    # THEN 5xx answers were retried and every event is stored once, in order
    calls = emulator.calls("PutEvents")
    errors = [call for call in calls if call["status"] >= 500]
    assert errors
    assert len(report.delivered) == 30
    assert [row["element"]["eventId"] for row in emulator.records("events")] == [f"e-{i}" for i in range(30)]
    assert report.retries == len(errors) == len(calls) - 3
    assert report.api_calls == len(calls)


def test_server_errors_that_persist_fail_the_records(emulator: EmulatorHandle) -> None:
    # GIVEN every answer is a 5xx and two attempts per call
    emulator.set_faults(error_rate=1.0)
    prepared = [event(i, "s-1", "u-1") for i in range(12)]
    settings = settings_for(EVENTS, DEFAULT_TRACKING_ID, max_attempts=2)

    # WHEN
    report = deliverer(settings).deliver(prepared)

    # THEN the session's first call was tried twice in every round (the second pass included) and failed; its
    # second call was never sent, as it would overtake the first
    calls = emulator.calls("PutEvents")
    assert report.rounds == 1 + MAX_EXTRA_ROUNDS
    assert [call["elements"] for call in calls] == [10] * 2 * report.rounds
    assert (report.api_calls, report.retries) == (len(calls), report.rounds)
    assert len(report.failed) == 12 and report.rejected == []
    reasons = {p.element["eventId"]: reason for p, reason in report.failed}
    assert all("2 attempt(s)" in reasons[f"e-{i}"] for i in range(10))
    assert all("an earlier call of its session failed" in reasons[f"e-{i}"] for i in (10, 11))


def test_nothing_is_sent_once_the_deadline_margin_is_reached(emulator: EmulatorHandle) -> None:
    # GIVEN 4 s left and a 5 s margin
    prepared = [event(i, f"s-{i % 2}", "u-1") for i in range(12)]
    settings = settings_for(EVENTS, DEFAULT_TRACKING_ID)

    # WHEN
    report = deliverer(settings, remaining_ms=4_000).deliver(prepared)

    # THEN no call was made and every record is failed with the reason
    assert emulator.calls() == []
    assert len(report.failed) == 12
    assert all("less than 5000 ms left" in reason for _, reason in report.failed)
    assert report.api_calls == 0


def test_calls_that_would_wait_past_the_margin_for_the_rate_limit_are_not_sent(emulator: EmulatorHandle) -> None:
    # GIVEN 1 s of budget, a rate limit of one call per 4 s (fresh bucket: one call may go now), and 3 calls
    target = DEFAULT_DATASET_ARNS["ITEMS"]
    settings = settings_for(ITEMS, target, calls_per_second=0.25, max_concurrent_calls=1)
    prepared = [item(i, f"i-{i}") for i in range(30)]

    # WHEN
    report = deliverer(settings, remaining_ms=6_000).deliver(prepared)

    # THEN the first call went; the others would have had to wait past the margin, so they failed unsent
    assert len(report.delivered) == 10
    assert len(report.failed) == 20
    assert all("rate limit" in reason for _, reason in report.failed)
    assert len(emulator.records("items")) == 10
    assert len(emulator.calls("PutItems")) == 1


def test_an_empty_delivery_makes_no_call(emulator: EmulatorHandle) -> None:
    report = deliverer(settings_for(EVENTS, DEFAULT_TRACKING_ID)).deliver([])

    assert report.api_calls == 0
    assert emulator.calls() == []


@pytest.mark.parametrize("concurrency", [1, 8])
def test_every_record_ends_in_exactly_one_list(emulator: EmulatorHandle, concurrency: int) -> None:
    # GIVEN a mix: good events of many sessions and a few refused ones
    prepared = [event(i, f"s-{i % 7}", f"u-{i % 7}") for i in range(60)]
    for index in (3, 17, 44):
        prepared[index].element["properties"] = FORBIDDEN_PROPERTIES
    settings = settings_for(EVENTS, DEFAULT_TRACKING_ID, max_concurrent_calls=concurrency)

    # WHEN
    report = deliverer(settings).deliver(prepared)

    # THEN 57 delivered, 3 rejected, and together they are exactly the input
    assert event_ids([p for p, _ in report.rejected]) == ["e-17", "e-3", "e-44"]
    assert len(report.delivered) == 57
    everything = (
        report.delivered + report.superseded + [p for p, _ in report.rejected] + [p for p, _ in report.failed]
    )
    assert sorted(id(p) for p in everything) == sorted(id(p) for p in prepared)
    assert len(emulator.records("events")) == 57


def test_missing_credentials_fail_everything_without_a_call(
    emulator: EmulatorHandle, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # GIVEN a client of a session that finds no credentials anywhere (no variables, files or instance metadata)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    client = boto3.session.Session().client("personalize-events")
    settings = settings_for(ITEMS, DEFAULT_DATASET_ARNS["ITEMS"], max_concurrent_calls=1)
    delivery = deliverer(settings, client=client)

    # WHEN 25 items are delivered
    report = delivery.deliver([item(i, f"i-{i}") for i in range(25)])

    # THEN nothing reached the service, every record failed (not rejected) and the target is no longer tried
    assert emulator.calls() == []
    assert len(report.failed) == 25 and (report.rejected, report.delivered) == ([], [])
    assert all("cannot be signed" in reason for _, reason in report.failed)
    assert delivery.stop_reason is not None
    assert report.api_calls == 0


def test_an_unexpected_error_fails_only_the_records_of_its_call(emulator: EmulatorHandle) -> None:
    # GIVEN 10 good items and one whose element cannot be serialised (a defect upstream: a set is not JSON)
    prepared = [item(i, f"i-{i}") for i in range(10)]
    prepared.append(Prepared(_record(10), {"itemId": "i-10", "properties": {"a", "b"}}, entity_id="i-10"))
    settings = settings_for(ITEMS, DEFAULT_DATASET_ARNS["ITEMS"], max_concurrent_calls=1)

    # WHEN delivered
    report = deliverer(settings).deliver(prepared)

    # THEN the good call went through; the broken one failed (for a retry) without crashing the invocation
    assert sorted(p.element["itemId"] for p in report.delivered) == sorted(f"i-{i}" for i in range(10))
    ((failed, reason),) = report.failed
    assert failed is prepared[10]
    assert "unexpected TypeError" in reason
    assert report.rejected == []
    assert len(emulator.records("items")) == 10


def test_a_record_botocore_refuses_before_sending_is_rejected_like_a_service_refusal(
    emulator: EmulatorHandle,
) -> None:
    # GIVEN a client that validates parameters, a good item accepted first, then an element without itemId
    client = boto3.client("personalize-events")
    settings = settings_for(ITEMS, DEFAULT_DATASET_ARNS["ITEMS"], max_concurrent_calls=1)
    delivery = deliverer(settings, client=client)
    accepted = delivery.deliver([item(0, "good")])

    # WHEN the bad element is delivered
    report = delivery.deliver([Prepared(_record(1), {"properties": "{}"}, entity_id="no-id")])

    # THEN it never reached the service and is rejected with botocore's reason
    assert len(accepted.delivered) == 1
    ((_, rejection),) = report.rejected
    assert rejection.code == "service_rejected"
    assert "itemId" in rejection.reason
    assert [call["status"] for call in emulator.calls("PutItems")] == [200]


def test_a_retry_is_not_started_once_the_margin_is_reached(emulator: EmulatorHandle) -> None:
    # GIVEN every answer a 5xx, and time that runs out as soon as the service has seen the first attempt
    emulator.set_faults(error_rate=1.0)

    clock = FakeLambdaContext(clock=lambda: 120_000 if not emulator.calls() else 4_000)
    settings = settings_for(EVENTS, DEFAULT_TRACKING_ID, max_attempts=4)
    delivery = Deliverer(settings, Deadline(clock, settings.deadline_margin_ms))

    # WHEN one call's worth of events is delivered
    report = delivery.deliver([event(i, "s-1", "u-1") for i in range(3)])

    # THEN the first attempt went, botocore's retry did not start, and the records failed naming the deadline
    assert len(emulator.calls("PutEvents")) == 1
    assert (report.api_calls, report.retries) == (1, 0)
    assert len(report.failed) == 3
    assert all("not completed" in reason and "less than 5000 ms left" in reason for _, reason in report.failed)


def test_older_versions_fail_with_the_latest_when_it_fails(emulator: EmulatorHandle) -> None:
    # GIVEN two versions of item "a" and one of "b", for a dataset that does not exist
    missing = "arn:aws:personalize:us-east-1:123456789012:dataset/missing/ITEMS"
    prepared = [item(0, "a"), item(1, "b"), item(2, "a")]

    # WHEN delivered
    report = deliverer(settings_for(ITEMS, missing)).deliver(prepared)

    # THEN no record is counted as handled: the older "a" failed together with the version that replaced it
    assert report.superseded == [] and report.delivered == []
    assert sorted(id(p) for p, _ in report.failed) == sorted(id(p) for p in prepared)
    (older_reason,) = [reason for p, reason in report.failed if p is prepared[0]]
    assert older_reason.startswith("superseded by a later record of the same id that failed")


def test_older_versions_are_rejected_with_the_latest_when_the_service_refuses_it(emulator: EmulatorHandle) -> None:
    # GIVEN a good item accepted first, then two versions of "a", the later one refused by the service
    delivery = deliverer(settings_for(ITEMS, DEFAULT_DATASET_ARNS["ITEMS"]))
    delivery.deliver([item(0, "good")])
    older, newer = item(1, "a"), item(2, "a", properties="not a JSON object")

    # WHEN delivered
    report = delivery.deliver([older, newer])

    # THEN neither version is stored: the latest is rejected, and the older one shares its fate (it is not
    # counted as delivered on the strength of a call that stored nothing)
    assert [p for p, _ in report.rejected] == [older, newer]
    (older_rejection, newer_rejection) = (rejection for _, rejection in report.rejected)
    assert older_rejection.code == newer_rejection.code == "service_rejected"
    assert older_rejection.reason.startswith("superseded by a later record of the same id that was refused")
    assert report.superseded == [] and report.failed == [] and report.delivered == []
    assert [row["element"]["itemId"] for row in emulator.records("items")] == ["good"]


@pytest.mark.parametrize("call_path", ["direct", "botocore"])
def test_both_call_paths_store_the_same_elements(emulator: EmulatorHandle, call_path: str) -> None:
    # GIVEN two sessions' events and a function configured for one call path
    prepared = [event(i, f"s-{i % 2}", f"u-{i % 2}", properties='{"genre":"Comédie"}') for i in range(14)]
    settings = settings_for(EVENTS, DEFAULT_TRACKING_ID, call_path=call_path)

    # WHEN delivered
    report = deliverer(settings).deliver(prepared)

    # THEN every event was stored as the element sent, in calls of one session (timestamps as botocore writes them)
    assert event_ids(report.delivered) == event_ids(prepared)
    stored = {row["element"]["eventId"]: row for row in emulator.records("events")}
    assert len(stored) == 14
    assert all(row["element"]["sentAt"] == SENT_AT for row in stored.values())
    assert {row["request"]["sessionId"] for row in stored.values()} == {"s-0", "s-1"}
    assert all(json.loads(row["element"]["properties"]) == {"genre": "Comédie"} for row in stored.values())
    assert len(emulator.calls("PutEvents")) == 2


@pytest.mark.parametrize("call_path", ["direct", "botocore"])
def test_no_attempt_starts_after_the_margin_while_the_service_throttles(
    emulator: EmulatorHandle, call_path: str
) -> None:
    # GIVEN a rate-limited target that throttles every call, and time that falls below the margin once the service
    # has seen three attempts (issue 10: botocore's adaptive limiter used to wait, then send, after the margin)
    emulator.set_faults(throttle_rate=1.0)
    clock = FakeLambdaContext(clock=lambda: 120_000 if len(emulator.calls()) < 3 else 4_000)
    settings = settings_for(ITEMS, DEFAULT_DATASET_ARNS["ITEMS"], max_concurrent_calls=1, call_path=call_path)
    delivery = Deliverer(settings, Deadline(clock, settings.deadline_margin_ms))

    # WHEN three calls' worth of items are delivered
    report = delivery.deliver([item(i, f"i-{i}") for i in range(30)])

    # THEN exactly three attempts reached the service, and every record failed naming the margin
    assert len(emulator.calls("PutItems")) == 3
    assert report.api_calls == 3 and report.throttled_calls == 3
    assert len(report.failed) == 30 and report.delivered == []
    assert all("5000 ms" in reason for _, reason in report.failed)
