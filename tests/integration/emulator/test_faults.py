"""Fault injection: seeded error, throttle and drop rates within statistical tolerance, latency draws, run-time
changes through the admin API."""

from __future__ import annotations

import contextlib
import logging
import math
import socket
from collections import Counter
from typing import Any

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionClosedError

from emulator.config import DEFAULT_DATASET_ARNS, DEFAULT_TRACKING_ID, default_config
from emulator.testing import EmulatorAdminError, EmulatorHandle, running_emulator
from tests.integration.emulator.conftest import event

ITEMS = DEFAULT_DATASET_ARNS["ITEMS"]
REQUESTS = 300


def _within_tolerance(observed: int, rate: float, total: int) -> bool:
    # Five standard deviations of a binomial count: a correct implementation fails about once in 3.5 million runs.
    return abs(observed - rate * total) <= 5 * math.sqrt(total * rate * (1 - rate)) + 1


def _put_items_ignoring_errors(client: Any, count: int) -> None:
    for index in range(count):
        with contextlib.suppress(ClientError, ConnectionClosedError):
            client.put_items(datasetArn=ITEMS, items=[{"itemId": f"i-{index}"}])


def test_error_and_throttle_rates_match_the_settings(emulator: EmulatorHandle, client: Any) -> None:
    # GIVEN 20% 5xx errors and 10% throttling, and no quota in the way
    emulator.set_quota("PutItems", 0)
    emulator.set_faults(error_rate=0.2, throttle_rate=0.1, seed=11)

    # WHEN many calls are made without retries
    _put_items_ignoring_errors(client, REQUESTS)

    # THEN the observed rates are within tolerance, both 500 and 503 occur, and only accepted calls are stored
    outcomes = Counter((call["status"], call["errorCode"]) for call in emulator.calls())
    errors = outcomes[(500, "InternalFailure")] + outcomes[(503, "ServiceUnavailable")]
    assert _within_tolerance(errors, 0.2, REQUESTS), outcomes
    assert outcomes[(500, "InternalFailure")] > 0 and outcomes[(503, "ServiceUnavailable")] > 0
    assert _within_tolerance(outcomes[(400, "ThrottlingException")], 0.1, REQUESTS), outcomes
    assert sum(outcomes.values()) == REQUESTS
    assert {(call["target"], call["elements"]) for call in emulator.calls()} == {(ITEMS, 1)}
    assert emulator.counts()["items"] == outcomes[(200, None)]


def test_dropped_connections_are_retried_by_boto3(emulator: EmulatorHandle, client_factory: Any) -> None:
    # GIVEN 25% of connections dropped before any answer, and a client with retries
    emulator.set_quota("PutEvents", 0)
    emulator.set_faults(drop_rate=0.25, seed=3)
    client = client_factory(max_attempts=10)

    # WHEN 60 events are put one by one
    for index in range(60):
        client.put_events(trackingId=DEFAULT_TRACKING_ID, sessionId="s", eventList=[event(eventId=f"e-{index}")])

    # THEN all arrive exactly once, and the drop rate observed in the call log is within tolerance
    calls = emulator.calls()
    dropped = sum(1 for call in calls if call["status"] == 0)
    assert _within_tolerance(dropped, 0.25, len(calls)), (dropped, len(calls))
    assert emulator.counts()["events"] == 60
    assert not any(row["duplicate"] for row in emulator.records("events"))


def test_drops_after_storing_make_retries_duplicates(emulator: EmulatorHandle, client_factory: Any) -> None:
    # GIVEN connections dropped after the request was stored (the client cannot know it was)
    emulator.set_faults(drop_rate=0.3, drop_after_store=True, seed=5)
    client = client_factory(max_attempts=10)

    # WHEN 50 events with deterministic eventIds are put
    for index in range(50):
        client.put_events(trackingId=DEFAULT_TRACKING_ID, sessionId="s", eventList=[event(eventId=f"e-{index}")])

    # THEN every retry after a drop was stored again and flagged as a duplicate of the same eventId
    dropped = sum(1 for call in emulator.calls() if call["status"] == 0)
    rows = emulator.records("events")
    assert dropped > 0
    assert len(rows) == 50 + dropped
    assert sum(row["duplicate"] for row in rows) == dropped
    assert {row["element"]["eventId"] for row in rows} == {f"e-{n}" for n in range(50)}


