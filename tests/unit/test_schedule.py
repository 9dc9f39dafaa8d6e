"""The call schedule: earliest pending record first, sessions in order, the Kinesis cutoff, later rounds."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from personalize_ingest.batching import plan
from personalize_ingest.entities import EVENTS, ITEMS, Entity
from personalize_ingest.model import Prepared, Record, SourceRef
from personalize_ingest.schedule import SESSION_STOPPED, Schedule

STREAM_ARN = "arn:aws:kinesis:us-east-1:123456789012:stream/events"


def _record(position: int) -> Record:
    sequence = f"4959{position:08d}"
    return Record(sequence, SourceRef("aws:kinesis", arn=STREAM_ARN, sequence_number=sequence), {}, 0.0)


def event(position: int, session: str) -> Prepared:
    element = {"eventType": "click", "itemId": f"i-{position}", "sentAt": 1_764_400_000.0}
    return Prepared(_record(position), element, session_id=session, user_id=session)


def item(position: int) -> Prepared:
    return Prepared(_record(position), {"itemId": f"i-{position}", "properties": "{}"}, entity_id=f"i-{position}")


def schedule_of(prepared: list[Prepared], *, checkpointed: bool, entity: Entity = EVENTS) -> Schedule:
    positions = {id(p): index for index, p in enumerate(prepared)}
    return Schedule(plan(entity, prepared).batches, positions, checkpointed)


def position(prepared: Prepared) -> int:
    return int(prepared.record.item_id[4:])


def test_calls_are_handed_out_by_their_earliest_pending_record() -> None:
    # GIVEN three sessions: a (0..14, two calls), b (15), c (16)
    prepared = [event(i, "a") for i in range(15)] + [event(15, "b"), event(16, "c")]
    schedule = schedule_of(prepared, checkpointed=True)

    # WHEN calls are taken one at a time, each succeeding before the next is taken
    order = []
    while (taken := schedule.take()) is not None:
        lane, batch = taken
        order.append([position(p) for p in batch.prepared])
        schedule.succeeded(lane)

    # THEN a's first call (record 0) goes first; a's second call (record 10) goes before b (15) and c (16)
    assert order == [list(range(10)), list(range(10, 15)), [15], [16]]


def test_a_lane_has_one_call_in_flight_and_waits_for_it() -> None:
    # GIVEN one session of 25 events (three calls)
    schedule = schedule_of([event(i, "a") for i in range(25)], checkpointed=False)

    # WHEN its first call is taken and still running
    first = schedule.take()

    # THEN nothing else is ready; once it succeeded, the next call is
    assert first is not None and schedule.take() is None
    schedule.succeeded(first[0])
    second = schedule.take()
    assert second is not None and position(second[1].prepared[0]) == 10


def test_a_failed_call_stops_its_session_but_not_the_others() -> None:
    # GIVEN two sessions of 15 events each, not checkpointed (SQS)
    prepared = [event(i, "a") for i in range(15)] + [event(15 + i, "b") for i in range(15)]
    schedule = schedule_of(prepared, checkpointed=False)
    a_lane, a_first = schedule.take() or (None, None)
    b_lane, _ = schedule.take() or (None, None)
    assert a_lane is not None and a_first is not None and b_lane is not None

    # WHEN a's first call fails for good and b's succeeds
    schedule.failed_for_good(a_lane, a_first.prepared)
    schedule.succeeded(b_lane)

    # THEN a's second call is not sent (it would overtake the failed one); b goes on
    unsent = schedule.pop_unsent()
    assert [position(u.prepared) for u in unsent] == list(range(10, 15))
    assert all(u.reason == SESSION_STOPPED for u in unsent)
    taken = schedule.take()
    assert taken is not None and position(taken[1].prepared[0]) == 25


def test_on_a_checkpointed_source_nothing_after_the_earliest_failure_is_sent() -> None:
    # GIVEN 30 items (three independent calls: 0-9, 10-19, 20-29) on Kinesis
    schedule = schedule_of([item(i) for i in range(30)], checkpointed=True, entity=ITEMS)
    first, second = schedule.take(), schedule.take()
    assert first is not None and second is not None

    # WHEN the second call (10-19) fails for good while the first is in flight
    schedule.failed_for_good(second[0], second[1].prepared)

    # THEN the third call (20-29) is not sent, naming the earliest failed sequence number; the first goes on
    assert schedule.take() is None
    unsent = schedule.pop_unsent()
    assert [position(u.prepared) for u in unsent] == list(range(20, 30))
    assert all("sequence number 495900000010" in u.reason for u in unsent)
    assert schedule.cutoff_record is second[1].prepared[0]


def test_a_call_straddling_the_cutoff_sends_only_the_records_before_it() -> None:
    # GIVEN session a holds records 0-4 and 10-14, items of other sessions in between (Kinesis)
    prepared = [event(i, "a") for i in range(5)] + [event(i, f"s-{i}") for i in range(5, 10)]
    prepared += [event(i, "a") for i in range(10, 15)]
    schedule = schedule_of(prepared, checkpointed=True)
    taken = [schedule.take() for _ in range(6)]
    assert all(t is not None for t in taken)
    # (a's call holds 0-4 and 10-14; sessions s-5..s-9 hold one record each)

    # WHEN the call of record 7 fails for good before a's call is retried (a deferred it)
    lanes = {position(t[1].prepared[0]): t for t in taken if t is not None}
    a_lane, a_batch = lanes[0]
    schedule.defer(a_lane, a_batch.prepared, [(p, "throttled") for p in a_batch.prepared])
    schedule.failed_for_good(lanes[7][0], lanes[7][1].prepared)
    schedule.next_round()

    # THEN a's retry holds only 0-4; 10-14 are not sent
    retry = schedule.take()
    assert retry is not None and [position(p) for p in retry[1].prepared] == list(range(5))
    assert [position(u.prepared) for u in schedule.pop_unsent()] == list(range(10, 15))


def test_deferred_calls_come_back_in_a_later_round_and_fail_when_abandoned() -> None:
    # GIVEN one session with two calls, the first throttled to the end of botocore's attempts
    schedule = schedule_of([event(i, "a") for i in range(12)], checkpointed=False)
    lane, batch = schedule.take() or (None, None)
    assert lane is not None and batch is not None
    schedule.defer(lane, batch.prepared, [(p, "throttled") for p in batch.prepared])
    assert schedule.take() is None and schedule.has_deferred

    # WHEN a later round starts
    assert schedule.next_round() == 1
    again = schedule.take()

    # THEN the same records are offered again
    assert again is not None and again[1].prepared == batch.prepared

    # WHEN it is deferred again and then abandoned
    schedule.defer(again[0], again[1].prepared, [(p, "throttled again") for p in again[1].prepared])
    failures = schedule.abandon()

    # THEN its records fail with their last reason, and the session's second call is not sent
    assert [reason for _, reason in failures] == ["throttled again"] * 10
    assert [position(u.prepared) for u in schedule.pop_unsent()] == [10, 11]
    assert schedule.take() is None and not schedule.has_deferred


@settings(max_examples=200, deadline=None, derandomize=True)
@given(
    sessions=st.lists(st.integers(min_value=0, max_value=5), min_size=1, max_size=60),
    fates=st.lists(st.sampled_from(["ok", "ok", "ok", "defer", "fail"]), min_size=1, max_size=200),
    in_flight=st.integers(min_value=1, max_value=4),
    checkpointed=st.booleans(),
)
def test_every_record_is_accounted_once_and_no_order_is_broken(
    sessions: list[int], fates: list[str], in_flight: int, checkpointed: bool
) -> None:
    # GIVEN records of a few interleaved sessions, calls ending as the fates say, several calls in flight
    prepared = [event(position, f"s-{session}") for position, session in enumerate(sessions)]
    schedule = schedule_of(prepared, checkpointed=checkpointed)
    fate = iter(fates * 50)
    delivered: list[Prepared] = []
    failed: list[Prepared] = []
    unsent: list[Prepared] = []
    running: list[tuple[int, list[Prepared]]] = []
    sent_after_cutoff: list[int] = []
    rounds = 0

    # WHEN the schedule is driven to the end (later rounds at most twice, then abandoned)
    while True:
        while len(running) < in_flight and (taken := schedule.take()) is not None:
            lane, batch = taken
            assert all(lane != other for other, _ in running), "two calls of one lane in flight"
            if schedule.cutoff is not None:
                sent_after_cutoff += [position(p) for p in batch.prepared if position(p) >= schedule.cutoff]
            running.append((lane, list(batch.prepared)))
        unsent += [u.prepared for u in schedule.pop_unsent()]
        if running:
            lane, records = running.pop(0)
            outcome = next(fate)
            if outcome == "ok":
                delivered += records
                schedule.succeeded(lane)
            elif outcome == "defer":
                schedule.defer(lane, records, [(p, "throttled") for p in records])
            else:
                failed += records
                schedule.failed_for_good(lane, records)
            continue
        if schedule.has_deferred and rounds < 2:
            rounds += 1
            schedule.next_round()
            continue
        failed += [p for p, _ in schedule.abandon()]
        unsent += [u.prepared for u in schedule.pop_unsent()]
        break

    # THEN every record ended exactly once: delivered, failed or not sent
    ended = [id(p) for p in delivered + failed + unsent]
    assert sorted(ended) == sorted(id(p) for p in prepared)
    # THEN within a session, what was delivered is in source order and precedes anything failed or not sent
    for session in set(sessions):
        mine = [p for p in prepared if p.session_id == f"s-{session}"]
        done = [position(p) for p in delivered if p.session_id == f"s-{session}"]
        assert done == sorted(done)
        assert done == [position(p) for p in mine[: len(done)]]
    # THEN on a checkpointed source nothing at or after the cutoff was sent once the cutoff was known
    if checkpointed:
        assert sent_after_cutoff == []
