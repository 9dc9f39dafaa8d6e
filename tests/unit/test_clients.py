"""The client factory: support clients take their timeouts from the time left, one client per configuration."""

from __future__ import annotations

from typing import Any

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


def test_every_client_and_the_validation_share_one_botocore_session() -> None:
    # GIVEN the container's clients of three services and the records' service model
    from personalize_ingest import clients
    from personalize_ingest.config import Settings
    from personalize_ingest.entities import EVENTS
    from personalize_ingest.validation import service_model

    deadline = Deadline(FakeLambdaContext(600_000), margin_ms=5_000)
    settings = Settings(EVENTS, "tracker", None, 8, 4, 0.0, 5_000, None)
    events = clients.personalize_events_client(settings, deadline)
    sqs = clients.support_client("sqs", deadline)

    # THEN one botocore session made them all, and its loader parsed the personalize-events model once
    core = clients.botocore_session()
    assert clients.session()._session is core
    loader = core.get_component("data_loader")
    assert events.meta.service_model.service_name == service_model().service_name == "personalize-events"
    assert loader.load_service_model("personalize-events", "service-2") is loader.load_service_model(
        "personalize-events", "service-2"
    )
    assert sqs.meta.config.retries["mode"] == "standard"


def test_the_personalize_client_retries_in_standard_mode_with_the_hooks_installed_once() -> None:
    # GIVEN a rate-limited target (which used adaptive mode before)
    from personalize_ingest import clients
    from personalize_ingest.config import Settings
    from personalize_ingest.entities import ITEMS

    deadline = Deadline(FakeLambdaContext(600_000), margin_ms=5_000)
    arn = "arn:aws:personalize:us-east-1:123456789012:dataset/shop/ITEMS"
    settings = Settings(ITEMS, arn, None, 8, 4, 10.0, 5_000, None)

    # WHEN the client is taken twice
    first: Any = clients.personalize_events_client(settings, deadline)
    second: Any = clients.personalize_events_client(settings, deadline)

    # THEN it is one client, in standard mode, with one deadline hook on before-send
    assert first is second
    assert first.meta.config.retries == {"mode": "standard", "total_max_attempts": 4}
    hooks = [
        handler
        for handler in first.meta.events._emitter._handlers.prefix_search("before-send.personalize-events")
        if getattr(handler, "__name__", "") == "_before_attempt"
    ]
    assert len(hooks) == 1
