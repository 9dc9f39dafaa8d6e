"""``python -m local.demo``: the whole pipeline on this machine, wired from the synthesized stack.

Starts moto server and the Personalize Events emulator on free loopback ports, creates the template's streams,
queues and bucket in moto, runs every function in its own worker behind the local event-source runner, feeds the
sample data, waits until everything is drained, prints where every record went, and stops every process it
started. Exit status 1 when a distinct record sent is in none of: the emulator's store, the rejects queue, a DLQ
or an on-failure destination.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3

from local.accounting import account, gather
from local.feed import SAMPLES_DIR, Feeder, generated_catalogue, read_samples
from local.report import Report, render
from local.resources import create_resources
from local.runner import Runner
from local.servers import FAKE_CREDENTIALS, REPO_ROOT, child_processes, start_emulator, start_moto, stop_on_sigterm
from local.stack import LocalStack, read_stack
from local.template import LocalAccount, TemplateError, load_template
from personalize_ingest.contract import DATASET_ARN_VARIABLE, TRACKING_ID_VARIABLE

sys.path.insert(0, str(REPO_ROOT / "functions"))
from personalize_ingest.bulk_routing import DEFAULT_MIN_ROWS, ENABLED_VARIABLE, MIN_ROWS_VARIABLE

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

DEFAULT_STACK = "PersonalizeIngest"
DEFAULT_TIME_SCALE = 0.01
"""LOCAL_TIME_SCALE's default: a 360 s visibility timeout becomes 4 s, a 60 s retry backoff 0.6 s."""
IMPORT_JOB_TIMES = {"pendingSeconds": 0.5, "inProgressSeconds": 1.0}
"""How long the emulator's import jobs stay pending and in progress (the service takes minutes)."""
DRAIN_CHECK_INTERVAL_S = 0.5
DRAIN_STABLE_CHECKS = 2


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m local.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--stack", default=DEFAULT_STACK, help=f"stack name (default {DEFAULT_STACK})")
    parser.add_argument(
        "--template", type=Path, help="synthesized template (default cdk.out/<stack>.template.json)"
    )
    parser.add_argument("--samples", type=Path, default=SAMPLES_DIR, help="sample data folder (default samples/)")
    parser.add_argument(
        "--limit", type=int, help="valid records per sample file (default: all; broken ones always)"
    )
    parser.add_argument(
        "--time-scale",
        type=float,
        default=float(os.environ.get("LOCAL_TIME_SCALE") or DEFAULT_TIME_SCALE),
        help="factor for visibility timeouts and retry backoff (env LOCAL_TIME_SCALE, default %(default)s)",
    )
    parser.add_argument("--timeout", type=float, default=150, help="seconds to wait for the drain (default 150)")
    parser.add_argument("--run-dir", type=Path, default=REPO_ROOT / "build" / "demo", help="logs and state")
    parser.add_argument("--json", type=Path, help="also write the report as JSON to this file")
    return parser.parse_args(argv)


def emulator_config(stack: LocalStack, moto_url: str | None = None) -> dict[str, Any]:
    """An emulator configuration serving exactly the tracking ids and dataset ARNs the functions are given; its
    import jobs read from moto at ``moto_url`` and check the role and bucket policy created there."""
    group: dict[str, Any] = {"name": "template", "datasets": {}}
    for function in stack.functions.values():
        env = function.environment
        if function.entity == "events" and env.get(TRACKING_ID_VARIABLE):
            group["trackingId"] = env[TRACKING_ID_VARIABLE]
        elif function.entity == "action_interactions" and env.get(TRACKING_ID_VARIABLE):
            group["actionTrackingId"] = env[TRACKING_ID_VARIABLE]
        elif env.get(DATASET_ARN_VARIABLE):
            arn = env[DATASET_ARN_VARIABLE]
            group["datasets"][arn.rsplit("/", 1)[-1]] = arn
    config: dict[str, Any] = {
        "datasetGroups": [group],
        "credentials": [{"accessKeyId": "testing", "secretAccessKey": "testing"}],
    }
    if moto_url is not None:
        config["importJobs"] = {**IMPORT_JOB_TIMES, "s3EndpointUrl": moto_url}
    return config


def import_route_rows(stack: LocalStack) -> int | None:
    """Rows of the generated catalogue when the template turns the items import route on: a quarter above its
    threshold, so the row estimate (from the file's first 64 KiB) lands above it."""
    for function in stack.functions.values():
        env = function.environment
        if function.entity == "items" and env.get(ENABLED_VARIABLE) == "true":
            return int(env.get(MIN_ROWS_VARIABLE) or DEFAULT_MIN_ROWS) * 5 // 4
    return None


