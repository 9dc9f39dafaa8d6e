"""The client factory: support clients take their timeouts from the time left, one client per configuration."""

from __future__ import annotations

import pytest

from personalize_ingest.clients import SUPPORT_CALL_ATTEMPTS
from personalize_ingest.clients import support_client as aws_client
from personalize_ingest.deadline import Deadline
from tests.support.factories import FakeLambdaContext


@pytest.mark.parametrize("service", ["sqs", "s3"])
def test_support_clients_take_their_timeouts_from_the_deadline(service: str) -> None:
    # GIVEN an invocation with plenty of time and one already inside its margin
    early = Deadline(FakeLambdaContext(600_000), margin_ms=5_000)
    late = Deadline(FakeLambdaContext(3_000), margin_ms=5_000)

    # WHEN the pipeline takes its client at each moment
    early_client, late_client = aws_client(service, early), aws_client(service, late)

    # THEN neither uses botocore's 60 s defaults, and the late one's attempts (1 s each) fit in the 3 s left
    assert (early_client.meta.config.connect_timeout, early_client.meta.config.read_timeout) == (2.0, 8.0)
    assert (late_client.meta.config.connect_timeout, late_client.meta.config.read_timeout) == (0.5, 0.5)
    assert late_client.meta.config.retries["total_max_attempts"] == SUPPORT_CALL_ATTEMPTS


def test_a_client_is_reused_while_its_timeouts_fit() -> None:
    # GIVEN two moments of an invocation that fall on the same timeout step
    first = Deadline(FakeLambdaContext(600_000), margin_ms=5_000)
    later = Deadline(FakeLambdaContext(300_000), margin_ms=5_000)

    # WHEN / THEN the container's client is reused (its connection pool too)
    assert aws_client("sqs", first) is aws_client("sqs", later)
