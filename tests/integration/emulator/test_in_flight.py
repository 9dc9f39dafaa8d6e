"""Requests in flight across a reset, and clients that leave before their answer.

The ``emulator`` fixture shares one server between tests and resets it in between: a request an earlier test left
in flight must neither draw from the fault sequence nor land in the call log of the next one.
"""

from __future__ import annotations

import contextlib
import json
import socket
import sqlite3
import struct
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from emulator.config import DEFAULT_DATASET_ARNS, default_config
from emulator.server import make_server
from emulator.service import Emulator
from emulator.store import Store
from emulator.testing import EmulatorHandle

ITEMS = DEFAULT_DATASET_ARNS["ITEMS"]


def _signed_put_items(url: str, item_id: str) -> tuple[bytes, bytes]:
    """Head (request line and headers) and body of a SigV4-signed PutItems request, as raw HTTP/1.1 bytes."""
    body = json.dumps({"datasetArn": ITEMS, "items": [{"itemId": item_id}]}).encode()
    headers = {"Content-Type": "application/json"}
    request = AWSRequest(method="POST", url=f"{url}/items", data=body, headers=headers)
    SigV4Auth(Credentials("testing", "testing"), "personalize", "us-east-1").add_auth(request)
    lines = ["POST /items HTTP/1.1", f"Host: {urlsplit(url).netloc}", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in request.headers.items() if name.lower() != "host"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode(), body


def _connect(url: str) -> socket.socket:
    parts = urlsplit(url)
    return socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80), timeout=10)


def _wait_until(condition: Callable[[], bool], what: str) -> None:
    # Polls the admin API; the deadline only bounds a hang, it is not what the test checks.
    deadline = time.monotonic() + 10
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"emulator never reached: {what}")
        time.sleep(0.01)


def _statuses_of_seeded_calls(emulator: EmulatorHandle, client: Any, count: int) -> list[int]:
    for index in range(count):
        with contextlib.suppress(ClientError):
            client.put_items(datasetArn=ITEMS, items=[{"itemId": f"i-{index}"}])
    return [call["status"] for call in emulator.calls()]


def test_a_request_in_flight_across_a_reset_draws_no_fault_and_is_not_logged(
    emulator: EmulatorHandle, client: Any
) -> None:
    # GIVEN the fault sequence of a seeded error rate, as a fresh generation sees it
    emulator.set_quota("PutItems", 0)
    emulator.set_faults(error_rate=0.5, seed=42)
    expected = _statuses_of_seeded_calls(emulator, client, 30)
    # ... and a request whose head the server has read but whose body is still coming
    head, body = _signed_put_items(emulator.url, "late")
    with _connect(emulator.url) as late:
        late.sendall(head + body[:10])
        _wait_until(lambda: emulator.health()["inFlight"] == 1, "one request in flight")

        # WHEN the emulator is reset, the same faults set again, and the late request then completes
        emulator.reset()
        emulator.set_quota("PutItems", 0)
        emulator.set_faults(error_rate=0.5, seed=42)
        late.sendall(body[10:])
        answer = late.recv(65536).decode()

    # THEN the late request is answered 503 (SDKs retry it), and it is neither stored nor logged
    assert answer.startswith("HTTP/1.1 503 ")
    assert "ServiceUnavailable" in answer
    assert emulator.calls() == []
    assert emulator.counts()["items"] == 0
    # THEN the new generation sees the fault sequence from its start: the late request drew nothing
    assert _statuses_of_seeded_calls(emulator, client, 30) == expected
    assert set(expected) >= {200, 500}


def test_a_request_read_after_a_reset_belongs_to_the_new_generation(emulator: EmulatorHandle) -> None:
    # GIVEN a connection opened before a reset, with nothing sent yet
    head, body = _signed_put_items(emulator.url, "after-reset")
    with _connect(emulator.url) as connection:
        emulator.reset()

        # WHEN the request is sent after the reset
        connection.sendall(head + body)
        answer = connection.recv(65536).decode()

    # THEN it is served and logged like any other
    assert answer.startswith("HTTP/1.1 200 ")
    assert [(call["status"], call["target"]) for call in emulator.calls()] == [(200, ITEMS)]
    assert emulator.elements("items") == [{"itemId": "after-reset"}]


def test_a_client_that_leaves_before_its_answer_causes_no_traceback(
    emulator: EmulatorHandle, capfd: pytest.CaptureFixture[str]
) -> None:
    # GIVEN answers delayed by 200 ms (an error answer, so there is a body to write after the headers)
    emulator.set_faults(latency_ms=200, error_rate=1.0, error_statuses=[500])
    head, body = _signed_put_items(emulator.url, "abandoned")

    # WHEN a client sends a request and resets its connection before the answer comes
    with _connect(emulator.url) as leaving:
        leaving.sendall(head + body)
        _wait_until(lambda: emulator.health()["inFlight"] == 1, "the request in flight")
        # SO_LINGER with a zero timeout makes close() send RST: the server's write fails (reset / broken pipe).
        leaving.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    _wait_until(lambda: emulator.health()["inFlight"] == 0, "the request answered")

    # THEN the call is logged, nothing was printed, and the server keeps serving
    assert [call["status"] for call in emulator.calls()] == [500]
    captured = capfd.readouterr()
    assert "Traceback" not in captured.err
    assert "Exception occurred during processing" not in captured.err
    assert emulator.health()["status"] == "ok"


def _read_answer(connection: socket.socket) -> tuple[int, bytes]:
    """Status and body of one HTTP/1.1 answer (which always carries Content-Length)."""
    reader = connection.makefile("rb")
    status = int(reader.readline().split()[1])
    length = 0
    while (line := reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode().partition(":")
        if name.lower() == "content-length":
            length = int(value)
    return status, reader.read(length)


def test_stopping_lets_the_request_in_flight_finish_and_turns_later_ones_away(tmp_path: Path) -> None:
    # GIVEN a server with a file store and a client that has sent the head of a request but not its body
    db = tmp_path / "store.db"
    emulator = Emulator(default_config(), Store(str(db)))
    server = make_server(emulator)
    serving = threading.Thread(target=server.serve_forever)
    serving.start()
    head, body = _signed_put_items(server.url, "i-1")
    connection = _connect(server.url)
    connection.sendall(head)
    _wait_until(lambda: emulator.in_flight == 1, "one request in flight")

    # WHEN the server is stopped while that request is in flight, the client then finishing it and sending another
    # request on the same kept-alive connection
    stopping = threading.Thread(target=server.stop)
    stopping.start()
    _wait_until(lambda: server.stopping, "server stopping")
    connection.sendall(body)
    first = _read_answer(connection)
    second_head, second_body = _signed_put_items(server.url, "i-2")
    connection.sendall(second_head + second_body)
    second = _read_answer(connection)
    closed = connection.recv(1) == b""
    connection.close()
    stopping.join(timeout=10)
    serving.join(timeout=10)
    emulator.store.close()

    # THEN the request in flight was answered and stored, the later one was refused 503, the connection closed,
    # and the server stopped
    assert first == (200, b"")
    assert second[0] == 503 and json.loads(second[1])["__type"] == "ServiceUnavailable"
    assert closed
    assert not stopping.is_alive() and not serving.is_alive()
    with contextlib.closing(sqlite3.connect(db)) as store:
        assert store.execute("SELECT element FROM items").fetchall() == [('{"itemId":"i-1"}',)]
