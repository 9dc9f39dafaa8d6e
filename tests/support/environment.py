"""The fake AWS environment and function targets shared by the tests and the benchmarks.

Credentials are fake and the region fixed, so no profile or real account can be reached; each entity's function is
pointed at the emulator's default tracking id or dataset ARN.
"""

from __future__ import annotations

from typing import Any

from emulator.config import DEFAULT_ACTION_TRACKING_ID, DEFAULT_DATASET_ARNS, DEFAULT_TRACKING_ID

FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}
"""Fake credentials and a fixed region, which moto and the emulator accept."""
LEAKY_VARIABLES = (
    "AWS_PROFILE",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_PERSONALIZE_EVENTS",
    "AWS_ENDPOINT_URL_PERSONALIZE",
)
"""Variables removed before a run, so no profile or real endpoint of the caller's shell can leak in."""
TARGETS = {
    "events": ("PERSONALIZE_TRACKING_ID", DEFAULT_TRACKING_ID),
    "action_interactions": ("PERSONALIZE_TRACKING_ID", DEFAULT_ACTION_TRACKING_ID),
    "items": ("PERSONALIZE_DATASET_ARN", DEFAULT_DATASET_ARNS["ITEMS"]),
    "users": ("PERSONALIZE_DATASET_ARN", DEFAULT_DATASET_ARNS["USERS"]),
    "actions": ("PERSONALIZE_DATASET_ARN", DEFAULT_DATASET_ARNS["ACTIONS"]),
}
"""Entity -> (variable, value) naming its function's target in the emulator."""


def target_environment(entity: str) -> dict[str, str]:
    """The variable that points ``entity``'s function at its target in the emulator."""
    variable, target = TARGETS[entity]
    return {variable: target}


def drain(sqs: Any, url: str) -> list[str]:
    """Receive and delete every message of a queue; return the bodies."""
    bodies: list[str] = []
    while True:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
        if not messages:
            return bodies
        for message in messages:
            bodies.append(message["Body"])
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
