"""``status``: is anything stuck? Per entity, from the stack's outputs and CloudWatch.

- queue depth (visible and in flight) of each queue the entity's function reads, and of its dead-letter queue;
- rejects waiting in the rejects queue (all entities share it: one figure);
- the last hour's RecordsDelivered / RecordsRejected / RecordsFailed, the functions' own metrics (namespace from
  ``--namespace``, else the outputs' ``MetricsNamespace``, else the stack's default ``PersonalizeIngest``);
- the alarms in ALARM whose names start with the stack's name.

Exit 1 when something needs a person: a DLQ holds messages, records failed in the last hour, or an alarm is in
ALARM; 0 otherwise.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3

from ingest_cli import runtime
from ingest_cli.output import OK, PROBLEMS, Output
from ingest_cli.sending import Queue
from ingest_cli.stack import StackOutputs
from ingest_cli.stack import load as load_outputs

WINDOW = timedelta(hours=1)
METRICS = {
    "delivered": runtime.RECORDS_DELIVERED,
    "rejected": runtime.RECORDS_REJECTED,
    "failed": runtime.RECORDS_FAILED,
}


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "status",
        help="queue and DLQ depths, rejects waiting, last hour's counts and alarms, per entity",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--entity", help="only this entity (default: every entity of the stack)")
    parser.add_argument("--namespace", help="CloudWatch namespace of the functions' metrics")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, out: Output) -> int:
    outputs = load_outputs(args.outputs, args.stack)
    entities = [runtime.entity_named(args.entity).name] if args.entity else outputs.entities()
    sqs = boto3.client("sqs")
    cloudwatch = boto3.client("cloudwatch")
    namespace = args.namespace or outputs.namespace
    # NOTE: the request carries whole seconds; a minute of slack keeps the data points of this very second.
    end = datetime.now(UTC) + timedelta(minutes=1)
    per_entity = [_entity_status(outputs, entity, sqs, cloudwatch, namespace, end) for entity in entities]
    rejects_url = outputs.get("RejectsQueueUrl")
    rejects = Queue(rejects_url, sqs).depth() if rejects_url else None
    alarms = _alarms(cloudwatch, outputs)
    document = {
        "stack": outputs.name,
        "namespace": namespace,
        "window": {"start": (end - WINDOW).isoformat(), "end": end.isoformat()},
        "entities": per_entity,
        "rejectsWaiting": rejects,
        "alarmsInAlarm": alarms,
    }
    attention = _attention(per_entity, alarms)
    document["attention"] = attention
    out.document(document)
    _print(out, document)
    return PROBLEMS if attention else OK


def _entity_status(
    outputs: StackOutputs, entity: str, sqs: Any, cloudwatch: Any, namespace: str, end: datetime
) -> dict[str, Any]:
    queues = []
    for url in outputs.source_queues(entity):
        queue = Queue(url, sqs)
        dlq_url = queue.dead_letter_url()
        queues.append(
            {
                "queue": url.rsplit("/", 1)[-1],
                **queue.depth(),
                "dlq": dlq_url.rsplit("/", 1)[-1] if dlq_url else None,
                "dlqMessages": Queue(dlq_url, sqs).depth()["visible"] if dlq_url else 0,
            }
        )
    last_hour = {label: _sum(cloudwatch, namespace, metric, entity, end) for label, metric in METRICS.items()}
    return {
        "entity": entity,
        "stream": outputs.entity(entity, "StreamName"),
        "queues": queues,
        "lastHour": last_hour,
    }


def _sum(cloudwatch: Any, namespace: str, metric: str, entity: str, end: datetime) -> int:
    response = cloudwatch.get_metric_statistics(
        Namespace=namespace,
        MetricName=metric,
        Dimensions=[{"Name": runtime.ENTITY_DIMENSION, "Value": entity}],
        StartTime=end - WINDOW - timedelta(minutes=1),
        EndTime=end,
        Period=int((WINDOW + timedelta(minutes=1)).total_seconds()),
        Statistics=["Sum"],
    )
    return int(sum(point.get("Sum", 0) for point in response.get("Datapoints", [])))


def _alarms(cloudwatch: Any, outputs: StackOutputs) -> list[dict[str, str]]:
    request: dict[str, Any] = {"StateValue": "ALARM"}
    if outputs.name:
        request["AlarmNamePrefix"] = outputs.name
    alarms = []
    for page in cloudwatch.get_paginator("describe_alarms").paginate(**request):
        for alarm in page.get("MetricAlarms", []) + page.get("CompositeAlarms", []):
            alarms.append({"name": alarm["AlarmName"], "reason": alarm.get("StateReason", "")})
    return alarms


def _attention(per_entity: list[dict[str, Any]], alarms: list[dict[str, str]]) -> list[str]:
    notes = [f"alarm {alarm['name']} is in ALARM" for alarm in alarms]
    for status in per_entity:
        for queue in status["queues"]:
            if queue["dlqMessages"]:
                notes.append(
                    f"{status['entity']}: {queue['dlqMessages']} message(s) in DLQ {queue['dlq']} "
                    f"(personalize-ingest redrive --entity {status['entity']})"
                )
        if status["lastHour"]["failed"]:
            notes.append(f"{status['entity']}: {status['lastHour']['failed']} record(s) failed in the last hour")
    return notes


def _print(out: Output, document: dict[str, Any]) -> None:
    out.line(
        f"stack {document['stack'] or '(unnamed)'}; last hour from CloudWatch namespace {document['namespace']}"
    )
    out.line(
        f"{'entity':<20} {'queued':>7} {'in flight':>9} {'DLQ':>5} {'delivered':>10} {'rejected':>9} {'failed':>7}"
    )
    for status in document["entities"]:
        queued = sum(q["visible"] for q in status["queues"])
        flight = sum(q["inFlight"] for q in status["queues"])
        dlq = sum(q["dlqMessages"] for q in status["queues"])
        hour = status["lastHour"]
        out.line(
            f"{status['entity']:<20} {queued:>7} {flight:>9} {dlq:>5} {hour['delivered']:>10} "
            f"{hour['rejected']:>9} {hour['failed']:>7}"
        )
    rejects = document["rejectsWaiting"]
    if rejects is not None:
        out.line(
            f"rejects waiting: {rejects['visible']} (+{rejects['inFlight']} being read)"
            + ("; personalize-ingest replay --entity E" if rejects["visible"] else "")
        )
    if document["attention"]:
        out.line("needs attention:")
        for note in document["attention"]:
            out.line(f"  - {note}")
    else:
        out.line("nothing stuck")
