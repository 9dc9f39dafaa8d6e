"""The background process behind ``make up``: runs the local stack until SIGTERM (started by :mod:`local.up`).

It runs what ``make demo`` runs (moto, the Personalize Events emulator with its store in a SQLite file, the local
event-source runner, and the forwarding of the functions' EMF metrics to moto's CloudWatch), then writes the state
files ``make up`` prints from, and waits. On SIGTERM every process it started is stopped.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
from pathlib import Path
from typing import Any

from local.demo import emulator_config
from local.metrics import EmfForwarder
from local.resources import create_resources
from local.runner import Runner
from local.servers import FAKE_CREDENTIALS, REPO_ROOT, child_processes, start_emulator, start_moto, stop_on_sigterm
from local.stack import LocalStack, read_stack
from local.template import LocalAccount, Resolver, TemplateError, load_template


def local_outputs(template: dict[str, Any], stack: LocalStack, account: LocalAccount) -> dict[str, str]:
    """The template's outputs resolved to local names, plus the functions' metrics namespace.

    An output the local stack cannot resolve (a dashboard's name) is left out: nothing local reads it.
    """
    resolver = Resolver(template, account)
    outputs: dict[str, str] = {}
    for key, output in template.get("Outputs", {}).items():
        try:
            outputs[key] = str(resolver.resolve(output["Value"]))
        except TemplateError:
            continue
    namespaces = {f.environment.get("POWERTOOLS_METRICS_NAMESPACE") for f in stack.functions.values()} - {None}
    if len(namespaces) == 1:
        outputs["MetricsNamespace"] = str(namespaces.pop())
    return outputs


def producer_environment(moto_url: str, emulator_url: str, region: str, outputs_path: Path) -> dict[str, str]:
    """What a producer (or ``personalize-ingest``) exports to reach the local stack with unmodified SDKs."""
    return {
        **FAKE_CREDENTIALS,
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        "AWS_ENDPOINT_URL": moto_url,
        "AWS_ENDPOINT_URL_PERSONALIZE_EVENTS": emulator_url,
        "PERSONALIZE_INGEST_OUTPUTS": str(outputs_path),
    }


def resource_names(stack: LocalStack, outputs: dict[str, str]) -> dict[str, Any]:
    """Streams, source queues, the bucket files are dropped in (prefix per entity), where rejects and failed
    Kinesis batches go."""
    return {
        "streams": sorted(s.name for s in stack.streams.values()),
        "queues": sorted(q.url for q in stack.queues.values() if q.arn in stack.sqs_sources()),
        "buckets": {
            b.name: sorted({n.prefix for n in b.notifications if n.prefix})
            for b in stack.buckets.values()
            if b.notifications
        },
        "rejectsQueue": outputs.get("RejectsQueueUrl"),
        "failedBatchesBucket": outputs.get("FailedBatchesBucketName"),
    }


def serve(args: argparse.Namespace) -> int:
    """Run the stack until SIGTERM; write the state files once it is ready."""
    os.environ.pop("AWS_PROFILE", None)
    os.environ.update(FAKE_CREDENTIALS)
    template_path = args.template or REPO_ROOT / "cdk.out" / f"{args.stack}.template.json"
    template = load_template(template_path)
    state_dir: Path = args.state_dir.resolve()
    with stop_on_sigterm(), child_processes(state_dir / "logs") as children:
        moto_url = start_moto(children)
        account = LocalAccount(args.stack, endpoint_url=moto_url)
        stack = read_stack(template, account)
        config_path = state_dir / "emulator.json"
        config_path.write_text(json.dumps(emulator_config(stack), indent=2), encoding="utf-8")
        emulator_url = start_emulator(children, config_path, db_path=state_dir / "emulator.sqlite")
        create_resources(stack, moto_url, time_scale=args.time_scale)
        runner = Runner(stack, children, moto_url, emulator_url, args.time_scale)
        runner.start()
        forwarder = EmfForwarder(state_dir / "logs", moto_url, account.region)
        forwarder.start()
        try:
            outputs = local_outputs(template, stack, account)
            outputs_path = state_dir / "outputs.json"
            outputs_path.write_text(json.dumps({args.stack: outputs}, indent=2), encoding="utf-8")
            environment = producer_environment(moto_url, emulator_url, account.region, outputs_path)
            (state_dir / "env.sh").write_text(
                "".join(f"export {name}={value}\n" for name, value in environment.items()), encoding="utf-8"
            )
            state = {
                "pid": os.getpid(),
                "stack": args.stack,
                "template": str(template_path),
                "moto": moto_url,
                "emulator": emulator_url,
                "environment": environment,
                "resources": resource_names(stack, outputs),
                "stateDir": str(state_dir),
            }
            _write_json(state_dir / "state.json", state)
            stopped = threading.Event()
            while not stopped.wait(1.0):
                runner.check()
        finally:
            forwarder.stop()
            runner.stop()
    return 0


def _write_json(path: Path, value: Any) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(value, indent=2), encoding="utf-8")
    os.replace(temporary, path)
