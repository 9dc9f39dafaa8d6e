"""``make up`` / ``make down``: the local stack, kept running in the background for producers and operators.

``python -m local.up start`` starts a supervisor process (:mod:`local.supervisor`) in a session of its own and
returns once the stack is ready; the supervisor runs what ``make demo`` runs (moto, the Personalize Events
emulator, the local event-source runner with one worker per function, all wired from the synthesized template)
until ``python -m local.up stop`` sends it SIGTERM, and then stops every process it started. Unlike the demo, the
emulator keeps what it received in a SQLite file (``<state dir>/emulator.sqlite``), so a restart keeps the
history; moto starts empty each time.

The state folder (default ``build/local``) holds:

- ``state.json``: the supervisor's pid, the endpoints, the environment a producer exports, the resource names;
- ``outputs.json``: the stack's outputs as ``cdk deploy --outputs-file`` writes them, resolved locally (the
  ``personalize-ingest`` command reads it through ``PERSONALIZE_INGEST_OUTPUTS``);
- ``env.sh``: the producer environment, for ``source``;
- ``logs/``: one log per server and function, and ``pids``, every process started (what ``stop`` checks).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from contextlib import suppress
from pathlib import Path
from typing import Any

from local.demo import DEFAULT_STACK, DEFAULT_TIME_SCALE
from local.servers import REPO_ROOT
from local.supervisor import serve
from local.template import TemplateError, load_template

DEFAULT_STATE_DIR = REPO_ROOT / "build" / "local"
READY_TIMEOUT_S = 180
STOP_TIMEOUT_S = 30
SUPERVISOR_MARK = "local.up"
"""In the supervisor's command line: ``stop`` signals a pid only when it is still that process."""
CHILD_MARKS = ("local.servers", "-m emulator", "worker.py")
"""In the command lines of the supervisor's children (moto, the emulator, function workers)."""


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m local.up", description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("start", "stop", "serve", "show"))
    parser.add_argument("--stack", default=DEFAULT_STACK, help=f"stack name (default {DEFAULT_STACK})")
    parser.add_argument(
        "--template", type=Path, help="synthesized template (default cdk.out/<stack>.template.json)"
    )
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR, help="state, logs, emulator store")
    parser.add_argument(
        "--time-scale",
        type=float,
        default=float(os.environ.get("LOCAL_TIME_SCALE") or DEFAULT_TIME_SCALE),
        help="factor for visibility timeouts and retry backoff (env LOCAL_TIME_SCALE, default %(default)s)",
    )
    return parser.parse_args(argv)


# ----------------------------------------------------------------------------------------------- start / stop


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # NOTE: a zombie (exited, not yet reaped) still answers signal 0; it is gone for our purposes.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return True


def _is_supervisor(pid: int) -> bool:
    try:
        return SUPERVISOR_MARK in Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return _alive(pid)


