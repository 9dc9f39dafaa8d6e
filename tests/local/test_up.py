"""`make up` / `make down`: a producer that knows only the printed environment gets its records delivered, and
nothing `make up` started outlives `make down`.

`make` runs with `-o install -o synth` (the virtualenv is the test's own, the template comes from the same fixture
as the demo's smoke test), so exactly the recipes of mk/local.mk are exercised.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from emulator.testing import EmulatorHandle
from tests.integration.test_demo import template_path  # noqa: F401 - the module's template fixture

REPO_ROOT = Path(__file__).resolve().parents[2]
WAIT_S = 90

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("make") is None, reason="GNU make is not installed"),
]

PRODUCER = """
import json, os, boto3
outputs = next(iter(json.load(open(os.environ["PERSONALIZE_INGEST_OUTPUTS"])).values()))
kinesis, s3 = boto3.client("kinesis"), boto3.client("s3")
for n in range(3):
    event = {"sessionId": "s-1", "eventType": "click", "itemId": f"i-{n}", "sentAt": 1764400000 + n}
    kinesis.put_record(StreamName=outputs["EventsStreamName"], PartitionKey="s-1", Data=json.dumps(event))
kinesis.put_record(StreamName=outputs["EventsStreamName"], PartitionKey="s-1", Data=json.dumps({"eventTyp": "x"}))
catalogue = b"ITEM_ID,GENRES\\ni-1,Comedy\\n"
s3.put_object(Bucket=outputs["IngestBucketName"], Key="items/catalogue.csv", Body=catalogue)
"""


def _make(target: str, template: Path, state_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            "make",
            "--no-print-directory",
            "-o",
            "install",
            "-o",
            "synth",
            target,
            f"LOCAL_TEMPLATE={template}",
            f"LOCAL_DIR={state_dir}",
            f"PY={sys.executable}",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )


def _exports(stdout: str) -> dict[str, str]:
    return dict(re.findall(r"^\s*export (\w+)=(\S+)$", stdout, flags=re.MULTILINE))


def _wait_for(what: str, check: Callable[[], Any]) -> Any:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"{what} did not happen within {WAIT_S} s")


def _stored(emulator: EmulatorHandle) -> dict[str, int]:
    return {entity: count for entity, count in emulator.counts().items() if count}


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def _started(state_dir: Path) -> list[int]:
    state = json.loads((state_dir / "state.json").read_text())
    pids = [
        int(line.split()[0]) for line in (state_dir / "logs" / "pids").read_text().splitlines() if line.strip()
    ]
    return [int(state["pid"]), *pids]


def test_up_serves_a_producer_from_the_printed_environment_and_down_leaves_nothing(
    template_path: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    state_dir = tmp_path / "local"
    started: list[int] = []
    try:
        # GIVEN the local stack started with `make up`
        up = _make("up", template_path, state_dir)
        assert up.returncode == 0, up.stdout + up.stderr
        exports = _exports(up.stdout)
        assert {"AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_PERSONALIZE_EVENTS", "PERSONALIZE_INGEST_OUTPUTS"} <= set(
            exports
        )
        assert "EventsPipelineKinesisStream" in up.stdout and "s3://" in up.stdout
        started = _started(state_dir)

        # WHEN a producer with only that environment (and PATH) writes to Kinesis and drops a file in S3
        env = {"PATH": os.environ["PATH"], **exports}
        produced = subprocess.run(
            [sys.executable, "-c", PRODUCER], env=env, capture_output=True, text=True, timeout=60
        )
        assert produced.returncode == 0, produced.stderr

        # THEN the events and the item reach Personalize (the emulator), and the bad event is in the rejects queue
        emulator = EmulatorHandle(exports["AWS_ENDPOINT_URL_PERSONALIZE_EVENTS"])
        _wait_for("3 events and 1 item stored", lambda: _stored(emulator) == {"events": 3, "items": 1})
        assert sorted(e["itemId"] for e in emulator.elements("events")) == ["i-0", "i-1", "i-2"]

        # AND `personalize-ingest status`, with the same environment, shows what arrived and what was rejected
        def status() -> dict[str, Any] | None:
            ran = subprocess.run(
                [sys.executable, "-m", "ingest_cli", "status", "--json"],
                cwd=REPO_ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
            )
            document = json.loads(ran.stdout)
            events = next(e for e in document["entities"] if e["entity"] == "events")
            return document if events["lastHour"] == {"delivered": 3, "rejected": 1, "failed": 0} else None

        document = _wait_for("status to show the events", status)
        assert document["rejectsWaiting"]["visible"] == 1
        started = _started(state_dir)
    finally:
        # WHEN `make down` runs
        down = _make("down", template_path, state_dir)

    # THEN every process `make up` started is gone, and it says so
    assert down.returncode == 0, down.stdout + down.stderr
    assert "the local stack is down" in down.stdout
    assert started and not [pid for pid in started if _alive(pid)]
    assert not (state_dir / "state.json").exists()

    # AND the emulator's store outlives the stack: a second `make up` still has the records
    again = _make("up", template_path, state_dir)
    try:
        assert again.returncode == 0, again.stdout + again.stderr
        emulator = EmulatorHandle(_exports(again.stdout)["AWS_ENDPOINT_URL_PERSONALIZE_EVENTS"])
        assert _stored(emulator) == {"events": 3, "items": 1}
    finally:
        assert _make("down", template_path, state_dir).returncode == 0
