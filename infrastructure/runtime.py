"""What every function shares: runtime, architecture and the Powertools layer."""

from __future__ import annotations

import re
from pathlib import Path

from aws_cdk import Stack
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

RUNTIME = lambda_.Runtime.PYTHON_3_14
"""Latest Python runtime of aws-cdk-lib 2.275 that Powertools publishes a layer for."""
ARCHITECTURE = lambda_.Architecture.ARM_64

# NOTE: Powertools for AWS Lambda (Python) v3 publishes one public layer per runtime and architecture from this
# account in every commercial region; China and GovCloud publish under other accounts and are not supported here.
POWERTOOLS_ACCOUNT = "017000801446"
_MACHINE = "arm64" if ARCHITECTURE.name == lambda_.Architecture.ARM_64.name else "x86_64"
_REQUIREMENTS = Path(__file__).resolve().parent.parent / "requirements.txt"


def pinned_powertools_version(requirements: Path = _REQUIREMENTS) -> str:
    """The Powertools release pinned in requirements.txt: the layer must carry the code the tests ran against."""
    match = re.search(r"^aws-lambda-powertools(?:\[[^\]]*\])?==([\w.]+)\s*$", requirements.read_text(), re.M)
    if match is None:
        raise ValueError(f"{requirements}: aws-lambda-powertools is not pinned with '=='")
    return match.group(1)


def powertools_layer_arn(stack: Stack, version: int | None) -> str:
    """ARN of the public Powertools v3 layer for the stack's region; no lookup at synth.

    With a layer ``version`` the ARN is built (a token when the stack is env-agnostic): the layer name carries the
    runtime without its dot, ``AWSLambdaPowertoolsPythonV3-python314-arm64:<version>``. Without one, it is a
    CloudFormation dynamic reference to the SSM public parameter Powertools publishes per release in every
    region it serves, ``/aws/service/powertools/python/<arch>/<runtime>/<release>``, resolved at deploy time
    for the release pinned in requirements.txt.
    """
    if version is None:
        release = pinned_powertools_version()
        return f"{{{{resolve:ssm:/aws/service/powertools/python/{_MACHINE}/{RUNTIME.name}/{release}}}}}"
    runtime_tag = RUNTIME.name.replace(".", "")
    return (
        f"arn:aws:lambda:{stack.region}:{POWERTOOLS_ACCOUNT}:layer:"
        f"AWSLambdaPowertoolsPythonV3-{runtime_tag}-{_MACHINE}:{version}"
    )


def powertools_layer(scope: Construct, version: int | None) -> lambda_.ILayerVersion:
    """The Powertools layer, imported by ARN or by its SSM public parameter (no lookup at synth)."""
    return lambda_.LayerVersion.from_layer_version_arn(
        scope, "PowertoolsLayer", powertools_layer_arn(Stack.of(scope), version)
    )
