"""Read a synthesized CloudFormation template and resolve its intrinsic functions to local names.

CloudFormation gives each resource a physical name at deploy time; locally the name is derived from the stack
and the logical id, so the same template always yields the same names. ``Ref`` and ``Fn::GetAtt`` answer what
CloudFormation documents for each resource type (a queue's ``Ref`` is its URL, a stream's is its name ...), with
URLs pointing at the local moto server.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class TemplateError(Exception):
    """The template uses something the local stack cannot resolve; the message names the resource or function."""


@dataclass(frozen=True, slots=True)
class LocalAccount:
    """Pseudo parameters and endpoints the local stack substitutes for a real account."""

    stack_name: str
    region: str = "us-east-1"
    account_id: str = "123456789012"
    """moto's default account: ARNs built here must match the ones moto builds."""
    endpoint_url: str = "http://127.0.0.1"
    """The moto server's URL; queue URLs are built on it as moto builds them."""
    partition: str = "aws"


@dataclass(frozen=True, slots=True)
class PhysicalResource:
    """What ``Ref`` and ``Fn::GetAtt`` return for one resource."""

    ref: str
    attributes: Mapping[str, str] = field(default_factory=dict)


NO_VALUE = object()
"""Marker for ``AWS::NoValue``: the key or list element holding it is removed."""


def load_template(path: Path) -> dict[str, Any]:
    """Load a synthesized template (JSON, as ``cdk synth`` writes it to ``cdk.out``)."""
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TemplateError(f"no synthesized template at {path}: run `make synth` first") from None
    if not isinstance(body, dict) or not isinstance(body.get("Resources"), dict):
        raise TemplateError(f"{path} is not a CloudFormation template (no Resources object)")
    return body


def physical_name(account: LocalAccount, logical_id: str, *, max_length: int, lower: bool = False) -> str:
    """A deterministic stand-in for a CloudFormation-generated name: ``<stack>-<logicalId>``, cut to fit."""
    name = f"{account.stack_name}-{logical_id}"
    if lower:
        name = re.sub(r"[^a-z0-9.-]", "-", name.lower())
    return name[:max_length].rstrip("-.")


