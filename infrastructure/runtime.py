"""What every function shares: runtime, architecture and the Powertools layer."""

from __future__ import annotations

from aws_cdk import Stack
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

RUNTIME = lambda_.Runtime.PYTHON_3_14
"""Latest Python runtime of aws-cdk-lib 2.275 that Powertools publishes a layer for."""
ARCHITECTURE = lambda_.Architecture.ARM_64

# NOTE: Powertools for AWS Lambda (Python) v3 publishes one public layer per runtime and architecture from this
# account in every commercial region; China and GovCloud publish under other accounts and are not supported here.
POWERTOOLS_ACCOUNT = "017000801446"


def powertools_layer_arn(stack: Stack, version: int) -> str:
    """ARN of the public Powertools v3 layer for the stack's region (a token when the stack is env-agnostic).

    The layer name carries the runtime without its dot: ``AWSLambdaPowertoolsPythonV3-python314-arm64``.
    """
    runtime_tag = RUNTIME.name.replace(".", "")
    machine = "arm64" if ARCHITECTURE.name == lambda_.Architecture.ARM_64.name else "x86_64"
    return (
        f"arn:aws:lambda:{stack.region}:{POWERTOOLS_ACCOUNT}:layer:"
        f"AWSLambdaPowertoolsPythonV3-{runtime_tag}-{machine}:{version}"
    )


def powertools_layer(scope: Construct, version: int) -> lambda_.ILayerVersion:
    """The Powertools layer, imported by ARN (no lookup at synth)."""
    return lambda_.LayerVersion.from_layer_version_arn(
        scope, "PowertoolsLayer", powertools_layer_arn(Stack.of(scope), version)
    )