def test_latency_draws_follow_the_distribution(emulator: EmulatorHandle, client: Any) -> None:
    # GIVEN latency drawn uniformly between 1 and 3 ms, and no quota in the way
    emulator.set_quota("PutUsers", 0)
    emulator.set_faults(latency={"distribution": "uniform", "minMs": 1, "maxMs": 3}, seed=1)

    # WHEN calls are made
    for index in range(60):
        client.put_users(datasetArn=DEFAULT_DATASET_ARNS["USERS"], users=[{"userId": f"u-{index}"}])

    # THEN every call carries a latency inside the range, with a mean near the middle
    latencies = [call["latencyMs"] for call in emulator.calls()]
    assert len(latencies) == 60
    assert all(1.0 <= latency <= 3.0 for latency in latencies)
    # Uniform(1, 3) has standard deviation 2/sqrt(12); the mean of 60 draws is within 5 standard errors of 2.
    assert abs(sum(latencies) / 60 - 2.0) <= 5 * (2 / math.sqrt(12)) / math.sqrt(60)


def test_fixed_latency_is_added_to_every_call(emulator: EmulatorHandle, client: Any) -> None:
    # GIVEN a fixed added latency of 2 ms, set at run time
    emulator.set_faults(latency_ms=2)

    # WHEN calls are made
    for index in range(5):
        client.put_items(datasetArn=ITEMS, items=[{"itemId": f"i-{index}"}])

    # THEN each call carries exactly that latency and succeeded
    assert [(call["status"], call["latencyMs"]) for call in emulator.calls()] == [(200, 2.0)] * 5


def test_same_seed_gives_the_same_fault_sequence(emulator: EmulatorHandle, client: Any) -> None:
    # GIVEN a seeded error rate, and no quota in the way
    settings = {"error_rate": 0.5, "seed": 42}

    # WHEN the same 40 calls are made twice, the faults being set again (same seed) in between
    sequences = []
    for _ in range(2):
        emulator.reset()
        emulator.set_quota("PutItems", 0)
        emulator.set_faults(**settings)
        _put_items_ignoring_errors(client, 40)
        sequences.append([call["status"] for call in emulator.calls()])

    # THEN both runs saw the same outcomes in the same order
    assert sequences[0] == sequences[1]
    assert set(sequences[0]) > {200}


def test_faults_can_target_one_operation(emulator: EmulatorHandle, client: Any) -> None:
    # GIVEN every PutUsers call failing, and nothing else
    emulator.set_faults(error_rate=1.0, error_statuses=[503], operations=["PutUsers"])

    # WHEN items and users are put
    client.put_items(datasetArn=ITEMS, items=[{"itemId": "i-1"}])
    with pytest.raises(ClientError) as failed:
        client.put_users(datasetArn=DEFAULT_DATASET_ARNS["USERS"], users=[{"userId": "u-1"}])

    # THEN only PutUsers failed, with 503
    assert failed.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    assert emulator.counts()["items"] == 1


def test_reset_restores_the_starting_faults(emulator: EmulatorHandle, client: Any) -> None:
    # GIVEN faults changed at run time
    emulator.set_faults(error_rate=1.0)

    # WHEN the emulator is reset
    emulator.reset()

    # THEN calls succeed again
    client.put_items(datasetArn=ITEMS, items=[{"itemId": "i-1"}])
    assert emulator.faults()["errorRate"] == 0.0


def test_faults_given_at_start_apply_from_the_first_call(boto3_session: Any) -> None:
    # GIVEN an emulator configured to throttle every PutItems call
    config = default_config()
    config.faults = {"throttleRate": 1.0, "operations": ["PutItems"]}
    with running_emulator(config) as emulator:
        client = boto3_session.client(
            "personalize-events",
            endpoint_url=emulator.url,
            config=Config(retries={"total_max_attempts": 2, "mode": "standard"}),
        )

        # WHEN a call is made with one retry allowed
        with pytest.raises(ClientError) as throttled:
            client.put_items(datasetArn=ITEMS, items=[{"itemId": "i-1"}])

        # THEN both attempts were throttled and boto3 gave up
        assert throttled.value.response["Error"]["Code"] == "ThrottlingException"
        assert [(call["attempt"], call["errorCode"]) for call in emulator.calls()] == [
            (1, "ThrottlingException"),
            (2, "ThrottlingException"),
        ]


