"""``python -m emulator`` prints its URL, serves boto3 and stops cleanly on SIGTERM; ``dump`` reads a store."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from emulator.cli import main
from emulator.config import DEFAULT_DATASET_ARNS, DEFAULT_TRACKING_ID, derived_id
from emulator.testing import EmulatorHandle
from tests.integration.emulator.conftest import event

REPO_ROOT = Path(__file__).resolve().parents[3]


def test_command_line_server_serves_stops_on_sigterm_and_leaves_a_store_to_dump(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN an emulator process with a file store and an extra dataset group
    db = tmp_path / "store.db"
    process = subprocess.Popen(
        [sys.executable, "-m", "emulator", "--port", "0", "--db", str(db), "--dataset-group", "shop"],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        client: Any = boto3.client(
            "personalize-events", endpoint_url=url, config=Config(retries={"total_max_attempts": 1})
        )

        # WHEN boto3 calls the default group and the extra one, then the process gets SIGTERM
        client.put_events(trackingId=DEFAULT_TRACKING_ID, sessionId="s-1", eventList=[event(eventId="e-1")])
        client.put_events(
            trackingId=derived_id("shop", "events"), sessionId="s-1", eventList=[event(eventId="e-2")]
        )
        client.put_items(datasetArn=DEFAULT_DATASET_ARNS["ITEMS"], items=[{"itemId": "i-1"}, {"itemId": "i-2"}])
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)

    # THEN the first stdout line was the URL, the process exited cleanly, and its store dumps as JSON lines
    assert url.startswith("http://127.0.0.1:")
    assert process.returncode == 0, stderr
    assert main(["dump", "events", "--db", str(db)]) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(row["target"], row["element"]["eventId"]) for row in events] == [
        (DEFAULT_TRACKING_ID, "e-1"),
        (derived_id("shop", "events"), "e-2"),
    ]
    assert main(["dump", "items", "--db", str(db), "--tail", "1"]) == 0
    assert [json.loads(line)["element"] for line in capsys.readouterr().out.splitlines()] == [{"itemId": "i-2"}]


def test_command_line_flags_set_credentials_quotas_throttle_status_and_faults() -> None:
    # GIVEN an emulator process configured only by flags: its own credentials, a tight PutItems quota answered
    # with 429, and every PutUsers call failing with 503 from the first call on
    faults = {"errorRate": 1.0, "errorStatuses": [503], "operations": ["PutUsers"]}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "emulator",
            "--port",
            "0",
            "--credentials",
            "local-key:local-secret",
            "--quota",
            "PutItems=0.1",
            "--throttle-status",
            "429",
            "--faults",
            json.dumps(faults),
        ],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        session = boto3.session.Session()
        config = Config(retries={"total_max_attempts": 1})
        local: Any = session.client(
            "personalize-events",
            endpoint_url=url,
            aws_access_key_id="local-key",
            aws_secret_access_key="local-secret",
            config=config,
        )
        default: Any = session.client(
            "personalize-events",
            endpoint_url=url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=config,
        )

        # WHEN each setting is exercised
        local.put_items(datasetArn=DEFAULT_DATASET_ARNS["ITEMS"], items=[{"itemId": "i-1"}])
        with pytest.raises(ClientError) as throttled:
            local.put_items(datasetArn=DEFAULT_DATASET_ARNS["ITEMS"], items=[{"itemId": "i-2"}])
        with pytest.raises(ClientError) as failed:
            local.put_users(datasetArn=DEFAULT_DATASET_ARNS["USERS"], users=[{"userId": "u-1"}])
        with pytest.raises(ClientError) as unrecognised:
            default.put_events(trackingId=DEFAULT_TRACKING_ID, sessionId="s-1", eventList=[event()])
        stored = EmulatorHandle(url).counts()
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)

    # THEN the quota answered 429, the fault 503, the default credentials were unknown, and one item was stored
    assert _status_and_code(throttled.value) == (429, "TooManyRequestsException")
    assert _status_and_code(failed.value) == (503, "ServiceUnavailable")
    assert _status_and_code(unrecognised.value) == (403, "UnrecognizedClientException")
    assert stored == {"events": 0, "action_interactions": 0, "items": 1, "users": 0, "actions": 0}
    assert process.returncode == 0, stderr


def _status_and_code(error: ClientError) -> tuple[int, str]:
    return error.response["ResponseMetadata"]["HTTPStatusCode"], str(error.response["Error"]["Code"])


def test_dump_reads_a_running_server(
    emulator: EmulatorHandle, client: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a running emulator that accepted one event and refused one call
    client.put_events(trackingId=DEFAULT_TRACKING_ID, sessionId="s-1", eventList=[event()])
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.put_events(trackingId="unknown", sessionId="s-1", eventList=[event()])

    # WHEN its counts and calls are dumped through the admin API
    assert main(["dump", "counts", "--url", emulator.url]) == 0
    counts = json.loads(capsys.readouterr().out)
    assert main(["dump", "calls", "--url", emulator.url]) == 0
    calls = [json.loads(line) for line in capsys.readouterr().out.splitlines()]

    # THEN they show the stored event and both calls
    assert counts["records"]["events"] == 1
    assert counts["calls"] == {"PutEvents": {"OK": 1, "ResourceNotFoundException": 1}}
    assert [call["status"] for call in calls] == [200, 404]


@pytest.mark.parametrize(
    ("config", "problem"),
    [
        ({"datasetGroups": [{"name": "g", "datasets": ["MOVIES"]}]}, "MOVIES"),
        ({"quotas": {"PutMovies": 1}}, "PutMovies"),
        (
            {"datasetGroups": [{"name": "a", "trackingId": "t"}, {"name": "b", "trackingId": "t"}]},
            "used by groups a and b",
        ),
        ({"faults": {"errorRate": 2}}, "errorRate"),
        ({"importJobs": {"pendingSecs": 1}}, "importJobs: unknown setting(s) ['pendingSecs']"),
    ],
    ids=[
        "unknown dataset type",
        "unknown operation",
        "shared tracking id",
        "impossible fault rate",
        "unknown import job setting",
    ],
)
def test_invalid_configuration_is_refused_before_serving(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], config: dict[str, Any], problem: str
) -> None:
    # GIVEN an invalid configuration file
    path = tmp_path / "emulator.json"
    path.write_text(json.dumps(config))

    # WHEN the server is started with it
    with pytest.raises(SystemExit) as exited:
        main(["--config", str(path)])

    # THEN it stops with a usage error naming the problem
    assert exited.value.code == 2
    assert problem in capsys.readouterr().err
