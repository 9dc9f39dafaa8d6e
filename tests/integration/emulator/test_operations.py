"""Each operation, called with plain boto3, is accepted (200, empty body) and stored as received."""

from __future__ import annotations

import http.client
import json
import sqlite3
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

from emulator.config import DEFAULT_ACTION_TRACKING_ID, DEFAULT_DATASET_ARNS, DEFAULT_TRACKING_ID
from emulator.testing import EmulatorHandle, running_emulator
from tests.integration.emulator.conftest import event


def test_put_events_is_stored_with_its_request_members(emulator: EmulatorHandle, client: Any) -> None:
    # GIVEN two events for one session
    events = [
        event(eventId="e-1", properties=json.dumps({"rating": 5})),
        event(eventId="e-2", eventValue=1.5, impression=["item-1", "item-2"], recommendationId="rec-1"),
    ]

    # WHEN they are put in one call
    response = client.put_events(trackingId=DEFAULT_TRACKING_ID, sessionId="s-1", userId="u-1", eventList=events)

    # THEN the call succeeds and both elements are stored in order, with the request-level members beside them
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 200
    rows = emulator.records("events")
    assert [row["element"]["eventId"] for row in rows] == ["e-1", "e-2"]
    assert rows[1]["element"]["impression"] == ["item-1", "item-2"]
    assert rows[0]["request"] == {"trackingId": DEFAULT_TRACKING_ID, "sessionId": "s-1", "userId": "u-1"}
    assert {row["target"] for row in rows} == {DEFAULT_TRACKING_ID}
    assert {row["requestId"] for row in rows} == {response["ResponseMetadata"]["RequestId"]}
    assert not any(row["duplicate"] for row in rows)


def test_put_action_interactions_is_stored(emulator: EmulatorHandle, client: Any) -> None:
    # GIVEN an action interaction
    interaction = {
        "actionId": "a-1",
        "userId": "u-1",
        "sessionId": "s-1",
        "timestamp": 1_700_000_000,
        "eventType": "Taken",
        "eventId": "ai-1",
    }

    # WHEN it is put on the action-interactions tracker
    client.put_action_interactions(trackingId=DEFAULT_ACTION_TRACKING_ID, actionInteractions=[interaction])

    # THEN it is stored under that tracker
    rows = emulator.records("action_interactions")
    assert [row["element"]["actionId"] for row in rows] == ["a-1"]
    assert rows[0]["target"] == DEFAULT_ACTION_TRACKING_ID
    assert rows[0]["request"] == {"trackingId": DEFAULT_ACTION_TRACKING_ID}


def test_put_items_users_and_actions_are_stored(emulator: EmulatorHandle, client: Any) -> None:
    # GIVEN one element of each dataset type
    item = {"itemId": "i-1", "properties": json.dumps({"genres": "Horror|Action", "numberOfRatings": 12})}
    user = {"userId": "u-1", "properties": json.dumps({"membership": "gold"})}
    action = {"actionId": "a-1"}

    # WHEN each is put on its dataset
    client.put_items(datasetArn=DEFAULT_DATASET_ARNS["ITEMS"], items=[item])
    client.put_users(datasetArn=DEFAULT_DATASET_ARNS["USERS"], users=[user])
    client.put_actions(datasetArn=DEFAULT_DATASET_ARNS["ACTIONS"], actions=[action])

    # THEN each table holds exactly its element, as received
    assert emulator.elements("items") == [item]
    assert emulator.elements("users") == [user]
    assert emulator.elements("actions") == [action]
    assert emulator.counts() == {"events": 0, "action_interactions": 0, "items": 1, "users": 1, "actions": 1}


def test_calls_log_every_answer(emulator: EmulatorHandle, client: Any) -> None:
    # GIVEN an accepted call
    client.put_items(datasetArn=DEFAULT_DATASET_ARNS["ITEMS"], items=[{"itemId": "i-1"}, {"itemId": "i-2"}])

    # WHEN the call log is read
    calls = emulator.calls()

    # THEN it shows the operation, its outcome, its target and its size
    assert len(calls) == 1
    assert calls[0]["operation"] == "PutItems"
    assert calls[0]["status"] == 200
    assert calls[0]["errorCode"] is None
    assert calls[0]["elements"] == 2
    assert calls[0]["target"] == DEFAULT_DATASET_ARNS["ITEMS"]
    assert calls[0]["attempt"] == 1


def test_repeated_event_id_is_stored_and_flagged_duplicate(emulator: EmulatorHandle, client: Any) -> None:
    # GIVEN an event already delivered
    client.put_events(trackingId=DEFAULT_TRACKING_ID, sessionId="s-1", eventList=[event(eventId="e-1")])

    # WHEN the same eventId arrives again, beside a new one
    client.put_events(
        trackingId=DEFAULT_TRACKING_ID, sessionId="s-1", eventList=[event(eventId="e-1"), event(eventId="e-2")]
    )

    # THEN all three are stored and only the repetition is flagged
    rows = emulator.records("events")
    assert [(row["element"]["eventId"], row["duplicate"]) for row in rows] == [
        ("e-1", False),
        ("e-1", True),
        ("e-2", False),
    ]
    assert emulator.stats()["duplicates"]["events"] == 1


