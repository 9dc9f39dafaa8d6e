"""cdk-nag (AwsSolutions) acknowledgments: every one carries the reason it is acceptable."""

from __future__ import annotations

from aws_cdk import Acknowledgment, CfnResource, Stack, Validations
from constructs import IConstruct


def acknowledge(scope: IConstruct, rule: str, reason: str, *, finding: str | None = None) -> None:
    """Acknowledge AwsSolutions ``rule`` on ``scope`` and below, for one ``finding`` when given.

    Parameters
    ----------
    rule
        Rule name without its pack, e.g. ``IAM5``.
    finding
        Granular finding, e.g. ``Resource::*``; without it, every finding of the rule is acknowledged.
    """
    suffix = f"[{finding}]" if finding else ""
    Validations.of(scope).acknowledge(
        Acknowledgment(id=f"AwsSolutions::AwsSolutions-{rule}{suffix}", reason=reason)
    )


def arn_reference(resource: IConstruct) -> str:
    """How cdk-nag spells ``GetAtt <resource>.Arn`` in a granular finding: ``<LogicalId.Arn>``."""
    default_child = resource.node.default_child
    assert isinstance(default_child, CfnResource), f"{resource.node.path} has no CloudFormation resource"
    stack = Stack.of(resource)
    return f"<{stack.resolve(stack.get_logical_id(default_child))}.Arn>"