def wait_until_drained(runner: Runner, sqs: SQSClient, queue_urls: Sequence[str], timeout_s: float) -> bool:
    """Wait until every poller looked at its source since now and found nothing, and the source queues are empty.

    Returns False when ``timeout_s`` passes first.
    """
    marker = runner.marker()
    deadline = time.monotonic() + timeout_s
    stable = 0
    while time.monotonic() < deadline:
        runner.check()
        stable = stable + 1 if runner.idle_since(marker) and _queues_empty(sqs, queue_urls) else 0
        if stable >= DRAIN_STABLE_CHECKS:
            return True
        time.sleep(DRAIN_CHECK_INTERVAL_S)
    return False


def _queues_empty(sqs: SQSClient, queue_urls: Sequence[str]) -> bool:
    names: Any = [
        "ApproximateNumberOfMessages",
        "ApproximateNumberOfMessagesNotVisible",
        "ApproximateNumberOfMessagesDelayed",
    ]
    for url in queue_urls:
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
        if any(int(attributes.get(name, "0")) for name in names):
            return False
    return True


def _say(started: float, message: str) -> None:
    print(f"[{time.monotonic() - started:5.1f}s] {message}", flush=True)


def run(args: argparse.Namespace) -> tuple[Report, list[int]]:
    """Run the demo; return the report and the pids of every process it started (all stopped by then)."""
    started = time.monotonic()
    os.environ.pop("AWS_PROFILE", None)
    os.environ.update(FAKE_CREDENTIALS)
    template_path = args.template or REPO_ROOT / "cdk.out" / f"{args.stack}.template.json"
    template = load_template(template_path)
    args.run_dir.mkdir(parents=True, exist_ok=True)
    with stop_on_sigterm(), child_processes(args.run_dir / "logs") as children:
        moto_url = start_moto(children)
        _say(started, f"moto server (Kinesis, SQS, S3) on {moto_url}")
        stack = read_stack(template, LocalAccount(args.stack, endpoint_url=moto_url))
        config_path = args.run_dir / "emulator.json"
        config_path.write_text(json.dumps(emulator_config(stack, moto_url), indent=2), encoding="utf-8")
        emulator_url = start_emulator(children, config_path)
        _say(started, f"Personalize Events emulator on {emulator_url}")
        create_resources(stack, moto_url, time_scale=args.time_scale)
        _say(
            started,
            f"from {template_path}: {len(stack.streams)} streams, {len(stack.queues)} queues, "
            f"{len(stack.buckets)} buckets, "
            f"{len(stack.functions)} functions, {len(stack.mappings)} event-source mappings "
            f"(time scale {args.time_scale})",
        )
        runner = Runner(stack, children, moto_url, emulator_url, args.time_scale)
        runner.start()
        try:
            feed_started = time.monotonic()
            samples = read_samples(args.samples, limit=args.limit)
            catalogue_rows = import_route_rows(stack)
            if catalogue_rows is not None:
                # A file at the items import route's threshold: it goes to a dataset import job, not PutItems.
                samples.append(generated_catalogue(catalogue_rows))
            sent = Feeder(stack, moto_url).feed(samples)
            by_source = Counter(f"{record.entity}/{record.source}" for record in sent)
            _say(started, "sent " + ", ".join(f"{n} {name}" for name, n in by_source.items()))
            sqs = boto3.client("sqs", endpoint_url=moto_url, region_name=stack.account.region)
            source_urls = [queue.url for queue in stack.queues.values() if queue.arn in stack.sqs_sources()]
            drained = wait_until_drained(runner, sqs, source_urls, args.timeout)
            drain_seconds = time.monotonic() - feed_started
            _say(started, "drained" if drained else f"not drained after {args.timeout:.0f} s; reporting anyway")
            evidence = gather(stack, moto_url, emulator_url, sent)
        finally:
            runner.stop()
        pids = list(children.started_pids)
    report = Report(
        account(sent, evidence), evidence, drain_seconds, time.monotonic() - started, drained, runner.invocations()
    )
    return report, pids


def main(argv: Sequence[str] | None = None) -> int:
    args = _arguments(argv)
    try:
        report, pids = run(args)
    except (TemplateError, LookupError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; every process the demo started is stopped", file=sys.stderr)
        return 130
    print(render(report), flush=True)
    if args.json:
        args.json.write_text(json.dumps({**report.as_dict(), "pids": pids}, indent=2), encoding="utf-8")
    print(f"Logs of every function and server: {args.run_dir / 'logs'}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
