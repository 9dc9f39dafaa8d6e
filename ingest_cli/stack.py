"""Where the stack's resources are: its CloudFormation outputs, from a file or from CloudFormation itself.

The outputs are the stack's own (``RejectsQueueUrl``, ``IngestBucketName``, ``FailedBatchesBucketName`` and per
entity ``<Entity>StreamName``, ``<Entity>QueueUrl``, ``<Entity>NotificationsQueueUrl``, ``<Entity>FunctionName``).
They come from, in this order:

1. ``--outputs FILE``: a JSON file, either flat (``{"RejectsQueueUrl": ...}``) or as ``cdk deploy --outputs-file``
   writes it (``{"<stack>": {...}}``); ``make up`` writes one for the local stack;
2. the ``PERSONALIZE_INGEST_OUTPUTS`` variable naming such a file;
3. ``--stack NAME`` (or ``PERSONALIZE_INGEST_STACK``): CloudFormation DescribeStacks.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

OUTPUTS_VARIABLE = "PERSONALIZE_INGEST_OUTPUTS"
STACK_VARIABLE = "PERSONALIZE_INGEST_STACK"
NAMESPACE_OUTPUT = "MetricsNamespace"
"""Not a CloudFormation output of the stack: ``make up`` adds it, read from the functions' environment."""
DEFAULT_NAMESPACE = "PersonalizeIngest"
"""The stack's default metrics namespace (cdk.json ``metricsNamespace``)."""


class StackError(Exception):
    """The stack's outputs cannot be found or lack what a command needs; the message says which."""


def pascal(entity: str) -> str:
    """``action_interactions`` -> ``ActionInteractions``: the prefix of an entity's outputs."""
    return "".join(part.capitalize() for part in entity.split("_"))


@dataclass(frozen=True, slots=True)
class StackOutputs:
    """The outputs of one deployed (or local) stack."""

    name: str | None
    outputs: Mapping[str, str]

    def get(self, key: str) -> str | None:
        return self.outputs.get(key) or None

    def require(self, key: str, what: str) -> str:
        value = self.get(key)
        if value is None:
            raise StackError(f"the stack has no output {key} ({what}); is that part of it deployed?")
        return value

    def entity(self, entity: str, suffix: str) -> str | None:
        return self.get(f"{pascal(entity)}{suffix}")

    def entities(self) -> list[str]:
        """Entities with a function in the stack, in the runtime's order."""
        from ingest_cli.runtime import ENTITIES

        return [name for name in ENTITIES if self.entity(name, "FunctionName") or self.source_queues(name)]

    def source_queues(self, entity: str) -> list[str]:
        """URLs of the queues the entity's function reads (its queue and its S3 notifications queue)."""
        urls = [self.entity(entity, "QueueUrl"), self.entity(entity, "NotificationsQueueUrl")]
        return list(dict.fromkeys(url for url in urls if url))

    @property
    def namespace(self) -> str:
        return self.get(NAMESPACE_OUTPUT) or DEFAULT_NAMESPACE


def load(outputs_file: Path | None, stack_name: str | None, cloudformation: Any = None) -> StackOutputs:
    """The stack's outputs (see the module docstring for where they come from).

    Raises
    ------
    StackError
        when none of the sources is given, or the one given cannot be read.
    """
    path = outputs_file or (Path(os.environ[OUTPUTS_VARIABLE]) if os.environ.get(OUTPUTS_VARIABLE) else None)
    if path is not None:
        return _from_file(path)
    name = stack_name or os.environ.get(STACK_VARIABLE)
    if name:
        return _from_cloudformation(name, cloudformation)
    raise StackError(
        f"where is the stack? give --outputs FILE (or {OUTPUTS_VARIABLE}; `make up` prints it) "
        f"or --stack NAME (or {STACK_VARIABLE})"
    )


def _from_file(path: Path) -> StackOutputs:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise StackError(f"the outputs file {path} cannot be read: {exc.strerror or exc}") from exc
    except ValueError as exc:
        raise StackError(f"the outputs file {path} is not JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise StackError(f"the outputs file {path} must hold a JSON object")
    nested = [value for value in document.values() if isinstance(value, dict)]
    if len(document) == 1 and len(nested) == 1:
        ((name, outputs),) = document.items()
        return StackOutputs(name, {k: str(v) for k, v in outputs.items()})
    return StackOutputs(document.get("StackName"), {k: str(v) for k, v in document.items()})


def _from_cloudformation(name: str, cloudformation: Any) -> StackOutputs:
    from botocore.exceptions import BotoCoreError, ClientError

    if cloudformation is None:
        import boto3

        cloudformation = boto3.client("cloudformation")
    try:
        (stack,) = cloudformation.describe_stacks(StackName=name)["Stacks"]
    except (ClientError, BotoCoreError) as exc:
        raise StackError(f"stack {name} cannot be described: {exc}") from exc
    return StackOutputs(name, {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])})