@pytest.mark.parametrize(
    "settings",
    [{"error_rate": 1.5}, {"error_rate": 0.6, "throttle_rate": 0.6}, {"error_statuses": [404]}, {"colour": "red"}],
    ids=["rate above one", "rates summing above one", "non-5xx status", "unknown setting"],
)
def test_invalid_fault_settings_are_refused(emulator: EmulatorHandle, settings: dict[str, Any]) -> None:
    # GIVEN fault settings that cannot be applied
    # WHEN they are sent to the admin API
    # THEN they are refused and the current settings stay
    with pytest.raises(EmulatorAdminError):
        emulator.set_faults(**settings)
    assert emulator.faults()["errorRate"] == 0.0


def test_lost_responses_are_stored_and_the_drop_is_logged(
    emulator: EmulatorHandle, client_factory: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN 20% of requests stored and then left without an answer, next to 10% dropped before storing
    # (botocore's retry quota allows about 50 retries of connection errors per client)
    emulator.set_faults(drop_rate=0.1, lost_response_rate=0.2, seed=8)
    client = client_factory(max_attempts=12)
    caplog.set_level(logging.INFO, logger="emulator.server")

    # WHEN 40 events with deterministic eventIds are put one by one
    for index in range(40):
        client.put_events(trackingId=DEFAULT_TRACKING_ID, sessionId="s", eventList=[event(eventId=f"e-{index}")])

    # THEN every event is stored; each stored request whose answer was lost shows in the call log as status 0
    # with its requestId among the stored rows, and only those made the retries duplicates
    calls = emulator.calls()
    rows = emulator.records("events")
    stored_requests = {row["requestId"] for row in rows}
    dropped = [call for call in calls if call["status"] == 0]
    lost = [call for call in dropped if call["requestId"] in stored_requests]
    assert _within_tolerance(len(dropped), 0.3, len(calls)), (len(dropped), len(calls))
    assert _within_tolerance(len(lost), 0.2, len(calls)), (len(lost), len(calls))
    assert 0 < len(lost) < len(dropped)
    assert {row["element"]["eventId"] for row in rows} == {f"e-{n}" for n in range(40)}
    assert sum(row["duplicate"] for row in rows) == len(lost)
    # THEN every dropped connection was logged by the server
    logged = [r for r in caplog.records if "dropped without an answer" in r.getMessage()]
    assert len(logged) == len(dropped)


def test_latency_spikes_hit_their_share_of_calls(emulator: EmulatorHandle, client: Any) -> None:
    # GIVEN a base latency of 1 ms and 25% of answers 40 ms later still
    emulator.set_quota("PutItems", 0)
    emulator.set_faults(latency_ms=1, spike_rate=0.25, spike_ms=40, seed=4)

    # WHEN calls are made
    for index in range(80):
        client.put_items(datasetArn=ITEMS, items=[{"itemId": f"i-{index}"}])

    # THEN each call carries the base or the spiked latency, spikes at the configured rate
    latencies = Counter(call["latencyMs"] for call in emulator.calls())
    assert set(latencies) == {1.0, 41.0}
    assert _within_tolerance(latencies[41.0], 0.25, 80), latencies


def test_the_listening_socket_queues_a_burst_of_connections() -> None:
    # GIVEN an emulator whose serving thread is busy (not accepting) while 128 clients connect at once
    from emulator.server import LISTEN_BACKLOG, make_server
    from emulator.service import Emulator
    from emulator.store import Store

    server = make_server(Emulator(default_config(), Store(":memory:")))
    try:
        host, port = server.server_address[:2]
        sockets = []
        # WHEN 128 connections are opened before any is accepted
        for _ in range(128):
            connection = socket.create_connection((str(host), port), timeout=2)
            sockets.append(connection)
        # THEN none was refused: the backlog holds them
        assert LISTEN_BACKLOG >= 128
        assert len(sockets) == 128
    finally:
        for connection in sockets:
            connection.close()
        server.server_close()
        server.emulator.store.close()