def _read_state(state_dir: Path) -> dict[str, Any] | None:
    try:
        return dict(json.loads((state_dir / "state.json").read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return None


def start(args: argparse.Namespace) -> int:
    state_dir: Path = args.state_dir.resolve()
    state = _read_state(state_dir)
    if state is not None and _alive(state["pid"]) and _is_supervisor(state["pid"]):
        print("the local stack is already up (make down stops it)\n")
        print(describe(state))
        return 0
    template_path = args.template or REPO_ROOT / "cdk.out" / f"{args.stack}.template.json"
    load_template(template_path)  # fail here, in the foreground, when there is no template
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / "state.json").unlink(missing_ok=True)
    argv = [sys.executable, "-m", "local.up", "serve", "--stack", args.stack, "--template", str(template_path)]
    argv += ["--state-dir", str(state_dir), "--time-scale", str(args.time_scale)]
    with (state_dir / "supervisor.log").open("wb") as log:
        # NOTE: a session of its own: the supervisor outlives this command and the terminal's Ctrl-C.
        supervisor = subprocess.Popen(
            argv,
            cwd=REPO_ROOT,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        state = _read_state(state_dir)
        if state is not None and state.get("pid") == supervisor.pid:
            print(describe(state))
            return 0
        if supervisor.poll() is not None:
            break
        time.sleep(0.2)
    tail = (state_dir / "supervisor.log").read_text(encoding="utf-8", errors="replace")[-3000:]
    if supervisor.poll() is None:
        _stop_pid(supervisor.pid)
    print(f"error: the local stack did not come up; {state_dir / 'supervisor.log'}:\n{tail}", file=sys.stderr)
    return 1


def _stop_pid(pid: int) -> bool:
    """SIGTERM, wait, then SIGKILL; True when the process is gone."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return True
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.1)
    with suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    time.sleep(0.2)
    return not _alive(pid)


def started_pids(state_dir: Path) -> list[int]:
    """Every process the supervisor started (servers and function workers), from its ``logs/pids`` file."""
    try:
        lines = (state_dir / "logs" / "pids").read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    return [int(line.split()[0]) for line in lines if line.strip()]


def stop(args: argparse.Namespace) -> int:
    state_dir: Path = args.state_dir.resolve()
    state = _read_state(state_dir)
    if state is None:
        print(f"the local stack is not up (no {state_dir / 'state.json'})")
        return 0
    pid = int(state["pid"])
    if _alive(pid) and _is_supervisor(pid):
        _stop_pid(pid)
    # NOTE: the supervisor stops its children on SIGTERM; a child left behind (the supervisor was killed) is
    # stopped here, by the pid the supervisor recorded, only while it is still a process of this stack.
    leftovers = [p for p in started_pids(state_dir) if _alive(p) and any(m in _cmdline(p) for m in CHILD_MARKS)]
    for child in leftovers:
        _stop_pid(child)
    still = [p for p in [pid, *started_pids(state_dir)] if _alive(p)]
    (state_dir / "state.json").unlink(missing_ok=True)
    if still:
        print(f"error: still running: {', '.join(map(str, still))}", file=sys.stderr)
        return 1
    print(
        f"the local stack is down: {1 + len(started_pids(state_dir))} processes stopped; "
        f"the emulator's store stays in {state_dir / 'emulator.sqlite'}"
    )
    return 0


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def describe(state: dict[str, Any]) -> str:
    """What ``make up`` prints: endpoints, the producer environment, the resource names, what to try next."""
    resources = state["resources"]
    lines = [
        f"local stack {state['stack']} is up (make down stops it; logs in {state['stateDir']}/logs)",
        f"  moto (Kinesis, SQS, S3, CloudWatch): {state['moto']}",
        f"  Personalize Events emulator:         {state['emulator']}",
        "",
        f"producer environment (also in {state['stateDir']}/env.sh):",
        *(f"  export {name}={value}" for name, value in state["environment"].items()),
        "",
        "streams:",
        *(f"  {name}" for name in resources["streams"]),
        "queues:",
        *(f"  {url}" for url in resources["queues"]),
        "files (bucket, prefix per entity):",
        *(f"  s3://{bucket}/  {' '.join(prefixes)}" for bucket, prefixes in resources["buckets"].items()),
        f"rejects queue: {resources.get('rejectsQueue') or '(none)'}",
        f"failed Kinesis batches: s3://{resources.get('failedBatchesBucket') or '(none)'}/",
        "",
        "then: personalize-ingest status | replay --entity E --dry-run; "
        f"python -m emulator dump events --url {state['emulator']}",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = _arguments(argv)
    try:
        if args.action == "serve":
            return serve(args)
        if args.action == "start":
            return start(args)
        if args.action == "stop":
            return stop(args)
        state = _read_state(args.state_dir.resolve())
        print(describe(state) if state else "the local stack is not up")
        return 0
    except (TemplateError, LookupError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