def test_reset_empties_the_store(emulator: EmulatorHandle, client: Any) -> None:
    # GIVEN a stored item
    client.put_items(datasetArn=DEFAULT_DATASET_ARNS["ITEMS"], items=[{"itemId": "i-1"}])

    # WHEN the emulator is reset
    emulator.reset()

    # THEN neither records nor calls remain
    assert emulator.counts()["items"] == 0
    assert emulator.calls() == []


def test_fractional_epoch_seconds_are_accepted(emulator: EmulatorHandle, client: Any) -> None:
    # GIVEN an event whose sentAt has a fraction, as the JavaScript SDK v2 sends it
    sent_at = 1795978246.729

    # WHEN it is put
    client.put_events(trackingId=DEFAULT_TRACKING_ID, sessionId="s-1", eventList=[event(sentAt=sent_at)])

    # THEN it is stored (the wire value is epoch seconds)
    assert [row["element"]["sentAt"] for row in emulator.records("events")] == [sent_at]


def test_concurrent_calls_are_all_stored(emulator: EmulatorHandle, client_factory: Any) -> None:
    # GIVEN 8 producers without a quota in the way, each sending the same 10 eventIds
    emulator.set_quota("PutEvents", 0)
    clients = [client_factory() for _ in range(8)]

    def produce(producer: int) -> None:
        for index in range(10):
            clients[producer].put_events(
                trackingId=DEFAULT_TRACKING_ID, sessionId=f"s-{producer}", eventList=[event(eventId=f"e-{index}")]
            )

    # WHEN they run at the same time
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(produce, range(8)))

    # THEN all 80 events are stored, and each eventId is flagged a duplicate exactly 7 times
    rows = emulator.records("events")
    assert len(rows) == 80
    duplicates = Counter(row["element"]["eventId"] for row in rows if row["duplicate"])
    assert duplicates == {f"e-{index}": 7 for index in range(10)}


def test_sqlite_store_has_one_table_per_entity_with_arrival_time_and_request_id(
    tmp_path: Path, boto3_session: Any
) -> None:
    # GIVEN an emulator whose store is a SQLite file
    db = tmp_path / "store.db"
    with running_emulator(db_path=str(db)) as emulator:
        client = boto3_session.client(
            "personalize-events", endpoint_url=emulator.url, config=Config(retries={"total_max_attempts": 1})
        )

        # WHEN one call of each operation is made
        before = time.time()
        responses = {
            "events": client.put_events(
                trackingId=DEFAULT_TRACKING_ID, sessionId="s-1", eventList=[event(eventId="e-1")]
            ),
            "action_interactions": client.put_action_interactions(
                trackingId=DEFAULT_ACTION_TRACKING_ID,
                actionInteractions=[{"actionId": "a-1", "sessionId": "s-1", "timestamp": 1, "eventType": "Taken"}],
            ),
            "items": client.put_items(datasetArn=DEFAULT_DATASET_ARNS["ITEMS"], items=[{"itemId": "i-1"}]),
            "users": client.put_users(datasetArn=DEFAULT_DATASET_ARNS["USERS"], users=[{"userId": "u-1"}]),
            "actions": client.put_actions(
                datasetArn=DEFAULT_DATASET_ARNS["ACTIONS"], actions=[{"actionId": "a-1"}]
            ),
        }
        after = time.time()

    # THEN the file holds one table per entity, each row with the request id boto3 saw and its arrival time
    with closing(sqlite3.connect(db)) as connection:
        for table, response in responses.items():
            rows = connection.execute(f"SELECT request_id, received_at, element FROM {table}").fetchall()
            assert len(rows) == 1, table
            request_id, received_at, _ = rows[0]
            assert request_id == response["ResponseMetadata"]["RequestId"]
            assert before <= received_at <= after


def test_chunked_request_body_is_accepted(emulator: EmulatorHandle) -> None:
    # GIVEN a correctly signed PutItems request whose body an HTTP/1.1 client streams chunked (no Content-Length)
    body = json.dumps({"datasetArn": DEFAULT_DATASET_ARNS["ITEMS"], "items": [{"itemId": "i-1"}]}).encode()
    request = AWSRequest(
        method="POST", url=f"{emulator.url}/items", data=body, headers={"Content-Type": "application/json"}
    )
    SigV4Auth(Credentials("testing", "testing"), "personalize", "us-east-1").add_auth(request)
    host, port = urlsplit(emulator.url).hostname, urlsplit(emulator.url).port
    connection = http.client.HTTPConnection(str(host), port, timeout=10)

    # WHEN it is sent in two chunks
    try:
        connection.request(
            "POST", "/items", body=iter([body[:20], body[20:]]), headers=dict(request.headers), encode_chunked=True
        )
        response = connection.getresponse()
        status, payload = response.status, response.read()
    finally:
        connection.close()

    # THEN it is accepted and stored like any other
    assert (status, payload) == (200, b"")
    assert emulator.elements("items") == [{"itemId": "i-1"}]
