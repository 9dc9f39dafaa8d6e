"""`make demo` as a smoke test: the same flow with fewer records, from the synthesized template.

The template is the one `make synth` wrote to cdk.out when it is newer than everything it is built from;
otherwise the CDK app is synthesized into a temporary folder first, exactly as the CDK CLI runs it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
STACK = "PersonalizeIngest"
VALID_PER_FILE = 5

pytestmark = pytest.mark.slow


def _newest_input_mtime() -> float:
    inputs = [REPO_ROOT / "app.py", REPO_ROOT / "cdk.json", *(REPO_ROOT / "infrastructure").rglob("*.py")]
    return max(path.stat().st_mtime for path in inputs if path.exists())


@pytest.fixture(scope="module")
def template_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The synthesized stack template (see the module docstring)."""
    synthesized = REPO_ROOT / "cdk.out" / f"{STACK}.template.json"
    if synthesized.exists() and synthesized.stat().st_mtime >= _newest_input_mtime():
        return synthesized
    outdir = tmp_path_factory.mktemp("cdk.out")
    context = json.loads((REPO_ROOT / "cdk.json").read_text())["context"]
    # NOTE: the CDK CLI hands the app its context and output folder through these two variables.
    env = {**os.environ, "CDK_CONTEXT_JSON": json.dumps(context), "CDK_OUTDIR": str(outdir)}
    result = subprocess.run(
        [sys.executable, "app.py"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, f"synth failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return outdir / f"{STACK}.template.json"


def _demo_command(template_path: Path, run_dir: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "local.demo",
        "--template",
        str(template_path),
        "--run-dir",
        str(run_dir),
        "--limit",
        str(VALID_PER_FILE),
        *extra,
    ]


def _run_demo(
    template_path: Path, run_dir: Path, env: dict[str, str], *extra: str, timeout_s: float = 240
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m local.demo`` on ``template_path`` with the smoke test's record limit; never raises."""
    command = _demo_command(template_path, run_dir, *extra)
    return subprocess.run(
        command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout_s, check=False
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for every practical purpose; only its parent's wait is missing.
    status = Path(f"/proc/{pid}/status")
    return not (status.exists() and "\nState:\tZ" in status.read_text())


def _started_pids(run_dir: Path) -> list[int]:
    return [int(line.split()[0]) for line in (run_dir / "logs" / "pids").read_text().splitlines()]


@pytest.fixture
def demo_environment() -> Iterator[dict[str, str]]:
    env = dict(os.environ)
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_PERSONALIZE_EVENTS"):
        env.pop(name, None)
    yield env


def test_demo_accounts_for_every_record_and_leaves_no_process(
    template_path: Path, tmp_path: Path, demo_environment: dict[str, str]
) -> None:
    # GIVEN the samples (five valid records per file plus every broken one) and what the broken ones must get
    broken = json.loads((REPO_ROOT / "samples" / "broken.json").read_text())
    expected_codes = {
        "events": Counter(broken["events.jsonl"].values()),
        "items": Counter(broken["items.csv"].values()),
        "users": Counter(broken["users.jsonl.gz"].values()),
        "actions": Counter(broken["actions.jsonl"].values()),
        "action_interactions": Counter(broken["action_interactions.jsonl"].values()),
    }
    report_path = tmp_path / "report.json"

    # WHEN the demo runs
    result = _run_demo(template_path, tmp_path / "run", demo_environment, "--json", str(report_path))

    # THEN it succeeds and its report accounts for every record: valid ones delivered, broken ones rejected
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    report = json.loads(report_path.read_text())
    assert report["ok"] and report["drained"]
    rows = {row["entity"]: row for row in report["rows"]}
    assert {(entity, row["source"]) for entity, row in rows.items()} == {
        ("events", "kinesis"),
        ("items", "s3"),
        ("users", "s3"),
        ("actions", "sqs"),
        ("action_interactions", "sqs"),
    }
    # AND the generated catalogue took the items import route (cdk.json turns it on): one import job, ACTIVE
    (imported,) = report["imports"]
    assert (imported["status"], imported["jobStatus"]) == ("imported", "ACTIVE"), imported
    assert imported["key"].startswith("items/") and imported["rows"] > 0
    assert "Import route: items/" in result.stdout
    catalogue = {"items": imported["rows"]}
    for entity, codes in expected_codes.items():
        row = rows[entity]
        assert row["sent"] == VALID_PER_FILE + sum(codes.values()) + catalogue.get(entity, 0), entity
        assert row["delivered"] == VALID_PER_FILE + catalogue.get(entity, 0), entity
        assert row["rejectedByCode"] == dict(codes), entity
        assert (row["deadLettered"], row["duplicates"], row["unaccounted"], row["unexpected"]) == (0, 0, [], [])
        assert row["apiCalls"] >= 1, entity
    assert report["unmatchedRejects"] == 0
    assert "OK: all" in result.stdout
    # ... and every process it started is gone
    assert report["pids"] == _started_pids(tmp_path / "run")
    assert [pid for pid in report["pids"] if _alive(pid)] == []


def test_ctrl_c_stops_every_process_the_demo_started(
    template_path: Path, tmp_path: Path, demo_environment: dict[str, str]
) -> None:
    # GIVEN a demo that has started its servers and function workers
    run_dir = tmp_path / "run"
    demo = subprocess.Popen(
        _demo_command(template_path, run_dir),
        cwd=REPO_ROOT,
        env=demo_environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert demo.stdout is not None
        for line in demo.stdout:
            if " sent " in line:
                break
        pids = _started_pids(run_dir)

        # WHEN it is interrupted as Ctrl-C in a terminal does
        demo.send_signal(signal.SIGINT)
        code = demo.wait(timeout=60)
    finally:
        if demo.poll() is None:
            demo.kill()

    # THEN it exits with the interrupt status and none of its servers or workers is left
    assert code == 130
    assert len(pids) >= 3
    deadline = time.monotonic() + 10
    while [pid for pid in pids if _alive(pid)] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [pid for pid in pids if _alive(pid)] == []


def test_records_in_none_of_the_places_fail_the_demo_with_their_entity_named(
    template_path: Path, tmp_path: Path, demo_environment: dict[str, str]
) -> None:
    # GIVEN the synthesized template with the actions function's handler missing and no redrive on any queue, so
    # actions are neither delivered, nor rejected, nor ever dead-lettered
    template = json.loads(template_path.read_text())
    for resource in template["Resources"].values():
        properties = resource.get("Properties", {})
        if properties.get("Handler") == "actions.handler.lambda_handler":
            properties["Handler"] = "actions.handler.no_such_handler"
        properties.pop("RedrivePolicy", None)
    broken_template = tmp_path / f"{STACK}.template.json"
    broken_template.write_text(json.dumps(template))
    report_path = tmp_path / "report.json"

    # WHEN the demo runs with a short drain timeout
    result = _run_demo(
        broken_template, tmp_path / "run", demo_environment, "--timeout", "10", "--json", str(report_path)
    )

    # THEN it fails, the actions are reported unaccounted, the other entities are fine, and no process is left
    assert result.returncode == 1, result.stdout[-4000:] + result.stderr[-4000:]
    report = json.loads(report_path.read_text())
    assert not report["ok"] and not report["drained"]
    rows = {row["entity"]: row for row in report["rows"]}
    assert rows["actions"]["delivered"] == 0
    assert len(rows["actions"]["unaccounted"]) == rows["actions"]["sent"] > 0
    assert all(row["unaccounted"] == [] for entity, row in rows.items() if entity != "actions")
    assert "FAILED" in result.stdout
    assert [pid for pid in report["pids"] if _alive(pid)] == []


def test_a_template_error_after_the_servers_started_stops_them_and_names_the_resource(
    template_path: Path, tmp_path: Path, demo_environment: dict[str, str]
) -> None:
    # GIVEN the synthesized template with a function variable imported from another stack, which only shows once
    # moto is running and the stack is read
    template = json.loads(template_path.read_text())
    function = next(
        resource
        for resource in template["Resources"].values()
        if resource["Type"] == "AWS::Lambda::Function"
        and resource["Properties"].get("Handler") == "items.handler.lambda_handler"
    )
    function["Properties"]["Environment"]["Variables"]["SHARED"] = {"Fn::ImportValue": "SharedValue"}
    broken_template = tmp_path / f"{STACK}.template.json"
    broken_template.write_text(json.dumps(template))
    run_dir = tmp_path / "run"

    # WHEN the demo runs
    result = _run_demo(broken_template, run_dir, demo_environment, timeout_s=120)

    # THEN it exits with the template error's status and message, and the server it had started is gone
    assert result.returncode == 2, result.stdout[-4000:] + result.stderr[-4000:]
    assert "Fn::ImportValue" in result.stderr
    pids = _started_pids(run_dir)
    assert pids
    assert [pid for pid in pids if _alive(pid)] == []