class Resolver:
    """Resolves the intrinsic functions of one template for one :class:`LocalAccount`.

    Supported: ``Ref``, ``Fn::GetAtt``, ``Fn::Join``, ``Fn::Select``, ``Fn::Split``, ``Fn::Sub`` (both forms),
    ``Fn::If`` with the template's ``Conditions`` (``Fn::Equals``, ``Fn::Not``, ``Fn::And``, ``Fn::Or``,
    ``Condition``), ``Fn::FindInMap``, ``Fn::Base64``, ``Fn::GetAZs`` and ``AWS::NoValue``. ``Fn::ImportValue``
    needs another stack and is refused.
    """

    def __init__(self, template: Mapping[str, Any], account: LocalAccount) -> None:
        self.template = template
        self.account = account
        self.resources: Mapping[str, Mapping[str, Any]] = template.get("Resources", {})
        self._physical: dict[str, PhysicalResource] = {}
        self._conditions: dict[str, bool] = {}

    # --- names -------------------------------------------------------------------------------------------------

    def physical(self, logical_id: str) -> PhysicalResource:
        """``Ref`` and attributes of a resource, derived once from its type and properties."""
        if logical_id not in self._physical:
            resource = self.resources.get(logical_id)
            if resource is None:
                raise TemplateError(f"Ref/GetAtt to {logical_id!r}, which is not a resource of the template")
            self._physical[logical_id] = self._derive(logical_id, resource)
        return self._physical[logical_id]

    def _derive(self, logical_id: str, resource: Mapping[str, Any]) -> PhysicalResource:
        acct = self.account
        kind = resource.get("Type", "")
        props = resource.get("Properties", {})
        prefix = f"arn:{acct.partition}"
        if kind == "AWS::SQS::Queue":
            fifo = self.resolve(props.get("FifoQueue", False)) in (True, "true")
            name = self.resolve(props.get("QueueName")) or (
                physical_name(acct, logical_id, max_length=75 if fifo else 80) + (".fifo" if fifo else "")
            )
            url = f"{acct.endpoint_url}/{acct.account_id}/{name}"
            arn = f"{prefix}:sqs:{acct.region}:{acct.account_id}:{name}"
            return PhysicalResource(url, {"Arn": arn, "QueueName": name, "QueueUrl": url})
        if kind == "AWS::Kinesis::Stream":
            name = self.resolve(props.get("Name")) or physical_name(acct, logical_id, max_length=128)
            return PhysicalResource(
                name, {"Arn": f"{prefix}:kinesis:{acct.region}:{acct.account_id}:stream/{name}"}
            )
        if kind == "AWS::S3::Bucket":
            name = self.resolve(props.get("BucketName")) or physical_name(
                acct, logical_id, max_length=63, lower=True
            )
            return PhysicalResource(
                name,
                {
                    "Arn": f"{prefix}:s3:::{name}",
                    "DomainName": f"{name}.s3.amazonaws.com",
                    "RegionalDomainName": f"{name}.s3.{acct.region}.amazonaws.com",
                },
            )
        if kind == "AWS::Lambda::Function":
            name = self.resolve(props.get("FunctionName")) or physical_name(acct, logical_id, max_length=64)
            return PhysicalResource(
                name, {"Arn": f"{prefix}:lambda:{acct.region}:{acct.account_id}:function:{name}"}
            )
        if kind == "AWS::IAM::Role":
            # NOTE: a role ARN has no region (the import route checks that BULK_IMPORT_ROLE_ARN is one).
            name = self.resolve(props.get("RoleName")) or physical_name(acct, logical_id, max_length=64)
            return PhysicalResource(name, {"Arn": f"{prefix}:iam::{acct.account_id}:role/{name}", "RoleId": name})
        if kind == "AWS::SNS::Topic":
            name = self.resolve(props.get("TopicName")) or physical_name(acct, logical_id, max_length=256)
            arn = f"{prefix}:sns:{acct.region}:{acct.account_id}:{name}"
            return PhysicalResource(arn, {"TopicName": name, "TopicArn": arn})
        # NOTE: roles, policies, keys, alarms, log groups ... are not created locally; a stable placeholder keeps
        # every reference to them resolvable (e.g. a KMS key ARN inside a queue's properties).
        service = kind.split("::")[1].lower() if kind.count("::") == 2 else "local"
        placeholder = f"{prefix}:{service}:{acct.region}:{acct.account_id}:{logical_id}"
        return PhysicalResource(f"{acct.stack_name}-{logical_id}", {"Arn": placeholder})

    # --- intrinsic functions -----------------------------------------------------------------------------------

    def resolve(self, value: Any) -> Any:
        """Return ``value`` with every intrinsic function replaced by its local result."""
        result = self._resolve(value)
        return None if result is NO_VALUE else result

    def _resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [item for item in (self._resolve(v) for v in value) if item is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, argument),) = value.items()
            handler = self._FUNCTIONS.get(key)
            if handler is not None:
                return handler(self, argument)
            if key == "Fn::ImportValue":
                raise TemplateError("Fn::ImportValue needs another stack's outputs; the local stack has none")
        resolved = {k: self._resolve(v) for k, v in value.items()}
        return {k: v for k, v in resolved.items() if v is not NO_VALUE}

    def _ref(self, name: str) -> Any:
        acct = self.account
        pseudo = {
            "AWS::Region": acct.region,
            "AWS::AccountId": acct.account_id,
            "AWS::Partition": acct.partition,
            "AWS::StackName": acct.stack_name,
            "AWS::StackId": f"arn:{acct.partition}:cloudformation:{acct.region}:{acct.account_id}:stack/"
            f"{acct.stack_name}/00000000-0000-0000-0000-000000000000",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::NotificationARNs": [],
        }
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in pseudo:
            return pseudo[name]
        parameter = self.template.get("Parameters", {}).get(name)
        if parameter is not None:
            if "Default" not in parameter:
                raise TemplateError(f"parameter {name!r} has no default; the local stack cannot choose a value")
            default = parameter["Default"]
            # NOTE: CDK's BootstrapVersion parameter is an SSM parameter *name*; its value only feeds a rule that
            # checks the bootstrap stack, which does not exist locally.
            return default
        return self.physical(name).ref

    def _get_att(self, argument: Any) -> str:
        if isinstance(argument, str):
            logical_id, _, attribute = argument.partition(".")
        else:
            logical_id, attribute = argument[0], self._resolve(argument[1])
        attributes = self.physical(logical_id).attributes
        if attribute not in attributes:
            kind = self.resources[logical_id].get("Type")
            raise TemplateError(f"Fn::GetAtt {logical_id}.{attribute}: attribute not emulated for {kind}")
        return attributes[attribute]

    def _join(self, argument: Any) -> str:
        delimiter, items = argument
        return str(delimiter).join(str(item) for item in self._resolve(items))

    def _select(self, argument: Any) -> Any:
        index, items = argument
        return self._resolve(items)[int(self._resolve(index))]

    def _split(self, argument: Any) -> list[str]:
        delimiter, text = argument
        return str(self._resolve(text)).split(delimiter)

    def _sub(self, argument: Any) -> str:
        if isinstance(argument, str):
            text, variables = argument, {}
        else:
            text, variables = argument[0], {k: self._resolve(v) for k, v in argument[1].items()}

        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                return str(variables[name])
            if "." in name:
                return self._get_att(name)
            return str(self._ref(name))

        return re.sub(r"\$\{([^}]+)\}", substitute, text)

    def _if(self, argument: Any) -> Any:
        condition, when_true, when_false = argument
        return self._resolve(when_true if self.condition(condition) else when_false)

    def _find_in_map(self, argument: Any) -> Any:
        map_name, first, second = (self._resolve(a) for a in argument)
        try:
            return self.template["Mappings"][map_name][first][second]
        except KeyError:
            raise TemplateError(f"Fn::FindInMap [{map_name}, {first}, {second}] has no entry") from None

    def _get_azs(self, argument: Any) -> list[str]:
        return [f"{self.account.region}{zone}" for zone in "abc"]

    def _base64(self, argument: Any) -> str:
        return base64.b64encode(str(self._resolve(argument)).encode()).decode()

    def condition(self, name: str) -> bool:
        """Evaluate one of the template's named conditions."""
        if name not in self._conditions:
            definition = self.template.get("Conditions", {}).get(name)
            if definition is None:
                raise TemplateError(f"condition {name!r} is not defined in the template")
            self._conditions[name] = self._evaluate(definition)
        return self._conditions[name]

    def _evaluate(self, expression: Any) -> bool:
        ((key, argument),) = expression.items()
        if key == "Fn::Equals":
            left, right = (self._resolve(a) for a in argument)
            return bool(left == right)
        if key == "Fn::Not":
            return not self._evaluate(argument[0])
        if key == "Fn::And":
            return all(self._evaluate(a) for a in argument)
        if key == "Fn::Or":
            return any(self._evaluate(a) for a in argument)
        if key == "Condition":
            return self.condition(argument)
        raise TemplateError(f"condition function {key} is not supported locally")

    _FUNCTIONS: dict[str, Any] = {
        "Ref": _ref,
        "Fn::GetAtt": _get_att,
        "Fn::Join": _join,
        "Fn::Select": _select,
        "Fn::Split": _split,
        "Fn::Sub": _sub,
        "Fn::If": _if,
        "Fn::FindInMap": _find_in_map,
        "Fn::GetAZs": _get_azs,
        "Fn::Base64": _base64,
        "Condition": lambda self, name: self.condition(name),
    }

    def resources_of_type(self, kind: str) -> dict[str, Mapping[str, Any]]:
        """Resources of one type whose ``Condition`` (if any) holds, by logical id."""
        return {
            logical_id: resource
            for logical_id, resource in self.resources.items()
            if resource.get("Type") == kind
            and ("Condition" not in resource or self.condition(resource["Condition"]))
        }

    def properties(self, logical_id: str) -> dict[str, Any]:
        """The resolved ``Properties`` of one resource."""
        return self.resolve(self.resources[logical_id].get("Properties", {})) or {}
